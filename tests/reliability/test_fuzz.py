"""Runs every atheris harness in fuzz/ for a bounded time; any crash, hang or huge allocation fails the test.

Budget: $TRTPACK_FUZZ_SECONDS in total (default 60), split evenly; each harness starts from a copy of its seed corpus
in fuzz/corpus/. A failing input is kept in the test's output folder and its bytes are printed.
"""
import os
import re
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FUZZ = os.path.join(REPO, "fuzz")
TARGETS = ["meta", "plan_header", "engine", "archive"]
BUDGET = int(os.environ.get("TRTPACK_FUZZ_SECONDS", "60"))


def run_harness(target: str, seconds: int, work: str) -> subprocess.CompletedProcess:
    corpus = os.path.join(work, "corpus")
    shutil.copytree(os.path.join(FUZZ, "corpus", target), corpus)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [REPO, *sys.path] if p), "TMPDIR": work}
    args = [sys.executable, os.path.join(FUZZ, f"fuzz_{target}.py"), corpus, f"-max_total_time={seconds}",
            "-timeout=30", "-rss_limit_mb=4096", f"-artifact_prefix={work}/", "-print_final_stats=1"]
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=seconds + 240)


@pytest.mark.parametrize("target", TARGETS)
def test_harness_runs_without_crash_hang_or_oom(target, tmp_path, capsys):
    seconds = max(2, BUDGET // len(TARGETS))
    proc = run_harness(target, seconds, str(tmp_path))
    log = proc.stdout + proc.stderr
    artifacts = [f for f in os.listdir(tmp_path) if re.match(r"(crash|timeout|oom|leak)-", f)]
    detail = "\n".join(log.splitlines()[-60:])
    assert proc.returncode == 0 and not artifacts, f"fuzz_{target} failed ({artifacts}):\n{detail}"
    runs = re.search(r"Done (\d+) runs in (\d+) second", log)
    assert runs and int(runs.group(1)) > 0, f"fuzz_{target} ran no inputs:\n{detail}"
    with capsys.disabled():  # into the test log: the CI's fuzz report
        print(f"\nfuzz_{target}: {runs.group(1)} executions in {runs.group(2)} s, 0 crashes, 0 hangs")
