"""The program cache: what its key covers (each part alone misses), a hit that skips decomposition and returns what a
cold compile returns (same plans, same outputs, same kind of module), damaged entries, opting out, and info/clear/
eviction over both cache folders. Two processes at once: test_cache.py. Every test uses its own TRTPACK_CACHE_DIR."""
import collections
import io
import os
import re
import sys

import pytest
import torch

import trtpack
from tests.support import plans
from trtpack import _native, record
from trtpack.compiler import backends, engine_cache, decomposition, program_cache
from trtpack.runtime.branches import DecidedBranch

BATCH = torch.export.Dim("batch", min=1, max=8)


@pytest.fixture(autouse=True)
def programs(tmp_path, monkeypatch):
    monkeypatch.setenv("TRTPACK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TRTPACK_CACHE_MAX_MB", raising=False)
    return tmp_path / "cache" / "programs"


class Net(torch.nn.Module):
    def __init__(self, activation=torch.nn.ReLU(), dtype=torch.float32):
        super().__init__()
        torch.manual_seed(0)
        self.first, self.second = torch.nn.Linear(16, 16), torch.nn.Linear(16, 4)
        self.activation = activation
        self.to(dtype).eval()

    def forward(self, x):
        return self.second(self.activation(self.first(x)))


class _Stop(Exception):
    pass


def _key(monkeypatch, model, x, dims=({0: BATCH},), **options):
    """The program cache key compile computes (compile stops right after it: no decomposition, no build)."""
    seen = []

    def stop(key, exported):
        seen.append(key)
        raise _Stop

    with monkeypatch.context() as patch:
        patch.setattr(program_cache, "get", stop)
        with pytest.raises(_Stop):
            trtpack.compile(model, (x,), dynamic_shapes=dims, **{"targets": ["sm86"], "min_block_size": 1,
                                                                          **options})
    return seen[0]


class _FakeBuilderModule:
    def __init__(self, version):
        self.__version__ = version


def test_changing_any_one_input_of_the_program_misses(monkeypatch):
    x = torch.randn(4, 16)
    base = _key(monkeypatch, Net(), x)
    assert _key(monkeypatch, Net(), x) == base  # the same model (a new instance, same weights) again hits
    changed_weights = Net()
    with torch.no_grad():
        changed_weights.first.weight[0, 0] += 1e-3
    variants = {
        "a weight value": _key(monkeypatch, changed_weights, x),
        "an op": _key(monkeypatch, Net(torch.nn.GELU()), x),
        "an op's argument": _key(monkeypatch, Net(torch.nn.LeakyReLU(0.2)), x) != _key(
            monkeypatch, Net(torch.nn.LeakyReLU(0.3)), x),
        "dtypes": _key(monkeypatch, Net(dtype=torch.float16), x.half()),
        "a static input shape": _key(monkeypatch, Net(), x, None) != _key(monkeypatch, Net(), torch.randn(5, 16), None),
        "static instead of dynamic": _key(monkeypatch, Net(), x, None),
        "a dynamic range": _key(monkeypatch, Net(), x, ({0: torch.export.Dim("batch", min=1, max=16)},)),
        "the example size (profile opt)": _key(monkeypatch, Net(), torch.randn(5, 16)),
        "targets": _key(monkeypatch, Net(), x, targets=["sm89"]),
        "fallback": _key(monkeypatch, Net(), x, fallback=True),
        "min_block_size": _key(monkeypatch, Net(), x, min_block_size=2),
    }
    version = backends.get_backend("tensorrt_rtx").load().__version__
    with monkeypatch.context() as patch:
        patch.setattr(backends.TensorRTRTX, "load", lambda self: _FakeBuilderModule(version + ".1"))
        variants["backend version"] = _key(monkeypatch, Net(), x)
    with monkeypatch.context() as patch:
        patch.setattr(backends.TensorRT, "load", lambda self: _FakeBuilderModule(version))
        variants["backend"] = _key(monkeypatch, Net(), x, backend="tensorrt")
    with monkeypatch.context() as patch:
        patch.setattr(record, "FORMAT_VERSION", (record.FORMAT_VERSION[0], record.FORMAT_VERSION[1] + 1))
        variants["format version"] = _key(monkeypatch, Net(), x)
    with monkeypatch.context() as patch:
        patch.setattr(_native.core, "__version__", _native.core.__version__ + ".dev1")  # what keys read
        variants["trtpack version"] = _key(monkeypatch, Net(), x)
    for what, key in variants.items():
        assert key is True or (isinstance(key, str) and key != base), what


