"""A computing TensorRT STAND-IN: a test double, not TensorRT, and never used unless a test or
`TRTPACK_TENSORRT_STANDIN=1` asks for it.

No TensorRT engine can run on any machine we have (TensorRT-RTX refuses the H200's sm90; full TensorRT cannot be
installed). This module implements the part of the `tensorrt_rtx` / `tensorrt` Python API that
`trtpack.runtime.trt_engine` calls, and computes each engine's region with its PyTorch reference program, so the
GPU path around TensorRT (plan placement, addresses, streams, shapes, dtypes, threads) runs on real CUDA memory.

- Registry: `trtpack.compile`, while the stand-in is requested, saves each region's ExportedProgram and I/O
  (names, dtypes, profile) under `$TRTPACK_STANDIN_DIR/<plan_sha256>.*`, so a fresh process (another machine even)
  that deserializes the same plan bytes finds its computation.
- It reads inputs and writes outputs only through the raw addresses it was given (wrapped with
  `__cuda_array_interface__`, or `__array_interface__` for a CPU stand-in), on the stream it was given
  (`torch.cuda.ExternalStream`).
- It refuses what TensorRT would (logging the reason, returning None/False like TensorRT): a plan that is not the
  registered one (bytes, size or 64-byte header), a plan of another TensorRT version, an unknown tensor name, a
  shape outside the profile, a missing address, an address on another device. A dtype that disagrees with the record
  is caught by the executor through the engine's I/O queries (`get_tensor_dtype`), as with real TensorRT.
- `runs` records every execution: engine, stream, thread, device, and each tensor's address and shape.
"""
import ctypes
import functools
import hashlib
import json
import os
import sys
import threading
from typing import Dict, List, Optional

import torch

ENV_ACTIVE = "TRTPACK_TENSORRT_STANDIN"
ENV_DIR = "TRTPACK_STANDIN_DIR"
ENV_SM = "TRTPACK_STANDIN_SM"
DEFAULT_SM = "sm86"  # the GPU the stand-in says it is: a target TensorRT-RTX builds for by default
DEFAULT_VERSION = "1.7.1.116"
HEADER_BYTES = 64

_DTYPE_NAMES = {"float32": "FLOAT", "float16": "HALF", "bfloat16": "BF16", "int8": "INT8", "int32": "INT32",
                "int64": "INT64", "bool": "BOOL", "uint8": "UINT8"}


def requested() -> bool:
    """True when the environment asks for the stand-in (TRTPACK_TENSORRT_STANDIN=1)."""
    return os.environ.get(ENV_ACTIVE) == "1"


def registry_dir() -> str:
    return os.environ.get(ENV_DIR) or os.path.join(os.path.expanduser("~"), ".cache", "trtpack", "standin")


def emulated_capability() -> tuple:
    sm = os.environ.get(ENV_SM, DEFAULT_SM).lower().removeprefix("sm")
    return int(sm[:-1]), int(sm[-1])


# -- the registry: plan_sha256 -> the region's reference program and I/O ------------------------------------------
class Registry:
    def __init__(self, folder: Optional[str] = None):
        self.folder = folder or registry_dir()
        self._lock = threading.Lock()
        self._programs: Dict[str, torch.nn.Module] = {}

    def register(self, plan: bytes, program: torch.export.ExportedProgram, inputs: List[dict],
                 outputs: List[dict]) -> str:
        """inputs: [{"name", "dtype", "min", "max"}]; outputs: [{"name", "dtype"}]. Returns the plan's sha256."""
        sha = hashlib.sha256(plan).hexdigest()
        os.makedirs(self.folder, exist_ok=True)
        entry = {"plan_size": len(plan), "header": bytes(plan[:HEADER_BYTES]).hex(), "inputs": inputs,
                 "outputs": outputs}
        base = os.path.join(self.folder, sha)
        tmp = f"{base}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as f:
            torch.export.save(program, f)
        os.replace(tmp, base + ".ep")
        with open(tmp, "w") as f:
            json.dump(entry, f)
        os.replace(tmp, base + ".json")  # written last: an entry with a .json has its program
        return sha

    def entry(self, sha: str) -> Optional[dict]:
        path = os.path.join(self.folder, sha + ".json")
        if not os.path.isfile(path):
            return None
        with open(path) as f:
            return json.load(f)

    def module(self, sha: str, device: torch.device) -> torch.nn.Module:
        """The registered program as a module on `device`, loaded once per process and device."""
        key = f"{sha}@{device}"
        with self._lock:
            if key not in self._programs:
                from trtpack.runtime import input_check

                with open(os.path.join(self.folder, sha + ".ep"), "rb") as f:
                    module = torch.export.load(f).module().to(device)
                input_check.install(module)  # set_input_shape checked the profile: don't pay torch's sympy check too
                self._programs[key] = module
            return self._programs[key]


