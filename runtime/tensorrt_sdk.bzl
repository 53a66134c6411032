"""tensorrt_sdk_repository: the TensorRT SDK at $TENSORRT_ROOT and the CUDA toolkit at $CUDA_HOME, for
`--config=tensorrt` builds of runtime/'s C++ executor only. The default build never uses this repository.

$TENSORRT_ROOT holds include/NvInfer.h and lib/ with libnvinfer.so (TensorRT) or libtensorrt_rtx.so
(TensorRT-RTX); which one decides the backend the executor reports. Without $TENSORRT_ROOT the repository
still loads, and compiling the executor stops at a stand-in header saying what to set.
"""

_BUILD = """
package(default_visibility = ["//visibility:public"])

cc_library(
    name = "tensorrt",
    hdrs = glob(["include/**/*.h"]),
    includes = ["include"],
    srcs = {libs},
    defines = ['TRTPACK_TRT_BACKEND=\\\\"{backend}\\\\"'],
    deps = [":cuda"],
)

cc_library(
    name = "cuda",
    hdrs = glob(["cuda_include/**/*.h", "cuda_include/**/*.hpp"], allow_empty = True),
    includes = ["cuda_include"],
    srcs = {cuda_libs},
)
"""

_MISSING = """#error "trtpack: --config=tensorrt needs a TensorRT SDK: export TENSORRT_ROOT=/path/to/TensorRT (the folder holding include/NvInfer.h and lib/), then rebuild."
"""

def _first(ctx, paths):
    for p in paths:
        if ctx.path(p).exists:
            return p
    return None

def _tensorrt_sdk_impl(ctx):
    root = ctx.os.environ.get("TENSORRT_ROOT", "")
    if root and not root.startswith("/"):
        root = str(ctx.path(Label("//:WORKSPACE")).dirname) + "/" + root
    cuda = ctx.os.environ.get("CUDA_HOME", "") or "/usr/local/cuda"
    libs, backend = [], "tensorrt"
    if root and ctx.path(root + "/include/NvInfer.h").exists:
        ctx.symlink(root + "/include", "include")
        rtx = _first(ctx, [root + "/lib/libtensorrt_rtx.so", root + "/lib64/libtensorrt_rtx.so"])
        full = _first(ctx, [root + "/lib/libnvinfer.so", root + "/lib64/libnvinfer.so"])
        if rtx:
            ctx.symlink(rtx, "lib/libtensorrt_rtx.so")
            libs, backend = ["lib/libtensorrt_rtx.so"], "tensorrt_rtx"
        elif full:
            ctx.symlink(full, "lib/libnvinfer.so")
            libs = ["lib/libnvinfer.so"]
    else:
        ctx.file("include/NvInferRuntime.h", _MISSING)
    cuda_libs = []
    if ctx.path(cuda + "/include/cuda_runtime_api.h").exists:
        ctx.symlink(cuda + "/include", "cuda_include")
        cudart = _first(ctx, [cuda + "/lib64/libcudart.so", cuda + "/lib/libcudart.so"])
        if cudart:
            ctx.symlink(cudart, "cuda_lib/libcudart.so")
            cuda_libs = ["cuda_lib/libcudart.so"]
    ctx.file("BUILD.bazel", _BUILD.format(libs = repr(libs), backend = backend, cuda_libs = repr(cuda_libs)))
    ctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % ctx.name)

tensorrt_sdk_repository = repository_rule(
    implementation = _tensorrt_sdk_impl,
    environ = ["TENSORRT_ROOT", "CUDA_HOME"],
    local = True,
)
