"""What both compile caches key on, computed one way: the digest (XXH3-128), and how a graph's targets, arguments and
tensors are written into it. The engine cache (engine_cache.py) keys a region's graph with these; the program cache
(program_cache.py) keys the whole exported program.

The cache is the user's own folder: a key guards against change, not forgery.
"""
import torch

from trtpack import record


def new_digest():
    """The hash every cache key is computed with (one place to change it): XXH3-128 from the record core."""
    return record.xxh3_stream()


def target_name(target) -> str:
    if isinstance(target, str):
        return target
    return f"{getattr(target, '__module__', '')}.{getattr(target, '__name__', target)}"


def argument(value, index):
    if isinstance(value, torch.fx.Node):
        return ["node", index[value]]
    if isinstance(value, (list, tuple)):
        return [argument(v, index) for v in value]
    if isinstance(value, dict):
        return {str(k): argument(v, index) for k, v in sorted(value.items())}
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return repr(value)  # floats (full precision), dtypes, devices, memory formats, layouts


def tensor_bytes(tensor: torch.Tensor) -> memoryview:
    flat = tensor.detach().contiguous().cpu().reshape(-1)
    if flat.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    return memoryview(flat.view(torch.uint8).numpy())
