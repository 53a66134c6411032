"""The copies a whole-program CUDA graph makes for an ordinary call (runtime/cuda_graphs.py), and a call that
repoints them instead of copying with torch.

The graph copies each input from a slot into the buffer the program reads and each tensor output into a buffer of its
own (Copying, what is captured). Those copies are memcpy nodes of the graph (graph_nodes finds them); Repointing points
them at the caller's input tensors and at output tensors allocated for the call, then launches the graph, so a call
runs no torch copy and no clone. Whatever is not a node (no memcpy found, a layout one memcpy cannot copy, an address
the driver refuses) goes through the slot and the buffer with torch's copy_ and clone, as before nodes.
"""
import functools
from typing import Callable

import torch
from torch.utils import _pytree as pytree


class Copying:
    """What an ordinary call's graph captures: each input copied from its slot (where a call's data goes) into the
    buffer the program reads, the program, and each tensor output copied into a buffer of its own (`buffers`, made
    on the warm-up run; the outputs a replay leaves for clones). Those copies are the graph's memcpy nodes, which a
    call repoints to the caller's tensors (Repointing) where they were found."""

    def __init__(self, run: Callable, slots):
        self.run, self.slots = run, slots
        self.statics = [torch.empty_like(slot) for slot in slots]  # what the program's kernels read
        self.buffers, self.spec, self.sources = None, None, []

    def __call__(self, *args, **kwargs):
        for static, slot in zip(self.statics, self.slots):
            static.copy_(slot)
        leaves, self.spec = pytree.tree_flatten(self.run(*args, **kwargs))
        kept = self.buffers if self.buffers and len(self.buffers) == len(leaves) else [None] * len(leaves)
        self.buffers = [_buffer_for(leaf, buffer) for leaf, buffer in zip(leaves, kept)]
        for leaf, buffer in zip(leaves, self.buffers):
            if buffer is not None:
                buffer.copy_(leaf)
        self.sources = leaves
        return pytree.tree_unflatten([leaf if buffer is None else buffer
                                      for leaf, buffer in zip(leaves, self.buffers)], self.spec)

    def copies(self):
        """(source, destination, bytes) of each copy the last run made that a memcpy node may hold, in the order
        inputs then outputs, None where no single flat memcpy does it (nothing to copy, or another layout)."""
        ins = [(slot.data_ptr(), static.data_ptr(), _nbytes(slot)) if slot.numel() else None
               for slot, static in zip(self.slots, self.statics)]
        outs = [(leaf.data_ptr(), buffer.data_ptr(), _nbytes(buffer))
                if buffer is not None and buffer.numel() and flat(leaf) and leaf.stride() == buffer.stride()
                else None for leaf, buffer in zip(self.sources, self.buffers)]
        return ins + outs


