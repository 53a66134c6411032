"""CUDA graphs for a whole program: `trtpack.load(path, cuda_graphs=True)` / `trtpack.compile(..., cuda_graphs=True)`.

The program (its engines and the PyTorch ops between them) is captured once per input signature (the shapes, dtypes
and device of its tensor inputs) and replayed after that, so a call costs one graph launch and one output allocation
per output, whatever the number of engines: the graph copies each input in and each output out itself, as memcpy
nodes that a call repoints to the caller's input and to the outputs it allocates (graph_copies, graph_nodes; one is
repointed only when its address changed; with one input and one output, the repoints and the launch are one native
call, graph_nodes.launch_of, unless the graph draws random numbers: torch's replay then advances the generator for each
replay, so those replays go through torch). Where a node cannot be found or repointed (a torch without
`CUDAGraph(keep_graph=True)`, an output that is not one dense block, an address the driver refuses), that input is
copied in with torch and that output cloned, as a program without nodes does.

- The first call of a signature runs the program eagerly once on a side stream (this decides a fallback program's
  branches, deserializes engines and creates their contexts), then captures it (`torch.cuda.CUDAGraph`, its own memory
  pool) and replays it. Later calls of that signature only replay. Inputs were checked when the signature was first
  seen: the checks depend on shapes and dtypes only.
- At most `max_graphs` signatures are kept (`DEFAULT_MAX_GRAPHS`, or the number given as `cuda_graphs=N`); the least
  recently used graph is dropped, with its memory.
- Outputs are fresh tensors, allocated by each call on the current stream from torch's caching allocator (as a
  clone is) and written by that call's replay, so a result is never overwritten by a later call, even where the
  eager program would return an input or a buffer itself. Inputs are read where they are, on the current stream,
  when the replay runs, as torch's copy_ would; one in another layout than contiguous is made contiguous first.
  Outputs never require grad (inference only). Python side effects inside the program (e.g. a Python custom op
  appending to a list) happen while capturing only; a replay runs the captured kernels.
- `.to()`, `.cuda()`, `.half()` (anything through `nn.Module._apply` on the program itself) and `load_state_dict`
  drop every graph; the next call captures again. A weight changed in place (same memory) is seen by a replay as is.
  A weight replaced by assignment on a submodule is not seen: call `module.cuda_graphs.clear()` after it.
- Replays of one program are serialized (one lock; a call on another stream first waits for the previous replay's
  stream), since its graphs share static buffers and engine contexts.
- The hot path: a call with one plain tensor of the signature replayed last, on the stream it was replayed on, goes
  straight to that graph's repointing (no signature key, no lookup, no LRU update). And `attach` gives the module a
  class of its own (a subclass, same name) whose call goes straight to `forward` where nn.Module.__call__ would do
  nothing else (no hooks, no torch.compile of the module, no JIT trace). Both only drop frames: what a call does
  is the same.
- Where capture is impossible the program runs eagerly and says so once per reason, in one line: no CUDA device,
  inputs on the CPU (those calls only), inputs other than flat tensors, data-dependent shapes, a program writing its
  inputs in place, a fallback still undecided after the first run, or an op that failed to capture (with its error).

Static calls (`module.cuda_graphs.static_call(*inputs)`) skip both copies: a graph of their own whose input
buffers the caller writes in place and whose output buffers every replay overwrites (documented aliasing, for
callers who need a replay's cost alone; see StaticCall).

`module.cuda_graphs` (a CudaGraphs) holds the graphs: `.info()`, `.clear()`, `.max_graphs`, `.static_call()`.
"""
import collections
import functools
import threading
import warnings
import weakref
from typing import Callable, Optional

import torch
from torch.utils import _pytree as pytree

from trtpack.runtime import graph_copies
from trtpack.runtime.cuda_backend import CudaBackend, NotCaptured

DEFAULT_MAX_GRAPHS = 8  # input signatures captured per program; least recently used dropped beyond this


