#pragma once
#include <ATen/ATen.h>

#include <string>
#include <vector>

namespace trtpack {

at::Tensor engine_usable(const std::vector<at::Tensor>& inputs, const at::Tensor& plan, const std::string& meta);
std::vector<at::Tensor> execute_engine_cpu(const std::vector<at::Tensor>& inputs, const at::Tensor& plan,
                                           const std::string& meta);

}  // namespace trtpack
