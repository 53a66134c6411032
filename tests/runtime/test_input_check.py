"""The fast input check (trtpack.runtime.input_check) against torch's own pre-hook: the same verdict on every input
of every program here (the GPU suite's models, equal and derived dims, keywords, specialized scalars), across each
range and past its ends, and the same IncompatibleEngineError text from a loaded program."""
import io
import itertools
import warnings

import pytest
import torch
from torch.export._unlift import _check_input_constraints_for_module

import trtpack
from trtpack.runtime import input_check
from tests.support import gpu_models


def torch_accepts(module, args, kwargs) -> bool:
    """torch's input-constraint check (_check_input_constraints_for_module: structure, rank, static dims, ranges,
    equal and derived dims), the check its pre-hook runs on every call on torch 2.11 (the H200's torch), sympy and
    all. torch >= 2.13 runs the range part as guard code inside the graph instead; the behaviour test below covers
    that."""
    try:
        _check_input_constraints_for_module(module, args, kwargs)
        return True
    except (RuntimeError, ValueError, AssertionError, TypeError, KeyError):
        return False


def outcome(module, args, kwargs):
    """What a call does: ("ok", outputs) or (exception type, message)."""
    try:
        return "ok", module(*args, **kwargs)
    except Exception as e:  # noqa: BLE001  (compared, not handled)
        return type(e), str(e)


class Pair(torch.nn.Module):  # x and y share their batch (an equality), y's last dim is static
    def forward(self, x, y):
        return x.sum(1, keepdim=True) + y


class Derived(torch.nn.Module):  # y is 2*d and z is d+1, given before x (d) itself: the root is solved for
    def forward(self, y, z, x):
        return y[: x.shape[0]] + z[1:] + x


class Keywords(torch.nn.Module):
    def forward(self, x, *, mask):
        return x * mask


class Scalar(torch.nn.Module):  # an int argument: torch.export specializes it
    def forward(self, x, n: int):
        return x * n


def _dim(name, lo, hi):
    return torch.export.Dim(name, min=lo, max=hi)


def _as_loaded(program):
    """The program as trtpack.load reads it (torch.export.save + load): no guard code in its graph, so torch's
    pre-hook checks every range itself, as it does for every loaded .ep."""
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    buffer.seek(0)
    return torch.export.load(buffer)


def programs():
    found = {}
    for name, (factory, dtype) in gpu_models.MODELS.items():  # the GPU suite's fixtures, as exported
        found[name] = (torch.export.export(factory(), (gpu_models.example_input(dtype),),
                                           dynamic_shapes=gpu_models.dynamic_shapes()), dtype)
    b = _dim("b", 3, 10)
    found["pair"] = (torch.export.export(Pair(), (torch.randn(4, 5), torch.randn(4, 1)),
                                         dynamic_shapes=({0: b}, {0: b})), torch.float32)
    d = _dim("d", 2, 8)
    found["derived"] = (torch.export.export(Derived(), (torch.randn(8), torch.randn(5), torch.randn(4)),
                                            dynamic_shapes=({0: 2 * d}, {0: d + 1}, {0: d})), torch.float32)
    found["keywords"] = (torch.export.export(Keywords(), (torch.randn(4, 3),), {"mask": torch.randn(4, 3)},
                                             dynamic_shapes={"x": {0: _dim("k", 1, 32)}, "mask": {0: _dim("k", 1, 32)}}),
                         torch.float32)
    found["scalar"] = (torch.export.export(Scalar(), (torch.randn(4, 3), 3), dynamic_shapes=({0: _dim("s", 4, 9)}, None)),
                       torch.float32)
    return {name: (_as_loaded(program), dtype) for name, (program, dtype) in found.items()}


PROGRAMS = programs()


def candidates(module, dtype):
    """Inputs across and past every range: each tensor dim set to every interesting size in turn (the others kept
    at a valid size), all dims at once at each size, wrong rank, wrong dtype, wrong kinds and counts."""
    placeholders = [n for n in module.graph.nodes if n.op == "placeholder"]
    args_spec, kwargs_spec = input_check._children(module._in_spec)
    num_args, names = args_spec.num_children, kwargs_spec.context

    def concrete(value):
        if not isinstance(value, torch.Tensor):
            return value
        return torch.zeros([int(s.node.hint) if isinstance(s, torch.SymInt) else s for s in value.shape], dtype=dtype)

    base = [concrete(n.meta["val"]) for n in placeholders]
    sizes = sorted({0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 15, 16, 17, 31, 32, 33, 64, 65, 127, 128})

    def split(flat):
        return tuple(flat[:num_args]), dict(zip(names, flat[num_args:]))

    yield split(base)
    for i, value in enumerate(base):
        if not isinstance(value, torch.Tensor):
            for other in (value + 1, float(value), str(value)):
                yield split(base[:i] + [other] + base[i + 1:])
            continue
        for dim, size in itertools.product(range(value.dim()), sizes):
            shape = list(value.shape)
            shape[dim] = size
            yield split(base[:i] + [torch.zeros(shape, dtype=dtype)] + base[i + 1:])
        yield split(base[:i] + [torch.zeros(*value.shape, 1)] + base[i + 1:])            # rank + 1
        yield split(base[:i] + [value.to(torch.float64)] + base[i + 1:])                  # dtype torch does not check
        yield split(base[:i] + [value.tolist()] + base[i + 1:])                           # not a tensor
    for size in sizes:  # every dynamic dim moves together (equal dims stay equal)
        flat = []
        for value in base:
            flat.append(torch.zeros([size if d > 1 else d for d in value.shape], dtype=dtype)
                        if isinstance(value, torch.Tensor) else value)
        yield split(flat)
    yield split(base[:-1])  # an input missing
    yield tuple(base) + (base[-1],), {}


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_the_fast_check_and_torchs_hook_agree_on_every_input(name):
    program, dtype = PROGRAMS[name]
    module = program.module()
    check = input_check.build(module)
    assert check is not None, f"{name}: the fast check should model this program"
    seen = {True: 0, False: 0}
    for args, kwargs in candidates(module, dtype):
        verdict = torch_accepts(module, args, kwargs)
        assert check.accepts(args, kwargs) == verdict, (name, [getattr(a, "shape", a) for a in args], kwargs)
        seen[verdict] += 1
    assert seen[True] > 3 and seen[False] > 3, seen  # both sides of every range were tried


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_with_the_fast_check_every_call_does_what_it_did_with_torchs_hook(name):
    """Whatever this torch checks where (pre-hook, guard code in the graph), a module with the fast check accepts,
    computes and refuses exactly as before, word for word."""
    program, dtype = PROGRAMS[name]
    plain, fast = program.module(), program.module()
    assert input_check.install(fast) is not None
    for args, kwargs in candidates(plain, dtype):
        theirs, ours = outcome(plain, args, kwargs), outcome(fast, args, kwargs)
        assert ours[0] == theirs[0], (name, [getattr(a, "shape", a) for a in args], theirs, ours)
        if theirs[0] == "ok":
            torch.testing.assert_close(ours[1], theirs[1], rtol=0, atol=0)
        else:
            assert ours[1] == theirs[1]


