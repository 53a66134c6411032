"""The engine cache: built plans (with their record meta) on disk, keyed on everything that changes a plan, so
compiling the same model again skips ONNX export and the TensorRT build.

Where: $TRTPACK_CACHE_DIR/engines (default ~/.cache/trtpack/engines), a sibling of the runtime's rtx_runtime_cache.
Cap: $TRTPACK_CACHE_MAX_MB (default 8192); after each write the least recently used entries (by mtime; a hit
touches its entry) are removed until the folder fits.
Entry: one file `<key>.entry`: 8-byte little-endian header length, a JSON header (meta, targets, plan size and
sha256), then the plan bytes. Written to a temporary file and renamed into place, so readers see a whole entry or
none; two processes building the same entry both succeed (the last rename wins, both plans are identical).
A damaged entry (digest or size mismatch, unreadable header) is reported once per process, removed and rebuilt.

API: info() -> dict, clear() -> int (entries removed); compile(..., cache=False) opts out.
"""
import hashlib
import json
import operator
import os
import struct
import tempfile
import warnings
from dataclasses import dataclass
from typing import Optional

import torch

ENTRY_SUFFIX = ".entry"
DEFAULT_MAX_MB = 8192
_HEADER = struct.Struct("<Q")
_reported = set()


def cache_dir() -> str:
    base = os.environ.get("TRTPACK_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "trtpack")
    return os.path.join(base, "engines")


def max_bytes() -> int:
    return int(float(os.environ.get("TRTPACK_CACHE_MAX_MB", DEFAULT_MAX_MB)) * 1e6)


@dataclass
class Entry:
    plan: bytes
    meta: str
    targets: list


def _entries(folder: str) -> list:
    """[(path, size, mtime)] of the entries in `folder` (entries that vanish meanwhile are skipped)."""
    found = []
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return found
    for name in names:
        if not name.endswith(ENTRY_SUFFIX):
            continue
        path = os.path.join(folder, name)
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            continue
        found.append((path, stat.st_size, stat.st_mtime))
    return found


def info() -> dict:
    """{'path', 'entries', 'bytes', 'max_bytes'} of the engine cache."""
    folder = cache_dir()
    entries = _entries(folder)
    return {"path": folder, "entries": len(entries), "bytes": sum(size for _, size, _ in entries),
            "max_bytes": max_bytes()}


def clear() -> int:
    """Removes every entry; returns how many."""
    removed = 0
    for path, _, _ in _entries(cache_dir()):
        try:
            os.remove(path)
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def _path(key: str) -> str:
    return os.path.join(cache_dir(), key + ENTRY_SUFFIX)


def _report_damage(path: str, why: str) -> None:
    if path not in _reported:
        _reported.add(path)
        warnings.warn(f"trtpack: engine cache entry {path} is damaged ({why}); it is removed and the engine rebuilt")
    try:
        os.remove(path)
    except OSError:
        pass


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
                if hashlib.sha256(plan).hexdigest() != header["plan_sha256"]:
                    raise ValueError("plan sha256 mismatch")
                entry = Entry(plan=plan, meta=header["meta"], targets=header["targets"])
            except (struct.error, ValueError, KeyError, TypeError, AttributeError) as error:
                _report_damage(path, str(error) or type(error).__name__)
                return None
    except FileNotFoundError:
        return None
    try:
        os.utime(path)  # least recently used = oldest mtime
    except OSError:
        pass
    return entry


def put(key: str, entry: Entry) -> None:
    """Stores `entry` atomically, then evicts least recently used entries beyond the cap. Failures only warn: the
    cache never makes a compile fail."""
    folder = cache_dir()
    header = json.dumps({"key": key, "meta": entry.meta, "targets": entry.targets, "plan_size": len(entry.plan),
                         "plan_sha256": hashlib.sha256(entry.plan).hexdigest()}).encode()
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
    entries = sorted(_entries(cache_dir()), key=lambda e: e[2])
    total = sum(size for _, size, _ in entries)
    for path, size, _ in entries:
        if total <= limit:
            break
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        total -= size


def key(region: torch.fx.GraphModule, signature: dict) -> str:
    """sha256 of the region's graph (ops, attributes, dtypes), its weights, and `signature`: everything else that
    changes the plan (input/output dims, dynamic ranges, targets, backend + version, format and builder options)."""
    digest = hashlib.sha256()
    digest.update(json.dumps(signature, sort_keys=True).encode())
    index = {}
    for position, node in enumerate(region.graph.nodes):
        index[node] = position
        value = node.meta.get("val")
        described = [node.op, _target_name(node.target) if node.op != "placeholder" else "",
                     _argument(node.args, index), _argument(node.kwargs, index),
                     str(value.dtype) if isinstance(value, torch.Tensor) else ""]
        digest.update(json.dumps(described).encode())
        if node.op == "get_attr":
            tensor = operator.attrgetter(node.target)(region)
            digest.update(f"{tensor.dtype}{tuple(tensor.shape)}{tuple(tensor.stride())}".encode())
            digest.update(_tensor_bytes(tensor))
    return digest.hexdigest()


def _target_name(target) -> str:
    if isinstance(target, str):
        return target
    return f"{getattr(target, '__module__', '')}.{getattr(target, '__name__', target)}"


def _argument(value, index):
    if isinstance(value, torch.fx.Node):
        return ["node", index[value]]
    if isinstance(value, (list, tuple)):
        return [_argument(v, index) for v in value]
    if isinstance(value, dict):
        return {str(k): _argument(v, index) for k, v in sorted(value.items())}
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return repr(value)  # floats (full precision), dtypes, devices, memory formats, layouts


def _tensor_bytes(tensor: torch.Tensor) -> memoryview:
    flat = tensor.detach().contiguous().cpu().reshape(-1)
    if flat.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    return memoryview(flat.view(torch.uint8).numpy())
