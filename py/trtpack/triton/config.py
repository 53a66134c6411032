"""A Triton model's `config.pbtxt` (text format of Triton's `inference.ModelConfig` message) from a model spec.

Pure: no file is read or written here. The spec says what the artifact takes and returns; `batching()` decides
whether Triton may batch requests, and `render()` writes the text. tests/serving parses the text with Triton's own
`model_config_pb2.ModelConfig`, so every field written here is checked against the real schema.
"""
import json
from dataclasses import dataclass, field
from typing import Optional

from trtpack import names
from trtpack.errors import TrtpackError

# torch dtype names (the record's spelling) -> Triton data types. Others (complex, float8...) cannot be served.
DATA_TYPES = {
    "bool": "TYPE_BOOL", "uint8": "TYPE_UINT8", "uint16": "TYPE_UINT16", "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64", "int8": "TYPE_INT8", "int16": "TYPE_INT16", "int32": "TYPE_INT32", "int64": "TYPE_INT64",
    "float16": "TYPE_FP16", "bfloat16": "TYPE_BF16", "float32": "TYPE_FP32", "float64": "TYPE_FP64",
}
KINDS = {"cpu": "KIND_CPU", "gpu": "KIND_GPU"}


@dataclass
class Tensor:
    name: str
    dtype: str                     # torch spelling: "float32"
    shape: list                    # ints, or symbol expressions (str) for dynamic dims


@dataclass
class ModelSpec:
    name: str
    inputs: list                   # [Tensor]
    outputs: list                  # [Tensor]
    symbols: dict                  # {symbol: (min, max or None)}
    artifact: str                  # file name inside the version folder: model.ep | model.pt2 | model.engine
    kind: str                      # "cpu" | "gpu"
    instances: int = 1
    max_batch_size: int = 0        # 0: Triton does not batch; dims are the full shapes
    trust_native_code: bool = False
    parameters: dict = field(default_factory=dict)


def batch_range(inputs: list, outputs: list, symbols: dict) -> Optional[tuple]:
    """(symbol, compiled max) when every input's and output's first dim is one dynamic symbol whose compiled range
    starts at 0 or 1 and is bounded, so that Triton may send any batch from 1 to that max; else None."""
    firsts = {t.shape[0] if t.shape else None for t in inputs + outputs}
    if len(firsts) != 1:
        return None
    symbol = firsts.pop()
    if not isinstance(symbol, str) or symbol not in symbols:
        return None
    low, high = symbols[symbol]
    return (symbol, high) if high is not None and low <= 1 else None


def choose_max_batch_size(spec_inputs: list, spec_outputs: list, symbols: dict, requested: Optional[int]) -> int:
    """The config's max_batch_size: the compiled max of the batch dim (or `requested`, never above it); 0 when the
    artifact has no batch dim Triton can use, or `requested` is 0."""
    found = batch_range(spec_inputs, spec_outputs, symbols)
    if requested is not None and requested < 0:
        raise TrtpackError(f"trtpack: max_batch_size must be >= 0, got {requested}")
    if found is None:
        if requested:
            raise TrtpackError(
                f"trtpack: max_batch_size={requested} needs every input and output to start with one dynamic batch "
                f"dim compiled from 1 (or 0) to a bounded max; this artifact's inputs are {_shapes(spec_inputs)}, "
                f"outputs {_shapes(spec_outputs)}, ranges {names.ranges_text(symbols)}. Compile with dynamic_shapes"
                "={0: torch.export.Dim('batch', min=1, max=N)} on every input, or leave "
                "max_batch_size unset (0: each request carries its whole shape).")
        return 0
    symbol, high = found
    if requested is None:
        return high
    if requested > high:
        raise TrtpackError(f"trtpack: max_batch_size={requested} is above the compiled batch range of {symbol} "
                           f"[{symbols[symbol][0]}, {high}]; use at most {high}, or compile for a larger max.")
    return requested


def dims(tensor: Tensor, batched: bool) -> list:
    """Triton dims: the batch dim left out when Triton batches; every other dynamic dim is -1."""
    shape = tensor.shape[1:] if batched else tensor.shape
    return [d if isinstance(d, int) else -1 for d in shape]


def data_type(tensor: Tensor) -> str:
    if tensor.dtype not in DATA_TYPES:
        raise TrtpackError(f"trtpack: {tensor.name!r} is {tensor.dtype}, which Triton cannot carry; serve a model "
                           f"whose inputs and outputs are one of {', '.join(DATA_TYPES)}.")
    return DATA_TYPES[tensor.dtype]


def render(spec: ModelSpec) -> str:
    """config.pbtxt text. Parameters tell trtpack's Python backend (trtpack.triton.backend) what to load."""
    batched = spec.max_batch_size > 0
    lines = [f"name: {_quote(spec.name)}", 'backend: "python"', f"max_batch_size: {spec.max_batch_size}"]
    for section, tensors in (("input", spec.inputs), ("output", spec.outputs)):
        lines.append(f"{section} [")
        lines.append(",\n".join(f"  {{\n    name: {_quote(t.name)}\n    data_type: {data_type(t)}\n"
                                f"    dims: [ {', '.join(str(d) for d in dims(t, batched))} ]\n  }}" for t in tensors))
        lines.append("]")
    if batched:
        lines.append("dynamic_batching { }")
    lines.append(f"instance_group [\n  {{\n    count: {spec.instances}\n    kind: {KINDS[spec.kind]}\n  }}\n]")
    parameters = {"trtpack_artifact": spec.artifact,
                  "trtpack_trust_native_code": "true" if spec.trust_native_code else "false",
                  "trtpack_ranges": json.dumps({k: list(v) for k, v in spec.symbols.items()}, sort_keys=True),
                  **spec.parameters}
    lines.append("parameters [")
    lines.append(",\n".join(f"  {{\n    key: {_quote(k)}\n    value: {{ string_value: {_quote(v)} }}\n  }}"
                            for k, v in parameters.items()))
    lines.append("]")
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # JSON's \\ \" \n escapes are protobuf text format's too


def _shapes(tensors: list) -> str:
    return ", ".join(f"{t.name}{list(t.shape)}" for t in tensors) or "none"
