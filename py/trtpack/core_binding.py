"""ctypes face of libtrtpack_core.so, the C++ core behind a C ABI (core/c_api.h).

The same library serves every CPython, so the wheel does not depend on the Python version (docs/PACKAGING.md).
This module only converts arguments and results; `trtpack.record` is the public face. ctypes releases the GIL
around every call, so digests of large plans do not stall other threads.
"""
import ctypes
import json
from typing import Any, Dict

import numpy as np

_c_char_pp = ctypes.POINTER(ctypes.c_char_p)
API_VERSION = 1


class RecordError(ValueError):
    """An engine record failed the core's validation; .field names the field (a JSON path, or "plan")."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


def _buffer(data):
    """(pointer, length, keep-alive) of contiguous 1-D bytes (bytes, bytearray, memoryview, 1-D uint8 array)."""
    view = memoryview(data)
    if view.ndim != 1 or view.itemsize != 1 or not view.c_contiguous:
        raise RecordError("plan: must be contiguous 1-D bytes (bytes, bytearray, or a 1-D uint8 array)", "plan")
    array = np.frombuffer(view, dtype=np.uint8)  # no copy, read-only buffers included
    return ctypes.c_void_p(array.ctypes.data if array.size else None), array.size, array


def _text(value: str):
    data = value.encode("utf-8", "surrogatepass")
    return data, len(data)


class Core:
    """The loaded library; methods mirror c_api.h, raising RecordError where the core refuses."""

    def __init__(self, path: str):
        lib = ctypes.CDLL(path)
        lib.trtpack_c_api_version.restype = ctypes.c_int
        if lib.trtpack_c_api_version() != API_VERSION:
            raise ImportError(f"{path} has C ABI version {lib.trtpack_c_api_version()}, this trtpack needs "
                              f"{API_VERSION}: rebuild it (./bazelw build //...) or reinstall the wheel")
        fail = [_c_char_pp, _c_char_pp]
        text = [ctypes.c_char_p, ctypes.c_size_t]
        buf = [ctypes.c_void_p, ctypes.c_size_t]
        for name, args in {"trtpack_canonical_meta": text + [_c_char_pp] + fail,
                           "trtpack_check_plan": text + buf + [ctypes.c_int] + fail,
                           "trtpack_check_plan_digest_fd": text + [ctypes.c_int, ctypes.c_uint64] + fail,
                           "trtpack_plan_header": buf + [_c_char_pp] + fail,
                           "trtpack_parse_dim": text + [_c_char_pp] + fail,
                           "trtpack_eval_dim": text + text + [ctypes.POINTER(ctypes.c_int64)] + fail,
                           "trtpack_compatibility": text + text + [_c_char_pp] + fail}.items():
            getattr(lib, name).argtypes = args
            getattr(lib, name).restype = ctypes.c_int
        lib.trtpack_xxh3.argtypes = buf + [ctypes.c_char_p]
        lib.trtpack_xxh3.restype = None
        lib.trtpack_xxh3_stream_new.restype = ctypes.c_void_p
        lib.trtpack_xxh3_stream_update.argtypes = [ctypes.c_void_p] + buf
        lib.trtpack_xxh3_stream_hex.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.trtpack_xxh3_stream_free.argtypes = [ctypes.c_void_p]
        lib.trtpack_info_json.restype = ctypes.c_void_p
        lib.trtpack_free.argtypes = [ctypes.c_void_p]
        self._lib = lib
        self.path = path
        info_text = lib.trtpack_info_json()
        if not info_text:
            raise ImportError(f"{path} could not describe itself (out of memory?)")
        info = json.loads(self._take(info_text))
        self.__version__: str = info["version"]
        self.FORMAT_ID: str = info["format_id"]
        self.FORMAT_VERSION = tuple(info["format_version"])
        self.MAX_PLAN_SIZE: int = info["max_plan_size"]
        self.DTYPES = tuple(info["dtypes"])
        self.FIELDS = tuple(tuple(f) for f in info["fields"])
        self.TENSOR_FIELDS = tuple(tuple(f) for f in info["tensor_fields"])
        self.SYMBOL_RANGE_FIELDS = tuple(tuple(f) for f in info["symbol_range_fields"])
        self.TARGET_BITS: Dict[str, int] = dict(info["target_bits"])
        self.RecordError = RecordError

    def _take(self, pointer) -> str:
        """A string the library handed out, decoded leniently (messages may quote damaged input) and freed."""
        try:
            return ctypes.string_at(pointer).decode("utf-8", "replace")
        finally:
            self._lib.trtpack_free(pointer)

    def _call(self, fn, *args, out=None):
        field, message = ctypes.c_char_p(), ctypes.c_char_p()
        extra = [ctypes.byref(out)] if out is not None else []
        if fn(*args, *extra, ctypes.byref(field), ctypes.byref(message)) != 0:
            field_ptr = ctypes.cast(field, ctypes.c_void_p).value
            message_ptr = ctypes.cast(message, ctypes.c_void_p).value
            raise RecordError(self._take(message_ptr), self._take(field_ptr))
        return out

    def _call_text(self, fn, *args) -> str:
        out = self._call(fn, *args, out=ctypes.c_char_p())
        return self._take(ctypes.cast(out, ctypes.c_void_p).value)

    def canonical_meta(self, meta: str) -> str:
        return self._call_text(self._lib.trtpack_canonical_meta, *_text(meta))

    def check_plan(self, meta: str, plan, verify_hash: bool = False) -> None:
        pointer, size, _keep = _buffer(plan)
        self._call(self._lib.trtpack_check_plan, *_text(meta), pointer, size, int(bool(verify_hash)))

    def check_plan_digest_fd(self, meta: str, fd: int, offset: int = 0) -> None:
        self._call(self._lib.trtpack_check_plan_digest_fd, *_text(meta), int(fd), int(offset))

    def xxh3(self, data) -> str:
        pointer, size, _keep = _buffer(data)
        out = ctypes.create_string_buffer(33)
        self._lib.trtpack_xxh3(pointer, size, out)
        return out.value.decode()

    def Xxh3Stream(self) -> "Xxh3Stream":  # noqa: N802  (reads like the class it makes)
        return Xxh3Stream(self._lib)

    def plan_header(self, plan) -> Dict[str, Any]:
        pointer, size, _keep = _buffer(plan)
        return json.loads(self._call_text(self._lib.trtpack_plan_header, pointer, size))

    def parse_dim(self, expr: str):
        return _tuples(json.loads(self._call_text(self._lib.trtpack_parse_dim, *_text(expr))))

    def eval_dim(self, expr: str, symbols: Dict[str, int]) -> int:
        out = self._call(self._lib.trtpack_eval_dim, *_text(expr), *_text(json.dumps(symbols)), out=ctypes.c_int64())
        return out.value

    def compatibility(self, meta: str, cuda: bool, sm, backends: Dict[str, str]):
        machine = json.dumps({"cuda": bool(cuda), "sm": sm, "backends": backends})
        verdict = json.loads(self._call_text(self._lib.trtpack_compatibility, *_text(meta), *_text(machine)))
        return verdict["usable"], verdict["reason"]


class Xxh3Stream:
    """XXH3-128 over bytes given in pieces: .update(bytes-like), .hexdigest()."""

    def __init__(self, lib):
        self._lib = lib
        self._state = lib.trtpack_xxh3_stream_new()
        if not self._state:
            raise MemoryError("trtpack: xxHash could not start a digest")

    def update(self, data) -> None:
        pointer, size, _keep = _buffer(data)
        self._lib.trtpack_xxh3_stream_update(self._state, pointer, size)

    def hexdigest(self) -> str:
        out = ctypes.create_string_buffer(33)
        self._lib.trtpack_xxh3_stream_hex(self._state, out)
        return out.value.decode()

    def __del__(self):
        if getattr(self, "_state", None):
            self._lib.trtpack_xxh3_stream_free(self._state)
            self._state = None


def _tuples(tree):
    return tuple(_tuples(t) for t in tree) if isinstance(tree, list) else tree
