"""The only code that calls a TensorRT Python module (`tensorrt_rtx` or `tensorrt`): deserialize a plan, make
execution contexts (sharing one TensorRT-RTX runtime cache), run one inference. Everything above it (caching,
shapes, devices, streams) is plain Python in executor.py; tests/runtime/test_executor_contract.py checks the
calls made here against a fake module, since no TensorRT engine can run on the machines we have."""
import os
import threading
from typing import Optional, Sequence

import torch

from trtpack.errors import FormatError, IncompatibleEngineError, TrtpackError

# torch dtype name (the record's) -> TensorRT DataType member
TRT_DTYPES = {"float32": "FLOAT", "float16": "HALF", "bfloat16": "BF16", "int8": "INT8", "int32": "INT32",
              "int64": "INT64", "bool": "BOOL", "uint8": "UINT8"}


def host_plan(plan: torch.Tensor):
    """The plan's bytes in host memory for deserialization, wherever the module's buffers live: a CPU plan is read
    in place; a CUDA plan (after load(device="cuda") or .to("cuda")) is copied to the host once per deserialization,
    which the executor does once per plan and device, never per call."""
    return plan.detach().reshape(-1).cpu().contiguous().numpy()


def check_io(trt, engine, name: str, io) -> None:
    """Checks the deserialized engine's I/O tensors against the record: `io` = [(tensor name, dtype name, is_input)].
    A record that disagrees with its plan would make TensorRT read or write the wrong bytes."""
    have = {engine.get_tensor_name(i) for i in range(engine.num_io_tensors)}
    for tensor, dtype, is_input in io:
        role = "input" if is_input else "output"
        if tensor not in have:
            raise FormatError(f"trtpack: engine {name!r}: the record names {role} {tensor!r}, which the plan does "
                              f"not have (it has {', '.join(sorted(have))}); rebuild the engine with trtpack.")
        mode = engine.get_tensor_mode(tensor)
        if mode != (trt.TensorIOMode.INPUT if is_input else trt.TensorIOMode.OUTPUT):
            raise FormatError(f"trtpack: engine {name!r}: {tensor!r} is an {role} in the record but not in the plan; "
                              "rebuild the engine with trtpack.")
        want = getattr(trt.DataType, TRT_DTYPES[dtype])
        got = engine.get_tensor_dtype(tensor)
        if got != want:
            raise FormatError(f"trtpack: engine {name!r}: {role} {tensor!r} is {dtype} in the record but {got} in the "
                              "plan; the record does not describe this plan: rebuild the engine with trtpack.")


class LoadedEngine:
    """One plan deserialized on one device, plus one execution context per stream."""

    def __init__(self, trt, plan: torch.Tensor, name: str, runtime_cache_path: Optional[str], io=()):
        self.name = name
        self._trt = trt
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self._runtime.deserialize_cuda_engine(host_plan(plan))
        if self.engine is None:
            raise IncompatibleEngineError(
                f"trtpack: {trt.__name__} {trt.__version__} could not deserialize engine {name!r} (TensorRT's message "
                "is above); rebuild the engine with this TensorRT version for this GPU.")
        check_io(trt, self.engine, name, io)
        self._cache_path = runtime_cache_path
        self._cache = None
        self._cache_lock = threading.Lock()
        self._cache_saved = False
        self._contexts = {}
        self._contexts_lock = threading.Lock()

    def _runtime_config(self):
        """A config sharing this engine's TensorRT-RTX runtime cache (JIT-compiled kernels), loaded from disk once."""
        if not hasattr(self.engine, "create_runtime_config"):
            return None
        config = self.engine.create_runtime_config()
        if self._cache_path is None or not hasattr(config, "create_runtime_cache"):
            return config
        if self._cache is None:
            self._cache = config.create_runtime_cache()
            if os.path.isfile(self._cache_path):
                with open(self._cache_path, "rb") as f:
                    self._cache.deserialize(f.read())
        config.set_runtime_cache(self._cache)
        return config

    def context(self, stream_key) -> "ContextSlot":
        """The execution context of `stream_key`, with the lock that makes one run (shapes, addresses, enqueue)
        atomic and the input shapes last set on it."""
        found = self._contexts.get(stream_key)  # a dict read needs no lock: contexts are only ever added
        if found is not None:
            return found
        with self._contexts_lock:
            if stream_key not in self._contexts:
                config = self._runtime_config()
                context = (self.engine.create_execution_context(config) if config is not None
                           else self.engine.create_execution_context())
                if context is None:
                    raise TrtpackError(f"trtpack: TensorRT could not create an execution context for engine "
                                       f"{self.name!r} (out of GPU memory?).")
                self._contexts[stream_key] = ContextSlot(context)
            return self._contexts[stream_key]

    @property
    def runtime_cache_saved(self) -> bool:
        return self._cache_saved

    def save_runtime_cache(self, *, first_time_only=False):
        """Writes the kernels TensorRT-RTX compiled so far where the next process finds them (atomic replace)."""
        if first_time_only and self._cache_saved:
            return  # the per-call case: no lock
        with self._cache_lock:
            if self._cache is None or self._cache_path is None:
                self._cache_saved = True  # nothing to save, ever: later calls return before the lock
                return
            if first_time_only and self._cache_saved:
                return
            self._cache_saved = True
            data = bytes(memoryview(self._cache.serialize()))
            os.makedirs(os.path.dirname(self._cache_path), exist_ok=True)
            tmp = f"{self._cache_path}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, self._cache_path)


