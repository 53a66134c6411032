"""A program holding an engine record, with the torch.cond fallback, as a CPU AOTInductor package.

engine_usable's C++ kernel answers false on CPU, so Python (pt2.load) and C++ (//tools:run_pt2, no Python)
both take the PyTorch reference branch and reproduce eager outputs at several batch sizes. The plan here is a
small fake byte buffer with a valid record meta: it is never executed (no TensorRT engine runs on any machine
we have); the point is that the ops reach libtorchtrt_runtime's C++ kernels through AOTInductor's proxy executor.
"""
import hashlib
import json
import os
import struct
import sys
import zipfile

import pytest
import torch
from safetensors.torch import save_file
from torch.export import Dim

import trtpack
from trtpack import record
from trtpack.artifacts import pt2

sys.path.insert(0, os.path.dirname(__file__))  # Bazel makes tests/aoti a package; find the helper beside us
from pt2_helpers import binary, run, run_pt2, timed  # noqa: E402

TARGETS = ["sm80", "sm86", "sm89", "sm120", "sm121"]


def fake_rtx_plan(body=b"fake plan body: never executed"):
    """A TensorRT-RTX plan header (layout in docs/FORMAT.md) that agrees with the record, then filler bytes."""
    mask = sum(record.TARGET_BITS[t] for t in TARGETS)
    header = b"vtrt" + bytes(12) + struct.pack("<Q", 64 + len(body)) + bytes((1, 7, 1, 116)) + bytes(4)
    header += struct.pack("<Q", mask)
    return header + bytes(64 - len(header)) + body


FAKE_PLAN = fake_rtx_plan()


def engine_record(features_in, features_out):
    meta = {
        "format": "trtpack.engine", "format_version": list(record.FORMAT_VERSION),
        "name": "trt_region_0", "backend": "tensorrt_rtx", "backend_version": "1.7.1.116",
        "targets": TARGETS,
        "trtpack_version": trtpack.__version__, "torch_version": torch.__version__,
        "plan_size": len(FAKE_PLAN), "plan_sha256": hashlib.sha256(FAKE_PLAN).hexdigest(),
        "inputs": [{"name": "x", "dtype": "float32", "shape": ["s0", features_in]}],
        "outputs": [{"name": "out0", "dtype": "float32", "shape": ["s0", features_out]}],
        "symbols": {"s0": {"min": 1, "opt": 4, "max": 32}},
        "build": {"onnx_opset": 18},
    }
    record.check_plan(meta, FAKE_PLAN, verify_hash=True)
    return torch.frombuffer(bytearray(FAKE_PLAN), dtype=torch.uint8), record.encode_meta(meta)


class EngineWithFallback(torch.nn.Module):
    """What trtpack.compile(..., fallback=True) makes of Linear+ReLU: the engine if usable, else the reference."""

    def __init__(self, fallback=True):
        super().__init__()
        self.reference = torch.nn.Linear(6, 5)
        plan, self.meta = engine_record(6, 5)
        self.register_buffer("plan", plan)
        self.fallback = fallback

    def forward(self, x):
        if not self.fallback:
            return torch.ops.trtpack.execute_engine([x], self.plan, self.meta)[0]
        usable = torch.ops.trtpack.engine_usable([x], self.plan, self.meta)
        return torch.cond(usable,
                          lambda x: torch.ops.trtpack.execute_engine([x], self.plan, self.meta)[0],
                          lambda x: torch.relu(self.reference(x)),
                          (x,))


BATCH = {"x": {0: Dim("batch", min=1, max=32)}}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return EngineWithFallback().eval()


@pytest.fixture(scope="module")
def package(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("pt2") / "engine_with_fallback.pt2"
    timed("AOTI package (engine record + torch.cond fallback)", pt2.package, model, path,
          arg_inputs=(torch.randn(4, 6),), dynamic_shapes=BATCH)
    return path


def test_the_package_calls_both_ops_through_the_proxy_executor(package):
    with zipfile.ZipFile(package) as archive:
        text = "".join(archive.read(n).decode("utf-8", "replace") for n in archive.namelist()
                       if n.endswith((".json", ".cpp")))
    assert "trtpack::engine_usable" in text or "trtpack.engine_usable" in text
    assert "trtpack::execute_engine" in text or "trtpack.execute_engine" in text


def test_eager_takes_the_reference_on_cpu(model):
    x = torch.randn(3, 6)
    assert torch.ops.trtpack.engine_usable([x], model.plan, model.meta).item() is False
    torch.testing.assert_close(model(x), torch.relu(model.reference(x)))


@pytest.mark.parametrize("batch", [2, 9])
def test_python_load_runs_the_reference_branch(model, package, batch):
    runner = timed("AOTI load (Python)", pt2.load, package)
    x = torch.randn(batch, 6)
    torch.testing.assert_close(runner(x), model(x))


@pytest.mark.parametrize("batch", [2, 9])
def test_run_pt2_runs_the_reference_branch_without_python(model, package, batch, tmp_path):
    x = torch.randn(batch, 6)
    (got,), timing, _ = run_pt2(package, [x], tmp_path, "--iterations", "3")
    torch.testing.assert_close(got, model(x))
    assert timing["iterations"] == 3


def test_the_recorded_inputs_match_the_engine_meta(package, model):
    specs = json.loads(pt2.load(package).get_metadata()[pt2.INPUTS_METADATA_KEY])
    engine_inputs = record.decode_meta(model.meta)["inputs"]
    assert len(specs) == len(engine_inputs) == 1
    assert specs[0]["dtype"] == engine_inputs[0]["dtype"]
    assert specs[0]["shape"][1] == engine_inputs[0]["shape"][1]


def test_without_fallback_run_pt2_reports_the_cpu_kernel_error(tmp_path):
    """No reference branch: execute_engine's C++ CPU kernel runs from C++ and refuses with its message."""
    torch.manual_seed(0)
    path = tmp_path / "engine_only.pt2"
    timed("AOTI package (engine only)", pt2.package, EngineWithFallback(fallback=False).eval(), path,
          arg_inputs=(torch.randn(4, 6),), dynamic_shapes=BATCH)
    in_path = tmp_path / "in.safetensors"
    save_file({"input_0": torch.randn(3, 6)}, str(in_path))
    proc = run([binary("tools/run_pt2"), str(path), "--inputs", str(in_path)])
    assert proc.returncode == 1
    assert "TensorRT engine 'trt_region_0' (built for " in proc.stderr and "runs only on CUDA devices" in proc.stderr, proc.stderr
    with pytest.raises(RuntimeError, match=r"trt_region_0' \(built for sm.* with TensorRT-RTX .*\) runs only on CUDA devices"):
        pt2.load(path)(torch.randn(3, 6))
