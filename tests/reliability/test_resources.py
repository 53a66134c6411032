"""Loading a program whose plan is 1 GiB keeps peak RSS (the whole process, torch included) within a stated bound.

Measured in fresh processes with getrusage; the numbers are printed and recorded in docs/BAD_INPUTS.md.
.engine: torch.from_file maps the file privately, and only the 64-byte header is read on load.
.ep: torch.export.load reads each weight record into memory once (torch 2.13 does not mmap archive records).
"""
import json
import os
import subprocess
import sys

import pytest
from tests.support import python_env

HERE = os.path.dirname(os.path.abspath(__file__))
PLAN = int(os.environ.get("TRTPACK_BIG_PLAN_BYTES", str(1 << 30)))
BOUNDS = {"big.ep": 2.5, "big.engine": 1.3}  # peak RSS < factor x plan size
GROWTH = {"big.ep": 1.25, "big.engine": 0.05}  # peak RSS growth during load < factor x plan size (one copy / mmap)


def probe(*args, timeout=540):
    env = python_env.env()
    proc = subprocess.run([sys.executable, os.path.join(HERE, "rss_probe.py"), *args], capture_output=True,
                          text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("big"))
    probe("make", folder, str(PLAN))
    return folder


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_peak_rss_of_loading_a_1_gib_plan(folder, name, capsys):
    path = os.path.join(folder, name)
    assert os.path.getsize(path) >= PLAN
    result = json.loads(probe("load", path).strip().splitlines()[-1])
    mib = {k: round(v / (1 << 20)) for k, v in result.items() if k != "load_seconds"}
    with capsys.disabled():
        print(f"\n{name}: plan {PLAN >> 20} MiB, peak RSS {mib['peak']} MiB (before load {mib['peak_before_load']} MiB, "
              f"after load {mib['rss_after_load']} MiB), load {result['load_seconds']:.2f} s")
    assert result["peak"] < BOUNDS[name] * PLAN, f"{name}: peak RSS {mib['peak']} MiB over {BOUNDS[name]}x the plan"
    growth = result["peak"] - result["peak_before_load"]
    assert growth < GROWTH[name] * PLAN, f"{name}: loading grew peak RSS by {growth >> 20} MiB"
