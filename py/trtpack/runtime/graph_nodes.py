"""The memcpy nodes of a captured CUDA graph, found and repointed through the CUDA driver (libcuda.so.1, ctypes).

A whole-program graph (runtime/cuda_graphs.py) copies each input from a slot into the buffer its kernels read and
each output into a buffer of its own, inside the graph; torch captures those copies as memcpy nodes. Repointing a
node before a launch (cuGraphExecMemcpyNodeSetParams) makes that launch read the caller's tensor and write a freshly
allocated one, in place of torch's copy in and clone out, which each cost the host a kernel launch. The CUDA
documentation: a change to a graph exec's node takes effect at its next launch; launches already queued are not
affected. Only nodes whose source and destination are both plain device memory are repointed, and only to device
memory of the same context (anything the driver refuses is reported, and the caller falls back to the copies).
For a graph with one input and one output, launch_of gives both repoints and the launch in one native call
(runtime/graph_launch.c, libtrtpack_graph_launch.so).
"""
import ctypes
import functools
from typing import Callable, List, Optional, Sequence, Tuple

_MEMCPY = 1                     # CU_GRAPH_NODE_TYPE_MEMCPY
_DEVICE, _UNIFIED = 2, 4        # CU_MEMORYTYPE_DEVICE, CU_MEMORYTYPE_UNIFIED


class Memcpy3D(ctypes.Structure):
    """CUDA_MEMCPY3D (cuda.h), 200 bytes."""
    _fields_ = [(f"{side}{name}", kind) for side in ("src", "dst") for name, kind in (
        ("XInBytes", ctypes.c_size_t), ("Y", ctypes.c_size_t), ("Z", ctypes.c_size_t), ("LOD", ctypes.c_size_t),
        ("MemoryType", ctypes.c_int), ("Host", ctypes.c_void_p), ("Device", ctypes.c_uint64),
        ("Array", ctypes.c_void_p), ("Reserved", ctypes.c_void_p), ("Pitch", ctypes.c_size_t),
        ("Height", ctypes.c_size_t))] + [
        ("WidthInBytes", ctypes.c_size_t), ("Height", ctypes.c_size_t), ("Depth", ctypes.c_size_t)]


