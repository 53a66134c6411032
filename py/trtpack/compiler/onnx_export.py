"""Stage 3: one region → a standalone ExportedProgram (built from the region's graph, no second trace) → ONNX bytes
(the dynamo exporter's translation, no second decomposition); optional numeric check of those exact bytes with
onnxruntime against the PyTorch region."""
import contextlib
import functools
import io
import logging
import operator
import re
from dataclasses import dataclass
from typing import Optional

import torch
from torch._ops import OpOverload
from torch.export.exported_program import ModuleCallEntry, ModuleCallSignature
from torch.export.graph_signature import (ExportGraphSignature, InputKind, InputSpec, OutputKind, OutputSpec,
                                          TensorArgument)
from torch.utils import _pytree as pytree

from trtpack.compiler import identifiers
from trtpack.errors import UnsupportedGraphError

# Largest allowed |onnxruntime - torch| is atol + rtol * |torch|, per output dtype.
VERIFY_TOLERANCE = {
    torch.float32: (1e-4, 1e-3),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (5e-2, 5e-2),
}


def region_program(region: torch.fx.GraphModule, range_constraints) -> torch.export.ExportedProgram:
    """The region as an ExportedProgram of its own, built from its graph without tracing again: its weights (get_attr
    nodes) become lifted parameters/buffers/constants, its inputs user inputs. The nodes keep the fake values
    (symbolic shapes) of the one export of the whole program."""
    graph, env, specs, state, constants = torch.fx.Graph(), {}, [], {}, {}
    buffers = dict(region.named_buffers())
    nodes = list(region.graph.nodes)
    lifted_targets = {}  # one input per weight: partitioning gives each user its own get_attr of a shared weight
    for node in (n for n in nodes if n.op == "get_attr"):
        if node.target in lifted_targets:
            env[node] = lifted_targets[node.target]
            continue
        value = operator.attrgetter(node.target)(region)
        lifted = identifiers.placeholder(graph, "w_" + node.target.replace(".", "_"))
        lifted.meta = dict(node.meta)
        if isinstance(value, torch.nn.Parameter):
            kind, persistent = InputKind.PARAMETER, None
            state[node.target] = value
        elif node.target in buffers:
            kind, persistent = InputKind.BUFFER, True
            state[node.target] = value
        else:
            kind, persistent = InputKind.CONSTANT_TENSOR, None
            constants[node.target] = value
        specs.append(InputSpec(kind, TensorArgument(lifted.name), node.target, persistent=persistent))
        env[node] = lifted_targets[node.target] = lifted
    for node in (n for n in nodes if n.op == "placeholder"):
        env[node] = identifiers.placeholder(graph, node.name)
        env[node].meta = dict(node.meta)
        specs.append(InputSpec(InputKind.USER_INPUT, TensorArgument(env[node].name), None))
    for node in nodes:
        if node.op in ("get_attr", "placeholder"):
            continue
        if node.op == "output":
            results = node.args[0] if isinstance(node.args[0], (tuple, list)) else [node.args[0]]
            graph.output(tuple(env[r] for r in results)).meta = dict(node.meta)
            outputs = [OutputSpec(OutputKind.USER_OUTPUT, TensorArgument(env[r].name), None) for r in results]
            continue
        env[node] = graph.node_copy(node, lambda arg: env[arg])
        _squeeze_one_dim(env[node])
    root = torch.fx.GraphModule(torch.nn.Module(), graph)
    user_inputs = [TensorArgument(spec.arg.name) for spec in specs if spec.kind == InputKind.USER_INPUT]
    _, in_spec = pytree.tree_flatten((tuple(user_inputs), {}))
    _, out_spec = pytree.tree_flatten(tuple(outputs))
    call_graph = [ModuleCallEntry("", ModuleCallSignature(inputs=user_inputs, outputs=[o.arg for o in outputs],
                                                          in_spec=in_spec, out_spec=out_spec))]
    try:
        return torch.export.ExportedProgram(
            root=root, graph=graph, graph_signature=ExportGraphSignature(specs, outputs), state_dict=state,
            range_constraints=dict(range_constraints), module_call_graph=call_graph, constants=constants)
    except Exception as error:  # the verifier names what torch refuses in the graph
        raise UnsupportedGraphError(f"trtpack: the region is not a valid program on its own: {error}") from error


