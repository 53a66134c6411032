#pragma once
// The C++ TensorRT executor: CUDA kernels of execute_engine and engine_usable, compiled only with
// `--config=tensorrt` (a TensorRT SDK at $TENSORRT_ROOT).
#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "core/compatibility.h"

namespace trtpack::trt {

// The TensorRT this library was compiled against: "tensorrt" or "tensorrt_rtx", and "major.minor.patch.build".
const std::string& backend();
const std::string& backend_version();

// Core compatibility rules for `device` (its compute capability, this build's backend), then a trial
// deserialization: usable means the plan loads here.
core::Verdict verdict_on(const at::Tensor& plan, const core::EngineMeta& meta, const c10::Device& device);

at::Tensor engine_usable(const std::vector<at::Tensor>& inputs, const at::Tensor& plan, const std::string& meta);

// Runs the engine on the inputs' device, on torch's current CUDA stream; outputs are allocated by torch.
std::vector<at::Tensor> execute_engine(const std::vector<at::Tensor>& inputs, const at::Tensor& plan,
                                       const std::string& meta);

}  // namespace trtpack::trt
