"""The Python TensorRT executor: CUDA kernels of execute_engine and engine_usable when libtorchtrt_runtime.so was
built without its C++ executor. Works with `tensorrt_rtx` and full `tensorrt` (the record's backend picks the
module, imported on first use); deserializes once per plan and device; one context per stream; runs on torch's
current stream; outputs are allocated by torch on the inputs' device.

The device-specific pieces (current stream, compute capability, device guard, backend import) are constructor
arguments, so the contract tests drive the same code with CPU tensors and a fake TensorRT module.
"""
import atexit
import contextlib
import importlib
import os
import threading
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from trtpack import locations, record
from trtpack.names import BACKEND_MODULES, dtype_name, sm_name
from trtpack.errors import FormatError, IncompatibleEngineError
from trtpack.runtime import shapes, standin
from trtpack.runtime.trt_engine import Call, LoadedEngine, run


def test_double():
    """The computing TensorRT stand-in (runtime/standin.py, a test double) when the environment asks for it
    (TRTPACK_TENSORRT_STANDIN=1), else None. The one way trtpack's own modules reach the stand-in."""
    return standin if standin.requested() else None


def default_cache_dir() -> str:
    """Where TensorRT-RTX keeps JIT-compiled kernels between processes: $TRTPACK_CACHE_DIR, else ~/.cache/trtpack."""
    return os.path.join(locations.cache_root(), "rtx_runtime_cache")


def _cuda_stream(device: torch.device) -> Tuple[int, int]:
    # The raw handle of torch's current stream, without building a torch.cuda.Stream on every call.
    handle = torch._C._cuda_getCurrentRawStream(device.index if device.index is not None else
                                                torch.cuda.current_device())
    return handle, handle


_NO_GUARD = contextlib.nullcontext()


def _cuda_device_guard(device: torch.device):
    """torch.cuda.device(device), skipped when it is already current (an engine call's hot path: CUDA is initialised
    by then, so the current device is read straight from torch's binding)."""
    if device.index is None or device.index == torch._C._cuda_getDevice():
        return _NO_GUARD
    return torch.cuda.device(device)


def _cuda_capability(device: torch.device) -> Tuple[int, int]:
    return torch.cuda.get_device_capability(device)


def _device_of(inputs: Sequence[torch.Tensor], plan: torch.Tensor) -> torch.device:
    if not inputs:
        return plan.device
    device = inputs[0].device
    for x in inputs:
        if x.device != device:
            raise IncompatibleEngineError(f"trtpack: engine inputs must all be on one device, got {device} and {x.device}; "
                             "move them to the same CUDA device.")
    return device


