"""Stage 5, where assemble.py does not cover the program: replace each region by its engine call and re-export, so
the result is a plain program that trtpack.save can export again.

fallback=False: execute_engine(inputs, plan, meta).
fallback=True:  torch.cond(engine_usable(inputs, plan, meta), execute_engine branch, the region's PyTorch ops).
The plan is a uint8 buffer of the module (raw bytes, no base64), the meta a str literal in the graph.
"""
import operator

import sympy
import torch
from torch.utils import _pytree as pytree



class EngineCall(torch.nn.Module):
    def __init__(self, plan: bytes, meta: str, reference, single_output: bool, fresh_strides=()):
        super().__init__()
        self.fresh_strides = tuple(fresh_strides)
        self.register_buffer("plan", torch.frombuffer(bytearray(plan), dtype=torch.uint8))
        self.meta = meta
        self.reference = reference
        self.single_output = single_output

    def _engine(self, *inputs):
        return tuple(torch.ops.trtpack.execute_engine(list(inputs), self.plan, self.meta))

    def _reference(self, *inputs):
        outputs = (self.reference(*inputs),) if self.single_output else tuple(self.reference(*inputs))
        # torch.cond needs both branches to have the same, plainly contiguous strides. A reshape to a derived size
        # (e.g. [s0*s1, d]) can carry strides like min(d, d*s1) that .contiguous() keeps: copy those outputs.
        return tuple(o.clone(memory_format=torch.contiguous_format) if fresh else o.contiguous()
                     for o, fresh in zip(outputs, self.fresh_strides or [False] * len(outputs)))

    def forward(self, *inputs):
        if self.reference is None:
            outputs = self._engine(*inputs)
        else:
            outputs = self._cond(inputs)
        return outputs[0] if self.single_output else tuple(outputs)

    def _cond(self, inputs):
        """torch.cond(engine_usable, engine, reference) through the higher-order op itself: torch.cond would first
        compile both branches with dynamo, which the re-export's own trace does not need (most of its time). The raw
        op does not lift what a branch reads from the module, so the plan and the reference's weights are operands."""
        # each weight once: a weight two ops share has one get_attr per user after partitioning
        names = list(dict.fromkeys(n.target for n in self.reference.graph.nodes if n.op == "get_attr"))
        weights = [operator.attrgetter(name)(self.reference) for name in names]
        count = len(names)

        def engine(plan, *rest):
            return tuple(torch.ops.trtpack.execute_engine(list(rest[count:]), plan, self.meta))

        def reference(plan, *rest):
            with torch.nn.utils.stateless._reparametrize_module(self.reference, dict(zip(names, rest[:count]))):
                return self._reference(*rest[count:])

        usable = torch.ops.trtpack.engine_usable(list(inputs), self.plan, self.meta)
        return torch.ops.higher_order.cond(usable, engine, reference, (self.plan, *weights, *inputs))


def replace_regions(gm: torch.fx.GraphModule, engines: dict, fallback: bool) -> None:
    """engines: region name -> (plan bytes, meta str). Regions without an engine keep their PyTorch ops."""
    for name, (plan, meta) in engines.items():
        region = getattr(gm, name)
        output = next(n for n in region.graph.nodes if n.op == "output")
        single = not isinstance(output.args[0], (tuple, list))
        results = [output.args[0]] if single else output.args[0]
        fresh = [has_derived_dim(r.meta["val"]) for r in results]
        setattr(gm, name, EngineCall(plan, meta, region if fallback else None, single, fresh))
    # Weights now live in the regions (and their plans): drop the parent's unused copies.
    for node in list(gm.graph.nodes):
        if node.op == "get_attr" and not node.users:
            gm.graph.erase_node(node)
    gm.delete_all_unused_submodules()
    gm.recompile()


def has_derived_dim(value) -> bool:
    return any(isinstance(d, torch.SymInt) and not isinstance(d.node.expr, sympy.Symbol) for d in value.shape)


def program_dynamic_shapes(program: torch.export.ExportedProgram, symbols, arg_inputs, kwarg_inputs):
    """The program's dynamic dims as a dynamic_shapes spec for (args, kwargs): one Dim per size symbol, with the
    range the engines were built for (an unbounded max becomes symbolic.DEFAULT_MAX_DIM)."""
    user_inputs = set(program.graph_signature.user_inputs)
    values = [n.meta.get("val") for n in program.graph.nodes if n.op == "placeholder" and n.name in user_inputs]
    specs = symbols.dynamic_shapes_of(values)
    _, tree = pytree.tree_flatten((tuple(arg_inputs), dict(kwarg_inputs or {})))
    args_spec, kwargs_spec = pytree.tree_unflatten(specs, tree)
    if not kwargs_spec:
        return tuple(args_spec)
    return {**dict(zip(_positional_names(program, len(args_spec)), args_spec)), **kwargs_spec}


def _positional_names(program, count):
    names = [spec.arg.name for spec in program.graph_signature.input_specs if spec.kind.name == "USER_INPUT"]
    return names[:count]


def reexport(gm: torch.fx.GraphModule, program, symbols, arg_inputs, kwarg_inputs) -> torch.export.ExportedProgram:
    return torch.export.export(gm, tuple(arg_inputs), kwargs=kwarg_inputs or {}, strict=False,
                               dynamic_shapes=program_dynamic_shapes(program, symbols, arg_inputs, kwarg_inputs))
