"""Assembles the trtpack wheel: the Python package plus its compiled libraries, byte-for-byte reproducible.

One wheel for every supported CPython (tag py3-none-PLATFORM): the record core is a C ABI library loaded with ctypes,
and libtorchtrt_runtime.so is used only under the torch it was built for (docs/PACKAGING.md)."""
import base64
import hashlib
import os
import sys
import zipfile

from absl import app, flags

flags.DEFINE_string("out", None, "wheel file to write", required=True)
flags.DEFINE_string("version", None, "trtpack version", required=True)
flags.DEFINE_string("tag", None, "wheel tag, e.g. py3-none-linux_x86_64", required=True)
flags.DEFINE_string("package_root", "py", "source folder that holds trtpack/")
FLAGS = flags.FLAGS

# The supported range (README, docs/PACKAGING.md); CI installs the wheel beside the newest torch of it.
REQUIRES_PYTHON = ">=3.10,<3.14"
REQUIRES = ["torch>=2.11,<2.16", "numpy", "onnx", "onnxscript", "onnxruntime", "absl-py", "safetensors"]
# TensorRT-RTX builds engines (trtpack.compile) and runs them; loading artifacts and their fallback needs neither.
EXTRAS = {"rtx": ["tensorrt-rtx-cu12>=1.7.1,<1.8"], "rtx-cu13": ["tensorrt-rtx-cu13>=1.7.1,<1.8"]}
EPOCH = (1980, 1, 1, 0, 0, 0)


def arcname(path: str) -> str:
    if path.endswith(".so"):
        return "trtpack/" + os.path.basename(path)
    marker = FLAGS.package_root.rstrip("/") + "/"
    return path[path.index(marker) + len(marker):]


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def main(argv):
    files = {arcname(p): open(p, "rb").read() for p in argv[1:]}
    dist = f"trtpack-{FLAGS.version}.dist-info"
    files[f"{dist}/METADATA"] = "\n".join(
        ["Metadata-Version: 2.1", "Name: trtpack", f"Version: {FLAGS.version}",
         "Summary: Compile PyTorch programs into TensorRT engines and ship them",
         f"Requires-Python: {REQUIRES_PYTHON}"] + [f"Requires-Dist: {r}" for r in REQUIRES] +
        [line for extra, reqs in EXTRAS.items() for line in
         [f"Provides-Extra: {extra}"] + [f'Requires-Dist: {r}; extra == "{extra}"' for r in reqs]]).encode() + b"\n"
    files[f"{dist}/WHEEL"] = (f"Wheel-Version: 1.0\nGenerator: trtpack build_wheel\nRoot-Is-Purelib: false\n"
                              f"Tag: {FLAGS.tag}\n").encode()
    files[f"{dist}/entry_points.txt"] = b"[console_scripts]\ntrtpack = trtpack.cli.main:main\n"
    record = [record_line(n, d) for n, d in sorted(files.items())] + [f"{dist}/RECORD,,"]
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(FLAGS.out, "w", zipfile.ZIP_DEFLATED) as whl:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, EPOCH)
            info.external_attr = (0o755 if name.endswith(".so") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            whl.writestr(info, files[name])


if __name__ == "__main__":
    app.run(main)
