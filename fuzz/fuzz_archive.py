"""Fuzz target: whole .ep files through trtpack.load and trtpack.inspect.

Input byte 0 picks the mode: even = the rest is the file itself (libFuzzer's byte flips and truncations);
odd = the rest drives structured damage (zip_mutations) to a valid program saved at start-up.
"""
import os
import sys
import tempfile

import atheris
import torch  # noqa: F401  (imported before instrumentation: only trtpack's own code is instrumented)

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import main, quiet, trtpack_or_error
with atheris.instrument_imports(include=["trtpack"]):
    import trtpack
import zip_mutations

from fuzz import programs

WORK = tempfile.mkdtemp(prefix="trtpack_fuzz_archive_")
TARGET = os.path.join(WORK, "program.ep")
TARGET_PT2 = os.path.join(WORK, "program.pt2")


quiet()
BASE = programs.saved_ep_bytes(WORK)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    archive = data[1:] if data[0] % 2 == 0 else zip_mutations.mutate(BASE, data[1:])
    with open(TARGET, "wb") as f:
        f.write(archive)
    trtpack_or_error(trtpack.load, TARGET)
    trtpack_or_error(trtpack.inspect, TARGET)
    if b"data/aotinductor/" in archive:  # read as an AOTInductor package: inspect only (load would dlopen it)
        os.replace(TARGET, TARGET_PT2)
        trtpack_or_error(trtpack.inspect, TARGET_PT2)


if __name__ == "__main__":
    main(test_one_input)
