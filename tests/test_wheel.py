"""//py:wheel installs into a bare folder and imports with no Bazel output tree or source checkout on the path. (Other
CPythons and torches: tests/user_env, which CI runs after this suite.)"""
import os
import subprocess
import sys
import zipfile

import pytest

WHEEL_DIR = "py"


def _wheel():
    names = [n for n in os.listdir(WHEEL_DIR) if n.endswith(".whl")]
    assert len(names) == 1, names
    return os.path.join(WHEEL_DIR, names[0])


def test_one_wheel_for_every_cpython_with_the_native_libraries():
    name = os.path.basename(_wheel())
    assert name.endswith("-py3-none-linux_x86_64.whl"), name  # the core is a C ABI library: no CPython tag
    with zipfile.ZipFile(_wheel()) as whl:
        names = set(whl.namelist())
    assert {"trtpack/__init__.py", "trtpack/libtrtpack_core.so", "trtpack/libtorchtrt_runtime.so",
            "trtpack/libtrtpack_graph_launch.so"} <= names
    assert not any(n.endswith(".so") and "cpython" in n for n in names), names


def test_the_metadata_states_the_supported_range_and_every_dependency():
    with zipfile.ZipFile(_wheel()) as whl:
        metadata = whl.read(next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    lines = metadata.splitlines()
    assert "Requires-Python: >=3.10,<3.14" in lines
    assert "Requires-Dist: torch>=2.11,<2.16" in lines
    for needed in ("numpy", "onnx", "onnxscript", "onnxruntime", "absl-py", "safetensors"):
        assert f"Requires-Dist: {needed}" in lines, needed
    assert "Provides-Extra: rtx" in lines
    assert 'Requires-Dist: tensorrt-rtx-cu12>=1.7.1,<1.8; extra == "rtx"' in lines


def test_installed_wheel_imports_from_outside_the_checkout(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(target),
                    _wheel()], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TRTPACK_LIB_DIR")}
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import trtpack, torch; "
            "print(trtpack.__file__); print(trtpack.runtime.registration.active().library); "
            "print(torch.ops.trtpack.execute_engine.default._schema)")
    out = subprocess.run([sys.executable, "-c", code, str(target)], cwd=tmp_path, env=env, check=True,
                         capture_output=True, text=True).stdout.splitlines()
    assert out[0].startswith(str(target)), out
    assert out[1] == str(target / "trtpack" / "libtorchtrt_runtime.so"), out
    assert out[2].startswith("trtpack::execute_engine(Tensor[] inputs, Tensor plan, str meta)"), out


def test_wheel_entries_carry_a_fixed_timestamp_for_reproducible_builds():
    with zipfile.ZipFile(_wheel()) as whl:
        stamps = {info.date_time for info in whl.infolist()}
    assert stamps == {(1980, 1, 1, 0, 0, 0)}
