"""CUDA graphs of a whole program (trtpack.runtime.cuda_graphs), on the CPU: the bookkeeping (signatures, LRU,
fresh outputs, invalidation, threads, when it runs eagerly and says so once) driven through an injected fake
backend whose "graph" replays by running the program again into the captured static outputs, holding its buffers
only weakly as a real graph holds addresses, and whose memcpy nodes (FakeNode) move real bytes where a call
repointed them; and the real backend on this machine, which has no CUDA device: cuda_graphs=True loads, compiles
and runs eagerly with one warning. Capture and replay on a GPU are tests/gpu/test_gpu.py's."""
import ctypes
import threading
import types
import warnings
import weakref

import pytest
import torch
from torch.utils import _pytree as pytree

import trtpack
from tests.support.threads import run_in_threads
from trtpack.runtime import cuda_graphs, graph_copies
from trtpack.runtime.cuda_graphs import CudaGraphs, NotCaptured


class FakeNode:
    """A memcpy node on the CPU: its copy (source, destination, bytes) as captured, and where it points now."""

    def __init__(self, backend, source, destination, size):
        self.backend, self.captured, self.size = backend, (source, destination), size
        self.params = types.SimpleNamespace(srcDevice=source, dstDevice=destination)

    def _point(self, field, address):
        self.backend.repointed.append((field, address))
        own = self.captured[field == "dstDevice"]
        if address in self.backend.refused or (field in self.backend.refused and address != own):
            return False
        setattr(self.params, field, address)
        return True

    @property
    def source(self):
        return self.params.srcDevice

    @property
    def destination(self):
        return self.params.dstDevice

    def set_source(self, address):
        return self._point("srcDevice", address)

    def set_destination(self, address):
        return self._point("dstDevice", address)

    def before(self):  # a repointed source: its bytes are what the captured copy reads
        if self.params.srcDevice != self.captured[0]:
            ctypes.memmove(self.captured[0], self.params.srcDevice, self.size)

    def after(self):  # a repointed destination: it gets what the captured copy wrote
        if self.params.dstDevice != self.captured[1]:
            ctypes.memmove(self.params.dstDevice, self.captured[1], self.size)


class FakeBackend:
    """CPU stand-in for CUDA: a stream per thread, a capture that runs once to warm up and once to record the
    static outputs, and a replay that writes a fresh run's results into them. Its memcpy nodes (FakeNode, for each
    copy the capture made, unless `nodes=False`) move real bytes where a call repointed them, and refuse the
    addresses (or every address of a field, "srcDevice" or "dstDevice") in `refused`. Its native launch (the
    launcher, for one input and one output) does what runtime/graph_launch.c does with these nodes, counted in
    `launches`, and fails with `launch_fails` when set."""

    def __init__(self, fail=None, nodes=True, launch=True):
        self.captured, self.released, self.ordered, self.fail, self.nodes = [], 0, 0, fail, nodes
        self.refused, self.repointed = set(), []
        self.launch, self.launches, self.launch_fails = launch, 0, None

    def unavailable(self):
        return None

    def refuse(self, device):
        return None

    def stream_key(self, device):
        return threading.get_ident()

    def stream_key_of(self, device):
        return threading.get_ident

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
        self.captured.append(tuple(tuple(a.shape) for a in args))
        # a real graph holds addresses, not tensors: whoever captured must keep the buffers alive (else a replay
        # writes memory torch has handed to someone else), so the replay holds weak references and checks them
        inputs = [weakref.ref(t) for t in (*args, *kwargs.values())]
        static = [weakref.ref(t) for t in pytree.tree_leaves(outputs) if isinstance(t, torch.Tensor)]
        program = weakref.ref(run) if isinstance(run, graph_copies.Copying) else (lambda: run)
        names, positional, found = tuple(kwargs), len(args), []

        def replay():  # like a CUDA graph's, records no autograd graph
            live, results, now = [r() for r in inputs], [r() for r in static], program()
            if any(t is None for t in live + results) or now is None:
                raise AssertionError("a buffer the captured graph reads or writes was freed")
            with torch.no_grad():
                for node in found:
                    node.before()
                fresh = now(*live[:positional], **dict(zip(names, live[positional:])))
                values = [v for v in pytree.tree_leaves(fresh) if isinstance(v, torch.Tensor)]
                for target, value in zip(results, values):
                    target.copy_(value)
                for node in found:
                    node.after()

        def find(copies):
            nodes = [FakeNode(self, *copy) if copy is not None and self.nodes else None for copy in copies]
            found.extend(node for node in nodes if node is not None)
            return nodes

        def launcher(in_node, out_node):
            def launch(source, destination, stream):
                self.launches += 1
                if source != in_node.source and not in_node.set_source(source):
                    return 2
                if destination != out_node.destination and not out_node.set_destination(destination):
                    return 3
                if self.launch_fails:
                    return 16 + self.launch_fails
                replay()
                return 0
            return launch if self.launch else None
        return replay, outputs, find, launcher

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



