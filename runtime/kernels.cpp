#include "runtime/kernels.h"

#include <c10/util/Exception.h>

#include "runtime/engine_cache.h"

namespace trtpack {
namespace {

constexpr const char* kNoExecutor =
    "this libtorchtrt_runtime.so was built without a TensorRT executor: in Python, `import trtpack` adds one "
    "(it needs the tensorrt_rtx or tensorrt package); from C++, use a libtorchtrt_runtime.so built with "
    "`bazel build --config=tensorrt` against a TensorRT SDK (TENSORRT_ROOT)";

core::Verdict verdict_without_executor(const core::EngineMeta& meta, const c10::Device& device) {
  if (device.is_cuda()) return {false, kNoExecutor};
  // No CUDA device in use: the core's rules say why and what to do.
  return core::compatibility(meta, core::Machine{});
}

}  // namespace

c10::Device engine_device(const std::vector<at::Tensor>& inputs, const at::Tensor& plan) {
  if (inputs.empty()) return plan.device();
  for (const at::Tensor& input : inputs) {
    TORCH_CHECK_VALUE(input.device() == inputs[0].device(), "trtpack: engine inputs must all be on one device, got ",
                      inputs[0].device(), " and ", input.device(), "; move them to the same CUDA device.");
  }
  return inputs[0].device();
}

at::Tensor engine_usable(const std::vector<at::Tensor>& inputs, const at::Tensor& plan, const std::string& meta) {
  const c10::Device device = engine_device(inputs, plan);
  const core::Verdict verdict = runtime::usable_on(
      plan, meta, device, [&](const core::EngineMeta& m) { return verdict_without_executor(m, device); });
  // Answered on the CPU like every engine_usable kernel: torch.cond reads it without a device sync.
  return at::scalar_tensor(verdict.usable, at::TensorOptions().dtype(at::kBool));
}

std::vector<at::Tensor> execute_engine_unavailable(const std::vector<at::Tensor>& inputs, const at::Tensor& plan,
                                                   const std::string& meta) {
  const c10::Device device = engine_device(inputs, plan);
  const auto record = runtime::parsed_meta(meta);
  TORCH_CHECK(!device.is_cuda(), "trtpack: cannot run engine '", record->name, "' on ", device, ": ", kNoExecutor,
              ".");
  std::string targets;
  for (const std::string& t : record->targets) targets += (targets.empty() ? "" : ",") + t;
  TORCH_CHECK(false, "trtpack: TensorRT engine '", record->name, "' (built for ", targets, " with ",
              core::backend_display_name(record->backend), " ", record->backend_version,
              ") runs only on CUDA devices, and its inputs are on ", device, ". Run it with the module and inputs on "
              "an NVIDIA GPU of one of those compute capabilities with that version installed, or compile with "
              "trtpack.compile(..., fallback=True) so the program runs its PyTorch reference where the engine cannot "
              "run.");
}

}  // namespace trtpack
