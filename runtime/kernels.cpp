#include "runtime/kernels.h"

#include <c10/util/Exception.h>

namespace trtpack {

at::Tensor engine_usable(const std::vector<at::Tensor>& inputs, const at::Tensor&, const std::string&) {
  // TensorRT engines only run on CUDA devices; finer checks come with the engine record.
  bool on_cuda = !inputs.empty() && inputs[0].is_cuda();
  return at::scalar_tensor(on_cuda && false, at::TensorOptions().dtype(at::kBool));
}

std::vector<at::Tensor> execute_engine_cpu(const std::vector<at::Tensor>&, const at::Tensor&, const std::string&) {
  TORCH_CHECK(false,
              "trtpack: execute_engine got CPU inputs, but TensorRT engines run only on CUDA devices. "
              "Move the inputs and module to a CUDA device, or compile with fallback=True to run on CPU.");
}

}  // namespace trtpack
