"""An allow-list of what trtpack.save writes into an .ep, checked before torch.export.load reads a byte of it.

torch.export.load (torch 2.11-2.13) unpickles with weights_only=False when a payload config says use_pickle, for
opaque/custom-object constants, and when sample inputs fail the weights_only load; it sympify()s (eval) every
symbolic expression string, exec()s the program's guards_code, and trusts each tensor's sizes and strides. This
module accepts only: the zip layout of zip_layout.py, the entry names trtpack writes, raw tensors whose bytes cover
their shape, expression and guard strings of a strict grammar, and integers that fit in 64 bits. docs/SECURITY.md.
"""
import functools
import io
import json
import re
from dataclasses import dataclass

from trtpack.artifacts import zip_layout
from trtpack.errors import FormatError

MAX_JSON_BYTES = 64 << 20          # models/model.json and the payload configs are parsed in memory
MAX_SMALL = 64                     # archive_format, archive_version, byteorder, .data/*
MAX_SAMPLE_INPUTS = 16 << 20
FIXED = {"archive_format": MAX_SMALL, "archive_version": MAX_SMALL, "byteorder": MAX_SMALL,
         ".data/version": MAX_SMALL, ".data/serialization_id": MAX_SMALL, "models/model.json": MAX_JSON_BYTES,
         "data/weights/model_weights_config.json": MAX_JSON_BYTES,
         "data/constants/model_constants_config.json": MAX_JSON_BYTES,
         "data/sample_inputs/model.pt": MAX_SAMPLE_INPUTS, "extra/trtpack/manifest.json": 16 << 20}
REQUIRED = ("archive_format", "archive_version", "models/model.json", "data/weights/model_weights_config.json",
            "data/constants/model_constants_config.json")  # the manifest too, but inspect is what needs it
PAYLOADS = {"data/weights/": "weight", "data/constants/": "tensor"}   # folder -> the only file stem torch writes there
_PAYLOAD = re.compile(r"(data/weights/weight|data/constants/tensor)_[0-9]{1,6}")
_ROOT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
MODEL_KEYS = {"graph_module", "opset_version", "range_constraints", "schema_version", "verifiers", "torch_version",
              "guards_code"}
INT64 = 1 << 63

# Symbolic expressions (expr_str, sympify'd with torch's sympy functions as locals) and guards (guards_code, exec'd
# in a namespace of those functions): integers, symbols like s0/u3, these names, arithmetic and comparisons. No
# strings, attributes (except a guard's L['x'].size()[i]), subscripts, keywords other than and/or/not, or `**`.
_FUNCTIONS = {"Add", "Mul", "Pow", "Integer", "Rational", "StrictLessThan", "LessThan", "StrictGreaterThan", "GreaterThan",
              "Equality", "Unequality", "true", "false", "Infinity", "NegativeInfinity", "Max", "Min", "Mod", "FloorDiv", "PythonMod", "CleanDiv", "CeilDiv", "CeilToInt", "FloorToInt",
              "TruncToInt", "RoundToInt", "ModularIndexing", "Where", "Abs", "Eq", "Ne", "Ge", "Gt", "Le", "Lt",
              "And", "Or", "Not", "True", "False", "oo", "floor", "ceiling", "IntTrueDiv", "FloatTrueDiv", "ToFloat",
              "Identity", "IsNonOverlappingAndDenseIndicator", "int_oo"}
