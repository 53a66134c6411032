"""The engine cache: what its key covers (each part alone misses), hits that return the same bytes, damaged entries,
atomic writes, LRU eviction under the cap, two processes at once, and opting out. Every test uses its own
TRTPACK_CACHE_DIR. A second compile of the same model would hit the program cache in front (test_program_cache.py),
so tests that want the engine cache to answer remove the program entries first."""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

import trtpack
from tests.support import plans, python_env
from trtpack import _native, record
from trtpack.compiler import backends, engine_cache, partition, region
from trtpack.compiler.export import export_program
from trtpack.compiler.symbolic import SymbolTable
from torch.utils import _pytree as pytree


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRTPACK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TRTPACK_CACHE_MAX_MB", raising=False)
    return tmp_path / "cache" / "engines"


class Net(torch.nn.Module):
    def __init__(self, activation=torch.nn.ReLU(), width=16, dtype=torch.float32):
        super().__init__()
        torch.manual_seed(0)
        self.first, self.second = torch.nn.Linear(width, width), torch.nn.Linear(width, 4)
        self.activation = activation
        self.to(dtype)

    def forward(self, x):
        return self.second(self.activation(self.first(x)))


def _key(model, x, dims=None, *, targets=("sm86",), backend="tensorrt_rtx", min_block_size=1):
    program = export_program(model.eval(), (x,), dynamic_shapes=dims)
    gm = program.module()
    parts = partition.partition(gm, min_block_size)
    symbols = SymbolTable(program, pytree.tree_leaves(((x,), {})))
    (name,) = parts.regions
    spec = region.region_spec(gm, name, symbols)
    return region.engine_key(gm, name, spec, backends.get_backend(backend), list(targets), min_block_size)


class _FakeBuilderModule:
    def __init__(self, version):
        self.__version__ = version


def test_changing_any_one_input_of_the_plan_misses(monkeypatch):
    x = torch.randn(4, 16)
    batch = {0: torch.export.Dim("batch", min=1, max=32)}
    base = _key(Net(), x, (batch,))
    assert _key(Net(), x, (batch,)) == base  # the same model again hits

    changed_weights = Net()
    with torch.no_grad():
        changed_weights.first.weight[0, 0] += 1e-3
    variants = {
        "ops": _key(Net(torch.nn.GELU()), x, (batch,)),
        "attributes": _key(Net(torch.nn.LeakyReLU(0.2)), x, (batch,)) != _key(Net(torch.nn.LeakyReLU(0.3)), x,
                                                                                   (batch,)),
        "static shapes": _key(Net(), torch.randn(4, 16)) != _key(Net(), torch.randn(5, 16)),
        "dynamic range": _key(Net(), x, ({0: torch.export.Dim("batch", min=1, max=64)},)),
        "profile opt (example size)": _key(Net(), torch.randn(8, 16), (batch,)),
        "dtypes": _key(Net(dtype=torch.float16), x.half(), (batch,)),
        "weights": _key(changed_weights, x, (batch,)),
        "targets": _key(Net(), x, (batch,), targets=["sm89"]),
        "builder options": _key(Net(), x, (batch,), min_block_size=2),
    }
    version = backends.get_backend("tensorrt_rtx").load().__version__
    with monkeypatch.context() as patch:
        patch.setattr(backends.TensorRTRTX, "load", lambda self: _FakeBuilderModule(version + ".1"))
        variants["backend version"] = _key(Net(), x, (batch,))
    with monkeypatch.context() as patch:
        patch.setattr(backends.TensorRT, "load", lambda self: _FakeBuilderModule(version))
        variants["backend"] = _key(Net(), x, (batch,), backend="tensorrt")
    with monkeypatch.context() as patch:
        patch.setattr(record, "FORMAT_VERSION", (record.FORMAT_VERSION[0], record.FORMAT_VERSION[1] + 1))
        variants["format version"] = _key(Net(), x, (batch,))
    with monkeypatch.context() as patch:
        patch.setattr(_native.core, "__version__", _native.core.__version__ + ".dev1")  # what keys read
        variants["trtpack version"] = _key(Net(), x, (batch,))
    for what, key in variants.items():
        assert key is True or (isinstance(key, str) and key != base), what


def _compile(model, x, **kwargs):
    return trtpack.compile(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=8)},),
                           targets=["sm86"], min_block_size=1, **kwargs)


def _without_program_cache(own_cache):
    shutil.rmtree(own_cache.parent / "programs", ignore_errors=True)


def test_a_second_compile_hits_and_returns_byte_identical_plans(own_cache):
    model, x = Net().eval(), torch.randn(4, 16)
    cold = _compile(model, x)
    assert cold.meta["trtpack_summary"]["cache_hits"] == 0
    engines = engine_cache.info()["folders"]["engines"]
    assert engines["entries"] == 1 and engines["path"] == str(own_cache)
    _without_program_cache(own_cache)
    warm = _compile(model, x)
    summary = warm.meta["trtpack_summary"]
    assert summary["cache_hits"] == 1 and "build" not in summary["regions"][0]["seconds"]
    assert plans.of_compiled(warm) == plans.of_compiled(cold)
    uncached = _compile(model, x, cache=False)
    assert uncached.meta["trtpack_summary"]["cache_hits"] == 0
    assert plans.of_compiled(uncached) == plans.of_compiled(cold)  # builds are deterministic: what was cached is right


