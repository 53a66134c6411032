"""trtpack.triton.write_repository and `trtpack triton`: config.pbtxt parsed by Triton's own ModelConfig message,
what is batched and how, what is refused (and that nothing is written then). No server here (test_triton_server)."""
import os

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

import trtpack
from tests.support import python_env
from tests.support.serving import MAX_BATCH, mlp_artifact
from trtpack.triton import write_repository


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("artifacts"))
    _, ep = mlp_artifact(folder)
    _, static = mlp_artifact(folder, dynamic=False)
    compiled = trtpack.load(ep)
    engine = os.path.join(folder, "mlp.engine")
    trtpack.save(compiled.program, engine)
    return {"ep": ep, "static": static, "engine": engine}


def parse(model_dir: str) -> model_config_pb2.ModelConfig:
    with open(os.path.join(model_dir, "config.pbtxt")) as f:
        return text_format.Parse(f.read(), model_config_pb2.ModelConfig())


def test_batched_fallback_program_config(artifacts, tmp_path):
    model_dir = write_repository(artifacts["ep"], tmp_path)
    config = parse(model_dir)
    assert config.name == "mlp" and config.backend == "python"
    assert config.max_batch_size == MAX_BATCH and config.HasField("dynamic_batching")
    assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == [("x", model_config_pb2.TYPE_FP32, [16])]
    assert [(t.name, t.data_type, list(t.dims)) for t in config.output] == [
        ("output_0", model_config_pb2.TYPE_FP32, [4])]
    assert [(g.kind, g.count) for g in config.instance_group] == [(model_config_pb2.ModelInstanceGroup.KIND_CPU, 1)]
    assert config.parameters["trtpack_artifact"].string_value == "model.ep"
    assert sorted(os.listdir(os.path.join(model_dir, "1"))) == ["model.ep", "model.py"]
    with open(artifacts["ep"], "rb") as a, open(os.path.join(model_dir, "1", "model.ep"), "rb") as b:
        assert a.read() == b.read()


def test_max_batch_size_below_the_compiled_max_and_never_above(artifacts, tmp_path):
    assert parse(write_repository(artifacts["ep"], tmp_path, "small", max_batch_size=4)).max_batch_size == 4
    with pytest.raises(trtpack.TrtpackError, match=r"max_batch_size=17 is above the compiled batch range .*\[1, 16\]"):
        write_repository(artifacts["ep"], tmp_path, "big", max_batch_size=MAX_BATCH + 1)
    assert not os.path.exists(tmp_path / "big")
    off = parse(write_repository(artifacts["ep"], tmp_path, "off", max_batch_size=0))
    assert off.max_batch_size == 0 and not off.HasField("dynamic_batching") and list(off.input[0].dims) == [-1, 16]


def test_static_program_is_not_batched(artifacts, tmp_path):
    config = parse(write_repository(artifacts["static"], tmp_path, instances=3))
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [2, 16] and list(config.output[0].dims) == [2, 4]
    assert config.instance_group[0].count == 3
    with pytest.raises(trtpack.TrtpackError, match="needs every input and output to start with one dynamic batch"):
        write_repository(artifacts["static"], tmp_path, "other", max_batch_size=2)


def test_engine_without_fallback_is_refused_for_cpu_with_the_reason(artifacts, tmp_path):
    with pytest.raises(trtpack.TrtpackError, match="cannot run on this machine's devices: engine 'trt_region_0': "
                       ".*no CUDA device.*no PyTorch fallback"):
        write_repository(artifacts["engine"], tmp_path)
    with pytest.raises(trtpack.TrtpackError, match="cannot be served on CPU instances: 'trt_region_0' has no "
                       "PyTorch fallback"):
        write_repository(artifacts["engine"], tmp_path, kind="cpu")
    assert os.listdir(tmp_path) == []
    config = parse(write_repository(artifacts["engine"], tmp_path, kind="gpu"))  # written for a GPU server
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert [t.name for t in config.input] == ["x"] and config.max_batch_size == MAX_BATCH
    assert sorted(os.listdir(tmp_path / "mlp" / "1")) == ["model.engine", "model.engine.json", "model.py"]


def test_same_model_again_is_a_no_op_a_different_one_is_refused(artifacts, tmp_path):
    model_dir = write_repository(artifacts["ep"], tmp_path, "m")
    before = {p: os.stat(os.path.join(model_dir, p)).st_mtime_ns for p in ("config.pbtxt", "1/model.ep")}
    assert write_repository(artifacts["ep"], tmp_path, "m") == model_dir
    assert before == {p: os.stat(os.path.join(model_dir, p)).st_mtime_ns for p in before}
    with pytest.raises(trtpack.TrtpackError, match="different config.pbtxt"):
        write_repository(artifacts["static"], tmp_path, "m")
    with pytest.raises(trtpack.TrtpackError, match="different config.pbtxt"):
        write_repository(artifacts["ep"], tmp_path, "m", max_batch_size=2)
    with open(os.path.join(model_dir, "1", "model.ep"), "r+b") as f:  # same config, different bytes in version 1
        f.seek(-1, os.SEEK_END)
        last = f.read(1)[0]
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last ^ 0xFF]))
    with pytest.raises(trtpack.TrtpackError, match="already holds a different model"):
        write_repository(artifacts["ep"], tmp_path, "m")
    write_repository(artifacts["ep"], tmp_path, "m", version=2)
    assert sorted(os.listdir(model_dir)) == ["1", "2", "config.pbtxt"]
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []  # no staging folder left


def test_bad_requests_are_refused_before_writing(artifacts, tmp_path):
    with pytest.raises(trtpack.TrtpackError, match="version must be an integer >= 1"):
        write_repository(artifacts["ep"], tmp_path, version=0)
    with pytest.raises(trtpack.TrtpackError, match="not a folder name"):
        write_repository(artifacts["ep"], tmp_path, name="../escape")
    with pytest.raises(trtpack.TrtpackError, match="kind must be auto, cpu or gpu"):
        write_repository(artifacts["ep"], tmp_path, kind="tpu")
    not_artifact = tmp_path / "notes.ep"
    not_artifact.write_text("hello")
    with pytest.raises(trtpack.FormatError):
        write_repository(str(not_artifact), tmp_path / "repo")
    assert not os.path.exists(tmp_path / "repo")


def test_cli_writes_and_prints_the_server_command(artifacts, tmp_path):
    code, out, err = python_env.run_cli("triton", artifacts["ep"], "--repo", str(tmp_path), "--name", "cli",
                                        "--max_batch_size", "8", "--instances", "2")
    assert code == 0, err
    assert "trtpack tritonserver" in out
    config = parse(str(tmp_path / "cli"))
    assert (config.max_batch_size, config.instance_group[0].count) == (8, 2)
    code, _, err = python_env.run_cli("triton", artifacts["ep"], "--repo", str(tmp_path), "--max_batch_size", "99")
    assert code == 1 and "above the compiled batch range" in err
    code, _, err = python_env.run_cli("triton", artifacts["ep"])
    assert code == 2 and "--repo" in err
