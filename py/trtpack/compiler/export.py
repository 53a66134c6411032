"""Stage 1: a user model (or an ExportedProgram) becomes an ExportedProgram decomposed for ONNX (decomposition.py).

The one place trtpack turns a model into an ExportedProgram (compile, build_single_engine and save use it)."""
import torch

from trtpack.compiler.decomposition import decompose as decompose_program
from trtpack.errors import UnsupportedGraphError


def export_program(model, arg_inputs=(), kwarg_inputs=None, *, dynamic_shapes=None,
                   decompose=True) -> torch.export.ExportedProgram:
    """`model` as an ExportedProgram: torch.export.export (non-strict) for an nn.Module, then, with `decompose`, the
    decompositions of trtpack.compiler.decomposition.

    An ExportedProgram is taken as it is: its shapes (static or dynamic) were fixed when it was exported, so a
    `dynamic_shapes` given with one is refused rather than silently ignored. For an nn.Module, `dynamic_shapes` is
    torch.export's (torch.export.Dim per dynamic dim); None exports every size static.

    Errors raised inside torch (export or decomposition) become UnsupportedGraphError naming the stage, with torch's
    error as __cause__.
    """
    if isinstance(model, torch.export.ExportedProgram):
        if dynamic_shapes is not None:
            raise UnsupportedGraphError(
                "trtpack: dynamic_shapes was given with an ExportedProgram, whose shapes are already fixed. "
                "Pass dynamic_shapes to torch.export.export instead, or pass the nn.Module.")
        program = model
    elif isinstance(model, torch.nn.Module):
        try:
            program = torch.export.export(model, tuple(arg_inputs), kwargs=dict(kwarg_inputs or {}),
                                          dynamic_shapes=dynamic_shapes, strict=False)
        except Exception as error:  # torch.export raises many types; all mean "this model does not export"
            raise UnsupportedGraphError(f"trtpack: torch.export could not export the model: {error}") from error
    else:
        raise UnsupportedGraphError(
            f"trtpack: expected a torch.nn.Module or a torch.export.ExportedProgram, not {type(model).__name__}.")
    return decompose_program(program) if decompose else program
