"""Repository rules that expose what ./bazelw installed, so Bazel itself downloads nothing.

`venv_repository` asks the project's virtualenv interpreter where Python, torch and tensorrt_rtx live
and links them in (TRTPACK_TORCH_DIR, a torch package folder or a libtorch folder, replaces the venv's torch for C++
builds: tools/build_runtime.sh); `system_repository` does the same for Debian's nlohmann-json,
googletest and xxHash. Nothing machine-specific is committed: paths are discovered at fetch time.
"""

_PROBE = """
import json, os, sys, sysconfig
out = {"python": sys.executable, "version": "%d.%d" % sys.version_info[:2],
       "py_include": sysconfig.get_paths()["include"],
       "ext_suffix": sysconfig.get_config_var("EXT_SUFFIX"),
       "wheel_tag": "py3-none-" + sysconfig.get_platform().replace("-", "_").replace(".", "_")}
torch_dir = os.environ.get("TRTPACK_TORCH_DIR", "")
if torch_dir:  # another torch (a site-packages/torch folder, or an unpacked libtorch) for C++ builds
    out["torch_include"] = os.path.join(torch_dir, "include")
    out["torch_lib"] = os.path.join(torch_dir, "lib")
    out["torch_version"] = "from " + torch_dir
    for need in (out["torch_include"], os.path.join(out["torch_lib"], "libtorch_cpu.so")):
        if not os.path.exists(need):
            out["error"] = "TRTPACK_TORCH_DIR=%s has no %s (give a torch package folder or a libtorch folder)" % (torch_dir, need)
else:
    try:
        import torch, torch.utils.cpp_extension as ext
        out["torch_include"] = ext.include_paths()[0]
        out["torch_lib"] = ext.library_paths()[0]
        out["torch_version"] = torch.__version__
    except Exception as e:
        out["error"] = "torch: %r" % e
try:
    import tensorrt_rtx_libs
    out["trt_rtx_lib"] = os.path.dirname(tensorrt_rtx_libs.__file__)
except Exception:
    out["trt_rtx_lib"] = ""
print(json.dumps(out))
"""

_VENV_BUILD = """
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

package(default_visibility = ["//visibility:public"])

py_runtime(
    name = "py3_runtime",
    interpreter_path = "{python}",
    python_version = "PY3",
    stub_shebang = "#!{python}",
)

py_runtime_pair(
    name = "runtime_pair",
    py3_runtime = ":py3_runtime",
)

toolchain(
    name = "python_toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)

cc_library(
    name = "python_headers",
    hdrs = glob(["py_include/**/*.h"]),
    includes = ["py_include"],
)

# libtorch: headers plus the shared libraries a TORCH_LIBRARY extension or an AOTI runner needs.
cc_library(
    name = "torch",
    hdrs = glob(["torch_include/**/*.h", "torch_include/**/*.hpp", "torch_include/**/*.cuh"], allow_empty = True),
    includes = ["torch_include", "torch_include/torch/csrc/api/include"],
    srcs = ["torch_lib/libc10.so", "torch_lib/libtorch_cpu.so", "torch_lib/libtorch.so"],
    defines = ["_GLIBCXX_USE_CXX11_ABI=1"],
    linkopts = ["-Wl,-rpath,{torch_lib}"],
)

# The zoo's model libraries (requirements-zoo.txt), in .venv/zoo-site, outside the venv's own path.
py_library(
    name = "zoo_packages",
    data = glob(["zoo_site/**"], exclude = ["zoo_site/**/__pycache__/**"], allow_empty = True),
    imports = ["zoo_site"],
)

exports_files(["info.json"])
"""

