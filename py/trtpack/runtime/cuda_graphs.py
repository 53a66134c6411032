"""CUDA graphs for a whole program: `trtpack.load(path, cuda_graphs=True)` / `trtpack.compile(..., cuda_graphs=True)`.

The program (its engines and the PyTorch ops between them) is captured once per input signature (the shapes, dtypes
and device of its tensor inputs) and replayed after that, so a call costs one copy per input, one graph launch and
one copy per output, whatever the number of engines.

- The first call of a signature runs the program eagerly once on a side stream (this decides a fallback program's
  branches, deserializes engines and creates their contexts), then captures it (`torch.cuda.CUDAGraph`, its own memory
  pool) and replays it. Later calls of that signature only replay. Inputs were checked when the signature was first
  seen: the checks depend on shapes and dtypes only.
- At most `max_graphs` signatures are kept (`DEFAULT_MAX_GRAPHS`, or the number given as `cuda_graphs=N`); the least
  recently used graph is dropped, with its memory.
- Outputs are fresh tensors: each call clones them out of the graph's static outputs, so a result is never
  overwritten by a later call, even where the eager program would return an input or a buffer itself. Outputs never
  require grad (inference only). Python side effects inside the program (e.g. a Python custom op appending to a
  list) happen while capturing only; a replay runs the captured kernels.
- `.to()`, `.cuda()`, `.half()` (anything through `nn.Module._apply` on the program itself) and `load_state_dict`
  drop every graph; the next call captures again. A weight changed in place (same memory) is seen by a replay as is.
  A weight replaced by assignment on a submodule is not seen: call `module.cuda_graphs.clear()` after it.
- Replays of one program are serialized (one lock; a call on another stream first waits for the previous replay's
  stream), since its graphs share static buffers and engine contexts.
- Where capture is impossible the program runs eagerly and says so once per reason, in one line: no CUDA device,
  inputs on the CPU (those calls only), inputs other than flat tensors, data-dependent shapes, a program writing its
  inputs in place, a fallback still undecided after the first run, or an op that failed to capture (with its error).

`module.cuda_graphs` (a CudaGraphs) holds the graphs: `.info()`, `.clear()`, `.max_graphs`.
"""
import collections
import functools
import threading
import warnings
from typing import Callable, Optional

import torch
from torch.utils import _pytree as pytree

DEFAULT_MAX_GRAPHS = 8  # input signatures captured per program; least recently used dropped beyond this


class CudaBackend:
    """The real device side: CUDA streams and torch.cuda.CUDAGraph. Tests inject a fake with the same methods."""

    def unavailable(self) -> Optional[str]:
        if not torch.cuda.is_available():
            return "no CUDA device here (torch.cuda.is_available() is False)"
        return None

    def refuse(self, device: torch.device) -> Optional[str]:
        """Why calls with inputs on `device` cannot replay a graph (they run eagerly), or None."""
        if device.type != "cuda":
            return f"its inputs are on the {device.type.upper()}; those calls run eagerly"
        return None

    def stream_key(self, device: torch.device):
        return torch._C._cuda_getCurrentRawStream(device.index)

    def order_after(self, previous, device: torch.device):
        """Makes the current stream wait for `previous` (the stream of the last replay); returns the current one."""
        current = torch.cuda.current_stream(device)
        if previous is not None:
            current.wait_stream(previous)
        return current

    def side_stream(self, device: torch.device):
        return torch.cuda.Stream(device)

    def capture(self, run: Callable, args, kwargs, device: torch.device, stream, after_warmup: Callable):
        """Warms `run` up on `stream`, checks `after_warmup()` (a reason not to capture, or None), captures it;
        returns (replay, static outputs) or raises NotCaptured."""
        with torch.cuda.device(device):
            stream.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(stream):
                run(*args, **kwargs)
            reason = after_warmup()
            if reason:
                torch.cuda.current_stream(device).wait_stream(stream)
                raise NotCaptured(reason)
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph, stream=stream, capture_error_mode="thread_local"):
                    outputs = run(*args, **kwargs)
            except Exception as error:  # noqa: BLE001  (any failure means: this program cannot be captured)
                _repair(device, stream)
                cause = error.__context__ or error  # the op's own error, not capture_end's that followed it
                raise NotCaptured(f"an op could not be captured: {type(cause).__name__}: "
                                  f"{str(cause).splitlines()[0][:200] if str(cause) else ''}", permanent=True)
            torch.cuda.current_stream(device).wait_stream(stream)
        return graph.replay, outputs

    def release(self, last_stream) -> None:
        """Before graphs are dropped: wait until their last replay is done (their memory goes back to torch)."""
        if last_stream is not None:
            last_stream.synchronize()


def _repair(device: torch.device, stream) -> None:
    """After a failed capture: torch ends it without closing the capture state of the device's default random
    generator, and every later random op on that device then fails ("Offset increment outside graph capture").
    One small capture that succeeds closes it again."""
    try:
        torch.cuda.synchronize(device)
    except Exception:  # noqa: BLE001  (the failed capture's error may surface here once)
        pass
    try:
        scratch = torch.zeros(1, device=device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream, capture_error_mode="thread_local"):
            scratch.add_(1)
        torch.cuda.synchronize(device)
    except Exception:  # noqa: BLE001  (nothing more to do: the eager path still runs)
        pass


