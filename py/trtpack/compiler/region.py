"""One region through stages 3-4: export alone → ONNX → (verify) → plan + meta, with timings."""
import time
from dataclasses import dataclass, field
from typing import Optional

import onnx
import torch

from trtpack.compiler import build, convert, symbolic
from trtpack.errors import UnsupportedGraphError


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


def _check_outputs_derivable(input_dims, output_dims):
    bare = {d for dims in input_dims for d in dims if isinstance(d, str) and d.isidentifier()}
    for dims in output_dims:
        for dim in dims:
            missing = symbolic.symbol_names(dim) - bare if isinstance(dim, str) else set()
            if missing:
                raise UnsupportedGraphError(
                    f"trtpack: output size {dim} uses {', '.join(sorted(missing))}, which no input dim of the region "
                    "carries by itself, so the runtime could not compute the output shape")


def compile_region(gm, name, example_inputs, symbols, backend, targets, verify, min_block_size) -> RegionEngine:
    region = getattr(gm, name)
    input_values, output_values = region_io(gm, name)
    input_dims = [[symbols.dim(d) for d in v.shape] for v in input_values]
    output_dims = [[symbols.dim(d) for d in v.shape] for v in output_values]
    _check_outputs_derivable(input_dims, output_dims)
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
    plan = build.build_plan(onnx_bytes, build.profile_shapes(input_names, input_dims, symbols), backend, targets)
    seconds["build"] = time.perf_counter() - start

    def described(names, values, dims):
        return [{"name": n, "dtype": build.dtype_name(v.dtype), "shape": d} for n, v, d in zip(names, values, dims)]

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    meta = build.engine_meta(
        name=name, backend=backend, plan=plan,
        inputs=described(input_names, input_values, input_dims),
        outputs=described(output_names, output_values, output_dims),
        symbols=symbols.symbols_of([d for dims in input_dims + output_dims for d in dims]),
        build={"onnx_opset": int(opset), "optimization_level": plan.optimization_level,
               "min_block_size": min_block_size})
    return RegionEngine(name, plan.data, meta, plan.targets, seconds, verification)
