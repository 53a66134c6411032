"""Writes the seed corpus under fuzz/corpus/ (run once; the files are committed). Needs TensorRT-RTX for a real plan."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from fuzz import programs  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "tests", "fixtures", "records")


def write(target: str, name: str, data: bytes) -> None:
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def real_plan() -> bytes:
    import tensorrt_rtx as trt

    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    network = builder.create_network(0)
    x = network.add_input("x", trt.float32, (-1, 4))
    network.mark_output(network.add_activation(x, trt.ActivationType.RELU).get_output(0))
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 4), (2, 4), (32, 4))
    config.add_optimization_profile(profile)
    return bytes(builder.build_serialized_network(network, config))


def main() -> None:
    plan = programs.plan_tensor(64)
    meta = programs.meta_for(plan).encode()
    for name in sorted(os.listdir(FIXTURES)):
        if name.endswith(".json"):
            with open(os.path.join(FIXTURES, name), "rb") as f:
                write("meta", name, f.read())
    write("meta", "program.json", meta)
    header = bytes(plan.numpy())
    write("plan_header", "fake_header", header)
    write("plan_header", "short", header[:40])
    rtx = real_plan()
    write("plan_header", "real_rtx_plan_head", rtx[:512])
    write("engine", "valid", b"\0" + len(meta).to_bytes(2, "little") + meta + header)
    write("engine", "no_sidecar", b"\1\0\0" + header)
    write("engine", "real_rtx_plan_wrong_meta", b"\0" + len(meta).to_bytes(2, "little") + meta + rtx[:4096])
    for i, seed in enumerate([b"\1\0\0\0\0\0\0\0", b"\1" + bytes(range(64)), b"\3\1\2\3\4\5\6\7" * 8]):
        write("archive", f"structured_{i}", seed)
    write("archive", "not_a_zip", b"\0" + b"PK\3\4" + bytes(60))
    write("archive", "valid_program", b"\0" + saved_program())


def saved_program() -> bytes:
    import tempfile

    import trtpack

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "program.ep")
        trtpack.save(programs.exported(), path)
        with open(path, "rb") as f:
            return f.read()


if __name__ == "__main__":
    main()
