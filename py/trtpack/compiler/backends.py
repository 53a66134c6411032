"""The builder backends behind one small interface: which module to import, the few builder settings that differ,
and what a plan's header must say.

`tensorrt_rtx` (TensorRT-RTX) is real and tested: it builds on a CPU-only machine for named compute capabilities.
`tensorrt` (full TensorRT) is UNVERIFIED: full TensorRT cannot be installed here, so it is covered only by contract
tests against a fake module (tests/compiler/test_backend_contract.py).
"""
import importlib

import torch

from trtpack.errors import IncompatibleEngineError, UnsupportedGraphError
from trtpack.names import BACKEND_MODULES, DEFAULT_BACKEND, sm_name


class Backend:
    name = ""
    module_name = ""
    install_hint = ""
    verified = False

    def load(self):
        try:
            return importlib.import_module(self.module_name)
        except ImportError as error:
            raise IncompatibleEngineError(
                f"trtpack: backend {self.name!r} needs the Python module {self.module_name!r}, which is not "
                f"installed ({error}). {self.install_hint}") from error

    def network_flags(self, trt) -> int:
        raise NotImplementedError

    def set_targets(self, trt, config, targets):
        """Applies the requested targets to the builder config; returns the targets to expect in the plan (or None
        for the backend's default, read back from the plan header)."""
        raise NotImplementedError

    def plan_targets(self, plan: bytes, expected):
        """Checks the built plan's header; returns the targets it was built for."""
        raise NotImplementedError


class TensorRTRTX(Backend):
    name = "tensorrt_rtx"
    module_name = BACKEND_MODULES[name]
    install_hint = "Install it with `pip install 'trtpack[rtx]'` (TensorRT-RTX for CUDA 12; 'trtpack[rtx-cu13]' for CUDA 13)."
    verified = True

    def network_flags(self, trt) -> int:
        return 0  # TensorRT-RTX networks are always strongly typed: precision comes from the ONNX dtypes

    def set_targets(self, trt, config, targets):
        if not targets:
            return None
        known = sorted(name.lower() for name in dir(trt.ComputeCapability) if name.startswith("SM"))
        config.num_compute_capabilities = len(targets)
        for index, target in enumerate(targets):
            if target.lower() not in known:
                raise UnsupportedGraphError(f"trtpack: target {target!r} is not one TensorRT-RTX builds for; "
                                            f"choose from {', '.join(known)}")
            config.set_compute_capability(getattr(trt.ComputeCapability, target.upper()), index)
        return [t.lower() for t in targets]

    def plan_targets(self, plan: bytes, expected):
        from trtpack import record

        header = record.plan_header(plan)
        if expected is not None and sorted(header["targets"]) != sorted(expected):
            raise IncompatibleEngineError(f"trtpack: the plan was built for {header['targets']}, "
                                          f"not the requested {expected}")
        return list(header["targets"])


class TensorRT(Backend):
    """Full NVIDIA TensorRT 10. UNVERIFIED: never run against the real module (see the module docstring)."""
    name = "tensorrt"
    module_name = BACKEND_MODULES[name]
    install_hint = "Install NVIDIA TensorRT 10 for your CUDA version (pip install tensorrt)."
    verified = False

    def network_flags(self, trt) -> int:
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)

    def set_targets(self, trt, config, targets):
        if not targets:
            if not torch.cuda.is_available():
                raise IncompatibleEngineError(
                    "trtpack: full TensorRT builds for the GPU it runs on, and there is no CUDA device here. "
                    "Use backend='tensorrt_rtx' to build on a CPU-only machine, or pass targets=['sm80', ...].")
            major, minor = torch.cuda.get_device_capability()
            return [sm_name(major, minor)]
        capabilities = [int(t.lower().removeprefix("sm")) for t in targets]
        if min(capabilities) < 80:
            raise UnsupportedGraphError("trtpack: full TensorRT builds portable plans only for Ampere and newer "
                                        "(sm80+); build on the target GPU for older ones")
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
        return [t.lower() for t in targets]

    def plan_targets(self, plan: bytes, expected):
        if not plan:
            raise IncompatibleEngineError("trtpack: TensorRT returned an empty plan")
        return list(expected)  # the full TensorRT plan header is not documented; trust the build settings


BACKENDS = {backend.name: backend for backend in (TensorRTRTX(), TensorRT())}


def get_backend(name=None) -> Backend:
    name = name or DEFAULT_BACKEND
    if name not in BACKENDS:
        raise UnsupportedGraphError(f"trtpack: unknown backend {name!r}; choose one of {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name]
