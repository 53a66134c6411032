"""Measures which ATen ops trtpack can hand to TensorRT, and writes py/trtpack/compiler/support_matrix.json.

For the first SAMPLES_PER_OP OpInfo samples (torch.testing) of every op named after an op a decomposed program can hold
(a core ATen op, or one the ONNX exporter translates whole: trtpack.compiler.decomposition) or in torch.nn.functional,
and a few model-shaped extra cases for ops no OpInfo sample reaches, a small program is:
  1. exported with torch.export (static shapes) and decomposed exactly as trtpack.compile does;
  2. converted by the dynamo ONNX exporter (trtpack.compiler.onnx_export.to_onnx: the bytes TensorRT would get);
  3. run by onnxruntime and compared with PyTorch (onnx_export.verify's tolerances);
  4. parsed and built by TensorRT-RTX with a static profile; then exported again with dim 0 dynamic (of the first
     input and of every input of the same size there: a batch) and built with a profile over it;
  5. again in float16 when float32 passed (and the op has a float16 kernel in PyTorch).
Each sample is tried with every tensor an input ("inputs"); where that fails, again with only the first tensor an
input and the others constants of the module ("weights", as a model's filters are). An op is supported when some
program containing it passed 1-4 (static) in float32; its row lists the dtypes, shapes and forms that passed. An op
seen only in failing programs keeps the first failure (stage and message) of its smallest program.

Argument patterns (trtpack.compiler.support.pattern: op, tensor dtypes and ranks, non-numeric arguments): every
program's nodes are keyed by pattern, and a program is recorded while it holds a pattern not yet seen passing. A
failing program blames the pattern of the node TensorRT's parser named, else its one pattern that passed nowhere in
the whole run; with two or more such patterns (or none) it blames none, since the matrix cannot tell which one failed.
A supported op's row lists its blamed patterns (`failing_patterns`, with stage and message): the partitioner keeps
only nodes of those patterns in PyTorch.

Run: ./bazelw run //tools:support_matrix   (about 10 minutes on 2 cores; --limit N for a quick look)
The staleness test (tests/compiler/test_support_matrix_fresh.py) compares the recorded versions and hashes.
"""
import argparse
import contextlib
import hashlib
import io
import logging
import os
import json
import sys
import time
import warnings

import torch
from torch.utils import _pytree as pytree

GENERATED = os.path.join("py", "trtpack", "compiler", "support_matrix.json")
SKIPPED_PREFIXES = ("linalg.", "fft.", "special.", "sparse.", "_refs.", "signal.", "masked.", "nn.functional.ctc")
SAMPLES_PER_OP = 3
FAILED_CASES_ENOUGH = 3
VERSIONED = ("torch", "onnx", "onnxscript", "onnxruntime", "tensorrt_rtx")


def installed_versions() -> dict:
    from importlib import metadata
    names = {"tensorrt_rtx": "tensorrt_rtx_cu12"}
    return {m: metadata.version(names.get(m, m)).split("+")[0] for m in VERSIONED}


def core_ops() -> list:
    """Every overload PyTorch tags as core ATen, by name (aten.add.Tensor)."""
    found = set()
    for schema in torch._C._jit_get_all_schemas():
        if not schema.name.startswith("aten::"):
            continue
        packet = getattr(torch.ops.aten, schema.name[len("aten::"):], None)
        overload = getattr(packet, schema.overload_name or "default", None) if packet is not None else None
        if overload is not None and torch.Tag.core in overload.tags:
            found.add(f"aten.{overload.__name__}")
    return sorted(found)


def kept_whole_ops() -> list:
    """The ATen overloads trtpack's decomposition leaves whole because the ONNX exporter translates them (by name)."""
    from torch.onnx._internal.exporter import _decomp
    from trtpack.compiler.onnx_export import onnx_registry
    return sorted(f"aten.{op.__name__}" for op in _decomp.get_onnx_implemented_overloads(onnx_registry())
                  if isinstance(op, torch._ops.OpOverload) and op.namespace == "aten")


def decomposed_ops() -> list:
    """Every op a program decomposed by trtpack can hold: core ATen and the ops kept whole."""
    return sorted(set(core_ops()) | set(kept_whole_ops()))