# -- ordinary calls through the graph's own copy nodes, repointed per call ---------------------------------------


def test_a_call_repoints_the_graphs_copies_only_where_an_address_changes_and_returns_fresh_tensors():
    module, backend = Counting(), FakeBackend()
    graphs = CudaGraphs(module, backend=backend)
    x = torch.randn(2, 4)
    graphs(x)
    [graph] = graphs._graphs.values()
    assert graph.call is not None and all(n is not None for n in graph.call.in_nodes + graph.call.out_nodes)
    slot = graph.inputs[0].clone()
    backend.repointed.clear()
    kept = []
    for _ in range(3):  # the same input tensor, every result kept: one source, a new destination per call
        kept.append(graphs(x))
    assert [field for field, _ in backend.repointed].count("srcDevice") == 0  # the capture's call pointed it at x
    assert [field for field, _ in backend.repointed].count("dstDevice") == 6  # 2 outputs x 3 calls
    torch.testing.assert_close(graph.inputs[0], slot)  # the graph read x where it is: its slot was not written
    addresses = {t.data_ptr() for y in kept for t in y}
    assert len(addresses) == 6 and addresses.isdisjoint(t.data_ptr() for t in graph.outputs)
    for y, same in kept:
        torch.testing.assert_close(y, module.linear(x).relu())
        torch.testing.assert_close(same, x)
        assert same.data_ptr() != x.data_ptr()
    backend.repointed.clear()
    other = torch.randn(2, 4)
    y, same = graphs(other)
    assert ("srcDevice", other.data_ptr()) in backend.repointed
    torch.testing.assert_close(same, other)
    torch.testing.assert_close(kept[0][1], x)  # earlier results untouched


def test_inputs_of_any_layout_keyword_inputs_and_outputs_of_any_kind_come_out_as_eager_gives_them():
    def program(x, *, bias):
        return {"sum": x + bias, "t": (x * 2).t(), "expanded": bias[:1].expand(3, 4), "empty": x[:0], "n": 7,
                "x": x}

    backend = FakeBackend()
    graphs = CudaGraphs(program, backend=backend)
    base = torch.randn(4, 3)
    inputs = [(torch.randn(3, 4), torch.randn(3, 4)), (base.t(), torch.randn(3, 4)),  # a transposed input
              (torch.randn(3, 4), torch.randn(3, 8)[:, ::2])]                          # a strided keyword input
    for x, bias in inputs * 2:
        got, want = graphs(x, bias=bias), program(x.clone(), bias=bias.clone())
        assert got.keys() == want.keys() and got["n"] == 7
        for name in ("sum", "t", "expanded", "empty", "x"):
            torch.testing.assert_close(got[name], want[name])
            assert got[name].shape == want[name].shape
        assert got["x"].data_ptr() != x.data_ptr()
        # a permuted output keeps the strides the program gives it (on the contiguous inputs it was captured with)
        assert got["t"].stride() == program(x.contiguous(), bias=bias.contiguous())["t"].stride() == (1, 4)
    [graph] = graphs._graphs.values()
    call = graph.call
    assert all(node is not None for node in call.in_nodes)
    # leaves: sum, t, expanded (not flat), empty (nothing to copy), n (no tensor), x
    assert [node is not None for node in call.out_nodes] == [True, True, False, False, False, True]
    assert graphs.info()["captures"] == 1 and graphs.info()["replays"] == 6