def test_install_replaces_the_hook_and_refusals_are_torchs_own_words():
    program, _ = PROGRAMS["pair"]
    plain, fast = program.module(), program.module()
    assert input_check.install(fast) is not None and input_check.install(fast) is None  # once
    [hook] = [h for h in fast._forward_pre_hooks.values() if getattr(h, "__name__", "") == input_check.HOOK_NAME]
    assert hook._trtpack_fast and hook.__wrapped__ is not None
    x, y = torch.randn(6, 5), torch.randn(6, 1)
    torch.testing.assert_close(fast(x, y), plain(x, y))
    for bad in [(torch.randn(11, 5), torch.randn(11, 1)), (torch.randn(5, 5), torch.randn(6, 1)),
                (torch.randn(5, 4), torch.randn(5, 1)), (torch.randn(2, 5), torch.randn(2, 1))]:
        with pytest.raises(Exception) as theirs:
            plain(*bad)
        with pytest.raises(Exception) as ours:
            fast(*bad)
        assert type(ours.value) is type(theirs.value) and str(ours.value) == str(theirs.value)


def test_unmodelled_inputs_keep_torchs_hook():
    class Nested(torch.nn.Module):
        def forward(self, xs):
            return xs[0] + xs[1]

    module = torch.export.export(Nested(), ([torch.randn(2), torch.randn(2)],)).module()
    assert input_check.build(module) is None and input_check.install(module) is None
    assert any(getattr(h, "__name__", "") == input_check.HOOK_NAME and not getattr(h, "_trtpack_fast", False)
               for h in module._forward_pre_hooks.values())


@pytest.fixture(scope="module")
def saved_fallback(tmp_path_factory):
    from tests.support import models

    model = models.eval_model(models.MLP)
    compiled = trtpack.compile(model, (torch.randn(4, 16),), dynamic_shapes=({0: _dim("batch", 3, 12)},),
                               targets=["sm86"], fallback=True, min_block_size=1)
    path = str(tmp_path_factory.mktemp("fast_check") / "mlp.ep")
    trtpack.save(compiled, path)
    return model, compiled, path


def test_a_loaded_program_refuses_the_same_inputs_with_the_same_error(saved_fallback, monkeypatch):
    model, _, path = saved_fallback
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = trtpack.load(path)
        monkeypatch.setattr(input_check, "install", lambda module: None)
        slow = trtpack.load(path)
    assert any(getattr(h, "_trtpack_fast", False) for m in fast.modules() for h in m._forward_pre_hooks.values())
    assert not any(getattr(h, "_trtpack_fast", False) for m in slow.modules() for h in m._forward_pre_hooks.values())
    for batch in (3, 7, 12):
        x = torch.randn(batch, 16)
        torch.testing.assert_close(fast(x), slow(x))
        torch.testing.assert_close(fast(x), model(x), rtol=1e-5, atol=1e-5)
    for x in (torch.randn(13, 16), torch.randn(64, 16), torch.randn(4, 15), torch.randn(4, 16, 1)):
        errors = []
        for program in (slow, fast):
            with pytest.raises(Exception) as caught:
                program(x)
            errors.append((type(caught.value), str(caught.value)))
        assert errors[0] == errors[1], errors
    with pytest.raises(trtpack.IncompatibleEngineError, match=r"outside the shapes this program was compiled for"):
        fast(torch.randn(13, 16))


def test_compile_returns_a_module_with_the_fast_check(saved_fallback):
    _, compiled, _ = saved_fallback
    hooks = [h for h in compiled._forward_pre_hooks.values() if getattr(h, "__name__", "") == input_check.HOOK_NAME]
    assert hooks and all(getattr(getattr(h, "__wrapped__", h), "_trtpack_fast", False) for h in hooks)
    with pytest.raises(trtpack.IncompatibleEngineError, match=r"outside the shapes"):
        compiled(torch.randn(13, 16))
