"""A program holding an engine record, with the torch.cond fallback, as a CPU AOTInductor package.

engine_usable's C++ kernel answers false on CPU, so Python (pt2.load) and C++ (//tools:run_pt2, no Python)
both take the PyTorch reference branch and reproduce eager outputs at several batch sizes. The plan here is a
fake byte buffer (tests.support.plans) with a valid record meta: it is never executed (no TensorRT engine runs on any machine
we have); the point is that the ops reach libtorchtrt_runtime's C++ kernels through AOTInductor's proxy executor.
"""
import json
import zipfile

import pytest
import torch
from safetensors.torch import save_file
from torch.export import Dim

from trtpack import record
from trtpack.artifacts import pt2
from tests.support.cpp_binaries import binary, run, run_pt2
from tests.support.engine_programs import EngineOnly, EngineWithFallback
from tests.support.records import make_record
from tests.support.timing import timed

# Linear(6, 5) + ReLU as one engine region.
PLAN, META = make_record(inputs=[("x", "float32", ["s0", 6])], outputs=[("out0", "float32", ["s0", 5])],
                         symbols={"s0": (1, 4, 32)})
BATCH = {"x": {0: Dim("batch", min=1, max=32)}}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return EngineWithFallback(PLAN, META, torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU())).eval()


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
    torch.testing.assert_close(model(x), model.reference(x))


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
    path = tmp_path / "engine_only.pt2"
    timed("AOTI package (engine only)", pt2.package, EngineOnly(PLAN, META).eval(), path,
          arg_inputs=(torch.randn(4, 6),), dynamic_shapes=BATCH)
    in_path = tmp_path / "in.safetensors"
    save_file({"input_0": torch.randn(3, 6)}, str(in_path))
    proc = run([binary("tools/run_pt2"), str(path), "--inputs", str(in_path)])
    assert proc.returncode == 1
    assert "TensorRT engine 'trt_region_0' (built for " in proc.stderr and "runs only on CUDA devices" in proc.stderr, proc.stderr
    with pytest.raises(RuntimeError, match=r"trt_region_0' \(built for sm.* with TensorRT-RTX .*\) runs only on CUDA devices"):
        pt2.load(path)(torch.randn(3, 6))
