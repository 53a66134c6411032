"""Finding and running the C++ binaries (//tools:run_pt2, //examples/cpp:infer) from tests: under `bazel test` they
are runfiles; from a source checkout (`./bazelw build //tools:run_pt2 //examples/cpp:infer`, then
`PYTHONPATH=py python -m pytest` from the repository root) they are under bazel-bin/."""
import json
import os
import subprocess

import pytest
from safetensors.torch import load_file, save_file

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def binary(relative):
    """Absolute path of a built binary, e.g. binary("tools/run_pt2")."""
    bases = [os.getcwd(), os.path.join(_REPO, "bazel-bin")]
    if os.environ.get("TEST_SRCDIR"):
        bases.insert(0, os.path.join(os.environ["TEST_SRCDIR"], "trtpack"))
    for base in bases:
        path = os.path.join(base, relative)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    pytest.fail(f"{relative} is not built; run `./bazelw build //{os.path.dirname(relative)}:{os.path.basename(relative)}`")


def run(argv, timeout=300):
    """Runs a C++ binary with no Python-related environment; returns the CompletedProcess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


def run_pt2(package, inputs, tmp_path, *extra):
    """Runs //tools:run_pt2 on `inputs` (a list of tensors); returns (outputs list, timing dict, process)."""
    in_path, out_path = str(tmp_path / "in.safetensors"), str(tmp_path / "out.safetensors")
    save_file({f"input_{i}": t.contiguous() for i, t in enumerate(inputs)}, in_path)
    proc = run([binary("tools/run_pt2"), str(package), "--inputs", in_path, "--outputs", out_path, *extra])
    assert proc.returncode == 0, proc.stderr
    outputs = load_file(out_path)
    return [outputs[f"output_{i}"] for i in range(len(outputs))], json.loads(proc.stdout.strip().splitlines()[-1]), proc


def needed_libraries(path):
    """Every shared library the dynamic loader resolves for `path` (ldd's view, transitive)."""
    proc = subprocess.run(["ldd", path], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]

