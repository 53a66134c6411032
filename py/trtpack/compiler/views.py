"""Stage 2 prelude: views that are only layout become plain ops before partitioning, so they never split a region.

In a functional (exported, decomposed) graph:
- `alias(x)` is x;
- `as_strided(x, size, stride, 0)` over a contiguous x with contiguous strides for `size` is `view(x, size)`;
- `copy(dst, src)` into a buffer that was just allocated (empty/zeros/full...) and is read by nothing else is `src`
  cast to dst's dtype and expanded to its shape;
- `detach(x)` is x;
- `fill.Tensor(dst, v)` with a 0-d `v` is `v` cast to dst's dtype and expanded to its shape (a token shifted into
  place, `shifted[:, 0] = start_id`).
Anything else is left as it is (and the support table decides).
"""
import torch
from torch.fx import GraphModule, Node

aten = torch.ops.aten
FRESH_BUFFERS = frozenset({aten.empty.memory_format, aten.empty_permuted.default, aten.empty_like.default,
                           aten.zeros.default, aten.zeros_like.default, aten.full.default, aten.full_like.default,
                           aten.new_empty.default, aten.new_zeros.default})


def _value(node):
    return node.meta.get("val") if isinstance(node, Node) else None


def _replace(gm: GraphModule, node: Node, make) -> None:
    with gm.graph.inserting_before(node):
        replacement = make()
    if isinstance(replacement, Node):
        replacement.meta = dict(node.meta)
    node.replace_all_uses_with(replacement)
    gm.graph.erase_node(node)


def _contiguous_strides(shape) -> list:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step = step * size
    return list(reversed(strides))


def _plain_view(node: Node) -> bool:
    source, size, stride = node.args[0], node.args[1], node.args[2]
    offset = node.args[3] if len(node.args) > 3 else node.kwargs.get("storage_offset")
    value = _value(source)
    if value is None or offset not in (None, 0) or not value.is_contiguous():
        return False
    try:
        return [int(s) for s in stride] == [int(s) for s in _contiguous_strides(size)] and \
            int(torch.Size(size).numel()) == int(value.numel())
    except (TypeError, RuntimeError):  # symbolic sizes we cannot compare: leave it
        return False


def _copy_into_fresh(node: Node) -> bool:
    dst = node.args[0]
    return (isinstance(dst, Node) and dst.op == "call_function" and dst.target in FRESH_BUFFERS
            and len(dst.users) == 1 and not node.kwargs.get("non_blocking", False))


def _filled(graph, dst: Node, fill: Node) -> Node:
    """fill.Tensor(dst, fill) (a 0-d tensor, e.g. `shifted[:, 0] = start_id`) as ops the table has: `fill` cast to
    dst's dtype, expanded to dst's shape (its symbolic sizes read with sym_size), copied into a fresh tensor."""
    target, value = _value(dst), _value(fill)
    out = fill
    if value.dtype != target.dtype:
        out = graph.call_function(aten._to_copy.default, (fill,), {"dtype": target.dtype})
        out.meta["val"] = value.to(target.dtype)
    shape = []
    for dim, size in enumerate(target.shape):
        if isinstance(size, torch.SymInt):
            shape.append(graph.call_function(aten.sym_size.int, (dst, dim)))
            shape[-1].meta["val"] = size
        else:
            shape.append(int(size))
    out = graph.call_function(aten.expand.default, (out, shape))
    out.meta["val"] = target
    return graph.call_function(aten.clone.default, (out,))


def resolve(gm: GraphModule) -> int:
    """Rewrites the graph in place; returns how many nodes were rewritten."""
    graph, count = gm.graph, 0
    for node in list(graph.nodes):
        if node.op != "call_function":
            continue
        if node.target in (aten.alias.default, aten.detach.default):  # the same values (no autograd here)
            source = node.args[0]
            node.replace_all_uses_with(source)
            graph.erase_node(node)
        elif node.target is aten.as_strided.default and _plain_view(node):
            _replace(gm, node, lambda: graph.call_function(aten.view.default, (node.args[0], list(node.args[1]))))
        elif node.target is aten.copy.default and _copy_into_fresh(node):
            dst, src = node.args[0], node.args[1]
            target, value = _value(dst), _value(src)

            def converted():
                out = src
                if value.dtype != target.dtype:
                    out = graph.call_function(aten._to_copy.default, (out,), {"dtype": target.dtype})
                    out.meta["val"] = value.to(target.dtype)
                if tuple(value.shape) != tuple(target.shape):
                    out = graph.call_function(aten.expand.default, (out, list(target.shape)))
                return graph.call_function(aten.clone.default, (out,))
            _replace(gm, node, converted)
            graph.erase_node(dst)
        elif node.target is aten.fill.Tensor and _value(node.args[1]) is not None and _value(node.args[1]).dim() == 0:
            _replace(gm, node, lambda: _filled(graph, node.args[0], node.args[1]))
        else:
            continue
        count += 1
    if count:
        graph.lint()
        gm.recompile()
    return count
