"""Fuzz target: meta JSON text through record.decode_meta / encode_meta / check_plan / compatibility."""
import atheris
import torch  # noqa: F401  (imported before instrumentation: only trtpack's own code is instrumented)

from harness import main, trtpack_or_error
with atheris.instrument_imports(include=["trtpack"]):
    from trtpack import record

PLAN = bytes(64)
MACHINE = {"cuda": True, "sm": "sm86", "backends": {"tensorrt_rtx": "1.7.1.116"}}


def test_one_input(data: bytes) -> None:
    text = data.decode("utf-8", errors="surrogateescape")
    decoded = trtpack_or_error(record.decode_meta, text)
    if decoded is None:
        return
    canonical = record.encode_meta(decoded)  # a decoded record must re-encode, and be a fixed point
    assert record.encode_meta(record.decode_meta(canonical)) == canonical
    trtpack_or_error(record.check_plan, text, PLAN, True)
    trtpack_or_error(record.compatibility, text, MACHINE)
    for entry in decoded["outputs"]:
        for dim in entry["shape"]:
            if isinstance(dim, str):
                record.parse_dim(dim)


if __name__ == "__main__":
    main(test_one_input)