def generator_hash() -> str:
    with open(__file__, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def op_list_hash(ops) -> str:
    return hashlib.sha256("\n".join(ops).encode()).hexdigest()[:16]


class _Call(torch.nn.Module):
    """op(*args, **kwargs) over a sample's pytree. Form "inputs": every tensor leaf is a positional input. Form
    "weights": only the first tensor is an input; the others are constants of the module (as a model's weights are),
    which is how TensorRT sees, e.g., a convolution's filter."""

    def __init__(self, op, tree, form="inputs"):
        super().__init__()
        self.op, self.tree, self.form = op, tree, form
        tensors = [x for x in tree[0] if isinstance(x, torch.Tensor)]
        if form == "weights":
            for i, t in enumerate(tensors[1:]):
                self.register_buffer(f"w{i}", t.clone())

    def forward(self, *tensors):
        leaves, spec = self.tree
        if self.form == "weights":
            tensors = tensors + tuple(getattr(self, f"w{i}") for i in range(len(dict(self.named_buffers()))))
        it = iter(tensors)
        args, kwargs = pytree.tree_unflatten([next(it) if isinstance(x, torch.Tensor) else x for x in leaves], spec)
        return self.op(*args, **kwargs)


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:240]}"


def _compute_ops(program) -> list:
    from trtpack.compiler import support
    from trtpack.compiler.partition import op_name
    return sorted({op_name(n) for n in program.graph.nodes if support.is_compute_node(n)})


def _patterns(program) -> dict:
    """{node name: [op name, argument pattern]} of the program's compute nodes."""
    from trtpack.compiler import support
    from trtpack.compiler.partition import op_name
    return {n.name: [op_name(n), support.pattern(n)] for n in program.graph.nodes if support.is_compute_node(n)}


class _ParserRefused(RuntimeError):
    """TensorRT's parser refused the model; `indices` are the ONNX nodes it named."""

    def __init__(self, message, indices):
        super().__init__(message)
        self.indices = indices


def _trt_build(onnx_bytes: bytes, dynamic: bool, inputs) -> None:
    """Parses and builds for sm86 with one profile: static (the example shapes) or dynamic (dim 0 from 1 to 2x)."""
    import tensorrt_rtx as trt
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        raise _ParserRefused("parse: " + "; ".join(str(e) for e in errors), [e.node() for e in errors])
    config = builder.create_builder_config()
    config.num_compute_capabilities = 1
    config.set_compute_capability(trt.ComputeCapability.SM86, 0)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = tuple(inputs[i].shape)
        if dynamic:
            low = tuple(1 if d < 0 else s for d, s in zip(tensor.shape, shape))
            high = tuple(2 * s if d < 0 else s for d, s in zip(tensor.shape, shape))
            profile.set_shape(tensor.name, low, shape, high)
        else:
            profile.set_shape(tensor.name, shape, shape, shape)
    config.add_optimization_profile(profile)
    if builder.build_serialized_network(network, config) is None:
        raise RuntimeError("build: TensorRT-RTX returned no plan")


def measure(module, inputs, dynamic=True) -> dict:
    """One program through export → ONNX → onnxruntime → TensorRT-RTX; {stage: "ok" | error text}.

    "static": exported with static shapes, built with one fixed profile. "dynamic": exported again with dim 0 of the
    first input dynamic (a batch), built with a profile from 1 to 2x; measured only when static passed."""
    from trtpack.compiler import onnx_export, support
    from trtpack.compiler.export import export_program
    result = {}
    try:
        program = export_program(module, inputs, {})
    except Exception as e:  # anything torch raises means: no program to measure
        return {"export": _short(e)}
    result["export"] = "ok"
    result["ops"] = _compute_ops(program)
    if any(support.draws_random_numbers(n) for n in program.graph.nodes):
        result["onnx"] = "random sampling: an engine cannot reproduce PyTorch's random stream"
        return result  # no patterns: the refusal is support.CONDITIONS's, whatever the arguments
    result["patterns"] = _patterns(program)
    onnx = {}
    for stage, run in (("onnx", lambda: onnx.setdefault("static", onnx_export.to_onnx(program).data)),
                       ("onnxruntime", lambda: onnx_export.verify(onnx["static"], program.module(), inputs, "op")),
                       ("static", lambda: _trt_build(onnx["static"], False, inputs))):
        try:
            run()
        except Exception as e:
            result[stage] = _short(e)
            named = [onnx_export.fx_node_name(onnx["static"], i) for i in getattr(e, "indices", [])]
            result["blamed"] = sorted({n for n in named if n in result["patterns"]})
            if stage != "onnxruntime":  # a numeric mismatch still lets TensorRT's verdict be measured
                return result
            continue
        result[stage] = "ok"
    if dynamic and result["static"] == "ok" and inputs and inputs[0].dim() and inputs[0].shape[0] > 1:
        batch = inputs[0].shape[0]  # every input with the first one's dim 0 (a model's batch) is dynamic there
        spec = tuple({0: torch.export.Dim.AUTO} if t.dim() and t.shape[0] == batch else None for t in inputs)
        try:
            dynamic = export_program(module, inputs, {}, dynamic_shapes=(spec,))
            if not dynamic.range_constraints:
                raise RuntimeError("export specialised the batch dim (no dynamic dim left)")
            _trt_build(onnx_export.to_onnx(dynamic).data, True, inputs)
            result["dynamic"] = "ok"
        except Exception as e:
            result["dynamic"] = _short(e)
    return result


