"""Stage 2b: group supported nodes into regions (connected, acyclic); everything else stays PyTorch.

Before partitioning, views that are only layout (alias, as_strided of a contiguous view, copy into a fresh buffer)
are rewritten as plain ops (views.py). Regions come from torch's CapabilityBasedPartitioner (which refuses merges
that would create cycles), are split into connected pieces, and are kept with at least `min_block_size` compute
ops, like Torch-TensorRT; a shorter supported piece that touches a kept region joins it when that makes no cycle
(e.g. the constant causal-mask pieces of a decoder). Each kept region is fused into a submodule `trt_region_<i>`
of the returned GraphModule. `Partitioning.splits` says why the regions could not be one.
"""
import collections
import operator
from dataclasses import dataclass, field

import torch
from torch.fx import GraphModule, Node
from torch.fx.passes.infra.partitioner import CapabilityBasedPartitioner
from torch.fx.passes.operator_support import OperatorSupportBase
from torch.fx.passes.utils.fuser_utils import fuse_by_partitions

from trtpack.compiler import support, views

REGION_PREFIX = "trt_region_"


@dataclass
class LeftOut:
    """A compute op that stays in PyTorch, and why."""
    node: str
    op: str
    reason: str
    location: str


@dataclass
class Partitioning:
    module: GraphModule                       # the graph with each region fused into submodule `trt_region_<i>`
    regions: list = field(default_factory=list)          # region names, in graph order
    region_ops: dict = field(default_factory=dict)       # name -> {op name: count}
    left_out: list = field(default_factory=list)         # [LeftOut]
    splits: list = field(default_factory=list)           # [LeftOut] PyTorch ops that sit between two regions
    refused: list = field(default_factory=list)          # split_region's caller: the nodes TensorRT refused


def source_location(node: Node) -> str:
    """The innermost user frame of the node's stack trace: 'file:line in function' (or '' if unknown)."""
    trace = (node.meta.get("stack_trace") or "").strip().splitlines()
    frames = [line.strip() for line in trace if line.strip().startswith("File ")]
    return frames[-1] if frames else ""


def op_name(node: Node) -> str:
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        return f"{target.namespace}.{target.__name__}"
    return getattr(target, "__name__", str(target))


class _TableSupport(OperatorSupportBase):
    def is_node_supported(self, submodules, node: Node) -> bool:
        if node.op != "call_function":
            return False
        if node.target is operator.getitem:  # goes with its producer
            return self.is_node_supported(submodules, node.args[0])
        return support.unsupported_reason(node) is None


def _clone_sym_tree(graph, node: Node, before: Node, memo: dict) -> Node:
    """Copies the shape arithmetic that computes `node` right before `before`; tensors it reads stay shared."""
    if node in memo:
        return memo[node]
    if not (node.op == "call_function" and support.is_sym_node(node)):
        return node
    with graph.inserting_before(before):
        copy = graph.node_copy(node, lambda arg: _clone_sym_tree(graph, arg, before, memo))
    memo[node] = copy
    return copy


def _split_get_attrs(gm: GraphModule) -> None:
    """One get_attr node per user, so every weight can travel with the region that uses it."""
    for node in list(gm.graph.nodes):
        if node.op != "get_attr" or len(node.users) < 2:
            continue
        for user in list(node.users)[1:]:
            with gm.graph.inserting_before(user):
                copy = gm.graph.get_attr(node.target)
            copy.meta = dict(node.meta)
            user.replace_input_with(node, copy)


def _connected_pieces(nodes: set) -> list:
    pieces, seen = [], set()
    for start in nodes:
        if start in seen:
            continue
        piece, stack = set(), [start]
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            piece.add(node)
            stack.extend(n for n in list(node.all_input_nodes) + list(node.users) if n in nodes and n not in seen)
        pieces.append(piece)
    return pieces


