"""The short way through a loaded .ep (trtpack.runtime.short_path): a plain call computes what the full call computes,
and every other call takes the full call. On this CPU machine the engine runs through the Python executor with
FakeTensorRT (a fake that copies input 0 into output 0 through the bound addresses), registered as the op's CPU
kernel for these tests; the CUDA route (the executor called without torch's dispatcher) is tests/gpu/test_gpu.py's."""
import contextlib
import warnings

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import trtpack
from trtpack.runtime.executor import Executor
from tests.support.fake_tensorrt_runtime import FakeTensorRT
from tests.support.records import make_record

PLAN, META = make_record(inputs=[("x", "float32", ["s0", 3])], outputs=[("y", "float32", ["s0", 3])],
                         symbols={"s0": (1, 4, 64)})


class AroundAnEngine(torch.nn.Module):
    """PyTorch ops, one engine, PyTorch ops; a keyword input and a dict output."""

    def __init__(self):
        super().__init__()
        self.register_buffer("plan", PLAN.clone())
        self.meta = META
        self.scale = torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0]))

    def forward(self, x, *, offset):
        (y,) = torch.ops.trtpack.execute_engine([torch.relu(x) * self.scale], self.plan, self.meta)
        return {"sum": y + offset, "max": y.amax(dim=1)}


@pytest.fixture
def engines_on_cpu(tmp_path):
    """The Python executor with FakeTensorRT as the CPU kernel of execute_engine, for the test's duration."""
    trt = FakeTensorRT()
    ex = Executor(import_module=lambda name: trt, current_stream=lambda device: ("cpu", 0),
                  capability=lambda device: (8, 6), device_guard=lambda device: contextlib.nullcontext(),
                  cache_dir=str(tmp_path / "cache"))
    library = torch.library.Library("trtpack", "IMPL")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overriding the CPU kernel of the op
        library.impl("execute_engine", ex.execute_engine, "CPU")
    yield trt
    library._destroy()


@pytest.fixture
def loaded(tmp_path, engines_on_cpu):
    path = str(tmp_path / "around.ep")
    batch = torch.export.Dim("batch", min=1, max=64)
    trtpack.save(AroundAnEngine(), path, arg_inputs=(torch.randn(4, 3),), kwarg_inputs={"offset": torch.randn(1, 3)},
                 dynamic_shapes={"x": {0: batch}, "offset": None})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the engine cannot run on this machine (its real kernel would say so)
        program = trtpack.load(path)
    assert program.short_path is not None
    return program


def full_call(program, *args, **kwargs):
    return program.runner(*args, **kwargs)


def test_plain_calls_take_the_short_path_and_compute_what_the_full_call_computes(loaded, engines_on_cpu):
    for batch in (1, 4, 64, 4):
        x, offset = torch.randn(batch, 3), torch.randn(1, 3)
        out = loaded(x, offset=offset)
        expected = full_call(loaded, x, offset=offset)
        assert out.keys() == expected.keys() == {"sum", "max"}
        for key in out:
            assert torch.equal(out[key], expected[key]), key
        torch.testing.assert_close(out["sum"], torch.relu(x) * torch.tensor([1.0, 2.0, 3.0]) + offset)
    assert loaded.short_path.calls == 4
    assert len(engines_on_cpu.named("execute_async_v3")) == 8  # four short calls, four full ones


def test_calls_the_short_path_does_not_take_go_the_full_way_and_are_refused_in_its_words(loaded):
    offset = torch.randn(1, 3)
    with pytest.raises(trtpack.IncompatibleEngineError, match="outside the shapes this program was compiled for"):
        loaded(torch.randn(65, 3), offset=offset)
    with pytest.raises(RuntimeError, match="number of dimensions"):
        loaded(torch.randn(4, 3, 1), offset=offset)  # torch's own words, as for the full call
    with pytest.raises(ValueError, match="keyword mismatch"):
        loaded(torch.randn(4, 3))  # the keyword input missing: torch's own error, as for the full call
    assert loaded.short_path.calls == 0

    class Seen(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    with Seen() as mode:
        loaded(torch.randn(2, 3), offset=offset)
    assert "trtpack.execute_engine.default" in mode.ops  # a mode sees every op, the engine's too: the full call
    assert loaded.short_path.calls == 0

    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode(allow_non_fake_inputs=True) as fake_mode:
        out = loaded(fake_mode.from_tensor(torch.randn(2, 3)), offset=fake_mode.from_tensor(offset))
    assert out["sum"].shape == (2, 3) and loaded.short_path.calls == 0

    seen = []
    handle = loaded.runner.module.register_forward_hook(lambda module, args, kwargs_, out=None: seen.append(1))
    loaded(torch.randn(2, 3), offset=offset)
    assert seen == [1] and loaded.short_path.calls == 0  # a hook someone added runs: the full call
    handle.remove()
    loaded(torch.randn(2, 3), offset=offset)
    assert loaded.short_path.calls == 1


def test_the_short_path_reads_the_modules_tensors_on_each_call(loaded):
    x, offset = torch.randn(3, 3), torch.randn(1, 3)
    before = loaded(x, offset=offset)["sum"]
    loaded._apply(lambda t: t * 2 if t.is_floating_point() else t)  # new tensor objects, as .to() makes
    after = loaded(x, offset=offset)["sum"]
    assert torch.equal(after, full_call(loaded, x, offset=offset)["sum"])
    torch.testing.assert_close(after, torch.relu(x) * torch.tensor([2.0, 4.0, 6.0]) + offset)
    assert not torch.equal(after, before)
    assert loaded.short_path.calls == 2


def test_grad_mode_is_off_inside_and_restored_after_even_on_an_error(loaded, engines_on_cpu):
    x = torch.randn(2, 3, requires_grad=True)
    out = loaded(x, offset=torch.randn(1, 3))
    assert not out["sum"].requires_grad and torch.is_grad_enabled()
    engines_on_cpu.fail_execute = True
    with pytest.raises(trtpack.TrtpackError, match="TensorRT failed to run engine"):
        loaded(torch.randn(2, 3), offset=torch.randn(1, 3))
    assert torch.is_grad_enabled() and loaded.short_path.calls == 1


def test_a_fallback_program_takes_the_short_path_once_its_branches_are_decided(tmp_path):
    from tests.support.engine_programs import EngineWithFallback

    torch.manual_seed(0)
    model = EngineWithFallback(PLAN.clone(), META, torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU()))
    path = str(tmp_path / "fallback.ep")
    trtpack.save(model, path, arg_inputs=(torch.randn(4, 3),),
                 dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no CUDA here: the engine cannot run, the reference branch is chosen
        program = trtpack.load(path)
        program(torch.randn(5, 3))  # the full call decides the branch for the CPU
    assert program.short_path.calls == 0
    for batch in (5, 2, 64):
        x = torch.randn(batch, 3)
        with torch.no_grad():
            expected = model.reference(x)
        out = program(x)
        assert torch.equal(out, program.runner(x)) and torch.equal(out, expected)
    assert program.short_path.calls == 3
