"""The device side of whole-program CUDA graphs (runtime/cuda_graphs.py): CUDA streams, capture with
torch.cuda.CUDAGraph, the graph's memcpy nodes (graph_nodes) and its native launch. CudaGraphs takes any object with
these methods; the CPU tests inject a fake one."""
import functools
from typing import Callable, Optional

import torch


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

    def stream_key_of(self, device: torch.device) -> Callable[[], object]:
        """() -> stream_key(device), without a Python frame per call (the hot path asks on every call)."""
        return functools.partial(torch._C._cuda_getCurrentRawStream, device.index)

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
        returns (replay, static outputs, find, launcher) or raises NotCaptured. `find(copies)` gives, for each
        (source, destination, bytes) copy the capture made, a graph_nodes.Node to repoint or None.
        `launcher(in_node, out_node)` gives a function (source, destination, stream) -> code that repoints both and
        launches in one native call (graph_nodes.launch_of), or None: also for a graph that draws random numbers, whose
        replay must go through torch (it advances the generator's offset for each replay)."""
        with torch.cuda.device(device):
            stream.wait_stream(torch.cuda.current_stream(device))
            offset = _random_offset(device)
            with torch.cuda.stream(stream):
                run(*args, **kwargs)
            draws_random = offset is None or _random_offset(device) != offset
            reason = after_warmup()
            if reason:
                torch.cuda.current_stream(device).wait_stream(stream)
                raise NotCaptured(reason)
            graph = torch.cuda.CUDAGraph(keep_graph=True) if _KEEPS_GRAPH else torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph, stream=stream, capture_error_mode="thread_local"):
                    outputs = run(*args, **kwargs)
            except Exception as error:  # noqa: BLE001  (any failure means: this program cannot be captured)
                _repair(device, stream)
                cause = error.__context__ or error  # the op's own error, not capture_end's that followed it
                raise NotCaptured(f"an op could not be captured: {type(cause).__name__}: "
                                  f"{str(cause).splitlines()[0][:200] if str(cause) else ''}", permanent=True)
            if _KEEPS_GRAPH:
                graph.instantiate()
            torch.cuda.current_stream(device).wait_stream(stream)
            native = _KEEPS_GRAPH and not draws_random
        return (graph.replay, outputs, functools.partial(_memcpy_nodes, graph, device),
                _launch_of if native else lambda in_node, out_node: None)

    def release(self, last_stream) -> None:
        """Before graphs are dropped: wait until their last replay is done (their memory goes back to torch)."""
        if last_stream is not None:
            last_stream.synchronize()


def _keeps_graph() -> bool:
    """Whether this torch's CUDAGraph can keep its cudaGraph_t (to find its memcpy nodes) and give the exec."""
    import inspect

    try:
        keeps = "keep_graph" in inspect.signature(torch.cuda.CUDAGraph).parameters
    except (TypeError, ValueError):
        keeps = False
    return keeps and all(hasattr(torch.cuda.CUDAGraph, name)
                         for name in ("instantiate", "raw_cuda_graph", "raw_cuda_graph_exec"))


_KEEPS_GRAPH = _keeps_graph()


def _memcpy_nodes(graph, device, copies):
    if not _KEEPS_GRAPH or not copies:
        return [None] * len(copies)
    from trtpack.runtime import graph_nodes

    with torch.cuda.device(device):  # the nodes run in the device's context, the one current here
        return graph_nodes.memcpy_nodes(graph.raw_cuda_graph(), graph.raw_cuda_graph_exec(), copies)


def _random_offset(device: torch.device) -> Optional[int]:
    """The offset of the device's default generator (None where this torch cannot say). The warm-up run advances it
    when the program draws random numbers; its graph must then replay through torch, which sets the graph's seed
    and offset before each launch (a launch of its own would draw the same numbers on every call). Other generators
    cannot be captured without being registered first (the capture fails, and the program runs eagerly)."""
    try:
        return torch.cuda.default_generators[device.index if device.index is not None else
                                             torch.cuda.current_device()].get_offset()
    except (AttributeError, IndexError, RuntimeError):
        return None


def _launch_of(in_node, out_node):
    from trtpack.runtime import graph_nodes

    return graph_nodes.launch_of(in_node, out_node)


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


__all__ = ["CudaBackend", "NotCaptured"]