def _make_self_contained(gm: GraphModule, nodes: set) -> None:
    """Regions exchange only tensors with the rest: shape arithmetic is copied in (for SymInts a region reads)
    and out (for SymInts read outside); weights read by the region join it."""
    graph = gm.graph
    for node in [n for n in graph.nodes if n in nodes]:
        memo = {}
        for arg in node.all_input_nodes:
            if arg not in nodes and arg.op == "call_function" and support.is_sym_node(arg):
                copy = _clone_sym_tree(graph, arg, node, memo)
                node.replace_input_with(arg, copy)
        nodes.update(memo.values())
        nodes.update(arg for arg in node.all_input_nodes if arg.op == "get_attr")
    for node in [n for n in graph.nodes if n in nodes and support.is_sym_node(n)]:
        for user in [u for u in node.users if u not in nodes]:
            memo = {}
            user.replace_input_with(node, _clone_sym_tree(graph, node, user, memo))


def _neighbours(piece: set) -> set:
    return {n for node in piece for n in list(node.all_input_nodes) + list(node.users)} - piece


def _makes_cycle(union: set) -> bool:
    """True when some path leaves `union` and comes back into it (fusing it would then make a cycle)."""
    stack = [user for node in union for user in node.users if user not in union]
    seen = set()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        for user in node.users:
            if user in union:
                return True
            stack.append(user)
    return False


def _join_short_blocks(kept: list, small: list) -> list:
    """Each short supported piece joins a kept region it touches when the union has no cycle; kept regions that
    then touch merge too. Returns the short pieces that could not join."""
    changed = True
    while changed:
        changed = False
        for piece in list(small):
            around = _neighbours(piece)
            for region in kept:
                if around & region and not _makes_cycle(region | piece):
                    region |= piece
                    small.remove(piece)
                    changed = True
                    break
        for i, region in enumerate(kept):
            for other in kept[i + 1:]:
                if _neighbours(region) & other and not _makes_cycle(region | other):
                    region |= other
                    kept.remove(other)
                    changed = True
                    break
    return small


def _between_regions(node: Node, kept: list) -> bool:
    """True when `node` reads (transitively) from one region and feeds (transitively) another."""
    def reaches(start, step):
        seen, stack = set(), list(step(start))
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            for i, region in enumerate(kept):
                if current in region:
                    yield i
                    break
            else:
                stack.extend(step(current))
    # A region both upstream and downstream of a node outside it would be a cycle: these are two regions.
    return (next(reaches(node, lambda n: n.all_input_nodes), None) is not None
            and next(reaches(node, lambda n: n.users), None) is not None)


def partition(gm: GraphModule, min_block_size: int) -> Partitioning:
    """Fuses supported regions of `gm` (modified in place) into submodules and reports what stays in PyTorch."""
    for node in [n for n in gm.graph.nodes if n.op == "call_function" and n.target in support.DROPPED_OPS]:
        gm.graph.erase_node(node)
    views.resolve(gm)
    _split_get_attrs(gm)
    proposed = CapabilityBasedPartitioner(gm, _TableSupport(), allows_single_node_partition=True).propose_partitions()
    order = {node: i for i, node in enumerate(gm.graph.nodes)}
    pieces = [piece for p in proposed for piece in _connected_pieces(set(p.nodes))]
    pieces.sort(key=lambda piece: min(order[n] for n in piece))

    kept, small = [], []
    for piece in pieces:
        count = sum(support.is_compute_node(n) for n in piece)
        (kept if count >= max(min_block_size, 1) else small).append(piece)
    small = _join_short_blocks(kept, small)
    too_small = {n: sum(support.is_compute_node(m) for m in piece) for piece in small for n in piece}
    kept.sort(key=lambda piece: min(order[n] for n in piece))

    result = Partitioning(module=gm)
    for node in gm.graph.nodes:
        if not support.is_compute_node(node) or any(node in piece for piece in kept):
            continue
        reason = support.unsupported_reason(node)
        if reason is None:
            reason = f"in a block of {too_small.get(node, 0)} convertible ops, fewer than min_block_size={min_block_size}"
        result.left_out.append(LeftOut(node.name, op_name(node), reason, source_location(node)))
        if len(kept) > 1 and _between_regions(node, kept):
            result.splits.append(result.left_out[-1])

    for piece in kept:
        _make_self_contained(gm, piece)
    for i, piece in enumerate(kept):
        name = f"{REGION_PREFIX}{i}"
        result.regions.append(name)
        counts = collections.Counter(op_name(n) for n in piece if support.is_compute_node(n))
        result.region_ops[name] = dict(sorted(counts.items()))
    if kept:
        fuse_by_partitions(gm, [dict.fromkeys(sorted(piece, key=lambda n: order.get(n, -1))) for piece in kept],
                           REGION_PREFIX)
    gm.graph.lint()
    gm.recompile()
    return result