def test_an_address_the_driver_refuses_falls_back_to_torchs_copies_for_that_copy_from_then_on():
    module, backend = Counting(), FakeBackend()
    graphs = CudaGraphs(module, backend=backend)
    graphs(torch.randn(2, 4))
    [graph] = graphs._graphs.values()
    x = torch.randn(2, 4)
    backend.refused.add(x.data_ptr())
    y, same = graphs(x)
    torch.testing.assert_close(y, module.linear(x).relu())
    torch.testing.assert_close(same, x)
    assert graph.call.in_nodes == [None] and graph.call.out_nodes[0] is not None
    torch.testing.assert_close(graph.inputs[0], x)  # now copied into the slot by torch
    x2 = torch.randn(2, 4)
    torch.testing.assert_close(graphs(x2)[0], module.linear(x2).relu())
    kept = y.clone()
    backend.refused.add("dstDevice")  # output addresses refused too: that output is cloned from its buffer
    z, same = graphs(x2)
    torch.testing.assert_close(z, module.linear(x2).relu())
    torch.testing.assert_close(same, x2)
    assert graph.call.out_nodes == [None, None] and z.data_ptr() != graph.outputs[0].data_ptr()
    torch.testing.assert_close(y, kept)
    assert graphs.info()["replays"] == 4


def test_the_hot_path_replays_the_last_signature_without_the_general_call_and_leaves_it_when_anything_differs(
        monkeypatch):
    """A call with the last replayed graph's signature (one plain tensor) goes straight to its repointed copies:
    no signature key, no lookup. Another shape, dtype, stream, layout, a tensor subclass, clear() or a refused
    address each go the general way, which gives the same results."""
    module, backend = Counting(), FakeBackend()
    graphs = CudaGraphs(module, backend=backend)
    signatures = []
    monkeypatch.setattr(cuda_graphs, "_signature", lambda *a, real=cuda_graphs._signature: signatures.append(1)
                        or real(*a))
    x = torch.randn(2, 4)
    graphs(x)
    graphs(x)  # the capture's replay made it hot already
    assert graphs._hot is not None and len(signatures) == 1
    kept = [graphs(torch.randn(2, 4)) for _ in range(5)]
    assert len(signatures) == 1 and graphs.info()["replays"] == 7
    for y, same in kept:
        torch.testing.assert_close(y, module.linear(same).relu())
    assert len({y.data_ptr() for y, _ in kept}) == 5

    def general(value):  # a call that must take the general path, and what it gives
        before = len(signatures)
        y, same = graphs(value)
        torch.testing.assert_close(y, module.linear(value).relu())
        torch.testing.assert_close(same, value)
        assert len(signatures) == before + 1
    general(torch.randn(3, 4))              # another shape: captured, and now the hot one
    general(torch.randn(2, 4))              # back: the general path again, which makes it hot again
    general(torch.randn(4, 2).t())          # another layout
    general(torch.nn.Parameter(torch.randn(2, 4), requires_grad=False))  # a tensor subclass
    errors = run_in_threads(lambda: general(torch.randn(2, 4)), [()])  # another thread: another stream
    assert errors == []
    general(torch.randn(2, 4))              # back on this thread's stream, through the general path once
    graphs(torch.randn(2, 4))
    assert len(signatures) == 7
    graphs.clear()
    assert graphs._hot is None
    general(torch.randn(2, 4))              # captured again
    x = torch.randn(2, 4)
    backend.refused.add(x.data_ptr())
    general(x)                              # refused: the hot path hands it on, the general path falls back
    assert graphs._hot is None             # and no longer takes this graph's calls
    general(torch.randn(2, 4))


def test_a_module_with_graphs_is_called_without_nn_modules_frames_unless_a_hook_or_trace_needs_them(monkeypatch):
    """attach gives the module a class of its own (a subclass, same name) whose call goes straight to forward;
    hooks of every kind still run as nn.Module runs them."""
    module, backend = Counting(), FakeBackend()
    cuda_graphs.attach(module, True, backend=backend)
    assert isinstance(module, Counting) and type(module).__name__ == "Counting" and type(module) is not Counting
    slow = []
    monkeypatch.setattr(torch.nn.Module, "_call_impl",
                        lambda self, *a, real=torch.nn.Module._call_impl, **k: (self is module and slow.append(1))
                        or real(self, *a, **k))
    x = torch.randn(2, 4)
    for _ in range(3):
        torch.testing.assert_close(module(x)[0], module.linear(x).relu())
    assert slow == [] and module.cuda_graphs.info()["replays"] == 3
    seen = []
    handle = module.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    hook = module.register_forward_hook(lambda m, args, out: seen.append(out[1]))
    torch.testing.assert_close(module(x)[1], x * 2)
    torch.testing.assert_close(seen[0], x * 2)
    handle.remove(), hook.remove()
    everywhere = torch.nn.modules.module.register_module_forward_hook(lambda m, args, out: seen.append("global"))
    try:
        module(x)
    finally:
        everywhere.remove()
    assert seen[-1] == "global" and len(slow) == 2
    module(x)
    assert len(slow) == 2