def _sample_trees(opinfo, dtype, most=SAMPLES_PER_OP) -> list:
    """The pytrees (args, kwargs) of the first `most` usable samples of `opinfo` in `dtype`: OpInfo lists a full
    reduction before a reduction over one dim, a 1-d input before a batch, so one sample says too little."""
    found = []
    try:
        for sample in opinfo.sample_inputs("cpu", dtype, requires_grad=False):
            tree = pytree.tree_flatten(((sample.input, *sample.args), dict(sample.kwargs)))
            tensors = [x for x in tree[0] if isinstance(x, torch.Tensor)]
            if not tensors or any(t.numel() == 0 or t.is_complex() or t.layout != torch.strided for t in tensors):
                continue
            found.append(tree)
            if len(found) == most:
                break
    except Exception:  # a sample generator that needs something we lack (e.g. scipy) gives no case
        pass
    return found


def _programs(opinfo, tree) -> list:
    """(form, module, inputs): the sample with every tensor an input, then with the later tensors as weights."""
    tensors = tuple(t.clone() for t in tree[0] if isinstance(t, torch.Tensor))
    forms = [("inputs", _Call(opinfo.op, tree), tensors)]
    if len(tensors) > 1:
        forms.append(("weights", _Call(opinfo.op, tree, "weights"), tensors[:1]))
    return forms


