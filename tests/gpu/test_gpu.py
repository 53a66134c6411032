"""The engine path on a CUDA GPU, with the computing TensorRT STAND-IN (trtpack.runtime.standin, a test double)
in place of TensorRT: every artifact compiled with fallback=False, so the TensorRT path must run, never a reference.
Real TensorRT execution is NOT tested here (no machine we have can run an engine); the stand-in proves everything
around it: where plans live, addresses, streams, shapes, dtypes, threads.

Fixtures (compiled where TensorRT-RTX builds) come from $TRTPACK_GPU_FIXTURES, else are made here by
make_fixtures.py. Tolerances against eager on CUDA: the stand-in runs the same region ops, so fp32 1e-5, fp16/bf16
one ulp-ish (2e-3 / 1.6e-2 relative).
"""
import json
import operator
import os
import subprocess
import sys
import threading

import pytest
import torch

os.environ["TRTPACK_TENSORRT_STANDIN"] = "1"  # before trtpack registers its CUDA kernels

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA device (this machine has none); runs on GPU machines only")

from tests.support import gpu_models as models, python_env  # noqa: E402

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float16: dict(rtol=2e-3, atol=2e-3),
       torch.bfloat16: dict(rtol=1.6e-2, atol=1.6e-2)}


@pytest.fixture(scope="session")
def fixtures(tmp_path_factory):
    folder = os.environ.get("TRTPACK_GPU_FIXTURES")
    if not folder:
        folder = str(tmp_path_factory.mktemp("gpu_fixtures"))
        subprocess.run([sys.executable, "-m", "tests.gpu.make_fixtures", folder], env=python_env.env(), check=True)
    os.environ["TRTPACK_STANDIN_DIR"] = os.path.join(folder, "registry")
    return folder


@pytest.fixture(scope="session")
def trt(fixtures):
    from trtpack.runtime import standin

    assert standin.requested()  # both executors' TensorRT is this stand-in (the C++ one through standin_cpp)
    return standin.stand_in()


EXECUTORS = ("python", "cpp")  # every case runs with both TensorRT executors (trtpack.runtime.selection)
_executor = {"name": None}


@pytest.fixture(params=EXECUTORS, autouse=True)
def executor(request, fixtures, monkeypatch):
    """Runs the test with this executor: `load` passes it, and subprocesses inherit TRTPACK_EXECUTOR. The C++ one needs
    libtorchtrt_runtime.so built with it (tests/gpu/build_native.sh with TRTPACK_STANDIN_TRT_HEADERS)."""
    from trtpack.runtime import selection

    refusal = selection.available()[request.param]
    if refusal:
        pytest.skip(f"executor={request.param!r} cannot run here: {refusal}")
    selection.use(request.param)
    monkeypatch.setenv("TRTPACK_EXECUTOR", request.param)
    _executor["name"] = request.param
    yield request.param
    _executor["name"] = None


def eager(fixtures, name, device="cuda"):
    factory, dtype = models.MODELS[name]
    model = factory()
    model.load_state_dict(torch.load(os.path.join(fixtures, f"{name}.weights.pt")))
    return model.to(device), dtype


def load(fixtures, name, **kwargs):
    import trtpack

    return trtpack.load(os.path.join(fixtures, name), executor=_executor["name"], **kwargs)


def test_a_compiled_program_moved_with_to_cuda_runs_its_engine_with_the_plan_on_cuda(fixtures, trt):
    program = load(fixtures, "mlp.ep")
    program.to("cuda")
    (plan,) = [b for n, b in program.named_buffers() if n.endswith("plan")]
    assert plan.device.type == "cuda"  # the plan follows the module's buffers (README: where the plan lives)
    model, dtype = eager(fixtures, "mlp")
    before = len(trt.runs)
    for batch in (1, 4, 16):  # the profile's min, opt, max
        x = models.example_input(dtype, batch, "cuda")
        y = program(x)
        torch.testing.assert_close(y, model(x), **TOL[dtype])
        run = trt.runs[-1]
        assert x.data_ptr() in run["addresses"].values() and y.data_ptr() in run["addresses"].values()
        assert run["stream"] == torch.cuda.current_stream().cuda_stream and run["device"] == "cuda:0"
    assert len(trt.runs) == before + 3
    # no copy of the plan per call: after the first call, calls move no bytes between host and device
    x = models.example_input(dtype, 4, "cuda")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            program(x)
        torch.cuda.synchronize()
    copies = [e.name for e in prof.events() if "Memcpy" in e.name and ("DtoH" in e.name or "HtoD" in e.name)]
    assert copies == []


