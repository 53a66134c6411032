"""Fallback decided once: `torch.cond(engine_usable(...), engine, reference, operands)` pays the cond higher-order
op's dispatch on every call in eager mode (docs/BENCHMARKS.md measures it), although whether an engine runs here is
settled once per process and device. `resolve` rewrites each such cond into a call that asks engine_usable once per
device and from then on calls the chosen branch directly.

Once every branch is decided for the devices a call's inputs are on, the module runs a copy of its graph with each
chosen branch's ops inlined (`_chosen_graph`): a decided program then costs what the plain exported program costs,
not an extra module call per engine.

The saved artifact keeps the portable torch.cond program: trtpack.save writes the program compile recorded, and
exporting a resolved module traces the cond again (while tracing, the branch call emits the cond op).
"""
import functools
import operator

import torch
from torch._subclasses.fake_tensor import FakeTensor

from trtpack.runtime.graph_forward import compile_graph


class DecidedBranch(torch.nn.Module):
    """engine_branch where engine_usable says the engine runs on the inputs' device, else reference_branch; the
    verdict is asked once per device and kept."""

    def __init__(self, engine_branch: torch.nn.Module, reference_branch: torch.nn.Module):
        super().__init__()
        self.engine_branch = engine_branch
        self.reference_branch = reference_branch
        self._chosen = {}  # device -> the chosen branch's forward
        self.last = None  # the branch module the last (untraced) call took

    def forward(self, usable_inputs, plan, meta, operands):
        if _tracing(operands):
            usable = torch.ops.trtpack.engine_usable(list(usable_inputs), plan, meta)
            return torch.ops.higher_order.cond(usable, self.engine_branch, self.reference_branch, tuple(operands))
        device = usable_inputs[0].device if usable_inputs else plan.device
        chosen = self._chosen.get(device)
        if chosen is None:
            usable = bool(torch.ops.trtpack.engine_usable(list(usable_inputs), plan, meta))
            chosen = self._chosen[device] = (self.engine_branch if usable else self.reference_branch).forward
        self.last = chosen.__self__
        return chosen(*operands)

    def chosen(self) -> dict:
        """{device: 'engine' | 'reference'} for every device asked so far."""
        return {device: "engine" if fn == self.engine_branch.forward else "reference"
                for device, fn in self._chosen.items()}


def undecided(module: torch.nn.Module, device: torch.device):
    """None when every DecidedBranch inside `module` has its verdict for `device`; else why not (for CUDA graphs:
    a capture must not contain the decision)."""
    pending = [name for name, m in module.named_modules() if isinstance(m, DecidedBranch) and device not in m._chosen]
    return f"its fallback is still undecided on {device} ({', '.join(pending)})" if pending else None


def _tracing(values) -> bool:
    return torch.compiler.is_compiling() or any(isinstance(v, FakeTensor) for v in values)


def _is_engine_cond(node: torch.fx.Node) -> bool:
    if node.op != "call_function" or node.target is not torch.ops.higher_order.cond:
        return False
    predicate = node.args[0]
    return isinstance(predicate, torch.fx.Node) and predicate.target is torch.ops.trtpack.engine_usable.default


