"""CONTRACT tests of the Python TensorRT executor against FakeTensorRT, a fake runtime module that records calls.

No TensorRT engine can run on any machine we have, so these check what the executor asks of TensorRT (shapes set,
addresses bound, stream used, outputs allocated by torch with the right shape/dtype/device, deserialization cached,
thread safety, runtime cache on disk), not that TensorRT computes anything. The executor's device pieces (stream,
compute capability, device guard) are injected so CPU tensors can stand in for CUDA ones; the op registration
itself is CUDA-only.
"""
import contextlib
import threading
import warnings

import pytest
import torch

import trtpack
from trtpack.runtime import executor as executor_mod
from trtpack.runtime.executor import Executor
from tests.support.fake_tensorrt_runtime import FakeTensorRT
from tests.support.records import make_record

PLAN, META = make_record(inputs=[("x", "float32", ["s0", 3])], outputs=[("y", "float32", ["s0", 3])],
                         symbols={"s0": (1, 4, 64)})
FULL_PLAN, FULL_META = make_record(inputs=[("x", "float32", ["s0", 3])], outputs=[("y", "float32", ["s0", 3])],
                                   symbols={"s0": (1, 4, 64)}, backend="tensorrt",
                                   plan_bytes=b"a full TensorRT plan, not parsed by trtpack")


def make_executor(tmp_path, *modules, stream=lambda device: ("stream-A", 0xA), capability=(8, 6), guarded=None):
    imported = []
    available = {m.__name__: m for m in modules}

    def import_module(name):
        imported.append(name)
        if name not in available:
            raise ImportError(f"No module named {name!r}")
        return available[name]

    def device_guard(device):
        if guarded is not None:
            guarded.append(str(device))
        return contextlib.nullcontext()

    ex = Executor(import_module=import_module, current_stream=stream, capability=lambda device: capability,
                  device_guard=device_guard, cache_dir=str(tmp_path / "cache"))
    ex.imported = imported
    return ex


def test_python_executor_is_the_cuda_kernel_of_both_ops_when_the_library_has_none():
    for op in ("execute_engine", "engine_usable"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"trtpack::{op}", "CUDA")
        assert "executor.py" in [line for line in torch._C._dispatch_dump(f"trtpack::{op}").splitlines()
                                 if line.startswith("CUDA:")][0]
    assert isinstance(executor_mod.executor(), Executor)
    assert executor_mod.register_cuda_kernels() is False  # registers once


def test_execute_sets_shapes_binds_addresses_allocates_with_torch_and_enqueues_on_the_current_stream(tmp_path):
    trt = FakeTensorRT()
    ex = make_executor(tmp_path, trt)
    x = torch.randn(5, 3)
    (y,) = ex.execute_engine([x], PLAN, META)
    assert (tuple(y.shape), y.dtype, y.device) == ((5, 3), torch.float32, x.device)
    torch.testing.assert_close(y, x)  # the fake engine copies x into y through the bound addresses
    assert trt.named("set_input_shape") == [("set_input_shape", "x", (5, 3), trt.named("set_input_shape")[0][3])]
    assert ("set_tensor_address", "x", x.data_ptr()) in trt.calls
    assert ("set_tensor_address", "y", y.data_ptr()) in trt.calls
    (run,) = trt.named("execute_async_v3")
    assert run[1] == 0xA and run[2] == {"x": x.data_ptr(), "y": y.data_ptr()}
    assert trt.named("deserialize_cuda_engine") == [("deserialize_cuda_engine", PLAN.numpy().tobytes())]


def test_a_non_contiguous_input_is_bound_as_a_contiguous_copy(tmp_path):
    trt = FakeTensorRT()
    x = torch.randn(3, 6).t()[:, :3]
    assert not x.is_contiguous()
    (y,) = make_executor(tmp_path, trt).execute_engine([x], PLAN, META)
    (run,) = trt.named("execute_async_v3")
    assert run[2]["x"] != x.data_ptr()
    torch.testing.assert_close(y, x)