class ContextSlot:
    """One execution context, the lock that makes a run atomic, and the input shapes last set on it: TensorRT keeps
    a context's input shapes between runs, so they are set (and the output shapes it infers checked) only when they
    change."""
    __slots__ = ("context", "lock", "shapes")

    def __init__(self, context):
        self.context = context
        self.lock = threading.Lock()
        self.shapes = None


class Call:
    """One engine's call on one context with one input signature, as fixed by its first run: the names, the input
    shapes (a tuple of torch.Size), the outputs as (name, shape, dtype) with the shapes the record gives, and what an
    error names."""
    __slots__ = ("slot", "input_names", "shapes", "outputs", "engine_name", "ranges", "like", "single")

    def __init__(self, slot: ContextSlot, input_names: Sequence[str], shapes: tuple, outputs: Sequence[tuple],
                 engine_name: str, ranges: str, device: torch.device):
        self.slot, self.input_names, self.shapes = slot, tuple(input_names), shapes
        self.outputs = tuple(outputs)
        self.engine_name, self.ranges = engine_name, ranges
        # each output's shape, dtype and device as a one-element tensor expanded to the shape: torch.empty_like of it
        # costs the host about 0.6 us less than torch.empty(shape, dtype=, device=), which parses the shape each call
        self.like = tuple(torch.empty((), dtype=dtype, device=device).expand(shape) for _, shape, dtype in outputs)
        # one input and one output, the common engine: (input name, output name, its like), run without loops
        self.single = ((self.input_names[0], self.outputs[0][0], self.like[0])
                       if len(self.input_names) == 1 and len(self.outputs) == 1 else None)


_empty_like, _CONTIGUOUS = torch.empty_like, torch.contiguous_format


def run(call: Call, inputs: Sequence[torch.Tensor], stream_handle: int):
    """One inference on `call.slot`'s context (its lock held by the caller; `inputs` contiguous): input shapes when
    they differ from the last run's on that context, then addresses, outputs allocated by torch (contiguous, on the
    call's device) with the shapes the record gives (checked against TensorRT's when the shapes were set), and the
    enqueue on the stream."""
    slot = call.slot
    context = slot.context
    if slot.shapes is not call.shapes and slot.shapes != call.shapes:
        slot.shapes = None  # until every shape is set and checked
        for name, x in zip(call.input_names, inputs):
            if not context.set_input_shape(name, tuple(x.shape)):
                raise IncompatibleEngineError(
                    f"trtpack: engine {call.engine_name!r} input {name!r} has shape {tuple(x.shape)}, outside what it "
                    f"was built for ({call.ranges}); rebuild with wider dynamic_shapes or pass an input in range.")
        for name, expected, _ in call.outputs:
            computed = tuple(context.get_tensor_shape(name))
            if computed != expected:
                raise FormatError(f"trtpack: engine {call.engine_name!r} output {name!r}: TensorRT computes shape "
                                  f"{computed} but the record says {expected}; the meta does not describe this "
                                  "plan: rebuild the engine with trtpack.")
        slot.shapes = call.shapes
    if call.single is not None:
        name, out_name, like = call.single
        context.set_tensor_address(name, inputs[0].data_ptr())
        out = _empty_like(like, memory_format=_CONTIGUOUS)
        context.set_tensor_address(out_name, out.data_ptr())
        outputs = [out]
    else:
        for name, x in zip(call.input_names, inputs):
            context.set_tensor_address(name, x.data_ptr())
        outputs = []
        for (name, _, _), like in zip(call.outputs, call.like):
            out = _empty_like(like, memory_format=_CONTIGUOUS)
            context.set_tensor_address(name, out.data_ptr())
            outputs.append(out)
    if not context.execute_async_v3(stream_handle):
        raise TrtpackError(f"trtpack: TensorRT failed to run engine {call.engine_name!r}; see TensorRT's message "
                           "above.")
    return outputs
