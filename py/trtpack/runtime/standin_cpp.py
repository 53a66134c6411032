"""The Python side of the TensorRT C++ STAND-IN (a test double; tests/gpu/cpp_standin/): callbacks through which
libtrtpack_trt_standin.so, the C++ face a stand-in build of libtorchtrt_runtime.so runs instead of TensorRT, reaches
the same registry and the same `trtpack.runtime.standin.stand_in()` as the Python executor's stand-in. Its runs and
refusals land in that object's `runs` and `errors`, whichever executor made them.

Never used unless TRTPACK_TENSORRT_STANDIN=1 and the loaded libtorchtrt_runtime.so is a stand-in build.
"""
import ctypes
import threading
from typing import List, Optional

from trtpack.runtime import standin

LIBRARY = "libtrtpack_trt_standin.so"
_SLOTS = 9  # one shape: rank, then up to 8 dims (TensorRT's Dims)

_i64p, _u64p = ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_uint64)
_DESERIALIZE = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int32, ctypes.c_void_p,
                                ctypes.c_uint64)
_OUTPUT_SHAPES = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int64, _i64p, _i64p)
_ENQUEUE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int64, _u64p, _i64p, ctypes.c_uint64)
_ERROR = ctypes.CFUNCTYPE(None, ctypes.c_char_p)


class _Callbacks(ctypes.Structure):
    _fields_ = [("deserialize", _DESERIALIZE), ("output_shapes", _OUTPUT_SHAPES), ("enqueue", _ENQUEUE),
                ("error", _ERROR)]


_engines: List[standin.Engine] = []
_lock = threading.Lock()
_attached: Optional[tuple] = None  # (library, callbacks): kept alive while attached


def _stand_in() -> standin.StandIn:
    return standin.stand_in("tensorrt_rtx")


def _shape(values, at: int) -> tuple:
    return tuple(int(values[at + 1 + d]) for d in range(int(values[at])))


def _deserialize(plan, size, device, out, capacity) -> int:
    try:
        data = memoryview((ctypes.c_ubyte * size).from_address(plan)).cast("B")
        engine = _stand_in().deserialize(data)  # on torch's current device, which the executor set
        if engine is None:
            return -1  # refused, and logged
        text = "".join(f"{name}\t{'I' if name in engine.inputs else 'O'}\t{entry['dtype']}\t"
                       f"{','.join(map(str, entry.get('min', ())))}\t{','.join(map(str, entry.get('max', ())))}\n"
                       for name, entry in [*engine.inputs.items(), *engine.outputs.items()]).encode()
        if len(text) >= capacity:
            _stand_in().error("deserialize: the engine's I/O description is too long for the C++ stand-in")
            return -1
        ctypes.memmove(out, text, len(text))
        with _lock:
            _engines.append(engine)
            return len(_engines) - 1
    except Exception as e:  # an exception must not cross into C++
        _stand_in().error(f"deserialize: {type(e).__name__}: {e}")
        return -1


def _output_shapes(engine_id, inputs, outputs) -> int:
    try:
        engine = _engines[engine_id]
        shapes = engine.output_shapes(tuple(_shape(inputs, i * _SLOTS) for i in range(len(engine.inputs))))
        for o, shape in enumerate(shapes):
            at = (len(engine.inputs) + o) * _SLOTS
            outputs[at] = len(shape)
            for d, size in enumerate(shape):
                outputs[at + 1 + d] = size
        return 1
    except Exception as e:
        _stand_in().error(f"output shapes: {type(e).__name__}: {e}")
        return 0


def _enqueue(engine_id, addresses, shapes, stream) -> int:
    try:
        engine = _engines[engine_id]
        context = standin.Context(engine)  # the Python stand-in's own run: its checks, its record, its compute
        for i, name in enumerate(engine.names):
            context.addresses[name] = int(addresses[i])
            if name in engine.inputs:
                context.shapes[name] = _shape(shapes, i * _SLOTS)
        return 1 if context.execute_async_v3(int(stream)) else 0
    except Exception as e:
        _stand_in().error(f"enqueueV3: {type(e).__name__}: {e}")
        return 0


def _error(message) -> None:
    _stand_in().error(message.decode("utf-8", "replace"))


def library(path: Optional[str] = None) -> ctypes.CDLL:
    """The C++ stand-in, already loaded as a dependency of the stand-in build of libtorchtrt_runtime.so."""
    return ctypes.CDLL(path or LIBRARY)


def attach(path: Optional[str] = None) -> None:
    """Gives the C++ stand-in its callbacks into this process's registry (once; again is harmless)."""
    global _attached
    if _attached is not None:
        return
    lib = library(path)
    callbacks = _Callbacks(_DESERIALIZE(_deserialize), _OUTPUT_SHAPES(_output_shapes), _ENQUEUE(_enqueue),
                           _ERROR(_error))
    lib.trtpack_standin_attach(ctypes.byref(callbacks))
    _attached = (lib, callbacks)


def null_contexts(on: bool) -> None:
    """While on, the C++ stand-in's new execution contexts bind and enqueue nothing, keeping only the shapes (the
    benchmarks' baseline)."""
    library().trtpack_standin_null_contexts(ctypes.c_int32(1 if on else 0))


def probe(plan: bytes, shape, input_address: int, output_address: int, stream: int) -> int:
    """Runs a one-input, one-output engine through the C++ stand-in's own TensorRT API with exactly these addresses
    and shape (what the executor never hands it): 1 ran, 0 refused (reason in stand_in().errors), -1 no engine."""
    lib = library()
    lib.trtpack_standin_probe.restype = ctypes.c_int32
    dims = (ctypes.c_int64 * len(shape))(*shape)
    return lib.trtpack_standin_probe(ctypes.c_char_p(bytes(plan)), ctypes.c_uint64(len(plan)), dims,
                                     ctypes.c_int32(len(shape)), ctypes.c_uint64(input_address),
                                     ctypes.c_uint64(output_address), ctypes.c_uint64(stream))


__all__ = ["LIBRARY", "attach", "library", "null_contexts", "probe"]
