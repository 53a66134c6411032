"""Stage 5 without a second trace: the lowered ExportedProgram put together from the partitioned graph.

Each region with an engine becomes `execute_engine(inputs, plan, meta)`, or with fallback
`torch.cond(engine_usable(inputs, plan, meta), engine graph, the region's own graph, (plan, *weights, *inputs))`:
the nodes re-exporting would trace, carrying the fake values of the one export. Re-exporting traces every reference
branch three to four times (the cond's subgraphs and its schema): seconds for a CNN.

A program outside what this covers (state written in place, non-tensor inputs or outputs, weights shared under two
names, a region output that is not plainly contiguous, modules other than regions) gives None, and the caller
re-exports (reexport.reexport).
"""
import logging
import operator
from typing import Optional

import torch
from torch._guards import detect_fake_mode
from torch._prims_common import is_contiguous_or_false
from torch.export.exported_program import ModuleCallEntry, ModuleCallSignature
from torch.export.graph_signature import (ExportGraphSignature, InputKind, InputSpec, OutputKind, OutputSpec,
                                          TensorArgument)
from torch.utils._sympy.value_ranges import ValueRanges

from trtpack.compiler import identifiers
from trtpack.compiler.reexport import has_derived_dim

log = logging.getLogger(__name__)
EXECUTE = torch.ops.trtpack.execute_engine.default
USABLE = torch.ops.trtpack.engine_usable.default
_KIND_ORDER = {InputKind.PARAMETER: 0, InputKind.BUFFER: 1, InputKind.CONSTANT_TENSOR: 2}
_PREFIX = {InputKind.PARAMETER: "p_", InputKind.BUFFER: "b_", InputKind.CONSTANT_TENSOR: "c_"}


class _NotCovered(Exception):
    pass


def lowered_program(gm: torch.fx.GraphModule, program: torch.export.ExportedProgram, engines: dict, fallback: bool,
                    symbols, example_inputs: tuple) -> Optional[torch.export.ExportedProgram]:
    """engines: region name -> (plan bytes, meta str); example_inputs: (args, kwargs), which AOTInductor needs. The
    program `compile` returns, or None (re-export instead)."""
    try:
        return _Assembly(gm, program, engines, fallback).build(symbols, example_inputs)
    except _NotCovered as reason:
        log.debug("lowered program re-exported: %s", reason)
        return None
    except Exception:  # noqa: BLE001  (a fast path: the re-export is the general one, so a failure here costs time only)
        log.warning("trtpack: assembling the lowered program failed; re-exporting it instead", exc_info=True)
        return None


