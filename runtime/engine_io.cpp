#include "runtime/engine_io.h"

#include <c10/util/Exception.h>
#include <c10/util/irange.h>

#include <map>
#include <variant>

#include "core/dim_expr.h"
#include "core/record_error.h"
#include "runtime/engine_cache.h"

namespace trtpack::runtime {
namespace {

const char* role_name(Role role) {
  return role == Role::kInput ? "an input" : role == Role::kOutput ? "an output" : "not an I/O tensor";
}

std::string plan_names(const std::vector<PlanTensor>& plan) {
  std::string out;
  for (const PlanTensor& t : plan) out += (out.empty() ? "" : ", ") + t.name;
  return out.empty() ? "none" : out;
}

}  // namespace

at::ScalarType scalar_type(const std::string& dtype) {
  static const std::map<std::string, at::ScalarType> types{
      {"float32", at::kFloat}, {"float16", at::kHalf}, {"bfloat16", at::kBFloat16}, {"int64", at::kLong},
      {"int32", at::kInt},     {"int8", at::kChar},    {"uint8", at::kByte},        {"bool", at::kBool}};
  auto it = types.find(dtype);
  TORCH_CHECK(it != types.end(), "trtpack: dtype '", dtype, "' cannot be allocated by trtpack's executor; rebuild "
              "the engine with trtpack.");
  return it->second;
}

void check_plan_io(const core::EngineMeta& meta, const std::vector<PlanTensor>& plan) {
  std::map<std::string, const PlanTensor*> by_name;
  for (const PlanTensor& t : plan) by_name[t.name] = &t;
  auto check = [&](const core::TensorSpec& spec, Role role) {
    const char* what = role == Role::kInput ? "input" : "output";
    auto it = by_name.find(spec.name);
    TORCH_CHECK(it != by_name.end(), "trtpack: engine '", meta.name, "': the record names ", what, " '", spec.name,
                "', which the plan does not have (it has ", plan_names(plan), "); rebuild the engine with trtpack.");
    TORCH_CHECK(it->second->role == role, "trtpack: engine '", meta.name, "': '", spec.name, "' is an ", what,
                " in the record but ", role_name(it->second->role), " in the plan; rebuild the engine with trtpack.");
    TORCH_CHECK(it->second->dtype == spec.dtype, "trtpack: engine '", meta.name, "': ", what, " '", spec.name,
                "' is ", spec.dtype, " in the record but ", it->second->dtype, " in the plan; the record does not "
                "describe this plan: rebuild the engine with trtpack.");
  };
  for (const core::TensorSpec& spec : meta.inputs) check(spec, Role::kInput);
  for (const core::TensorSpec& spec : meta.outputs) check(spec, Role::kOutput);
}

Binding bind(const core::EngineMeta& meta, const std::vector<at::Tensor>& inputs) {
  TORCH_CHECK(inputs.size() == meta.inputs.size(), "trtpack: engine '", meta.name, "' takes ", meta.inputs.size(),
              " inputs but got ", inputs.size(), "; pass the inputs it was built for, in that order.");
  Binding binding;
  std::map<std::string, int64_t> symbols;
  for (const auto i : c10::irange(inputs.size())) {
    const core::TensorSpec& spec = meta.inputs[i];
    const at::Tensor& x = inputs[i];
    TORCH_CHECK(x.scalar_type() == scalar_type(spec.dtype), "trtpack: engine '", meta.name, "' input '", spec.name,
                "' must be ", spec.dtype, " but is ", x.scalar_type(), "; convert it (TensorRT-RTX networks are "
                "strongly typed).");
    TORCH_CHECK(static_cast<size_t>(x.dim()) == spec.shape.size(), "trtpack: engine '", meta.name, "' input '",
                spec.name, "' must have ", spec.shape.size(), " dims but has shape ", x.sizes(), "; pass an input of "
                "the shape it was built for.");
    for (const auto d : c10::irange(spec.shape.size())) {
      const auto* name = std::get_if<std::string>(&spec.shape[d]);
      if (name != nullptr && core::is_symbol_name(*name)) symbols.emplace(*name, x.size(d));
    }
    binding.inputs.push_back(x.contiguous());
  }
  for (const core::TensorSpec& spec : meta.outputs) {
    try {
      binding.output_shapes.push_back(core::eval_shape(spec, symbols));
    } catch (const core::RecordError& e) {
      TORCH_CHECK(false, "trtpack: engine '", meta.name, "': output '", spec.name, "' has no shape for these inputs (",
                  e.what(), "); rebuild the engine with trtpack.");
    }
  }
  return binding;
}

void refuse_shape(const core::EngineMeta& meta, size_t input, at::IntArrayRef sizes) {
  TORCH_CHECK(false, "trtpack: engine '", meta.name, "' input '", meta.inputs.at(input).name, "' has shape ", sizes,
              ", outside what it was built for (", ranges_text(meta), "); rebuild with wider dynamic_shapes or pass "
              "an input in range.");
}

void check_output_shape(const core::EngineMeta& meta, size_t output, const std::vector<int64_t>& computed,
                        const std::vector<int64_t>& recorded) {
  const std::string& name = meta.outputs.at(output).name;
  for (int64_t d : computed)
    TORCH_CHECK(d >= 0, "trtpack: engine '", meta.name, "' output '", name, "' has a data-dependent shape (",
                c10::IntArrayRef(computed), "), which trtpack's executor does not support; keep that operation out "
                "of the engine.");
  TORCH_CHECK(computed == recorded, "trtpack: engine '", meta.name, "' output '", name, "': TensorRT computes shape ",
              c10::IntArrayRef(computed), " but the record says ", c10::IntArrayRef(recorded), "; the meta does not "
              "describe this plan: rebuild the engine with trtpack.");
}

std::string ranges_text(const core::EngineMeta& meta) {
  std::string out;
  for (const auto& [name, range] : meta.symbols)
    out += (out.empty() ? "" : ", ") + name + " in [" + std::to_string(range.min) + ", " + std::to_string(range.max) +
           "]";
  return out.empty() ? "all sizes static" : out;
}

at::Tensor host_plan(const at::Tensor& plan, const core::EngineMeta& meta) {
  at::Tensor host = plan.is_cpu() ? plan : plan.to(at::kCPU).contiguous();
  check_plan_tensor(host, meta);
  return host;
}

}  // namespace trtpack::runtime
