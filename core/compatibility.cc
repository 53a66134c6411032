#include "core/compatibility.h"

#include <algorithm>

#include "core/plan_header.h"

namespace trtpack::core {
namespace {

std::string pip_package(const std::string& backend, const std::string& version) {
  return backend == "tensorrt_rtx" ? "tensorrt-rtx-cu12==" + version : "tensorrt==" + version;
}

bool rtx_can_target(const std::string& sm) {
  const auto& bits = target_bits();
  return std::any_of(bits.begin(), bits.end(), [&](const auto& bit) { return bit.second == sm; });
}

}  // namespace

std::string backend_display_name(const std::string& backend) {
  return backend == "tensorrt_rtx" ? "TensorRT-RTX" : backend == "tensorrt" ? "TensorRT" : backend;
}

Verdict compatibility(const EngineMeta& meta, const Machine& machine) {
  const std::string backend = backend_display_name(meta.backend);
  std::string targets;
  for (const std::string& t : meta.targets) targets += (targets.empty() ? "" : ",") + t;
  const std::string built = "built for " + targets + " with " + backend + " " + meta.backend_version;

  if (!machine.cuda)
    return {false, built + "; this machine has no CUDA device: run it on a machine with an NVIDIA GPU of one of "
                           "those compute capabilities (a module compiled with fallback=True runs its PyTorch "
                           "reference here instead)"};
  if (!machine.sm)
    return {false, built + "; the compute capability of this machine's GPU is unknown, so trtpack cannot tell "
                           "whether the plan runs here: check the CUDA driver (torch.cuda.get_device_capability())"};
  const std::string& sm = *machine.sm;
  if (std::find(meta.targets.begin(), meta.targets.end(), sm) == meta.targets.end()) {
    std::string fix;
    if (meta.backend == "tensorrt_rtx" && rtx_can_target(sm))
      fix = "rebuild with targets including '" + sm + "'";
    else if (meta.backend == "tensorrt_rtx")
      fix = "rebuild with backend='tensorrt' or run on an RTX/Ampere GPU";
    else
      fix = "TensorRT plans run only on the GPU generation they were built on: rebuild on this machine";
    return {false, built + "; this machine's GPU is " + sm + ", which " +
                       (meta.backend == "tensorrt_rtx" && !rtx_can_target(sm) ? backend + " cannot run"
                                                                              : "the plan was not built for") +
                       ": " + fix};
  }
  auto installed = machine.backends.find(meta.backend);
  if (installed == machine.backends.end())
    return {false, built + "; " + backend + " is not installed here: pip install " +
                       pip_package(meta.backend, meta.backend_version)};
  if (installed->second != meta.backend_version)
    return {false, built + "; this machine has " + backend + " " + installed->second + ", and " + backend +
                       " plans load only in the exact version that built them: pip install " +
                       pip_package(meta.backend, meta.backend_version) + ", or rebuild the engine with " +
                       installed->second};
  return {true, built + "; this machine's GPU is " + sm + " with " + backend + " " + installed->second +
                    " installed: usable"};
}

}  // namespace trtpack::core