def test_an_exported_program_is_keyed_on_that_program(monkeypatch):
    x = torch.randn(4, 16)
    exported = torch.export.export(Net(), (x,), dynamic_shapes=({0: BATCH},))
    from_program = _key(monkeypatch, exported, x, None)
    assert from_program == _key(monkeypatch, exported, x, None)
    other = torch.export.export(Net(torch.nn.GELU()), (x,), dynamic_shapes=({0: BATCH},))
    assert _key(monkeypatch, other, x, None) != from_program


def _compile(model, x, **options):
    return trtpack.compile(model, (x,), dynamic_shapes=({0: BATCH},), targets=["sm86"], min_block_size=1,
                           fallback=True, **options)


def test_a_hit_skips_decomposition_and_returns_what_the_cold_compile_returned(programs, monkeypatch, tmp_path):
    model, x = Net(), torch.randn(4, 16)
    cold = _compile(model, x)
    assert cold.meta["trtpack_summary"]["program_cache"] == "miss"
    assert sorted(p.suffix for p in programs.iterdir()) == [".ep", ".json"]

    def refuse(program):
        raise AssertionError("decomposed on a program cache hit")

    monkeypatch.setattr(decomposition, "decompose", refuse)
    with pytest.raises(AssertionError, match="decomposed"):  # the patch is in the path a miss takes
        _compile(model, x, cache=False)
    warm = _compile(model, x)

    assert plans.of_compiled(warm) == plans.of_compiled(cold)  # byte-identical plans and records
    for batch in (1, 4, 8):  # fallback=True: the PyTorch reference branch runs here
        inputs = torch.randn(batch, 16)
        assert torch.equal(warm(inputs), cold(inputs))
    assert isinstance(warm, torch.fx.GraphModule)
    assert isinstance(warm._trtpack_program, torch.export.ExportedProgram)
    assert any(isinstance(m, DecidedBranch) for m in warm.modules())  # fallback resolved, as a cold compile does
    with pytest.raises(trtpack.IncompatibleEngineError, match=r"in \[1, 8\]"):  # the compiled ranges, in words
        warm(torch.randn(9, 16))

    summary, cold_summary = warm.meta["trtpack_summary"], cold.meta["trtpack_summary"]
    assert summary["program_cache"] == "hit" and summary["cache_hits"] == len(summary["regions"]) == 1
    assert all(region["cache_hit"] and region["seconds"] == {} for region in summary["regions"])
    assert set(summary["seconds"]) == {"export", "program_cache", "total"}
    assert summary["seconds"]["total"] < cold_summary["seconds"]["total"]
    same = ("backend", "requested_targets", "fallback", "min_block_size", "ops_in_engines", "left_in_pytorch")
    assert {k: summary[k] for k in same} == {k: cold_summary[k] for k in same}
    trtpack.save(warm, tmp_path / "warm.ep")
    assert torch.equal(trtpack.load(tmp_path / "warm.ep")(x), cold(x))


