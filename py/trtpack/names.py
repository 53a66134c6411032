"""How trtpack writes the names people read, each in one place: backends, compute capabilities, dtypes, dynamic
ranges."""
import torch

# Backend name -> the Python module that provides it. The record's `backend` field takes these names.
BACKEND_MODULES = {"tensorrt_rtx": "tensorrt_rtx", "tensorrt": "tensorrt"}
DEFAULT_BACKEND = "tensorrt_rtx"


def sm_name(major: int, minor: int) -> str:
    """(8, 6) -> 'sm86', the spelling of the record's targets and of machine.describe()."""
    return f"sm{major}{minor}"


def dtype_name(dtype: torch.dtype) -> str:
    """torch.float16 -> 'float16', the spelling of the record's dtypes."""
    return str(dtype).removeprefix("torch.")


def program_ranges(program) -> dict:
    """{symbol: (min, max)} of an ExportedProgram's dynamic dims; max None when unbounded. Sizes torch computes from
    data while the program runs (unbacked symbols: u0, or zuf0 from a float's .item()) are no dims of its inputs and
    have no range a caller could keep to; they are left out."""
    from torch.utils._sympy.symbol import SymT, symbol_is_type

    return {str(sym): (int(r.lower), int(r.upper) if r.upper.is_finite else None)
            for sym, r in program.range_constraints.items()
            if not symbol_is_type(sym, (SymT.UNBACKED_INT, SymT.UNBACKED_FLOAT))}


def dim_names(program) -> dict:
    """{program symbol: the name its torch.export.Dim was given, e.g. "batch"}, where torch recorded it: an export's
    shape environment keeps each user input dim's Dim name. {} where it did not (a program read back from a file)."""
    found = {}
    user = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        value = node.meta.get("val") if node.op == "placeholder" and node.name in user else None
        shape_env = getattr(getattr(value, "fake_mode", None), "shape_env", None)
        given = getattr(shape_env, "source_name_to_debug_name", None)
        if not given:
            continue
        for size in value.shape:
            symbol = size.node.expr if isinstance(size, torch.SymInt) else None
            if symbol is None or not symbol.is_Symbol or str(symbol) in found:
                continue
            for source in shape_env.var_to_sources.get(symbol, ()):
                name = given.get(source.name() if callable(source.name) else source.name)
                if name:
                    found[str(symbol)] = name
                    break
    return found


def record_ranges(rec: dict) -> dict:
    """{symbol: (min, max)} of an engine record's symbols."""
    return {name: (r["min"], r["max"]) for name, r in rec["symbols"].items()}


def ranges_text(ranges: dict) -> str:
    """'s0 in [1, 64], s1 in [2, inf]' from {symbol: (min, max)}; 'all sizes static' when there are none."""
    return ", ".join(f"{name} in [{lo}, {'inf' if hi is None else hi}]" for name, (lo, hi) in ranges.items()) \
        or "all sizes static"
