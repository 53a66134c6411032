// The trtpack operator namespace. The schema lives here, in C++, so that Python (import trtpack),
// AOTInductor packages run from C++, and downstream binaries all see the same two ops.
#include <torch/library.h>
#include <torch/version.h>

#define TRTPACK_STRINGIFY_(x) #x
#define TRTPACK_STRINGIFY(x) TRTPACK_STRINGIFY_(x)

// The torch this library was compiled against, readable from the file without loading it: Python's import
// (py/trtpack/runtime/registration.py) loads the library only under the same torch release, else it registers the
// same schemas from Python.
extern "C" __attribute__((used, visibility("default"))) const char trtpack_runtime_build_info[] =
    "trtpack-runtime-build-info: torch " TRTPACK_STRINGIFY(TORCH_VERSION_MAJOR) "." TRTPACK_STRINGIFY(
        TORCH_VERSION_MINOR) "." TRTPACK_STRINGIFY(TORCH_VERSION_PATCH) ";";

#include "runtime/boxed.h"
#include "runtime/kernels.h"

TORCH_LIBRARY(trtpack, m) {
  m.def("execute_engine(Tensor[] inputs, Tensor plan, str meta) -> Tensor[]");
  m.def("engine_usable(Tensor[] inputs, Tensor plan, str meta) -> Tensor");
}

// Every device (boxed: see boxed.h): engine_usable answers false with the reason, execute_engine explains why it cannot run.
// A TensorRT executor (C++ trt_executor.cpp, or trtpack's Python one) registers CUDA kernels that take precedence.
TORCH_LIBRARY_IMPL(trtpack, CompositeExplicitAutograd, m) {
  m.impl("engine_usable", trtpack::boxed_kernel<at::Tensor, &trtpack::engine_usable>());
  m.impl("execute_engine",
         trtpack::boxed_kernel<std::vector<at::Tensor>, &trtpack::execute_engine_unavailable>());
}
