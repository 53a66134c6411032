"""One region through stages 3-4: cache lookup → its own program → ONNX → (verify) → plan + meta, with
timings."""
import json
import operator
import time
from dataclasses import dataclass, field
from typing import Optional

import sympy
import torch

from trtpack import _native, record
from trtpack.compiler import build, engine_cache, onnx_export, support, symbolic
from trtpack.errors import UnsupportedGraphError
from trtpack.names import dtype_name
from trtpack.runtime.executor import test_double


@dataclass
class RegionEngine:
    name: str
    plan: bytes
    meta: str
    targets: list
    seconds: dict = field(default_factory=dict)       # cache_key / cache_read / onnx / verify / build
    verification: Optional[onnx_export.Verification] = None
    cache_hit: bool = False


class _RegionInputs(torch.fx.Interpreter):
    def __init__(self, gm, names):
        super().__init__(gm)
        self.names, self.seen = set(names), {}

    def call_module(self, target, args, kwargs):
        if target in self.names:
            self.seen[target] = list(args)
        return super().call_module(target, args, kwargs)


def example_region_inputs(gm: torch.fx.GraphModule, flat_inputs, names) -> dict:
    """The tensors each region receives when the partitioned graph runs on the example inputs."""
    interpreter = _RegionInputs(gm, names)
    with torch.no_grad():
        interpreter.run(*flat_inputs)
    return interpreter.seen


def region_io(gm: torch.fx.GraphModule, name: str):
    """The FX values (fake tensors with symbolic shapes) the region reads and returns."""
    call = next(n for n in gm.graph.nodes if n.op == "call_module" and n.target == name)
    output = next(n for n in getattr(gm, name).graph.nodes if n.op == "output")
    results = output.args[0] if isinstance(output.args[0], (tuple, list)) else [output.args[0]]
    return [a.meta["val"] for a in call.args], [r.meta["val"] for r in results]


def _missing_symbols(input_dims, output_dims) -> set:
    """Symbols an output size uses that no input dim carries by itself (the runtime binds symbols from those)."""
    bare = {d for dims in input_dims for d in dims if isinstance(d, str) and d.isidentifier()}
    used = {name for dims in output_dims for d in dims if isinstance(d, str) for name in symbolic.symbol_names(d)}
    return used - bare


def record_dims(input_values, output_values, symbols):
    """The meta's input dims, output dims and symbols. When an output size needs a symbol that only reaches the
    region inside a derived size (e.g. tokens flattened to s0*s1), that derived size becomes a region-local
    symbol t0, t1, ... with its range, and output sizes are rewritten over it."""
    input_dims = [[symbols.dim(d) for d in v.shape] for v in input_values]
    output_dims = [[symbols.dim(d) for d in v.shape] for v in output_values]
    if not _missing_symbols(input_dims, output_dims):
        return input_dims, output_dims, symbols.symbols_of([d for dims in input_dims + output_dims for d in dims])

    local, ranges = {}, {}
    for value, dims in zip(input_values, input_dims):
        for size, dim in zip(value.shape, dims):
            if isinstance(dim, str) and not dim.isidentifier() and size.node.expr not in local:
                name = f"t{len(local)}"
                local[size.node.expr] = sympy.Symbol(name, integer=True, positive=True)
                ranges[name] = {end: symbols.evaluate(dim, end) for end in ("min", "opt", "max")}
    names = {**symbols.names, **{s: s.name for s in local.values()}}

    def rewrite(size):
        if not isinstance(size, torch.SymInt):
            return int(size)
        expr = size.node.expr
        return int(expr) if expr.is_Integer else symbolic.to_expression(expr.subs(local), names)

    input_dims = [[rewrite(d) for d in v.shape] for v in input_values]
    output_dims = [[rewrite(d) for d in v.shape] for v in output_values]
    missing = _missing_symbols(input_dims, output_dims)
    if missing:
        raise UnsupportedGraphError(
            f"trtpack: an output size of the region uses {', '.join(sorted(missing))}, which no input dim of the "
            "region carries, so the runtime could not compute the output shape; this region stays in PyTorch")
    used = [d for dims in input_dims + output_dims for d in dims if isinstance(d, str)]
    names_used = set().union(*(symbolic.symbol_names(d) for d in used)) if used else set()
    table = symbols.symbols_of([n for n in names_used if n not in ranges])
    return input_dims, output_dims, {**table, **{n: r for n, r in ranges.items() if n in names_used}}


