"""The program decomposed as the ONNX exporter decomposes it: torch.export's decompositions, except for ops the
exporter (torchlib) translates whole. linear, layer_norm, gelu, matmul, softmax and scaled_dot_product_attention stay
one op each: the ONNX model gets one function per op instead of the pieces of its core-ATen form (for a BERT, half the
nodes and a fifth of the translation time), and a reference branch left in PyTorch runs the op's own kernel.
Failures are put in words: the stage, the op being decomposed and the model's source line, torch's error as the
cause."""
import functools
import operator

import torch

from trtpack.compiler import identifiers, symbolic
from trtpack.compiler.onnx_export import onnx_registry
from trtpack.errors import UnsupportedGraphError


@functools.lru_cache(maxsize=None)
def table():
    """The ONNX exporter's decomposition table, or None (torch's core-ATen table) where this torch lacks it."""
    try:
        from torch.onnx._internal.exporter import _decomp
    except ImportError:
        return None
    kept_whole = set(_decomp.get_onnx_implemented_overloads(onnx_registry())) - set(OWN)
    return {**_decomp.create_onnx_friendly_decomposition_table(kept_whole), **OWN}


def _col2im(columns, output_size, kernel_size, dilation, padding, stride):
    """F.fold (col2im) as one grouped transposed convolution whose filters are one-hot: column (c, i, j) of a block
    lands at kernel offset (i, j) of channel c, and the overlaps add up, as fold adds them. TensorRT has no Col2Im
    (its parser refuses the ONNX op); a deconvolution it builds. The filters read only static sizes: fold.py makes
    them a constant."""
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = kernel_size, dilation, padding, stride
    batched = columns.dim() == 3
    columns = columns if batched else columns.unsqueeze(0)
    blocks_h = (output_size[0] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    blocks_w = (output_size[1] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    channels = columns.shape[1] // (kh * kw)
    one_hot = torch.eye(kh * kw, dtype=columns.dtype, device=columns.device).reshape(kh * kw, 1, kh, kw)
    extra = [size - ((blocks - 1) * s - 2 * p + d * (k - 1) + 1) for size, blocks, s, p, d, k in
             zip(output_size, (blocks_h, blocks_w), stride, padding, dilation, kernel_size)]
    image = torch.ops.aten.convolution.default(
        columns.reshape(columns.shape[0], channels * kh * kw, blocks_h, blocks_w), one_hot.repeat(channels, 1, 1, 1),
        None, list(stride), list(padding), list(dilation), True, extra, channels)
    return image if batched else image.squeeze(0)


def _same_sizes(a, b) -> bool:
    from torch.fx.experimental.symbolic_shapes import statically_known_true

    return len(a) == len(b) and all(statically_known_true(x == y) for x, y in zip(a, b))


def _sdpa_in_4d(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, *, scale=None, enable_gqa=False):
    """scaled_dot_product_attention over other than 4-D tensors ([B, L, E], or [B, N, H, L, E] as Hiera's) as the
    4-D one, which is the only one the exporter translates (torchlib asserts "only 4D query, key, and value"): the
    dims before the heads merged into one batch, or a head dim of 1 added; the same attention per (L, E) matrix.
    4-D calls, and calls whose leading dims are not the same in all three, stay as they are (NotImplemented)."""
    rank = query.dim()
    if rank == 4 or rank < 2 or key.dim() != rank or value.dim() != rank or not (
            _same_sizes(key.shape[:-2], query.shape[:-2]) and _same_sizes(value.shape[:-2], query.shape[:-2])):
        return NotImplemented
    lead = query.shape[:-2]

    def as_4d(x):
        if rank < 4:
            return x.reshape(*([1] * (4 - rank)), *x.shape)
        return x.reshape(-1, *x.shape[-3:])

    if attn_mask is not None and attn_mask.dim() > 2:
        attn_mask = as_4d(attn_mask.expand(*lead, *attn_mask.shape[-2:]))
    out = torch.ops.aten.scaled_dot_product_attention.default(
        as_4d(query), as_4d(key), as_4d(value), attn_mask, dropout_p, is_causal, scale=scale, enable_gqa=enable_gqa)
    return out.reshape(*lead, *out.shape[-2:])


# Decompositions of trtpack's own, for ops the exporter would keep whole and TensorRT cannot build (or the exporter
# cannot translate in every form).
OWN = {torch.ops.aten.col2im.default: _col2im,
       torch.ops.aten.scaled_dot_product_attention.default: _sdpa_in_4d}


def failing_node(error: BaseException):
    """The FX node torch was working on when `error` was raised (innermost frame holding one), or None."""
    found, tb = None, error.__traceback__
    while tb is not None:
        for name in ("n", "node"):
            value = tb.tb_frame.f_locals.get(name)
            if isinstance(value, torch.fx.Node) and value.op == "call_function":
                found = value
        tb = tb.tb_next
    return found


def _user_line(node) -> str:
    trace = (node.meta.get("stack_trace") or "").strip().splitlines() if node is not None else []
    frames = [line.strip() for line in trace if line.strip().startswith("File ")]
    return frames[-1] if frames else "(no source location recorded)"


def _alias_root(graph: torch.fx.Graph):
    """node -> a representative of the tensors it may share memory with (views and in-place results of it, by the
    ops' schemas, and getitem of a multi-output view)."""
    parent = {}

    def find(node):
        while parent.get(node, node) is not node:
            node = parent[node]
        return node

    for node in graph.nodes:
        target = node.target
        if node.op == "call_function" and target is operator.getitem and isinstance(node.args[0], torch.fx.Node):
            parent[find(node)] = find(node.args[0])
        elif isinstance(target, torch._ops.OpOverload) and any(r.alias_info for r in target._schema.returns):
            for arg, formal in zip(node.args, target._schema.arguments):
                if formal.alias_info is not None and isinstance(arg, torch.fx.Node):
                    parent[find(node)] = find(arg)
    return find


def _reshapable_views(program: torch.export.ExportedProgram) -> list:
    """The aten.view nodes of `program` that a reshape can stand in for: no tensor sharing their memory is ever
    written in place. A decomposition can give a tensor strides its eager op never has (e.g. SDPA's math form), so a
    later view that ran in eager cannot view it; reshape copies where it must and is otherwise the same op."""
    root = _alias_root(program.graph)
    written = set()
    for node in program.graph.nodes:
        if isinstance(node.target, torch._ops.OpOverload) and node.target._schema.is_mutable:
            for arg, formal in zip(node.args, node.target._schema.arguments):
                if formal.alias_info is not None and formal.alias_info.is_write and isinstance(arg, torch.fx.Node):
                    written.add(root(arg))
    return [n for n in program.graph.nodes if n.target is torch.ops.aten.view.default and root(n) not in written]


def _decompose_with_views_as_reshapes(program: torch.export.ExportedProgram):
    """run_decompositions with the reshapable views as reshapes, or None; `program` itself is left as it was."""
    views = _reshapable_views(program)
    if not views:
        return None
    try:
        for node in views:
            node.target = torch.ops.aten.reshape.default
        program.graph_module.recompile()
        return program.run_decompositions(table())
    except Exception:  # noqa: BLE001  (the caller reports the first error)
        return None
    finally:
        for node in views:
            node.target = torch.ops.aten.view.default
        program.graph_module.recompile()


def decompose(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """program.run_decompositions(table()); a failure inside torch raises UnsupportedGraphError. A view that fails
    only because of the strides a decomposition produced is retried once as a reshape
    (_decompose_with_views_as_reshapes). State named with what generated code cannot use (`block1-0`, `class`) is
    renamed first (identifiers.with_safe_state_names): torch's own code generation would fail on it. Run-time size
    checks that hold at every size the program accepts are erased after (symbolic.drop_size_checks_that_hold)."""
    program = identifiers.with_safe_state_names(program)
    try:
        decomposed = program.run_decompositions(table())
    except Exception as error:  # torch raises ValueError, RuntimeError, TorchRuntimeError...: all mean the same here
        node = failing_node(error)
        decomposed = None
        if node is not None and node.target is torch.ops.aten.view.default:
            decomposed = _decompose_with_views_as_reshapes(program)
        if decomposed is None:
            _raise_decomposition_error(error, node)
    symbolic.drop_size_checks_that_hold(decomposed)
    return decomposed


def _raise_decomposition_error(error, node):
    op = str(node.target) if node is not None else "an unknown op"
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    raise UnsupportedGraphError(
        f"trtpack: torch's decomposition (stage: decompose) failed on {op}"
        f"{f' (node {node.name})' if node is not None else ''} at {_user_line(node)}: {type(error).__name__}: "
        f"{first}. This is inside torch, not trtpack: try another attention/implementation option of the model "
        "(e.g. attn_implementation='eager'), or export it yourself and pass the ExportedProgram.") from error
