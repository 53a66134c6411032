"""Choosing the TensorRT executor (trtpack.runtime.selection) where the C++ one is missing: a CPU machine with the
default libtorchtrt_runtime.so (no --config=tensorrt). Its GPU behaviour is in tests/gpu/test_gpu.py ([cpp]/[python])."""
import subprocess
import sys

import pytest
import torch

import trtpack
from trtpack.artifacts.program import LoadedProgram
from trtpack.runtime import selection
from tests.support import python_env


def test_cpp_without_a_library_that_has_it_is_a_clear_incompatible_engine_error():
    assert selection.available()["cpp"]  # the default build has no C++ executor
    with pytest.raises(trtpack.IncompatibleEngineError,
                       match=r"executor='cpp' needs libtorchtrt_runtime.so built with its C\+\+ TensorRT executor.*"
                             r"--config=tensorrt.*or use executor='python'"):
        trtpack.load("no-such-file.ep", executor="cpp")  # refused before the file is read
    assert selection.active() == "python"


@pytest.mark.parametrize("name", ["gpu", "", 1])
def test_an_unknown_executor_is_a_trtpack_error_not_a_type_error(name):
    with pytest.raises(trtpack.TrtpackError, match="is not one of cpp, python"):
        trtpack.load("no-such-file.ep", executor=name)


def test_the_environment_picks_the_default_and_a_bad_value_is_refused(monkeypatch):
    monkeypatch.setenv(selection.ENV, "python")
    assert selection.default() == "python"
    monkeypatch.setenv(selection.ENV, "fast")
    with pytest.raises(trtpack.TrtpackError, match="TRTPACK_EXECUTOR='fast' is not one of cpp, python"):
        selection.default()
    monkeypatch.delenv(selection.ENV)
    assert selection.default() == "python"  # no C++ executor in this library


def test_trtpack_executor_cpp_where_it_cannot_run_warns_at_import_and_runs_python():
    code = "import trtpack; from trtpack.runtime import selection; print(selection.active())"
    out = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True,
                         env=python_env.env(TRTPACK_EXECUTOR="cpp"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "python"
    assert "TRTPACK_EXECUTOR=cpp is not used: executor='cpp' needs libtorchtrt_runtime.so" in out.stderr


def test_a_loaded_program_switches_back_to_its_executor_when_called(monkeypatch):
    used = []
    monkeypatch.setattr(selection, "use", lambda name: used.append(name) or name)
    program = LoadedProgram("engine", torch.nn.Identity(), [], {}, None)
    x = torch.ones(2)
    program(x)
    assert used == []  # loaded without executor=: whatever the process runs
    program.executor = "cpp"
    monkeypatch.setattr(selection, "active", lambda: "python")
    assert program(x) is x
    assert used == ["cpp"]
    monkeypatch.setattr(selection, "active", lambda: "cpp")
    program(x)
    assert used == ["cpp"]  # already active: no switch
