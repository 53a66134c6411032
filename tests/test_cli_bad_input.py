"""The CLI on bad input: the exit code and a message that says what is wrong and what to do."""
import textwrap

import pytest

from trtpack.cli import main as cli
from tests.support import python_env


def run_cli(*args):
    """(exit code, everything the CLI printed): these tests don't care which stream a message went to."""
    code, stdout, stderr = python_env.run_cli(*args)
    return code, stdout + stderr


def model_file(tmp_path, body: str) -> str:
    path = tmp_path / "m.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_no_command_prints_usage():
    code, out = run_cli()
    assert code == cli.EXIT_BAD_INPUT
    assert "expected a command (export, inspect, run, extract, cache, triton, tritonserver)" in out
    assert "trtpack export MODEL.py" in out and "trtpack triton ARTIFACT --repo DIR" in out


def test_unknown_command():
    code, out = run_cli("frobnicate", "x.py")
    assert code == cli.EXIT_BAD_INPUT and "got 'frobnicate'" in out


def test_missing_model_file(tmp_path):
    code, out = run_cli("export", str(tmp_path / "nope.py"))
    assert code == cli.EXIT_BAD_INPUT and "no model file at" in out and "nope.py" in out


def test_model_file_that_fails_to_import(tmp_path):
    code, out = run_cli("export", model_file(tmp_path, "import does_not_exist_anywhere\n"))
    assert code == cli.EXIT_BAD_INPUT
    assert "failed to import" in out and "does_not_exist_anywhere" in out


@pytest.mark.parametrize("body,problem", [
    ("import torch\ndef example_inputs():\n    return (torch.randn(1),)\n", "defines no model() function"),
    ("import torch\ndef model():\n    return torch.nn.ReLU()\n", "defines no example_inputs() function"),
    ("import torch\ndef model():\n    return 3\ndef example_inputs():\n    return (torch.randn(1),)\n",
     "model() returned int, not a torch.nn.Module"),
    ("import torch\ndef model():\n    return torch.nn.ReLU()\ndef example_inputs():\n    return torch.randn(1)\n",
     "example_inputs() returned Tensor; return a tuple of tensors"),
    ("import torch\ndef model():\n    return torch.nn.ReLU()\ndef example_inputs():\n    return (1, 2)\n",
     "example_inputs() must contain only tensors"),
])
def test_model_file_breaking_the_convention_shows_a_minimal_valid_file(tmp_path, body, problem):
    code, out = run_cli("export", model_file(tmp_path, body))
    assert code == cli.EXIT_BAD_INPUT
    assert problem in out
    assert "A minimal valid model file" in out and "def example_inputs():" in out


def test_model_function_that_raises_names_the_function_and_the_error(tmp_path):
    body = "import torch\ndef model():\n    raise RuntimeError('weights missing')\ndef example_inputs():\n    return ()\n"
    code, out = run_cli("export", model_file(tmp_path, body))
    assert code == cli.EXIT_BAD_INPUT and "model() raised RuntimeError: weights missing" in out


def test_inspect_of_a_missing_file(tmp_path):
    code, out = run_cli("inspect", str(tmp_path / "missing.ep"))
    assert code == cli.EXIT_ERROR and "cannot read" in out


def test_inspect_of_a_damaged_archive(tmp_path):
    bad = tmp_path / "bad.ep"
    bad.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    code, out = run_cli("inspect", str(bad))
    assert code == cli.EXIT_BAD_INPUT
    assert "is not a safe trtpack ExportedProgram archive: the last 22 bytes are not an end of central" in out


def test_inspect_of_a_file_that_is_no_artifact_says_so(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# a project\n\nNot a model.\n")
    code, out = run_cli("inspect", str(readme))
    assert code == cli.EXIT_BAD_INPUT
    assert "is not a trtpack artifact: it is neither a zip archive (.ep, .pt2) nor a TensorRT plan" in out
    assert "written by trtpack.save or `trtpack export`" in out and "sidecar" in out.split("nor a TensorRT")[1]


def test_a_plan_without_its_sidecar_still_asks_for_the_sidecar(tmp_path):
    plan = tmp_path / "model.engine"
    plan.write_bytes(b"vtrt" + bytes(60))
    code, out = run_cli("inspect", str(plan))
    assert code == cli.EXIT_BAD_INPUT and "has no sidecar" in out and "not a trtpack artifact" not in out


@pytest.mark.parametrize("flag", ["--help", "-h", "help"])
def test_help_lists_the_commands_and_their_flags(flag):
    code, out = run_cli(flag)
    assert code == cli.EXIT_OK
    for command in ("trtpack export MODEL.py", "trtpack inspect FILE", "trtpack run FILE", "trtpack extract FILE",
                    "trtpack cache info|clear", "Exit codes:", "--min_block_size", "--trust_native_code"):
        assert command in out, command
    assert "Try --helpfull" not in out and "USAGE:" not in out


def test_extract_needs_engine_and_output(tmp_path):
    code, out = run_cli("extract", str(tmp_path / "x.ep"))
    assert code == cli.EXIT_BAD_INPUT and "extract needs --engine NAME and -o OUT.engine" in out
