"""Host time per call of whole loaded programs on a CUDA GPU, with the TensorRT STAND-IN (a test double) computing
each engine's region, with and without CUDA graphs, against the eager model and the eager model replayed from a
CUDA graph through torch (copy in, replay, clone out: what a graph call returning fresh tensors costs with torch's
copies; trtpack's graph does its copies itself, as memcpy nodes repointed per call), all measured in the same run. Rows
are calls per second as wall time (3,000 calls, then a wait for the GPU: the slower of host and GPU), and for the
graph rows also the host side alone (bursts of 16 calls not waiting for the GPU), which the <= 10 us goal is about,
and a static call (`cuda_graphs.static_call`: the caller's buffers, a replay without copies) against a bare replay. Also
the per-call input check: torch's pre-hook against trtpack's fast check on the same module.

    TRTPACK_TENSORRT_STANDIN=1 TRTPACK_GPU_FIXTURES=DIR python -m bench.graphs [--executor cpp|python]   (repo root)

Programs: the GPU fixtures `mlp` (1 engine), `split` (2 engines, a custom op between) and `chain` (3 engines, two
custom ops between); batch 4, fp32. "null context": every TensorRT context replaced by one that keeps the shapes but
enqueues nothing, so the row is trtpack's own host cost (plus the stand-in's shape bookkeeping).
"""
import itertools
import os
import statistics
import sys
import time
import warnings

import torch

os.environ["TRTPACK_TENSORRT_STANDIN"] = "1"

from tests.support import gpu_models as models  # noqa: E402

CALLS, REPEATS = 3000, 5
PROGRAMS = {"mlp": 1, "split": 2, "chain": 3}


def per_call_us(fn, calls=CALLS, repeats=REPEATS) -> float:
    """Median over `repeats` of the mean time of `calls` calls, synchronized at the end of each batch."""
    for _ in range(200):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(times)


def host_us(fn, burst=16, bursts=400) -> float:
    """Host (launch-side) time per call: the median over `bursts` of the mean time of `burst` calls timed without
    waiting for the GPU, which is idle at the start of each burst. per_call_us waits for the GPU at the end of every
    3,000 calls, so where the GPU takes longer per call than the host (a replay of small kernels can) it measures the
    GPU; this measures what the call costs the calling thread. 16 calls stay far below the GPU's queue of launches,
    so the host never waits for room in it. Each burst keeps its 16 results until it ends, as a caller using them
    would: a call's outputs are not the memory the previous call's outputs just gave back."""
    for _ in range(200):
        fn()
    times = []
    for _ in range(bursts):
        kept = []
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(burst):
            kept.append(fn())
        times.append((time.perf_counter() - start) / burst * 1e6)
        del kept
    torch.cuda.synchronize()
    return statistics.median(times)


def rotating(fn, x, count=17):
    """`fn` called on one of `count` copies of `x` in turn: each call's input lives at another address."""
    inputs = itertools.cycle([x.clone() for _ in range(count)])
    return lambda: fn(next(inputs))


def eager_in_a_graph(model, x):
    static_x = x.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.no_grad():
        for _ in range(3):
            model(static_x)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        static_y = model(static_x)

    def call():
        static_x.copy_(x)
        graph.replay()
        return static_y.clone()
    call.replay_only = graph.replay  # the floor of a static call: the caller's buffers, no copies
    return call


class NullContext:
    """Keeps the real context's shapes; sets no address and enqueues nothing."""

    def __init__(self, real):
        self.real = real

    def set_input_shape(self, name, shape):
        return self.real.set_input_shape(name, shape)

    def get_tensor_shape(self, name):
        return self.real.get_tensor_shape(name)

    def set_tensor_address(self, name, address):
        return True

    def execute_async_v3(self, stream):
        return True


def null_contexts():
    from trtpack.runtime import executor

    for loaded in executor.executor()._engines.values():
        for slot in loaded._contexts.values():
            if not isinstance(slot.context, NullContext):
                slot.context = NullContext(slot.context)


def pytorch_ops_alone_us(program, x) -> float:
    """Host time of the program's own PyTorch ops (every op between its engines, e.g. the custom ops; not the engine
    calls, not getitem), each called alone with the arguments it gets in a real call, summed: what any runtime of
    this program pays besides trtpack's own work."""
    import operator

    from trtpack.runtime import short_path

    calls = []

    class Recorder(torch.fx.Interpreter):
        def call_function(self, target, args, kwargs):
            if target not in (short_path.EXECUTE, short_path.engine_call, operator.getitem):
                calls.append((target, args, kwargs))
            return super().call_function(target, args, kwargs)

    with torch.no_grad():
        Recorder(program.runner.module).run(x)
        return sum(per_call_us(lambda: target(*args, **kwargs)) for target, args, kwargs in calls)


def engines_free_us(program, x) -> float:
    """The loaded program with every engine call answered from a cache of outputs (no executor): its short path, input
    check and PyTorch ops in context. The null-context row less this is what the engine calls themselves cost."""
    from trtpack.runtime import executor

    ex = executor.executor()
    outputs = {}

    def cached(inputs, plan, meta):
        if meta not in outputs:
            outputs[meta] = type(ex).execute_engine(ex, inputs, plan, meta)
        return outputs[meta]

    ex.execute_engine = cached
    try:
        with torch.no_grad():
            return per_call_us(lambda: program(x))
    finally:
        del ex.execute_engine


