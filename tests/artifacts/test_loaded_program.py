"""One loaded-program type for every format, a save that keeps what was compiled, and an inspect that reads only the
manifest or sidecar. Real TensorRT-RTX plans built on this CPU machine; no engine can run here."""
import os
import warnings

import pytest
import torch

import trtpack
from trtpack.artifacts import ep
from tests.support import models

TARGETS = ["sm86"]


class TwoInputs(torch.nn.Module):
    """A model called with keywords; one engine takes both inputs by their names."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 8)

    def forward(self, x, mask):
        return torch.relu(self.linear(x) * mask + 1.0)


def batch(high):
    return torch.export.Dim("batch", min=1, max=high)


@pytest.fixture(scope="module")
def keyword_engine(tmp_path_factory):
    model = TwoInputs().eval()
    kwargs = {"x": torch.randn(4, 8), "mask": torch.rand(4, 8)}
    module = trtpack.compile(model, (), kwarg_inputs=kwargs, dynamic_shapes={"x": {0: batch(32)}, "mask": {0: batch(32)}},
                             targets=TARGETS, min_block_size=1)
    path = str(tmp_path_factory.mktemp("kw") / "two.engine")
    trtpack.save(module, path)
    return module, path


@pytest.fixture(scope="module")
def mlp_fallback():
    model = models.eval_model(models.MLP)
    x = torch.randn(4, 16)
    return model, x, trtpack.compile(model, (x,), dynamic_shapes=({0: batch(64)},), targets=TARGETS, fallback=True)


def load_quiet(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return trtpack.load(path, **kwargs)


def test_an_engine_file_loads_as_the_same_type_and_takes_the_models_keywords(keyword_engine):
    module, path = keyword_engine
    program = load_quiet(path)
    assert isinstance(program, trtpack.LoadedProgram) and isinstance(program, torch.nn.Module)
    assert program.format == "engine"
    [engine] = program.engines
    assert [spec["name"] for spec in engine.record["inputs"]] == ["x", "mask"]
    assert engine.plan.numel() == engine.record["plan_size"] and not engine.fallback
    assert [s["name"] for s in program.input_specs] == ["x", "mask"]
    x, mask = torch.randn(2, 8), torch.rand(2, 8)
    for call in (lambda: program(x, mask), lambda: program(x=x, mask=mask), lambda: program(x, mask=mask)):
        # The inputs reach the engine (no GPU here): the refusal names what the engine needs.
        with pytest.raises(trtpack.IncompatibleEngineError, match=r"sm86.*TensorRT-RTX 1\.7\.1\.116"):
            call()
    with pytest.raises(trtpack.TrtpackError, match=r"takes 2 inputs \(x, mask\).*unknown keywords \['y'\]"):
        program(x, y=mask)
    with pytest.raises(trtpack.TrtpackError, match=r"takes 2 inputs \(x, mask\), got 1 positional and 0 by name"):
        program(x)


def test_a_loaded_engine_saves_again_as_an_engine(keyword_engine, tmp_path):
    _, path = keyword_engine
    program = load_quiet(path)
    again = str(tmp_path / "again.engine")
    trtpack.save(program, again)
    assert open(again, "rb").read() == open(path, "rb").read()
    assert open(again + ".json").read() == open(path + ".json").read()
    with pytest.raises(trtpack.TrtpackError, match="cannot be exported again"):
        trtpack.save(program, str(tmp_path / "again.ep"))


def test_save_with_example_inputs_keeps_the_compiled_dynamic_shapes(mlp_fallback, tmp_path):
    model, x, module = mlp_fallback
    path = str(tmp_path / "mlp.ep")
    trtpack.save(module, path, arg_inputs=(x,))  # the Torch-TensorRT habit: must not freeze batch 4
    program = load_quiet(path)
    assert program.format == "exported_program" and program.engines[0].fallback
    for size in (1, 17, 64):
        batch_input = torch.randn(size, 16)
        torch.testing.assert_close(program(batch_input), model(batch_input), atol=1e-5, rtol=1e-5)
    assert list(trtpack.inspect(path)["symbols"].values()) == [[1, 64]]


def test_save_writes_the_compiled_program_itself_unless_new_ranges_are_given(mlp_fallback, monkeypatch, tmp_path):
    _, x, module = mlp_fallback
    written = []
    monkeypatch.setattr(ep, "write", lambda program, found, path: written.append(program))
    trtpack.save(module, str(tmp_path / "a.ep"))
    trtpack.save(module, str(tmp_path / "b.ep"), arg_inputs=(x,))
    assert written[0] is module._trtpack_program and written[1] is module._trtpack_program


def test_new_dynamic_shapes_that_narrow_the_compiled_ranges_are_named(mlp_fallback, tmp_path):
    model, x, module = mlp_fallback
    path = str(tmp_path / "narrow.ep")
    with pytest.warns(UserWarning, match=r"narrow what was compiled \(input 0 dim 0: \[1, 64\] -> \[1, 8\]\)"):
        trtpack.save(module, path, arg_inputs=(x,), dynamic_shapes=({0: batch(8)},))
    assert list(trtpack.inspect(path)["symbols"].values()) == [[1, 8]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same ranges again: nothing narrowed, no warning
        trtpack.save(module, str(tmp_path / "same.ep"), arg_inputs=(x,), dynamic_shapes=({0: batch(64)},))


def test_inspect_reads_the_manifest_and_never_the_program(mlp_fallback, monkeypatch, tmp_path):
    _, _, module = mlp_fallback
    path = str(tmp_path / "mlp.ep")
    trtpack.save(module, path)

    def refuse(*args, **kwargs):
        raise AssertionError("inspect loaded the program")

    monkeypatch.setattr(torch.export, "load", refuse)
    monkeypatch.setattr(ep, "read", refuse)
    info = trtpack.inspect(path)
    assert info["format"] == "exported_program" and info["inputs"] == ["x"] and info["outputs"]
    assert info["engines"][0]["targets"] == TARGETS and info["fallback"] and info["runs_here"]


def test_the_format_comes_from_the_bytes_not_the_name(keyword_engine, mlp_fallback, tmp_path):
    _, engine_path = keyword_engine
    _, _, module = mlp_fallback
    ep_path = str(tmp_path / "program.ep")
    trtpack.save(module, ep_path)
    renamed = str(tmp_path / "program.engine")
    os.rename(ep_path, renamed)
    assert trtpack.inspect(renamed)["format"] == "exported_program"
    assert load_quiet(renamed).format == "exported_program"
    odd = str(tmp_path / "no_suffix")
    os.rename(engine_path, odd)
    os.rename(engine_path + ".json", odd + ".json")
    try:
        assert load_quiet(odd).format == "engine"
    finally:
        os.rename(odd, engine_path)
        os.rename(odd + ".json", engine_path + ".json")


def test_a_folder_or_fifo_is_refused_as_not_a_regular_file(tmp_path):
    fifo = str(tmp_path / "pipe.ep")
    os.mkfifo(fifo)
    for path in (str(tmp_path), fifo):
        with pytest.raises(trtpack.FormatError, match="not a regular file"):
            trtpack.load(path)
        with pytest.raises(trtpack.FormatError, match="not a regular file"):
            trtpack.inspect(path)


def test_the_manifest_trtpack_writes_follows_its_schema(mlp_fallback, tmp_path):
    import json
    import zipfile

    import jsonschema

    _, _, module = mlp_fallback
    path = str(tmp_path / "mlp.ep")
    trtpack.save(module, path)
    with zipfile.ZipFile(path) as z:
        [entry] = [n for n in z.namelist() if n.endswith("/extra/trtpack/manifest.json")]
        written = json.loads(z.read(entry))
    with open(os.path.join("docs", "manifest.schema.json")) as f:
        jsonschema.validate(written, json.load(f))
    assert written["format_version"] == [1, 2]
    assert [(s["name"], s["dtype"], s["shape"][1]) for s in written["program"]["inputs"]] == [("x", "float32", 16)]


@pytest.mark.parametrize("raised", [
    AssertionError("Guard failed: x.size()[0] <= 16"),                                   # torch 2.13's guard code
    RuntimeError("Expected input at *args[0].shape[0] to be <= 16, but got 17"),          # torch 2.11's check
])
def test_both_torch_versions_shape_refusals_become_incompatible_engine_errors(raised):
    from trtpack import error_translation

    def program(x):
        raise raised

    with pytest.raises(trtpack.IncompatibleEngineError, match=r"outside the shapes .*16.*Compiled ranges: s0 in \[1, 16\]"):
        error_translation.call(program, (torch.randn(17, 4),), {}, "s0 in [1, 16]")
    with pytest.raises(RuntimeError, match="unrelated"):  # anything else passes through unchanged
        error_translation.call(lambda: (_ for _ in ()).throw(RuntimeError("unrelated")), (), {}, "")


class Tied(torch.nn.Module):
    """Two names for one weight (tied embeddings, a class token used twice): torch stores the storage once."""

    def __init__(self):
        super().__init__()
        self.first = torch.nn.Linear(4, 4)
        self.second = torch.nn.Linear(4, 4)
        self.second.weight = self.first.weight

    def forward(self, x):
        return self.second(torch.relu(self.first(x)))


def test_tied_weights_load_back(tmp_path):
    model, x = Tied().eval(), torch.randn(2, 4)
    path = str(tmp_path / "tied.ep")
    trtpack.save(torch.export.export(model, (x,)), path)
    torch.testing.assert_close(load_quiet(path)(x), model(x))


class Classifier(torch.nn.Module):
    """Returns its output by name, as Hugging Face models do (`.logits`)."""

    def __init__(self):
        super().__init__()
        self.hidden, self.head = torch.nn.Linear(16, 16), torch.nn.Linear(16, 4)

    def forward(self, x):
        return {"logits": self.head(torch.relu(self.hidden(x)))}


def test_inspect_shows_the_users_dim_names_and_output_names(tmp_path):
    from trtpack.cli import artifact_commands

    x = torch.randn(2, 3, 16)
    dims = {0: torch.export.Dim("batch", max=8), 1: torch.export.Dim("seq", max=32)}
    module = trtpack.compile(Classifier().eval(), (x,), dynamic_shapes=(dims,), targets=TARGETS, min_block_size=1,
                             fallback=True, cache=False)
    path = str(tmp_path / "classifier.ep")
    trtpack.save(module, path)
    info = trtpack.inspect(path)
    assert info["outputs"] == ["logits"]
    assert sorted(info["dim_names"].values()) == ["batch", "seq"] and set(info["dim_names"]) == set(info["symbols"])
    [engine] = info["engines"]
    assert engine["dim_names"] == {"s0": "batch", "s1": "seq"}
    text = artifact_commands.format_inspect(info)
    assert "outputs: logits" in text and "x:float32[batch, seq, 16]" in text
    for symbol, name in info["dim_names"].items():
        assert f"symbol {name} ({symbol}): [" in text
    torch.testing.assert_close(load_quiet(path)(x)["logits"], module(x)["logits"])
