"""Describes this machine the way the record's compatibility rules want it (see docs/FORMAT.md)."""
import functools
import importlib.metadata
import importlib.util

import torch

from trtpack.names import BACKEND_MODULES, sm_name
from trtpack.runtime.executor import test_double


@functools.lru_cache(maxsize=None)
def installed_backends() -> dict:
    """Backend name -> version, for each TensorRT flavour installed here.

    Read from package metadata, not by importing the module: importing tensorrt_rtx is heavy (memory and time), and
    load()/inspect() ask this on machines that will never run an engine. Whether the module really loads is
    found out when an engine runs (the executor then raises IncompatibleEngineError).
    """
    found = {}
    providers = importlib.metadata.packages_distributions()
    for name, module in BACKEND_MODULES.items():
        if importlib.util.find_spec(module) is None:
            continue
        versions = [importlib.metadata.version(dist) for dist in providers.get(module, [])]
        if versions:
            found[name] = max(versions)
    return found


def describe(device=None) -> dict:
    """{"cuda": bool, "sm": "sm90" | None, "backends": {...}} for `device` (default: the current CUDA device)."""
    double = test_double()
    if double is not None:  # a test double replaces TensorRT and says which GPU it emulates
        return double.machine(device)
    device = torch.device(device) if device is not None else None
    cuda = torch.cuda.is_available() and (device is None or device.type == "cuda")
    sm = None
    if cuda:
        major, minor = torch.cuda.get_device_capability(device)
        sm = sm_name(major, minor)
    return {"cuda": cuda, "sm": sm, "backends": installed_backends()}
