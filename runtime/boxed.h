#pragma once
// Registering trtpack's kernels boxed. AOTInductor's proxy executor hands an empty `Tensor[] inputs` to a kernel
// as None (a region with no inputs, e.g. a decoder's constant causal mask); an unboxed kernel then fails inside
// libtorch with "isTensorList() INTERNAL ASSERT FAILED". Every registration goes through `boxed_kernel`, which
// reads None, a tensor list or a generic list of tensors as the inputs.
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <string>
#include <vector>

namespace trtpack {

inline std::vector<at::Tensor> tensor_list_argument(const c10::IValue& value) {
  if (value.isNone()) return {};
  if (value.isTensorList()) return value.toTensorVector();
  TORCH_CHECK_TYPE(value.isList(), "trtpack: engine inputs must be a list of tensors, got ", value.tagKind());
  std::vector<at::Tensor> inputs;
  for (const c10::IValue& item : value.toListRef()) {
    TORCH_CHECK_TYPE(item.isTensor(), "trtpack: engine inputs must be a list of tensors, got a ", item.tagKind());
    inputs.push_back(item.toTensor());
  }
  return inputs;
}

// (Tensor[] inputs, Tensor plan, str meta) -> Result, as a boxed kernel.
template <typename Result, Result (*Kernel)(const std::vector<at::Tensor>&, const at::Tensor&, const std::string&)>
void boxed_call(const c10::OperatorHandle&, torch::jit::Stack* stack) {
  const c10::IValue meta = torch::jit::pop(*stack);  // read in place: a record's meta is a long string
  const at::Tensor plan = torch::jit::pop(*stack).toTensor();
  const std::vector<at::Tensor> inputs = tensor_list_argument(torch::jit::pop(*stack));
  torch::jit::push(*stack, c10::IValue(Kernel(inputs, plan, meta.toStringRef())));
}

template <typename Result, Result (*Kernel)(const std::vector<at::Tensor>&, const at::Tensor&, const std::string&)>
torch::CppFunction boxed_kernel() {
  return torch::CppFunction::makeFromBoxedFunction<&boxed_call<Result, Kernel>>();
}

}  // namespace trtpack
