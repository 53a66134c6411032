"""The model file convention: `model()` -> nn.Module, `example_inputs()` -> tuple (or dict of kwargs),
optional `dynamic_shapes()` and `compile_options()`."""
import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass, field

import torch

from trtpack.errors import TrtpackError

MINIMAL = '''    import torch

    def model():
        return torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU()).eval()

    def example_inputs():
        return (torch.randn(2, 8),)

    def dynamic_shapes():          # optional
        return ({0: torch.export.Dim("batch", min=1, max=64)},)
'''


class ModelFileError(TrtpackError, ValueError):
    """The model file is missing, fails to import, or does not follow the convention."""


@dataclass
class ModelSpec:
    name: str
    module: torch.nn.Module
    arg_inputs: tuple
    kwarg_inputs: dict = field(default_factory=dict)
    dynamic_shapes: object = None
    compile_options: dict = field(default_factory=dict)


def _fail(path: str, problem: str) -> ModelFileError:
    return ModelFileError(f"trtpack: {path}: {problem}\nA minimal valid model file:\n\n{MINIMAL}")


def load_model_file(path: str) -> ModelSpec:
    if not os.path.isfile(path):
        raise ModelFileError(f"trtpack: no model file at {path!r} (working directory {os.getcwd()!r})")
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(f"trtpack_model_{name}", path)
    if spec is None or spec.loader is None:
        raise _fail(path, "is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__, limit=-3))
        raise ModelFileError(f"trtpack: {path} failed to import:\n{tb}") from e
    finally:
        sys.path.pop(0)
    for required in ("model", "example_inputs"):
        if not callable(getattr(module, required, None)):
            raise _fail(path, f"defines no {required}() function")
    net = _call(path, module, "model")
    if not isinstance(net, torch.nn.Module):
        raise _fail(path, f"model() returned {type(net).__name__}, not a torch.nn.Module")
    inputs = _call(path, module, "example_inputs")
    args, kwargs = (), {}
    if isinstance(inputs, dict):
        kwargs = inputs
    elif isinstance(inputs, (tuple, list)):
        args = tuple(inputs)
    else:
        raise _fail(path, f"example_inputs() returned {type(inputs).__name__}; return a tuple of tensors "
                          "(or a dict of keyword inputs)")
    if not all(isinstance(t, torch.Tensor) for t in list(args) + list(kwargs.values())):
        raise _fail(path, "example_inputs() must contain only tensors")
    dynamic = _call(path, module, "dynamic_shapes") if hasattr(module, "dynamic_shapes") else None
    options = _call(path, module, "compile_options") if hasattr(module, "compile_options") else {}
    if not isinstance(options, dict):
        raise _fail(path, f"compile_options() returned {type(options).__name__}, not a dict")
    return ModelSpec(name, net.eval(), args, kwargs, dynamic, options)


def _call(path, module, name):
    try:
        return getattr(module, name)()
    except Exception as e:
        raise ModelFileError(f"trtpack: {path}: {name}() raised {type(e).__name__}: {e}") from e
