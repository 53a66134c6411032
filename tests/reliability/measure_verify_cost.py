"""Measures what integrity checking costs on load: trtpack.load(verify=True) (CRC-32 of every archive entry +
SHA-256 of every plan) against load(verify=False) and against torch.export.load(f).module() of the same file (the
baseline of //bench:all's load metric), in one process, alternating, median of REPS. Not a test: prints a table.

    PYTHONPATH=py:. python tests/reliability/measure_verify_cost.py [MiB ...]
"""
import os
import statistics
import sys
import tempfile
import time
import warnings

import torch

import trtpack
from fuzz import programs

REPS = int(os.environ.get("REPS", "5"))


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(sizes):
    warnings.simplefilter("ignore")
    print("| plan | format | verify=True | verify=False | torch.export.load | verify cost | verify=True / torch |")
    print("|---|---|---|---|---|---|---|")
    for mib in sizes:
        with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as folder:
            program = programs.exported(mib << 20)
            ep, engine = os.path.join(folder, "p.ep"), os.path.join(folder, "p.engine")
            trtpack.save(program, ep)
            trtpack.save(program, engine)
            del program

            def torch_load():
                with open(ep, "rb") as f:
                    torch.export.load(f).module()

            for name, path, baseline in (("ep", ep, torch_load), ("engine", engine, None)):
                runs = {"on": [], "off": [], "torch": []}
                for _ in range(REPS):
                    runs["on"].append(timed(lambda: trtpack.load(path)))
                    runs["off"].append(timed(lambda: trtpack.load(path, verify=False)))
                    if baseline:
                        runs["torch"].append(timed(baseline))
                on, off = statistics.median(runs["on"]), statistics.median(runs["off"])
                base = statistics.median(runs["torch"]) if runs["torch"] else None
                print(f"| {mib} MiB | .{name} | {on:.3f} s | {off:.3f} s | {f'{base:.3f} s' if base else '-'} | "
                      f"+{on - off:.3f} s ({(on - off) / (mib / 1024):.2f} s/GiB) | "
                      f"{f'{on / base:.2f}x' if base else '-'} |", flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10, 100, 500])
