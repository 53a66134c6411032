"""Fallback decided once (trtpack.runtime.branches.resolve): engine_usable is asked once per device, then the chosen
branch is called directly; the saved program keeps its torch.cond.

The engine branch is driven by the Python executor with FakeTensorRT (a fake runtime module, NOT TensorRT: its
"engine" copies input x into the output), installed as the CPU kernels of both ops for one test and then removed.
"""
import contextlib

import pytest
import torch

import trtpack
from trtpack import record
from tests.support.fake_tensorrt_runtime import FakeContext, FakeTensorRT
from trtpack.runtime import branches
from trtpack.runtime.executor import Executor

BATCH = torch.export.Dim("batch", min=1, max=16)


class Square(torch.nn.Module):
    """x[b, 8] -> y[b, 8], so the fake engine's copy has the output's shape (and differs from the real result)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.first, self.second = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)

    def forward(self, x):
        return self.second(torch.relu(self.first(x))) * 3.0


@pytest.fixture(scope="module")
def compiled():
    model = Square().eval()
    module = trtpack.compile(model, (torch.randn(4, 8),), dynamic_shapes=({0: BATCH},), targets=["sm86"],
                             fallback=True, min_block_size=1)
    return model, module


def _decided(module):
    return [m for m in module.modules() if isinstance(m, branches.DecidedBranch)]


@contextlib.contextmanager
def fake_engines_usable_on_cpu(fake):
    """engine_usable / execute_engine on CPU tensors answered by an Executor over `fake`, as on an sm86 CUDA
    device; counts the engine_usable calls."""
    executor = Executor(import_module=lambda name: fake, current_stream=lambda device: ("stream", 0),
                        capability=lambda device: (8, 6), device_guard=lambda device: contextlib.nullcontext())
    asked = []

    def engine_usable(inputs, plan, meta):
        asked.append(meta)
        return torch.tensor(executor.verdict(plan, meta, torch.device("cuda", 0))["usable"])

    library = torch.library.Library("trtpack", "IMPL")
    library.impl("engine_usable", engine_usable, "CPU")
    library.impl("execute_engine", executor.execute_engine, "CPU")
    try:
        yield asked
    finally:
        library._destroy()


def test_compile_returns_a_resolved_module_and_saves_the_torch_cond_program(compiled):
    model, module = compiled
    (decided,) = _decided(module)
    assert not [n for n in module.graph.nodes if n.target is torch.ops.higher_order.cond]
    saved = module._trtpack_program
    assert [n for n in saved.graph.nodes if n.target is torch.ops.higher_order.cond]
    x = torch.randn(5, 8)
    torch.testing.assert_close(module(x), model(x))
    assert decided.chosen() == {torch.device("cpu"): "reference"}


def test_an_engine_that_becomes_usable_takes_the_engine_branch_and_is_asked_once(compiled, monkeypatch):
    model, _ = compiled
    saved = compiled[1]._trtpack_program
    meta = next(n for n in saved.graph.nodes if n.target is torch.ops.trtpack.engine_usable.default).args[2]
    output_name = record.decode_meta(meta)["outputs"][0]["name"]
    fake = FakeTensorRT(output_shapes=lambda shapes: {output_name: shapes["x"]})
    fake.io = {"x": ("INPUT", "FLOAT"), output_name: ("OUTPUT", "FLOAT")}  # the plan's I/O, as the record says
    # The fake engine copies into a tensor named "y"; this region's output is named after its last op.
    bind = FakeContext.set_tensor_address
    monkeypatch.setattr(FakeContext, "set_tensor_address",
                        lambda self, name, address: bind(self, "y" if name == output_name else name, address))
    module = branches.resolve(saved.module())  # as the loader does with a saved program
    with fake_engines_usable_on_cpu(fake) as asked:
        xs = [torch.randn(b, 8) for b in (3, 5, 7)]
        outputs = [module(x) for x in xs]
    for x, y in zip(xs, outputs):
        torch.testing.assert_close(y, x)  # the fake engine's copy, not the model's result
        assert not torch.allclose(y, model(x))
    assert len(asked) == 1  # one verdict for the device, three engine calls
    assert len(fake.named("execute_async_v3")) == 3
    (decided,) = _decided(module)
    assert decided.chosen() == {torch.device("cpu"): "engine"}


def test_a_resolved_module_exports_back_to_the_torch_cond_program(compiled):
    model, module = compiled
    program = torch.export.export(module, (torch.randn(4, 8),), dynamic_shapes=({0: BATCH},))
    targets = [n.target for n in program.graph.nodes]
    assert torch.ops.higher_order.cond in targets and torch.ops.trtpack.engine_usable.default in targets
    loaded = branches.resolve(program.module())
    x = torch.randn(6, 8)
    torch.testing.assert_close(loaded(x), model(x))


def test_resolve_leaves_graphs_without_an_engine_cond_alone_and_is_idempotent(compiled):
    plain = torch.export.export(Square().eval(), (torch.randn(2, 8),)).module()
    code = plain.code
    assert branches.resolve(plain) is plain and plain.code == code
    module = compiled[1]
    code = module.code
    branches.resolve(module)
    assert module.code == code and len(_decided(module)) == 1


def test_once_decided_the_program_runs_its_graph_with_the_chosen_branch_inlined(compiled, monkeypatch):
    model, compiled_module = compiled
    module = branches.resolve(compiled_module._trtpack_program.module())
    calls = []
    decided_forward = branches.DecidedBranch.forward
    monkeypatch.setattr(branches.DecidedBranch, "forward", lambda self, *a: calls.append(1) or decided_forward(self, *a))
    xs = [torch.randn(b, 8) for b in (2, 5, 9)]
    for x in xs:
        torch.testing.assert_close(module(x), model(x))
    assert len(calls) == 1  # the first call decides; the others run the inlined graph
    # a traced call takes the DecidedBranch graph again, which emits the torch.cond
    program = torch.export.export(module, (torch.randn(4, 8),), dynamic_shapes=({0: BATCH},))
    assert torch.ops.higher_order.cond in [n.target for n in program.graph.nodes]
    assert len(calls) == 2


def test_the_inlined_graph_reads_the_current_weights_and_adds_no_state():
    model = Square().eval()  # its own model: the program shares the model's weight tensors, and they are changed here
    compiled_module = trtpack.compile(model, (torch.randn(4, 8),), dynamic_shapes=({0: BATCH},), targets=["sm86"],
                                      fallback=True, min_block_size=1)
    module = branches.resolve(compiled_module._trtpack_program.module())
    keys = list(module.state_dict())
    x = torch.randn(3, 8)
    torch.testing.assert_close(module(x), model(x))  # decides
    torch.testing.assert_close(module(x), model(x))  # inlined
    assert list(module.state_dict()) == keys and not any("_trtpack_owner" in n for n, _ in module.named_modules())
    reference = Square().eval()
    reference.load_state_dict({k: v + 0.5 for k, v in reference.state_dict().items()})
    module.load_state_dict({name: value + 0.5 if value.is_floating_point() else value
                            for name, value in module.state_dict().items()})
    torch.testing.assert_close(module(x), reference(x))
    module.to(torch.float64)  # new parameter and buffer tensors: the inlined graph reads them on each call
    torch.testing.assert_close(module(x.double()), reference.double()(x.double()))
