"""In-place writes real models use (issue 22, item 3) end in an engine: a token shifted into place
(`shifted[:, 0] = start_id`: fill.Tensor, rewritten by views.py), a slice copied into a slice, masked_fill,
index_put with a constant index, select_scatter; with a dynamic batch, each region's ONNX model verified against
PyTorch by onnxruntime, and the program run like the model."""
import warnings

import pytest
import torch

import trtpack

TARGETS = ["sm86"]


class Writes(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 8)
        self.linear = torch.nn.Linear(8, 8)
        self.register_buffer("rows", torch.tensor([0, 2]))

    def forward(self, ids, x):
        shifted = ids.new_zeros(ids.shape)
        shifted[:, 1:] = ids[:, :-1].clone()  # copy_ into a slice
        shifted[:, 0] = 3                      # a start token: fill.Tensor
        h = self.linear(self.embed(shifted)) + x
        h = h.masked_fill(h > 1.0, 1.0)
        h[:, :, 0] = h[:, :, 1] * 2            # select_scatter
        h[:, self.rows] = 0.5                  # index_put with a constant index
        return torch.relu(h)


@pytest.mark.parametrize("fallback", [False, True])
def test_in_place_writes_all_end_in_engines(fallback):
    model = Writes().eval()
    ids, x = torch.randint(0, 10, (2, 5)), torch.randn(2, 5, 8)
    batch = torch.export.Dim("batch", min=1, max=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = trtpack.compile(model, (ids, x), dynamic_shapes=({0: batch}, {0: batch}), targets=TARGETS,
                                 fallback=fallback, min_block_size=1, verify=True, cache=False)
    summary = module.meta["trtpack_summary"]
    assert summary["left_in_pytorch"] == [] and summary["ops_in_pytorch"] == 0, summary["left_in_pytorch"]
    assert len(summary["regions"]) == 1
    assert "aten.fill.Tensor" not in summary["regions"][0]["ops"]
    if fallback:
        for size in (1, 2, 7):
            ids, x = torch.randint(0, 10, (size, 5)), torch.randn(size, 5, 8)
            torch.testing.assert_close(module(ids, x), model(ids, x))


class MaskWrites(torch.nn.Module):
    """Boolean-mask writes: `x[x < 0] = 0` (a mask as large as x) and `h[padding] = row` (a mask over the leading
    dims, one row written into every masked position). The exporter turns boolean indexing into NonZero, which
    TensorRT-RTX's parser refuses; trtpack writes them as where(mask, value, x)."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 8)
        self.pad = torch.nn.Parameter(torch.randn(8))

    def forward(self, x, ids):
        h = self.linear(x)
        h[h < 0] = 0.0
        h[ids == 0] = self.pad
        return h * 2


def test_boolean_mask_writes_become_where_and_end_in_one_engine():
    torch.manual_seed(0)
    model = MaskWrites().eval()
    x, ids = torch.randn(3, 5, 8), torch.randint(0, 3, (3, 5))
    batch = torch.export.Dim("batch", min=1, max=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = trtpack.compile(model, (x, ids), dynamic_shapes=({0: batch}, {0: batch}), targets=TARGETS,
                                 fallback=True, min_block_size=1, verify=True, cache=False)
    summary = module.meta["trtpack_summary"]
    assert summary["left_in_pytorch"] == [] and summary["refused_by_tensorrt"] == [], summary["left_in_pytorch"]
    [region] = summary["regions"]
    assert "aten.index_put.default" not in region["ops"] and region["ops"]["aten.where.self"] == 2, region["ops"]
    assert "views" in summary["seconds"]  # the rewrite's cost, a stage of its own
    for size in (1, 3, 6):
        x, ids = torch.randn(size, 5, 8), torch.randint(0, 3, (size, 5))
        torch.testing.assert_close(module(x, ids), model(x, ids))


def test_a_mask_write_whose_values_follow_the_mask_is_left_as_index_put():
    """`x[mask] = v` with one value per masked element (v's size is the mask's count, known only from the data)
    and an accumulating write are no where(): views.resolve leaves them for the support table to judge."""
    from trtpack.compiler import views
    from trtpack.compiler.export import export_program

    class Model(torch.nn.Module):
        def forward(self, x, v):
            out = x.clone()
            out.index_put_((x > 0,), v, accumulate=True)
            out[x < 0] = x[x < 0] * 2
            return out

    program = export_program(Model(), (torch.randn(4, 3), torch.randn(3)))
    gm = program.module()
    assert views.resolve(gm) == 0
    assert len([n for n in gm.graph.nodes if n.target is torch.ops.aten.index_put.default]) == 2


def _write_cases():
    from tools import support_matrix

    return support_matrix.inplace_write_cases()


@pytest.mark.parametrize("case", _write_cases(), ids=[case[0] for case in _write_cases()])
def test_each_model_shaped_write_of_the_support_matrix_compiles_with_a_dynamic_batch(case):
    """The support matrix's in-place write cases through trtpack.compile (views, fold, partition, verify): one engine
    and nothing in PyTorch, except the accumulating writes (index_put with accumulate=True, index_add), which the
    matrix's argument patterns keep out alone: no build is tried and refused."""
    from tools import support_matrix

    name, fn, make = case
    model, inputs = support_matrix._Lambda(fn).eval(), make()
    batch = torch.export.Dim("batch", min=1, max=16)
    dims = tuple({0: batch} if t.dim() and t.shape[0] == inputs[0].shape[0] else None for t in inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = trtpack.compile(model, inputs, dynamic_shapes=(dims,), targets=TARGETS, fallback=True,
                                 min_block_size=1, verify=True, cache=False)
    summary = module.meta["trtpack_summary"]
    assert summary["refused_by_tensorrt"] == []
    if name in ("index_put_accumulate", "index_add"):
        [left] = summary["left_in_pytorch"]
        assert left["op"] == "aten.index_put.default" and "argument pattern" in left["reason"], left
    else:
        assert summary["left_in_pytorch"] == [] and len(summary["regions"]) == 1, summary["left_in_pytorch"]
    for size in (4, 9):  # index_put_accumulate indexes its batch dim at 3
        resized = _resized(inputs, size, dims)
        torch.testing.assert_close(module(*resized), model(*resized))


def _resized(inputs, size, dims):
    out = []
    for tensor, dim in zip(inputs, dims):
        if dim is None:
            out.append(tensor)
        elif tensor.is_floating_point():
            out.append(torch.randn(size, *tensor.shape[1:]))
        else:
            out.append(torch.randint(0, 50, (size, *tensor.shape[1:])))
    return out
