"""Stage 2 prelude: views that are only layout become plain ops before partitioning, so they never split a region.

In a functional (exported, decomposed) graph:
- `alias(x)` is x;
- `as_strided(x, size, stride, 0)` over a contiguous x with contiguous strides for `size` is `view(x, size)`;
- `copy(dst, src)` into a buffer that was just allocated (empty/zeros/full...) and is read by nothing else is `src`
  cast to dst's dtype and expanded to its shape;
- `detach(x)` is x;
- `fill.Tensor(dst, v)` with a 0-d `v` is `v` cast to dst's dtype and expanded to its shape (a token shifted into
  place, `shifted[:, 0] = start_id`);
- `index_put(x, [mask], v)` with one boolean mask over x's leading dims and a `v` that broadcasts over the rest
  (`x[x < 0] = 0`, `scores[mask] = -inf`) is `where(mask, v, x)`: TensorRT has no NonZero, which the exporter's
  boolean indexing needs, and the output size no longer depends on the data.
- an op that only renames a measured op (torch's aliases: `multiply` for `mul`, `subtract` for `sub`...) is that
  op: the ONNX exporter translates both with the same functions and their schemas take the same arguments, so the
  support matrix's measurement of the one holds for the other;
- `einsum(equation, ...)` is spelled as TensorRT's Einsum reads an equation: lower-case labels only (its parser
  refuses upper case, which torch takes: `"B G H I D, B G H J D -> B G H I J"` in torchvision's MaxViT), no spaces,
  the ellipsis written out with the operands' ranks, the output explicit. Same labels, same einsum.
Anything else is left as it is (and the support table decides).
"""
import functools
from typing import Optional, Sequence

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


def _same_size(a, b) -> bool:
    if isinstance(a, torch.SymInt) or isinstance(b, torch.SymInt):
        return isinstance(a, torch.SymInt) and isinstance(b, torch.SymInt) and a.node.expr == b.node.expr
    return int(a) == int(b)


def _mask_write(node: Node) -> bool:
    """index_put(x, [mask], v, accumulate=False): one bool mask over x's leading dims, v broadcasting over the rest."""
    x, indices = _value(node.args[0]), node.args[1]
    accumulate = node.args[3] if len(node.args) > 3 else node.kwargs.get("accumulate", False)
    if accumulate or x is None or len(indices) != 1 or not isinstance(indices[0], Node):
        return False
    mask, values = _value(indices[0]), _value(node.args[2])
    if mask is None or values is None or mask.dtype != torch.bool or values.dtype != x.dtype:
        return False
    rest = x.shape[mask.dim():]
    if mask.dim() > x.dim() or not all(_same_size(m, s) for m, s in zip(mask.shape, x.shape)):
        return False
    if values.dim() > len(rest):
        return False
    return all(not isinstance(v, torch.SymInt) and int(v) == 1 or _same_size(v, r)
               for v, r in zip(reversed(values.shape), reversed(rest)))


def _where_mask(graph, node: Node) -> Node:
    x, mask, values = node.args[0], node.args[1][0], node.args[2]
    for _ in range(_value(x).dim() - _value(mask).dim()):  # the mask's dims line up with x's leading dims
        mask_value = _value(mask).unsqueeze(-1)
        mask = graph.call_function(aten.unsqueeze.default, (mask, -1))
        mask.meta["val"] = mask_value
    return graph.call_function(aten.where.self, (mask, values, x))


def trt_equation(equation: str, ranks: Sequence[int]) -> Optional[str]:
    """`equation` (torch.einsum's, over operands of `ranks`) with every upper-case label renamed to a lower-case
    letter it does not use, every ellipsis replaced by labels of its own (right-aligned across operands, as torch
    broadcasts them), no spaces, and the output written out (implicit: the ellipsis, then the labels used once in
    ASCII order, as torch orders them). None where it is already so spelled, or cannot be (more than 26 labels, not
    an equation of these operands)."""
    if "->" in equation and all(c.islower() and c.isascii() or c in ",->" for c in equation):
        return None
    text = equation.replace(" ", "")
    lhs, arrow, out = text.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks) or any(not (c.isascii() and c.isalpha()) for c in (lhs + out).replace(",", "").replace(
            "...", "")) or any(t.count("...") > 1 for t in (*terms, out)):
        return None
    widths = []  # dims each operand's ellipsis covers
    for term, rank in zip(terms, ranks):
        width = rank - len(term.replace("...", "")) if "..." in term else 0
        if width < 0:
            return None
        widths.append(width)
    ellipsis = [f"...{k}" for k in range(max(widths, default=0))]
    if not arrow:
        once = sorted(c for c in set(lhs) if c.isalpha() and lhs.count(c) == 1)
        out = ("..." if "..." in lhs else "") + "".join(once)

    def labels(term: str, width: int) -> list:
        head, dots, tail = term.partition("...")
        return [*head, *(ellipsis[len(ellipsis) - width:] if dots else []), *tail]

    spelled_terms = [labels(term, width) for term, width in zip(terms, widths)]
    spelled_out = labels(out, len(ellipsis))
    order = list(dict.fromkeys(label for term in (*spelled_terms, spelled_out) for label in term))
    if len(order) > 26:
        return None
    free = iter(c for c in "abcdefghijklmnopqrstuvwxyz" if c not in order)
    rename = {label: label if label.islower() else next(free) for label in order}
    spelled = ",".join("".join(rename[x] for x in term) for term in spelled_terms) + "->" + "".join(
        rename[x] for x in spelled_out)
    return None if spelled == equation else spelled


def _arguments_of(op) -> tuple:
    schema = op._schema
    return (tuple((a.name, str(a.type), a.kwarg_only, repr(a.default_value) if a.has_default_value() else None)
                  for a in schema.arguments), tuple(str(r.type) for r in schema.returns))


def _functions_of(op) -> frozenset:
    from trtpack.compiler.onnx_export import onnx_registry

    return frozenset(getattr(d.onnx_function, "name", repr(d.onnx_function)) for d in onnx_registry().get_decomps(op))


@functools.lru_cache(maxsize=None)
def _measured_twins() -> dict:
    """{(ONNX functions, schema arguments): measured op} over the support matrix's ops."""
    from trtpack.compiler import support

    twins = {}
    for op in support.MEASURED:
        functions = _functions_of(op)
        if functions:
            twins.setdefault((functions, _arguments_of(op)), op)
    return twins


@functools.lru_cache(maxsize=None)
def measured_twin(op) -> Optional[torch._ops.OpOverload]:
    """The measured op `op` only renames (same ONNX functions, same arguments), or None."""
    from trtpack.compiler import support

    if not isinstance(op, torch._ops.OpOverload) or op.namespace != "aten" or op in support.MEASURED:
        return None
    functions = _functions_of(op)
    twin = _measured_twins().get((functions, _arguments_of(op))) if functions else None
    return twin if twin is not op else None


def _einsum_spelled(node: Node) -> Optional[str]:
    equation, operands = node.args[0], node.args[1]
    values = [_value(x) for x in operands]
    if not isinstance(equation, str) or any(not isinstance(v, torch.Tensor) for v in values):
        return None
    return trt_equation(equation, [v.dim() for v in values])


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
        elif node.target is aten.index_put.default and _mask_write(node):
            _replace(gm, node, lambda: _where_mask(graph, node))
        elif node.target is aten.einsum.default and (spelled := _einsum_spelled(node)) is not None:
            node.args = (spelled, *node.args[1:])
        elif (twin := measured_twin(node.target)) is not None:
            node.target = twin
        else:
            continue
        count += 1
    if count:
        graph.lint()
        gm.recompile()
    return count