class Executor:
    def __init__(self, *,
                 import_module: Callable = importlib.import_module,
                 current_stream: Callable[[torch.device], Tuple[object, int]] = _cuda_stream,
                 capability: Callable[[torch.device], Tuple[int, int]] = _cuda_capability,
                 device_guard: Callable = _cuda_device_guard,
                 cache_dir: Optional[str] = None):
        self._import_module = import_module
        self._current_stream = current_stream
        self._capability = capability
        self._device_guard = device_guard
        self._cache_dir = cache_dir
        self._lock = threading.RLock()
        self._modules: Dict[str, object] = {}
        self._engines: Dict[tuple, LoadedEngine] = {}
        self._verdicts: Dict[tuple, dict] = {}
        self._bound: Dict[tuple, _Bound] = {}  # (meta, plan, device, stream, input signature) -> a checked call

    # -- which TensorRT ------------------------------------------------------------------------------------------
    def backend_module(self, backend: str):
        """The TensorRT module of a backend, imported once; None when it is not installed."""
        with self._lock:
            if backend not in self._modules:
                try:
                    self._modules[backend] = self._import_module(backend)
                except ImportError:
                    self._modules[backend] = None
            return self._modules[backend]

    def machine(self, device: torch.device) -> dict:
        """This machine as record.compatibility sees it, for engines running on `device`."""
        backends = {name: module.__version__ for name in BACKEND_MODULES
                    if (module := self.backend_module(name)) is not None}
        if device.type != "cuda":
            return {"cuda": False, "sm": None, "backends": backends}
        major, minor = self._capability(device)
        return {"cuda": True, "sm": sm_name(major, minor), "backends": backends}

    # -- engines -------------------------------------------------------------------------------------------------
    def _runtime_cache_path(self, spec: shapes.EngineSpec, device: torch.device) -> Optional[str]:
        if spec.backend != "tensorrt_rtx":
            return None
        sm = self.machine(device)["sm"] or device.type
        return os.path.join(self._cache_dir or default_cache_dir(), f"{spec.meta['plan_sha256']}-{sm}.bin")

    def engine(self, plan: torch.Tensor, spec: shapes.EngineSpec, device: torch.device) -> LoadedEngine:
        """The plan deserialized on `device`: once per plan and device, whatever the number of threads asking."""
        key = (plan.data_ptr(), plan.numel(), spec.meta["plan_sha256"], device)
        loaded = self._engines.get(key)  # a dict read needs no lock: entries are only ever added
        if loaded is not None:
            return loaded
        with self._lock:
            loaded = self._engines.get(key)
            if loaded is not None:
                return loaded
            trt = self.backend_module(spec.backend)
            if trt is None:
                verdict = record.compatibility(spec.meta, self.machine(device))
                raise IncompatibleEngineError(f"trtpack: engine {spec.name!r} cannot run: {verdict['reason']}")
            record.check_plan(spec.meta, plan)
            io = [(t.name, t.dtype_name, True) for t in spec.inputs] + [(t.name, t.dtype_name, False)
                                                                          for t in spec.outputs]
            with self._device_guard(device):
                loaded = LoadedEngine(trt, plan, spec.name, self._runtime_cache_path(spec, device), io)
            self._engines[key] = loaded
            return loaded

    def save_runtime_caches(self):
        with self._lock:
            engines = list(self._engines.values())
        for loaded in engines:
            try:
                loaded.save_runtime_cache()
            except OSError as e:
                warnings.warn(f"trtpack: could not save the TensorRT-RTX runtime cache of {loaded.name!r}: {e}")

    @staticmethod
    def _check_inputs(spec: shapes.EngineSpec, inputs: List[torch.Tensor]):
        """The output shapes the record's dims give for these inputs, after checking their count, ranks and dtypes."""
        expected = shapes.output_shapes(spec, inputs)  # also checks input count and ranks
        for x, ts in zip(inputs, spec.inputs):
            if x.dtype != ts.dtype:
                raise IncompatibleEngineError(f"trtpack: engine {spec.name!r} input {ts.name!r} must be "
                                 f"{dtype_name(ts.dtype)} but is {dtype_name(x.dtype)}; "
                                 "convert it (TensorRT-RTX networks are strongly typed).")
        return expected

    # -- the two kernels -----------------------------------------------------------------------------------------
    def verdict(self, plan: torch.Tensor, meta: str, device: torch.device) -> dict:
        """{"usable", "reason"} for this plan on `device`, computed once (then logged once if unusable)."""
        key = (plan.data_ptr(), plan.numel(), meta, str(device))
        with self._lock:
            if key in self._verdicts:
                return self._verdicts[key]
        spec = shapes.engine_spec(meta)
        verdict = record.compatibility(spec.meta, self.machine(device))
        if verdict["usable"]:
            try:
                self.engine(plan, spec, device)
            except (IncompatibleEngineError, FormatError) as e:
                verdict = {"usable": False, "reason": str(e)}
        with self._lock:
            if key not in self._verdicts:
                self._verdicts[key] = verdict
                if not verdict["usable"]:
                    warnings.warn(f"trtpack: engine {spec.name!r} cannot run on {device} (engine_usable is false, so a "
                                  f"fallback program runs its PyTorch reference): {verdict['reason']}")
            return self._verdicts[key]

    def engine_usable(self, inputs: List[torch.Tensor], plan: torch.Tensor, meta: str) -> torch.Tensor:
        usable = self.verdict(plan, meta, _device_of(inputs, plan))["usable"]
        return torch.tensor(usable, dtype=torch.bool)  # on the CPU, like every engine_usable kernel

    def execute_engine(self, inputs: List[torch.Tensor], plan: torch.Tensor, meta: str) -> List[torch.Tensor]:
        if len(inputs) == 1:  # the common call, without the loops
            x = inputs[0]
            device = x.device
            stream_key, stream_handle = self._current_stream(device)
            key = (meta, plan.data_ptr(), device, stream_key, x.shape, x.dtype)
            held = inputs if x.is_contiguous() else [x.contiguous()]  # alive until enqueued
        else:
            device = _device_of(inputs, plan)
            stream_key, stream_handle = self._current_stream(device)
            key = (meta, plan.data_ptr(), device, stream_key, *[(x.shape, x.dtype) for x in inputs])
            held = [x if x.is_contiguous() else x.contiguous() for x in inputs]
        call = self._bound.get(key)  # this engine, stream and input signature seen before: checks and lookups done
        if call is None:
            return self._first_call(key, held, plan, meta, device, stream_key, stream_handle)
        guard = self._device_guard(device)
        if guard is not _NO_GUARD:
            with guard, call.slot.lock:
                return run(call, held, stream_handle)
        with call.slot.lock:
            return run(call, held, stream_handle)

    def _first_call(self, key, inputs, plan, meta, device, stream_key, stream_handle) -> List[torch.Tensor]:
        """A call with an engine, stream or input signature not seen before: checks the inputs against the record,
        deserializes the engine and creates the stream's context where needed, runs, and keeps what later calls
        reuse."""
        spec = shapes.engine_spec(meta)
        expected = self._check_inputs(spec, inputs)
        loaded = self.engine(plan, spec, device)
        outputs = [(t.name, tuple(int(d) for d in dims), t.dtype) for t, dims in zip(spec.outputs, expected)]
        call = Call(loaded.context(stream_key), spec.input_names, tuple(x.shape for x in inputs), outputs, spec.name,
                    spec.ranges, device)
        with self._device_guard(device), call.slot.lock:
            result = run(call, inputs, stream_handle)
        if len(self._bound) >= 4096:
            self._bound.clear()
        self._bound[key] = call
        if not loaded.runtime_cache_saved:
            try:
                loaded.save_runtime_cache(first_time_only=True)  # the first run compiled the most; keep it on a crash
            except OSError as e:
                warnings.warn(f"trtpack: could not save the TensorRT-RTX runtime cache of {spec.name!r}: {e}")
        return result


