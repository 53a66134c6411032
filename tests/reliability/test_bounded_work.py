"""Every input costs bounded time and memory: hostile records and files that used to hang or allocate without
limit end, within 5 s each, in a TrtpackError (CLI: a documented exit code)."""
import json
import os
import subprocess
import sys
import time
import zipfile

import pytest

import trtpack
from fuzz import programs
from trtpack import record
from tests.support import python_env

LIMIT = 5.0


def meta_with(**changes):
    meta = json.loads(programs.meta_for(programs.plan_tensor()))
    meta.update(changes)
    return json.dumps(meta)


def refused_quickly(fn, *args, error=trtpack.FormatError):
    start = time.perf_counter()
    with pytest.raises(error) as caught:
        fn(*args)
    elapsed = time.perf_counter() - start
    assert elapsed < LIMIT, f"took {elapsed:.1f} s"
    assert "\n" not in str(caught.value), "a one-line reason"
    return caught.value


@pytest.mark.parametrize("name,meta", [
    ("300k inputs", meta_with(inputs=[{"name": f"x{i}", "dtype": "float32", "shape": [1]} for i in range(300_000)])),
    ("5k inputs", meta_with(inputs=[{"name": f"x{i}", "dtype": "float32", "shape": [1]} for i in range(5_000)])),
    ("40k empty objects in build", meta_with(build={"k": [{}] * 40_000})),
    ("40k keys in build", meta_with(build={f"k{i}": i for i in range(40_000)})),
    ("deep nesting", '{"build": ' + "[" * 100_000),
    ("2M values", "[" + "0," * 2_000_000 + "0]"),
])
def test_hostile_records_are_refused_in_linear_time(name, meta):
    refused_quickly(record.decode_meta, meta)


@pytest.mark.parametrize("expr", ["9**9**9", "(" * 33 + "s0" + ")" * 33, "s0" + "+s0" * 200, "9" * 30,
                                  "max(" * 40 + "s0" + ",1)" * 40])
def test_hostile_dim_expressions_are_refused_quickly(expr):
    refused_quickly(record.parse_dim, expr)


def test_dim_evaluation_is_overflow_checked_not_unbounded():
    refused_quickly(record.eval_dim, "s0*s0*s0", {"s0": 1 << 62})


def test_valid_record_with_4096_inputs_still_parses():
    meta = meta_with(inputs=[{"name": f"x{i}", "dtype": "float32", "shape": ["s0", 8, 8, 8, 8, 8, 8, 8]}
                             for i in range(4096)])
    start = time.perf_counter()
    assert len(record.decode_meta(meta)["inputs"]) == 4096
    assert time.perf_counter() - start < LIMIT


def test_cli_run_on_a_record_with_a_10_to_the_12_dim_is_a_clean_error(tmp_path):
    plan = programs.plan_tensor()
    meta = json.loads(programs.meta_for(plan))
    meta["inputs"][0]["shape"] = [10 ** 12, 4]
    meta["outputs"][0]["shape"] = [10 ** 12, 4]
    path = str(tmp_path / "big.engine")
    plan.numpy().tofile(path)
    with open(path + ".json", "w") as f:
        f.write(record.encode_meta(meta))
    env = python_env.env()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "trtpack.cli", "run", path], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "would take 16,000,000,000,000 bytes of random data" in proc.stderr and "Traceback" not in proc.stderr
    assert time.perf_counter() - start < 60


def test_fifo_sidecar_and_fifo_artifact_do_not_hang(tmp_path):
    path = str(tmp_path / "program.engine")
    trtpack.save(programs.exported(), path)
    os.remove(path + ".json")
    os.mkfifo(path + ".json")
    refused_quickly(trtpack.load, path)
    refused_quickly(trtpack.inspect, path)
    fifo = str(tmp_path / "fifo.ep")
    os.mkfifo(fifo)
    refused_quickly(trtpack.load, fifo)


def test_loaded_plan_tensor_is_never_materialized_beyond_its_bytes(tmp_path):
    """The stride-0 case end to end: refused from the archive's own tensor metadata, before torch reads weights."""
    path, bad = str(tmp_path / "program.ep"), str(tmp_path / "bad.ep")
    trtpack.save(programs.exported(), path)
    with zipfile.ZipFile(path) as z, zipfile.ZipFile(bad, "w") as out:
        for info in z.infolist():
            data = z.read(info)
            if info.filename.endswith("model_weights_config.json"):
                config = json.loads(data)
                tensor = config["config"]["plan"]["tensor_meta"]
                tensor["sizes"], tensor["strides"] = [{"as_int": 1 << 31}], [{"as_int": 0}]
                data = json.dumps(config).encode()
            out.writestr(info.filename, data)
    error = refused_quickly(trtpack.load, bad)
    assert "spans 2147483648 bytes but 128 are stored" in str(error)
