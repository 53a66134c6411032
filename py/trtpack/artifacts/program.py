"""What every format shares: the engines inside a program, the one type `load` returns, and the program `save` writes."""
import copy
import functools
import warnings
from dataclasses import dataclass
from typing import Optional

import torch
from torch.utils import _pytree as pytree

from trtpack import _native, error_translation, machine, names, record
from trtpack.errors import FormatError, TrtpackError
from trtpack.runtime import selection, short_path

EXECUTE = torch.ops.trtpack.execute_engine.default
USABLE = torch.ops.trtpack.engine_usable.default


@dataclass
class Engine:
    name: str
    meta: str                      # the record's JSON, as carried by the op
    plan: Optional[torch.Tensor]   # 1-D uint8; None where the format keeps plans out of reach (.pt2)
    fallback: bool                 # guarded by engine_usable + a PyTorch reference branch

    @functools.cached_property
    def record(self) -> dict:
        return record.decode_meta(self.meta)


class LoadedProgram(torch.nn.Module):
    """What trtpack.load returns for every format: call it with the compiled model's positional and keyword inputs.

    `.format` is "exported_program", "aot_inductor" or "engine"; `.engines` lists each engine (name, record, plan where
    the format holds it); `.input_specs` the inputs as record-style {name, dtype, shape} (None where the artifact does
    not say); `.symbols` the dynamic dims' {name: (min, max)}. Engine refusals and shapes outside the compiled ranges
    raise IncompatibleEngineError.
    """

    def __init__(self, fmt: str, runner, engines: list, symbols: dict, input_specs: Optional[list], exported=None):
        super().__init__()
        self.format = fmt
        self.engines = engines
        self.runner = runner            # an nn.Module (.ep, .engine: moves with .to()) or AOTInductor's runner (.pt2)
        self.symbols = symbols
        self.input_specs = input_specs
        self.program = exported         # the ExportedProgram of an .ep, else None
        self._trtpack_program = exported  # save() writes it again as is
        self.ranges = names.ranges_text(symbols)
        self.executor = None            # load(executor=...): the TensorRT executor this program runs with
        self.short_path = None          # runtime.short_path's way for plain calls, where the format has one (.ep)

    def forward(self, *args, **kwargs):
        if self.executor is not None and self.executor != selection.active():
            selection.use(self.executor)  # another load chose the other one since
        if self.short_path is not None:
            result = error_translation.call(self.short_path, args, kwargs, self.ranges)
            if result is not short_path.FULL_CALL:
                return result
        return error_translation.call(self.runner, args, kwargs, self.ranges)


def _graph_tensors(ep: torch.export.ExportedProgram) -> dict:
    """placeholder name -> tensor, for lifted parameters, buffers and constants."""
    sig = ep.graph_signature
    found = {}
    for name, target in {**sig.inputs_to_parameters, **sig.inputs_to_buffers}.items():
        found[name] = ep.state_dict.get(target, ep.constants.get(target))
    for name, target in sig.inputs_to_lifted_tensor_constants.items():
        found[name] = ep.constants[target]
    return found


def engines(program) -> list:
    """Every engine of an ExportedProgram or GraphModule, in graph order, each once."""
    if isinstance(program, torch.export.ExportedProgram):
        graph, tensors = program.graph, _graph_tensors(program)
    else:
        graph = program.graph
        tensors = {n.name: _get_attr(program, n.target) for n in graph.nodes if n.op == "get_attr"}
    by_meta = {}
    for node in graph.nodes:
        if node.op != "call_function" or node.target not in (EXECUTE, USABLE):
            continue
        _, plan_node, meta = node.args
        if meta not in by_meta:
            plan = tensors.get(plan_node.name)
            if plan is None:
                raise FormatError(f"trtpack: engine plan argument {plan_node.name!r} is not a stored tensor; "
                                  "the program was not produced by trtpack.compile. Recompile it.")
            by_meta[meta] = Engine(record.decode_meta(meta)["name"], meta, plan, fallback=False)
        if node.target is USABLE:
            by_meta[meta].fallback = True
    return list(by_meta.values())


def _get_attr(module, target: str):
    for part in target.split("."):
        module = getattr(module, part)
    return module