def register_region(plan: bytes, program: torch.export.ExportedProgram, input_names, output_names,
                    profile: dict) -> None:
    """compile's hook: records a region's reference program for its plan, if the stand-in is requested."""
    if not requested():
        return
    placeholders = [n for n in program.graph.nodes if n.op == "placeholder"]
    user = [n for n in placeholders if n.name in set(program.graph_signature.user_inputs)]
    results = next(n for n in program.graph.nodes if n.op == "output").args[0]
    dtype = lambda node: str(node.meta["val"].dtype).removeprefix("torch.")  # noqa: E731
    inputs = [{"name": name, "dtype": dtype(node), "min": list(profile[name][0]), "max": list(profile[name][2])}
              for name, node in zip(input_names, user)]
    outputs = [{"name": name, "dtype": dtype(node)} for name, node in zip(output_names, results)]
    Registry().register(plan, program, inputs, outputs)


# -- raw addresses as tensors -------------------------------------------------------------------------------------
class _Raw:
    """`nbytes` bytes at `address`, described the way CUDA array consumers (or numpy) read foreign memory."""

    def __init__(self, address: int, nbytes: int, cuda: bool):
        iface = {"shape": (nbytes,), "typestr": "|u1", "data": (address, False), "version": 3, "strides": None}
        if cuda:
            self.__cuda_array_interface__ = dict(iface, stream=None)
        else:
            self.__array_interface__ = iface


def tensor_at(address: int, shape, dtype: torch.dtype, cuda: bool) -> torch.Tensor:
    """A tensor viewing the memory at `address` (no copy): contiguous `shape` of `dtype`."""
    numel = 1
    for d in shape:
        numel *= d
    nbytes = numel * torch.empty((), dtype=dtype).element_size()
    if nbytes == 0:
        return torch.empty(shape, dtype=dtype, device="cuda" if cuda else "cpu")
    if cuda:
        raw = torch.as_tensor(_Raw(address, nbytes, True), device="cuda")
    else:
        import numpy

        raw = torch.from_numpy(numpy.asarray(_Raw(address, nbytes, False)))
    return raw.view(dtype).view(shape)


@functools.lru_cache(maxsize=None)
def _libcuda():
    return ctypes.CDLL("libcuda.so.1")


def device_of_address(address: int) -> Optional[int]:
    """The CUDA device ordinal that owns `address`, or None for memory CUDA does not know (e.g. a host pointer)."""
    ordinal = ctypes.c_int(-1)
    status = _libcuda().cuPointerGetAttribute(ctypes.byref(ordinal), ctypes.c_int(9),  # ..._DEVICE_ORDINAL
                                              ctypes.c_uint64(address))
    return ordinal.value if status == 0 else None


# -- the TensorRT-shaped API --------------------------------------------------------------------------------------
class DataType:
    FLOAT, HALF, BF16, INT8, INT32, INT64, BOOL, UINT8 = _DTYPE_NAMES.values()


class TensorIOMode:
    NONE, INPUT, OUTPUT = "NONE", "INPUT", "OUTPUT"