def _inline(gm: GraphModule, name: str) -> dict:
    """Puts region `name`'s nodes back into `gm` where it was called; its weights stay on the region module, read
    through `name.<target>`. Returns {the region's node name: its copy in gm}."""
    region = getattr(gm, name)
    call = next(n for n in gm.graph.nodes if n.op == "call_module" and n.target == name)
    env = dict(zip([n for n in region.graph.nodes if n.op == "placeholder"], call.args))
    copies = {}
    with gm.graph.inserting_before(call):
        for node in region.graph.nodes:
            if node.op == "placeholder":
                continue
            if node.op == "output":
                results = node.args[0]
                break
            if node.op == "get_attr":
                env[node] = gm.graph.get_attr(f"{name}.{node.target}")
                env[node].meta = dict(node.meta)
            else:
                env[node] = gm.graph.node_copy(node, lambda arg: env[arg])
            copies[node.name] = env[node]
    if isinstance(results, (tuple, list)):
        for user in list(call.users):  # getitem(call, i)
            user.replace_all_uses_with(env[results[user.args[1]]])
            gm.graph.erase_node(user)
    else:
        call.replace_all_uses_with(env[results])
    gm.graph.erase_node(call)
    return copies


def split_region(gm: GraphModule, name: str, refused: dict, min_block_size: int) -> Partitioning:
    """Region `name` without the nodes TensorRT refused ({region node name: reason}): the region is put back into
    `gm`, the refused nodes stay in PyTorch, and the rest is partitioned again (the support table, connected pieces,
    min_block_size, as `partition` does) into regions `<name>_<i>`. Returns the new regions, their ops, and what
    else is left out (pieces now too short)."""
    copies = _inline(gm, name)
    inlined = set(copies.values())
    refused_nodes = {copies[n] for n in refused if n in copies}
    table = _TableSupport()

    class Remaining(OperatorSupportBase):
        def is_node_supported(self, submodules, node: Node) -> bool:
            return node in inlined and node not in refused_nodes and table.is_node_supported(submodules, node)

    proposed = CapabilityBasedPartitioner(gm, Remaining(), allows_single_node_partition=True).propose_partitions()
    order = {node: i for i, node in enumerate(gm.graph.nodes)}
    pieces = sorted((piece for p in proposed for piece in _connected_pieces(set(p.nodes))),
                    key=lambda piece: min(order[n] for n in piece))
    kept, small = [], []
    for piece in pieces:
        (kept if sum(support.is_compute_node(n) for n in piece) >= max(min_block_size, 1) else small).append(piece)
    small = _join_short_blocks(kept, small)
    kept.sort(key=lambda piece: min(order[n] for n in piece))
    result = Partitioning(module=gm)
    for piece in small:
        count = sum(support.is_compute_node(n) for n in piece)
        result.left_out += [LeftOut(n.name, op_name(n), f"in a block of {count} convertible ops, fewer than "
                                    f"min_block_size={min_block_size} (after TensorRT refused a node of {name})",
                                    source_location(n)) for n in sorted(piece, key=order.get)
                           if support.is_compute_node(n)]
    for piece in kept:
        _make_self_contained(gm, piece)
    prefix = f"{name}_"
    for i, piece in enumerate(kept):
        result.regions.append(f"{prefix}{i}")
        counts = collections.Counter(op_name(n) for n in piece if support.is_compute_node(n))
        result.region_ops[result.regions[-1]] = dict(sorted(counts.items()))
    if kept:
        fuse_by_partitions(gm, [dict.fromkeys(sorted(piece, key=lambda n: order.get(n, -1))) for piece in kept],
                           prefix)
    gm.graph.lint()
    gm.recompile()
    return result
