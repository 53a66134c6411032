"""Repetitions, medians and peak memory of a load in a fresh process."""
import json
import os
import statistics
import subprocess
import sys
import time


def stats(samples: list) -> dict:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "samples": samples}


def timed(fn, reps: int, setup=None) -> dict:
    """Seconds per call of fn(), `reps` times; setup() runs untimed before each call."""
    samples = []
    for _ in range(reps):
        if setup:
            setup()
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return stats(samples)


_RSS_PROBE = r"""
import json, resource, sys, warnings
import torch, trtpack
kind, path = sys.argv[1], sys.argv[2]
def status_kb(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))
# Reset the high-water mark (VmHWM) so the imports' own peak cannot hide the load's.
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status_kb("VmRSS")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    if kind == "trtpack":
        loaded = trtpack.load(path)
    else:
        with open(path, "rb") as f:
            loaded = torch.export.load(f).module()
after = status_kb("VmHWM")
print(json.dumps({"baseline_kb": before, "peak_kb": after,
                  "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def load_peak_rss(path: str, kind: str = "trtpack") -> dict:
    """Peak RSS growth (bytes) while loading `path` in a fresh process: the peak resident set (VmHWM, reset after
    importing torch and trtpack) minus the resident set just before the load."""
    done = subprocess.run([sys.executable, "-c", _RSS_PROBE, kind, path], capture_output=True, text=True,
                          env=dict(os.environ), check=True)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return {"delta_bytes": (found["peak_kb"] - found["baseline_kb"]) * 1024,
            "baseline_bytes": found["baseline_kb"] * 1024, "ru_maxrss_bytes": found["ru_maxrss_kb"] * 1024}