def test_every_call_gets_fresh_contiguous_outputs_of_the_records_shapes_and_dtypes(tmp_path):
    """Outputs are allocated for each call (never a previous call's memory, never one another's), contiguous even
    where a dim is 1, with the record's dtypes on the inputs' device; for one-output engines and for several
    inputs and outputs of different dtypes."""
    plan, meta = make_record(inputs=[("x", "float32", ["n", 3]), ("m", "int32", ["n"])],
                             outputs=[("y", "float32", ["n", 3]), ("z", "int64", ["n", 1, 2])],
                             symbols={"n": (1, 2, 16)})
    multi = FakeTensorRT(output_shapes=lambda s: {"y": s["x"], "z": (s["x"][0], 1, 2)})
    multi.io = {"x": ("INPUT", "FLOAT"), "m": ("INPUT", "INT32"), "y": ("OUTPUT", "FLOAT"), "z": ("OUTPUT", "INT64")}
    one = FakeTensorRT()
    two_inputs = lambda n: [torch.randn(n, 3), torch.zeros(n, dtype=torch.int32)]  # noqa: E731
    for trt, plan, meta, make in ((one, PLAN, META, lambda n: [torch.randn(n, 3)]), (multi, plan, meta, two_inputs)):
        ex = make_executor(tmp_path, trt)
        for n in (1, 5):
            inputs = make(n)
            first, second = ex.execute_engine(inputs, plan, meta), ex.execute_engine(inputs, plan, meta)
            pointers = [t.data_ptr() for t in (*first, *second)]
            assert len(set(pointers)) == len(pointers)
            for outputs in (first, second):
                torch.testing.assert_close(outputs[0], inputs[0])
                for out, like in zip(outputs, (torch.empty(n, 3), torch.empty(n, 1, 2, dtype=torch.int64))):
                    assert (out.shape, out.stride(), out.dtype, out.device) == (like.shape, like.stride(), like.dtype,
                                                                                inputs[0].device)
            bound = trt.named("execute_async_v3")[-1][2]
            assert [bound[k] for k in ("x", "m")[:len(inputs)]] == [x.data_ptr() for x in inputs]
            assert [bound[k] for k in ("y", "z")[:len(second)]] == [t.data_ptr() for t in second]


def test_output_shape_comes_from_tensorrt_and_must_agree_with_the_record(tmp_path):
    plan, meta = make_record(inputs=[("x", "float32", ["n", 4])], outputs=[("y", "float32", ["2*n", 2])],
                             symbols={"n": (1, 2, 16)})
    trt = FakeTensorRT(output_shapes=lambda s: {"y": (2 * s["x"][0], 2)})
    (y,) = make_executor(tmp_path, trt).execute_engine([torch.randn(3, 4)], plan, meta)
    assert tuple(y.shape) == (6, 2)

    liar = FakeTensorRT(output_shapes=lambda s: {"y": (s["x"][0], 2)})
    with pytest.raises(trtpack.FormatError, match=r"TensorRT computes shape \(3, 2\) but the record says \(6, 2\)"):
        make_executor(tmp_path, liar).execute_engine([torch.randn(3, 4)], plan, meta)


def test_dynamic_shapes_are_set_per_call_on_the_same_context(tmp_path):
    trt = FakeTensorRT()
    ex = make_executor(tmp_path, trt)
    for batch in (1, 7, 64):
        (y,) = ex.execute_engine([torch.randn(batch, 3)], PLAN, META)
        assert y.shape == (batch, 3)
    assert [c[2] for c in trt.named("set_input_shape")] == [(1, 3), (7, 3), (64, 3)]
    assert len({c[3] for c in trt.named("set_input_shape")}) == 1
    assert len(trt.named("deserialize_cuda_engine")) == 1 and len(trt.named("create_execution_context")) == 1


def test_input_shapes_are_set_only_when_they_change_on_that_context(tmp_path):
    """TensorRT keeps a context's input shapes between runs: a repeated shape binds addresses and enqueues only,
    a new shape (or another stream's context) sets them again."""
    trt = FakeTensorRT()
    streams = iter([("s1", 1)] * 4 + [("s2", 2), ("s1", 1)])
    ex = make_executor(tmp_path, trt, stream=lambda device: next(streams))
    batches = (2, 2, 5, 2, 2, 2)  # s1: 2, 2, 5, 2; s2: 2; s1: 2 (already set to 2)
    for batch in batches:
        x = torch.randn(batch, 3)
        (y,) = ex.execute_engine([x], PLAN, META)
        torch.testing.assert_close(y, x)
    assert [c[2] for c in trt.named("set_input_shape")] == [(2, 3), (5, 3), (2, 3), (2, 3)]
    assert len(trt.named("execute_async_v3")) == len(batches)
    assert [c[1] for c in trt.named("set_tensor_address")].count("x") == len(batches)


