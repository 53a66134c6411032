"""torch's core-ATen decompositions, with their failures in words: the stage, the op being decomposed and the model's
source line, with torch's own error kept as the cause."""
import torch

from trtpack.errors import UnsupportedGraphError


def failing_node(error: BaseException):
    """The FX node torch was working on when `error` was raised (innermost frame holding one), or None."""
    found, tb = None, error.__traceback__
    while tb is not None:
        for name in ("n", "node"):
            value = tb.tb_frame.f_locals.get(name)
            if isinstance(value, torch.fx.Node) and value.op == "call_function":
                found = value
        tb = tb.tb_next
    return found


def _user_line(node) -> str:
    trace = (node.meta.get("stack_trace") or "").strip().splitlines() if node is not None else []
    frames = [line.strip() for line in trace if line.strip().startswith("File ")]
    return frames[-1] if frames else "(no source location recorded)"


def decompose(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """program.run_decompositions(); a failure inside torch raises UnsupportedGraphError."""
    try:
        return program.run_decompositions()
    except Exception as error:  # torch raises ValueError, RuntimeError, TorchRuntimeError...: all mean the same here
        node = failing_node(error)
        op = str(node.target) if node is not None else "an unknown op"
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UnsupportedGraphError(
            f"trtpack: torch's core-ATen decomposition (stage: decompose) failed on {op}"
            f"{f' (node {node.name})' if node is not None else ''} at {_user_line(node)}: {type(error).__name__}: "
            f"{first}. This is inside torch, not trtpack: try another attention/implementation option of the model "
            "(e.g. attn_implementation='eager'), or export it yourself and pass the ExportedProgram.") from error