class _Assembly:
    def __init__(self, gm, program, engines, fallback):
        self.gm, self.program, self.engines, self.fallback = gm, program, engines, fallback
        signature = program.graph_signature
        if any(spec.kind != OutputKind.USER_OUTPUT for spec in signature.output_specs):
            raise _NotCovered("the program writes state in place")
        if any(spec.kind not in (*_KIND_ORDER, InputKind.USER_INPUT) for spec in signature.input_specs):
            raise _NotCovered("tokens or custom objects")
        self.non_persistent = set(signature.non_persistent_buffers)
        self.graph, self.env, self.lifted, self.subgraphs = torch.fx.Graph(), {}, {}, torch.nn.Module()
        self.fake_mode = detect_fake_mode([n.meta.get("val") for n in gm.graph.nodes if n.op == "placeholder"])
        if self.fake_mode is None:
            raise _NotCovered("no fake values")

    # -- the state the program reads: plans, the parent's weights, the fallback branches' weights ----------------
    def _state(self) -> dict:
        """fqn -> (kind, value, fake value), by the names re-exporting gives them."""
        state, owners = {}, {}

        def add(fqn, module, target, node=None):
            value = operator.attrgetter(target)(module)
            if not isinstance(value, torch.Tensor):
                raise _NotCovered(f"{fqn} is not a tensor")
            if id(value) in owners and owners[id(value)] != fqn:
                raise _NotCovered("one tensor under two names")
            owners[id(value)] = fqn
            buffers = dict(module.named_buffers())
            kind = (InputKind.PARAMETER if isinstance(value, torch.nn.Parameter)
                    else InputKind.BUFFER if target in buffers else InputKind.CONSTANT_TENSOR)
            fake = node.meta.get("val") if node is not None else None
            state.setdefault(fqn, (kind, value, fake if fake is not None else self._fake(value)))

        for node in self.gm.graph.nodes:
            if node.op == "get_attr" and node.users:
                add(node.target, self.gm, node.target, node)
            elif node.op == "call_module" and node.target in self.engines:
                plan = torch.frombuffer(bytearray(self.engines[node.target][0]), dtype=torch.uint8)
                state[f"{node.target}.plan"] = (InputKind.BUFFER, plan, self._fake(plan))
                if self.fallback:
                    for attr in _weight_nodes(getattr(self.gm, node.target)):
                        add(f"{node.target}.reference.{attr.target}", getattr(self.gm, node.target), attr.target, attr)
            elif node.op == "call_module" and node.target != "_guards_fn":
                for attr in _weight_nodes(self._module(node)):  # a region left in PyTorch is inlined
                    add(f"{node.target}.{attr.target}", self._module(node), attr.target, attr)
        return state

    def _fake(self, value):
        return self.fake_mode.from_tensor(value, static_shapes=True)

    def _module(self, node):
        module = getattr(self.gm, node.target)
        if not isinstance(module, torch.fx.GraphModule):
            raise _NotCovered(f"{node.target} is not a graph")
        return module

    # -- the graph ------------------------------------------------------------------------------------------------
    def build(self, symbols, example_inputs) -> torch.export.ExportedProgram:
        specs, state, constants = [], {}, {}
        for fqn, (kind, value, fake) in sorted(self._state().items(), key=lambda item: _KIND_ORDER[item[1][0]]):
            node = identifiers.placeholder(self.graph, _PREFIX[kind] + fqn.replace(".", "_"))
            node.meta["val"] = fake
            self.lifted[fqn] = node
            persistent = (fqn not in self.non_persistent) if kind == InputKind.BUFFER else None
            specs.append(InputSpec(kind, TensorArgument(node.name), fqn, persistent=persistent))
            (constants if kind == InputKind.CONSTANT_TENSOR else state)[fqn] = value
        inputs = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        names = self.program.graph_signature.user_inputs
        if len(inputs) != len(names) or not all(isinstance(n.meta.get("val"), torch.Tensor) for n in inputs):
            raise _NotCovered("non-tensor inputs")
        for node, name in zip(inputs, names):
            self.env[node] = identifiers.placeholder(self.graph, name)
            self.env[node].meta = dict(node.meta)
            specs.append(InputSpec(InputKind.USER_INPUT, TensorArgument(self.env[node].name), None))

        outputs = self._copy_nodes()
        root = torch.fx.GraphModule(self.subgraphs, self.graph)
        entry = self.program.module_call_graph[0].signature
        call_graph = [ModuleCallEntry("", ModuleCallSignature(inputs=[], outputs=[], in_spec=entry.in_spec,
                                                              out_spec=entry.out_spec,
                                                              forward_arg_names=entry.forward_arg_names))]
        return torch.export.ExportedProgram(
            root=root, graph=self.graph, graph_signature=ExportGraphSignature(specs, outputs), state_dict=state,
            range_constraints=_compiled_ranges(self.program, symbols), module_call_graph=call_graph,
            example_inputs=example_inputs, constants=constants)

    def _copy_nodes(self) -> list:
        cond_index = 0
        for node in self.gm.graph.nodes:
            if node.op == "get_attr" and node.users:
                self.env[node] = self.lifted[node.target]
            elif node.op == "get_attr":
                continue
            elif node.op == "call_module" and node.target in self.engines:
                self.env[node] = self._region(node, cond_index)
                cond_index += self.fallback
            elif node.op == "call_module" and node.target == "_guards_fn":
                continue  # the program's .module() makes its own input checks
            elif node.op == "call_module":
                self.env[node] = self._inline(node)
            elif node.op == "call_function" and node.target is operator.getitem and isinstance(
                    self.env.get(node.args[0]), tuple):
                self.env[node] = self.env[node.args[0]][node.args[1]]
            elif node.op == "call_function":
                self.env[node] = self.graph.node_copy(node, self.env.__getitem__)
            elif node.op == "output":
                results = node.args[0] if isinstance(node.args[0], (tuple, list)) else (node.args[0],)
                mapped = [self.env[r] if isinstance(r, torch.fx.Node) else r for r in results]
                if not all(isinstance(m, torch.fx.Node) and isinstance(m.meta.get("val"), torch.Tensor)
                           for m in mapped):
                    raise _NotCovered("non-tensor outputs")
                self.graph.output(tuple(mapped))
                return [OutputSpec(OutputKind.USER_OUTPUT, TensorArgument(m.name), None) for m in mapped]
        raise _NotCovered("no output")

    def _inline(self, node):
        """A region left in PyTorch: its nodes, in the parent graph."""
        module = self._module(node)
        values = dict(zip([n for n in module.graph.nodes if n.op == "placeholder"],
                          [self.env[a] for a in node.args]))
        for attr in _weight_nodes(module, unique=False):
            values[attr] = self.lifted[f"{node.target}.{attr.target}"]
        results = self.graph.graph_copy(module.graph, values)
        return tuple(results) if isinstance(results, (tuple, list)) else results

    def _region(self, node, index):
        region = getattr(self.gm, node.target)
        plan_meta = self.engines[node.target][1]
        output = next(n for n in region.graph.nodes if n.op == "output")
        single = not isinstance(output.args[0], (tuple, list))
        results = [output.args[0]] if single else list(output.args[0])
        values = [r.meta.get("val") for r in results]
        if not all(isinstance(v, torch.Tensor) and not has_derived_dim(v) and is_contiguous_or_false(v)
                   for v in values):
            raise _NotCovered("a region output that is not plainly contiguous")
        inputs = [self.env[a] for a in node.args]
        plan = self.lifted[f"{node.target}.plan"]
        if self.fallback:
            weights = [self.lifted[f"{node.target}.reference.{a.target}"] for a in _weight_nodes(region)]
            operands = (plan, *weights, *inputs)
            usable = self.graph.call_function(USABLE, (list(inputs), plan, plan_meta))
            with self.fake_mode:
                usable.meta["val"] = torch.empty((), dtype=torch.bool)
            branches = []
            for kind, branch in (("true", _engine_branch(operands, len(inputs), plan_meta, values)),
                                 ("false", _reference_branch(region, operands, len(weights)))):
                name = f"{kind}_graph_{index}"
                self.subgraphs.add_module(name, branch)
                branches.append(self.graph.get_attr(name))
            call = self.graph.call_function(torch.ops.higher_order.cond, (usable, *branches, operands))
            call.meta["val"] = tuple(values)
        else:
            call = self.graph.call_function(EXECUTE, (list(inputs), plan, plan_meta))
            call.meta["val"] = list(values)
        items = []
        for i, value in enumerate(values):
            items.append(self.graph.call_function(operator.getitem, (call, i)))
            items[-1].meta["val"] = value
        return items[0] if single else tuple(items)


