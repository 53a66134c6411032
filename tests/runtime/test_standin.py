"""The computing TensorRT STAND-IN (a test double, trtpack.runtime.standin) on the CPU: it computes a registered
region through raw host addresses (__array_interface__), and refuses what TensorRT would. The same code runs on
CUDA addresses in tests/gpu; these tests need no GPU.
"""
import contextlib
import os
import subprocess
import sys

import pytest
import torch

import trtpack
from trtpack.runtime import standin
from trtpack.runtime.executor import Executor
from tests.support import python_env
from tests.support.plans import rtx_plan_bytes
from tests.support.records import make_record


class Region(torch.nn.Module):
    def forward(self, x):
        return x * 2 + 1, x.sum(-1)


def region_program():
    batch = torch.export.Dim("s0", min=1, max=64)
    return torch.export.export(Region(), (torch.randn(4, 3),), dynamic_shapes=({0: batch},))


def registered(tmp_path, body=b"the stand-in's region", dtype="float32"):
    """A plan + meta for Region, registered with a stand-in that computes on the CPU."""
    plan_bytes = rtx_plan_bytes(body)
    plan, meta = make_record(inputs=[("x", dtype, ["s0", 3])], outputs=[("y", dtype, ["s0", 3]), ("z", dtype, ["s0"])],
                             symbols={"s0": (1, 4, 64)}, plan_bytes=plan_bytes)
    registry = standin.Registry(str(tmp_path / "registry"))
    registry.register(plan_bytes, region_program(), [{"name": "x", "dtype": "float32", "min": [1, 3], "max": [64, 3]}],
                      [{"name": "y", "dtype": "float32"}, {"name": "z", "dtype": "float32"}])
    return plan, meta, standin.StandIn(registry=registry, cuda=False)


def executor_for(stand_in, tmp_path):
    return Executor(import_module=lambda name: stand_in, current_stream=lambda device: ("s", 0x5EED),
                    capability=lambda device: (8, 6), device_guard=lambda device: contextlib.nullcontext(),
                    cache_dir=str(tmp_path / "cache"))


def test_computes_the_region_through_the_addresses_it_is_given(tmp_path):
    plan, meta, trt = registered(tmp_path)
    x = torch.randn(5, 3)
    y, z = executor_for(trt, tmp_path).execute_engine([x], plan, meta)
    torch.testing.assert_close(y, x * 2 + 1, rtol=0, atol=0)
    torch.testing.assert_close(z, x.sum(-1), rtol=1e-6, atol=1e-6)
    (run,) = trt.runs
    assert run["addresses"] == {"x": x.data_ptr(), "y": y.data_ptr(), "z": z.data_ptr()}
    assert run["stream"] == 0x5EED and run["shapes"] == {"x": (5, 3), "y": (5, 3), "z": (5,)}


def test_non_contiguous_and_offset_inputs_reach_it_as_contiguous_copies(tmp_path):
    plan, meta, trt = registered(tmp_path)
    ex = executor_for(trt, tmp_path)
    transposed, rows = torch.randn(3, 10).t()[2:9], torch.randn(10, 3)[4:]
    assert not transposed.is_contiguous() and rows.storage_offset() == 12
    for x in (transposed, rows):
        y, _ = ex.execute_engine([x], plan, meta)
        torch.testing.assert_close(y, x * 2 + 1, rtol=0, atol=0)
    assert trt.runs[0]["addresses"]["x"] != transposed.data_ptr()  # it read a contiguous copy
    assert trt.runs[1]["addresses"]["x"] == rows.data_ptr() == rows.untyped_storage().data_ptr() + 12 * 4


def test_a_shape_outside_the_profile_is_refused(tmp_path):
    plan, meta, trt = registered(tmp_path)
    with pytest.raises(trtpack.IncompatibleEngineError, match=r"outside what it was built for \(s0 in \[1, 64\]\)"):
        executor_for(trt, tmp_path).execute_engine([torch.randn(65, 3)], plan, meta)
    assert "outside the profile" in trt.errors[-1] and trt.runs == []


def test_plan_bytes_that_were_not_registered_are_refused(tmp_path):
    _, _, trt = registered(tmp_path)
    other_plan, other_meta = make_record(inputs=[("x", "float32", ["s0", 3])], outputs=[("y", "float32", ["s0", 3])],
                                         symbols={"s0": (1, 4, 64)}, plan_bytes=rtx_plan_bytes(b"another plan"))
    with pytest.raises(trtpack.IncompatibleEngineError, match="could not deserialize engine"):
        executor_for(trt, tmp_path).execute_engine([torch.randn(2, 3)], other_plan, other_meta)
    assert "no registered engine has these plan bytes" in trt.errors[-1]


