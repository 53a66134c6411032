"""Fuzz target: .engine files with their .json sidecar through trtpack.load and trtpack.inspect.

Input framing (so seeds can be written by hand): byte 0 = flags (bit 0 set: no sidecar), bytes 1-2 = sidecar length
n (little-endian), then n bytes of sidecar text, then the plan bytes.
"""
import os
import sys
import tempfile

import atheris
import torch  # noqa: F401  (imported before instrumentation: only trtpack's own code is instrumented)

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import main, trtpack_or_error
with atheris.instrument_imports(include=["trtpack"]):
    import trtpack

WORK = tempfile.mkdtemp(prefix="trtpack_fuzz_engine_")
TARGET = os.path.join(WORK, "program.engine")


def test_one_input(data: bytes) -> None:
    if len(data) < 3:
        return
    has_sidecar = not data[0] & 1
    size = int.from_bytes(data[1:3], "little")
    meta, plan = data[3:3 + size], data[3 + size:]
    with open(TARGET, "wb") as f:
        f.write(plan)
    if has_sidecar:
        with open(TARGET + ".json", "wb") as f:
            f.write(meta)
    elif os.path.exists(TARGET + ".json"):
        os.remove(TARGET + ".json")
    trtpack_or_error(trtpack.load, TARGET)
    trtpack_or_error(trtpack.inspect, TARGET)


if __name__ == "__main__":
    main(test_one_input)