def extra_cases():
    """Ops models produce that no OpInfo sample reaches after decomposition."""
    import torch.nn.functional as F
    bn = torch.nn.BatchNorm2d(3).eval()
    conv = torch.nn.Conv2d(3, 4, 3, padding=1).eval()
    norm = torch.nn.LayerNorm(8).eval()
    pool = torch.nn.AdaptiveAvgPool2d((2, 2))
    linear = torch.nn.Linear(8, 4).eval()
    attention = _Attention(8, 2).eval()
    lstm = torch.nn.LSTM(8, 16, num_layers=2, bidirectional=True, batch_first=True).eval()
    gru = torch.nn.GRU(8, 16, batch_first=True).eval()
    rnn = torch.nn.RNN(8, 16, batch_first=True).eval()
    x4 = lambda: torch.randn(2, 3, 8, 8)
    return [
        ("batch_norm_eval", lambda x: bn(x), lambda: (x4(),)),
        ("adaptive_avg_pool2d", lambda x: pool(x), lambda: (x4(),)),
        ("max_pool2d", lambda x: F.max_pool2d(x, 2), lambda: (x4(),)),
        ("alias", lambda x: torch.ops.aten.alias(x) * 2, lambda: (x4(),)),
        ("as_strided_view", lambda x: torch.as_strided(x, (2, 3, 64), (192, 64, 1)) + 1, lambda: (x4(),)),
        ("copy_into_fresh", lambda x: torch.ops.aten.copy(torch.empty_like(x), x) + 1, lambda: (x4(),)),
        ("slice_scatter", lambda x, y: torch.slice_scatter(x, y, 1, 0, 1), lambda: (x4(), torch.randn(2, 1, 8, 8))),
        ("causal_mask", lambda x: x.masked_fill(torch.ones(x.shape[-1], x.shape[-1], dtype=torch.bool).triu(1),
                                                float("-inf")).softmax(-1), lambda: (torch.randn(2, 8, 8),)),
        ("upsample_bilinear", lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"), lambda: (x4(),)),
        ("upsample_nearest", lambda x: F.interpolate(x, scale_factor=2, mode="nearest"), lambda: (x4(),)),
        ("sdpa_causal", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
         lambda: tuple(torch.randn(2, 2, 8, 4) for _ in range(3))),
        ("embedding", lambda i, w: F.embedding(i, w), lambda: (torch.randint(0, 10, (2, 5)), torch.randn(10, 4))),
        ("conv2d_weights", lambda x: conv(x), lambda: (x4(),)),
        ("layer_norm_weights", lambda x: norm(x), lambda: (x4(),)),
        ("amax_dim", lambda x: x.amax(-1), lambda: (x4(),)),
        ("argmax_dim", lambda x: x.argmax(-1), lambda: (x4(),)),
        ("linear_weights", lambda x: linear(x), lambda: (torch.randn(2, 5, 8),)),
        ("attention_block", lambda x: attention(x), lambda: (torch.randn(2, 5, 8),)),
        ("sdpa_masked", lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
         lambda: (*(torch.randn(2, 2, 8, 4) for _ in range(3)), torch.randn(2, 1, 8, 8))),
        ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), lambda: (x4(),)),
        # positions and masks as decoders build them from a size (factory ops: no OpInfo sample has a tensor input)
        ("arange_positions", lambda x: x + torch.arange(x.shape[-1]), lambda: (torch.randn(2, 8),)),
        ("arange_from_one", lambda x: x * torch.arange(1, x.shape[-1] + 1), lambda: (torch.randn(2, 8),)),
        ("ones_triu_mask", lambda x: x.masked_fill(torch.ones(x.shape[-1], x.shape[-1]).triu(1).bool(), -1e4),
         lambda: (torch.randn(2, 8, 8),)),
        ("zeros_bias", lambda x: x + torch.zeros(x.shape[-1]), lambda: (torch.randn(2, 8),)),
        ("new_ones_scale", lambda x: x * x.new_ones(x.shape[-1]), lambda: (torch.randn(2, 8),)),
        # image borders as conv nets pad them (OpInfo's first samples are 3-d, or pad by negative amounts)
        ("replicate_pad", lambda x: F.pad(x, (1, 1, 2, 2), mode="replicate"), lambda: (x4(),)),
        ("reflect_pad", lambda x: F.pad(x, (1, 1, 1, 1), mode="reflect"), lambda: (x4(),)),
        # recurrent layers in eval mode (their dropout argument makes them tagged as sampling; not in eval)
        ("lstm_bidirectional", lambda x: lstm(x)[0], lambda: (torch.randn(2, 5, 8),)),
        ("gru", lambda x: gru(x)[0], lambda: (torch.randn(2, 5, 8),)),
        ("rnn_tanh", lambda x: rnn(x)[0], lambda: (torch.randn(2, 5, 8),)),
        *inplace_write_cases(),
    ]


def _shifted_window_mask(x):
    """Swin's attention mask for shifted windows, written slice by slice into a buffer sized from the input (so it
    is computed per call, not folded), then compared window against window and filled with masked_fill."""
    batch, height, width, _ = x.shape
    regions = torch.zeros_like(x[..., :1])
    count = 0
    for rows in (slice(0, -4), slice(-4, -2), slice(-2, None)):
        for cols in (slice(0, -4), slice(-4, -2), slice(-2, None)):
            regions[:, rows, cols, :] = count
            count += 1
    windows = regions.view(batch, height // 4, 4, width // 4, 4, 1).permute(0, 1, 3, 2, 4, 5).reshape(-1, 16)
    mask = windows.unsqueeze(1) - windows.unsqueeze(2)
    mask = mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)
    return x.sum(-1).reshape(-1, 16).unsqueeze(-1) + mask


