"""The manifest inside .ep and .pt2 archives (`<root>/extra/trtpack/manifest.json`, spec in docs/FORMAT.md): every
engine record and the program's inputs, outputs and ranges, so `inspect` reads this one entry and nothing else.
It is read through trtpack's checked zip reader (zip_layout.py), like every other zip read."""
import json
import os
from dataclasses import dataclass
from typing import Optional

from trtpack.artifacts import zip_layout
from trtpack.artifacts.files import open_regular
from trtpack.errors import FormatError

ENTRY = "trtpack/manifest.json"    # under the archive's extra/ folder
FORMAT = "trtpack.artifact"
VERSION = [1, 2]                   # 1.2: program.dim_names
MAX_BYTES = 16 << 20               # records are a few KiB each


@dataclass
class Manifest:
    engines: list                  # [(meta text, fallback)] in graph order
    program: Optional[dict]        # {"inputs", "outputs", "symbols"}; None in 1.0 manifests


def encode(found: list, program: dict) -> str:
    return json.dumps({"format": FORMAT, "format_version": VERSION, "program": program,
                       "engines": [{"meta": e.meta, "fallback": e.fallback} for e in found]},
                      sort_keys=True, separators=(",", ":"))


def decode(text: str) -> Manifest:
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"format is not {FORMAT!r}")
        if doc["format_version"][0] != VERSION[0]:
            raise ValueError(f"format_version {doc['format_version']} is not {VERSION[0]}.x: upgrade trtpack")
        engines = [(entry["meta"], entry["fallback"]) for entry in doc["engines"]]
        if not all(isinstance(m, str) and isinstance(f, bool) for m, f in engines):
            raise ValueError("engines must be [{meta: str, fallback: bool}]")
        program = doc.get("program")
        if program is not None and not (isinstance(program, dict) and {"inputs", "outputs", "symbols"} <= set(program)):
            raise ValueError("program must hold inputs, outputs and symbols")
        return Manifest(engines, program)
    except (ValueError, KeyError, TypeError, IndexError, RecursionError) as e:
        raise FormatError(f"trtpack: the artifact's {ENTRY} is malformed ({e}). Re-save it with trtpack.save.") from e


def read(path: str) -> Manifest:
    """The manifest of a .ep or .pt2 archive, reading only the archive's layout and this entry."""
    fd, size = open_regular(path)
    try:
        return read_open(fd, size, path)
    finally:
        os.close(fd)


def read_open(fd: int, size: int, path: str) -> Manifest:
    """read() of the archive open as `fd`: its layout checked (zip_layout.read_layout), the entry CRC-checked."""
    try:
        entry = [e for e in zip_layout.read_layout(fd, size) if e.name.endswith("/extra/" + ENTRY)]
        if len(entry) != 1:
            raise FormatError(f"trtpack: {path!r} has {'no' if not entry else 'more than one'} trtpack manifest "
                              f"({ENTRY}); it was not written by trtpack.save. Re-save it with trtpack.save.")
        if entry[0].size > MAX_BYTES:
            raise FormatError(f"trtpack: {path!r}: {ENTRY} is {entry[0].size} bytes, too large to be "
                              "trtpack's manifest")
        text = zip_layout.read_entry(fd, entry[0], MAX_BYTES).decode("utf-8")
    except (zip_layout.LayoutError, UnicodeDecodeError) as e:  # a damaged layout, a bad CRC, bad UTF-8...
        raise FormatError(f"trtpack: {path!r}: cannot read {ENTRY} ({type(e).__name__}: {str(e)[:200]}); "
                          "re-save the program with trtpack.save") from None
    return decode(text)