_SYMBOL = re.compile(r"[a-z]{1,8}[0-9]{1,9}")
_GUARD_INPUT = r"L(?:\['[A-Za-z_][A-Za-z0-9_]{0,127}'\]|\[[0-9]{1,6}\])+\.(?:size|stride)\(\)\[[0-9]{1,2}\]"
_TOKENS = {
    "expr": re.compile(r" +|\*\*|[0-9]{1,19}(?![0-9A-Za-z_.])|[A-Za-z_][A-Za-z0-9_]*|==|!=|<=|>=|//|[-+*/%(),<>]"),
    "guard": re.compile(_GUARD_INPUT + r"| +|\*\*|[0-9]{1,19}(?![0-9A-Za-z_.])|[A-Za-z_][A-Za-z0-9_]*|==|!=|<=|>=|//|[-+*/%(),<>]"),
}
_KEYWORDS = {"expr": set(), "guard": {"and", "or", "not"}}
# How torch writes a symbol itself: Symbol('s77', positive=True, integer=True).
_ASSUMPTIONS = "positive|negative|nonnegative|nonpositive|integer|real|finite|zero|nonzero|even|odd|rational"
_SYMBOL_DECLARATION = re.compile(r"Symbol\('[a-z]{1,8}[0-9]{1,9}'(?:, (?:%s)=(?:True|False)){0,12}\)" % _ASSUMPTIONS)
# torch's serialized dtypes (torch/_export/serde/schema.py ScalarType name -> torch dtype name): the same as torch's
# own _SERIALIZE_TO_TORCH_DTYPE (a test compares them), read without importing torch's serializer, which imports
# torch._dynamo (about a second) and would make inspect slow.
_SCALAR_TYPES = {"BYTE": "uint8", "CHAR": "int8", "UINT16": "uint16", "SHORT": "int16", "INT": "int32",
                 "LONG": "int64", "HALF": "float16", "FLOAT": "float32", "DOUBLE": "float64",
                 "COMPLEXHALF": "complex32", "COMPLEXFLOAT": "complex64", "COMPLEXDOUBLE": "complex128",
                 "BOOL": "bool", "BFLOAT16": "bfloat16", "FLOAT8E4M3FN": "float8_e4m3fn", "FLOAT8E5M2": "float8_e5m2",
                 "FLOAT8E4M3FNUZ": "float8_e4m3fnuz", "FLOAT8E5M2FNUZ": "float8_e5m2fnuz",
                 "FLOAT8E8M0FNU": "float8_e8m0fnu", "UINT32": "uint32", "UINT64": "uint64"}
MAX_EXPR_CHARS = 1024
MAX_DEPTH = 32
MAX_GUARDS = 1024


def refuse(path: str, why: str) -> FormatError:
    return FormatError(f"trtpack: {path!r} is not a safe trtpack ExportedProgram archive: {why}. trtpack loads only "
                       "archives written by trtpack.save (see docs/SECURITY.md); re-save the program with it.")


@dataclass
class Checked:
    specs: list         # the program's pytree specs (in_spec/out_spec texts), for pytree_types
    byte_buffers: dict  # payload key -> zip entry of every 1-D uint8 payload: a plan's bytes, or not (verify only)
    fd: int

    def check_crcs_except(self, verified_keys) -> None:
        """CRC-32 of the byte buffers whose digest the caller did not verify (those that were not engine plans)."""
        zip_layout.check_crcs(self.fd, [e for key, e in self.byte_buffers.items() if key not in verified_keys])


def check(fd: int, size: int, path: str, verify: bool = True) -> Checked:
    """Raises FormatError unless the .ep open as `fd` is what trtpack.save writes; with `verify`, also checks every
    entry's CRC-32 (streamed), except 1-D uint8 payloads: those are left in `byte_buffers` for the caller, which
    checks engine plans by their record's digest after torch read them, and must call check_crcs_except for the rest.
    What torch reads afterwards is these validated bytes (same file descriptor)."""
    from trtpack.artifacts.pytree_types import specs_in_archive_json
    try:
        layout = zip_layout.read_layout(fd, size)
        entries = _entries(path, layout)
        small = {name: zip_layout.read_entry(fd, entries[name], limit) for name, limit in FIXED.items()
                 if name in entries and name != "data/sample_inputs/model.pt"}
        if small["archive_format"] != b"pt2":
            raise refuse(path, "archive_format is not 'pt2'")
        byte_buffers = {}
        for folder, stem in PAYLOADS.items():
            config = _json(path, small[f"{folder}model_{'weights' if stem == 'weight' else 'constants'}_config.json"])
            byte_buffers.update(_check_payloads(path, folder, stem, config, entries))
        model = _json(path, small["models/model.json"])
        _check_model(path, model)
        if "data/sample_inputs/model.pt" in entries:
            _check_sample_inputs(path, zip_layout.read_entry(fd, entries["data/sample_inputs/model.pt"],
                                                             MAX_SAMPLE_INPUTS))
        if verify:
            deferred = {id(e) for e in byte_buffers.values()}
            zip_layout.check_crcs(fd, [e for e in layout if id(e) not in deferred])
    except zip_layout.LayoutError as e:
        raise refuse(path, str(e)) from None
    return Checked(specs_in_archive_json(model), byte_buffers, fd)


