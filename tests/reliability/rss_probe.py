"""Child process of test_resources. `make FOLDER SIZE` saves a program whose plan is SIZE bytes as FOLDER/big.ep
and FOLDER/big.engine; `load PATH` loads one with trtpack.load and prints its peak RSS as JSON."""
import json
import os
import resource
import sys
import time
import warnings


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def current_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def make(folder: str, size: int) -> None:
    import trtpack
    from fuzz import programs

    program = programs.exported(size - 64)
    trtpack.save(program, os.path.join(folder, "big.ep"))
    trtpack.save(program, os.path.join(folder, "big.engine"))


def load(path: str) -> None:
    import torch

    import trtpack
    from fuzz import programs

    warnings.simplefilter("ignore")
    before = peak_rss()
    start = time.perf_counter()
    module = trtpack.load(path)
    seconds = time.perf_counter() - start
    if path.endswith(".ep"):
        x = programs.example_input()
        torch.testing.assert_close(module(x), programs.reference(x))
    print(json.dumps({"peak_before_load": before, "peak": peak_rss(), "rss_after_load": current_rss(),
                      "load_seconds": seconds}))


if __name__ == "__main__":
    make(sys.argv[2], int(sys.argv[3])) if sys.argv[1] == "make" else load(sys.argv[2])