@functools.lru_cache(maxsize=None)
def driver() -> Optional[ctypes.CDLL]:
    """libcuda.so.1 with the five entry points used here typed, or None where it cannot be loaded."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    p, size = ctypes.c_void_p, ctypes.c_size_t
    for name, argtypes in (("cuGraphGetNodes", [p, p, ctypes.POINTER(size)]),
                           ("cuGraphNodeGetType", [p, ctypes.POINTER(ctypes.c_int)]),
                           ("cuGraphMemcpyNodeGetParams", [p, ctypes.POINTER(Memcpy3D)]),
                           ("cuGraphExecMemcpyNodeSetParams", [p, p, ctypes.POINTER(Memcpy3D), p]),
                           ("cuCtxGetCurrent", [ctypes.POINTER(p)])):
        function = getattr(lib, name, None)
        if function is None:
            return None
        function.argtypes, function.restype = argtypes, ctypes.c_int
    return lib


class Node:
    """One memcpy node of a graph exec, repointable: `set_source(address)` / `set_destination(address)` return
    whether the driver took it (the node keeps its previous address when not). `source` and `destination` are
    where it points now (its `params`, which a native launch also writes)."""
    __slots__ = ("params", "graph_exec", "node", "context", "_set", "_byref")

    def __init__(self, lib, graph_exec: int, node: int, params: Memcpy3D, context: int):
        self.params = params
        self.graph_exec, self.node, self.context = (ctypes.c_void_p(graph_exec), ctypes.c_void_p(node),
                                                    ctypes.c_void_p(context))
        # without argtypes: the arguments are ctypes objects already, passed as they are
        self._set, self._byref = lib["cuGraphExecMemcpyNodeSetParams"], ctypes.byref(params)

    @property
    def source(self) -> int:
        return self.params.srcDevice

    @property
    def destination(self) -> int:
        return self.params.dstDevice

    def set_source(self, address: int) -> bool:
        previous, self.params.srcDevice = self.params.srcDevice, address
        if self._set(self.graph_exec, self.node, self._byref, self.context) == 0:
            return True
        self.params.srcDevice = previous
        return False

    def set_destination(self, address: int) -> bool:
        previous, self.params.dstDevice = self.params.dstDevice, address
        if self._set(self.graph_exec, self.node, self._byref, self.context) == 0:
            return True
        self.params.dstDevice = previous
        return False


class _GraphCall(ctypes.Structure):
    """trtpack_graph_call (runtime/graph_launch.c)."""
    _fields_ = [(name, ctypes.c_void_p) for name in (
        "set_memcpy_params", "launch", "current_context", "graph_exec", "context", "in_node", "in_params",
        "out_node", "out_params")]


LAUNCHED, OTHER_CONTEXT, SOURCE_REFUSED, DESTINATION_REFUSED, LAUNCH_FAILED = 0, 1, 2, 3, 16


@functools.lru_cache(maxsize=None)
def _launch_function():
    """trtpack_graph_launch from libtrtpack_graph_launch.so, typed, or None where the library is missing."""
    from trtpack import _native

    path = _native.find("libtrtpack_graph_launch.so", "runtime")
    try:
        function = ctypes.CDLL(path).trtpack_graph_launch if path else None
    except (OSError, AttributeError):
        return None
    if function is not None:
        function.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_void_p]
        function.restype = ctypes.c_int
    return function


def launch_of(in_node: Node, out_node: Node, lib=None, function=None) -> Optional[Callable[[int, int, int], int]]:
    """A graph exec's one input node and one output node, repointed and launched in one native call:
    `launch(source, destination, stream)` points the input copy at `source` and the output copy at `destination`
    (only where they changed), launches the graph on `stream` (a cudaStream_t as an int) and returns LAUNCHED, or
    OTHER_CONTEXT (another CUDA context is current: nothing done), SOURCE_REFUSED / DESTINATION_REFUSED (the driver
    refused that address: nothing launched), LAUNCH_FAILED + the CUresult. It replaces the node calls and torch's
    CUDAGraph.replay(), so only for a graph whose replay needs nothing of torch's (no random numbers drawn). None
    where the library or the driver is missing. `lib` and `function` (libcuda and trtpack_graph_launch) default to
    the real ones."""
    lib, function = lib or driver(), function or _launch_function()
    if function is None or lib is None or getattr(lib, "cuGraphLaunch", None) is None:
        return None
    address = lambda f: ctypes.cast(f, ctypes.c_void_p).value  # noqa: E731
    call = _GraphCall(address(lib.cuGraphExecMemcpyNodeSetParams), address(lib.cuGraphLaunch),
                      address(lib.cuCtxGetCurrent), in_node.graph_exec.value, in_node.context.value,
                      in_node.node.value, ctypes.addressof(in_node.params), out_node.node.value,
                      ctypes.addressof(out_node.params))
    call.nodes = (in_node, out_node)  # the params it points at live as long as it does
    return functools.partial(function, ctypes.byref(call))  # byref keeps `call` alive


def memcpy_nodes(graph: int, graph_exec: int, copies: Sequence[Tuple[int, int, int]]) -> List[Optional[Node]]:
    """For each (source address, destination address, bytes) copy captured in `graph` (a CUgraph, instantiated as
    `graph_exec`), its node, or None where no single plain device-to-device memcpy node matches it."""
    lib = driver()
    if lib is None or not copies:
        return [None] * len(copies)
    count = ctypes.c_size_t(0)
    context = ctypes.c_void_p()
    if lib.cuGraphGetNodes(graph, None, ctypes.byref(count)) != 0 or lib.cuCtxGetCurrent(ctypes.byref(context)) != 0:
        return [None] * len(copies)
    handles = (ctypes.c_void_p * count.value)()
    if count.value and lib.cuGraphGetNodes(graph, handles, ctypes.byref(count)) != 0:
        return [None] * len(copies)
    found = {}  # (src, dst, bytes) -> [(node, params)]
    kind = ctypes.c_int()
    for handle in handles[:count.value]:
        params = Memcpy3D()
        if (lib.cuGraphNodeGetType(handle, ctypes.byref(kind)) != 0 or kind.value != _MEMCPY
                or lib.cuGraphMemcpyNodeGetParams(handle, ctypes.byref(params)) != 0):
            continue
        plain = (params.srcMemoryType in (_DEVICE, _UNIFIED) and params.dstMemoryType in (_DEVICE, _UNIFIED)
                 and params.Height <= 1 and params.Depth <= 1 and not params.srcXInBytes and not params.dstXInBytes
                 and not params.srcY and not params.srcZ and not params.dstY and not params.dstZ)
        if plain:
            found.setdefault((params.srcDevice, params.dstDevice, params.WidthInBytes), []).append((handle, params))
    nodes = []
    for copy in copies:
        matches = found.get(tuple(copy), [])
        nodes.append(Node(lib, graph_exec, *matches[0], context.value) if len(matches) == 1 else None)
    return nodes


__all__ = ["Memcpy3D", "Node", "driver", "launch_of", "memcpy_nodes"]
