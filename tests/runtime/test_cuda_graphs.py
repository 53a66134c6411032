"""CUDA graphs of a whole program (trtpack.runtime.cuda_graphs), on the CPU: the bookkeeping (signatures, LRU,
fresh outputs, invalidation, threads, when it runs eagerly and says so once) driven through an injected fake
backend whose "graph" replays by running the program again into the captured static outputs; and the real
backend on this machine, which has no CUDA device: cuda_graphs=True loads, compiles and runs eagerly with one
warning. Capture and replay on a GPU are tests/gpu/test_gpu.py's."""
import threading
import warnings

import pytest
import torch
from torch.utils import _pytree as pytree

import trtpack
from tests.support.threads import run_in_threads
from trtpack.runtime import cuda_graphs
from trtpack.runtime.cuda_graphs import CudaGraphs, NotCaptured


class FakeBackend:
    """CPU stand-in for CUDA: a stream per thread, a capture that runs once to warm up and once to record the
    static outputs, and a replay that writes a fresh run's results into them."""

    def __init__(self, fail=None):
        self.captured, self.released, self.ordered, self.fail = [], 0, 0, fail

    def unavailable(self):
        return None

    def refuse(self, device):
        return None

    def stream_key(self, device):
        return threading.get_ident()

    def order_after(self, previous, device):
        self.ordered += 1
        return threading.get_ident()

    def side_stream(self, device):
        return "side"

    def capture(self, run, args, kwargs, device, stream, after_warmup):
        run(*args, **kwargs)
        reason = after_warmup()
        if reason:
            raise NotCaptured(reason)
        if self.fail:
            raise NotCaptured(self.fail, permanent=True)
        outputs = run(*args, **kwargs)

        def replay():  # like a CUDA graph's, records no autograd graph
            with torch.no_grad():
                fresh = run(*args, **kwargs)
                for static, value in zip(pytree.tree_leaves(outputs), pytree.tree_leaves(fresh)):
                    static.copy_(value)
        self.captured.append(tuple(tuple(a.shape) for a in args))
        return replay, outputs

    def release(self, last_stream):
        self.released += 1


