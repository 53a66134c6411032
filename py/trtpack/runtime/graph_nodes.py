"""The memcpy nodes of a captured CUDA graph, found and repointed through the CUDA driver (libcuda.so.1, ctypes).

A whole-program graph (runtime/cuda_graphs.py) copies each input from a slot into the buffer its kernels read and
each output into a buffer of its own, inside the graph; torch captures those copies as memcpy nodes. Repointing a
node before a launch (cuGraphExecMemcpyNodeSetParams) makes that launch read the caller's tensor and write a freshly
allocated one, in place of torch's copy in and clone out, which each cost the host a kernel launch. The CUDA
documentation: a change to a graph exec's node takes effect at its next launch; launches already queued are not
affected. Only nodes whose source and destination are both plain device memory are repointed, and only to device
memory of the same context (anything the driver refuses is reported, and the caller falls back to the copies).
"""
import ctypes
import functools
from typing import List, Optional, Sequence, Tuple

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
    whether the driver took it (the node keeps its previous address when not)."""
    __slots__ = ("params", "_set", "_exec", "_node", "_byref", "_context")

    def __init__(self, lib, graph_exec: int, node: int, params: Memcpy3D, context: int):
        self.params, self._set = params, lib.cuGraphExecMemcpyNodeSetParams
        # converted once: a call passes these as they are
        self._exec, self._node, self._context = (ctypes.c_void_p(graph_exec), ctypes.c_void_p(node),
                                                 ctypes.c_void_p(context))
        self._byref = ctypes.byref(params)

    def set_source(self, address: int) -> bool:
        previous, self.params.srcDevice = self.params.srcDevice, address
        if self._set(self._exec, self._node, self._byref, self._context) == 0:
            return True
        self.params.srcDevice = previous
        return False

    def set_destination(self, address: int) -> bool:
        previous, self.params.dstDevice = self.params.dstDevice, address
        if self._set(self._exec, self._node, self._byref, self._context) == 0:
            return True
        self.params.dstDevice = previous
        return False


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


__all__ = ["Memcpy3D", "Node", "driver", "memcpy_nodes"]
