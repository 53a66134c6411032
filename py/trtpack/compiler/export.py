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
        program = _export_module(model, tuple(arg_inputs), dict(kwarg_inputs or {}), dynamic_shapes)
    else:
        raise UnsupportedGraphError(
            f"trtpack: expected a torch.nn.Module or a torch.export.ExportedProgram, not {type(model).__name__}.")
    return decompose_program(program) if decompose else program


def _export_module(model, args, kwargs, dynamic_shapes) -> torch.export.ExportedProgram:
    """torch.export.export (non-strict). Where torch reports a guard it cannot prove for the whole range of a dynamic
    dim (a constraint violation), the model is exported again with that guard as a run-time check instead
    (prefer_deferred_runtime_asserts_over_guards); decomposition erases each check that holds at every size in the
    range (symbolic.drop_size_checks_that_hold), and one that can fail stays in PyTorch and checks every call. A model
    that does not export that way either raises torch's first error."""
    try:
        return torch.export.export(model, args, kwargs=kwargs, dynamic_shapes=dynamic_shapes, strict=False)
    except Exception as error:  # torch.export raises many types; all mean "this model does not export"
        first = error
    if dynamic_shapes is not None and _is_constraint_violation(first):
        try:
            return torch.export.export(model, args, kwargs=kwargs, dynamic_shapes=dynamic_shapes, strict=False,
                                       prefer_deferred_runtime_asserts_over_guards=True)
        except Exception:  # noqa: BLE001  (torch's first error says more)
            pass
    raise UnsupportedGraphError(f"trtpack: torch.export could not export the model: {first}") from first


def _is_constraint_violation(error) -> bool:
    from torch._dynamo.exc import UserError, UserErrorType
    return isinstance(error, UserError) and error.error_type is UserErrorType.CONSTRAINT_VIOLATION
