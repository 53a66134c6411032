"""The CLI as a user meets it, on a small model: export (every format, fresh-process round trip), inspect --json
(validated against docs/inspect.schema.json), run, extract."""
import json
import os
import textwrap

import jsonschema
import pytest

from trtpack.cli import main as cli
from tests.support.python_env import run_cli

MODEL = """
import torch

def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 32), torch.nn.LayerNorm(32),
                               torch.nn.ReLU(), torch.nn.Linear(32, 8)).eval()

def example_inputs():
    return (torch.randn(4, 16),)

def dynamic_shapes():
    return ({0: torch.export.Dim("batch", min=1, max=32)},)
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    (folder / "tiny.py").write_text(textwrap.dedent(MODEL))
    out = folder / "out"
    code, stdout, stderr = run_cli("export", str(folder / "tiny.py"), "--out", str(out), "--targets", "sm86")
    assert code == cli.EXIT_OK, stdout + stderr
    return out, stdout


@pytest.fixture(scope="module")
def schema():
    with open(os.path.join("docs", "inspect.schema.json")) as f:
        return json.load(f)


def test_export_writes_every_format_and_checks_each_in_a_fresh_process(exported):
    out, stdout = exported
    for suffix in (".ep", ".pt2", ".engine", ".engine.json"):
        assert (out / f"tiny{suffix}").is_file(), suffix
    assert "engines: 1" in stdout and "targets sm86" in stdout
    assert stdout.count("OK via pytorch fallback") == 2, stdout  # .ep and .pt2, run here through the fallback
    assert "not runnable here" in stdout  # the stand-alone .engine: no TensorRT-capable GPU here
    assert "compiled in" in stdout and "onnx" in stdout and "build" in stdout


@pytest.mark.parametrize("suffix", [".ep", ".engine", ".pt2"])
def test_inspect_json_follows_the_schema(exported, schema, suffix):
    out, _ = exported
    code, stdout, stderr = run_cli("inspect", str(out / f"tiny{suffix}"), "--json")
    assert code == cli.EXIT_OK, stderr
    info = json.loads(stdout)
    jsonschema.validate(info, schema)
    assert info["engines"][0]["targets"] == ["sm86"]
    assert not info["engines"][0]["usable_here"] and "no CUDA device" in info["engines"][0]["reason"]


def test_inspect_text_says_whether_it_runs_here(exported):
    out, _ = exported
    code, stdout, _ = run_cli("inspect", str(out / "tiny.ep"))
    assert code == cli.EXIT_OK
    assert "fallback yes" in stdout and "runs on this machine: yes" in stdout


def test_run_reports_latency_and_the_path_that_ran(exported):
    out, _ = exported
    code, stdout, stderr = run_cli("run", str(out / "tiny.ep"), "--inputs", str(out / "tiny.check.safetensors"),
                                   "--iterations", "5")
    assert code == cli.EXIT_OK, stderr
    assert "5 iterations via pytorch fallback" in stdout and "p50" in stdout and "p99" in stdout


def test_extract_writes_the_plan_and_its_sidecar(exported, tmp_path):
    out, _ = exported
    target = tmp_path / "one.engine"
    code, stdout, stderr = run_cli("extract", str(out / "tiny.ep"), "--engine", "trt_region_0", "-o", str(target))
    assert code == cli.EXIT_OK, stderr
    assert target.read_bytes() == (out / "tiny.engine").read_bytes()
    assert (tmp_path / "one.engine.json").read_text() == (out / "tiny.engine.json").read_text()


def test_extract_of_an_unknown_engine_lists_the_ones_there(exported, tmp_path):
    out, _ = exported
    code, _, stderr = run_cli("extract", str(out / "tiny.ep"), "--engine", "nope", "-o", str(tmp_path / "x.engine"))
    assert code == cli.EXIT_ERROR and "has no engine 'nope'; it has: trt_region_0" in stderr


def test_run_takes_every_format_and_makes_inputs_from_what_the_artifact_records(exported):
    out, _ = exported
    code, stdout, stderr = run_cli("run", str(out / "tiny.ep"), "--iterations", "2")
    assert code == cli.EXIT_OK and "2 iterations via pytorch fallback (built for sm86" in stdout, stderr
    assert "UserWarning" not in stderr, stderr  # the reason is in the one line above, not in a warning traceback
    code, _, stderr = run_cli("run", str(out / "tiny.pt2"), "--iterations", "2")
    assert code == cli.EXIT_BAD_INPUT and "--trust_native_code" in stderr and len(stderr.strip().splitlines()) == 1
    code, stdout, stderr = run_cli("run", str(out / "tiny.pt2"), "--iterations", "2", "--trust_native_code")
    assert code == cli.EXIT_OK and "2 iterations via pytorch fallback" in stdout, stderr
    code, _, stderr = run_cli("run", str(out / "tiny.engine"), "--iterations", "1")
    assert code == cli.EXIT_INCOMPATIBLE, stderr  # with the reason: no CUDA here, and what the engine needs
    assert "CUDA" in stderr and "sm86" in stderr and "TensorRT-RTX 1.7.1.116" in stderr, stderr


def test_extract_takes_an_engine_file_and_refuses_a_pt2_in_one_line(exported, tmp_path):
    out, _ = exported
    target = tmp_path / "copy.engine"
    code, _, stderr = run_cli("extract", str(out / "tiny.engine"), "--engine", "trt_region_0", "-o", str(target))
    assert code == cli.EXIT_OK and target.read_bytes() == (out / "tiny.engine").read_bytes(), stderr
    code, _, stderr = run_cli("extract", str(out / "tiny.pt2"), "--engine", "trt_region_0", "-o", str(target))
    assert code == cli.EXIT_BAD_INPUT and "AOTInductor package" in stderr and len(stderr.strip().splitlines()) == 1


def test_a_verification_mismatch_exits_4(tmp_path):
    # The model file tightens onnxruntime's tolerance below zero, so the real check of the region's ONNX must fail.
    body = MODEL + ("\nfrom trtpack.compiler import onnx_export\n"
                    "onnx_export.VERIFY_TOLERANCE[torch.float32] = (-1.0, 0.0)\n")
    (tmp_path / "strict.py").write_text(textwrap.dedent(body))
    code, stdout, stderr = run_cli("export", str(tmp_path / "strict.py"), "--out", str(tmp_path / "out"),
                                   "--targets", "sm86", "--formats", "engine")
    assert code == cli.EXIT_MISMATCH, stdout + stderr
    assert "differs from PyTorch" in stderr


def test_a_graph_torch_cannot_export_exits_3(tmp_path):
    body = MODEL.replace('min=1, max=32', 'min=8, max=32')  # the example batch (4) is outside the declared range
    (tmp_path / "bad_range.py").write_text(textwrap.dedent(body))
    code, stdout, stderr = run_cli("export", str(tmp_path / "bad_range.py"), "--out", str(tmp_path / "out"))
    assert code == cli.EXIT_UNSUPPORTED, stdout + stderr
    assert stderr.startswith("trtpack:"), stderr


def test_each_error_class_maps_to_its_documented_exit_code():
    import trtpack
    from trtpack.cli.model_file import ModelFileError
    from trtpack.compiler.onnx_export import VerificationError

    documented = {ModelFileError("m"): cli.EXIT_BAD_INPUT, trtpack.FormatError("f"): cli.EXIT_BAD_INPUT,
                  trtpack.UntrustedCodeError("u"): cli.EXIT_BAD_INPUT, VerificationError("v"): cli.EXIT_MISMATCH,
                  trtpack.UnsupportedGraphError("g"): cli.EXIT_UNSUPPORTED,
                  trtpack.IncompatibleEngineError("i"): cli.EXIT_INCOMPATIBLE, trtpack.TrtpackError("t"): cli.EXIT_ERROR}
    assert {type(e).__name__: cli._exit_code(e) for e in documented} == \
        {type(e).__name__: code for e, code in documented.items()}
    assert (cli.EXIT_OK, cli.EXIT_ERROR, cli.EXIT_BAD_INPUT, cli.EXIT_UNSUPPORTED, cli.EXIT_MISMATCH,
            cli.EXIT_INCOMPATIBLE) == (0, 1, 2, 3, 4, 5)  # the numbers README.md and the CLI's --help promise


def test_cache_info_clear_and_export_nocache(exported, tmp_path):
    def entries():
        code, stdout, stderr = run_cli("cache", "info", "--json")
        assert code == cli.EXIT_OK, stderr
        info = json.loads(stdout)
        assert info["path"].startswith(os.environ["TRTPACK_CACHE_DIR"]), info  # the test's own cache
        return info["entries"]

    assert entries() >= 1  # the module's export filled it
    code, stdout, _ = run_cli("cache", "clear")
    assert code == cli.EXIT_OK and stdout.startswith("removed ")
    assert entries() == 0
    code, stdout, _ = run_cli("cache", "info")
    assert code == cli.EXIT_OK and "programs: 0 entries" in stdout and "engines: 0 entries" in stdout
    model = tmp_path / "tiny.py"
    model.write_text(textwrap.dedent(MODEL))
    for flag, expected in (("--nocache", 0), ("--cache", 2)):  # --cache: the plan and the program
        code, stdout, stderr = run_cli("export", str(model), "--out", str(tmp_path / flag), "--targets", "sm86",
                                       "--formats", "engine", "--noverify", flag)
        assert code == cli.EXIT_OK, stdout + stderr
        assert entries() == expected, flag
    code, _, stderr = run_cli("cache", "prune")
    assert code == cli.EXIT_BAD_INPUT and "cache takes info or clear" in stderr
