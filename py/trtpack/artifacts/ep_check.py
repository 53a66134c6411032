"""Checks an ExportedProgram archive before torch.export.load reads it, so loading runs no code from the file.

torch.export.load (torch 2.11-2.13) unpickles with weights_only=False when a payload config says use_pickle, for
opaque/custom-object constants, for legacy weight files, and when sample_inputs fail the weights_only load; and it
sympify()s (eval) every symbolic expression string. trtpack.save never writes any of those, so they are refused
here, together with what a damaged zip can do to the reader (duplicate names, sizes beyond the file). docs/SECURITY.md.
"""
import io
import json
import os
import re
import zipfile
import zlib

from trtpack.errors import FormatError

MAX_ENTRIES = 10_000
MAX_JSON_BYTES = 256 << 20  # models/*.json and configs are parsed in memory
TOP_LEVEL = {"archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id"}
FOLDERS = ("models/", "data/weights/", "data/constants/", "data/sample_inputs/", "extra/")

# Names sympy may meet in torch's expression strings: torch's own sympy functions, sympy's core classes, the
# assumption keywords of Symbol(...), and symbols such as s0, u3, zuf1. No builtins (eval, open, __import__...).
_SYMPY_NAMES = {
    "Symbol", "Integer", "Rational", "Float", "Add", "Mul", "Pow", "Max", "Min", "Mod", "Abs", "Eq", "Ne", "Ge",
    "Gt", "Le", "Lt", "And", "Or", "Not", "Piecewise", "ITE", "True", "False", "oo", "zoo", "nan", "floor",
    "ceiling", "sqrt", "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt", "FloorToInt",
    "CeilDiv", "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv",
    "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat",
    "Identity", "positive", "negative", "nonnegative", "nonpositive", "integer", "real", "finite", "zero",
    "nonzero", "even", "odd", "rational", "commutative", "infinite",
}
_TOKEN = re.compile(r"\s+|'[A-Za-z0-9_]*'|\d+(?:\.\d+)?(?:e[+-]?\d+)?|[A-Za-z_][A-Za-z0-9_]*|==|!=|<=|>=|//|\*\*|[-+*/%(),<>=&|~^]")
_SYMBOL = re.compile(r"[a-z]+[0-9]+")
MAX_EXPR_CHARS = 10_000


def _refuse(path: str, why: str) -> FormatError:
    return FormatError(f"trtpack: {path!r} is not a safe trtpack ExportedProgram archive: {why}. trtpack loads only "
                       "archives written by trtpack.save (see docs/SECURITY.md); re-save the program with it.")


def check(path: str) -> list:
    """Raises FormatError unless `path` is a zip that torch.export.load can read without pickle or eval.
    Returns the program's pytree specs (in_spec/out_spec texts), for pytree_types."""
    from trtpack.artifacts.pytree_types import specs_in_archive_json
    size, specs = os.path.getsize(path), []
    try:
        with zipfile.ZipFile(path) as z:
            entries = _entries(path, z, size)
            _check_payload_configs(path, z, entries)
            _check_sample_inputs(path, z, entries)
            for name, info in entries.items():
                if name.startswith("models/") and name.endswith(".json"):
                    doc = _json(path, z, info)
                    _check_expressions(path, doc)
                    specs += specs_in_archive_json(doc)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError, RuntimeError,
            ValueError, zlib.error) as e:
        if isinstance(e, FormatError):
            raise
        raise _refuse(path, f"its zip structure is damaged ({type(e).__name__}: {str(e)[:200]})") from e
    return specs