def _venv_repository_impl(ctx):
    python = ctx.os.environ.get("TRTPACK_PYTHON", "")
    if not python:
        python = str(ctx.path(Label("//:WORKSPACE")).dirname) + "/.venv/bin/python3"
    if not ctx.path(python).exists:
        fail("trtpack: no Python interpreter at %s. Run ./bazelw (it creates .venv) or set TRTPACK_PYTHON." % python)
    res = ctx.execute([python, "-c", _PROBE], timeout = 120,
                      environment = {"TRTPACK_TORCH_DIR": ctx.os.environ.get("TRTPACK_TORCH_DIR", "")})
    if res.return_code != 0:
        fail("trtpack: probing %s failed:\n%s" % (python, res.stderr))
    info = json.decode(res.stdout)
    if "error" in info:
        fail("trtpack: the virtualenv at %s lacks a dependency, or TRTPACK_TORCH_DIR is wrong (%s). Run ./bazelw to install requirements.txt." % (python, info["error"]))
    ctx.symlink(info["py_include"], "py_include")
    ctx.symlink(info["torch_include"], "torch_include")
    ctx.symlink(info["torch_lib"], "torch_lib")
    zoo_site = ctx.path(python).dirname.dirname.get_child("zoo-site")
    if zoo_site.exists:
        ctx.symlink(zoo_site, "zoo_site")
    ctx.file("info.json", json.encode(info))
    ctx.file("defs.bzl", "WHEEL_TAG = %r\nPYTHON_VERSION = %r\n" % (info["wheel_tag"], info["version"]))
    ctx.file("BUILD.bazel", _VENV_BUILD.format(python = info["python"], torch_lib = info["torch_lib"]))
    ctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % ctx.name)

venv_repository = repository_rule(
    implementation = _venv_repository_impl,
    environ = ["TRTPACK_PYTHON", "TRTPACK_VENV_STAMP", "TRTPACK_TORCH_DIR"],
    local = True,
)

_SYSTEM_BUILD = """
package(default_visibility = ["//visibility:public"])

cc_library(
    name = "nlohmann_json",
    hdrs = glob(["include/nlohmann/**/*.hpp"]),
    includes = ["include"],
)

# xxHash, header-only (XXH_INLINE_ALL): nothing to link, so libtorchtrt_runtime.so gains no dependency.
cc_library(
    name = "xxhash",
    hdrs = ["include/xxhash.h"],
    includes = ["include"],
    defines = ["XXH_INLINE_ALL"],
)

cc_library(
    name = "gtest",
    hdrs = glob(["include/gtest/**/*.h"]),
    includes = ["include"],
    srcs = ["lib/libgtest.a"],
    linkopts = ["-pthread"],
)

cc_library(
    name = "gtest_main",
    srcs = ["lib/libgtest_main.a"],
    deps = [":gtest"],
)
"""

def _find(ctx, candidates, what, package):
    for c in candidates:
        if ctx.path(c).exists:
            return c
    fail("trtpack: %s not found (looked in %s). Install Debian's %s, or run ./bazelw which does." % (what, ", ".join(candidates), package))

def _system_repository_impl(ctx):
    ctx.file("include/.keep", "")
    ctx.symlink(_find(ctx, ["/usr/include/nlohmann"], "nlohmann-json headers", "nlohmann-json3-dev"), "include/nlohmann")
    ctx.symlink(_find(ctx, ["/usr/include/gtest"], "googletest headers", "libgtest-dev"), "include/gtest")
    ctx.symlink(_find(ctx, ["/usr/include/xxhash.h"], "xxHash header", "libxxhash-dev"), "include/xxhash.h")
    for lib in ["libgtest.a", "libgtest_main.a"]:
        ctx.symlink(_find(ctx, ["/usr/lib/x86_64-linux-gnu/" + lib, "/usr/lib/aarch64-linux-gnu/" + lib, "/usr/lib/" + lib], lib, "libgtest-dev"), "lib/" + lib)
    ctx.file("BUILD.bazel", _SYSTEM_BUILD)
    ctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % ctx.name)

system_repository = repository_rule(
    implementation = _system_repository_impl,
    local = True,
)
