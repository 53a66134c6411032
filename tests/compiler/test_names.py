"""Any name torch accepts works (issue 22, item 1): submodules, parameters and buffers named with a '-', a leading
digit, a Python keyword, or names that meet once made identifiers, compile (with and without fallback, through the
assembled program and the re-export), verify against onnxruntime, save and load as .ep."""
import warnings

import pytest
import torch
from torch import nn

import trtpack
from trtpack.compiler import assemble, identifiers
from tests.support import models  # noqa: F401  (registers trtpack_test::channel_roll)

TARGETS = ["sm86"]


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 8)
        self.register_buffer("scale-1", torch.linspace(0.5, 1.5, 8))
        self.register_parameter("if", nn.Parameter(torch.full((8,), 0.25)))

    def forward(self, x):
        return torch.relu(self.lin(x)) * getattr(self, "scale-1") + getattr(self, "if")


class Holder(nn.Module):
    def __init__(self, name):
        super().__init__()
        self.add_module(name, nn.Linear(8, 8))


class OddNames(nn.Module):
    """`block1-0` and `block1_0` meet as `block1_0`; `a.b_c` and `a_b.c` meet once dots become underscores; a
    custom op between the blocks keeps two regions apart."""

    ORDER = ("block1-0", "0block", "class", "block1_0", "for", "a", "a_b")

    def __init__(self):
        super().__init__()
        for name in self.ORDER[:4]:
            self.add_module(name, Block())
        self.add_module("for", nn.Linear(8, 8))
        self.a, self.a_b = Holder("b_c"), Holder("c")

    def forward(self, x):
        for name in self.ORDER:
            x = getattr(self, name)(x) if name not in ("a", "a_b") else getattr(getattr(self, name), "b_c" if
                                                                                 name == "a" else "c")(x)
            if name == "class":
                x = torch.ops.trtpack_test.channel_roll(x)
        return x


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return OddNames().eval()


def quiet(call, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call(*args, **kwargs)


def test_identifier_rule():
    assert [identifiers.identifier(t) for t in ("block1-0", "0a", "class", "a b.c", "", "ok")] == \
        ["block1_0", "_0a", "class_", "a_b_c", "_", "ok"]


def test_state_names_are_renamed_per_module_consistently_and_uniquely():
    fqns = ["block1-0.lin.weight", "block1-0.scale-1", "block1_0.lin.weight", "class.if", "layers.0.weight",
            "0block.w", "ok.weight"]
    assert identifiers.renamed_state(fqns) == {
        "block1-0.lin.weight": "block1_0_1.lin.weight",  # block1_0 is a sibling's own name: it keeps it
        "block1-0.scale-1": "block1_0_1.scale_1",
        "class.if": "class_.if_",
        "0block.w": "_0block.w",
    }  # numeric parts (nn.Sequential's) stay: torch reaches them with getattr


def check_runs_like(model, program):
    for batch in (1, 3):
        x = torch.randn(batch, 8)
        torch.testing.assert_close(program(x), model(x), atol=1e-5, rtol=1e-5)


def compile_model(model, **options):
    x = torch.randn(2, 8)
    return trtpack.compile(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=8)},),
                           targets=TARGETS, min_block_size=1, cache=False, **options)


def test_odd_names_compile_without_fallback_verify_and_save(model, tmp_path):
    module = compile_model(model, verify=True)  # each region's ONNX model checked against PyTorch
    summary = module.meta["trtpack_summary"]
    assert len(summary["regions"]) == 2 and [i["op"] for i in summary["left_in_pytorch"]] == \
        ["trtpack_test.channel_roll.default"]
    with pytest.raises(trtpack.IncompatibleEngineError):  # the engines are called (none can run here)
        module(torch.randn(2, 8))
    path = str(tmp_path / "odd.ep")
    trtpack.save(module, path)
    loaded = quiet(trtpack.load, path)
    assert [e.name for e in loaded.engines] == ["trt_region_0", "trt_region_1"]
    with pytest.raises(trtpack.IncompatibleEngineError):
        loaded(torch.randn(2, 8))


def test_odd_names_compile_with_fallback_and_run_after_a_save_and_load(model, tmp_path):
    module = compile_model(model, fallback=True)
    assert len(module.meta["trtpack_summary"]["regions"]) == 2
    check_runs_like(model, module)
    path = str(tmp_path / "odd.ep")
    trtpack.save(module, path)
    check_runs_like(model, quiet(trtpack.load, path))


def test_odd_names_through_the_reexport(model, monkeypatch):
    monkeypatch.setattr(assemble, "lowered_program", lambda *args, **kwargs: None)
    module = compile_model(model, fallback=True)
    assert len(module.meta["trtpack_summary"]["regions"]) == 2
    check_runs_like(model, module)


def test_a_program_with_safe_names_is_left_as_it_is():
    program = torch.export.export(models.eval_model(models.MLP), (torch.randn(2, 16),))
    assert identifiers.with_safe_state_names(program) is program
