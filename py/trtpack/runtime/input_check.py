"""Input checks at native speed: the check torch runs before every call of an exported program's module
(`_check_input_constraints_pre_hook`: structure, rank, static dims, ranges, equal and derived dims), with every bound
computed once, as integers, instead of through sympy on each call.

`install(module)` puts the fast check in place of torch's pre-hook. An input the fast check accepts is one torch's
check accepts; anything else goes to torch's own check, so a refusal is torch's refusal, word for word (and
trtpack.error_translation turns it into the same IncompatibleEngineError as before). Programs whose dims the fast check does not
model (nested inputs, symbolic scalar inputs, dims that are not `a*s + b` of one symbol) keep torch's hook as is.

Mirrors torch's rules exactly, including its quirks: a lower bound of 2 or less is not checked (torch lets 0/1
through at run time), a dim of two or more symbols is not checked, and a derived dim `a*s + b` first seen before its
root binds the root to (size - b) / a, refusing sizes for which that is not an integer.
"""
import math
from typing import Optional

import torch

HOOK_NAME = "_check_input_constraints_pre_hook"

# one check per dim, in torch's order: (kind, input index, dim, a, b, slot, lo, hi)
_STATIC, _BIND, _EQUAL, _FREE = 0, 1, 2, 3


class InputCheck:
    """accepts(args, kwargs): True when torch's pre-hook would accept these inputs (never True where it refuses)."""

    def __init__(self, num_args: int, kwarg_names: tuple, tensors: tuple, constants: tuple, dims: tuple,
                 slots: int):
        self.num_args = num_args
        self.kwarg_names = kwarg_names
        self.tensors = tensors        # ((flat index, rank), ...)
        self.constants = constants    # ((flat index, value), ...)
        self.dims = dims
        self.slots = slots

    def accepts(self, args, kwargs) -> bool:
        if len(args) != self.num_args or len(kwargs) != len(self.kwarg_names):
            return False
        if kwargs:
            try:
                flat = (*args, *[kwargs[name] for name in self.kwarg_names])
            except KeyError:
                return False
        else:
            flat = args
        for index, rank in self.tensors:
            value = flat[index]
            if not isinstance(value, torch.Tensor) or value.dim() != rank:
                return False
        for index, value in self.constants:
            if type(flat[index]) is not type(value) or flat[index] != value:
                return False
        bound = [0] * self.slots
        for kind, index, dim, a, b, slot, lo, hi in self.dims:
            size = flat[index].shape[dim]
            if size.__class__ is not int:  # a symbolic size while tracing: torch's check knows what to skip
                return False
            if kind == _STATIC:
                if size != a:
                    return False
                continue
            if kind == _BIND:  # the root's value, solved as torch does; no integer solution is a refusal
                if a != 1 and (size - b) % a:
                    return False
                bound[slot] = (size - b) // a
            elif kind == _EQUAL and size != a * bound[slot] + b:
                return False
            if size < lo or size > hi:
                return False
        return True


def _bounds(range_constraints: dict, expr) -> tuple:
    """(lo, hi) torch checks for `expr`: lo only when the range's min is above 2, as in torch."""
    rng = range_constraints.get(expr)
    if rng is None:
        return -math.inf, math.inf
    from torch._export.passes.add_runtime_assertions_for_constraints_pass import _convert_range_to_int
    lo, hi = _convert_range_to_int(rng)
    return (lo if lo > 2 else -math.inf), hi


def _linear(expr, symbol) -> Optional[tuple]:
    """(a, b) with expr == a*symbol + b for integers a != 0, b; None for any other form."""
    import sympy

    poly = sympy.Poly(expr, symbol) if expr.is_polynomial(symbol) else None
    if poly is None or poly.degree() != 1:
        return None
    a, b = poly.all_coeffs()
    if not (a.is_Integer and b.is_Integer) or a == 0:
        return None
    return int(a), int(b)


def build(module) -> Optional[InputCheck]:
    """The fast check of an unlifted exported-program module (ExportedProgram.module()), or None where its inputs
    are not modelled (then torch's hook stays)."""
    spec = getattr(module, "_in_spec", None)
    ranges = getattr(module, "range_constraints", None)
    if spec is None or ranges is None or spec.num_children != 2:
        return None
    args_spec, kwargs_spec = _children(spec)
    if args_spec.type is not tuple or kwargs_spec.type is not dict:
        return None
    if any(not child.is_leaf() for child in (*_children(args_spec), *_children(kwargs_spec))):
        return None
    placeholders = [n for n in module.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != args_spec.num_children + kwargs_spec.num_children:
        return None
    tensors, constants, dims, slots = [], [], [], {}
    for index, node in enumerate(placeholders):
        value = node.meta.get("val")
        if isinstance(value, torch.Tensor):
            tensors.append((index, value.dim()))
            for dim, size in enumerate(value.shape):
                check = _dim_check(index, dim, size, ranges, slots)
                if check is None:
                    return None
                if check[0] != _FREE:
                    dims.append(check)
        elif type(value) in (int, str) or (type(value) is float and not math.isnan(value)):
            constants.append((index, value))
        else:  # symbolic scalars, NaN, anything else: torch's hook decides
            return None
    return InputCheck(args_spec.num_children, tuple(kwargs_spec.context), tuple(tensors), tuple(constants),
                      tuple(dims), len(slots))


def _children(spec) -> list:
    children = getattr(spec, "children", None)  # torch >= 2.13; children_specs before (deprecated since)
    return list(children()) if callable(children) else list(spec.children_specs)


def _dim_check(index: int, dim: int, size, ranges: dict, slots: dict) -> Optional[tuple]:
    if isinstance(size, int):
        return (_STATIC, index, dim, size, 0, 0, 0, 0)
    expr = size.node.expr
    if expr.is_number:
        return (_STATIC, index, dim, int(expr), 0, 0, 0, 0)
    symbols = expr.free_symbols
    if len(symbols) != 1:
        return (_FREE, index, dim, 0, 0, 0, 0, 0)  # torch leaves such a dim to the program's runtime asserts
    (symbol,) = symbols
    form = _linear(expr, symbol)
    if form is None:
        return None
    lo, hi = _bounds(ranges, expr)
    if symbol in slots:
        return (_EQUAL, index, dim, *form, slots[symbol], lo, hi)
    slots[symbol] = len(slots)
    return (_BIND, index, dim, *form, slots[symbol], lo, hi)


def install(module) -> Optional[InputCheck]:
    """Replaces torch's input-constraint pre-hook of `module` with the fast check (torch's hook still decides, and
    words, every refusal); returns the check, or None where the module has no such hook or inputs it does not
    model. Idempotent."""
    hooks = getattr(module, "_forward_pre_hooks", None)
    if not hooks:
        return None
    for hook_id, hook in list(hooks.items()):
        if getattr(hook, "__name__", "") != HOOK_NAME or getattr(hook, "_trtpack_fast", False):
            continue
        check = build(module)
        if check is None:
            return None
        hooks[hook_id] = _fast_hook(check, hook)
        return check
    return None


def _fast_hook(check: InputCheck, torch_hook):
    def fast(module, args, kwargs):
        if module.validate_inputs and not check.accepts(args, kwargs):
            return torch_hook(module, args, kwargs)
        return None

    fast.__name__ = HOOK_NAME  # still recognised as the input check (e.g. by error_translation.translate_errors' wrapper)
    fast.__wrapped__ = torch_hook
    fast._trtpack_fast = True
    fast.check = check
    return fast


__all__ = ["HOOK_NAME", "InputCheck", "build", "install"]