@pytest.mark.parametrize("damage", ["truncate the program", "flip a program byte", "garbage summary"])
def test_a_damaged_entry_is_reported_once_removed_and_rebuilt(programs, damage):
    model, x = Net(), torch.randn(4, 16)
    cold = _compile(model, x)
    (program_file,) = programs.glob("*.ep")
    (summary_file,) = programs.glob("*.json")
    if damage == "truncate the program":
        program_file.write_bytes(program_file.read_bytes()[: program_file.stat().st_size // 2])
    elif damage == "flip a program byte":
        data = bytearray(program_file.read_bytes())
        data[len(data) // 2] ^= 0xFF
        program_file.write_bytes(bytes(data))
    else:
        summary_file.write_text("{not json")
    with pytest.warns(UserWarning, match="damaged") as caught:
        again = _compile(model, x)
    assert len([w for w in caught if "program cache entry" in str(w.message)]) == 1
    assert again.meta["trtpack_summary"]["program_cache"] == "miss"
    assert plans.of_compiled(again) == plans.of_compiled(cold)
    assert _compile(model, x).meta["trtpack_summary"]["program_cache"] == "hit"  # the rebuilt entry is whole


def test_cache_false_leaves_both_folders_empty(programs):
    module = _compile(Net(), torch.randn(4, 16), cache=False)
    assert module.meta["trtpack_summary"]["program_cache"] == "off"
    for folder in (programs, programs.parent / "engines"):
        assert not folder.exists() or not os.listdir(folder)
    assert engine_cache.info()["entries"] == 0


def test_verify_compiles_every_time():
    model, x = Net(), torch.randn(4, 16)
    _compile(model, x)
    again = _compile(model, x, verify=True)
    assert again.meta["trtpack_summary"]["program_cache"] == "off"
    assert "max_abs_error" in again.meta["trtpack_summary"]["regions"][0]


def test_info_clear_and_the_cap_cover_both_folders(programs, monkeypatch):
    _compile(Net(), torch.randn(4, 16))
    info = engine_cache.info()
    assert info["path"] == str(programs.parent) and info["entries"] == 2
    assert {name: f["entries"] for name, f in info["folders"].items()} == {"engines": 1, "programs": 1}
    assert info["folders"]["programs"]["bytes"] == sum(p.stat().st_size for p in programs.iterdir())
    assert info["bytes"] == sum(f["bytes"] for f in info["folders"].values())

    for path in programs.iterdir():  # the program is the least recently used entry
        os.utime(path, (1000, 1000))
    monkeypatch.setenv("TRTPACK_CACHE_MAX_MB", str((info["folders"]["engines"]["bytes"] + 2000) / 1e6))
    entry = engine_cache.Entry(plan=b"p" * 1000, meta="{}", targets=["sm86"])
    engine_cache.put("f" * 64, entry)  # needs the program's room
    assert list(programs.iterdir()) == []  # evicted as a whole, both files
    assert engine_cache.info()["folders"]["engines"]["entries"] == 2

    monkeypatch.delenv("TRTPACK_CACHE_MAX_MB")
    _compile(Net(torch.nn.GELU()), torch.randn(4, 16))
    assert engine_cache.info()["folders"]["programs"]["entries"] == 1
    before = engine_cache.info()["entries"]
    assert before == 4 and engine_cache.clear() == before
    assert engine_cache.info()["entries"] == 0 and list(programs.iterdir()) == []


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_sees_the_program_cache_miss_then_hit(monkeypatch):
    model, x = Net(), torch.randn(4, 16)
    shown = []
    for _ in range(2):
        terminal = _Terminal()
        with monkeypatch.context() as patch:
            patch.setattr(sys, "stdout", terminal)
            _compile(model, x)
        shown.append([line.split("\r\x1b[K")[-1] for line in terminal.getvalue().split("\n") if line])
    assert any(re.fullmatch(r"trtpack \[ *\d+\.\ds\] program cache: miss \d+\.\d\ds", line) for line in shown[0])
    assert any("decompose" in line for line in shown[0])
    assert any(re.fullmatch(r"trtpack \[ *\d+\.\ds\] program cache: hit \d+\.\d\ds", line) for line in shown[1])
    assert not any("decompose" in line or "trt_region" in line for line in shown[1])


Pair = collections.namedtuple("Pair", "first second")  # not registered for serialization: torch cannot save it


class PairNet(Net):
    def forward(self, x):
        return Pair(super().forward(x), x)


def test_a_program_trtpack_cannot_save_is_compiled_every_time_without_a_warning(programs, recwarn):
    model, x = PairNet(), torch.randn(4, 16)
    for _ in range(2):
        module = _compile(model, x)
        assert module.meta["trtpack_summary"]["program_cache"] == "miss"
        assert isinstance(module(x), Pair)
    assert not programs.exists() or list(programs.glob("*.ep")) == []
    assert not [w for w in recwarn if "cache" in str(w.message)]
