// Python binding of core/: the engine record format, implemented once in C++.
#include <pybind11/pybind11.h>

#include "core/version.h"

PYBIND11_MODULE(_trtpack_core, m) {
  m.doc() = "trtpack core: engine record format and compatibility rules";
  m.attr("__version__") = trtpack::kVersion;
}