def _buffer_for(leaf, buffer):
    if not isinstance(leaf, torch.Tensor):
        return None
    same = (buffer is not None and buffer.shape == leaf.shape and buffer.stride() == leaf.stride()
            and buffer.dtype == leaf.dtype and buffer.device == leaf.device)
    return buffer if same else torch.empty_like(leaf)


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def flat(t: torch.Tensor) -> bool:
    """Whether `t`'s elements fill exactly numel() * element_size() bytes from data_ptr() (so one flat memcpy
    copies it between tensors of its strides): a permutation of a contiguous tensor, no conj/neg view bits."""
    if t.is_conj() or t.is_neg():
        return False
    if t.is_contiguous():
        return True
    expected = 1
    for stride, size in sorted((stride, size) for size, stride in zip(t.shape, t.stride()) if size != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def _maker(buffer: torch.Tensor) -> Callable[[], torch.Tensor]:
    """() -> a new uninitialized tensor with `buffer`'s shape, strides, dtype and device."""
    if buffer.is_contiguous():  # empty_like of an expanded one-element tensor: the cheapest allocation from Python
        like = torch.empty((), dtype=buffer.dtype, device=buffer.device).expand(buffer.shape)
        return functools.partial(torch.empty_like, like, memory_format=torch.contiguous_format)
    return functools.partial(torch.empty_like, buffer)


def copy_into(slot: torch.Tensor, x: torch.Tensor) -> None:
    if x.requires_grad and torch.is_grad_enabled():  # keep the graph's buffer out of autograd
        with torch.no_grad():
            slot.copy_(x)
    else:
        slot.copy_(x)


class Repointing:
    """An ordinary graph call whose copies are the graph's own memcpy nodes, repointed per call: the graph reads each
    input where the caller's tensor is and writes each output into a tensor allocated for this call (on the current
    stream, from torch's allocator, like a clone). A node is repointed only when the address changes. Where a node
    was not found, or the driver refuses an address, that input goes through its slot (torch's copy) and that
    output is cloned from its buffer, as without nodes; a refused node stays that way."""

    def __init__(self, replay, slots, leaves, buffers, spec, nodes, launcher=lambda in_node, out_node: None):
        self.replay, self.slots, self.spec = replay, slots, spec
        self.in_nodes = list(nodes[:len(slots)])
        self.buffers = list(buffers)  # where each output's copy writes when its node is not repointed
        self.leaves = [leaf if buffer is None else None for leaf, buffer in zip(leaves, buffers)]  # non-tensors
        self.out_nodes = list(nodes[len(slots):])
        self.makers = [_maker(buffer) if buffer is not None else None for buffer in buffers]
        # the common call, without loops: one input and one tensor (or a tuple of them) out, every copy a node
        self.tuple = spec == pytree.tree_structure(tuple(buffers))
        self.fast = (len(slots) == 1 and bool(buffers) and all(self.in_nodes + self.out_nodes)
                     and (self.tuple or spec == pytree.tree_structure(buffers[0])))
        self.fast_outputs = list(zip(self.out_nodes, self.makers))
        self.single = self.fast and not self.tuple
        # one input, one output: both repoints and the launch in one native call, where the backend gives one
        self.launch = launcher(self.in_nodes[0], self.out_nodes[0]) if self.single else None
        self.complex = len(slots) == 1 and slots[0].is_complex()  # only complex inputs can carry a conj bit

    def __call__(self, args, kwargs):
        if len(args) == 1 and not kwargs:
            results = self.one(args[0])
            if results is not None:
                return results
        return self._any(args, kwargs)

    def one(self, x: torch.Tensor, stream=None):
        """The common call (one input, fast): its fresh outputs, or None where this call must take the general
        path (another layout, or an address the driver refused: the general path finds out which and falls back).
        With `stream` (the current stream's key, a cudaStream_t for CUDA) a single output goes through the native
        launch where there is one."""
        if not self.fast or not x.is_contiguous() or x.is_neg() or (self.complex and x.is_conj()):
            return None
        if self.launch is not None and stream is not None:
            y = self.makers[0]()
            # anything but a launch (another context current, a refused address, a failed launch) leaves the
            # call to the general path, which repoints from Python and replays through torch (raising its error)
            return y if self.launch(x.data_ptr(), y.data_ptr(), stream) == 0 else None
        node, address = self.in_nodes[0], x.data_ptr()
        if address != node.source and not node.set_source(address):
            return None
        results = []
        for node, make in self.fast_outputs:
            y = make()
            address = y.data_ptr()
            if address != node.destination and not node.set_destination(address):
                return None
            results.append(y)
        self.replay()
        return tuple(results) if self.tuple else results[0]

    def _any(self, args, kwargs):
        values = args if not kwargs else (*args, *kwargs.values())
        dense = []  # contiguous copies of inputs given in other layouts, alive until the replay is queued
        for i, x in enumerate(values):
            node = self.in_nodes[i]
            if node is None:
                copy_into(self.slots[i], x)
                continue
            if not x.is_contiguous() or x.is_conj() or x.is_neg():
                with torch.no_grad():
                    x = x.resolve_conj().resolve_neg().contiguous()
                dense.append(x)
            address = x.data_ptr()
            if address != node.source and not node.set_source(address):
                self._refused(self.in_nodes, i, node.set_source, self.slots[i].data_ptr())
                copy_into(self.slots[i], x)
        results = []
        for j, node in enumerate(self.out_nodes):
            if node is None:
                results.append(None)
                continue
            y = self.makers[j]()
            address = y.data_ptr()
            if address != node.destination and not node.set_destination(address):
                self._refused(self.out_nodes, j, node.set_destination, self.buffers[j].data_ptr())
                y = None
            results.append(y)
        self.replay()
        for j, y in enumerate(results):
            if y is None:
                buffer = self.buffers[j]
                results[j] = buffer.clone() if buffer is not None else self.leaves[j]
        return pytree.tree_unflatten(results, self.spec)

    def _refused(self, nodes, index, point, own_address):
        """The driver refused an address: the node goes back to its own buffer and stays there."""
        nodes[index] = None
        self.fast = False
        if not point(own_address):
            from trtpack.errors import TrtpackError
            raise TrtpackError("trtpack: CUDA refused to point a CUDA graph's copy back at its own buffer; this "
                               "program's graphs are unusable: call module.cuda_graphs.clear(), or load it without "
                               "cuda_graphs")


__all__ = ["Copying", "Repointing", "copy_into", "flat"]