def validate(program, verify_hash: bool = False, path: Optional[str] = None) -> list:
    """Checks every engine record against its plan (and, with `verify_hash`, the plan's digest: XXH3-128 where the
    record has plan_xxh3, format 1.1 on, else SHA-256); returns the engines. Errors name the engine, and the file
    `path` it was read from."""
    where = f"trtpack: {path!r}: " if path else "trtpack: "
    found = engines(program)
    for engine in found:
        if not engine.plan.is_contiguous() or engine.plan.dim() != 1:
            raise FormatError(f"{where}engine {engine.name!r} has a plan tensor that is not a contiguous 1-D byte "
                              "buffer; re-save the program with trtpack.save.")
        try:
            record.check_plan(engine.meta, engine.plan, verify_hash=verify_hash)
        except FormatError as e:
            error = FormatError(f"{where}engine {engine.name!r}: {e}" +
                                ("; the plan bytes changed after it was saved: re-save or re-copy the file."
                                 if getattr(e, "field", None) in ("plan_sha256", "plan_xxh3") else ""))
            error.field = getattr(e, "field", None)
            raise error from None
    return found


def program_to_save(module, arg_inputs=None, kwarg_inputs=None, dynamic_shapes=None) -> torch.export.ExportedProgram:
    """The ExportedProgram to write: the one compile() (or load) recorded, as compiled, unless new dynamic_shapes are
    given; then the module is exported again with them, and any dim they narrow is named in a warning."""
    if isinstance(module, torch.export.ExportedProgram):
        return module
    recorded = getattr(module, "_trtpack_program", None)
    if recorded is not None and dynamic_shapes is None:
        return recorded  # example inputs alone are no reason to re-export: the compiled ranges stay
    if isinstance(module, LoadedProgram):
        held = {"aot_inductor": "an AOTInductor package (.pt2) holds compiled code, not a program",
                "engine": "an .engine file holds one plan and its record, not a program"}.get(module.format, "")
        raise TrtpackError(f"trtpack: this program was loaded from a {module.format} artifact, which cannot be "
                           f"exported again ({held or 'it holds no program'}); save the .ep it came from, or compile "
                           "the model again.")
    if arg_inputs is None and kwarg_inputs is None:
        raise TrtpackError("trtpack: save() needs arg_inputs (and dynamic_shapes) to export a module that "
                           "trtpack.compile did not return. Pass the example inputs you compiled with.")
    from trtpack.compiler.export import export_program
    program = export_program(module, tuple(arg_inputs or ()), dict(kwarg_inputs or {}), dynamic_shapes=dynamic_shapes,
                             decompose=False)
    if recorded is not None:
        _warn_narrowed(input_dim_ranges(recorded), input_dim_ranges(program))
    return program


