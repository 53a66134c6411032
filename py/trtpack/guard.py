"""Turns what torch raises while a compiled program runs into trtpack errors that say what to do.

Used by compile() for the module it returns and by load() for the modules it gives back, so both fail alike.
"""
import functools

from trtpack.errors import IncompatibleEngineError


def call(fn, args, kwargs, compiled_ranges: str):
    """fn(*args, **kwargs), with engine refusals (the op kernels raise RuntimeError('trtpack: ...')) and shape
    guards outside the compiled ranges raised as IncompatibleEngineError."""
    try:
        return fn(*args, **kwargs)
    except AssertionError as error:
        if not str(error).startswith("Guard failed"):
            raise
        raise IncompatibleEngineError(
            f"trtpack: the inputs are outside the shapes this program was compiled for ({error}). Compiled "
            f"ranges: {compiled_ranges}. Compile again with dynamic_shapes (torch.export.Dim min/max) that cover "
            "these sizes.") from error
    except RuntimeError as error:
        if "trtpack:" not in str(error) or isinstance(error, IncompatibleEngineError):
            raise
        raise IncompatibleEngineError(first_line(str(error)[str(error).index("trtpack:"):])) from error


def first_line(error) -> str:
    """A torch/c10 error's message without the C++ backtrace c10 appends."""
    return str(error).split("\nException raised from")[0].strip()


def translate_errors(module, compiled_ranges: str):
    """Wraps module.forward with `call` (in place); returns the module."""
    forward = module.forward

    @functools.wraps(forward)
    def checked_forward(*args, **kwargs):
        return call(forward, args, kwargs, compiled_ranges)

    module.forward = checked_forward
    return module