def _shift_tokens_right(ids):
    """A decoder's inputs from its labels (BART, T5): copy into a slice, a start token, padding for -100."""
    shifted = ids.new_zeros(ids.shape)
    shifted[:, 1:] = ids[:, :-1].clone()
    shifted[:, 0] = 2
    shifted.masked_fill_(shifted == -100, 0)
    return shifted * 3


def _start_token_from_tensor(ids, start):
    shifted = ids.clone()
    shifted[:, 1:] = ids[:, :-1]
    shifted[:, 0] = start[0]  # a 0-d tensor written into a column: fill.Tensor
    return shifted + 1


class _CausalScores(torch.nn.Module):
    """GPT-2's attention: a causal mask buffer sliced to the sequence, the scores masked in place."""

    def __init__(self):
        super().__init__()
        self.register_buffer("bias", torch.tril(torch.ones(16, 16, dtype=torch.bool)).view(1, 1, 16, 16))

    def forward(self, q, k):
        length = q.shape[-2]
        scores = q @ k.transpose(-1, -2)
        scores.masked_fill_(~self.bias[:, :, :length, :length], float("-inf"))
        return scores.softmax(-1)


def _fill_slices(x):
    out = x.clone()
    out[:, 0].fill_(0.5)            # fill.Scalar into a row
    out[:, -1] = x[:, 0, 0].sum()   # a computed 0-d tensor into a row: fill.Tensor
    return out * 2


def _bool_mask_column(x):
    keep = torch.ones_like(x, dtype=torch.bool)
    keep[:, 0] = False  # fill of a bool column
    return x.masked_fill(~keep, 0.0)


def _int_mask_prefix(ids):
    mask = torch.ones_like(ids)
    mask[:, :2] = 0  # an integer attention mask, its prefix cleared
    return ids * mask


def _written(x, write):
    out = x.clone()
    write(out)
    return out + 1


def inplace_write_cases():
    """In-place writes as models make them (issue 22): each becomes fill / index_put / masked_fill / slice_scatter /
    select_scatter / copy in the exported program; measured with a dynamic batch like the rest."""
    causal = _CausalScores().eval()
    return [
        ("shifted_window_mask", _shifted_window_mask, lambda: (torch.randn(2, 8, 8, 3),)),
        ("shift_tokens_right", _shift_tokens_right, lambda: (torch.randint(0, 50, (2, 7)),)),
        ("start_token_tensor", _start_token_from_tensor, lambda: (torch.randint(0, 50, (2, 7)), torch.tensor([5]))),
        ("causal_scores_masked_fill_", lambda q, k: causal(q, k),
         lambda: (torch.randn(2, 2, 8, 4), torch.randn(2, 2, 8, 4))),
        ("index_put_tensor_index", lambda x, i, v: _written(x, lambda o: o.__setitem__((slice(None), i), v)),
         lambda: (torch.randn(2, 6, 4), torch.tensor([0, 3, 5]), torch.randn(2, 3, 4))),
        ("index_put_accumulate", lambda x, i, v: x.index_put((i,), v, accumulate=True) + 1,
         lambda: (torch.randn(6, 4), torch.tensor([0, 3, 0]), torch.randn(3, 4))),
        ("bool_mask_write", lambda x: _written(x, lambda o: o.__setitem__(o < 0, 0.0)),
         lambda: (torch.randn(2, 6, 4),)),
        ("select_write", lambda x, y: _written(x, lambda o: o.__setitem__((slice(None), slice(None), 0), y)),
         lambda: (torch.randn(2, 3, 5), torch.randn(2, 3))),
        ("slice_write", lambda x, y: _written(x, lambda o: o.__setitem__((slice(None), slice(1, 3)), y)),
         lambda: (torch.randn(2, 5, 4), torch.randn(2, 2, 4))),
        ("strided_slice_write", lambda x, y: _written(x, lambda o: o.__setitem__((Ellipsis, slice(None, None, 2)), y)),
         lambda: (torch.randn(2, 3, 6), torch.randn(2, 3, 3))),
        ("copy_into_slice", lambda x, y: _written(x, lambda o: o[:, :4].copy_(y)),
         lambda: (torch.randn(2, 6, 3), torch.randn(2, 4, 3))),
        ("fill_slice", _fill_slices, lambda: (torch.randn(2, 4, 3),)),
        ("bool_mask_column", _bool_mask_column, lambda: (torch.randn(2, 5),)),
        ("int_mask_prefix", _int_mask_prefix, lambda: (torch.randint(0, 9, (2, 6)),)),
        ("two_index_write", lambda x, r, c, v: _written(x, lambda o: o.__setitem__((r, c), v)),
         lambda: (torch.randn(3, 4), torch.tensor([0, 2]), torch.tensor([1, 3]), torch.randn(2))),
        ("add_at_index", lambda x, i, v: _written(x, lambda o: o.__setitem__((slice(None), i), o[:, i] + v)),
         lambda: (torch.randn(2, 6, 3), torch.tensor([1, 4, 5]), torch.randn(2, 3, 3))),
        # experts' outputs summed back into their tokens (mixture of experts), graph message passing
        ("index_add", lambda x, i, v: x.index_add(1, i, v) + 1,
         lambda: (torch.randn(2, 6), torch.tensor([0, 2, 2]), torch.randn(2, 3))),
    ]


