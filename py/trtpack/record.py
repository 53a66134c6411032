"""The engine record: plan bytes + meta JSON (format in docs/FORMAT.md).

A thin face over the C++ core (`trtpack._native.core`), which does all parsing, validation,
upgrading and compatibility reasoning; this module converts Python values and turns the core's
errors into `trtpack.FormatError` (with `.field` naming the field that failed).
"""
import json
from typing import Any, Dict, NamedTuple, Optional, Tuple, Union

from trtpack._native import core as _core
from trtpack.errors import FormatError

FORMAT_ID: str = _core.FORMAT_ID
FORMAT_VERSION = tuple(_core.FORMAT_VERSION)
DTYPES = tuple(_core.DTYPES)
TARGET_BITS: Dict[str, int] = dict(_core.TARGET_BITS)
MAX_PLAN_SIZE: int = _core.MAX_PLAN_SIZE

Meta = Union[str, Dict[str, Any]]


class Field(NamedTuple):
    """One key of the record, as core/record_fields.h defines it (the one field table; C++ parses and writes by it)."""
    name: str
    kind: str       # "string", "integer", "version", "string_list", "dim_list", "tensor_list", "symbol_map", "object"
    required: bool  # every record of the current major version has it
    since: int      # the minor version that added it (0: there since X.0); keys added by a minor bump are optional
    doc: str


FIELDS: Tuple[Field, ...] = tuple(Field(*f) for f in _core.FIELDS)  # top-level meta keys, in table order
TENSOR_FIELDS: Tuple[Field, ...] = tuple(Field(*f) for f in _core.TENSOR_FIELDS)  # keys of an inputs/outputs entry
SYMBOL_RANGE_FIELDS: Tuple[Field, ...] = tuple(Field(*f) for f in _core.SYMBOL_RANGE_FIELDS)  # keys of a symbols value


def _call(fn, *args):
    try:
        return fn(*args)
    except _core.RecordError as e:
        error = FormatError(str(e))
        error.field = e.field
        raise error from None


def _meta_text(meta: Meta) -> str:
    if isinstance(meta, str):
        if not meta.isascii():
            try:
                meta.encode("utf-8")
            except UnicodeEncodeError as e:  # a lone surrogate, e.g. from a "\udc80" JSON escape in a hostile file
                raise FormatError(f"meta: not valid UTF-8 text ({e.reason} at index {e.start}); re-save the "
                                  "engine record with trtpack") from None
        return meta
    if not isinstance(meta, dict):
        raise FormatError(f"meta: expected a dict or a JSON str, got {type(meta).__name__}")
    try:
        return json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise FormatError(f"meta: not representable as JSON ({e}); use only str, int, float, bool, list, dict") from None


def _plan_buffer(plan):
    """bytes-like objects pass through; a torch tensor must be the record's 1-D uint8 tensor, on any device (a plan
    moved with its module to CUDA is read through one copy to the host; a CPU plan is read in place)."""
    if isinstance(plan, (bytes, bytearray, memoryview)):
        return plan
    import torch

    if isinstance(plan, torch.Tensor):
        if plan.dtype != torch.uint8 or plan.dim() != 1:
            raise FormatError(f"plan: expected a 1-D uint8 tensor, got {plan.dtype} of shape "
                              f"{tuple(plan.shape)}; use plan.reshape(-1).view(torch.uint8)")
        return plan.detach().cpu().contiguous().numpy()
    raise FormatError(f"plan: expected bytes or a 1-D uint8 torch.Tensor, got {type(plan).__name__}")


def encode_meta(meta: Dict[str, Any]) -> str:
    """Validates a meta dict and returns its canonical JSON (sorted keys, no whitespace).

    Args:
        meta: the record's meta as a dict (see docs/FORMAT.md).
    Returns:
        The canonical text; the same dict always gives the same bytes.
    Raises:
        FormatError: naming the field that failed and what to do.
    Example:
        >>> text = encode_meta(meta); decode_meta(text) == json.loads(text)
    """
    return _call(_core.canonical_meta, _meta_text(meta))


def decode_meta(meta: str) -> Dict[str, Any]:
    """Parses and validates meta JSON text, upgrading older format versions; returns a dict in the current format."""
    return json.loads(_call(_core.canonical_meta, _meta_text(meta)))


