"""Timings the tests print (pytest -s shows them; reports quote them). Never asserted on: see bench/ for ratios."""
import time

import torch


def timed(what, fn, *args, **kwargs):
    """Calls fn and prints how long it took."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    print(f"[timing] {what}: {time.perf_counter() - start:.3f} s (torch {torch.__version__})")
    return result