@dataclass
class RegionSpec:
    """A region's interface: FX values in and out, the program-symbol dims (profiles), the record's dims."""
    input_values: list
    output_values: list
    record_inputs: list
    record_outputs: list
    record_symbols: dict
    profile: list          # (min, opt, max) shape per input


def region_spec(gm, name, symbols) -> RegionSpec:
    input_values, output_values = region_io(gm, name)
    # Profiles use the program's symbols; the record may use region-local ones.
    input_dims = [[symbols.dim(d) for d in v.shape] for v in input_values]
    record_inputs, record_outputs, record_symbols = record_dims(input_values, output_values, symbols)
    return RegionSpec(input_values, output_values, record_inputs, record_outputs, record_symbols,
                      build.profile_shapes(input_dims, symbols))


def engine_key(gm, name, spec: RegionSpec, backend, targets, min_block_size) -> str:
    """The engine cache key: the region's graph and weights (engine_cache.key) plus everything else that changes the
    plan or its record."""
    return engine_cache.key(getattr(gm, name), {
        "name": name, "inputs": spec.record_inputs, "outputs": spec.record_outputs, "symbols": spec.record_symbols,
        "dtypes": [dtype_name(v.dtype) for v in spec.input_values + spec.output_values],
        "profile": spec.profile, "targets": targets, "backend": backend.name,
        "backend_version": getattr(backend.load(), "__version__", ""), "format_version": list(record.FORMAT_VERSION),
        "trtpack_version": _native.core.__version__, "torch_version": torch.__version__,
        "options": {"min_block_size": min_block_size}})


def compile_region(gm, name, example_inputs, symbols, backend, targets, verify, min_block_size, *,
                   range_constraints, use_cache=True, progress=None) -> RegionEngine:
    """One region → plan + meta, from the engine cache when an entry matches (verify still checks the ONNX model
    against PyTorch on a hit; only the build is skipped)."""
    region = getattr(gm, name)
    spec = region_spec(gm, name, symbols)
    seconds, verification, onnx_model = {}, None, None
    report = progress or (lambda *args: None)

    key = None
    if use_cache:
        start = time.perf_counter()
        key = engine_key(gm, name, spec, backend, targets, min_block_size)
        seconds["cache_key"] = time.perf_counter() - start
        cached = engine_cache.get(key)
        if cached is not None:
            seconds["cache_read"] = time.perf_counter() - start - seconds["cache_key"]
            report(name, "cache hit", seconds["cache_key"] + seconds["cache_read"])
            if verify:
                onnx_model = _onnx(region, range_constraints, seconds, report, name)
                verification = _verify(onnx_model, region, example_inputs, name, seconds, report)
            _register_with_standin(cached.plan, cached.meta, region, range_constraints, spec)
            return RegionEngine(name, cached.plan, cached.meta, cached.targets, seconds, verification, cache_hit=True)
        report(name, "cache miss", seconds["cache_key"])

    onnx_model = _onnx(region, range_constraints, seconds, report, name)
    if (len(onnx_model.input_names), len(onnx_model.output_names)) != (len(spec.input_values),
                                                                        len(spec.output_values)):
        raise UnsupportedGraphError(
            f"trtpack: the ONNX model of {name} has {len(onnx_model.input_names)} inputs and "
            f"{len(onnx_model.output_names)} outputs, the region {len(spec.input_values)} and "
            f"{len(spec.output_values)}")
    if verify:
        verification = _verify(onnx_model, region, example_inputs, name, seconds, report)

    start = time.perf_counter()
    try:
        plan = build.build_plan(onnx_model.data, dict(zip(onnx_model.input_names, spec.profile)), backend, targets)
    except build.RefusedByTensorRT as refused:  # which of the region's nodes, where TensorRT named them
        names = [onnx_export.fx_node_name(onnx_model.data, r.index) for r in refused.refusals]
        refused.fx_nodes = [(n, r.reason) for n, r in zip(names, refused.refusals) if n is not None]
        raise
    seconds["build"] = time.perf_counter() - start
    report(name, "build", seconds["build"])

    def described(names, values, dims):
        return [{"name": n, "dtype": dtype_name(v.dtype), "shape": d} for n, v, d in zip(names, values, dims)]

    meta = build.engine_meta(
        name=name, backend=backend, plan=plan,
        inputs=described(onnx_model.input_names, spec.input_values, spec.record_inputs),
        outputs=described(onnx_model.output_names, spec.output_values, spec.record_outputs),
        symbols=dict(sorted(spec.record_symbols.items())),
        build={"onnx_opset": onnx_model.opset, "optimization_level": plan.optimization_level,
               "min_block_size": min_block_size})
    if key is not None:
        engine_cache.put(key, engine_cache.Entry(plan=plan.data, meta=meta, targets=plan.targets))
    _register_with_standin(plan.data, meta, region, range_constraints, spec)
    return RegionEngine(name, plan.data, meta, plan.targets, seconds, verification)


