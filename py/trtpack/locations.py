"""Where trtpack keeps files on this machine: one root for all its caches (engines, programs, TensorRT-RTX runtime
caches, runtime libraries built here, the Triton server)."""
import os


def cache_root() -> str:
    """$TRTPACK_CACHE_DIR, else ~/.cache/trtpack."""
    return os.environ.get("TRTPACK_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "trtpack")
