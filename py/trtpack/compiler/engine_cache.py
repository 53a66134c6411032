"""The engine cache: built plans (with their record meta) on disk, keyed on everything that changes a plan, so
compiling the same model again skips ONNX export and the TensorRT build. Its folder management (info, clear, the
size cap and eviction) also covers the program cache (program_cache.py), which sits in front of it.

Where: $TRTPACK_CACHE_DIR/engines (default ~/.cache/trtpack/engines), a sibling of the runtime's rtx_runtime_cache
and of the program cache's `programs`.
Cap: $TRTPACK_CACHE_MAX_MB (default 8192), for `engines` and `programs` together; after each write the least
recently used entries of both (by mtime; a hit touches its entry) are removed until they fit.
Entry: one file `<key>.entry`: 8-byte little-endian header length, a JSON header (meta, targets, plan size and
XXH3-128), then the plan bytes. Written to a temporary file and renamed into place, so readers see a whole entry or
none; two processes building the same entry both succeed (the last rename wins, both plans are identical).
A damaged entry (digest or size mismatch, unreadable header) is reported once per process, removed and rebuilt.

API: info() -> dict, clear() -> int (entries removed), both over both folders; compile(..., cache=False) opts out.
"""
import json
import operator
import os
import struct
from stat import S_ISREG
import tempfile
import warnings
from dataclasses import dataclass
from typing import Optional

import torch

from trtpack import locations, record
from trtpack.compiler import cache_keys

ENTRY_SUFFIX = ".entry"
DEFAULT_MAX_MB = 8192
FOLDERS = ("engines", "programs")  # this module's entries, program_cache's
_HEADER = struct.Struct("<Q")
_reported = set()


def base_dir() -> str:
    return locations.cache_root()


def cache_dir(folder: str = "engines") -> str:
    return os.path.join(base_dir(), folder)


def max_bytes() -> int:
    return int(float(os.environ.get("TRTPACK_CACHE_MAX_MB", DEFAULT_MAX_MB)) * 1e6)


@dataclass
class Entry:
    plan: bytes
    meta: str
    targets: list


def _entries(folder: str) -> list:
    """[(paths, size, mtime)] of the entries in `folder`: files grouped by their name up to the first dot (the key),
    so an entry may be several files. Names starting with a dot are writes in progress and are skipped, and so are
    files that vanish meanwhile."""
    found = {}
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    for name in names:
        if name.startswith("."):
            continue
        path = os.path.join(folder, name)
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            continue
        if S_ISREG(stat.st_mode):
            stem = name.split(".")[0]
            paths, size, mtime = found.get(stem, ((), 0, 0.0))
            found[stem] = (paths + (path,), size + stat.st_size, max(mtime, stat.st_mtime))
    return list(found.values())


def _all_entries() -> list:
    return [entry for folder in FOLDERS for entry in _entries(cache_dir(folder))]


def info() -> dict:
    """{'path', 'entries', 'bytes', 'max_bytes', 'folders': {'engines': {...}, 'programs': {...}}} of the engine and
    program caches (path: their parent folder; the cap covers both)."""
    folders = {}
    for name in FOLDERS:
        entries = _entries(cache_dir(name))
        folders[name] = {"path": cache_dir(name), "entries": len(entries),
                         "bytes": sum(size for _, size, _ in entries)}
    return {"path": base_dir(), "entries": sum(f["entries"] for f in folders.values()),
            "bytes": sum(f["bytes"] for f in folders.values()), "max_bytes": max_bytes(), "folders": folders}


def _remove(paths) -> bool:
    removed = False
    for path in paths:
        try:
            os.remove(path)
            removed = True
        except FileNotFoundError:
            pass
    return removed


def clear() -> int:
    """Removes every entry of both caches; returns how many."""
    return sum(_remove(paths) for paths, _, _ in _all_entries())


