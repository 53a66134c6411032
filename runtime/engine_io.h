#pragma once
// The CPU part of the C++ TensorRT executor (trt_executor.cpp): what it checks and computes around TensorRT's calls,
// written without TensorRT's headers so that CI unit-tests it (tests/runtime/engine_io_test.cc). Every refusal is a
// c10::Error (RuntimeError in Python) whose message starts with "trtpack:", names the engine and tensor, and says
// what to do; trtpack.load's programs raise it as IncompatibleEngineError (trtpack/guard.py).
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/engine_record.h"

namespace trtpack::runtime {

// The torch dtype of a record dtype name ("float32", ...); throws for a name trtpack cannot allocate.
at::ScalarType scalar_type(const std::string& dtype);

// What a deserialized plan says about one of its I/O tensors (TensorRT's I/O queries).
enum class Role { kNone, kInput, kOutput };
struct PlanTensor {
  std::string name;
  Role role = Role::kNone;
  std::string dtype;  // a record dtype name, or TensorRT's own name for one trtpack does not use
};

// Refuses a plan whose I/O disagrees with its record (a missing name, an input that is an output, another dtype):
// TensorRT would read or write the wrong bytes.
void check_plan_io(const core::EngineMeta& meta, const std::vector<PlanTensor>& plan);

// The inputs as the engine reads them, and the record's output shapes for them.
struct Binding {
  std::vector<at::Tensor> inputs;                    // contiguous; held until the engine is enqueued
  std::vector<std::vector<int64_t>> output_shapes;  // the record's dim expressions, evaluated
};

// Checks the input count, each input's dtype and rank; binds each symbol to the first input dim the record names by
// it alone; evaluates the outputs' shapes.
Binding bind(const core::EngineMeta& meta, const std::vector<at::Tensor>& inputs);

// The refusal of an input shape TensorRT would not take (setInputShape returned false).
[[noreturn]] void refuse_shape(const core::EngineMeta& meta, size_t input, at::IntArrayRef sizes);

// Refuses an output shape TensorRT computes that differs from the record's (or is data-dependent).
void check_output_shape(const core::EngineMeta& meta, size_t output, const std::vector<int64_t>& computed,
                        const std::vector<int64_t>& recorded);

// "s0 in [1, 16], s1 in [2, 8]" or "all sizes static", as trtpack.names.ranges_text writes it.
std::string ranges_text(const core::EngineMeta& meta);

// The plan's bytes in host memory, for deserialization: a CPU plan as is (checked against its record: a contiguous
// 1-D uint8 buffer of the record's size and header); a plan on CUDA (a module moved with .to("cuda")) copied once.
at::Tensor host_plan(const at::Tensor& plan, const core::EngineMeta& meta);

}  // namespace trtpack::runtime
