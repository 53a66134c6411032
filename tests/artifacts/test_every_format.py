"""Every program saves to every format (issue 22, item 5): a fresh compile, a program-cache hit and a program loaded
from an .ep each save as .ep, .pt2 and .engine, and each file loads back and computes the model (its PyTorch
reference branch: no engine runs here) or carries the compiled plan byte for byte. What cannot be saved is one line
saying why. One AOTInductor compile per source (~20 s each)."""
import os
import warnings

import pytest
import torch

import trtpack
from trtpack.artifacts import program as artifact

TARGETS = ["sm86"]
SOURCES = ["fresh", "cache_hit", "loaded_ep"]


class Masked(torch.nn.Module):
    """Two inputs, the second by keyword, two dynamic dims: the rebuilt example inputs must follow the structure."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(16, 16)

    def forward(self, x, mask):
        return torch.relu(self.linear(x) * mask + 1.0).sum(-1)


def quiet(call, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call(*args, **kwargs)


def inputs(batch, seq):
    return (torch.randn(batch, seq, 16),), {"mask": torch.rand(batch, seq, 1)}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    previous = os.environ.get("TRTPACK_CACHE_DIR")
    os.environ["TRTPACK_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))  # this module's own program cache
    try:
        model = Masked().eval()
        args, kwargs = inputs(4, 6)
        dims = {0: torch.export.Dim("batch", min=1, max=32), 1: torch.export.Dim("seq", min=1, max=64)}
        options = dict(kwarg_inputs=kwargs, dynamic_shapes={"x": dims, "mask": dims}, targets=TARGETS,
                       fallback=True, min_block_size=1)
        fresh = trtpack.compile(model, args, **options)
        hit = trtpack.compile(model, args, **options)
        assert (fresh.meta["trtpack_summary"]["program_cache"], hit.meta["trtpack_summary"]["program_cache"]) == \
            ("miss", "hit")
        assert hit._trtpack_program.example_inputs is None  # read back from the cache's .ep: what broke .pt2
        ep_path = str(tmp_path_factory.mktemp("source") / "source.ep")
        trtpack.save(fresh, ep_path)
        loaded = quiet(trtpack.load, ep_path)
        assert loaded.format == "exported_program"
        [engine] = artifact.engines(fresh._trtpack_program)
        yield model, {"fresh": fresh, "cache_hit": hit, "loaded_ep": loaded}, engine
    finally:
        if previous is None:
            os.environ.pop("TRTPACK_CACHE_DIR")
        else:
            os.environ["TRTPACK_CACHE_DIR"] = previous


def check_runs_like(model, program):
    for batch, seq in ((1, 1), (4, 6), (32, 64), (3, 17)):
        args, kwargs = inputs(batch, seq)
        torch.testing.assert_close(program(*args, **kwargs), model(*args, **kwargs), atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def saved(compiled, tmp_path_factory):
    """source -> {format: path}, each written once."""
    _, programs, _ = compiled
    found = {}
    for source, program in programs.items():
        folder = tmp_path_factory.mktemp(source)
        found[source] = {fmt: str(folder / f"model.{fmt}") for fmt in ("ep", "pt2", "engine")}
        for path in found[source].values():
            quiet(trtpack.save, program, path)
    return found


@pytest.mark.parametrize("source", SOURCES)
def test_every_source_saves_to_every_format(compiled, saved, source):
    model, _, engine = compiled
    paths = saved[source]
    for fmt, path in (("ep", paths["ep"]), ("pt2", paths["pt2"])):
        program = quiet(trtpack.load, path, trust_native_code=True)
        assert program.format == {"ep": "exported_program", "pt2": "aot_inductor"}[fmt]
        assert [(e.name, e.fallback) for e in program.engines] == [(engine.name, True)]
        check_runs_like(model, program)
        info = trtpack.inspect(path)
        assert sorted(map(tuple, info["symbols"].values())) == [(1, 32), (1, 64)]  # the compiled ranges, not 4 and 6
    with open(paths["engine"], "rb") as f:
        assert f.read() == engine.plan.numpy().tobytes()
    with open(paths["engine"] + ".json") as f:
        assert f.read() == engine.meta
    assert quiet(trtpack.load, paths["engine"]).engines[0].record == engine.record


def test_rebuilt_example_inputs_follow_the_programs_structure_dtypes_and_size_hints(compiled):
    _, programs, _ = compiled
    program = programs["cache_hit"]._trtpack_program
    args, kwargs = artifact.with_example_inputs(program).example_inputs
    assert [a.shape for a in args] == [(4, 6, 16)] and list(kwargs) == ["mask"] and kwargs["mask"].shape == (4, 6, 1)
    assert args[0].dtype == torch.float32 and args[0].device.type == "cpu"
    assert program.example_inputs is None  # a copy: the cached program itself is left as read
    fresh = programs["fresh"]._trtpack_program
    assert artifact.with_example_inputs(fresh) is fresh  # a fresh compile's own example inputs are kept


@pytest.mark.parametrize("fmt", ["ep", "pt2", "engine"])
def test_a_loaded_pt2_cannot_be_saved_and_says_why_in_one_line(saved, fmt, tmp_path):
    program = quiet(trtpack.load, saved["fresh"]["pt2"], trust_native_code=True)
    with pytest.raises(trtpack.TrtpackError, match=r"aot_inductor artifact.*compiled code, not a program.*save the "
                                                   r"\.ep it came from") as raised:
        trtpack.save(program, str(tmp_path / f"again.{fmt}"))
    assert "\n" not in str(raised.value)
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("fmt", ["ep", "pt2"])
def test_a_loaded_engine_saves_only_as_an_engine_and_says_why_in_one_line(saved, fmt, tmp_path):
    program = quiet(trtpack.load, saved["fresh"]["engine"])
    with pytest.raises(trtpack.TrtpackError, match=r"one plan and its record, not a program") as raised:
        trtpack.save(program, str(tmp_path / f"again.{fmt}"))
    assert "\n" not in str(raised.value)


class DataSized(torch.nn.Module):
    """A size computed from data while the program runs (.item(): an unbacked size u0), as Funnel's pooling does."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)

    def forward(self, x, count):
        y = torch.relu(self.a(x))
        n = count.sum().int().item()
        torch._check(n >= 1)
        torch._check(n <= 8)
        return self.b(torch.tanh(y[:, :n].sum(-1, keepdim=True) * y))