def _entries(path: str, layout: list) -> dict:
    roots = {entry.name.split("/", 1)[0] for entry in layout}
    root = next(iter(roots)) if len(roots) == 1 else None
    if root is None or not _ROOT.fullmatch(root) or any("/" not in e.name for e in layout):
        raise refuse(path, f"its entries are not all under one root folder (found {sorted(roots)[:5]})")
    entries = {entry.name[len(root) + 1:]: entry for entry in layout}
    for name in entries:
        if name not in FIXED and not _PAYLOAD.fullmatch(name):
            raise refuse(path, f"it holds {name!r}, which trtpack.save never writes "
                               "(AOTInductor packages are .pt2; legacy torch archives are not supported)")
    for required in REQUIRED:
        if required not in entries:
            raise refuse(path, f"the zip entry {required!r} is missing")
    return entries


def _bounded_int(text: str) -> int:
    value = int(text)
    if not -INT64 <= value < INT64:
        raise ValueError(f"the integer {text[:40]} does not fit in 64 bits")
    return value


def _json(path: str, data: bytes):
    try:
        return json.loads(data, parse_int=_bounded_int)
    except (ValueError, RecursionError) as e:
        raise refuse(path, f"a JSON entry is not valid JSON of 64-bit integers ({str(e)[:120]})") from None


def _check_payloads(path: str, folder: str, stem: str, config, entries: dict) -> dict:
    """Refuses payloads that are not plain tensors within their entry; returns payload key -> entry for each 1-D
    uint8 tensor over a whole entry of its own (an engine plan, or another byte buffer)."""
    import torch

    items = config.get("config") if isinstance(config, dict) and set(config) == {"config"} else None
    if not isinstance(items, dict):
        raise refuse(path, f"{folder} config has no 'config' object")
    stored = {name for name in entries if name.startswith(folder + stem + "_")}
    named = set()  # torch stores a storage once, so tensors that share one (tied weights) name the same entry
    byte_buffers = {}
    for key, payload in items.items():
        if not isinstance(payload, dict) or payload.get("use_pickle") is not False:
            raise refuse(path, f"{folder} payload {key!r} is stored as a pickle (use_pickle), which would run code")
        name = folder + str(payload.get("path_name"))
        if not _PAYLOAD.fullmatch(name) or name not in stored:
            raise refuse(path, f"{folder} payload {key!r} is a {payload.get('path_name')!r} object; only plain "
                               "tensors stored in the archive load")
        named.add(name)
        meta = payload.get("tensor_meta")
        try:
            dtype = serialized_dtypes()[meta["dtype"]]
            sizes = [d["as_int"] for d in meta["sizes"]]
            strides = [d["as_int"] for d in meta["strides"]]
            offset = meta["storage_offset"]["as_int"]
        except (KeyError, TypeError, IndexError):
            raise refuse(path, f"{folder} payload {key!r} has no static tensor_meta (dtype, sizes, strides)") from None
        _check_extent(path, key, dtype.itemsize if isinstance(dtype, torch.dtype) else 0, sizes, strides, offset,
                      entries[name].size)
        if dtype is torch.uint8 and sizes == [entries[name].size] and offset == 0:
            byte_buffers[key] = entries[name]
    if stored - named:
        raise refuse(path, f"{sorted(stored - named)[0]!r} is in the archive but no payload config names it")
    return byte_buffers


@functools.lru_cache(maxsize=None)
def serialized_dtypes() -> dict:
    """torch's serialized dtype number -> torch dtype, for the dtypes this torch has."""
    import torch
    from torch._export.serde.schema import ScalarType

    return {ScalarType[name].value: getattr(torch, dtype) for name, dtype in _SCALAR_TYPES.items()
            if name in ScalarType.__members__ and hasattr(torch, dtype)}


def _check_extent(path: str, key: str, itemsize: int, sizes: list, strides: list, offset: int, stored: int) -> None:
    """A tensor must be backed by its own bytes: a stride-0 or overlapping view larger than what is stored (a 2 GiB
    tensor over one byte) is refused before torch or trtpack would materialize it."""
    if not itemsize or len(sizes) != len(strides) or not all(isinstance(v, int) and v >= 0 for v in
                                                             [*sizes, *strides, offset]):
        raise refuse(path, f"tensor {key!r} has a malformed shape, stride or dtype")
    numel = 1
    for dim in sizes:
        numel *= dim
    last = offset + sum((d - 1) * s for d, s in zip(sizes, strides)) if numel else offset - 1
    if numel * itemsize > stored or (last + 1) * itemsize > stored:
        raise refuse(path, f"tensor {key!r} spans {max(numel, last + 1) * itemsize} bytes but {stored} are stored "
                           "(a stride-0 or overlapping view that would be materialized)")


