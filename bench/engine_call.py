"""Host overhead of one engine call on a CUDA GPU, with the TensorRT STAND-IN (a test double) as an engine that
computes nothing: `torch.ops.trtpack.execute_engine` per call with the Python executor, or the C++ one
(`--executor cpp`: a stand-in build of libtorchtrt_runtime.so, tests/gpu/build_native.sh), against a bare `torch.ops`
call of a no-op CUDA op (aten::alias) measured in the same run. trtpack's own share is the null-context row (a
TensorRT context whose every call does nothing). Goals per engine call at batch 1, that row: Python <= 15 us,
C++ <= 8 us.

    TRTPACK_TENSORRT_STANDIN=1 python -m bench.engine_call [--profile] [--executor cpp|python]   (repository root)

Prints one line per measurement and, with --profile, the executor's cProfile top entries.
"""
import cProfile
import os
import pstats
import sys
import tempfile
import time

import torch

os.environ["TRTPACK_TENSORRT_STANDIN"] = "1"
os.environ.setdefault("TRTPACK_STANDIN_DIR", tempfile.mkdtemp(prefix="trtpack-standin-"))

from trtpack.runtime import executor, selection, short_path, standin  # noqa: E402
from tests.support import plans, records  # noqa: E402


def noop_engine(width=64):
    """An identity region registered with the stand-in, and a record for it (a synthetic plan: header + filler)."""
    plan_bytes = plans.rtx_plan_bytes(b"bench: a stand-in engine that computes nothing")
    plan, meta = records.make_record(inputs=[("x", "float32", ["b", width])], outputs=[("y", "float32", ["b", width])],
                                     symbols={"b": (1, 1, 64)}, plan_bytes=plan_bytes, name="noop")
    program = torch.export.export(torch.nn.Identity(), (torch.randn(2, width),),
                                  dynamic_shapes=({0: torch.export.Dim("b", min=1, max=64)},))
    standin.Registry().register(plan_bytes, program, [{"name": "x", "dtype": "float32", "min": [1, width],
                                                       "max": [64, width]}], [{"name": "y", "dtype": "float32"}])
    return plan, meta


class NullContext:
    """What trtpack's own overhead is measured against: a TensorRT context whose every call does nothing."""

    def __init__(self, width):
        self.width = width

    def set_input_shape(self, name, shape):
        self.shape = shape
        return True

    def get_tensor_shape(self, name):
        return self.shape

    def set_tensor_address(self, name, address):
        return True

    def execute_async_v3(self, stream):
        return True


def per_call_us(fn, calls=20000, repeats=5):
    for _ in range(1000):
        fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - start) / calls * 1e6)
    return best


GOALS_US = {"python": 15.0, "cpp": 8.0}
NULL_ROW = "execute_engine, null TensorRT context (trtpack's own share)"
DIRECT_ROW = "engine call of a loaded program's short path, null context"


def main(profile: bool, executor_name: str = "python") -> None:
    selection.use(executor_name)
    stand_in = standin.stand_in()
    stand_in.compute = False
    stand_in.keep_runs = False
    plan, meta = noop_engine()
    x = torch.randn(1, 64, device="cuda")
    plan_cuda = plan.cuda()
    null_plan, null_meta = plan.clone(), meta  # a second plan tensor: its own engine entry, given null contexts
    rows = {
        "bare torch.ops.aten.alias (no-op CUDA op)": lambda: torch.ops.aten.alias.default(x),
        "torch.empty(1, 64) on CUDA (one output allocation)": lambda: torch.empty((1, 64), device="cuda"),
        "execute_engine, plan on CPU": lambda: torch.ops.trtpack.execute_engine([x], plan, meta),
        "execute_engine, plan on CUDA": lambda: torch.ops.trtpack.execute_engine([x], plan_cuda, meta),
    }
    if executor_name == "python":
        ex = executor.executor()
        ex.execute_engine([x], null_plan, null_meta)
        loaded = ex.engine(null_plan, executor.shapes.engine_spec(null_meta), x.device)
        for slot in loaded._contexts.values():
            slot.context, slot.shapes = NullContext(64), None
        rows["Executor.execute_engine called directly (no dispatcher)"] = lambda: ex.execute_engine([x], plan, meta)
        rows[DIRECT_ROW] = lambda: short_path.engine_call([x], null_plan, null_meta)
    else:  # the C++ stand-in's null contexts: created while switched on, for the null plan's engine only
        from trtpack.runtime import standin_cpp

        standin_cpp.null_contexts(True)
        try:
            torch.ops.trtpack.execute_engine([x], null_plan, null_meta)
        finally:
            standin_cpp.null_contexts(False)
    rows[NULL_ROW] = lambda: torch.ops.trtpack.execute_engine([x], null_plan, null_meta)
    results = {name: per_call_us(fn) for name, fn in rows.items()}
    base = results["bare torch.ops.aten.alias (no-op CUDA op)"]
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, batch 1, one 1x64 fp32 input/output, "
          f"executor {executor_name} ({selection.native_executor() if executor_name == 'cpp' else 'trtpack.runtime'})")
    for name, us in results.items():
        print(f"  {name:<58} {us:7.2f} us/call  ({us / base:5.1f}x the bare op)")
    goal, us = GOALS_US[executor_name], results[NULL_ROW]
    print(f"goal <= {goal:g} us per engine call, {executor_name} executor's own share (null context): "
          f"{'MET' if us <= goal else 'MISSED'} ({us:.2f} us)")
    if DIRECT_ROW in results:
        print(f"  (a loaded .ep's engine call, no dispatcher: {results[DIRECT_ROW]:.2f} us)")
    assert not stand_in.errors, stand_in.errors
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(20000):
            torch.ops.trtpack.execute_engine([x], plan, meta)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    main("--profile" in sys.argv, sys.argv[sys.argv.index("--executor") + 1] if "--executor" in sys.argv else "python")