_executor: Optional[Executor] = None
_library: Optional[torch.library.Library] = None


def register_cuda_kernels(override: bool = False) -> bool:
    """Registers the Python executor as the CUDA kernel of both ops, unless libtorchtrt_runtime.so has its own (with
    `override`, over the library's: trtpack.runtime.selection decides). With TRTPACK_TENSORRT_STANDIN=1 its TensorRT
    is the computing stand-in (a test double, runtime/standin.py)."""
    global _executor, _library
    if _library is not None or (not override and
                                torch._C._dispatch_has_kernel_for_dispatch_key("trtpack::execute_engine", "CUDA")):
        return False
    if _executor is None:
        _executor = _stand_in_executor() if test_double() is not None else Executor()
        atexit.register(_executor.save_runtime_caches)
    _library = torch.library.Library("trtpack", "IMPL")
    _library.impl("execute_engine", _executor.execute_engine, "CUDA")
    _library.impl("engine_usable", _executor.engine_usable, "CUDA")
    return True


def unregister_cuda_kernels() -> None:
    """Removes the Python executor's CUDA kernels (the library's own, if any, answer again); its engines stay loaded
    for a later register_cuda_kernels."""
    global _library
    if _library is not None:
        _library._destroy()
        _library = None


def attach_cpp_test_double(native_executor_name) -> None:
    """Connects the C++ face of the stand-in (a test double: a libtorchtrt_runtime.so built against it reports its
    executor as "... stand-in") to the Python stand-in's registry, when the environment asks for the test double."""
    if test_double() is not None and (native_executor_name or "").endswith("stand-in"):
        from trtpack.runtime import standin_cpp

        standin_cpp.attach()


def _stand_in_executor() -> Executor:
    """An Executor whose TensorRT modules are stand-ins and whose GPU reports the emulated capability."""
    def import_module(name):
        if name != "tensorrt_rtx":
            raise ImportError(f"the TensorRT stand-in replaces tensorrt_rtx only, not {name}")
        return standin.stand_in(name)

    return Executor(import_module=import_module, capability=lambda device: standin.emulated_capability())


def executor() -> Optional[Executor]:
    """The registered Python executor, or None when the C++ library runs engines itself."""
    return _executor


__all__ = ["Executor", "attach_cpp_test_double", "default_cache_dir", "executor", "register_cuda_kernels",
           "test_double",
           "unregister_cuda_kernels"]