def test_a_shape_outside_the_profile_says_the_built_ranges(tmp_path):
    trt = FakeTensorRT(profile={"x": [(1, 64), (3, 3)]})
    with pytest.raises(trtpack.IncompatibleEngineError, match=r"shape \(65, 3\), outside .*s0 in \[1, 64\]"):
        make_executor(tmp_path, trt).execute_engine([torch.randn(65, 3)], PLAN, META)


def test_wrong_dtype_and_failed_enqueue_are_clear_errors(tmp_path):
    with pytest.raises(trtpack.IncompatibleEngineError, match="input .x. must be float32 but is float16"):
        make_executor(tmp_path, FakeTensorRT()).execute_engine([torch.randn(2, 3).half()], PLAN, META)
    with pytest.raises(trtpack.TrtpackError, match="TensorRT failed to run engine 'trt_region_0'"):
        make_executor(tmp_path, FakeTensorRT(fail_execute=True)).execute_engine([torch.randn(2, 3)], PLAN, META)


def test_module_is_picked_by_the_records_backend_and_imported_lazily(tmp_path):
    rtx, full = FakeTensorRT("tensorrt_rtx"), FakeTensorRT("tensorrt", "10.13.0.35", runtime_cache=False)
    ex = make_executor(tmp_path, rtx, full)
    assert ex.imported == []
    ex.execute_engine([torch.randn(2, 3)], FULL_PLAN, FULL_META)
    assert ex.imported == ["tensorrt"]
    assert len(full.named("deserialize_cuda_engine")) == 1 and rtx.calls == []
    ex.execute_engine([torch.randn(2, 3)], PLAN, META)
    assert ex.imported == ["tensorrt", "tensorrt_rtx"]
    assert len(rtx.named("deserialize_cuda_engine")) == 1


def test_one_context_per_stream_and_one_deserialization_per_plan_and_device(tmp_path):
    trt = FakeTensorRT()
    streams = iter([("s1", 1), ("s2", 2), ("s1", 1)])
    guarded = []
    ex = make_executor(tmp_path, trt, stream=lambda device: next(streams), guarded=guarded)
    for _ in range(3):
        ex.execute_engine([torch.randn(2, 3)], PLAN, META)
    assert [c[1] for c in trt.named("execute_async_v3")] == [1, 2, 1]
    assert len(trt.named("create_execution_context")) == 2
    assert len(trt.named("deserialize_cuda_engine")) == 1

    for index in (0, 1, 0):
        ex.engine(PLAN, trtpack.runtime.shapes.engine_spec(META), torch.device("cuda", index))
    assert len(trt.named("deserialize_cuda_engine")) == 3  # cpu, cuda:0, cuda:1
    assert guarded.count("cuda:0") == 1 and guarded.count("cuda:1") == 1


def test_the_engine_cache_and_contexts_are_thread_safe(tmp_path):
    trt = FakeTensorRT(run_seconds=0.01)
    ex = make_executor(tmp_path, trt)  # every thread on the same stream: one shared context
    errors, results = [], []
    start = threading.Barrier(8)

    def worker(batch):
        try:
            start.wait()
            x = torch.randn(batch, 3)
            (y,) = ex.execute_engine([x], PLAN, META)
            results.append(torch.equal(x, y))
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(b,)) for b in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and results == [True] * 8
    assert len(trt.named("deserialize_cuda_engine")) == 1
    assert len(trt.named("create_execution_context")) == 1
    assert trt.concurrent_runs_seen == 0


