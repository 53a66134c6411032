"""One loaded program called from 8 threads at once; the record/meta caches and the executor's engine cache under
a stress loop. CPU only: the program's engine cannot run here, so its PyTorch fallback computes the results; the
executor runs against FakeTensorRT (a fake runtime module, NOT TensorRT)."""
import contextlib
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

import trtpack
from fuzz import programs
from tests.support.fake_tensorrt_runtime import FakeTensorRT
from trtpack import record
from trtpack.runtime import shapes
from trtpack.runtime.executor import Executor

THREADS = 8
ROUNDS = int(os.environ.get("TRTPACK_STRESS_ROUNDS", "200"))


def hammer(fn, rounds=ROUNDS):
    """Runs fn(thread, round) from THREADS threads released together; returns every result, re-raising any error."""
    start = threading.Barrier(THREADS)

    def worker(thread):
        start.wait()
        return [fn(thread, i) for i in range(rounds)]

    with ThreadPoolExecutor(THREADS) as pool:
        return [f.result() for f in [pool.submit(worker, t) for t in range(THREADS)]]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("program") / "program.ep")
    trtpack.save(programs.exported(), path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return trtpack.load(path)


def test_one_loaded_program_called_from_8_threads_gives_each_its_own_correct_result(loaded):
    inputs = {(t, i): programs.example_input(batch=1 + (t + i) % 32, seed=t * 1000 + i)
              for t in range(THREADS) for i in range(ROUNDS // 4)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = hammer(lambda t, i: (t, i, loaded(inputs[(t, i)])), rounds=ROUNDS // 4)
    for per_thread in results:
        for t, i, out in per_thread:
            torch.testing.assert_close(out, programs.reference(inputs[(t, i)]))


class WithParameters(torch.nn.Module):
    """A fallback program whose reference branch has a Linear layer: parameters that require grad."""

    def __init__(self, plan, meta):
        super().__init__()
        self.register_buffer("plan", plan)
        self.meta = meta
        self.linear = torch.nn.Linear(programs.FEATURES, programs.FEATURES)

    def forward(self, x):
        usable = torch.ops.trtpack.engine_usable([x], self.plan, self.meta)
        return torch.cond(usable, lambda x: torch.ops.trtpack.execute_engine([x], self.plan, self.meta)[0],
                          lambda x: self.linear(x).relu(), (x,))


@pytest.mark.parametrize("grad", [True, False])
def test_program_with_parameters_called_from_8_threads_with_grad_enabled_or_not(grad, tmp_path):
    plan = programs.plan_tensor()
    module = WithParameters(plan, programs.meta_for(plan))
    program = torch.export.export(module, (torch.randn(2, programs.FEATURES),),
                                  dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=32)}})
    path = str(tmp_path / "params.ep")
    trtpack.save(program, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = trtpack.load(path)
    assert any(p.requires_grad for p in loaded.parameters())
    inputs = {(t, i): programs.example_input(batch=1 + (t + i) % 32, seed=t * 1000 + i)
              for t in range(THREADS) for i in range(ROUNDS)}

    def call(t, i):
        with torch.set_grad_enabled(grad), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return inputs[(t, i)], loaded(inputs[(t, i)])

    results = hammer(call)  # 8 x ROUNDS calls (1,600 by default)
    for per_thread in results:
        for x, out in per_thread:
            torch.testing.assert_close(out, module.linear(x).relu().detach())


def test_engine_spec_cache_under_8_threads_with_evictions():
    metas = [programs.meta_for(programs.plan_tensor(64 + n)) for n in range(300)]  # > lru maxsize 256: evicts
    expected = {m: record.decode_meta(m) for m in metas}
    shapes.engine_spec.cache_clear()
    results = hammer(lambda t, i: (m := metas[(t * 37 + i * 11) % len(metas)], shapes.engine_spec(m)))
    for per_thread in results:
        for meta, spec in per_thread:
            assert spec.meta == expected[meta] and spec.name == "trt_region_0"
            assert [s.dtype for s in spec.inputs] == [torch.float32]


def test_cpp_engine_usable_cache_under_8_threads():
    plans = [programs.plan_tensor(64 + n) for n in range(16)]
    records = [(p, programs.meta_for(p)) for p in plans]
    x = torch.zeros(2, programs.FEATURES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = hammer(lambda t, i: torch.ops.trtpack.engine_usable([x], *records[(t + i) % len(records)]))
    verdicts = [bool(v) for per_thread in results for v in per_thread]
    assert len(verdicts) == THREADS * ROUNDS and not any(verdicts)  # no CUDA here: every verdict is "not usable"


def test_cpp_execute_engine_refuses_cleanly_from_8_threads():
    plan = programs.plan_tensor()
    meta = programs.meta_for(plan)
    x = torch.zeros(2, programs.FEATURES)

    def call(t, i):
        with pytest.raises(RuntimeError, match="trtpack"):
            torch.ops.trtpack.execute_engine([x], plan, meta)
        return True

    assert all(all(r) for r in hammer(call, rounds=ROUNDS // 4))


def test_executor_engine_cache_under_8_threads_with_a_fake_runtime(tmp_path):
    trt = FakeTensorRT(run_seconds=0.002)
    ex = Executor(import_module=lambda name: trt if name == "tensorrt_rtx" else (_ for _ in ()).throw(ImportError()),
                  current_stream=lambda device: ("stream", 0), capability=lambda device: (8, 6),
                  device_guard=lambda device: contextlib.nullcontext(), cache_dir=str(tmp_path))
    records = []
    for n in range(4):
        plan = programs.plan_tensor(64 + n)
        records.append((plan, programs.meta_for(plan, output="y")))

    def call(t, i):
        plan, meta = records[(t + i) % len(records)]
        x = torch.full((1 + (t + i) % 8, programs.FEATURES), float(t * 1000 + i))
        (y,) = ex.execute_engine([x], plan, meta)
        return x, y

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = hammer(call, rounds=ROUNDS // 2)
    for per_thread in results:
        for x, y in per_thread:
            torch.testing.assert_close(y, x)  # the fake engine copies x into y through the bound addresses
    assert len(trt.named("deserialize_cuda_engine")) == len(records)  # once per plan, whatever the threads
    assert trt.concurrent_runs_seen == 0  # no two threads ever interleaved on one execution context
