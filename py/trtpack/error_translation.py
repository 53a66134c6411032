"""Turns what torch raises while a compiled program runs into trtpack errors that say what to do.

Used by compile() for the module it returns and by load() for the modules it gives back, so both fail alike.
"""
import functools
import re

from trtpack.errors import IncompatibleEngineError

# How torch refuses an input outside an exported program's ranges: torch 2.13 runs guard code (AssertionError
# "Guard failed: ..."); torch 2.11 checks input constraints (RuntimeError "Expected input at ... to be <= 16, ...").
_SHAPE_GUARD = re.compile(r"Guard failed|Expected input at .* to be (>=|<=|equal to) ")


def call(fn, args, kwargs, compiled_ranges: str):
    """fn(*args, **kwargs), with engine refusals (the op kernels raise RuntimeError('trtpack: ...')) and shape
    guards outside the compiled ranges raised as IncompatibleEngineError."""
    try:
        return fn(*args, **kwargs)
    except (AssertionError, RuntimeError) as error:
        if isinstance(error, IncompatibleEngineError):
            raise
        text = str(error)
        if _SHAPE_GUARD.match(text):
            raise IncompatibleEngineError(
                f"trtpack: the inputs are outside the shapes this program was compiled for ({first_line(text)}). "
                f"Compiled ranges: {compiled_ranges}. Compile again with dynamic_shapes (torch.export.Dim min/max) "
                "that cover these sizes.") from error
        if isinstance(error, RuntimeError) and "trtpack:" in text:
            raise IncompatibleEngineError(first_line(text[text.index("trtpack:"):])) from error
        raise


def first_line(error) -> str:
    """A torch/c10 error's message without the C++ backtrace c10 appends."""
    return str(error).split("\nException raised from")[0].strip()


def translate_errors(module, compiled_ranges: str):
    """Wraps module.forward, and its forward pre-hooks, with `call` (in place); returns the module. torch checks an
    exported program's input ranges in a pre-hook where the program has no guard code in its graph (torch 2.11, or
    a program read back from a file), and a pre-hook's error never passes through forward."""
    forward = module.forward

    @functools.wraps(forward)
    def checked_forward(*args, **kwargs):
        return call(forward, args, kwargs, compiled_ranges)

    module.forward = checked_forward
    hooks = getattr(module, "_forward_pre_hooks", {})
    for hook_id, hook in list(hooks.items()):
        hooks[hook_id] = _checked_hook(hook, compiled_ranges)
    return module


def _checked_hook(hook, compiled_ranges: str):
    @functools.wraps(hook)
    def checked(*args):  # torch passes a pre-hook's arguments positionally
        return call(hook, args, {}, compiled_ranges)
    return checked
