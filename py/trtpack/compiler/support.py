"""Stage 2a: which nodes TensorRT can take. The operator TABLE is data: each supported ATen overload with an
optional extra condition; `unsupported_reason(node)` applies the table plus the rules every op must meet.

Scaled-dot-product attention is not listed: run_decompositions turns it into bmm/_softmax/where/... which are.
"""
import operator
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch.fx import Node

from trtpack import record
from trtpack.names import dtype_name

aten = torch.ops.aten

# Tensor dtypes the ONNX exporter and TensorRT(-RTX) both handle. float64 and complex are CPU-only in TensorRT.
TRT_DTYPES = frozenset(getattr(torch, name) for name in record.DTYPES)  # the record format's dtypes

# Shape arithmetic on SymInts: copied into every region that needs it, never counted as compute.
SYM_OPS = frozenset({aten.sym_size.int, aten.sym_numel.default, aten.sym_stride.int, operator.add, operator.sub,
                     operator.mul, operator.floordiv, operator.mod, operator.neg, torch.sym_max, torch.sym_min})


def _only_first_output_used(node: Node) -> Optional[str]:
    for user in node.users:
        if user.target is not operator.getitem or user.args[1] != 0:
            return "uses a secondary output (indices/statistics), which the ONNX export does not produce"
    return None


def _no_half_to_float(node: Node) -> Optional[str]:
    return "half_to_float=True is not supported" if node.args[2] else None


def _cast_only(node: Node) -> Optional[str]:
    source, target = node.args[0].meta["val"], node.meta["val"]
    if source.device != target.device:
        return "moves a tensor between devices; only dtype casts are converted"
    return None


def _positive_step(node: Node) -> Optional[str]:
    step = node.args[4] if len(node.args) > 4 else 1
    return None if isinstance(step, int) and step > 0 else f"slice step {step!r} is not a positive constant"


def _exact_adaptive_pool(node: Node) -> Optional[str]:
    in_size = node.args[0].meta["val"].shape[-2:]
    out_size = node.args[1]
    for i, o in zip(in_size, out_size):
        if not isinstance(i, int) or i % o:
            return f"adaptive pooling from {tuple(in_size)} to {tuple(out_size)} needs a static input that divides"
    return None


def _bool_only(node: Node) -> Optional[str]:
    dtype = node.meta["val"].dtype
    return None if dtype == torch.bool else f"bitwise ops on {dtype} have no TensorRT layer (bool only)"


def _squeezes_something(node: Node) -> Optional[str]:
    shape = node.args[0].meta["val"].shape
    dims = [d % len(shape) for d in node.args[1]] if shape else []
    if not any(shape[d] == 1 for d in dims):
        return "a squeeze that removes no dim (the ONNX exporter cannot convert the resulting alias)"
    return None


@dataclass(frozen=True)
class Rule:
    note: str = ""
    condition: Optional[Callable[[Node], Optional[str]]] = None  # returns why a node is unsupported, or None