def resolve(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Rewrites, in place, every `cond(engine_usable(inputs, plan, meta), engine, reference, operands)` of `gm` into a
    DecidedBranch call (submodule `decided_<i>`); returns `gm`. Other conds and graphs without one are left as they
    are, and resolving twice changes nothing."""
    graph = gm.graph
    conds = [node for node in graph.nodes if _is_engine_cond(node)]
    for index, node in enumerate(conds):
        predicate, engine, reference, operands = node.args[:4]
        name = f"decided_{index}"
        while hasattr(gm, name):
            name += "_"
        gm.add_submodule(name, DecidedBranch(getattr(gm, engine.target), getattr(gm, reference.target)))
        usable_inputs, plan, meta = predicate.args
        with graph.inserting_before(node):
            call = graph.call_module(name, (usable_inputs, plan, meta, tuple(operands)))
        call.meta = dict(node.meta)
        node.replace_all_uses_with(call)
        graph.erase_node(node)
        for unused in (predicate, engine, reference):
            if not unused.users:
                graph.erase_node(unused)
    if conds:
        gm.delete_all_unused_submodules()
        gm.recompile()
        _run_decided_graphs(gm)
    return gm


def _run_decided_graphs(gm: torch.fx.GraphModule) -> None:
    """gm.forward becomes: for inputs on devices seen before, the graph with the branches chosen for them inlined;
    else the DecidedBranch graph, which decides, and then the inlined graph is made for those devices. A region's
    inputs are on the devices the program's inputs are on, so the program's input devices settle every verdict.
    Calls whose devices cannot be seen at the top level (nested inputs, no tensor) and traces keep the DecidedBranch
    graph."""
    decided_graph = gm.forward
    inlined = {}  # input devices -> forward of the graph with the chosen branches inlined
    graphs = gm.__dict__["_trtpack_chosen_graphs"] = {}  # input devices -> that graph (decided_graph_for)

    @functools.wraps(decided_graph)  # torch.export reads the signature to match dynamic_shapes to inputs
    def forward(*args, **kwargs):
        key = _input_devices(args, kwargs)
        run = inlined.get(key)
        if run is not None:
            return run(*args, **kwargs)
        result = decided_graph(*args, **kwargs)
        if key is not None:
            graph = _chosen_graph(gm)
            inlined[key] = compile_graph(gm, graph)
            graphs[key] = graph
        return result

    gm.forward = forward


def decided_graph_for(gm: torch.fx.GraphModule, args, kwargs):
    """The graph gm runs for inputs on these devices once its branches are decided for them (chosen branches
    inlined, pytree codegen), or None: not decided yet, or not a resolved fallback program."""
    graphs = gm.__dict__.get("_trtpack_chosen_graphs")
    return graphs.get(_input_devices(args, kwargs)) if graphs else None


def has_decided_branches(gm: torch.fx.GraphModule) -> bool:
    return "_trtpack_chosen_graphs" in gm.__dict__


def _input_devices(args, kwargs):
    devices = []
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            if isinstance(value, FakeTensor):
                return None
            devices.append(value.device)
        elif isinstance(value, (list, tuple, dict)):
            return None
    if not devices or torch.compiler.is_compiling():
        return None
    return tuple(devices)


def _chosen_graph(gm: torch.fx.GraphModule) -> torch.fx.Graph:
    """gm's graph with every DecidedBranch call replaced by the ops of the branch it last took (compiled as a forward
    of gm itself by graph_forward.compile_graph: attributes are read from gm on each call, so a later .to() is seen)."""
    graph = torch.fx.Graph()
    graph._codegen = gm.graph._codegen  # the program's pytree in/out handling, as in gm's own forward
    env = {}
    for node in gm.graph.nodes:
        module = getattr(gm, node.target) if node.op == "call_module" else None
        if isinstance(module, DecidedBranch):
            operands = [env[o] for o in node.args[3]]
            env[node] = _inline(graph, module.last, operands, f"{node.target}.{_branch_name(module)}")
        elif node.op == "call_function" and node.target is operator.getitem and isinstance(
                env.get(node.args[0]), tuple):
            env[node] = env[node.args[0]][node.args[1]]
        elif node.op == "output":
            graph.output(torch.fx.map_arg(node.args[0], env.__getitem__))
        else:
            env[node] = graph.node_copy(node, env.__getitem__)
    for node in reversed(graph.nodes):
        if node.op == "get_attr" and not node.users:  # the plan when the reference branch was chosen
            graph.erase_node(node)
    return graph


def _inline(graph, branch: torch.fx.GraphModule, operands, target: str):
    """The branch's ops copied into graph on the operands (a tuple of its outputs), or one call of the branch
    module where its graph reads attributes of its own (e.g. a nested cond's branches)."""
    if all(n.op in ("placeholder", "call_function", "output") for n in branch.graph.nodes):
        placeholders = [n for n in branch.graph.nodes if n.op == "placeholder"]
        outputs = graph.graph_copy(branch.graph, dict(zip(placeholders, operands)))
        if isinstance(outputs, (tuple, list)) and all(isinstance(o, torch.fx.Node) for o in outputs):
            return tuple(outputs)
    return graph.call_module(target, tuple(operands))


def _branch_name(module: DecidedBranch) -> str:
    return "engine_branch" if module.last is module.engine_branch else "reference_branch"