def _check_sample_inputs(path: str, data: bytes) -> None:
    # trtpack.save writes none (empty). Older saves wrote torch.save pickles, and torch retries a failed
    # weights_only load with weights_only=False: accept only what torch's safe loader accepts. Whatever that loader
    # raises on damaged bytes (its own errors, struct.error on a truncated opcode, ...) is a refusal.
    if not data:
        return
    import torch

    try:
        torch.load(io.BytesIO(data), weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise refuse(path, f"'data/sample_inputs/model.pt' does not load with torch.load(weights_only=True) "
                           f"({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})") from None


def _check_model(path: str, model) -> None:
    if not isinstance(model, dict) or not set(model) <= MODEL_KEYS or "graph_module" not in model:
        raise refuse(path, "models/model.json is not torch's ExportedProgram schema as trtpack writes it")
    guards = model.get("guards_code", [])
    if not isinstance(guards, list) or len(guards) > MAX_GUARDS:
        raise refuse(path, "guards_code is not a short list")
    for guard in guards:
        check_grammar(guard, "guard", path)
    ranges = model.get("range_constraints", {})
    if not isinstance(ranges, dict) or not all(isinstance(k, str) and _SYMBOL.fullmatch(k) for k in ranges):
        raise refuse(path, f"a range_constraints key is not a symbol name like s0 ({sorted(map(str, ranges))[:3]})")
    stack = [model["graph_module"]]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr_str":
                    check_grammar(value, "expr", path)
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)


_POW_EXPONENT = re.compile(r", Integer\([1-8]\)\)")
_STAR_STAR = re.compile(r"\*\*(?![1-8](?![0-9*]))")
MAX_POWERS = 4


def _check_powers(text: str, what: str, path: str) -> None:
    """x**k and Pow(x, Integer(k)) only with 1 <= k <= 8 and at most MAX_POWERS of them: 9**9**9 (or nested
    Pow) would make sympy or Python compute a number with billions of digits."""
    starts = [m.start() for m in re.finditer(r"\bPow\(", text)]
    if _STAR_STAR.search(text) or len(starts) + text.count("**") > MAX_POWERS:
        raise refuse(path, f"the {what} {text[:80]!r} raises to a power other than a literal 1-8, or more than "
                           f"{MAX_POWERS} times")
    for start in starts:
        depth, end = 0, start + 3
        for end in range(start + 3, len(text)):
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            if depth == 0:
                break
        if end - 12 <= start or not _POW_EXPONENT.match(text, end - 12):
            raise refuse(path, f"the {what} {text[:80]!r} has a Pow whose exponent is not Integer(1..8)")


def check_grammar(text, kind: str, path: str = "<expression>") -> None:
    """Refuses a string torch would sympify ("expr") or exec ("guard") unless it matches the strict grammar above:
    linear in its length, at most MAX_EXPR_CHARS characters and MAX_DEPTH nested parentheses."""
    what = "symbolic expression" if kind == "expr" else "guard"
    if not isinstance(text, str) or not 0 < len(text) <= MAX_EXPR_CHARS:
        raise refuse(path, f"a {what} is not a string of 1-{MAX_EXPR_CHARS} characters")
    _check_powers(text, what, path)
    if kind == "expr":  # torch writes srepr: Mul(Integer(3), Symbol('s77', positive=True, integer=True))
        text = _SYMBOL_DECLARATION.sub("s0", text)
    pos, depth, tokens = 0, 0, _TOKENS[kind]
    while pos < len(text):
        token = tokens.match(text, pos)
        if token is None:
            raise refuse(path, f"the {what} {text[:80]!r} has {text[pos]!r} at {pos}; torch would "
                               f"{'eval it with sympy' if kind == 'expr' else 'exec it'}")
        word = token.group()
        if word == "(":
            depth += 1
            if depth > MAX_DEPTH:
                raise refuse(path, f"the {what} {text[:80]!r} nests deeper than {MAX_DEPTH}")
        elif word == ")":
            depth -= 1
        elif (word[0].isalpha() or word[0] == "_") and not word.startswith("L[") and not (
                word in _FUNCTIONS or word in _KEYWORDS[kind] or _SYMBOL.fullmatch(word)):
            raise refuse(path, f"the {what} {text[:80]!r} names {word!r}, which is not a sympy function or a "
                               f"symbol; torch would {'eval' if kind == 'expr' else 'exec'} it")
        pos = token.end()