TABLE = {
    # convolution, normalisation, linear algebra
    aten.convolution.default: Rule("Conv / ConvTranspose, any groups, 1-3 spatial dims"),
    aten._native_batch_norm_legit_no_training.default: Rule("inference batch norm", _only_first_output_used),
    aten.native_layer_norm.default: Rule("LayerNormalization", _only_first_output_used),
    aten.addmm.default: Rule("linear layers"),
    aten.mm.default: Rule(),
    aten.bmm.default: Rule("also what attention (SDPA) decomposes into"),
    # activations
    aten.relu.default: Rule(),
    aten.gelu.default: Rule("approximate='none' and 'tanh'"),
    aten.sigmoid.default: Rule("silu decomposes to x * sigmoid(x)"),
    aten.tanh.default: Rule(),
    aten.hardtanh.default: Rule("relu6"),
    aten.leaky_relu.default: Rule(),
    aten.clamp.default: Rule(),
    aten._softmax.default: Rule("", _no_half_to_float),
    aten._log_softmax.default: Rule("", _no_half_to_float),
    # elementwise arithmetic and math
    aten.add.Tensor: Rule(), aten.sub.Tensor: Rule(), aten.mul.Tensor: Rule(), aten.mul.Scalar: Rule(),
    aten.div.Tensor: Rule(), aten.div.Tensor_mode: Rule("rounding_mode floor/trunc"),
    aten.pow.Tensor_Scalar: Rule(), aten.pow.Tensor_Tensor: Rule(),
    aten.sqrt.default: Rule(), aten.rsqrt.default: Rule(), aten.exp.default: Rule(), aten.log.default: Rule(),
    aten.neg.default: Rule(), aten.abs.default: Rule(), aten.reciprocal.default: Rule(), aten.erf.default: Rule(),
    aten.sin.default: Rule(), aten.cos.default: Rule(),
    aten.maximum.default: Rule(), aten.minimum.default: Rule(),
    # comparisons, masking
    aten.eq.Scalar: Rule(), aten.eq.Tensor: Rule(), aten.ne.Scalar: Rule(), aten.lt.Scalar: Rule(),
    aten.lt.Tensor: Rule(), aten.gt.Scalar: Rule(), aten.gt.Tensor: Rule(), aten.le.Scalar: Rule(),
    aten.ge.Scalar: Rule(),
    aten.logical_not.default: Rule(), aten.logical_and.default: Rule(), aten.logical_or.default: Rule(),
    aten.bitwise_and.Tensor: Rule("&, on bool", _bool_only), aten.bitwise_or.Tensor: Rule("|, on bool", _bool_only),
    aten.bitwise_not.default: Rule("~, on bool", _bool_only),
    aten.where.self: Rule(),
    # reductions
    aten.mean.dim: Rule("also global average pooling"), aten.sum.dim_IntList: Rule(), aten.amax.default: Rule(),
    aten.amin.default: Rule(), aten.any.dim: Rule(),
    # shape and indexing
    aten.view.default: Rule(), aten.permute.default: Rule(), aten.expand.default: Rule(), aten.cat.default: Rule(),
    aten.slice.Tensor: Rule("", _positive_step), aten.select.int: Rule(), aten.gather.default: Rule(),
    aten.index.Tensor: Rule("advanced indexing with integer tensors"), aten.unsqueeze.default: Rule(),
    aten.squeeze.dims: Rule("", _squeezes_something), aten.split_with_sizes.default: Rule(), aten.clone.default: Rule(),
    aten.constant_pad_nd.default: Rule(), aten.embedding.default: Rule(),
    # pooling
    aten.max_pool2d_with_indices.default: Rule("values only", _only_first_output_used),
    aten.avg_pool2d.default: Rule(),
    aten._adaptive_avg_pool2d.default: Rule("", _exact_adaptive_pool),
    # creation and casts
    aten._to_copy.default: Rule("dtype casts", _cast_only),
    aten.arange.start_step: Rule("e.g. causal attention masks"),
    aten.full.default: Rule(), aten.full_like.default: Rule(), aten.scalar_tensor.default: Rule(),
}


# Checks torch.export inserts that compute nothing; dropped before partitioning (re-export adds its own).
DROPPED_OPS = frozenset({aten._assert_tensor_metadata.default})


def is_sym_node(node: Node) -> bool:
    return node.op == "call_function" and node.target in SYM_OPS


def is_compute_node(node: Node) -> bool:
    """What min_block_size counts: ATen ops, not getitem or shape arithmetic."""
    return (node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload) and not is_sym_node(node)
            and node.target not in DROPPED_OPS)


def _tensor_values(value):
    flat = value if isinstance(value, (list, tuple)) else [value]
    return [v for v in flat if isinstance(v, torch.Tensor)]


def _dtype_reason(node: Node) -> Optional[str]:
    values = _tensor_values(node.meta.get("val"))
    for arg in node.all_input_nodes:
        values += _tensor_values(arg.meta.get("val"))
    bad = sorted({dtype_name(v.dtype) for v in values if v.dtype not in TRT_DTYPES})
    return f"dtype {', '.join(bad)} is not supported by TensorRT" if bad else None


def _data_dependent_reason(node: Node) -> Optional[str]:
    for value in _tensor_values(node.meta.get("val")):
        for dim in value.shape:
            if isinstance(dim, torch.SymInt) and any(str(s).startswith("u") for s in dim.node.expr.free_symbols):
                return "its output shape depends on the data (unbacked size)"
    return None


def unsupported_reason(node: Node) -> Optional[str]:
    """None when `node` can go to TensorRT, else a short reason it stays in PyTorch."""
    if node.op != "call_function":
        return f"{node.op} nodes stay in PyTorch"
    if is_sym_node(node) or node.target in DROPPED_OPS:
        return None
    if node.target is operator.getitem:
        return None
    target = node.target
    if not isinstance(target, torch._ops.OpOverload):
        return f"{getattr(target, '__name__', target)} is a Python call, not an ATen op"
    if target.namespace != "aten":
        return f"custom op {target.namespace}::{target._opname} has no TensorRT conversion"
    if target._schema.is_mutable:
        return f"aten.{target._opname} mutates its inputs"
    rule = TABLE.get(target)
    if rule is None:
        return f"aten.{target.__name__} is not in trtpack's operator-support table"
    for check in (_dtype_reason, _data_dependent_reason, rule.condition):
        reason = check(node) if check else None
        if reason:
            return reason
    return None