def test_one_input_and_one_output_go_through_the_native_launch_and_anything_it_cannot_do_through_python():
    model = torch.nn.Linear(4, 3)
    backend = FakeBackend()
    graphs = CudaGraphs(model, backend=backend)
    x = torch.randn(2, 4)
    graphs(x)
    [graph] = graphs._graphs.values()
    assert graph.call.launch is not None and backend.launches == 0  # the capturing call took the general path
    inputs = [torch.randn(2, 4) for _ in range(3)]
    kept = [graphs(x) for x in inputs]
    assert backend.launches == 3 and graphs.info()["replays"] == 4
    assert len({y.data_ptr() for y in kept}) == 3
    for x, y in zip(inputs, kept):  # each call's own result, untouched by the later calls
        torch.testing.assert_close(y, model(x))
    x = torch.randn(2, 4)
    torch.testing.assert_close(graphs(x), model(x))
    backend.launch_fails = 700  # a failed launch: the general path replays through the backend's own replay
    torch.testing.assert_close(graphs(x), model(x))
    assert backend.launches == 5 and graphs.info()["replays"] == 6
    backend.launch_fails = None
    refused = torch.randn(2, 4)
    backend.refused.add(refused.data_ptr())  # refused in the native call: the general path finds it and copies
    torch.testing.assert_close(graphs(refused), model(refused))
    assert graph.call.in_nodes == [None] and graph.call.fast is False
    launches = backend.launches
    torch.testing.assert_close(graphs(x), model(x))
    assert backend.launches == launches  # that graph's calls no longer launch natively
    plain = CudaGraphs(model, backend=FakeBackend(launch=False))
    for _ in range(3):
        torch.testing.assert_close(plain(x), model(x))
    assert next(iter(plain._graphs.values())).call.launch is None


def test_without_copy_nodes_a_call_copies_in_and_clones_out():
    module, backend = Counting(), FakeBackend(nodes=False)
    graphs = CudaGraphs(module, backend=backend)
    for _ in range(2):
        x = torch.randn(2, 4)
        y, same = graphs(x)
        torch.testing.assert_close(y, module.linear(x).relu())
        torch.testing.assert_close(same, x)
    [graph] = graphs._graphs.values()
    assert graph.call is None and backend.repointed == []
    torch.testing.assert_close(graph.inputs[0], x)


def test_flat_tells_which_layouts_one_memcpy_copies():
    t = torch.randn(2, 3, 4)
    assert graph_copies.flat(t) and graph_copies.flat(t.permute(2, 0, 1)) and graph_copies.flat(t[1])
    assert graph_copies.flat(torch.randn(1, 5)[:, :].t())
    assert not graph_copies.flat(t[:, :, :2]) and not graph_copies.flat(t[:, :1].expand(2, 3, 4))
    assert not graph_copies.flat(torch.randn(3, dtype=torch.complex64).conj())


def test_graph_nodes_without_a_driver_finds_nothing_and_its_struct_is_cudas():
    from trtpack.runtime import graph_nodes

    assert ctypes.sizeof(graph_nodes.Memcpy3D) == 200  # sizeof(CUDA_MEMCPY3D) in cuda.h
    assert graph_nodes.Memcpy3D.WidthInBytes.offset == 176 and graph_nodes.Memcpy3D.dstDevice.offset == 136
    if graph_nodes.driver() is None:
        assert graph_nodes.memcpy_nodes(1, 2, [(1, 2, 3), None]) == [None, None]


@pytest.mark.parametrize("nodes", [True, False], ids=["repointed", "copied"])
def test_a_replay_with_grad_enabled_returns_outputs_without_grad_and_restores_grad_mode(nodes):
    """A replay given inputs that require grad keeps the graph's buffers out of autograd (torch's copy into them
    runs with grad mode off; a repointed copy is no torch op at all), and leaves grad mode as it was, also when the
    replay fails. Either way no output requires grad."""
    module, backend = Counting(), FakeBackend(nodes=nodes)
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
    assert (graph.call is not None) is nodes
    graph.replay = lambda: (_ for _ in ()).throw(RuntimeError("replay failed"))
    if nodes:
        graph.call.replay = graph.replay
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