class StandIn:
    """One stand-in "module" (what `import tensorrt_rtx` would give), with its own log and record of runs."""

    def __init__(self, name: str = "tensorrt_rtx", version: str = DEFAULT_VERSION, *, registry: Registry = None,
                 cuda: bool = True, compute: bool = True):
        self.__name__, self.__version__ = name, version
        self.registry = registry or Registry()
        self.cuda, self.compute = cuda, compute
        self.DataType, self.TensorIOMode = DataType, TensorIOMode
        self.runs: List[dict] = []
        self.keep_runs = True  # a benchmark turns the record off (a growing list would time the garbage collector)
        self.errors: List[str] = []
        self.lock = threading.Lock()
        stand_in = self

        class Logger:
            ERROR, WARNING, INFO = "ERROR", "WARNING", "INFO"

            def __init__(self, severity="WARNING"):
                self.severity = severity

        class Runtime:
            def __init__(self, logger):
                self.logger = logger

            def deserialize_cuda_engine(self, buffer):
                return stand_in.deserialize(memoryview(buffer).cast("B"))

        self.Logger, self.Runtime = Logger, Runtime

    def error(self, message: str) -> None:
        """Like TensorRT: the reason goes to the log, the call answers None/False."""
        with self.lock:
            self.errors.append(message)
        print(f"[TensorRT stand-in] ERROR: {message}", file=sys.stderr)

    def _version_bytes(self) -> bytes:
        return bytes(int(p) for p in self.__version__.split(".")[:4])

    def deserialize(self, plan: memoryview):
        if len(plan) < HEADER_BYTES or bytes(plan[:4]) != b"vtrt":
            return self.error("deserialize: not a TensorRT-RTX plan (no 'vtrt' magic)")
        if bytes(plan[0x18:0x1C]) != self._version_bytes():
            return self.error(f"deserialize: the plan was built by TensorRT-RTX {'.'.join(map(str, plan[0x18:0x1C]))},"
                              f" this runtime is {self.__version__}")
        sha = hashlib.sha256(plan).hexdigest()
        entry = self.registry.entry(sha)
        if entry is None:
            return self.error(f"deserialize: no registered engine has these plan bytes (sha256 {sha[:16]}...); "
                              f"compile with {ENV_ACTIVE}=1 and {ENV_DIR} pointing at {self.registry.folder}")
        if entry["plan_size"] != len(plan) or entry["header"] != bytes(plan[:HEADER_BYTES]).hex():
            return self.error("deserialize: the plan's size or header differs from the registered plan")
        device = torch.device("cuda", torch.cuda.current_device()) if self.cuda else torch.device("cpu")
        return Engine(self, sha, entry, device)


class Engine:
    def __init__(self, stand_in: StandIn, sha: str, entry: dict, device: torch.device):
        self.stand_in, self.sha, self.device = stand_in, sha, device
        self.inputs = {e["name"]: e for e in entry["inputs"]}
        self.outputs = {e["name"]: e for e in entry["outputs"]}
        self.names = list(self.inputs) + list(self.outputs)
        self._shapes: Dict[tuple, list] = {}  # input shapes -> output shapes (shape inference, done once per shape)
        self._shapes_lock = threading.Lock()

    # I/O queries
    @property
    def num_io_tensors(self) -> int:
        return len(self.names)

    def get_tensor_name(self, index: int) -> str:
        return self.names[index]

    def get_tensor_mode(self, name: str):
        return TensorIOMode.INPUT if name in self.inputs else TensorIOMode.OUTPUT if name in self.outputs \
            else TensorIOMode.NONE

    def get_tensor_dtype(self, name: str):
        entry = self.inputs.get(name) or self.outputs[name]
        return _DTYPE_NAMES[entry["dtype"]]

    def dtype(self, name: str) -> torch.dtype:
        return getattr(torch, (self.inputs.get(name) or self.outputs[name])["dtype"])

    # runtime config / cache (TensorRT-RTX)
    def create_runtime_config(self):
        return RuntimeConfig()

    def create_execution_context(self, config=None):
        return Context(self)

    # the computation
    def output_shapes(self, shapes: tuple) -> list:
        with self._shapes_lock:
            if shapes not in self._shapes:
                fakes = [torch.empty(s, dtype=self.dtype(n), device="meta") for n, s in zip(self.inputs, shapes)]
                with torch.no_grad():
                    outs = self.reference(fakes, meta=True)
                self._shapes[shapes] = [tuple(o.shape) for o in outs]
            return self._shapes[shapes]

    def reference(self, inputs, meta=False) -> list:
        """The region's registered program on `inputs` (on meta tensors: shape inference only)."""
        module = self.stand_in.registry.module(self.sha, torch.device("meta") if meta else self.device)
        out = module(*inputs)
        return list(out) if isinstance(out, (tuple, list)) else [out]


class RuntimeConfig:
    def create_runtime_cache(self):
        return RuntimeCache()

    def set_runtime_cache(self, cache):
        self.cache = cache


class RuntimeCache:
    def __init__(self):
        self.data = b""

    def deserialize(self, data):
        self.data = bytes(data)

    def serialize(self):
        return bytearray(self.data)


