"""Imports torchvision on a CPU-only torch.

PyPI has only CUDA builds of torchvision; with torch's CPU build its C++ ops library does not load, and torchvision
0.28 then fails at import registering fake kernels for `torchvision::nms`/`qnms`. The zoo uses only torchvision's
model code (plain ATen ops), so the two schemas are declared here when the library is missing; nothing calls them.
"""
import torch


def import_torchvision():
    try:
        import torchvision
        return torchvision
    except RuntimeError as error:
        if "torchvision::nms" not in str(error):
            raise
    for name, schema in (("nms", "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"),
                         ("qnms", "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")):
        if not torch._C._dispatch_has_kernel(f"torchvision::{name}") and not _defined(name):
            torch.library.define(f"torchvision::{name}", schema)
    import sys
    for module in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[module]
    import torchvision
    return torchvision


def _defined(name):
    try:
        getattr(torch.ops.torchvision, name)
        return True
    except (AttributeError, RuntimeError):
        return False
