"""Describes this machine the way the record's compatibility rules want it (see docs/FORMAT.md)."""
import functools
import importlib
import importlib.metadata

import torch

BACKEND_MODULES = {"tensorrt_rtx": "tensorrt_rtx", "tensorrt": "tensorrt"}


@functools.lru_cache(maxsize=None)
def installed_backends() -> dict:
    """Backend name -> version, for each TensorRT flavour importable here (imported only to read its version)."""
    found = {}
    for name, module in BACKEND_MODULES.items():
        try:
            found[name] = importlib.import_module(module).__version__
        except Exception:  # absent, or a stub package that fails to load its libraries
            continue
    return found


def describe(device=None) -> dict:
    """{"cuda": bool, "sm": "sm90" | None, "backends": {...}} for `device` (default: the current CUDA device)."""
    device = torch.device(device) if device is not None else None
    cuda = torch.cuda.is_available() and (device is None or device.type == "cuda")
    sm = None
    if cuda:
        major, minor = torch.cuda.get_device_capability(device)
        sm = f"sm{major}{minor}"
    return {"cuda": cuda, "sm": sm, "backends": installed_backends()}
