"""Stage 1: a user model (or an ExportedProgram) becomes an ExportedProgram in core ATen ops."""
import torch

from trtpack.compiler.decomposition import decompose as decompose_program
from trtpack.errors import UnsupportedGraphError


def export_program(model, arg_inputs, kwarg_inputs=None, dynamic_shapes=None, *,
                   decompose: bool = True) -> torch.export.ExportedProgram:
    """Exports `model` with torch.export (non-strict) and, with `decompose`, runs the core-ATen decompositions.

    An ExportedProgram is taken as is (its dynamic shapes are already fixed) and only decomposed.
    """
    if isinstance(model, torch.export.ExportedProgram):
        if dynamic_shapes is not None:
            raise UnsupportedGraphError(
                "trtpack: dynamic_shapes was given with an ExportedProgram, whose shapes are already fixed. "
                "Pass dynamic_shapes to torch.export.export instead, or pass the nn.Module to trtpack.compile.")
        program = model
    elif isinstance(model, torch.nn.Module):
        try:
            program = torch.export.export(model, tuple(arg_inputs), kwargs=kwarg_inputs or {},
                                          dynamic_shapes=dynamic_shapes, strict=False)
        except (torch._dynamo.exc.UserError, torch.fx.experimental.symbolic_shapes.ConstraintViolationError) as error:
            raise UnsupportedGraphError(f"trtpack: torch.export could not export the model: "
                                        f"{str(error).strip().splitlines()[0]}") from error
    else:
        raise UnsupportedGraphError(
            f"trtpack: compile takes a torch.nn.Module or a torch.export.ExportedProgram, not {type(model).__name__}.")
    return decompose_program(program) if decompose else program