def _squeeze_one_dim(node: torch.fx.Node) -> None:
    """squeeze.dims(x, [d]) → squeeze.dim(x, d): the same op, but one torchlib translates directly (squeeze.dims
    alone would send the whole region through the exporter's decomposition, seconds for a BERT)."""
    if node.target is torch.ops.aten.squeeze.dims and len(node.args) == 2 and len(node.args[1]) == 1:
        node.target = torch.ops.aten.squeeze.dim
        node.args = (node.args[0], node.args[1][0])


class NotTranslated(UnsupportedGraphError):
    """The ONNX exporter (torchlib) could not translate one node of the region: `fx_nodes` = [(its name in the
    region's graph, the exporter's own reason)], as build.RefusedByTensorRT names the nodes TensorRT refused, so the
    compiler keeps that node in PyTorch and converts the rest."""
    stage = "onnx"

    def __init__(self, message: str, node: str, reason: str):
        super().__init__(message)
        self.fx_nodes = [(node, reason)]


def _chain(error: BaseException):
    """`error`, then the error it was raised from (or during), and so on: the exporter wraps its failures."""
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def _untranslated_node(error: BaseException, program) -> Optional[str]:
    """The node the exporter names in "Error when translating node %name : ...", if the program has it."""
    names = {node.name for node in program.graph.nodes if node.op == "call_function"}
    for cause in _chain(error):
        found = re.search(r"Error when translating node %(\S+) :", str(cause))
        if found and found.group(1) in names:
            return found.group(1)
    return None


def _innermost_reason(error: BaseException) -> str:
    """The first line of the innermost error in the chain that says anything (torchlib's own assertion, usually)."""
    said = [cause for cause in _chain(error) if str(cause).strip()]
    return f"{type(said[-1]).__name__}: {str(said[-1]).strip().splitlines()[0][:300]}" if said else ""


@dataclass
class OnnxModel:
    data: bytes           # exactly what TensorRT parses and onnxruntime verifies
    input_names: list
    output_names: list
    opset: int


@functools.lru_cache(maxsize=None)
def onnx_registry():
    """torch.onnx's op registry (torchlib); building it takes seconds, and torch.onnx.export builds it per call."""
    from torch.onnx._internal.exporter import _registration

    return _registration.ONNXRegistry.from_torchlib()


def to_onnx(program: torch.export.ExportedProgram) -> OnnxModel:
    """`program` (a region: functional, nothing written in place) in ONNX; where the exporter's own pass over the
    graph cannot view a tensor the way the program did (its fake strides, reasoned about for every size, can differ
    from the export's), the views are exported again as reshapes, which ONNX does not tell apart."""
    try:
        return _to_onnx(program)
    except UnsupportedGraphError as error:
        views = [n for n in program.graph.nodes if n.target is torch.ops.aten.view.default]
        if not views or not _failed_in_a_view(error):
            raise
        try:
            for node in views:
                node.target = torch.ops.aten.reshape.default
            program.graph_module.recompile()
            return _to_onnx(program)
        except UnsupportedGraphError:
            raise error from None
        finally:
            for node in views:
                node.target = torch.ops.aten.view.default
            program.graph_module.recompile()


def _failed_in_a_view(error: BaseException) -> bool:
    return any("target=torch.ops.aten.view.default]" in str(cause) for cause in _chain(error))


def _to_onnx(program: torch.export.ExportedProgram) -> OnnxModel:
    """A program already decomposed for ONNX (as trtpack's regions are, decomposition.decompose) → ONNX, names and opset read from the exporter's
    model. Uses the exporter's translation step directly: torch.onnx.export would decompose the program again."""
    quiet = io.StringIO()
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(quiet):
            onnx_program = _translate(program)
            onnx_program.optimize()  # what torch.onnx.export(optimize=True) does
    except UnsupportedGraphError:
        raise
    except Exception as error:  # the exporter wraps failures in several types
        node = _untranslated_node(error, program)
        if node is not None:
            reason = _innermost_reason(error)
            raise NotTranslated(f"trtpack: the ONNX exporter could not translate node {node!r} of the region: {reason}",
                                node, reason) from error
        raise UnsupportedGraphError(f"trtpack: ONNX export of the region failed: {error}") from error
    model = onnx_program.model
    opset = model.opset_imports.get("", model.opset_imports.get("ai.onnx", 0))
    return OnnxModel(data=onnx_program.model_proto.SerializeToString(),
                     input_names=[v.name for v in model.graph.inputs],
                     output_names=[v.name for v in model.graph.outputs], opset=int(opset))