def test_a_program_with_sizes_computed_from_data_saves_and_keeps_only_its_input_dims(tmp_path):
    from trtpack import names

    model, x, count = DataSized().eval(), torch.randn(3, 8), torch.tensor([2, 3])
    module = quiet(trtpack.compile, model, (x, count), dynamic_shapes=({0: torch.export.Dim("batch", max=8)}, None),
                   targets=TARGETS, cache=False, fallback=True, min_block_size=1)
    summary = module.meta["trtpack_summary"]
    reasons = {item["op"]: item["reason"] for item in summary["left_in_pytorch"]}
    assert reasons["aten.slice.Tensor"] == "its output shape depends on the data (unbacked size)"
    assert reasons["aten.sum.dim_IntList"] == "an input's shape depends on the data (unbacked size)"
    assert len(summary["regions"]) == 3 and summary["ops_in_pytorch"] == 3
    ranges = names.program_ranges(module._trtpack_program)
    assert list(ranges.values()) == [(1, 8)] and not any(s.startswith(("u", "zuf")) for s in ranges)
    for suffix in (".ep", ".pt2"):
        path = str(tmp_path / f"data_sized{suffix}")
        trtpack.save(module, path)
        loaded = quiet(trtpack.load, path, **({"trust_native_code": True} if suffix == ".pt2" else {}))
        assert "u0" not in loaded.ranges
        for batch in (1, 5):
            y = torch.randn(batch, 8)
            torch.testing.assert_close(loaded(y, count), model(y, count))