def _weight_nodes(module: torch.fx.GraphModule, unique: bool = True) -> list:
    """The module's get_attr nodes (one per target with `unique`: partitioning gives each user its own)."""
    nodes = [n for n in module.graph.nodes if n.op == "get_attr"]
    return list({n.target: n for n in reversed(nodes)}.values())[::-1] if unique else nodes


def _placeholders(graph, operands) -> list:
    found = []
    for operand in operands:
        found.append(identifiers.placeholder(graph, operand.name))
        found[-1].meta["val"] = operand.meta["val"]
    return found


def _engine_branch(operands, input_count, meta, values) -> torch.fx.GraphModule:
    graph = torch.fx.Graph()
    plan, *rest = _placeholders(graph, operands)
    call = graph.call_function(EXECUTE, (rest[len(rest) - input_count:], plan, meta))
    call.meta["val"] = list(values)
    items = []
    for i, value in enumerate(values):
        items.append(graph.call_function(operator.getitem, (call, i)))
        items[-1].meta["val"] = value
    graph.output(tuple(items))
    return torch.fx.GraphModule(torch.nn.Module(), graph)


def _reference_branch(region, operands, weight_count) -> torch.fx.GraphModule:
    graph = torch.fx.Graph()
    _, *rest = _placeholders(graph, operands)
    weights, inputs = rest[:weight_count], rest[weight_count:]
    by_target = {a.target: w for a, w in zip(_weight_nodes(region), weights)}
    values = dict(zip([n for n in region.graph.nodes if n.op == "placeholder"], inputs))
    values.update({n: by_target[n.target] for n in region.graph.nodes if n.op == "get_attr"})
    results = graph.graph_copy(region.graph, values)
    graph.output(tuple(results) if isinstance(results, (tuple, list)) else (results,))
    return torch.fx.GraphModule(torch.nn.Module(), graph)


def _compiled_ranges(program, symbols) -> dict:
    """The program's range constraints, each input size symbol narrowed to the range the engines were built for."""
    ranges = dict(program.range_constraints)
    for symbol, bounds in symbols.ranges.items():
        ranges[symbol] = ValueRanges(bounds["min"], bounds["max"])
    return ranges