def _entries(path: str, z: zipfile.ZipFile, size: int) -> dict:
    infos = z.infolist()
    if len(infos) > MAX_ENTRIES:
        raise _refuse(path, f"it has {len(infos)} zip entries (at most {MAX_ENTRIES})")
    roots = {info.filename.split("/", 1)[0] for info in infos}
    if len(roots) != 1 or any("/" not in info.filename for info in infos):
        raise _refuse(path, f"its entries are not all under one root folder (found {sorted(roots)[:5]})")
    entries = {}
    for info in infos:
        name = info.filename.split("/", 1)[1]
        if name in entries:
            raise _refuse(path, f"the zip entry {name!r} appears twice")
        if info.file_size > size or info.compress_size > size:
            raise _refuse(path, f"the zip entry {name!r} declares {info.file_size} bytes but the file has {size}")
        if name not in TOP_LEVEL and not name.startswith(FOLDERS):
            raise _refuse(path, f"it holds {name!r}, which trtpack.save never writes "
                                "(AOTInductor packages are .pt2; legacy torch archives are not supported)")
        entries[name] = info
    for required in ("archive_format", "archive_version", "models/model.json",
                     "data/weights/model_weights_config.json", "data/constants/model_constants_config.json"):
        if required not in entries:
            raise _refuse(path, f"the zip entry {required!r} is missing")
    if z.read(entries["archive_format"]) != b"pt2":
        raise _refuse(path, "archive_format is not 'pt2'")
    return entries


def _json(path: str, z: zipfile.ZipFile, info: zipfile.ZipInfo):
    if info.file_size > MAX_JSON_BYTES:
        raise _refuse(path, f"{info.filename!r} is {info.file_size} bytes of JSON (at most {MAX_JSON_BYTES})")
    try:
        return json.loads(z.read(info))
    except (ValueError, RecursionError) as e:
        raise _refuse(path, f"{info.filename!r} is not valid JSON ({str(e)[:120]})") from e


def _check_payload_configs(path: str, z: zipfile.ZipFile, entries: dict) -> None:
    for name, info in entries.items():
        if not name.endswith(("_weights_config.json", "_constants_config.json")):
            continue
        config = _json(path, z, info)
        items = config.get("config") if isinstance(config, dict) else None
        if not isinstance(items, dict):
            raise _refuse(path, f"{name!r} has no 'config' object")
        for key, payload in items.items():
            if not isinstance(payload, dict) or payload.get("use_pickle") is not False:
                raise _refuse(path, f"{name!r} entry {key!r} is stored as a pickle (use_pickle), which would run "
                                    "code on load")
            payload_path = payload.get("path_name")
            if not isinstance(payload_path, str) or not payload_path.startswith(("weight_", "tensor_")):
                raise _refuse(path, f"{name!r} entry {key!r} is a {payload_path!r} object; only plain tensors load")


def _check_sample_inputs(path: str, z: zipfile.ZipFile, entries: dict) -> None:
    # torch retries a failed weights_only load with weights_only=False: refuse what the safe loader refuses.
    import pickle

    import torch

    for name, info in entries.items():
        if name.startswith("data/sample_inputs/"):
            try:
                torch.load(io.BytesIO(z.read(info)), weights_only=True)
            except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, KeyError, AttributeError,
                    TypeError, IndexError, UnicodeDecodeError) as e:
                raise _refuse(path, f"{name!r} does not load with torch.load(weights_only=True) "
                                    f"({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})") from e


def _check_expressions(path: str, doc) -> None:
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr_str":
                    _check_expression(path, value)
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)


def _check_expression(path: str, expr) -> None:
    if not isinstance(expr, str) or len(expr) > MAX_EXPR_CHARS:
        raise _refuse(path, "a symbolic expression (expr_str) is not a short string")
    pos = 0
    while pos < len(expr):
        token = _TOKEN.match(expr, pos)
        if token is None:
            raise _refuse(path, f"the symbolic expression {expr[:80]!r} has {expr[pos]!r} at {pos}; torch would "
                                "eval it with sympy")
        word = token.group()
        if (word[0].isalpha() or word[0] == "_") and word not in _SYMPY_NAMES and not _SYMBOL.fullmatch(word):
            raise _refuse(path, f"the symbolic expression {expr[:80]!r} names {word!r}, which is not a sympy "
                                "function or symbol; torch would eval it")
        pos = token.end()
