"""Constant folding before partitioning: a subgraph whose inputs are only weights, constants and static sizes (a
mask written slice by slice, a coordinate grid from linspace, a weight standardized on every call) is computed once
at compile time and becomes one constant. Its ops then neither stay in PyTorch (fill, linspace, detach are not in the
support table) nor split a region.

Rules: an ATen op is foldable when every tensor it reads is foldable (or a weight) and no argument is a symbolic
size; it must be functional and deterministic (no in-place write, no random op). Only the frontier of the folded
part becomes a constant (what an unfoldable op or the output reads), computed on the weights' device, eagerly, once:
no trace. A frontier value larger than MAX_BYTES (and larger than the weights it reads, so folding would grow the
program) is not folded; nor is a bare weight or a view of one (folding it would only copy it).
"""
import operator
from dataclasses import dataclass, field

import torch
from torch._guards import detect_fake_mode
from torch.fx import GraphModule, Node

from trtpack.compiler import support, views

MAX_BYTES = 16 << 20
PREFIX = "_trtpack_folded_"


@dataclass
class Folded:
    constants: list = field(default_factory=list)   # {"node", "op", "shape", "dtype", "bytes", "ops"} per constant
    ops: int = 0                                    # compute ops folded away

    def summary(self) -> dict:
        return {"constants": self.constants, "ops": self.ops}


def _foldable_op(node: Node) -> bool:
    if node.op != "call_function":
        return False
    if node.target is operator.getitem:
        return True
    target = node.target
    if not isinstance(target, torch._ops.OpOverload) or support.is_sym_node(node):
        return False
    if target._schema.is_mutable or torch.Tag.nondeterministic_seeded in target.tags:
        return False
    return target.namespace in ("aten", "prims")


def _symbolic(value) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_symbolic(v) for v in value)
    return isinstance(value, (torch.SymInt, torch.SymFloat, torch.SymBool))


def _tensor_bytes(value) -> int:
    values = value if isinstance(value, (list, tuple)) else [value]
    return sum(v.numel() * v.element_size() for v in values if isinstance(v, torch.Tensor))


def fold(gm: GraphModule) -> Folded:
    """Folds `gm` (modified in place) and says what became constants."""
    result = Folded()
    fake_mode = detect_fake_mode([n.meta.get("val") for n in gm.graph.nodes if n.op == "placeholder"])
    if fake_mode is None:
        return result
    foldable, weights = set(), set()
    for node in gm.graph.nodes:
        if node.op == "get_attr" and isinstance(_attr(gm, node.target), torch.Tensor):
            weights.add(node)
        elif _foldable_op(node) and all(arg in foldable or arg in weights for arg in node.all_input_nodes) \
                and not _symbolic([node.args, list(node.kwargs.values())]) and not _symbolic(node.meta.get("val")):
            foldable.add(node)
    frontier = [n for n in gm.graph.nodes if n in foldable and n.target is not operator.getitem
                and any(user not in foldable for user in n.users)]
    frontier += [n for n in gm.graph.nodes if n in foldable and n.target is operator.getitem
                 and any(user not in foldable for user in n.users)]
    if not frontier:
        return result
    values = {}

    def evaluate(node):
        if node in values:
            return values[node]
        if node in weights:
            values[node] = _attr(gm, node.target)
        else:
            args = torch.fx.node.map_arg(node.args, evaluate)
            kwargs = torch.fx.node.map_arg(node.kwargs, evaluate)
            values[node] = node.target(*args, **kwargs)
        return values[node]

    index = 0
    with torch.no_grad():
        for node in frontier:
            inside = _upstream(node, foldable)
            compute = [n for n in inside if support.is_compute_node(n)]
            if not compute or all(_is_view(n) or n.target in views.FRESH_BUFFERS for n in compute):
                continue  # a weight, a view of one, a fresh buffer: folding would only copy it (or hide the buffer
                # views.resolve recognises)
            value = evaluate(node)
            if not isinstance(value, torch.Tensor):
                continue
            size = _tensor_bytes(value)
            read = sum(_tensor_bytes(_attr(gm, n.target)) for n in _upstream(node, weights | foldable)
                       if n in weights)
            if size > MAX_BYTES and size > read:
                continue
            name = f"{PREFIX}{index}"
            index += 1
            setattr(gm, name, value.detach().clone(memory_format=torch.contiguous_format))
            with gm.graph.inserting_before(node):
                constant = gm.graph.get_attr(name)
            constant.meta["val"] = fake_mode.from_tensor(getattr(gm, name), static_shapes=True)
            for key in ("stack_trace", "nn_module_stack"):
                if key in node.meta:
                    constant.meta[key] = node.meta[key]
            for user in [u for u in node.users if u not in foldable]:
                user.replace_input_with(node, constant)
            result.constants.append({"node": node.name, "op": _name(node), "shape": list(value.shape),
                                     "dtype": str(value.dtype).removeprefix("torch."), "bytes": size,
                                     "ops": len(compute)})
    for node in reversed(list(gm.graph.nodes)):
        if node in foldable and not node.users:
            result.ops += support.is_compute_node(node)
            gm.graph.erase_node(node)
    for node in [n for n in gm.graph.nodes if n in weights and not n.users]:
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.recompile()
    return result


def _upstream(node: Node, within: set) -> list:
    seen, stack = set(), [node]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        stack.extend(arg for arg in current.all_input_nodes if arg in within)
    return list(seen)


_VIEWS = {torch.ops.aten.view.default, torch.ops.aten.reshape.default, torch.ops.aten.t.default,
          torch.ops.aten.permute.default, torch.ops.aten.transpose.int, torch.ops.aten.expand.default,
          torch.ops.aten.unsqueeze.default, torch.ops.aten.squeeze.dim, torch.ops.aten.alias.default,
          torch.ops.aten.detach.default, torch.ops.aten._to_copy.default, torch.ops.aten.clone.default}


def _is_view(node: Node) -> bool:
    return node.target in _VIEWS


def _name(node: Node) -> str:
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        return f"{target.namespace}.{target.__name__}"
    return getattr(target, "__name__", str(target))


def _attr(module, target: str):
    for part in target.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module