def with_example_inputs(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """`program`, or a shallow copy of it with example inputs where it has none (a program read back from an .ep:
    the program cache's, a LoadedProgram's), which AOTInductor requires. They are rebuilt from the user inputs'
    recorded values: dtype and device, each dim at its size hint (the compile's example size, the engines' profile
    opt) or else its range's lower end, zeros (valid as indices too); non-tensor inputs as recorded."""
    if program.example_inputs is not None:
        return program
    ranges = program.range_constraints
    flat = []
    for node in user_input_nodes(program):
        value = node.meta.get("val")
        if isinstance(value, torch.Tensor):
            flat.append(torch.zeros([_example_size(d, ranges) for d in value.shape], dtype=value.dtype,
                                    device=value.device))
        elif isinstance(value, torch.SymInt):
            flat.append(_example_size(value, ranges))
        else:
            flat.append(value)
    in_spec = program.call_spec.in_spec
    if in_spec is None or in_spec.num_leaves != len(flat):
        raise TrtpackError(f"trtpack: cannot rebuild example inputs for this program ({len(flat)} recorded inputs, "
                           "its input structure says otherwise); save it as .ep, or compile the model again and save "
                           "that.")
    args, kwargs = pytree.tree_unflatten(flat, in_spec)
    program = copy.copy(program)
    program._example_inputs = (tuple(args), dict(kwargs))
    return program


def _example_size(size, ranges) -> int:
    if not isinstance(size, torch.SymInt):
        return int(size)
    node = size.node
    try:
        if node.has_hint():
            return int(node.hint)
    except Exception:  # noqa: BLE001  (torch versions differ in how a hint is read; the range below always works)
        pass
    expr = node.expr
    values = {}
    for symbol in expr.free_symbols:
        bounds = ranges.get(symbol)
        values[symbol] = int(bounds.lower) if bounds is not None and bounds.lower.is_finite else 2
    return int(expr.subs(values))


def input_dim_ranges(program: torch.export.ExportedProgram) -> dict:
    """(user input index, dim) -> (min, max) of every dynamic dim; max None when unbounded."""
    ranges = {}
    for index, node in enumerate(user_input_nodes(program)):
        value = node.meta.get("val")
        for dim, size in enumerate(getattr(value, "shape", ())):
            if isinstance(size, torch.SymInt):
                bounds = program.range_constraints.get(size.node.expr)
                if bounds is not None:
                    ranges[(index, dim)] = (int(bounds.lower), int(bounds.upper) if bounds.upper.is_finite else None)
    return ranges


def _warn_narrowed(compiled: dict, new: dict) -> None:
    inf = float("inf")
    narrowed = [f"input {i} dim {d}: [{lo}, {hi}] -> {list(new.get((i, d), ('static', 'static')))}"
                for (i, d), (lo, hi) in compiled.items()
                if (i, d) not in new or new[(i, d)][0] > lo or (new[(i, d)][1] or inf) < (hi or inf)]
    if narrowed:
        warnings.warn("trtpack: the dynamic_shapes given to save() narrow what was compiled (" + "; ".join(narrowed) +
                      "). The saved program refuses sizes outside the new ranges; pass the compiled ranges to keep "
                      "them.", stacklevel=3)


def user_input_nodes(program: torch.export.ExportedProgram) -> list:
    user = set(program.graph_signature.user_inputs)
    return [n for n in program.graph.nodes if n.op == "placeholder" and n.name in user]


def tensor_spec(name: str, value) -> dict:
    """A record-style {name, dtype, shape} of a graph value (dims: int, or the symbol's expression); dtype and shape
    None for a value that is not a tensor."""
    if not isinstance(value, torch.Tensor):
        return {"name": name, "dtype": None, "shape": None}
    return {"name": name, "dtype": names.dtype_name(value.dtype),
            "shape": [int(d) if isinstance(d, int) else str(d) for d in value.shape]}


def describe_program(program: torch.export.ExportedProgram) -> dict:
    """The manifest's "program" part: user inputs and outputs (record-style specs; an output named by the model's
    output structure where it has names, e.g. "logits", else by its graph node), the dynamic ranges, and the names
    the user gave the dims where torch recorded them."""
    signature = program.graph_signature
    output_node = next(n for n in program.graph.nodes if n.op == "output")
    values = {n.name: n.meta.get("val") for n in output_node.args[0] if isinstance(n, torch.fx.Node)}
    outputs = [spec.arg.name for spec in signature.output_specs if spec.kind.name == "USER_OUTPUT"]
    named = structure_names(program)
    shown = named if named is not None and len(named) == len(outputs) else outputs
    described = {"inputs": [tensor_spec(n.name, n.meta.get("val")) for n in user_input_nodes(program)],
                 "outputs": [tensor_spec(name, values.get(node)) for name, node in zip(shown, outputs)],
                 "symbols": {name: list(bounds) for name, bounds in names.program_ranges(program).items()}}
    given = {symbol: name for symbol, name in names.dim_names(program).items() if symbol in described["symbols"]}
    if given:
        described["dim_names"] = given
    return described


def structure_names(program: torch.export.ExportedProgram):
    """A name per flattened user output from the program's output structure (dict keys, dataclass/ModelOutput and
    named tuple fields, joined with "."), read from the TreeSpec itself; None when the outputs are only positions
    (a tensor, a tuple) or the names are not unique."""
    out_spec = program.call_spec.out_spec
    if out_spec is None:
        return []
    paths = list(_leaf_paths(out_spec, ()))
    found = [".".join(str(part) for part in path) for path in paths]
    if all(isinstance(part, int) for path in paths for part in path) or len(set(found)) != len(found) \
            or not all(found):
        return None
    return found


def _leaf_paths(spec, path):
    if spec.is_leaf():
        yield path
        return
    children = spec.children_specs
    keys = spec.context
    if isinstance(keys, (list, tuple)) and len(keys) == len(children) and all(isinstance(k, str) for k in keys):
        parts = list(keys)  # dict keys, ModelOutput / dataclass fields
    elif isinstance(getattr(spec, "type", None), type) and hasattr(spec.type, "_fields"):
        parts = list(spec.type._fields)  # a namedtuple
    else:
        parts = list(range(len(children)))
    for part, child in zip(parts, children):
        yield from _leaf_paths(child, path + (part,))


def warn_version_skew(found: list) -> None:
    __version__ = _native.core.__version__
    built = {e.record["trtpack_version"] for e in found}
    skewed = sorted(v for v in built if v.split(".")[:2] != __version__.split(".")[:2])
    if skewed:
        warnings.warn(f"trtpack: this program was saved by trtpack {', '.join(skewed)}; this is trtpack "
                      f"{__version__}. It loads, but re-save it with this version to silence this warning.",
                      stacklevel=4)


def warn_unusable(found: list, device) -> None:
    here = machine.describe(device)
    for engine in found:
        verdict = record.compatibility(engine.record, here)
        if not verdict["usable"]:
            then = "its PyTorch fallback will run" if engine.fallback else "calling it raises IncompatibleEngineError"
            warnings.warn(f"trtpack: engine {engine.name!r} cannot run here ({verdict['reason']}); {then}.",
                          stacklevel=4)