class NotCaptured(Exception):
    """Raised by a backend's capture: why this call (or, `permanent`, this program) runs eagerly."""

    def __init__(self, reason: str, permanent: bool = False):
        super().__init__(reason)
        self.reason, self.permanent = reason, permanent


class _Graph:
    __slots__ = ("replay", "inputs", "outputs")

    def __init__(self, replay, inputs, outputs):
        self.replay, self.inputs = replay, inputs
        self.outputs = outputs  # () -> fresh copies of the static outputs


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
        self._last_stream, self._last_key = None, None
        self._streams = {}                        # device -> side stream for warm-up and capture
        self._off: Optional[str] = None           # why this program never captures, once known
        self._checked_off = False
        self._warned = set()
        self.captures = self.replays = self.eager_calls = self.invalidations = 0

    # -- bookkeeping ---------------------------------------------------------------------------------------------
    def info(self) -> dict:
        with self._lock:
            return {"graphs": len(self._graphs), "max_graphs": self.max_graphs, "captures": self.captures,
                    "replays": self.replays, "eager_calls": self.eager_calls, "invalidations": self.invalidations,
                    "off": self._off}

    def clear(self, why: str = "cleared") -> None:
        """Drops every captured graph (after its last replay is done); the next call of each shape captures again."""
        with self._lock:
            if self._graphs:
                self.backend.release(self._last_stream)
                self.invalidations += 1
            self._graphs.clear()
            self._last_stream = self._last_key = self._last_replayed = None

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
        key, device = _signature(args, kwargs)
        graph = self._graphs.get(key) if key is not None else None
        if graph is not None:
            return self._replay(key, graph, args, kwargs, device)
        if _tracing(args, kwargs):
            return self.run(*args, **kwargs)
        if not self._checked_off:
            self._checked_off = True
            self._off = self.backend.unavailable() or self._blocker()
        if self._off:
            return self._eager("off", self._off, args, kwargs)
        if key is None:
            kind, why = device  # _signature's reason
            return self._eager(kind, why, args, kwargs)
        refused = self.backend.refuse(device)
        if refused:
            return self._eager(device.type, refused, args, kwargs)
        with self._lock:
            graph = self._graphs.get(key)
            if graph is None:
                if self._off:
                    return self._eager("off", self._off, args, kwargs)
                try:
                    graph = self._capture(key, args, kwargs, device)
                except NotCaptured as error:
                    if error.permanent:
                        self._off = error.reason
                    kind = "off" if error.permanent else "capture:" + error.reason[:40]
                    return self._eager(kind, error.reason, args, kwargs)
            return self._replay(key, graph, args, kwargs, device)

    def _capture(self, key, args, kwargs, device) -> _Graph:
        static_args = [_static(x) for x in args]
        static_kwargs = {name: _static(x) for name, x in kwargs.items()}
        stream = self._streams.get(device)
        if stream is None:
            stream = self._streams[device] = self.backend.side_stream(device)
        with torch.no_grad():
            replay, outputs = self.backend.capture(self.run, static_args, static_kwargs, device, stream,
                                                   lambda: self._pending(device))
        graph = _Graph(replay, static_args + [static_kwargs[name] for name in kwargs], _cloner(outputs))
        self.captures += 1
        self._graphs[key] = graph
        while len(self._graphs) > self.max_graphs:
            self.backend.release(self._last_stream)
            self._graphs.popitem(last=False)
            self._last_replayed = None  # never keep a dropped graph (and its memory) alive
        return graph

    def _replay(self, key, graph: _Graph, args, kwargs, device):
        with self._lock:
            stream = self.backend.stream_key(device)
            if self._last_key != stream:  # another stream than the last replay's: wait for it first
                self._last_stream = self.backend.order_after(self._last_stream, device)
                self._last_key = stream
            grad = torch.is_grad_enabled()
            if grad:
                torch._C._set_grad_enabled(False)
            try:
                if len(args) == 1 and not kwargs:
                    graph.inputs[0].copy_(args[0])
                else:
                    for static, x in zip(graph.inputs, (*args, *kwargs.values())):
                        static.copy_(x)
                graph.replay()
                self.replays += 1
                if graph is not self._last_replayed:
                    self._last_replayed = graph
                    if key in self._graphs:
                        self._graphs.move_to_end(key)
                return graph.outputs()
            finally:
                if grad:
                    torch._C._set_grad_enabled(True)


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
    of signatures to keep; returns `module`. Its forward replays; `.to()`-like moves and load_state_dict drop the
    graphs. `cuda_graphs=False` (or None) leaves it as it is."""
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
    apply = module._apply

    def _apply(fn, *rest, **kw):
        result = apply(fn, *rest, **kw)
        graphs.clear("moved")
        return result

    module._apply = _apply
    module.register_load_state_dict_post_hook(lambda m, keys: graphs.clear("load_state_dict"))
    return module


__all__ = ["CudaBackend", "CudaGraphs", "DEFAULT_MAX_GRAPHS", "NotCaptured", "attach", "blocker_of"]
