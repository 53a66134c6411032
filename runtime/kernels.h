#pragma once
// The kernels every build of libtorchtrt_runtime has, whatever the device and with or without TensorRT.
#include <ATen/ATen.h>

#include <string>
#include <vector>

namespace trtpack {

// False unless a TensorRT executor for the inputs' device is compiled in (then that executor's kernel
// answers instead); the reason is logged once per plan.
at::Tensor engine_usable(const std::vector<at::Tensor>& inputs, const at::Tensor& plan, const std::string& meta);

// Raises a clear error saying why the engine cannot run here and what to do.
std::vector<at::Tensor> execute_engine_unavailable(const std::vector<at::Tensor>& inputs, const at::Tensor& plan,
                                                   const std::string& meta);

// The device an engine call runs on: its inputs' (all must agree), else the plan's.
c10::Device engine_device(const std::vector<at::Tensor>& inputs, const at::Tensor& plan);

}  // namespace trtpack
