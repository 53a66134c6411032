"""The measured table learns argument patterns (issue 22, item 4): support.pattern keys a node by op, tensor dtypes
and ranks and non-numeric arguments; the support matrix records, per supported op, the patterns that failed and never
passed (blamed on the node TensorRT's parser named, else on a failing program's one pattern that passed nowhere); the
partitioner keeps only nodes of a failing pattern in PyTorch, the op's other nodes still go to TensorRT."""
import warnings

import torch

import trtpack
from tools import support_matrix as generator
from trtpack.compiler import support
from trtpack.compiler.export import export_program

aten = torch.ops.aten
INDEX_PUT = "aten.index_put.default"


class Scatters(torch.nn.Module):
    """One index_put that overwrites (TensorRT takes it) and one that accumulates (TensorRT-RTX's parser refuses
    ScatterND with a reduction), with linear layers around them."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
        self.register_buffer("rows", torch.tensor([0, 2, 0]))

    def forward(self, x):
        h = torch.relu(self.a(x))
        h = h.index_put((self.rows,), torch.ones(3, 4), accumulate=True)
        h = h.index_put((self.rows[:2],), torch.zeros(2, 4))
        return self.b(torch.tanh(h))


def _nodes(program, target):
    return [n for n in program.graph.nodes if n.target is target]


def test_a_pattern_keeps_dtypes_ranks_and_non_numeric_arguments_and_drops_numbers():
    class Model(torch.nn.Module):
        def forward(self, x, i):
            y = torch.einsum("bij,bjk->bik", x, x).index_put((i,), x[0, :1], accumulate=True)
            return y.to(torch.float16)[:, 1:3]

    program = export_program(Model(), (torch.randn(2, 3, 3), torch.tensor([1])), decompose=False)
    patterns = sorted(support.pattern(n) for n in program.graph.nodes if support.is_compute_node(n))
    assert "aten.einsum.default('bij,bjk->bik', [float32[3], float32[3]], _)" in patterns
    assert "aten.index_put.default(float32[3], [int64[1]], float32[2], True)" in patterns
    assert any(p.startswith("aten._to_copy.default(float32[3], float16,") or
               p.startswith("aten.to.dtype(float32[3], float16,") for p in patterns), patterns
    assert "aten.slice.Tensor(float16[3], #, #, #, #)" in patterns  # dim, start, end, step: numbers are '#'


def test_a_failing_program_blames_the_named_node_or_its_one_pattern_that_never_passed():
    rows = {op: {"supported": True} for op in ("a", "b", "c")}
    passed = {("a", "a(f32[2])"), ("b", "b(f32[2])")}
    failures = [
        # one pattern never passed: it is the one to blame
        {"pairs": [("a", "a(f32[2])"), ("b", "b(f32[3])")], "named": [], "stage": "static", "message": "m1",
         "case": "one"},
        # two never passed, no node named: the matrix cannot tell which; no pattern blamed
        {"pairs": [("b", "b(f32[4])"), ("c", "c(f32[4])")], "named": [], "stage": "static", "message": "m2",
         "case": "two"},
        # the parser named c's node: c's pattern, although b's also never passed
        {"pairs": [("b", "b(f32[5])"), ("c", "c(f32[5])")], "named": [("c", "c(f32[5])")], "stage": "static",
         "message": "m3", "case": "three"},
        # a named pattern that passed elsewhere is not blamed
        {"pairs": [("a", "a(f32[2])")], "named": [("a", "a(f32[2])")], "stage": "static", "message": "m4",
         "case": "four"},
    ]
    out = generator._with_failing_patterns(rows, passed, failures)
    assert "failing_patterns" not in out["a"]
    assert out["b"]["failing_patterns"] == {"b(f32[3])": {"stage": "static", "message": "m1", "case": "one"}}
    assert list(out["c"]["failing_patterns"]) == ["c(f32[5])"]
    # an unsupported op records none: the whole op already stays in PyTorch
    rows["b"]["supported"] = False
    assert "failing_patterns" not in generator._with_failing_patterns(rows, passed, failures)["b"]


def test_the_matrix_records_the_accumulating_index_put_as_a_failing_pattern():
    row = support.matrix()["ops"][INDEX_PUT]
    assert row["supported"]
    failing = row["failing_patterns"]
    key = next(k for k in failing if k.endswith(", True)"))
    assert failing[key]["stage"] == "static" and "ScatterND" in failing[key]["message"], failing[key]
    # overwriting through an integer index passed; through a boolean mask the exporter needs NonZero, which fails
    assert not any("int64" in k and k.endswith(", False)") for k in failing), failing
    masked = next(k for k in failing if "[bool[" in k)
    assert masked.endswith(", False)") and "NonZero" in failing[masked]["message"], failing[masked]


def test_the_partitioner_keeps_only_the_failing_pattern_in_pytorch():
    model, x = Scatters().eval(), torch.randn(5, 4)
    program = export_program(model, (x,))
    accumulating, overwriting = _nodes(program.module(), aten.index_put.default)
    assert accumulating.args[3] is True and overwriting.args[3:] in ((), (False,))
    reason = support.unsupported_reason(accumulating)
    assert reason and "argument pattern" in reason and "ScatterND" in reason, reason
    assert support.unsupported_reason(overwriting) is None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = trtpack.compile(model, (x,), targets=["sm86"], min_block_size=1, fallback=True, verify=True,
                                 cache=False)
    summary = module.meta["trtpack_summary"]
    left = [item for item in summary["left_in_pytorch"] if item["op"] == INDEX_PUT]
    assert len(left) == 1 and "argument pattern" in left[0]["reason"], summary["left_in_pytorch"]
    assert summary["refused_by_tensorrt"] == []  # the table decided: no build was tried and refused
    assert sum(region["ops"].get(INDEX_PUT, 0) for region in summary["regions"]) == 1
    torch.testing.assert_close(module(x), model(x))
