"""Partitioning without building anything: which nodes become regions, which stay in PyTorch and why."""
import pytest
import torch
from torch import nn

from tests.support import models
from trtpack.compiler import partition, support
from trtpack.compiler.export import export_program

BATCH = torch.export.Dim("batch", min=1, max=16)


def _partitioned(model, inputs, min_block_size=5, dynamic_shapes=None):
    program = export_program(model, inputs, dynamic_shapes=dynamic_shapes)
    gm = program.module()
    return gm, partition.partition(gm, min_block_size)


def _region_calls(gm):
    return [n for n in gm.graph.nodes if n.op == "call_module" and n.target.startswith(partition.REGION_PREFIX)]


def test_unsupported_op_in_the_middle_makes_two_regions_and_stays_pytorch():
    model = models.eval_model(models.SplitByCustomOp)
    x = torch.randn(2, 3, 8, 8)
    gm, parts = _partitioned(model, (x,))
    assert parts.regions == ["trt_region_0", "trt_region_1"]
    assert [n.target for n in _region_calls(gm)] == parts.regions
    (left,) = parts.left_out
    assert left.op == "trtpack_test.channel_roll.default" and "models.py" in left.location
    torch.testing.assert_close(gm(x), model(x))


def test_blocks_below_min_block_size_stay_in_pytorch_with_the_reason():
    model = models.eval_model(models.MLP)
    gm, parts = _partitioned(model, (torch.randn(2, 16),), min_block_size=100)
    assert parts.regions == [] and not _region_calls(gm)
    assert parts.left_out and all("min_block_size=100" in item.reason for item in parts.left_out)


class _WouldCycle(nn.Module):
    """conv → (roll, unsupported) → sigmoid; conv → relu; both → mul. Fusing conv with mul would need the roll
    inside the region: a cycle. The partition must split instead."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return torch.relu(y) * torch.sigmoid(models.channel_roll(y)) + y


def test_regions_never_form_a_cycle_through_pytorch_ops():
    model = _WouldCycle().eval()
    x = torch.randn(1, 3, 8, 8)
    gm, parts = _partitioned(model, (x,), min_block_size=1)
    assert len(parts.regions) == 2
    gm.graph.lint()  # topologically valid after fusion
    torch.testing.assert_close(gm(x), model(x))


class _FlattenAfterBreak(nn.Module):
    """Shape arithmetic (the dynamic batch for flatten) crosses a graph break; weights are shared by two regions."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.head = nn.Linear(3 * 4 * 4, 5)

    def forward(self, x):
        y = self.conv(torch.relu(self.conv(x)) + 1)
        y = models.channel_roll(y)
        y = self.conv(y * 2 + 1)
        return self.head(torch.flatten(torch.relu(y), 1))


def test_regions_take_only_tensors_and_carry_their_own_weights_and_shape_arithmetic():
    model = _FlattenAfterBreak().eval()
    x = torch.randn(2, 3, 4, 4)
    gm, parts = _partitioned(model, (x,), min_block_size=2, dynamic_shapes=({0: BATCH},))
    assert len(parts.regions) == 2
    for call in _region_calls(gm):
        assert all(isinstance(a.meta["val"], torch.Tensor) for a in call.args)
        region = getattr(gm, call.target)
        assert any(n.op == "get_attr" and n.target.startswith("conv") for n in region.graph.nodes)
    for size in (1, 5):
        x = torch.randn(size, 3, 4, 4)
        torch.testing.assert_close(gm(x), model(x))


@pytest.mark.parametrize("fn, inputs, reason", [
    (lambda x: torch.nonzero(x > 0).float().sum() + x, (torch.randn(4),), "depends on the data"),
    (lambda x: (x.double() * 2).float(), (torch.randn(4),), "float64"),
    (lambda x: models.channel_roll(x), (torch.randn(1, 2, 3),), "custom op"),
    (lambda x: torch.special.zeta(x, x), (torch.randn(4),), "support matrix"),
], ids=["nonzero", "float64", "custom_op", "not_in_matrix"])
def test_unsupported_nodes_get_a_reason(fn, inputs, reason):
    class Wrap(nn.Module):
        def forward(self, x):
            return fn(x)

    program = export_program(Wrap(), inputs)
    reasons = [support.unsupported_reason(n) for n in program.module().graph.nodes if support.is_compute_node(n)]
    assert any(r and reason in r for r in reasons), reasons


def test_mutating_an_input_is_not_converted():
    class Mutate(nn.Module):
        def forward(self, x):
            x.add_(1)
            return x * 2

    program = export_program(Mutate(), (torch.randn(4),))
    nodes = [n for n in program.module().graph.nodes if n.op == "call_function"]
    mutating = [n for n in nodes if isinstance(n.target, torch._ops.OpOverload) and n.target._schema.is_mutable]
    assert mutating and all("mutates" in support.unsupported_reason(n) for n in mutating)


class Recurrent(nn.Module):
    """Recurrent layers with dropout between their layers: tagged as sampling, they sample only while training."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 16, num_layers=2, bidirectional=True, batch_first=True, dropout=0.25)
        self.gru = nn.GRU(32, 8, num_layers=2, batch_first=True, dropout=0.25)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.gru(self.lstm(x)[0])[0].relu())


def test_recurrent_layers_in_eval_mode_draw_no_random_numbers_and_go_to_tensorrt():
    x, model = torch.randn(2, 5, 8), Recurrent().eval()
    program = export_program(model, (x,), dynamic_shapes=({0: BATCH},))
    layers = [n for n in program.graph.nodes if n.target in (torch.ops.aten.lstm.input, torch.ops.aten.gru.input)]
    assert len(layers) == 2 and not any(support.draws_random_numbers(n) for n in layers)
    gm = program.module()
    parts = partition.partition(gm, 1)
    assert parts.regions == ["trt_region_0"] and not parts.left_out, parts.left_out
    torch.testing.assert_close(gm(x), model(x))


def test_recurrent_layers_exported_for_training_sample_and_stay_in_pytorch():
    program = export_program(Recurrent().train(), (torch.randn(2, 5, 8),))
    layers = [n for n in program.graph.nodes if n.target in (torch.ops.aten.lstm.input, torch.ops.aten.gru.input)]
    assert len(layers) == 2 and all(support.draws_random_numbers(n) for n in layers)
    assert [support.unsupported_reason(n) for n in layers] == ["its dropout (p=0.25) samples random numbers"] * 2
