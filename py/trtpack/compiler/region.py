"""One region through stages 3-4: export alone → ONNX → (verify) → plan + meta, with timings."""
import time
from dataclasses import dataclass, field
from typing import Optional

import onnx
import sympy
import torch

from trtpack.compiler import build, convert, symbolic
from trtpack.errors import UnsupportedGraphError
from trtpack.names import dtype_name


@dataclass
class RegionEngine:
    name: str
    plan: bytes
    meta: str
    targets: list
    seconds: dict = field(default_factory=dict)       # export / onnx / verify / build
    verification: Optional[convert.Verification] = None


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


def compile_region(gm, name, example_inputs, symbols, backend, targets, verify, min_block_size) -> RegionEngine:
    region = getattr(gm, name)
    input_values, output_values = region_io(gm, name)
    # Profiles and the region's own export use the program's symbols; the record may use region-local ones.
    input_dims = [[symbols.dim(d) for d in v.shape] for v in input_values]
    record_inputs, record_outputs, record_symbols = record_dims(input_values, output_values, symbols)
    seconds = {}

    start = time.perf_counter()
    program = convert.region_program(region, example_inputs, input_dims, symbols)
    seconds["export"] = time.perf_counter() - start

    start = time.perf_counter()
    onnx_bytes = convert.to_onnx(program)
    model = onnx.load_model_from_string(onnx_bytes)
    seconds["onnx"] = time.perf_counter() - start
    input_names = [i.name for i in model.graph.input]
    output_names = [o.name for o in model.graph.output]
    if len(input_names) != len(input_values) or len(output_names) != len(output_values):
        raise UnsupportedGraphError(f"trtpack: the ONNX model of {name} has {len(input_names)} inputs and "
                                    f"{len(output_names)} outputs, the region {len(input_values)} and {len(output_values)}")

    verification = None
    if verify:
        start = time.perf_counter()
        verification = convert.verify(onnx_bytes, region, example_inputs, name)
        seconds["verify"] = time.perf_counter() - start

    start = time.perf_counter()
    profile = build.profile_shapes(input_names, input_dims, symbols)
    plan = build.build_plan(onnx_bytes, profile, backend, targets)
    from trtpack.runtime import standin  # the test double's registry; no-op unless TRTPACK_TENSORRT_STANDIN=1

    standin.register_region(plan.data, program, input_names, output_names, profile)
    seconds["build"] = time.perf_counter() - start

    def described(names, values, dims):
        return [{"name": n, "dtype": dtype_name(v.dtype), "shape": d} for n, v, d in zip(names, values, dims)]

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    meta = build.engine_meta(
        name=name, backend=backend, plan=plan,
        inputs=described(input_names, input_values, record_inputs),
        outputs=described(output_names, output_values, record_outputs),
        symbols=dict(sorted(record_symbols.items())),
        build={"onnx_opset": int(opset), "optimization_level": plan.optimization_level,
               "min_block_size": min_block_size})
    return RegionEngine(name, plan.data, meta, plan.targets, seconds, verification)