class Context:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.shapes: Dict[str, tuple] = {}
        self.addresses: Dict[str, int] = {}

    def set_input_shape(self, name: str, shape) -> bool:
        spec = self.engine.inputs.get(name)
        if spec is None:
            self.engine.stand_in.error(f"set_input_shape: no input named {name!r}")
            return False
        shape = tuple(int(d) for d in shape)
        if len(shape) != len(spec["min"]) or not all(lo <= d <= hi for d, lo, hi in zip(shape, spec["min"], spec["max"])):
            self.engine.stand_in.error(f"set_input_shape: {name!r} {shape} is outside the profile "
                                       f"[{tuple(spec['min'])}, {tuple(spec['max'])}]")
            return False
        self.shapes[name] = shape
        return True

    def get_tensor_shape(self, name: str):
        if name in self.engine.inputs:
            return self.shapes.get(name, ())
        shapes = self.engine.output_shapes(tuple(self.shapes[n] for n in self.engine.inputs))
        return shapes[list(self.engine.outputs).index(name)]

    def set_tensor_address(self, name: str, address: int) -> bool:
        if name not in self.engine.inputs and name not in self.engine.outputs:
            self.engine.stand_in.error(f"set_tensor_address: no tensor named {name!r}")
            return False
        self.addresses[name] = int(address)
        return True

    def _refusal(self) -> Optional[str]:
        missing = [n for n in self.engine.names if not self.addresses.get(n)]
        if missing:
            return f"execute_async_v3: no address set for {', '.join(missing)}"
        unset = [n for n in self.engine.inputs if n not in self.shapes]
        if unset:
            return f"execute_async_v3: no shape set for input {', '.join(unset)}"
        if self.engine.device.type == "cuda":
            for name, address in self.addresses.items():
                owner = device_of_address(address)
                if owner != self.engine.device.index:
                    where = "host memory" if owner is None else f"cuda:{owner}"
                    return (f"execute_async_v3: {name!r} at {address:#x} is in {where}, "
                            f"the engine is on {self.engine.device}")
        return None

    def execute_async_v3(self, stream_handle: int) -> bool:
        stand_in, engine = self.engine.stand_in, self.engine
        refusal = self._refusal()
        if refusal:
            stand_in.error(refusal)
            return False
        in_shapes = [self.shapes[n] for n in engine.inputs]
        out_shapes = engine.output_shapes(tuple(in_shapes))
        if stand_in.keep_runs:
            with stand_in.lock:
                stand_in.runs.append({
                    "engine": engine.sha, "stream": stream_handle, "thread": threading.get_ident(),
                    "device": str(engine.device), "addresses": dict(self.addresses),
                    "shapes": {**dict(zip(engine.inputs, in_shapes)), **dict(zip(engine.outputs, out_shapes))}})
        if not stand_in.compute:
            return True
        cuda = engine.device.type == "cuda"
        inputs = [tensor_at(self.addresses[n], s, engine.dtype(n), cuda) for n, s in zip(engine.inputs, in_shapes)]
        outputs = [tensor_at(self.addresses[n], s, engine.dtype(n), cuda) for n, s in zip(engine.outputs, out_shapes)]
        if cuda:
            with torch.cuda.stream(torch.cuda.ExternalStream(stream_handle, device=engine.device)), torch.no_grad():
                self._compute_into(inputs, outputs)
        else:
            with torch.no_grad():
                self._compute_into(inputs, outputs)
        return True

    def _compute_into(self, inputs, outputs):
        for dst, src in zip(outputs, self.engine.reference(inputs)):
            dst.copy_(src)


# -- wiring into the executor -------------------------------------------------------------------------------------
_stand_ins: Dict[str, StandIn] = {}
_stand_ins_lock = threading.Lock()


def stand_in(name: str = "tensorrt_rtx") -> StandIn:
    """The process's stand-in for backend module `name` (one per name), e.g. to read its `runs` in a test."""
    with _stand_ins_lock:
        if name not in _stand_ins:
            _stand_ins[name] = StandIn(name)
        return _stand_ins[name]


def machine(device=None) -> dict:
    """This machine as record.compatibility sees it when the stand-in replaces TensorRT."""
    device = torch.device(device) if device is not None else None
    cuda = torch.cuda.is_available() and (device is None or device.type == "cuda")
    major, minor = emulated_capability()
    return {"cuda": cuda, "sm": f"sm{major}{minor}" if cuda else None,
            "backends": {"tensorrt_rtx": DEFAULT_VERSION}}


__all__ = ["ENV_ACTIVE", "ENV_DIR", "ENV_SM", "Registry", "StandIn", "device_of_address", "emulated_capability",
           "machine", "register_region", "registry_dir", "requested", "stand_in", "tensor_at"]
