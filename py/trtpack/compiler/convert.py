"""Stage 3: one region → a standalone ExportedProgram → ONNX bytes (dynamo exporter); optional numeric check of
those exact bytes with onnxruntime against the PyTorch region."""
import contextlib
import io
import logging
from dataclasses import dataclass

import torch

from trtpack.errors import UnsupportedGraphError

# Largest allowed |onnxruntime - torch| is atol + rtol * |torch|, per output dtype.
VERIFY_TOLERANCE = {
    torch.float32: (1e-4, 1e-3),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (5e-2, 5e-2),
}


def region_program(region: torch.nn.Module, example_inputs, input_dims, symbols) -> torch.export.ExportedProgram:
    """Exports a region on its own. Dims that are a bare program symbol share one Dim (same name, same range);
    derived dims (e.g. s0*16) are left for torch.export to work out (Dim.AUTO)."""
    dims_by_symbol = {}
    spec = []
    for dims in input_dims:
        per_input = {}
        for axis, dim in enumerate(dims):
            if isinstance(dim, int):
                continue
            if dim in symbols.ranges_by_name:
                if dim not in dims_by_symbol:
                    bounds = symbols.ranges_by_name[dim]
                    dims_by_symbol[dim] = torch.export.Dim(dim, min=bounds["min"], max=bounds["max"])
                per_input[axis] = dims_by_symbol[dim]
            else:
                per_input[axis] = torch.export.Dim.AUTO
        spec.append(per_input or None)
    try:
        return torch.export.export(region, tuple(example_inputs), dynamic_shapes=tuple(spec), strict=False)
    except Exception as error:  # torch.export raises many types; all mean "this region does not export alone"
        raise UnsupportedGraphError(f"trtpack: the region does not export on its own: {error}") from error


def to_onnx(program: torch.export.ExportedProgram) -> bytes:
    """The ONNX model bytes exactly as they will be handed to TensorRT."""
    quiet = io.StringIO()
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(quiet):
            onnx_program = torch.onnx.export(program, (), dynamo=True, verbose=False, report=False)
    except Exception as error:  # the exporter wraps failures in several types
        raise UnsupportedGraphError(f"trtpack: ONNX export of the region failed: {error}") from error
    return onnx_program.model_proto.SerializeToString()


class VerificationError(UnsupportedGraphError):
    """The ONNX model handed to TensorRT computes something else than the PyTorch region."""


@dataclass
class Verification:
    max_abs_error: float
    max_rel_error: float


def verify(onnx_bytes: bytes, region: torch.nn.Module, example_inputs, name: str) -> Verification:
    """Runs `onnx_bytes` with onnxruntime on the example inputs and compares with the PyTorch region."""
    import onnxruntime

    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    feeds = {i.name: t.detach().cpu().numpy() for i, t in zip(session.get_inputs(), example_inputs)}
    got = session.run(None, feeds)
    with torch.no_grad():
        expected = region(*example_inputs)
    expected = list(expected) if isinstance(expected, (tuple, list)) else [expected]
    if len(got) != len(expected):
        raise VerificationError(f"trtpack: verify {name}: ONNX gives {len(got)} outputs, PyTorch {len(expected)}")
    worst_abs = worst_rel = 0.0
    for index, (actual, reference) in enumerate(zip(got, expected)):
        actual = torch.from_numpy(actual).to(reference.dtype)
        if actual.shape != reference.shape:
            raise VerificationError(f"trtpack: verify {name}: output {index} has shape {tuple(actual.shape)} "
                                        f"in ONNX but {tuple(reference.shape)} in PyTorch")
        if not reference.is_floating_point():
            if not torch.equal(actual, reference):
                raise VerificationError(f"trtpack: verify {name}: integer output {index} differs from PyTorch")
            continue
        atol, rtol = VERIFY_TOLERANCE.get(reference.dtype, (1e-4, 1e-3))
        difference = (actual.double() - reference.double()).abs()
        worst_abs = max(worst_abs, float(difference.max()) if difference.numel() else 0.0)
        relative = difference / reference.double().abs().clamp_min(1e-12)
        worst_rel = max(worst_rel, float(relative.max()) if relative.numel() else 0.0)
        allowed = atol + rtol * reference.double().abs()
        if bool((difference > allowed).any()):
            raise VerificationError(
                f"trtpack: verify {name}: the ONNX model for TensorRT differs from PyTorch on output {index}: max abs "
                f"error {float(difference.max()):.3g} > atol {atol} + rtol {rtol}*|x|. Compile without this region "
                "(raise min_block_size) or report the op mix in the region.")
    return Verification(worst_abs, worst_rel)
