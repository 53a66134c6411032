"""The short way through a loaded program. A plain call, the common one (inputs that torch's input check accepts,
given as plain tensors, nothing tracing, no torch function or dispatch mode, no hooks but torch's own), runs a copy
of the program's graph compiled without its pytree handling, with each engine called straight through the Python
executor instead of through torch's dispatcher, under no_grad. It computes what the module's full call computes;
any other call takes the full call, which checks, decides and words every refusal as before.

Why: the full call of a loaded `.ep` pays three nn.Module calls, torch's hooks, pytree flattening of the inputs and
outputs, and torch's dispatch into a Python kernel for each engine: more host time than the engines' own calls
(docs/BENCHMARKS.md, "Per-call cost after the short path").
"""
from typing import Optional

import torch
from torch.nn.modules import module as nn_module
from torch.utils import _pytree as pytree

from trtpack.runtime import branches, executor as python_executor, selection
from trtpack.runtime.graph_forward import compile_graph

EXECUTE = torch.ops.trtpack.execute_engine.default
FULL_CALL = object()  # what a ShortPath returns for a call it does not take
_TORCH_HOOKS = ("_create_stateful_graph_module",)  # torch's own hooks on an unlifted program (nn.Module inputs)


def engine_call(inputs, plan, meta):
    """execute_engine as a short path calls it: the Python executor itself where it runs this process's CUDA
    engines and the inputs are on CUDA (the dispatcher's way into a Python kernel costs about as much as the
    executor's own work), else the op (the C++ executor, a CPU kernel)."""
    if inputs and inputs[0].is_cuda and selection.active() == "python":
        ex = python_executor.executor()
        if ex is not None:
            return ex.execute_engine(inputs, plan, meta)
    return EXECUTE(inputs, plan, meta)


class ShortPath:
    """`short(*args, **kwargs)`: the program's outputs, or FULL_CALL for a call it does not take."""

    def __init__(self, gm: torch.fx.GraphModule, runner: torch.nn.Module, check, forward, out_spec):
        self.gm, self.runner, self.check, self.forward, self.out_spec = gm, runner, check, forward, out_spec
        self.by_devices = {}  # a fallback program (forward None): id of its chosen graph -> the flat forward
        self.single = out_spec.is_leaf()
        self.hooks = (len(gm._forward_pre_hooks), len(gm._forward_hooks))
        self.calls = 0  # calls taken (tests read it)

    def _plain(self, flat, args, kwargs) -> bool:
        gm, runner = self.gm, self.runner
        if (len(gm._forward_pre_hooks), len(gm._forward_hooks)) != self.hooks or runner._forward_pre_hooks \
                or runner._forward_hooks or nn_module._global_forward_pre_hooks or nn_module._global_forward_hooks:
            return False  # someone added hooks: they run on the full call
        if torch._C._len_torch_function_stack() or torch._C._len_torch_dispatch_stack() \
                or torch.compiler.is_compiling() or not gm.validate_inputs:
            return False
        for index, _ in self.check.tensors:
            if type(flat[index]) is not torch.Tensor:  # subclasses (fake, functional, parameters): the full call
                return False
        return self.check.accepts(args, kwargs)

    def _decided(self, args, kwargs):
        """A fallback program's flat forward for these inputs' devices; None until the full call has decided its
        branches for them (or where a chosen branch stays a submodule call)."""
        graph = branches.decided_graph_for(self.gm, args, kwargs)
        if graph is None:
            return None
        found = self.by_devices.get(id(graph), False)
        if found is False:
            found = self.by_devices[id(graph)] = _flat_forward(self.gm, graph)
        return found

    def __call__(self, *args, **kwargs):
        names = self.check.kwarg_names
        if len(kwargs) != len(names):
            return FULL_CALL
        flat = args
        if kwargs:
            if any(name not in kwargs for name in names):
                return FULL_CALL
            flat = (*args, *[kwargs[name] for name in names])
        if len(args) != self.check.num_args or not self._plain(flat, args, kwargs):
            return FULL_CALL
        forward = self.forward or self._decided(args, kwargs)
        if forward is None:
            return FULL_CALL
        grad = torch.is_grad_enabled()
        torch._C._set_grad_enabled(False)
        try:
            out = forward(*flat)
        finally:
            torch._C._set_grad_enabled(grad)
        self.calls += 1
        return out[0] if self.single else pytree.tree_unflatten(list(out), self.out_spec)


def build(gm: torch.fx.GraphModule, runner: torch.nn.Module, check) -> Optional[ShortPath]:
    """The short path of an unlifted exported-program module whose fast input check is `check` (input_check.install),
    run inside `runner`; None where the program keeps the full call only: no fast check, hooks other than torch's,
    or submodule calls other than decided fallback branches (e.g. torch's guard function). A fallback program
    (runtime/branches.py) gets one per set of input devices once its branches are decided for them."""
    if check is None or getattr(gm, "_out_spec", None) is None:
        return None
    hooks = [*gm._forward_pre_hooks.values(), *gm._forward_hooks.values()]
    if any(not getattr(h, "_trtpack_fast", False) and not any(t in getattr(h, "__qualname__", "") for t in _TORCH_HOOKS)
           for h in hooks):
        return None
    if branches.has_decided_branches(gm):
        return ShortPath(gm, runner, check, None, gm._out_spec)
    forward = _flat_forward(gm, gm.graph)
    return ShortPath(gm, runner, check, forward, gm._out_spec) if forward is not None else None


def _flat_forward(gm: torch.fx.GraphModule, source: torch.fx.Graph):
    """`source` (a graph of gm) compiled without its pytree handling, taking the flat inputs and returning the flat
    outputs, engines called through engine_call; None where it calls submodules (their own calling conventions)."""
    if any(node.op == "call_module" for node in source.nodes):
        return None
    graph = torch.fx.Graph()
    env = {}
    for node in source.nodes:
        if node.op == "output":
            leaves = node.args[0] if isinstance(node.args[0], (tuple, list)) else (node.args[0],)
            graph.output(tuple(torch.fx.map_arg(tuple(leaves), env.__getitem__)))
            continue
        env[node] = graph.node_copy(node, env.__getitem__)
        if node.op == "call_function" and node.target is EXECUTE:
            env[node].target = engine_call
    return compile_graph(gm, graph)


__all__ = ["FULL_CALL", "ShortPath", "build", "engine_call"]