def input_check_rows(fixtures):
    import trtpack
    from torch.export import _unlift

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = trtpack.load(os.path.join(fixtures, "mlp.ep"), device="cuda")
    module = program.runner.module
    [fast] = [h for h in module._forward_pre_hooks.values() if getattr(h, "_trtpack_fast", False)]
    x = models.example_input(torch.float32, 4, "cuda")
    torch_us = per_call_us(lambda: _unlift._check_input_constraints_pre_hook(module, (x,), {}), 20000)
    fast_us = per_call_us(lambda: fast(module, (x,), {}), 20000)
    guards = "; torch's range check runs as guard code in the graph" if hasattr(module, "_guards_fn") else ""
    print(f"input check (mlp): torch's pre-hook {torch_us:.2f} us, trtpack's fast check {fast_us:.2f} us "
          f"({torch_us / fast_us:.1f}x){guards}")


def main(executor_name: str = "python") -> None:
    import trtpack
    from trtpack.runtime import standin

    fixtures = os.environ["TRTPACK_GPU_FIXTURES"]
    os.environ["TRTPACK_STANDIN_DIR"] = os.path.join(fixtures, "registry")
    stand_in = standin.stand_in()
    stand_in.keep_runs = False
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, {executor_name} executor, batch 4 fp32, "
          f"median of {REPEATS} x {CALLS} calls, host time per call (us)")
    input_check_rows(fixtures)
    results = {}
    for name, engines in PROGRAMS.items():
        factory, dtype = models.MODELS[name]
        model = factory()
        model.load_state_dict(torch.load(os.path.join(fixtures, f"{name}.weights.pt")))
        model = model.cuda()
        x = models.example_input(dtype, 4, "cuda")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plain = trtpack.load(os.path.join(fixtures, f"{name}.ep"), device="cuda", executor=executor_name)
            graphed = trtpack.load(os.path.join(fixtures, f"{name}.ep"), device="cuda", cuda_graphs=True,
                                   executor=executor_name)
        with torch.no_grad():
            assert torch.equal(graphed(x), plain(x))
            row = {"eager": per_call_us(lambda: model(x)),
                   "eager in a CUDA graph": per_call_us(eager_in_a_graph(model, x)),
                   "trtpack": per_call_us(lambda: plain(x)),
                   "trtpack, cuda_graphs=True": per_call_us(lambda: graphed(x)),
                   "eager in a CUDA graph, host side": host_us(eager_in_a_graph(model, x)),
                   "trtpack, cuda_graphs=True, host side": host_us(lambda: graphed(x)),
                   "trtpack, cuda_graphs=True, host side, another input tensor each call":
                       host_us(rotating(graphed, x)),
                   "(the same, calling module.cuda_graphs directly: no nn.Module call), host side":
                       host_us(lambda: graphed.cuda_graphs(x)),
                   "eager in a CUDA graph, replay only, host side": host_us(eager_in_a_graph(model, x).replay_only),
                   "trtpack static call, host side": host_us(graphed.cuda_graphs.static_call(x))}
        assert plain.short_path is not None and plain.short_path.calls > 0, "the plain calls took the full call"
        if executor_name == "cpp":  # the C++ stand-in's null contexts: a fresh load's engines, created while on
            from trtpack.runtime import standin_cpp

            standin_cpp.null_contexts(True)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    plain = trtpack.load(os.path.join(fixtures, f"{name}.ep"), device="cuda", executor="cpp")
                with torch.no_grad():
                    plain(x)
            finally:
                standin_cpp.null_contexts(False)
        else:
            null_contexts()
        row["trtpack, null context"] = per_call_us(lambda: plain(x))
        if executor_name == "python":
            row["engines answered from a cache"] = engines_free_us(plain, x)
            row["per engine call (null - cached)"] = (row["trtpack, null context"] -
                                                      row["engines answered from a cache"]) / engines
        row["its PyTorch ops alone"] = pytorch_ops_alone_us(plain, x)
        row["trtpack's own (null - ops)"] = row["trtpack, null context"] - row["its PyTorch ops alone"]
        info = graphed.cuda_graphs.info()
        # the ordinary calls' graph (its copies repointed) and the static call's
        assert info["captures"] == 2 and info["eager_calls"] == 0 and info["repointed"] == 1, info
        results[name] = row
        print(f"{name} ({engines} engine{'s' if engines > 1 else ''}):")
        base = row["eager"]
        for label, us in row.items():
            print(f"  {label:<46} {us:8.2f} us/call  ({us / base:5.2f}x eager)")
        null_goal = 15 + 8 * engines
        own = row["trtpack's own (null - ops)"]
        print(f"  goal without graphs (trtpack's own: null context less the program's PyTorch ops) <= {null_goal} us: "
              f"{'MET' if own <= null_goal else 'MISSED'} ({own:.2f} us); goal with graphs <= 10 us: "
              f"{'MET' if row['trtpack, cuda_graphs=True, host side'] <= 10 else 'MISSED'} (host side "
              f"{row['trtpack, cuda_graphs=True, host side']:.2f} us, another input tensor each call "
              f"{row['trtpack, cuda_graphs=True, host side, another input tensor each call']:.2f} us; GPU-bound rate "
              f"{row['trtpack, cuda_graphs=True']:.2f} us); a static call (no copies) host side "
              f"{row['trtpack static call, host side']:.2f} us: {'MET' if row['trtpack static call, host side'] <= 10 else 'MISSED'}")
    assert not stand_in.errors, stand_in.errors[-3:]
    return results


if __name__ == "__main__":
    main(sys.argv[sys.argv.index("--executor") + 1] if "--executor" in sys.argv else "python")
    sys.stdout.flush()
