"""Output shapes and dtypes of an engine, computed from its meta with whatever ints or SymInts the inputs carry.

The meta's dims are ints or expressions over symbols (grammar in docs/FORMAT.md); record.parse_dim turns an
expression into a small AST that is evaluated here. Symbols are bound from inputs whose meta dim is a bare name.
"""
import dataclasses
import functools
from typing import Any, Dict, List, Sequence, Tuple

import torch

from trtpack import record
from trtpack.names import ranges_text, record_ranges
from trtpack.errors import FormatError

_DTYPES = {name: getattr(torch, name) for name in record.DTYPES}


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: torch.dtype
    dims: Tuple[Any, ...]  # int, or the AST of a dim expression
    dtype_name: str = ""   # the record's name of dtype, e.g. "float32"


@dataclasses.dataclass(frozen=True)
class EngineSpec:
    name: str
    backend: str
    inputs: Tuple[TensorSpec, ...]
    outputs: Tuple[TensorSpec, ...]
    meta: Dict[str, Any]
    input_names: Tuple[str, ...] = ()
    output_names: Tuple[str, ...] = ()
    ranges: str = ""  # the symbols' ranges as text, for error messages


def _tensor_spec(engine: str, entry: Dict[str, Any]) -> TensorSpec:
    dtype = _DTYPES.get(entry["dtype"])
    if dtype is None:
        raise FormatError(f"trtpack: engine {engine!r}: tensor {entry['name']!r} has dtype {entry['dtype']!r}, which "
                          f"trtpack cannot allocate; supported: {', '.join(_DTYPES)}. Rebuild the engine with trtpack.")
    dims = tuple(d if isinstance(d, int) else record.parse_dim(d) for d in entry["shape"])
    return TensorSpec(entry["name"], dtype, dims, entry["dtype"])


@functools.lru_cache(maxsize=256)
def engine_spec(meta: str) -> EngineSpec:
    """Parses and validates one meta string once; later calls with the same string are free."""
    d = record.decode_meta(meta)
    return EngineSpec(
        name=d["name"], backend=d["backend"],
        inputs=tuple(_tensor_spec(d["name"], e) for e in d["inputs"]),
        outputs=tuple(_tensor_spec(d["name"], e) for e in d["outputs"]),
        meta=d,
        input_names=tuple(e["name"] for e in d["inputs"]),
        output_names=tuple(e["name"] for e in d["outputs"]),
        ranges=ranges_text(record_ranges(d)))


def _evaluate(ast, env: Dict[str, Any]):
    if isinstance(ast, int):
        return ast
    op = ast[0]
    if op == "sym":
        return env[ast[1]]
    a, b = _evaluate(ast[1], env), _evaluate(ast[2], env)
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "//":
        return a // b
    if op == "%":
        return a % b
    if op == "max":
        return torch.sym_max(a, b)
    if op == "min":
        return torch.sym_min(a, b)
    raise FormatError(f"trtpack: unknown operator {op!r} in a dim expression; this trtpack cannot read the engine.")


def bind_symbols(spec: EngineSpec, inputs: Sequence[torch.Tensor]) -> Dict[str, Any]:
    """Maps each symbol to the (Sym)Int size of the first input dim the meta names by that bare symbol."""
    if len(inputs) != len(spec.inputs):
        raise FormatError(f"trtpack: engine {spec.name!r} takes {len(spec.inputs)} inputs "
                          f"({', '.join(t.name for t in spec.inputs)}) but got {len(inputs)}; "
                          "pass the inputs the engine was built for, in that order.")
    env: Dict[str, Any] = {}
    for tensor, ts in zip(inputs, spec.inputs):
        if tensor.dim() != len(ts.dims):
            raise FormatError(f"trtpack: engine {spec.name!r} input {ts.name!r} must have {len(ts.dims)} dims "
                              f"but has shape {tuple(tensor.shape)}; pass an input of the shape it was built for.")
        for size, dim in zip(tensor.shape, ts.dims):
            if isinstance(dim, tuple) and dim[0] == "sym":
                env.setdefault(dim[1], size)
    return env


def output_shapes(spec: EngineSpec, inputs: Sequence[torch.Tensor]) -> List[List[Any]]:
    env = bind_symbols(spec, inputs)
    try:
        return [[_evaluate(d, env) for d in out.dims] for out in spec.outputs]
    except KeyError as e:
        raise FormatError(f"trtpack: engine {spec.name!r}: output shape uses symbol {e.args[0]!r}, which no input dim "
                          "names on its own, so its value is unknown; rebuild the engine with trtpack.") from None