def touch(paths) -> None:
    """Marks an entry as just used (least recently used = oldest mtime)."""
    for path in paths:
        try:
            os.utime(path)
        except OSError:
            pass


def report_damage(paths, why: str, what: str = "engine") -> None:
    """Warns once per process per entry, and removes the entry's files."""
    if paths[0] not in _reported:
        _reported.add(paths[0])
        warnings.warn(f"trtpack: {what} cache entry {paths[0]} is damaged ({why}); it is removed and the {what} "
                      "rebuilt")
    for path in paths:
        try:
            os.remove(path)
        except OSError:
            pass


def _path(key: str) -> str:
    return os.path.join(cache_dir(), key + ENTRY_SUFFIX)


def get(key: str) -> Optional[Entry]:
    """The entry stored under `key`, or None (missing or damaged)."""
    path = _path(key)
    try:
        with open(path, "rb") as f:
            try:
                (length,) = _HEADER.unpack(f.read(_HEADER.size))
                if length > os.fstat(f.fileno()).st_size:
                    raise ValueError(f"header length {length} exceeds the file")
                header = json.loads(f.read(length))
                plan = f.read()  # read apart from the header: a 500 MB plan is copied once, not twice
                if header.get("key") != key or len(plan) != header["plan_size"]:
                    raise ValueError(f"{len(plan)} plan bytes, the header says {header.get('plan_size')}")
                if record.xxh3(plan) != header["plan_xxh3"]:
                    raise ValueError("plan XXH3-128 mismatch")
                entry = Entry(plan=plan, meta=header["meta"], targets=header["targets"])
            except (struct.error, ValueError, KeyError, TypeError, AttributeError) as error:
                report_damage([path], str(error) or type(error).__name__)
                return None
    except FileNotFoundError:
        return None
    touch([path])
    return entry


def put(key: str, entry: Entry) -> None:
    """Stores `entry` atomically, then evicts least recently used entries beyond the cap. Failures only warn: the
    cache never makes a compile fail."""
    folder = cache_dir()
    header = json.dumps({"key": key, "meta": entry.meta, "targets": entry.targets, "plan_size": len(entry.plan),
                         "plan_xxh3": record.xxh3(entry.plan)}).encode()
    try:
        os.makedirs(folder, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_HEADER.pack(len(header)))
                f.write(header)
                f.write(entry.plan)
            os.replace(temporary, _path(key))
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as error:
        warnings.warn(f"trtpack: could not write the engine cache entry in {folder}: {error}")
        return
    evict(max_bytes())


def evict(limit: int) -> None:
    """Removes the least recently used entries of both folders until they hold at most `limit` bytes together."""
    entries = sorted(_all_entries(), key=lambda e: e[2])
    total = sum(size for _, size, _ in entries)
    for paths, size, _ in entries:
        if total <= limit:
            break
        _remove(paths)
        total -= size


def key(region: torch.fx.GraphModule, signature: dict) -> str:
    """The digest of the region's graph (ops, attributes, dtypes), its weights, and `signature`: everything else that
    changes the plan (input/output dims, dynamic ranges, targets, backend + version, format and builder options)."""
    digest = cache_keys.new_digest()
    digest.update(json.dumps(signature, sort_keys=True).encode())
    index = {}
    for position, node in enumerate(region.graph.nodes):
        index[node] = position
        value = node.meta.get("val")
        described = [node.op, cache_keys.target_name(node.target) if node.op != "placeholder" else "",
                     cache_keys.argument(node.args, index), cache_keys.argument(node.kwargs, index),
                     str(value.dtype) if isinstance(value, torch.Tensor) else ""]
        digest.update(json.dumps(described).encode())
        if node.op == "get_attr":
            tensor = operator.attrgetter(node.target)(region)
            digest.update(f"{tensor.dtype}{tuple(tensor.shape)}{tuple(tensor.stride())}".encode())
            digest.update(cache_keys.tensor_bytes(tensor))
    return digest.hexdigest()