def _register_with_standin(plan: bytes, meta: str, region, range_constraints, spec: RegionSpec) -> None:
    """The computing TensorRT stand-in (a test double) learns this plan's region; nothing unless it is requested."""
    double = test_double()
    if double is not None:
        record = json.loads(meta)
        inputs, outputs = [t["name"] for t in record["inputs"]], [t["name"] for t in record["outputs"]]
        double.register_region(plan, onnx_export.region_program(region, range_constraints), inputs, outputs,
                                dict(zip(inputs, spec.profile)))


def _onnx(region, range_constraints, seconds, report, name) -> onnx_export.OnnxModel:
    start = time.perf_counter()
    onnx_model = onnx_export.to_onnx(onnx_export.region_program(region, range_constraints))
    seconds["onnx"] = time.perf_counter() - start
    report(name, "onnx", seconds["onnx"])
    return onnx_model


def _verify(onnx_model, region, example_inputs, name, seconds, report) -> onnx_export.Verification:
    start = time.perf_counter()
    verification = onnx_export.verify(onnx_model.data, region, example_inputs, name)
    seconds["verify"] = time.perf_counter() - start
    report(name, "verify", seconds["verify"])
    return verification


def bisect_refusal(gm, name, symbols, backend, targets, *, range_constraints):
    """The region's node TensorRT refuses when it named none (a builder refusal): the first compute node, in graph
    order, whose prefix of the region TensorRT refuses, by bisection (about log2(ops) ONNX exports and builds).
    Returns (node name, TensorRT's reason)."""
    region = getattr(gm, name)
    spec = region_spec(gm, name, symbols)
    profile = dict(zip([n.name for n in region.graph.nodes if n.op == "placeholder"], spec.profile))
    compute = [n for n in region.graph.nodes if support.is_compute_node(n)]
    low, high, reason = 0, len(compute), "refused as a whole"   # the prefix up to compute[high - 1] is refused
    while high - low > 1:
        middle = (low + high) // 2
        refused = _prefix_refused(region, compute[middle - 1], profile, backend, targets, range_constraints)
        if refused is None:
            low = middle
        else:
            high, reason = middle, refused
    return compute[high - 1].name, reason


def _prefix_refused(region, last, profile, backend, targets, range_constraints):
    """None when TensorRT builds the region's nodes up to `last` (graph order), else its reason."""
    graph, env, seen = torch.fx.Graph(), {}, set()
    nodes = list(region.graph.nodes)
    prefix = nodes[:nodes.index(last) + 1]
    prefix += [n for n in nodes[len(prefix):] if n.target is operator.getitem and n.args[0] in prefix]
    for node in prefix:
        env[node] = graph.node_copy(node, lambda arg: env[arg])
        seen.add(node)
    outputs = [env[n] for n in prefix if isinstance(n.meta.get("val"), torch.Tensor) and n.op != "placeholder"
               and n.op != "get_attr" and any(user not in seen for user in n.users)]
    graph.output(tuple(outputs))
    try:
        onnx_model = onnx_export.to_onnx(onnx_export.region_program(torch.fx.GraphModule(region, graph),
                                                                    range_constraints))
        build.build_plan(onnx_model.data, {n: profile[n] for n in onnx_model.input_names if n in profile}, backend,
                         targets)
    except build.RefusedByTensorRT as refused:
        return refused.refusals[0].reason if refused.refusals else str(refused)
    except UnsupportedGraphError as error:  # the prefix is no program of its own: count it as refused
        return str(error).splitlines()[0]
    return None