def _translate(program):
    try:
        from torch.onnx._internal.exporter import _core, _fx_passes
    except ImportError:  # torch moved its exporter internals: take the public path (which decomposes again)
        return torch.onnx.export(program, (), dynamo=True, verbose=False, report=False, optimize=False)
    registry = onnx_registry()
    targets = {n.target for n in program.graph.nodes if n.op == "call_function" and isinstance(n.target, OpOverload)}
    if all(registry.is_registered(target) for target in targets):
        with torch.fx.experimental._config.patch(backed_size_oblivious=True):  # as the exporter's own preparation
            _fx_passes.insert_type_promotion_nodes(program.graph_module)
            program._graph_module = _fx_passes.remove_assertion_nodes(program.graph_module)
    else:  # an op torchlib has no function for (e.g. squeeze.dims): the exporter decomposes it further
        program = _core._prepare_exported_program_for_export(program, registry=registry)
    return _core._exported_program_to_onnx_program(program, registry=registry)


class VerificationError(UnsupportedGraphError):
    """The ONNX model handed to TensorRT computes something else than the PyTorch region."""


@dataclass
class Verification:
    max_abs_error: float
    max_rel_error: float


def verify(onnx_bytes: bytes, region: torch.nn.Module, example_inputs, name: str) -> Verification:
    """Runs `onnx_bytes` with onnxruntime on the example inputs and compares with the PyTorch region."""
    import onnxruntime

    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    feeds = {i.name: t.detach().cpu().numpy() for i, t in zip(session.get_inputs(), example_inputs)}
    got = session.run(None, feeds)
    with torch.no_grad():
        expected = region(*example_inputs)
    expected = list(expected) if isinstance(expected, (tuple, list)) else [expected]
    if len(got) != len(expected):
        raise VerificationError(f"trtpack: verify {name}: ONNX gives {len(got)} outputs, PyTorch {len(expected)}")
    worst_abs = worst_rel = 0.0
    for index, (actual, reference) in enumerate(zip(got, expected)):
        actual = torch.from_numpy(actual).to(reference.dtype)
        if actual.shape != reference.shape:
            raise VerificationError(f"trtpack: verify {name}: output {index} has shape {tuple(actual.shape)} "
                                        f"in ONNX but {tuple(reference.shape)} in PyTorch")
        if not reference.is_floating_point():
            if not torch.equal(actual, reference):
                raise VerificationError(f"trtpack: verify {name}: integer output {index} differs from PyTorch")
            continue
        atol, rtol = VERIFY_TOLERANCE.get(reference.dtype, (1e-4, 1e-3))
        difference = (actual.double() - reference.double()).abs()
        worst_abs = max(worst_abs, float(difference.max()) if difference.numel() else 0.0)
        relative = difference / reference.double().abs().clamp_min(1e-12)
        worst_rel = max(worst_rel, float(relative.max()) if relative.numel() else 0.0)
        allowed = atol + rtol * reference.double().abs()
        if bool((difference > allowed).any()):
            raise VerificationError(
                f"trtpack: verify {name}: the ONNX model for TensorRT differs from PyTorch on output {index}: max abs "
                f"error {float(difference.max()):.3g} > atol {atol} + rtol {rtol}*|x|. Compile without this region "
                "(raise min_block_size) or report the op mix in the region.")
    return Verification(worst_abs, worst_rel)


def fx_node_name(onnx_bytes: bytes, index: int):
    """The FX node (of the region) the exporter translated into the ONNX graph's node `index`, from the metadata the
    exporter keeps on each ONNX node (`pkg.torch.onnx.fx_node`: "%name : ..."); None when it says none."""
    import onnx

    nodes = onnx.load_from_string(onnx_bytes).graph.node
    if index is None or not 0 <= index < len(nodes):
        return None
    for prop in nodes[index].metadata_props:
        if prop.key == "pkg.torch.onnx.fx_node" and prop.value.startswith("%"):
            return prop.value[1:].split(" ", 1)[0]
    return None