def test_cache_false_neither_reads_nor_writes(own_cache):
    _compile(Net().eval(), torch.randn(4, 16), cache=False)
    assert not own_cache.exists() or not os.listdir(own_cache)
    assert engine_cache.info()["entries"] == 0


@pytest.mark.parametrize("damage", ["truncate", "flip a plan byte", "garbage header"])
def test_a_damaged_entry_is_reported_once_removed_and_rebuilt(own_cache, damage):
    model, x = Net().eval(), torch.randn(4, 16)
    cold = _compile(model, x)
    (entry,) = own_cache.iterdir()
    data = bytearray(entry.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip a plan byte":
        data[-10] ^= 0xFF
    else:
        data[:16] = b"\xff" * 16
    entry.write_bytes(bytes(data))
    _without_program_cache(own_cache)
    with pytest.warns(UserWarning, match="damaged") as caught:
        again = _compile(model, x)
    assert len([w for w in caught if "damaged" in str(w.message)]) == 1
    assert again.meta["trtpack_summary"]["cache_hits"] == 0  # rebuilt
    assert plans.of_compiled(again) == plans.of_compiled(cold)
    key = entry.name.removesuffix(engine_cache.ENTRY_SUFFIX)
    assert engine_cache.get(key) is not None  # the rebuilt entry is whole


def test_writes_are_atomic_and_a_failed_write_leaves_nothing(own_cache, monkeypatch):
    entry = engine_cache.Entry(plan=b"p" * 1000, meta="{}", targets=["sm86"])
    engine_cache.put("a" * 64, entry)
    assert sorted(p.name for p in own_cache.iterdir()) == ["a" * 64 + engine_cache.ENTRY_SUFFIX]  # no temporary left

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.warns(UserWarning, match="could not write the engine cache entry"):
        engine_cache.put("b" * 64, entry)
    assert sorted(p.name for p in own_cache.iterdir()) == ["a" * 64 + engine_cache.ENTRY_SUFFIX]
    assert engine_cache.get("b" * 64) is None and engine_cache.get("a" * 64) == entry


def test_the_least_recently_used_entries_go_when_the_cap_is_exceeded(own_cache, monkeypatch):
    entry = engine_cache.Entry(plan=b"p" * 1000, meta="{}", targets=["sm86"])
    for index, key in enumerate(["1" * 64, "2" * 64, "3" * 64]):
        engine_cache.put(key, entry)
        os.utime(own_cache / (key + engine_cache.ENTRY_SUFFIX), (1000 + index, 1000 + index))
    size = (own_cache / ("1" * 64 + engine_cache.ENTRY_SUFFIX)).stat().st_size
    monkeypatch.setenv("TRTPACK_CACHE_MAX_MB", str(3.5 * size / 1e6))  # room for three entries
    assert engine_cache.get("1" * 64) == entry  # a hit makes the oldest the most recently used
    engine_cache.put("4" * 64, entry)
    assert sorted(p.name[0] for p in own_cache.iterdir()) == ["1", "3", "4"]
    info = engine_cache.info()
    assert info["entries"] == 3 and info["bytes"] <= info["max_bytes"] < 4 * size
    assert engine_cache.clear() == 3 and engine_cache.info()["entries"] == 0


# Self-contained (no import of this test file, which would import pytest under Bazel's runfiles).
_CHILD = textwrap.dedent("""
    import torch, trtpack
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).eval()
    module = trtpack.compile(model, (torch.randn(4, 16),), targets=["sm86"], min_block_size=1)
    print("hits", module.meta["trtpack_summary"]["cache_hits"], module.meta["trtpack_summary"]["program_cache"])
""")


def test_two_processes_compiling_the_same_model_at_once_both_succeed(own_cache):
    children = [subprocess.Popen([sys.executable, "-c", _CHILD], env=python_env.env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [child.communicate(timeout=600) for child in children]
    for child, (out, err) in zip(children, results):
        assert child.returncode == 0, err[-2000:]
        assert "hits" in out
    (entry,) = own_cache.iterdir()
    assert engine_cache.get(entry.name.removesuffix(engine_cache.ENTRY_SUFFIX)) is not None
    again = subprocess.run([sys.executable, "-c", _CHILD], env=python_env.env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "hits 1 hit" in again.stdout  # whole entries, read back by a third process
    assert "damaged" not in again.stderr
    assert sorted(p.suffix for p in (own_cache.parent / "programs").iterdir()) == [".ep", ".json"]
    _without_program_cache(own_cache)
    again = subprocess.run([sys.executable, "-c", _CHILD], env=python_env.env(), capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0 and "hits 1 miss" in again.stdout and "damaged" not in again.stderr