def test_a_plan_of_another_tensorrt_version_or_header_is_refused(tmp_path):
    plan, _, trt = registered(tmp_path)
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    other_version = bytearray(plan.numpy().tobytes())
    other_version[0x1B] = 117
    assert runtime.deserialize_cuda_engine(bytes(other_version)) is None
    assert "built by TensorRT-RTX 1.7.1.117" in trt.errors[-1]
    assert runtime.deserialize_cuda_engine(b"not a plan" * 10) is None
    assert "no 'vtrt' magic" in trt.errors[-1]
    assert runtime.deserialize_cuda_engine(plan.numpy()) is not None


def test_a_record_whose_dtype_disagrees_with_the_plan_is_a_format_error(tmp_path):
    plan, meta, trt = registered(tmp_path, dtype="float16")  # the plan computes float32
    with pytest.raises(trtpack.FormatError, match="input 'x' is float16 in the record but FLOAT in the plan"):
        executor_for(trt, tmp_path).execute_engine([torch.randn(2, 3).half()], plan, meta)


def test_a_missing_address_or_unknown_name_is_refused(tmp_path):
    plan, _, trt = registered(tmp_path)
    engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(plan.numpy())
    context = engine.create_execution_context()
    assert context.set_input_shape("x", (2, 3))
    assert not context.set_input_shape("nope", (2, 3)) and "no input named 'nope'" in trt.errors[-1]
    x, y = torch.randn(2, 3), torch.empty(2, 3)
    assert context.set_tensor_address("x", x.data_ptr()) and context.set_tensor_address("y", y.data_ptr())
    assert not context.execute_async_v3(0)
    assert trt.errors[-1] == "execute_async_v3: no address set for z"
    assert [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)] == ["x", "y", "z"]
    assert engine.get_tensor_mode("z") == standin.TensorIOMode.OUTPUT
    assert engine.get_tensor_dtype("z") == standin.DataType.FLOAT


def test_tensor_at_views_host_memory_of_every_record_dtype_without_copying():
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int8, torch.bool):
        source = torch.arange(6).reshape(2, 3).to(dtype)
        view = standin.tensor_at(source.data_ptr(), (2, 3), dtype, cuda=False)
        assert view.dtype == dtype and torch.equal(view, source) and view.data_ptr() == source.data_ptr()


def test_requested_only_by_the_environment_and_then_emulates_the_named_gpu(monkeypatch):
    monkeypatch.delenv(standin.ENV_ACTIVE, raising=False)
    assert not standin.requested()
    monkeypatch.setenv(standin.ENV_ACTIVE, "1")
    monkeypatch.setenv(standin.ENV_SM, "sm89")
    assert standin.requested() and standin.emulated_capability() == (8, 9)
    assert trtpack.machine.describe("cpu") == {"cuda": False, "sm": None, "backends": {"tensorrt_rtx": "1.7.1.116"}}


@pytest.mark.skipif(not trtpack.machine.installed_backends().get("tensorrt_rtx"), reason="needs tensorrt_rtx to build")
def test_compile_registers_each_region_for_a_fresh_process(tmp_path):
    """compile (stand-in requested) in one process; this process finds the region by its plan bytes and computes it."""
    code = (
        "import torch, trtpack\n"
        "model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()\n"
        "torch.manual_seed(0); x = torch.randn(4, 3)\n"
        "m = trtpack.compile(model, (x,), min_block_size=1, dynamic_shapes=({0: torch.export.Dim('b', min=1, max=16)},))\n"
        "trtpack.save(m, 'm.ep'); torch.save({'w': model.state_dict(), 'x': x}, 'ref.pt')\n")
    env = python_env.env(**{standin.ENV_ACTIVE: "1", standin.ENV_DIR: str(tmp_path / "registry")})
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True, capture_output=True)
    (engine,) = trtpack.load(str(tmp_path / "m.ep")).engines
    ref = torch.load(tmp_path / "ref.pt")
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()
    model.load_state_dict(ref["w"])
    trt = standin.StandIn(registry=standin.Registry(str(tmp_path / "registry")), cuda=False)
    x = torch.randn(7, 3)
    (y,) = executor_for(trt, tmp_path).execute_engine([x], engine.plan, engine.meta)
    torch.testing.assert_close(y, model(x), rtol=1e-5, atol=1e-5)
    assert len(os.listdir(tmp_path / "registry")) == 2  # <sha>.ep and <sha>.json