class _Graph:
    __slots__ = ("replay", "inputs", "outputs", "fresh", "call", "keep")

    def __init__(self, replay, inputs, outputs, keep=None):
        self.replay, self.inputs, self.outputs = replay, inputs, outputs  # the static buffers
        self.fresh = _cloner(outputs)  # () -> fresh copies of the static outputs
        self.call = None  # (args, kwargs) -> fresh outputs through repointed copy nodes; None: copy, replay, clone
        self.keep = keep  # every other tensor the graph's kernels read or write, alive as long as the graph


class _Hot:
    """The graph replayed last, where its calls take one plain tensor and its copies are all nodes: what the hot
    path of CudaGraphs.__call__ checks a call against (no signature tuple, no dict lookup, no LRU update)."""
    __slots__ = ("graph", "shape", "dtype", "device_index", "stream", "one")

    def __init__(self, graph: _Graph, x: torch.Tensor, stream: Callable[[], object]):
        self.graph, self.shape, self.dtype, self.device_index = graph, x.shape, x.dtype, x.get_device()
        self.stream, self.one = stream, graph.call.one


class CudaGraphs:
    """Captures `run` once per input signature and replays it; see the module's docstring."""

    def __init__(self, run: Callable, *, max_graphs: int = DEFAULT_MAX_GRAPHS, name: str = "this program",
                 blocker: Callable[[], Optional[str]] = lambda: None,
                 pending: Callable[[torch.device], Optional[str]] = lambda device: None, backend=None):
        if isinstance(max_graphs, bool) or not isinstance(max_graphs, int) or max_graphs < 1:
            from trtpack.errors import TrtpackError
            raise TrtpackError(f"trtpack: cuda_graphs must be True, False or a number of input shapes >= 1 to keep "
                               f"captured; got {max_graphs!r}")
        self.run, self.max_graphs, self.name = run, max_graphs, name
        self._blocker, self._pending = blocker, pending
        self.backend = backend or CudaBackend()
        self._graphs = collections.OrderedDict()  # signature -> _Graph, least recently used first
        self._lock = threading.RLock()            # the graphs, captures and replays
        self._last_replayed = None                # the graph replayed last (already the most recent in LRU order)
        self._hot: Optional[_Hot] = None          # that graph, where its calls can take the hot path
        self._last_stream, self._last_key = None, None
        self._streams = {}                        # device -> side stream for warm-up and capture
        self._static_calls = weakref.WeakSet()    # StaticCalls made here, dropped with the graphs
        self._off: Optional[str] = None           # why this program never captures, once known
        self._checked_off = False
        self._warned = set()
        self.captures = self.replays = self.eager_calls = self.invalidations = 0

    # -- bookkeeping ---------------------------------------------------------------------------------------------
    def info(self) -> dict:
        with self._lock:
            return {"graphs": len(self._graphs), "max_graphs": self.max_graphs, "captures": self.captures,
                    "replays": self.replays, "eager_calls": self.eager_calls, "invalidations": self.invalidations,
                    "static_calls": len(self._static_calls), "off": self._off,
                    "repointed": sum(graph.call is not None for graph in self._graphs.values())}

    def clear(self, why: str = "cleared") -> None:
        """Drops every captured graph (after its last replay is done); the next call of each shape captures again."""
        with self._lock:
            static = list(self._static_calls)
            if self._graphs or static:
                self.backend.release(self._last_stream)
                self.invalidations += 1
            for call in static:
                call._drop(why)
            self._static_calls.clear()
            self._graphs.clear()
            self._last_stream = self._last_key = self._last_replayed = self._hot = None

    def _say(self, kind: str, reason: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            warnings.warn(f"trtpack: {self.name} runs without CUDA graphs: {reason}.", stacklevel=4)

    def _eager(self, kind: str, reason: str, args, kwargs):
        self._say(kind, reason)
        self.eager_calls += 1
        return self.run(*args, **kwargs)

    # -- the call ------------------------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        hot = self._hot
        if hot is not None and len(args) == 1 and not kwargs:  # the hot path: the last graph's signature again
            x = args[0]
            if (type(x) is torch.Tensor and x.shape == hot.shape and x.dtype is hot.dtype
                    and x.get_device() == hot.device_index):
                lock = self._lock
                lock.acquire()
                try:  # still the graph replayed last, on the stream it was replayed on
                    stream = hot.stream()
                    if self._hot is hot and stream == self._last_key:
                        outputs = hot.one(x, stream)
                        if outputs is not None:
                            self.replays += 1
                            return outputs
                finally:
                    lock.release()
        return self._call(args, kwargs)

    def _call(self, args, kwargs):
        key, device = _signature(args, kwargs)
        graph = self._graphs.get(key) if key is not None else None
        if graph is not None:
            return self._replay(key, graph, args, kwargs, device)
        if _tracing(args, kwargs):
            return self.run(*args, **kwargs)
        eager = self._why_eager(key, device)
        if eager:
            return self._eager(*eager, args, kwargs)
        with self._lock:
            graph = self._graphs.get(key)
            if graph is None:
                if self._off:
                    return self._eager("off", self._off, args, kwargs)
                try:
                    graph = self._capture(key, args, kwargs, device)
                except NotCaptured as error:
                    return self._eager(*self._not_captured(error), args, kwargs)
            return self._replay(key, graph, args, kwargs, device)

    def _why_eager(self, key, device):
        """(kind, reason) where calls with this signature cannot replay a graph, else None."""
        if not self._checked_off:
            self._checked_off = True
            self._off = self.backend.unavailable() or self._blocker()
        if self._off:
            return "off", self._off
        if key is None:
            return device  # _signature's (kind, reason)
        refused = self.backend.refuse(device)
        return (device.type, refused) if refused else None

    def _not_captured(self, error: NotCaptured):
        if error.permanent:
            self._off = error.reason
        return ("off" if error.permanent else "capture:" + error.reason[:40]), error.reason

    def static_call(self, *args, **kwargs) -> "StaticCall":
        """A StaticCall for the signature of `args`/`kwargs` (tensors on one device), with a graph of its own whose
        buffers start as copies of them; where capture is impossible its calls run eagerly (said once, as above)."""
        key, device = _signature(args, kwargs)
        if key is None:
            from trtpack.errors import TrtpackError
            raise TrtpackError(f"trtpack: static_call needs the program's inputs as tensors on one device, since the "
                               f"caller writes them in place; {device[1]}. Call the program itself instead")
        with self._lock:
            eager, graph = self._why_eager(key, device), None
            if eager is None:
                try:
                    graph = self._record(args, kwargs, device, copies=False)
                except NotCaptured as error:
                    eager = self._not_captured(error)
            if graph is None:
                self._say(*eager)
                static = [_static(x) for x in (*args, *kwargs.values())]
                with torch.no_grad():
                    outputs = self.run(*static[:len(args)], **dict(zip(kwargs, static[len(args):])))
                self.eager_calls += 1
                graph = _Graph(None, static, outputs)
            call = StaticCall(self, graph, len(args), tuple(kwargs), device)
            self._static_calls.add(call)
        return call

    def _record(self, args, kwargs, device, copies: bool = True) -> _Graph:
        """Captures the program on copies of `args`/`kwargs` (raises NotCaptured). With `copies` (ordinary calls),
        the graph copies its inputs in from slots and its outputs out to buffers of its own (graph_copies), and a
        call repoints those copies where their nodes are found; without (static calls), the program reads the slots
        and its own outputs are the graph's."""
        slots = [_static(x) for x in (*args, *kwargs.values())]
        stream = self._streams.get(device)
        if stream is None:
            stream = self._streams[device] = self.backend.side_stream(device)
        program = graph_copies.Copying(self.run, slots) if copies else self.run
        buffers = program.statics if copies else slots
        with torch.no_grad():
            replay, outputs, find, launcher = self.backend.capture(program, buffers[:len(args)],
                                                                   dict(zip(kwargs, buffers[len(args):])), device,
                                                                   stream, lambda: self._pending(device))
        self.captures += 1
        graph = _Graph(replay, slots, outputs, keep=program if copies else None)
        if copies:
            nodes = find(program.copies())
            if any(node is not None for node in nodes):
                graph.call = graph_copies.Repointing(replay, slots, program.sources, program.buffers, program.spec,
                                                     nodes, launcher)
        return graph

    def _capture(self, key, args, kwargs, device) -> _Graph:
        graph = self._graphs[key] = self._record(args, kwargs, device)
        while len(self._graphs) > self.max_graphs:
            self.backend.release(self._last_stream)
            self._graphs.popitem(last=False)
            self._last_replayed = self._hot = None  # never keep a dropped graph (and its memory) alive
        return graph

    def _order(self, device) -> None:
        """Under the lock, before a replay: where the last replay ran on another stream, wait for it first."""
        stream = self.backend.stream_key(device)
        if self._last_key != stream:
            self._last_stream = self.backend.order_after(self._last_stream, device)
            self._last_key = stream

    def _replay(self, key, graph: _Graph, args, kwargs, device):
        with self._lock:
            self._order(device)
            if graph.call is not None:
                outputs = graph.call(args, kwargs)
            else:
                outputs = _copy_replay_clone(graph, args, kwargs)
            self.replays += 1
            if graph is not self._last_replayed:
                self._last_replayed = graph
                if key in self._graphs:
                    self._graphs.move_to_end(key)
            hot = self._hot
            if hot is None or hot.graph is not graph or not graph.call.fast:
                plain = len(args) == 1 and not kwargs and type(args[0]) is torch.Tensor
                self._hot = (_Hot(graph, args[0], self.backend.stream_key_of(device))
                             if plain and graph.call is not None and graph.call.fast and key in self._graphs
                             else None)
            return outputs


def _copy_replay_clone(graph: _Graph, args, kwargs):
    """A replay through torch's copies: each input into its slot, then the outputs cloned."""
    single = len(args) == 1 and not kwargs
    # grad mode off only where an input requires grad: its copy_ would make a graph buffer part of an autograd
    # graph (a replay records nothing; the static outputs never require grad)
    grad = torch.is_grad_enabled() and (args[0].requires_grad if single else
                                        any(x.requires_grad for x in (*args, *kwargs.values())))
    if grad:
        torch._C._set_grad_enabled(False)
    try:
        if single:
            graph.inputs[0].copy_(args[0])
        else:
            for static, x in zip(graph.inputs, (*args, *kwargs.values())):
                static.copy_(x)
        graph.replay()
        return graph.fresh()
    finally:
        if grad:
            torch._C._set_grad_enabled(True)


class StaticCall:
    """One input signature of a program, captured with buffers the caller uses directly: no copy in, no copy out.

        call = program.cuda_graphs.static_call(x)   # captures on copies of x (its own graph, outside the LRU)
        call.args[0].copy_(next_x)                  # or have the producer write into call.args[0]
        y = call()                                  # replays on the current stream; y is call.outputs

    Aliasing, by design: `call.args`/`call.kwargs` are the graph's input tensors, and `call.outputs` (what the
    program returns, same structure) are its output tensors, the same objects on every call and overwritten by the
    next call of this StaticCall (copy what you keep; an output may be an input buffer itself where the program
    returns its input). Write the inputs and read the outputs on the stream you call on, or order your streams
    yourself. Ordinary calls of the program never touch these buffers. Replays stay serialized with the program's
    other replays (they share engine contexts); a StaticCall used from several threads shares its buffers, so give
    each thread its own. Where the program cannot be captured, a call runs it eagerly on the same input buffers and
    copies its results into the same output tensors. `.to()`, `load_state_dict` and `cuda_graphs.clear()` drop it:
    calling it then is a TrtpackError; make a new one.
    """

    def __init__(self, graphs: CudaGraphs, graph: _Graph, positional: int, names: tuple, device):
        self.args = tuple(graph.inputs[:positional])
        self.kwargs = dict(zip(names, graph.inputs[positional:]))
        self.outputs = graph.outputs
        self.captured = graph.replay is not None  # False: calls run the program eagerly
        self._graphs, self._graph, self._device, self._dropped = graphs, graph, device, None

    def _drop(self, why: str) -> None:
        self._graph, self._dropped = None, why

    def __call__(self):
        graph = self._graph
        if graph is None:
            from trtpack.errors import TrtpackError
            raise TrtpackError(f"trtpack: this static call was dropped with the program's CUDA graphs "
                               f"({self._dropped}); make a new one with program.cuda_graphs.static_call(...)")
        graphs = self._graphs
        if graph.replay is None:
            return self._eagerly(graphs)
        with graphs._lock:
            graphs._order(self._device)
            graph.replay()
            graphs.replays += 1
        return self.outputs

    def _eagerly(self, graphs: CudaGraphs):
        with torch.no_grad():
            results = graphs.run(*self.args, **self.kwargs)
        graphs.eager_calls += 1
        statics, spec = pytree.tree_flatten(self.outputs)
        values, result_spec = pytree.tree_flatten(results)
        if spec != result_spec:
            from trtpack.errors import TrtpackError
            raise TrtpackError(f"trtpack: {graphs.name} returned a different structure than when this static call "
                               f"was made ({result_spec} vs {spec}); call the program itself instead")
        for static, value in zip(statics, values):
            if isinstance(static, torch.Tensor) and isinstance(value, torch.Tensor) and not _same_memory(static, value):
                if static.shape != value.shape:
                    static.resize_(value.shape)
                static.copy_(value)
        return self.outputs


def _same_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride()


def _fresh(value):
    return value.clone() if isinstance(value, torch.Tensor) else value


def _cloner(outputs):
    """A function returning fresh copies of the static `outputs` (a tensor, a tuple of tensors, or any pytree)."""
    if isinstance(outputs, torch.Tensor):
        return outputs.clone
    if type(outputs) is tuple and all(isinstance(o, torch.Tensor) for o in outputs):
        return lambda: tuple([o.clone() for o in outputs])
    return lambda: pytree.tree_map(_fresh, outputs)


def _static(x: torch.Tensor) -> torch.Tensor:
    static = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    static.copy_(x)
    return static


def _signature(args, kwargs):
    """(key, device) for flat tensor inputs all on one CUDA device; else (None, (reason kind, reason))."""
    if not kwargs and len(args) == 1 and isinstance(args[0], torch.Tensor):  # the common call, without the loop
        device = args[0].device
        return (device, (), (args[0].shape, args[0].dtype)), device
    key, device = [], None
    for value in (*args, *kwargs.values()):
        if not isinstance(value, torch.Tensor):
            return None, ("inputs", "its inputs are not all tensors (nested or scalar inputs are not captured)")
        if device is None:
            device = value.device
        elif value.device != device:
            return None, ("devices", f"its inputs are on several devices ({device}, {value.device})")
        key.append((value.shape, value.dtype))
    if device is None:
        return None, ("inputs", "it takes no tensor inputs")
    return (device, tuple(kwargs), *key), device


def _tracing(args, kwargs) -> bool:
    from torch._subclasses.fake_tensor import FakeTensor

    return torch.compiler.is_compiling() or any(isinstance(v, FakeTensor) for v in (*args, *kwargs.values()))


def blocker_of(program) -> Callable[[], Optional[str]]:
    """A reason an ExportedProgram can never be captured, found on first use: shapes that depend on data, or
    inputs written in place (a replay would write the graph's copy, not the caller's tensor)."""
    def reason() -> Optional[str]:
        if program is None:
            return None
        from torch.fx.experimental.symbolic_shapes import free_unbacked_symbols

        for node in program.graph.nodes:
            value = node.meta.get("val")
            values = value if isinstance(value, (list, tuple)) else [value]
            if any(isinstance(v, (torch.Tensor, torch.SymInt)) and free_unbacked_symbols(v) for v in values):
                return f"its shapes depend on data ({node.name}: {node.target})"
        if getattr(program.graph_signature, "user_inputs_to_mutate", None) or _writes_user_input(program):
            return "it writes its inputs in place"
        return None
    return reason


def _writes_user_input(program) -> bool:
    """An op in the graph that writes (schema alias info) one of the user's inputs directly."""
    user = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        schema = getattr(node.target, "_schema", None) if node.op == "call_function" else None
        if schema is None or not schema.is_mutable:
            continue
        for argument, value in zip(schema.arguments, node.args):
            written = argument.alias_info is not None and argument.alias_info.is_write
            if written and isinstance(value, torch.fx.Node) and value.op == "placeholder" and value.name in user:
                return True
    return False


def attach(module: torch.nn.Module, cuda_graphs, *, backend=None) -> torch.nn.Module:
    """Gives `module` (compile's GraphModule or a LoadedProgram) CUDA graphs when `cuda_graphs` is True or a number
    of signatures to keep; returns `module`. Its forward replays, and its class becomes a subclass of its own
    (_calling_graphs); `.to()`-like moves and load_state_dict drop the graphs. `cuda_graphs=False` (or None) leaves
    it as it is."""
    if cuda_graphs is None or cuda_graphs is False:
        return module
    from trtpack.runtime import branches

    max_graphs = DEFAULT_MAX_GRAPHS if cuda_graphs is True else cuda_graphs
    program = getattr(module, "_trtpack_program", None)
    graphs = CudaGraphs(module.forward, max_graphs=max_graphs, name=f"trtpack program ({type(module).__name__})",
                        blocker=blocker_of(program),
                        pending=lambda device: branches.undecided(module, device), backend=backend)
    module.__dict__["cuda_graphs"] = graphs

    @functools.wraps(module.forward)  # torch.export reads the signature
    def forward(*args, **kwargs):
        return graphs(*args, **kwargs)

    module.forward = forward
    module.__class__ = _calling_graphs(type(module))
    apply = module._apply

    def _apply(fn, *rest, **kw):
        result = apply(fn, *rest, **kw)
        graphs.clear("moved")
        return result

    module._apply = _apply
    module.register_load_state_dict_post_hook(lambda m, keys: graphs.clear("load_state_dict"))
    return module


def _calling_graphs(base: type) -> type:
    """A subclass of `base` whose calls go straight to `forward` where nn.Module.__call__ would do nothing else (no
    hook of any kind on the module or globally, no torch.compile of the module, no JIT trace), and otherwise run
    `base.__call__` as before: the same behaviour without nn.Module.__call__'s frames, which cost a replayed call
    about 0.5 us (7.26 against 7.82 us per call on the H200)."""
    from torch.nn.modules import module as nn_module

    global_hooks = [getattr(nn_module, name) for name in (
        "_global_forward_pre_hooks", "_global_forward_hooks", "_global_backward_pre_hooks", "_global_backward_hooks")
        if isinstance(getattr(nn_module, name, None), dict)]  # mutated in place by torch, never rebound
    hooks_a, hooks_b, hooks_c, hooks_d = (global_hooks + [{}] * 4)[:4]
    tracing = torch._C._get_tracing_state
    call = base.__call__

    def __call__(self, *args, **kwargs):
        if (self._forward_pre_hooks or self._forward_hooks or self._backward_pre_hooks or self._backward_hooks
                or hooks_a or hooks_b or hooks_c or hooks_d or self._compiled_call_impl is not None or tracing()):
            return call(self, *args, **kwargs)
        return self.forward(*args, **kwargs)

    return type(base.__name__, (base,), {"__call__": __call__, "__module__": base.__module__,
                                         "__qualname__": base.__qualname__})


__all__ = ["CudaBackend", "CudaGraphs", "DEFAULT_MAX_GRAPHS", "NotCaptured", "StaticCall", "attach", "blocker_of"]
