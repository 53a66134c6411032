"""trtpack as a user installs it: the built wheel, installed with pip into a fresh venv of another CPython and torch
than the project's (run by tests/user_env/run.sh, from a folder outside the checkout, with no project file on the
path). The full scope compiles, saves and loads every format and runs the CLI; the load scope (-m "not full") only reads
and runs what another torch saved (the rest of the supported range).

Inputs from run.sh: USER_ENV_WORK (a scratch folder), USER_ENV_MAIN (artifacts the project's venv saved, with
inputs and eager outputs), USER_ENV_RUNTIME (a libtorchtrt_runtime.so built for this torch, full scope),
USER_ENV_OTHER_PYTHON + USER_ENV_OTHER_PYTHONPATH (the project's interpreter, to read back what this torch saves).
"""
import json
import os
import subprocess
import sys

import pytest
import torch

import trtpack

WORK = os.environ["USER_ENV_WORK"]
MAIN = os.environ["USER_ENV_MAIN"]
full_only = pytest.mark.full  # run.sh deselects these for USER_ENV_SCOPE=load pairs (-m "not full")
MODEL_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "user_model.py")  # run.sh copies it


def _fresh(code: str, *args, env=None, python=sys.executable, pythonpath=None):
    """Runs `code` in a fresh interpreter from WORK; returns its last stdout line parsed as JSON."""
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TRTPACK_LIB_DIR")}
    if pythonpath:
        environ["PYTHONPATH"] = pythonpath
    proc = subprocess.run([python, "-c", code, *args], cwd=WORK, env={**environ, **(env or {})},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _model():
    namespace = {}
    with open(MODEL_FILE) as f:
        exec(compile(f.read(), MODEL_FILE, "exec"), namespace)  # a model file as `trtpack export` reads it
    return namespace


@pytest.fixture(scope="module")
def compiled():
    ns = _model()
    model, inputs = ns["model"](), ns["example_inputs"]()
    module = trtpack.compile(model, inputs, dynamic_shapes=ns["dynamic_shapes"](), fallback=True, min_block_size=1,
                             verify=True)
    return model, module


def test_the_installed_wheel_is_what_runs_not_a_checkout():
    site = os.path.dirname(os.path.dirname(trtpack.__file__))
    assert site.endswith("site-packages"), trtpack.__file__
    assert not any(os.path.isdir(os.path.join(p or ".", "py", "trtpack")) for p in sys.path), sys.path
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, trtpack {trtpack.__version__}")


def test_without_a_runtime_for_this_torch_the_ops_are_registered_from_python():
    ops = trtpack.runtime.registration.active()
    assert ops.kind == "python", ops.as_dict()
    assert torch.__version__.split("+")[0] in ops.reason
    assert str(torch.ops.trtpack.execute_engine.default._schema).startswith(
        "trtpack::execute_engine(Tensor[] inputs, Tensor plan, str meta) -> Tensor[]")


@pytest.mark.parametrize("kind", ["ep", "engine"])
def test_main_venv_artifacts_load_and_run_here(kind):
    case = torch.load(os.path.join(MAIN, "case.pt"))
    program = trtpack.load(os.path.join(MAIN, f"model.{kind}"))
    if kind == "ep":
        torch.testing.assert_close(program(*case["inputs"]), case["outputs"])
    else:  # a bare engine has no PyTorch reference: on this CPU machine it refuses in words
        assert program.format == "engine" and program.engines[0].record["torch_version"] == case["torch"]
        with pytest.raises(trtpack.IncompatibleEngineError, match="runs only on CUDA devices"):
            program(*case["inputs"])


def test_a_pt2_without_a_runtime_for_this_torch_is_refused_with_the_command_that_builds_one():
    with pytest.raises(trtpack.IncompatibleEngineError, match=r"tools/build_runtime.sh --torch "):
        trtpack.load(os.path.join(MAIN, "model.pt2"), trust_native_code=True)
    assert trtpack.inspect(os.path.join(MAIN, "model.pt2"))["runs_here"] is False


@full_only
def test_compile_matches_eager(compiled):
    model, module = compiled
    for batch in (1, 5, 32):
        x = torch.randn(batch, 3, 16, 16)
        torch.testing.assert_close(module(x), model(x))


@full_only
@pytest.mark.parametrize("kind", ["ep", "engine", "pt2"])
def test_save_then_load_in_a_fresh_process(compiled, kind):
    model, module = compiled
    path = os.path.join(WORK, f"here.{kind}")
    trtpack.save(module, path)
    x = torch.randn(3, 3, 16, 16)
    torch.save({"x": x, "y": model(x)}, os.path.join(WORK, f"here_{kind}_case.pt"))
    code = """
import json, sys, torch, trtpack
case = torch.load(sys.argv[2])
p = trtpack.load(sys.argv[1], trust_native_code=True)
try:
    torch.testing.assert_close(p(case["x"]), case["y"]); ran = "ok"
except trtpack.IncompatibleEngineError as e:
    ran = "refused: " + str(e)
print(json.dumps({"format": p.format, "ran": ran, "ops": trtpack.runtime.registration.active().kind}))
"""
    env = {"TRTPACK_RUNTIME_LIBRARY": os.environ["USER_ENV_RUNTIME"]} if kind == "pt2" else {}
    got = _fresh(code, path, os.path.join(WORK, f"here_{kind}_case.pt"), env=env)
    if kind == "engine":
        assert got["ran"].startswith("refused: ") and "runs only on CUDA devices" in got["ran"], got
    else:
        assert got["ran"] == "ok", got
    assert got["ops"] == ("native" if kind == "pt2" else "python"), got


@full_only
def test_what_this_torch_saved_loads_under_the_project_torch(compiled):
    model, module = compiled
    path = os.path.join(WORK, "for_main.ep")
    trtpack.save(module, path)
    x = torch.randn(4, 3, 16, 16)
    torch.save({"x": x, "y": model(x)}, os.path.join(WORK, "for_main_case.pt"))
    code = """
import json, sys, torch, trtpack
case = torch.load(sys.argv[2])
torch.testing.assert_close(trtpack.load(sys.argv[1])(case["x"]), case["y"])
print(json.dumps({"torch": torch.__version__}))
"""
    got = _fresh(code, path, os.path.join(WORK, "for_main_case.pt"), python=os.environ["USER_ENV_OTHER_PYTHON"],
                 pythonpath=os.environ["USER_ENV_OTHER_PYTHONPATH"])
    assert got["torch"].split("+")[0] != torch.__version__.split("+")[0], got


@full_only
def test_the_cli_exports_inspects_and_runs():
    model_py = MODEL_FILE
    out = os.path.join(WORK, "cli_out")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    trtpack_bin = os.path.join(os.path.dirname(sys.executable), "trtpack")
    proc = subprocess.run([trtpack_bin, "export", model_py, "--out", out, "--min_block_size", "1"], cwd=WORK, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "ep " in proc.stdout and "OK via pytorch fallback" in proc.stdout, proc.stdout
    assert "not loaded here: trtpack: the AOTInductor package" in proc.stdout, proc.stdout  # no runtime for this torch
    ep = os.path.join(out, "user_model.ep")
    info = subprocess.run([trtpack_bin, "inspect", ep, "--json"], env=env, capture_output=True, text=True, check=True)
    described = json.loads(info.stdout)
    assert described["ops"]["kind"] == "python" and described["runs_here"] is True
    assert described["engines"] and described["torch_version"] == torch.__version__
    run = subprocess.run([trtpack_bin, "run", ep, "--iterations", "3"], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
