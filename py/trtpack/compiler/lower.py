"""Stage 5: replace each region by its engine call and re-export, so the result is a plain program that
trtpack.save can export again.

fallback=False: execute_engine(inputs, plan, meta).
fallback=True:  torch.cond(engine_usable(inputs, plan, meta), execute_engine branch, the region's PyTorch ops).
The plan is a uint8 buffer of the module (raw bytes, no base64), the meta a str literal in the graph.
"""
import functools

import sympy
import torch
from torch.utils import _pytree as pytree

from trtpack.errors import IncompatibleEngineError


class EngineCall(torch.nn.Module):
    def __init__(self, plan: bytes, meta: str, reference, single_output: bool):
        super().__init__()
        self.register_buffer("plan", torch.frombuffer(bytearray(plan), dtype=torch.uint8))
        self.meta = meta
        self.reference = reference
        self.single_output = single_output

    def _engine(self, *inputs):
        return tuple(torch.ops.trtpack.execute_engine(list(inputs), self.plan, self.meta))

    def _reference(self, *inputs):
        outputs = self.reference(*inputs)
        return (outputs,) if self.single_output else tuple(outputs)

    def forward(self, *inputs):
        if self.reference is None:
            outputs = self._engine(*inputs)
        else:
            usable = torch.ops.trtpack.engine_usable(list(inputs), self.plan, self.meta)
            outputs = torch.cond(usable, self._engine, self._reference, inputs)
        return outputs[0] if self.single_output else tuple(outputs)


def replace_regions(gm: torch.fx.GraphModule, engines: dict, fallback: bool) -> None:
    """engines: region name -> (plan bytes, meta str). Regions without an engine keep their PyTorch ops."""
    for name, (plan, meta) in engines.items():
        region = getattr(gm, name)
        output = next(n for n in region.graph.nodes if n.op == "output")
        single = not isinstance(output.args[0], (tuple, list))
        setattr(gm, name, EngineCall(plan, meta, region if fallback else None, single))
    # Weights now live in the regions (and their plans): drop the parent's unused copies.
    for node in list(gm.graph.nodes):
        if node.op == "get_attr" and not node.users:
            gm.graph.erase_node(node)
    gm.delete_all_unused_submodules()
    gm.recompile()


def program_dynamic_shapes(program: torch.export.ExportedProgram, arg_inputs, kwarg_inputs):
    """The program's dynamic dims as a dynamic_shapes spec for (args, kwargs), one Dim per size symbol."""
    user_inputs = set(program.graph_signature.user_inputs)
    values = [n.meta.get("val") for n in program.graph.nodes if n.op == "placeholder" and n.name in user_inputs]
    dims = {}
    specs = []
    for value in values:
        spec = {}
        for axis, size in enumerate(getattr(value, "shape", ())):
            if not isinstance(size, torch.SymInt):
                continue
            expr = size.node.expr
            if not isinstance(expr, sympy.Symbol):
                spec[axis] = torch.export.Dim.AUTO
                continue
            if expr not in dims:
                bounds = program.range_constraints[expr]
                upper = None if not bounds.upper.is_finite else int(bounds.upper)
                dims[expr] = torch.export.Dim(f"dim_{expr}", min=int(bounds.lower), max=upper) if upper else \
                    torch.export.Dim(f"dim_{expr}", min=int(bounds.lower))
            spec[axis] = dims[expr]
        specs.append(spec or None)
    _, tree = pytree.tree_flatten((tuple(arg_inputs), dict(kwarg_inputs or {})))
    args_spec, kwargs_spec = pytree.tree_unflatten(specs, tree)
    if not kwargs_spec:
        return tuple(args_spec)
    return {**dict(zip(_positional_names(program, len(args_spec)), args_spec)), **kwargs_spec}


def _positional_names(program, count):
    names = [spec.arg.name for spec in program.graph_signature.input_specs if spec.kind.name == "USER_INPUT"]
    return names[:count]


def reexport(gm: torch.fx.GraphModule, program, arg_inputs, kwarg_inputs) -> torch.export.ExportedProgram:
    return torch.export.export(gm, tuple(arg_inputs), kwargs=kwarg_inputs or {},
                               dynamic_shapes=program_dynamic_shapes(program, arg_inputs, kwarg_inputs), strict=False)


def translate_errors(module: torch.fx.GraphModule, compiled_ranges: str) -> torch.fx.GraphModule:
    """Callers get trtpack errors that say what to do: IncompatibleEngineError when an engine cannot run here (the
    op kernels raise RuntimeError('trtpack: ...')) or when the inputs are outside the compiled shape ranges."""
    forward = module.forward

    @functools.wraps(forward)
    def checked_forward(*args, **kwargs):
        try:
            return forward(*args, **kwargs)
        except AssertionError as error:
            if not str(error).startswith("Guard failed"):
                raise
            raise IncompatibleEngineError(
                f"trtpack: the inputs are outside the shapes this program was compiled for ({error}). Compiled "
                f"ranges: {compiled_ranges}. Compile again with dynamic_shapes (torch.export.Dim min/max) that cover "
                "these sizes.") from error
        except RuntimeError as error:
            if "trtpack:" not in str(error):
                raise
            message = str(error)[str(error).index("trtpack:"):].split("\nException raised from")[0]
            raise IncompatibleEngineError(message) from error

    module.forward = checked_forward
    return module