def check_plan(meta: Meta, plan, verify_hash: bool = False) -> None:
    """Checks plan bytes against their record: size, the TensorRT-RTX header (version, targets), and the digest if
    asked.

    Args:
        meta: meta dict or JSON text.
        plan: the plan as bytes or as the record's 1-D uint8 tensor (CPU, or CUDA: then copied to the host once).
        verify_hash: also compare the digest: plan_xxh3 where the record has it (format 1.1+), else plan_sha256.
    Raises:
        FormatError: with .field naming what disagrees ("plan_size", "backend_version", "targets", "plan_xxh3",
            "plan_sha256", "plan").
    """
    _call(_core.check_plan, _meta_text(meta), _plan_buffer(plan), bool(verify_hash))


def check_plan_file(meta: Meta, fd: int, offset: int = 0) -> None:
    """The digest check of check_plan(verify_hash=True) over plan_size bytes read from an open file descriptor at
    `offset`, in pieces (the plan is never mapped or held whole). FormatError.field is "plan_xxh3", "plan_sha256", or
    "plan_size" when the file ends early."""
    _call(_core.check_plan_digest_fd, _meta_text(meta), fd, offset)


def xxh3(data) -> str:
    """XXH3-128 of bytes (or a 1-D uint8 tensor) as 32 lowercase hex digits: the record's plan_xxh3. An integrity
    check against damage, several times faster than SHA-256; not a defence against a forger (who can rewrite the
    record too)."""
    return _call(_core.xxh3, _plan_buffer(data))


def xxh3_stream():
    """An XXH3-128 digest fed in pieces: .update(bytes-like), .hexdigest() (same value as xxh3 of the whole)."""
    return _core.Xxh3Stream()


def plan_header(plan) -> Dict[str, Any]:
    """Reads a TensorRT-RTX plan's 64-byte header: {"magic", "version", "size", "target_mask", "targets", "unknown_target_bits"}."""
    return _call(_core.plan_header, _plan_buffer(plan))


def parse_dim(expr: str):
    """Parses a dim expression into nested tuples: int | ("sym", name) | ("+"|"-"|"*"|"//"|"%"|"max"|"min", a, b)."""
    if not isinstance(expr, str):
        raise FormatError(f"dim: expected an expression str, got {type(expr).__name__}")
    return _call(_core.parse_dim, expr)


def eval_dim(dim: Union[int, str], symbols: Dict[str, int]) -> int:
    """The value of a dim (an int, or an expression) given the symbols' values; // and % as in Python."""
    if isinstance(dim, int) and not isinstance(dim, bool):
        return dim
    if not isinstance(dim, str) or not all(isinstance(k, str) and isinstance(v, int) for k, v in symbols.items()):
        raise FormatError("dim: expected an int or expression str, and symbols as {name: int}")
    return _call(_core.eval_dim, dim, dict(symbols))


def compatibility(meta: Meta, machine: Dict[str, Any]) -> Dict[str, Any]:
    """Can `machine` run this engine? Returns {"usable": bool, "reason": str}; the reason names the fix.

    Args:
        meta: meta dict or JSON text.
        machine: {"cuda": bool, "sm": "sm90" or None, "backends": {"tensorrt_rtx": "1.7.1.116", ...}}.
    """
    try:
        cuda, sm, backends = bool(machine["cuda"]), machine.get("sm"), dict(machine.get("backends") or {})
    except (KeyError, TypeError, AttributeError):
        cuda = None
    if cuda is None or not (sm is None or isinstance(sm, str)) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in backends.items()):
        raise FormatError('machine: expected {"cuda": bool, "sm": str or None, "backends": {name: version str}}')
    usable, reason = _call(_core.compatibility, _meta_text(meta), cuda, sm, backends)
    return {"usable": usable, "reason": reason}


__all__ = ["DTYPES", "FIELDS", "FORMAT_ID", "FORMAT_VERSION", "Field", "MAX_PLAN_SIZE", "SYMBOL_RANGE_FIELDS",
           "TARGET_BITS", "TENSOR_FIELDS", "check_plan", "check_plan_file", "compatibility", "decode_meta", "encode_meta", "eval_dim",
           "parse_dim", "plan_header"]
