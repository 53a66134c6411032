"""Fuzz target: arbitrary bytes as a TensorRT-RTX plan header (record.plan_header), as bytes and as a uint8 tensor."""
import atheris
import torch  # imported before instrumentation: only trtpack's own code is instrumented

from harness import main, trtpack_or_error
with atheris.instrument_imports(include=["trtpack"]):
    from trtpack import record


def test_one_input(data: bytes) -> None:
    header = trtpack_or_error(record.plan_header, data)
    if header is not None:
        assert header["version"].count(".") == 3 and isinstance(header["targets"], list)
    as_tensor = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
    assert trtpack_or_error(record.plan_header, as_tensor) == header


if __name__ == "__main__":
    main(test_one_input)