def test_a_fallback_program_takes_the_engine_branch_on_cuda_and_the_reference_on_cpu(fixtures, trt):
    from trtpack.runtime import branches

    program = load(fixtures, "mlp_fallback.ep").to("cuda")
    (decided,) = [m for m in program.modules() if isinstance(m, branches.DecidedBranch)]
    model, dtype = eager(fixtures, "mlp")
    before = len(trt.runs)
    for batch in (1, 4, 16):  # the first call decides; the next two run the graph with the engine branch inlined
        x = models.example_input(dtype, batch, "cuda")
        torch.testing.assert_close(program(x), model(x), **TOL[dtype])
    assert len(trt.runs) == before + 3 and decided.chosen() == {torch.device("cuda", 0): "engine"}
    program.to("cpu")  # engine_usable is false on the CPU: the reference branch runs there
    x = models.example_input(dtype, 4, "cpu")
    torch.testing.assert_close(program(x), model.cpu()(x), **TOL[dtype])
    assert len(trt.runs) == before + 3 and decided.chosen()[torch.device("cpu")] == "reference"


def test_ep_loaded_on_cuda_in_a_fresh_process(fixtures, tmp_path):
    from trtpack.cli import roundtrip

    model, dtype = eager(fixtures, "mlp", "cpu")
    x = models.example_input(dtype, 7)
    case = str(tmp_path / "case.safetensors")
    roundtrip.write_case(case, [x], {}, model.cuda()(x.cuda()).cpu())
    out = subprocess.run([sys.executable, "-m", "trtpack.cli.roundtrip", os.path.join(fixtures, "mlp.ep"), case, "cuda"],
                         env=python_env.env(), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["ok"] and result["ran"] == "tensorrt" and result["max_abs_diff"] <= 1e-5, result


def test_engine_file_via_load_and_trtpack_run(fixtures, trt):
    import trtpack

    engine = load(fixtures, "mlp.engine")
    model, dtype = eager(fixtures, "mlp")
    x = models.example_input(dtype, 5, "cuda")
    torch.testing.assert_close(engine(x), model(x), **TOL[dtype])  # the plan on the CPU, the inputs on CUDA
    engine.to("cuda")  # and the plan on CUDA
    torch.testing.assert_close(engine(x), model(x), **TOL[dtype])
    with pytest.raises(trtpack.IncompatibleEngineError, match=r"outside what it was built for \(s0 in \[1, 16\]\)"):
        engine(models.example_input(dtype, 17, "cuda"))
    assert "outside the profile" in trt.errors[-1]
    code, stdout, stderr = python_env.run_cli("run", os.path.join(fixtures, "mlp.engine"))
    assert code == 0 and "iterations via tensorrt" in stdout, stdout + stderr[-3000:]


def test_out_of_range_input_of_an_ep_is_an_incompatible_engine_error(fixtures):
    import trtpack

    program = load(fixtures, "mlp.ep", device="cuda")
    with pytest.raises(trtpack.IncompatibleEngineError, match="16"):
        program(models.example_input(torch.float32, 17, "cuda"))


def test_an_engines_context_sets_shapes_again_after_a_new_shape_and_after_a_refusal(fixtures, trt):
    """Both executors set a context's input shapes (and check TensorRT's output shapes) only when a call's signature
    differs from the last run's on that context. A change of batch, a shape TensorRT refuses between two good calls
    (the engine called straight, past the program's own input check), and an earlier batch again must each run with
    their own shapes."""
    import trtpack

    program = load(fixtures, "chain.ep", device="cuda")
    model, dtype = eager(fixtures, "chain")
    graph = program.runner.module.graph
    first = next(n for n in graph.nodes if n.target is torch.ops.trtpack.execute_engine.default)
    plan, meta = operator.attrgetter(first.args[1].target)(program.runner.module), first.args[2]  # a dotted path
    for batch in (4, 4, 2, 17, 4, 1, 16, 17, 16):
        x = models.example_input(dtype, batch, "cuda")
        if batch > models.BATCH["max"]:
            with pytest.raises(trtpack.IncompatibleEngineError, match="16"):
                program(x)
            with pytest.raises(RuntimeError, match="outside what it was built for"):
                torch.ops.trtpack.execute_engine([x], plan, meta)
            assert "outside the profile" in trt.errors[-1]  # refused by (the stand-in's) TensorRT itself
            continue
        before = len(trt.runs)
        y = program(x)
        assert len(trt.runs) == before + 3 and y.shape == (batch, 32)
        torch.testing.assert_close(y, model(x), **TOL[dtype])


def test_graph_split_by_a_custom_op_runs_two_engines_with_pytorch_between_on_cuda(fixtures, trt):
    program = load(fixtures, "split.ep", device="cuda")
    model, dtype = eager(fixtures, "split")
    x = models.example_input(dtype, 3, "cuda")
    expected = model(x)
    models.SCALE_CALLS.clear()
    before = len(trt.runs)
    torch.testing.assert_close(program(x), expected, **TOL[dtype])
    assert models.SCALE_CALLS == ["cuda:0"]
    engines = [r["engine"] for r in trt.runs[before:]]
    assert len(engines) == 2 and len(set(engines)) == 2


def test_a_loaded_eps_plain_calls_take_the_short_path_with_the_same_results(fixtures, trt, executor, monkeypatch):
    from trtpack.runtime import short_path

    program = load(fixtures, "split.ep", device="cuda")
    through_op = []
    op = short_path.EXECUTE
    monkeypatch.setattr(short_path, "EXECUTE", lambda *args: through_op.append(1) or op(*args))
    model, dtype = eager(fixtures, "split")
    for batch in (3, 3, 5):
        x = models.example_input(dtype, batch, "cuda")
        before = len(trt.runs)
        y = program(x)
        assert len(trt.runs) == before + 2  # both engines ran (through the stand-in)
        assert torch.equal(y, program.runner(x))  # the full call: pytree, hooks, the dispatcher
        torch.testing.assert_close(y, model(x), **TOL[dtype])
    assert program.short_path.calls == 3
    # the Python executor is called straight from the program; the C++ one through its op
    assert len(through_op) == (6 if executor == "cpp" else 0)


def test_the_cpp_stand_ins_null_contexts_keep_each_engines_own_shapes(fixtures, trt, executor):
    """Found by bench.graphs on the H200: the C++ stand-in's null contexts (the benchmarks' baseline) answered every
    output with input 0's shape, so the executor refused `split`'s second engine ([4,64] against the record's
    [4,32]). Null contexts keep real shape bookkeeping and enqueue nothing."""
    if executor != "cpp":
        pytest.skip("null contexts belong to the C++ face of the stand-in; the Python benchmarks wrap contexts instead")
    from trtpack.runtime import standin_cpp

    x = models.example_input(torch.float32, 4, "cuda")
    standin_cpp.null_contexts(True)
    try:
        program = load(fixtures, "chain.ep", device="cuda")  # its contexts are created now, while null
        before = len(trt.runs)
        with torch.no_grad():
            y = program(x)
            y = program(x)
        torch.cuda.synchronize()
    finally:
        standin_cpp.null_contexts(False)
    assert y.shape == (4, 32) and y.dtype == torch.float32 and y.is_cuda
    assert len(trt.runs) == before  # three engines per call, none enqueued


def test_a_fallback_program_takes_the_short_path_on_cuda_once_decided(fixtures, trt):
    program = load(fixtures, "mlp_fallback.ep", device="cuda")
    model, dtype = eager(fixtures, "mlp")
    program(models.example_input(dtype, 2, "cuda"))  # the full call decides: the engine branch on CUDA
    for batch in (2, 7):
        x = models.example_input(dtype, batch, "cuda")
        before = len(trt.runs)
        y = program(x)
        assert len(trt.runs) == before + 1  # the engine ran, not the reference
        assert torch.equal(y, program.runner(x))
        torch.testing.assert_close(y, model(x), **TOL[dtype])
    assert program.short_path.calls == 2


@pytest.mark.parametrize("layout", ["non_contiguous", "sliced"])
def test_non_contiguous_and_sliced_inputs(fixtures, trt, layout):
    program = load(fixtures, "mlp.ep", device="cuda")
    model, dtype = eager(fixtures, "mlp")
    if layout == "non_contiguous":
        x = torch.randn(64, 6, device="cuda").t()
        assert not x.is_contiguous()
    else:
        x = torch.randn(9, 64, device="cuda")[3:]
        assert x.storage_offset() == 3 * 64
    torch.testing.assert_close(program(x), model(x), **TOL[dtype])
    if layout == "sliced":  # contiguous already: TensorRT reads it in place, at its offset
        assert x.data_ptr() in trt.runs[-1]["addresses"].values()


@pytest.mark.parametrize("name", ["mlp_fp16", "mlp_bf16"])
def test_half_precision_programs(fixtures, trt, name):
    program = load(fixtures, f"{name}.ep", device="cuda")
    model, dtype = eager(fixtures, name)
    x = models.example_input(dtype, 4, "cuda")
    y = program(x)
    assert y.dtype == dtype
    torch.testing.assert_close(y, model(x), **TOL[dtype])


def test_two_streams_each_get_their_own_runs(fixtures, trt):
    program = load(fixtures, "mlp.ep", device="cuda")
    model, dtype = eager(fixtures, "mlp")
    streams = [torch.cuda.Stream(), torch.cuda.Stream()]
    xs = [models.example_input(dtype, b, "cuda") for b in (2, 3)]
    torch.cuda.synchronize()
    before = len(trt.runs)
    ys = []
    for s, x in zip(streams, xs):
        with torch.cuda.stream(s):
            ys.append(program(x))
    torch.cuda.synchronize()
    assert [r["stream"] for r in trt.runs[before:]] == [s.cuda_stream for s in streams]
    for x, y in zip(xs, ys):
        torch.testing.assert_close(y, model(x), **TOL[dtype])


def test_eight_threads_share_one_loaded_program(fixtures, trt):
    program = load(fixtures, "mlp.ep", device="cuda")
    model, dtype = eager(fixtures, "mlp")
    errors, barrier = [], threading.Barrier(8)

    def worker(batch):
        try:
            stream = torch.cuda.Stream()
            barrier.wait()
            with torch.cuda.stream(stream):
                for _ in range(20):
                    x = models.example_input(dtype, batch, "cuda")
                    y = program(x)
                    stream.synchronize()
                    torch.testing.assert_close(y, model(x), **TOL[dtype])
        except Exception as e:  # reported below
            errors.append(e)

    before = len(trt.runs)
    threads = [threading.Thread(target=worker, args=(b,)) for b in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    runs = trt.runs[before:]
    assert len(runs) == 160 and len({r["thread"] for r in runs}) == 8 and len({r["stream"] for r in runs}) == 8


def test_the_stand_in_refuses_a_host_address_for_a_cuda_engine(fixtures, trt, executor):
    from trtpack.runtime import standin

    if executor == "cpp":  # the C++ face, through its own TensorRT API (the executor never passes such addresses)
        return _cpp_face_refusals(fixtures, trt)

    engine = load(fixtures, "mlp.engine")
    runtime = trt.Runtime(trt.Logger())
    cuda_engine = runtime.deserialize_cuda_engine(engine.engines[0].plan.numpy())
    context = cuda_engine.create_execution_context()
    names = [cuda_engine.get_tensor_name(i) for i in range(cuda_engine.num_io_tensors)]
    x, y = torch.randn(2, 64, device="cuda"), torch.empty(2, 64)  # the output in host memory
    assert context.set_input_shape(names[0], (2, 64))
    context.set_tensor_address(names[0], x.data_ptr())
    context.set_tensor_address(names[1], y.data_ptr())
    assert not context.execute_async_v3(torch.cuda.current_stream().cuda_stream)
    assert "is in host memory, the engine is on cuda:0" in trt.errors[-1]
    assert standin.device_of_address(x.data_ptr()) == 0 and standin.device_of_address(y.data_ptr()) is None


def _cpp_face_refusals(fixtures, trt):
    from trtpack.runtime import standin, standin_cpp

    plan = bytes(load(fixtures, "mlp.engine").engines[0].plan.numpy())
    x, y, host = torch.randn(2, 64, device="cuda"), torch.empty(2, 64, device="cuda"), torch.empty(2, 64)
    stream = torch.cuda.current_stream().cuda_stream
    assert standin_cpp.probe(plan, (2, 64), x.data_ptr(), host.data_ptr(), stream) == 0
    assert "is in host memory, the engine is on cuda:0" in trt.errors[-1]
    assert standin_cpp.probe(plan, (2, 64), x.data_ptr(), 0, stream) == 0
    assert "no address set for" in trt.errors[-1]
    assert standin_cpp.probe(plan, (17, 64), x.data_ptr(), y.data_ptr(), stream) == 0
    assert "outside the profile" in trt.errors[-1]
    other = plan[:-1] + bytes([plan[-1] ^ 1])
    assert standin_cpp.probe(other, (2, 64), x.data_ptr(), y.data_ptr(), stream) == -1
    assert "no registered engine has these plan bytes" in trt.errors[-1]
    before = len(trt.runs)
    assert standin_cpp.probe(plan, (2, 64), x.data_ptr(), y.data_ptr(), stream) == 1
    torch.cuda.synchronize()
    assert len(trt.runs) == before + 1 and set(trt.runs[-1]["addresses"].values()) == {x.data_ptr(), y.data_ptr()}
    model, _ = eager(fixtures, "mlp")
    torch.testing.assert_close(y, model(x), **TOL[torch.float32])  # computed through the raw addresses


def test_a_record_whose_dtype_differs_from_the_plan_is_refused_by_the_executor(fixtures, trt):
    import trtpack
    from trtpack import record

    (engine,) = load(fixtures, "mlp.engine").engines
    meta = record.decode_meta(engine.meta)
    meta["inputs"][0]["dtype"] = meta["outputs"][0]["dtype"] = "float16"
    altered = record.encode_meta(meta)
    x = torch.randn(2, 64, device="cuda", dtype=torch.float16)
    buffer = torch.empty(engine.plan.numel() + 1, dtype=torch.uint8)  # at an odd address: no engine cached there
    buffer[1:] = engine.plan
    with pytest.raises((trtpack.TrtpackError, RuntimeError), match="is float16 in the record but"):
        torch.ops.trtpack.execute_engine([x], buffer[1:], altered)


def _probe_plain_aoti(tmp_path) -> str:
    """'' if a plain torch._inductor CUDA package (no trtpack in it) compiles and loads here, else why not."""
    code = ("import torch\n"
            "m = torch.nn.Linear(4, 4).cuda(); x = torch.randn(2, 4, device='cuda')\n"
            "p = torch._inductor.aoti_compile_and_package(torch.export.export(m, (x,)), package_path='plain.pt2')\n"
            "r = torch._inductor.aoti_load_package(p); torch.testing.assert_close(r(x), m(x)); print('plain ok')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # no trtpack
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    if out.returncode == 0:
        return ""
    died = f"signal {-out.returncode}" if out.returncode < 0 else f"exit {out.returncode}"
    tail = (out.stderr.strip().splitlines() or ["(no message)"])[-1][:200]
    return (f"AOTInductor on torch {torch.__version__} here cannot compile+load even a plain torch._inductor CUDA "
            f"package without trtpack ({died}: {tail})")


def test_pt2_for_cuda_loaded_with_trtpack_load(fixtures, tmp_path):
    import inspect as pyinspect

    import trtpack

    reason = _probe_plain_aoti(tmp_path)
    if reason:
        pytest.skip(reason)
    program = load(fixtures, "mlp.ep", device="cuda")
    model, dtype = eager(fixtures, "mlp")
    x = models.example_input(dtype, 4, "cuda")
    path = str(tmp_path / "mlp.pt2")
    trtpack.save(torch.export.export(program.module, (x,), dynamic_shapes=models.dynamic_shapes()), path)
    trust = {"trust_native_code": True} if "trust_native_code" in pyinspect.signature(trtpack.load).parameters else {}
    loaded = trtpack.load(path, **trust)
    y = loaded(x)
    torch.testing.assert_close(y[0] if isinstance(y, (list, tuple)) else y, model(x), **TOL[dtype])


# -- input checks and CUDA graphs (issue 24) -----------------------------------------------------------------------
FIXTURE_PROGRAMS = ["mlp", "mlp_fp16", "mlp_bf16", "split", "chain", "mlp_fallback"]


def _quiet_load(fixtures, name, **kwargs):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load(fixtures, name, **kwargs)


@pytest.mark.parametrize("name", FIXTURE_PROGRAMS)
def test_the_fast_input_check_agrees_with_torchs_on_every_fixture(fixtures, name):
    from torch.export._unlift import _check_input_constraints_for_module

    from trtpack.runtime import input_check

    module = _quiet_load(fixtures, f"{name}.ep").runner.module
    [fast] = [h for h in module._forward_pre_hooks.values() if getattr(h, "_trtpack_fast", False)]
    dtype = models.MODELS.get(name, models.MODELS["mlp"])[1]
    cases = [torch.zeros(b, 64, dtype=dtype) for b in range(0, 20)] + [
        torch.zeros(4, 63, dtype=dtype), torch.zeros(4, 64, 1, dtype=dtype), torch.zeros(64, dtype=dtype),
        torch.zeros(4, 64, dtype=torch.float64)]
    for x in cases:
        try:
            _check_input_constraints_for_module(module, (x,), {})
            theirs = True
        except RuntimeError:
            theirs = False
        assert fast.check.accepts((x,), {}) == theirs, (name, tuple(x.shape), x.dtype)
    assert isinstance(fast.check, input_check.InputCheck)


@pytest.mark.parametrize("name", FIXTURE_PROGRAMS)
def test_cuda_graphs_outputs_identical_to_eager_and_a_new_shape_is_captured(fixtures, trt, name):
    eager_program = _quiet_load(fixtures, f"{name}.ep", device="cuda")
    graphed = _quiet_load(fixtures, f"{name}.ep", device="cuda", cuda_graphs=True)
    dtype = models.MODELS.get(name, models.MODELS["mlp"])[1]
    kept = []
    for step, batch in enumerate((4, 4, 1, 16, 4, 1, 16)):
        x = models.example_input(dtype, batch, "cuda")
        expected = eager_program(x)
        before = len(trt.runs)
        y = graphed(x)
        if step in (1, 4, 5, 6):  # a replay: no engine is called from Python
            assert len(trt.runs) == before, (name, step)
        assert torch.equal(y, expected), (name, batch, (y - expected).abs().max().item())
        kept.append((y, expected))
    info = graphed.cuda_graphs.info()
    assert info["captures"] == 3 and info["replays"] == 7 and info["eager_calls"] == 0, info
    assert info["repointed"] == 3, info  # every graph reads its input and writes its outputs through its own copies
    calls = [graph.call for graph in graphed.cuda_graphs._graphs.values()]
    assert all(call.launch is not None for call in calls if call.single)  # one in, one out: the native launch
    x = models.example_input(dtype, 16, "cuda").transpose(0, -1).contiguous().transpose(0, -1)  # another layout
    assert not x.is_contiguous() and torch.equal(graphed(x), eager_program(x.contiguous()))
    assert graphed.cuda_graphs.info()["captures"] == 3  # the same signature (shapes, dtypes), replayed
    same = models.example_input(dtype, 4, "cuda")
    for _ in range(3):  # one input tensor, filled anew: a replay reads it where it is
        same.normal_()
        kept.append((graphed(same), eager_program(same)))
    torch.cuda.synchronize()
    for y, expected in kept:  # results kept across later calls are never written again
        assert torch.equal(y, expected), name


@pytest.mark.parametrize("name", FIXTURE_PROGRAMS)
def test_a_static_call_replays_new_inputs_written_in_place_into_the_same_outputs(fixtures, trt, name):
    eager_program = _quiet_load(fixtures, f"{name}.ep", device="cuda")
    graphed = _quiet_load(fixtures, f"{name}.ep", device="cuda", cuda_graphs=True)
    dtype = models.MODELS.get(name, models.MODELS["mlp"])[1]
    call = graphed.cuda_graphs.static_call(models.example_input(dtype, 4, "cuda"))
    assert call.captured
    out = call.outputs
    for seed in range(3):
        torch.manual_seed(seed)
        x = models.example_input(dtype, 4, "cuda") * (seed + 1)
        call.args[0].copy_(x)
        before = len(trt.runs)
        assert call() is out and len(trt.runs) == before  # a replay: no engine is called from Python
        expected = eager_program(x)
        assert torch.equal(out, expected), (name, seed, (out - expected).abs().max().item())
        kept = out.clone()
        graphed(x * 2)  # an ordinary call of the same signature leaves the static call's buffers alone
        assert torch.equal(out, kept)


def test_cuda_graphs_launch_natively_unless_the_program_draws_random_numbers():
    """A graph with one input and one output repoints and launches in one native call (graph_nodes.launch_of); one
    that draws random numbers replays through torch, which advances the generator for each replay, so every call
    draws anew as the eager program does."""
    from trtpack.runtime import cuda_graphs

    class Noisy(torch.nn.Module):
        def forward(self, x):
            return x + torch.rand_like(x)

    linear = cuda_graphs.attach(torch.nn.Linear(64, 32).cuda(), True)
    noisy = cuda_graphs.attach(Noisy(), True)
    x = torch.randn(4, 64, device="cuda")
    with torch.no_grad():
        kept = [(linear(x * i), noisy(x)) for i in range(4)]
        torch.cuda.synchronize()
        for i, (y, _) in enumerate(kept):
            torch.testing.assert_close(y, torch.nn.functional.linear(x * i, linear.weight, linear.bias))
    [graph] = linear.cuda_graphs._graphs.values()
    assert graph.call.launch is not None and linear.cuda_graphs.info()["replays"] == 4
    [graph] = noisy.cuda_graphs._graphs.values()
    assert graph.call.launch is None and noisy.cuda_graphs.info()["replays"] == 4
    draws = [z - x for _, z in kept]
    assert all(((d >= 0) & (d < 1)).all() for d in draws)
    assert len({tuple(d[0, :4].tolist()) for d in draws}) == 4  # new numbers on every call


def test_cuda_graphs_eight_threads_share_one_loaded_program(fixtures, trt):
    program = _quiet_load(fixtures, "split.ep", device="cuda", cuda_graphs=True)
    model, dtype = eager(fixtures, "split")
    errors, barrier = [], threading.Barrier(8)

    def worker(batch):
        try:
            stream = torch.cuda.Stream()
            barrier.wait()
            with torch.cuda.stream(stream):
                for _ in range(30):
                    x = models.example_input(dtype, batch, "cuda")
                    y = program(x)
                    stream.synchronize()
                    torch.testing.assert_close(y, model(x), **TOL[dtype])
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(1 + i % 4,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    info = program.cuda_graphs.info()
    assert info["captures"] == 4 and info["replays"] == 240 and info["eager_calls"] == 0, info
    assert info["repointed"] == 4, info


def test_cuda_graphs_see_a_weight_change_and_a_move_drops_them(fixtures, trt):
    program = _quiet_load(fixtures, "chain.ep", device="cuda", cuda_graphs=True)
    model, dtype = eager(fixtures, "chain")
    x = models.example_input(dtype, 4, "cuda")
    torch.testing.assert_close(program(x), model(x), **TOL[dtype])
    [(key, weight)] = [(k, b) for k, b in program.named_buffers() if k.endswith("weight") and b.dtype == dtype]
    with torch.no_grad():  # in place (same memory): the captured graph reads it
        weight.mul_(2)
        model[5].weight.mul_(2)
    torch.testing.assert_close(program(x), model(x), **TOL[dtype])
    assert program.cuda_graphs.info()["captures"] == 1
    state = dict(program.state_dict())
    state[key] = torch.full_like(weight, 0.25)
    program.load_state_dict(state)  # drops the graphs; the next call captures with the loaded weight
    with torch.no_grad():
        model[5].weight.fill_(0.25)
    torch.testing.assert_close(program(x), model(x), **TOL[dtype])
    program.to("cpu").to("cuda")  # a move drops the graphs too
    torch.testing.assert_close(program(x), model(x), **TOL[dtype])
    info = program.cuda_graphs.info()
    assert info["captures"] == 3 and info["invalidations"] == 2, info


def test_cuda_graphs_run_eagerly_and_say_why_once(fixtures):
    import warnings

    from trtpack.runtime import cuda_graphs

    class Syncs(torch.nn.Module):  # .item() synchronizes: it cannot be captured
        def forward(self, x):
            return x * float(x.sum().item() > 0)

    module = cuda_graphs.attach(Syncs(), True)
    program = _quiet_load(fixtures, "mlp_fallback.ep", cuda_graphs=True)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for _ in range(3):
            x = torch.randn(4, 64, device="cuda")
            torch.testing.assert_close(module(x), Syncs()(x))
            program(x.cpu())  # inputs on the CPU: the reference branch, eagerly
    said = [str(w.message) for w in seen if "CUDA graphs" in str(w.message)]
    assert len(said) == 2 and all("\n" not in s for s in said), said
    assert "could not be captured" in said[0] and "on the CPU" in said[1], said
    assert module.cuda_graphs.info()["eager_calls"] == 3 and module.cuda_graphs.info()["off"]