class _Attention(torch.nn.Module):
    """A transformer layer as models write it by hand: fused qkv projection, per-head matmul attention, residual
    LayerNorm, GELU feed-forward."""

    def __init__(self, hidden, heads):
        super().__init__()
        self.heads = heads
        self.qkv, self.out = torch.nn.Linear(hidden, 3 * hidden), torch.nn.Linear(hidden, hidden)
        self.norm = torch.nn.LayerNorm(hidden)
        self.ffn = torch.nn.Sequential(torch.nn.Linear(hidden, 2 * hidden), torch.nn.GELU(),
                                       torch.nn.Linear(2 * hidden, hidden))

    def forward(self, x):
        batch, seq, hidden = x.shape
        q, k, v = self.qkv(x).view(batch, seq, 3, self.heads, hidden // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        weights = torch.softmax(q @ k.transpose(-2, -1) / (hidden // self.heads) ** 0.5, dim=-1)
        context = (weights @ v).transpose(1, 2).reshape(batch, seq, hidden)
        x = self.norm(x + self.out(context))
        return x + self.ffn(x)


class _Lambda(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)


def _import_pytest():
    """torch's OpInfo database imports pytest, which imports a module named `py`. Under Bazel the runfiles root is on
    sys.path, and its py/ folder (trtpack's sources) would be found instead."""
    saved = list(sys.path)
    sys.path[:] = [p for p in saved if not os.path.isdir(os.path.join(p or ".", "py", "trtpack"))]
    try:
        if getattr(sys.modules.get("py"), "__file__", "") is None:
            del sys.modules["py"]
        import pytest  # noqa: F401
    finally:
        sys.path[:] = saved


def cases(limit=None):
    """(name, dtype name, make) in a fixed order; make() -> [(form, module, inputs)], one per program to try."""
    _import_pytest()
    from torch.testing._internal.common_methods_invocations import op_db
    out = [(f"extra:{name}", "float32", (lambda fn=fn, make=make: [("inputs", _Lambda(fn), make())]))
           for name, fn, make in extra_cases()]
    core = {op.split(".")[1] for op in decomposed_ops()}
    for opinfo in op_db:
        name = opinfo.name + (f".{opinfo.variant_test_name}" if opinfo.variant_test_name else "")
        if name.startswith(SKIPPED_PREFIXES):
            continue
        if not (opinfo.name.startswith("nn.functional.") or opinfo.name.split(".")[-1] in core):
            continue  # neither an op a decomposed program holds nor a torch.nn.functional op: rarely in models
        supported = opinfo.supported_dtypes("cpu")
        for dtype in (torch.float32, torch.bool, torch.int64):
            if dtype in supported:
                out.append((name, str(dtype).replace("torch.", ""),
                            (lambda o=opinfo, d=dtype: [p for tree in _sample_trees(o, d) for p in _programs(o, tree)])))
                break
    return out[:limit] if limit else out


def _half(inputs):
    return tuple(t.half() if t.is_floating_point() else t for t in inputs)


def run(limit=None, log=print, checkpoint=None) -> dict:
    rows, passed_everywhere = {}, set()
    passed, failures = set(), []  # (op, pattern) pairs seen passing; failing programs' candidate pairs
    started = time.perf_counter()
    all_cases = cases(limit)
    for index, (name, dtype, make) in enumerate(all_cases):
        torch.manual_seed(0)
        passed_as_inputs = False
        for form, module, inputs in make():
            if form == "weights" and passed_as_inputs:
                continue  # the sample passed with every tensor an input: constants add nothing
            result = measure(module, inputs)
            ops = result.get("ops")
            pairs = {tuple(pair) for pair in result.get("patterns", {}).values()}
            if not ops or (set(ops) <= passed_everywhere and pairs <= passed):
                continue  # nothing new to learn from this program
            passed_as_inputs = form == "inputs" and result.get("static") == "ok"
            half = None
            if dtype == "float32" and result.get("static") == "ok" and any(t.is_floating_point() for t in inputs):
                try:
                    with torch.no_grad():
                        module(*_half(inputs))  # PyTorch has a float16 CPU kernel
                    half = measure(module.half() if form == "weights" else module, _half(inputs), dynamic=False)
                except Exception as e:
                    half = {"export": _short(e)}
            _record(rows, name, dtype, form, result, half, passed_everywhere)
            for measured, stages in ((result, ("onnx", "onnxruntime", "static")), (half, ("onnx", "static"))):
                _learn_patterns(measured, stages, name, passed, failures)
            log(f"[{index + 1}/{len(all_cases)} {time.perf_counter() - started:.0f}s] {name} ({dtype}, {form}): "
                f"{', '.join(ops)} -> {'ok' if result.get('static') == 'ok' else _first_failure(result)[0]}")
        if checkpoint:
            checkpoint(_with_failing_patterns(rows, passed, failures), f"{index + 1} of {len(all_cases)}")
    return _with_failing_patterns(rows, passed, failures)


def _learn_patterns(result, stages, case, passed, failures) -> None:
    """Notes the (op, pattern) pairs of a measured program: all passed, or the program failed (with the pairs the
    parser named, if it named any)."""
    if not result or not result.get("patterns"):
        return
    pairs = {node: tuple(pair) for node, pair in result["patterns"].items()}
    if all(result.get(s) == "ok" for s in stages):
        passed.update(pairs.values())
        return
    stage, message = _first_failure(result)
    if stage not in stages:
        return
    if stage == "onnxruntime":  # what PyTorch leaves uninitialised differs anyway; no numeric verdict on it
        pairs = {node: pair for node, pair in pairs.items() if pair[0] not in UNINITIALISED}
    failures.append({"pairs": sorted(set(pairs.values())),
                     "named": sorted({pairs[n] for n in result.get("blamed", []) if n in pairs}),
                     "stage": stage, "message": message, "case": case})


# Ops whose output is memory PyTorch does not initialise: onnxruntime's numbers cannot match them.
UNINITIALISED = frozenset({"aten.empty.memory_format", "aten.empty_like.default", "aten.empty_strided.default",
                           "aten.empty_permuted.default", "aten.new_empty.default", "aten.new_empty_strided.default"})


MAX_FAILING_PATTERNS = 8  # per op, in the order the run met them


def _with_failing_patterns(rows, passed, failures) -> dict:
    """rows with each supported op's `failing_patterns`: the patterns failing programs blame (the parser's named
    node's, else the program's one pattern that passed nowhere) and that no program passed with."""
    blamed = {}
    for failure in failures:
        candidates = [p for p in (failure["named"] or failure["pairs"]) if p not in passed]
        if failure["named"] or len(candidates) == 1:
            for op, key in candidates:
                blamed.setdefault(op, {}).setdefault(key, {k: failure[k] for k in ("stage", "message", "case")})
    out = {}
    for op, row in rows.items():
        row = {k: v for k, v in row.items() if k != "failing_patterns"}
        if row["supported"] and blamed.get(op):
            row["failing_patterns"] = dict(list(blamed[op].items())[:MAX_FAILING_PATTERNS])
        out[op] = row
    return out


def _first_failure(result) -> tuple:
    for stage in ("export", "onnx", "onnxruntime", "static", "dynamic"):
        if result.get(stage, "ok") != "ok":
            return stage, result[stage]
    return None, None


def _record(rows, case, dtype, form, result, half, passed_everywhere) -> None:
    ok = all(result.get(s) == "ok" for s in ("onnx", "onnxruntime", "static"))
    for op in result["ops"]:
        row = rows.setdefault(op, {"supported": False, "dtypes": [], "shapes": [], "forms": [], "cases": [],
                                   "failure": None})
        row["cases"] = sorted(set(row["cases"]) | {case})[:6]
        if ok:
            row["supported"] = True
            row["failure"] = None
            row["dtypes"] = sorted(set(row["dtypes"]) | {dtype})
            row["forms"] = sorted(set(row["forms"]) | {form})
            shapes = {"static"} | ({"dynamic"} if result.get("dynamic") == "ok" else set())
            row["shapes"] = sorted(set(row["shapes"]) | shapes)
            if half and all(half.get(s) == "ok" for s in ("onnx", "static")):
                row["dtypes"] = sorted(set(row["dtypes"]) | {"float16"})
        elif not row["supported"]:
            stage, message = _first_failure(result)
            size = len(result["ops"])
            if row["failure"] is None or size < row["failure"]["ops_in_program"]:
                row["failure"] = {"stage": stage, "message": message, "case": case, "form": form,
                                  "ops_in_program": size}
        row["programs"] = row.get("programs", 0) + 1
        if not ok:
            row["failed_cases"] = sorted(set(row.get("failed_cases", [])) | {case})
        # measured enough: it passed with plain inputs, or failed in several ops' samples (an op's own OpInfo, e.g.
        # native_layer_norm returning all three outputs, can fail where the functional form models use passes)
        if "inputs" in row["forms"] or len(row.get("failed_cases", [])) >= FAILED_CASES_ENOUGH:
            passed_everywhere.add(op)


ABOUT = ("GENERATED by tools/support_matrix.py (./bazelw run //tools:support_matrix); do not edit. Per ATen op "
         "(one row a line): supported (ONNX export, onnxruntime numerics and a TensorRT-RTX build all passed for some "
         "program containing it), the dtypes, shapes (static, dynamic batch) and forms (inputs: every tensor an input; "
         "weights: only the first, the others constants) that passed, the programs (OpInfo samples) that measured it, "
         "for an unsupported op the first failure of its smallest program, and for a supported one the argument "
         "patterns (trtpack.compiler.support.pattern) that failed and never passed (failing_patterns).")


def dumps(matrix: dict) -> str:
    """The matrix as JSON text with one op a line, so a diff shows which ops changed."""
    def one(value):
        return json.dumps(value, ensure_ascii=True)

    head = [f" {one(key)}: {one(value)}" for key, value in matrix.items() if key != "ops"]
    ops = [f"  {one(op)}: {one(row)}" for op, row in matrix["ops"].items()]
    return "{\n" + ",\n".join(head + [' "ops": {\n' + ",\n".join(ops) + "\n }"]) + "\n}\n"


def matrix_of(rows: dict, progress: str = "complete") -> dict:
    core, whole = core_ops(), decomposed_ops()
    return {
        "about": ABOUT,
        "programs": progress,  # "complete", or how far an interrupted run got
        "versions": installed_versions(),
        "generator_sha256": generator_hash(),
        "decomposed_ops_sha256": op_list_hash(whole),
        "core_not_measured": [op for op in core if op not in rows],
        "ops": {op: {**row, "core": op in core} for op, row in sorted(rows.items())},
    }


def write(rows: dict, path: str, progress: str = "complete") -> None:
    with open(path + ".tmp", "w") as f:
        f.write(dumps(matrix_of(rows, progress)))
    os.replace(path + ".tmp", path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="measure only the first N programs (a quick look)")
    parser.add_argument("--out", default=None, help=f"where to write (default: the workspace's {GENERATED})")
    args = parser.parse_args(argv)
    root = os.environ.get("BUILD_WORKSPACE_DIRECTORY", os.getcwd())
    out = args.out or os.path.join(root, GENERATED)
    logging.getLogger("torch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    with contextlib.redirect_stderr(io.StringIO()) if not os.environ.get("VERBOSE") else contextlib.nullcontext():
        rows = run(args.limit, log=lambda line: print(line, flush=True),
                   checkpoint=lambda rows, progress: write(rows, out, progress))
    write(rows, out)
    supported = sum(r["supported"] for r in rows.values())
    print(f"support_matrix: {len(rows)} ops measured, {supported} supported; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