class Counting(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.linear(x).relu(), x  # the second output is the input itself


def caught(fn):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = fn()
    return result, [str(w.message) for w in seen if "CUDA graphs" in str(w.message)]


def test_one_capture_per_signature_then_replays_and_lru_drops_the_oldest():
    module, backend = Counting(), FakeBackend()
    graphs = CudaGraphs(module, max_graphs=2, backend=backend)
    for batch in (1, 2, 1, 1, 3, 1, 2):
        x = torch.randn(batch, 4)
        y, same = graphs(x)
        torch.testing.assert_close(y, module.linear(x).relu())
        torch.testing.assert_close(same, x)
    # 1 and 2 captured; 1 replayed; 3 captured and 2 (least recently used) dropped; 1 replays; 2 captured again
    assert backend.captured == [((1, 4),), ((2, 4),), ((3, 4),), ((2, 4),)]
    info = graphs.info()
    assert info["graphs"] == 2 and info["captures"] == 4 and info["replays"] == 7 and info["eager_calls"] == 0
    assert backend.released == 2  # each eviction waited for the last replay first
    x = torch.randn(1, 4, dtype=torch.float64)  # another dtype is another signature
    module.double()
    graphs(x)
    assert backend.captured[-1] == ((1, 4),) and graphs.info()["captures"] == 5


def test_outputs_are_fresh_tensors_never_the_static_buffers_or_the_input():
    module, backend = Counting(), FakeBackend()
    graphs = CudaGraphs(module, backend=backend)
    x1, x2 = torch.randn(2, 4), torch.randn(2, 4)
    y1, same1 = graphs(x1)
    kept = y1.clone()
    y2, same2 = graphs(x2)
    torch.testing.assert_close(y1, kept)  # the second call did not overwrite the first result
    assert same1 is not x1 and same1.data_ptr() != x1.data_ptr()
    torch.testing.assert_close(same1, x1)
    torch.testing.assert_close(same2, x2)
    static = graphs._graphs[next(iter(graphs._graphs))].outputs  # the static tuple
    assert len(static) == 2 and all(isinstance(t, torch.Tensor) for t in static)
    assert {y1.data_ptr(), y2.data_ptr()}.isdisjoint({t.data_ptr() for t in static})
    x1.add_(1)  # changing an input after the call changes no result
    torch.testing.assert_close(same1, x1 - 1)



def test_a_replay_with_grad_enabled_returns_outputs_without_grad_and_restores_grad_mode():
    """A replay given inputs that require grad turns grad mode off while it copies and replays (they must not make
    the graph's buffers part of an autograd graph), and puts it back as it was, also when the replay fails; other
    calls leave grad mode alone. Either way no output requires grad."""
    module, backend = Counting(), FakeBackend()
    graphs = CudaGraphs(module, backend=backend)
    x = torch.randn(2, 4, requires_grad=True)
    with torch.no_grad():
        graphs(x.detach())  # captured
    for grad_mode in (True, False):
        for given in (x, x.detach()):
            with torch.set_grad_enabled(grad_mode):
                y, same = graphs(given)
                assert torch.is_grad_enabled() is grad_mode
            assert not y.requires_grad and not same.requires_grad and y.grad_fn is None
            torch.testing.assert_close(same, x.detach())
    [graph] = graphs._graphs.values()
    assert not any(t.requires_grad or t.grad_fn is not None for t in graph.inputs)  # the buffers stay out of autograd
    assert graphs.info()["replays"] == 5  # the capturing call replays too
    graph.replay = lambda: (_ for _ in ()).throw(RuntimeError("replay failed"))
    with torch.enable_grad():
        with pytest.raises(RuntimeError, match="replay failed"):
            graphs(x)
        assert torch.is_grad_enabled()

def test_to_and_load_state_dict_drop_the_graphs_and_an_in_place_weight_change_is_seen():
    module, backend = Counting(), FakeBackend()
    cuda_graphs.attach(module, True, backend=backend)
    x = torch.randn(3, 4)
    module(x)
    module(x)
    assert module.cuda_graphs.info()["graphs"] == 1
    with torch.no_grad():
        module.linear.weight.mul_(2)  # same memory: a replay reads it
    torch.testing.assert_close(module(x)[0], module.linear(x).relu())
    module.to(torch.float32)  # through _apply, even where nothing moves
    assert module.cuda_graphs.info()["graphs"] == 0 and module.cuda_graphs.info()["invalidations"] == 1
    module(x)
    state = {k: torch.zeros_like(v) for k, v in module.state_dict().items()}
    module.load_state_dict(state)
    assert module.cuda_graphs.info()["graphs"] == 0
    torch.testing.assert_close(module(x)[0], torch.zeros(3, 4))
    assert module.cuda_graphs.info()["captures"] == 3


def test_eager_with_one_line_once_per_reason():
    module = Counting()
    graphs = CudaGraphs(module, backend=FakeBackend())
    _, said = caught(lambda: [graphs(torch.randn(2, 4)) for _ in range(2)])
    assert said == [] and graphs.info()["eager_calls"] == 0
    nested = CudaGraphs(lambda xs: xs[0] * 2, backend=FakeBackend())
    _, said = caught(lambda: [nested([torch.randn(2)]) for _ in range(3)])
    assert len(said) == 1 and "not all tensors" in said[0] and "\n" not in said[0]
    assert nested.info()["eager_calls"] == 3 and nested.info()["captures"] == 0


def test_a_failed_capture_turns_graphs_off_for_the_program_with_its_reason():
    module, backend = Counting(), FakeBackend(fail="an op could not be captured: RuntimeError: cudaErrorStreamCapture")
    graphs = CudaGraphs(module, backend=backend)
    _, said = caught(lambda: [graphs(torch.randn(b, 4)) for b in (1, 2, 2)])
    assert len(said) == 1 and "could not be captured: RuntimeError" in said[0]
    assert graphs.info()["off"].startswith("an op could not be captured") and graphs.info()["eager_calls"] == 3


def test_an_undecided_fallback_is_not_captured_until_decided():
    decided = []
    graphs = CudaGraphs(Counting(), backend=FakeBackend(),
                        pending=lambda device: None if decided else "its fallback is still undecided on cpu")
    _, said = caught(lambda: graphs(torch.randn(2, 4)))
    assert len(said) == 1 and "undecided" in said[0] and graphs.info()["graphs"] == 0
    decided.append(True)
    graphs(torch.randn(2, 4))
    assert graphs.info()["graphs"] == 1


class DataDependent(torch.nn.Module):
    def forward(self, x):
        return x.nonzero()


class WritesInput(torch.nn.Module):
    def forward(self, x):
        x.add_(1)
        return x * 2


@pytest.mark.parametrize("model, reason", [(DataDependent(), "shapes depend on data"),
                                           (WritesInput(), "writes its inputs in place")])
def test_programs_that_can_never_be_captured_run_eagerly_and_say_why(model, reason):
    program = torch.export.export(model, (torch.randn(4, 3),))
    module = program.module()
    module._trtpack_program = program
    cuda_graphs.attach(module, True, backend=FakeBackend())
    _, said = caught(lambda: [module(torch.randn(4, 3)) for _ in range(3)])
    assert len(said) == 1 and reason in said[0]
    assert module.cuda_graphs.info()["captures"] == 0 and module.cuda_graphs.info()["off"]


def test_eight_threads_share_the_graphs():
    module, backend = Counting(), FakeBackend()
    graphs = CudaGraphs(module, max_graphs=4, backend=backend)

    def worker(batch):
        for _ in range(25):
            x = torch.randn(batch, 4)
            y, same = graphs(x)
            torch.testing.assert_close(y, module.linear(x).relu())
            torch.testing.assert_close(same, x)

    errors = run_in_threads(worker, [(1 + i % 4,) for i in range(8)])
    assert errors == [] and graphs.info()["captures"] == 4 and graphs.info()["replays"] == 200
    assert backend.ordered >= 2  # calls from another thread (stream) waited for the last replay


@pytest.mark.parametrize("value", [0, -1, "yes", 2.5])
def test_a_bad_cuda_graphs_value_is_a_trtpack_error(value):
    with pytest.raises(trtpack.TrtpackError, match="cuda_graphs must be True, False or a number"):
        cuda_graphs.attach(Counting(), value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only path")
def test_on_a_cpu_machine_load_and_compile_accept_cuda_graphs_and_run_eagerly(tmp_path):
    from tests.support import models

    model = models.eval_model(models.MLP)
    x = torch.randn(4, 16)
    compiled, said = caught(lambda: trtpack.compile(model, (x,), targets=["sm86"], fallback=True, cuda_graphs=True))
    path = str(tmp_path / "mlp.ep")
    trtpack.save(compiled, path)
    for make in (lambda: compiled, lambda: trtpack.load(path, cuda_graphs=True), lambda: trtpack.load(path, cuda_graphs=3)):
        program, _ = caught(make)
        outputs, said = caught(lambda: [program(x) for _ in range(3)])
        for y in outputs:
            torch.testing.assert_close(y, model(x), rtol=1e-5, atol=1e-5)
        assert len(said) == 1 and "no CUDA device here" in said[0] and "\n" not in said[0], said
        assert program.cuda_graphs.info()["eager_calls"] == 3
    assert not hasattr(trtpack.load(path), "cuda_graphs")  # off unless asked for


# -- static calls: the caller's own buffers, no copies per call -------------------------------------------------


def test_a_static_call_replays_on_inputs_written_in_place_into_the_same_output_tensors():
    module, backend = Counting(), FakeBackend()
    graphs = CudaGraphs(module, backend=backend)
    x = torch.randn(2, 4)
    call = graphs.static_call(x)
    assert call.captured and graphs.info()["captures"] == 1 and graphs.info()["graphs"] == 0  # outside the LRU
    y, same = call.outputs
    assert call.args[0] is not x and call.args[0].data_ptr() != x.data_ptr()  # a copy: x stays the caller's
    assert same is call.args[0]  # the program returns its input: the output is the input buffer (documented)
    for _ in range(3):
        new = torch.randn(2, 4)
        call.args[0].copy_(new)
        result = call()
        assert result is call.outputs and result[0] is y  # the same tensors, overwritten
        torch.testing.assert_close(y, module.linear(new).relu())
    kept = y.clone()
    ordinary, _ = graphs(torch.randn(2, 4))  # the same signature through the program: its own graph and buffers
    torch.testing.assert_close(y, kept)
    assert ordinary.data_ptr() != y.data_ptr()
    info = graphs.info()
    assert info["captures"] == 2 and info["replays"] == 4 and info["graphs"] == 1 and info["eager_calls"] == 0
    assert info["static_calls"] == 1


def test_a_static_call_takes_keyword_inputs_and_refuses_inputs_it_cannot_write_in_place():
    graphs = CudaGraphs(lambda x, *, scale: x * scale, backend=FakeBackend())
    call = graphs.static_call(torch.ones(3), scale=torch.full((3,), 2.0))
    call.kwargs["scale"].fill_(5.0)
    torch.testing.assert_close(call(), torch.full((3,), 5.0))
    for bad in (([torch.ones(3)],), (torch.ones(3), 2.0)):
        with pytest.raises(trtpack.TrtpackError, match="static_call needs the program's inputs as tensors"):
            graphs.static_call(*bad)


def test_to_load_state_dict_and_clear_drop_a_static_call_and_calling_it_then_says_what_to_do():
    module, backend = Counting(), FakeBackend()
    cuda_graphs.attach(module, True, backend=backend)
    for drop in (lambda: module.to(torch.float32), lambda: module.load_state_dict(module.state_dict()),
                 lambda: module.cuda_graphs.clear()):
        call = module.cuda_graphs.static_call(torch.randn(2, 4))
        call()
        released = backend.released
        drop()
        assert backend.released == released + 1  # its last replay was waited for before the graph went
        with pytest.raises(trtpack.TrtpackError, match=r"dropped .* make a new one with program.cuda_graphs.static_call"):
            call()
    assert module.cuda_graphs.info()["static_calls"] == 0
    fresh = module.cuda_graphs.static_call(torch.randn(2, 4))
    torch.testing.assert_close(fresh()[0], module.linear(fresh.args[0]).relu())


def test_a_static_call_that_cannot_capture_runs_eagerly_into_the_same_buffers_and_says_why_once():
    module = Counting()
    graphs = CudaGraphs(module, backend=FakeBackend(fail="an op could not be captured: RuntimeError: sync"))
    call, said = caught(lambda: graphs.static_call(torch.randn(2, 4)))
    assert not call.captured and len(said) == 1 and "could not be captured" in said[0]
    y = call.outputs[0]
    for _ in range(2):
        call.args[0].normal_()
        result, said = caught(call)
        assert said == [] and result[0] is y
        torch.testing.assert_close(y, module.linear(call.args[0]).relu())
    assert graphs.info()["eager_calls"] == 3 and graphs.info()["off"]


def test_an_eager_static_call_resizes_outputs_whose_shape_depends_on_data():
    program = torch.export.export(DataDependent(), (torch.randn(4, 3),))
    module = program.module()
    module._trtpack_program = program
    cuda_graphs.attach(module, True, backend=FakeBackend())
    call, said = caught(lambda: module.cuda_graphs.static_call(torch.ones(4, 3)))
    assert "shapes depend on data" in said[0] and call.outputs.shape == (12, 2)
    out = call.outputs
    call.args[0].zero_()[1, 2] = 1.0
    assert call() is out and out.tolist() == [[1, 2]]


def test_static_calls_in_eight_threads_each_with_its_own_buffers():
    module, backend = Counting(), FakeBackend()
    graphs = CudaGraphs(module, max_graphs=2, backend=backend)

    def worker(batch):
        call = graphs.static_call(torch.randn(batch, 4))
        for _ in range(25):
            call.args[0].normal_()
            y, same = call()
            torch.testing.assert_close(y, module.linear(call.args[0]).relu())

    errors = run_in_threads(worker, [(1 + i % 4,) for i in range(8)])
    assert errors == [] and graphs.info()["captures"] == 8 and graphs.info()["replays"] == 200


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only path")
def test_on_a_cpu_machine_a_static_call_runs_eagerly_with_one_warning():
    module = cuda_graphs.attach(Counting(), True)
    call, said = caught(lambda: module.cuda_graphs.static_call(torch.randn(2, 4)))
    assert not call.captured and len(said) == 1 and "no CUDA device here" in said[0]
    call.args[0].fill_(1.0)
    torch.testing.assert_close(call()[0], module.linear(torch.ones(2, 4)).relu())
