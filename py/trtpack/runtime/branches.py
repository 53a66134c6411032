"""Fallback decided once: `torch.cond(engine_usable(...), engine, reference, operands)` costs ~600 µs per call in eager
mode (the cond higher-order op's dispatch), although whether an engine runs here is settled once per process and
device. `resolve` rewrites each such cond into a call that asks engine_usable once per device and from then on
calls the chosen branch directly.

The saved artifact keeps the portable torch.cond program: trtpack.save writes the program compile recorded, and
exporting a resolved module traces the cond again (while tracing, the branch call emits the cond op).
"""
import torch
from torch._subclasses.fake_tensor import FakeTensor


class DecidedBranch(torch.nn.Module):
    """engine_branch where engine_usable says the engine runs on the inputs' device, else reference_branch; the
    verdict is asked once per device and kept."""

    def __init__(self, engine_branch: torch.nn.Module, reference_branch: torch.nn.Module):
        super().__init__()
        self.engine_branch = engine_branch
        self.reference_branch = reference_branch
        self._chosen = {}  # device -> the chosen branch's forward

    def forward(self, usable_inputs, plan, meta, operands):
        if torch.compiler.is_compiling() or any(isinstance(t, FakeTensor) for t in operands):
            usable = torch.ops.trtpack.engine_usable(list(usable_inputs), plan, meta)
            return torch.ops.higher_order.cond(usable, self.engine_branch, self.reference_branch, tuple(operands))
        device = usable_inputs[0].device if usable_inputs else plan.device
        chosen = self._chosen.get(device)
        if chosen is None:
            usable = bool(torch.ops.trtpack.engine_usable(list(usable_inputs), plan, meta))
            chosen = self._chosen[device] = (self.engine_branch if usable else self.reference_branch).forward
        return chosen(*operands)

    def chosen(self) -> dict:
        """{device: 'engine' | 'reference'} for every device asked so far."""
        return {device: "engine" if fn == self.engine_branch.forward else "reference"
                for device, fn in self._chosen.items()}


def _is_engine_cond(node: torch.fx.Node) -> bool:
    if node.op != "call_function" or node.target is not torch.ops.higher_order.cond:
        return False
    predicate = node.args[0]
    return isinstance(predicate, torch.fx.Node) and predicate.target is torch.ops.trtpack.engine_usable.default


def resolve(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Rewrites, in place, every `cond(engine_usable(inputs, plan, meta), engine, reference, operands)` of `gm` into a
    DecidedBranch call (submodule `decided_<i>`); returns `gm`. Other conds and graphs without one are left as they
    are, and resolving twice changes nothing."""
    graph = gm.graph
    conds = [node for node in graph.nodes if _is_engine_cond(node)]
    for index, node in enumerate(conds):
        predicate, engine, reference, operands = node.args[:4]
        name = f"decided_{index}"
        while hasattr(gm, name):
            name += "_"
        gm.add_submodule(name, DecidedBranch(getattr(gm, engine.target), getattr(gm, reference.target)))
        usable_inputs, plan, meta = predicate.args
        with graph.inserting_before(node):
            call = graph.call_module(name, (usable_inputs, plan, meta, tuple(operands)))
        call.meta = dict(node.meta)
        node.replace_all_uses_with(call)
        graph.erase_node(node)
        for unused in (predicate, engine, reference):
            if not unused.users:
                graph.erase_node(unused)
    if conds:
        gm.delete_all_unused_submodules()
        gm.recompile()
    return gm