def test_rtx_runtime_cache_is_shared_by_contexts_saved_and_reloaded_by_the_next_process(tmp_path):
    trt = FakeTensorRT()
    streams = iter([("s1", 1), ("s2", 2)])
    ex = make_executor(tmp_path, trt, stream=lambda device: next(streams))
    ex.execute_engine([torch.randn(2, 3)], PLAN, META)
    ex.execute_engine([torch.randn(2, 3)], PLAN, META)
    assert len({c[1] for c in trt.named("set_runtime_cache")}) == 1 and len(trt.named("set_runtime_cache")) == 2
    path = tmp_path / "cache" / f"{trtpack.record.decode_meta(META)['plan_sha256']}-cpu.bin"
    assert path.read_bytes() == b"+kernels"  # saved after the first run
    ex.save_runtime_caches()
    assert path.read_bytes() == b"+kernels"

    next_process = FakeTensorRT()
    make_executor(tmp_path, next_process).execute_engine([torch.randn(2, 3)], PLAN, META)
    assert next_process.named("cache.deserialize") == [("cache.deserialize", b"+kernels")]
    assert path.read_bytes() == b"+kernels+kernels"


def test_full_tensorrt_has_no_runtime_cache_file(tmp_path):
    full = FakeTensorRT("tensorrt", "10.13.0.35", runtime_cache=False)
    make_executor(tmp_path, full).execute_engine([torch.randn(2, 3)], FULL_PLAN, FULL_META)
    assert full.named("create_execution_context") == [("create_execution_context", False)]
    assert not (tmp_path / "cache").exists()


def test_cache_dir_defaults_under_home_and_follows_trtpack_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("TRTPACK_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert executor_mod.default_cache_dir() == str(tmp_path / ".cache" / "trtpack" / "rtx_runtime_cache")
    monkeypatch.setenv("TRTPACK_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert executor_mod.default_cache_dir() == str(tmp_path / "elsewhere" / "rtx_runtime_cache")


@pytest.mark.parametrize("capability, modules, usable, reason", [
    ((8, 6), [FakeTensorRT()], True, "usable"),
    ((9, 0), [FakeTensorRT()], False, "sm90, which TensorRT-RTX cannot run"),
    ((8, 6), [], False, "TensorRT-RTX is not installed here: pip install tensorrt-rtx"),
    ((8, 6), [FakeTensorRT(version="1.8.0.1")], False, "has TensorRT-RTX 1.8.0.1"),
    ((8, 6), [FakeTensorRT(fail_deserialize=True)], False, "could not deserialize engine 'trt_region_0'"),
])
def test_usable_verdict_on_a_cuda_device(tmp_path, capability, modules, usable, reason):
    ex = make_executor(tmp_path, *modules, capability=capability)
    with warnings.catch_warnings(record=True) as logged:
        warnings.simplefilter("always")
        verdict = ex.verdict(PLAN, META, torch.device("cuda", 0))
    assert len(logged) == (0 if usable else 1)
    assert verdict["usable"] is usable and reason in verdict["reason"]
    if modules and usable:
        assert len(modules[0].named("deserialize_cuda_engine")) == 1  # usable means it deserialized here


def test_machine_reports_importable_backends_and_the_device_capability(tmp_path):
    ex = make_executor(tmp_path, FakeTensorRT(), FakeTensorRT("tensorrt", "10.13.0.35"), capability=(12, 0))
    assert ex.machine(torch.device("cuda", 0)) == {
        "cuda": True, "sm": "sm120", "backends": {"tensorrt_rtx": "1.7.1.116", "tensorrt": "10.13.0.35"}}
    assert ex.machine(torch.device("cpu"))["cuda"] is False


def test_engine_usable_kernel_answers_a_cpu_bool_once_and_warns_once(tmp_path):
    trt = FakeTensorRT()
    ex = make_executor(tmp_path, trt)
    with pytest.warns(UserWarning, match="cannot run on cpu .*no CUDA device"):
        usable = ex.engine_usable([torch.randn(2, 3)], PLAN, META)
    assert usable.dtype == torch.bool and usable.dim() == 0 and usable.device.type == "cpu" and not usable.item()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not ex.engine_usable([torch.randn(4, 3)], PLAN, META).item()
    assert trt.calls == []  # never deserialized without a CUDA device


def test_inputs_on_two_devices_are_refused(tmp_path):
    ex = make_executor(tmp_path, FakeTensorRT())
    with pytest.raises(trtpack.IncompatibleEngineError, match="inputs must all be on one device, got cpu and meta"):
        ex.engine_usable([torch.randn(2, 3), torch.empty(2, 3, device="meta")], PLAN, META)
