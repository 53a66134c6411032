#include "tools/run_pt2_lib.h"

#include <c10/core/ScalarType.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

namespace trtpack::run_pt2 {

const char kUsage[] =
    "usage: run_pt2 MODEL.pt2 --inputs INPUTS.safetensors [--outputs OUTPUTS.safetensors]\n"
    "               [--iterations N] [--warmup N] [--timing TIMING.json] [--model-name NAME]\n"
    "\n"
    "Runs an AOTInductor package (made by trtpack.save(..., 'x.pt2') or trtpack.artifacts.pt2.package) with\n"
    "libtorch and libtorchtrt_runtime only. Inputs are read from a safetensors file whose tensors are\n"
    "named input_0 .. input_{N-1} (the program's inputs, flattened in order); outputs are written as\n"
    "output_0 .. output_{M-1}, or by the names the package records for a model-defined output structure\n"
    "(dict keys, dataclass fields). Timing of the N iterations (after the warmup ones) is printed as JSON.\n";

namespace {

int parse_count(const std::string& flag, const std::string& value, int minimum) {
  size_t used = 0;
  long n = 0;
  try {
    n = std::stol(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != value.size() || used == 0 || n < minimum || n > 1'000'000) {
    throw UsageError(flag + " takes an integer from " + std::to_string(minimum) + " to 1000000, got \"" + value + "\"");
  }
  return static_cast<int>(n);
}

std::string torch_dtype_name(at::ScalarType t) {
  // c10 names dtypes "Float", "BFloat16", ...; the record format uses torch's Python names.
  return std::string(c10::getDtypeNames(t).first);
}

}  // namespace

std::optional<Options> parse_args(const std::vector<std::string>& args) {
  Options o;
  std::vector<std::string> positional;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") return std::nullopt;
    if (a.rfind("--", 0) != 0) {
      positional.push_back(a);
      continue;
    }
    if (i + 1 >= args.size()) throw UsageError(a + " needs a value");
    const std::string& v = args[++i];
    if (a == "--inputs") o.inputs = v;
    else if (a == "--outputs") o.outputs = v;
    else if (a == "--timing") o.timing = v;
    else if (a == "--model-name") o.model_name = v;
    else if (a == "--iterations") o.iterations = parse_count(a, v, 1);
    else if (a == "--warmup") o.warmup = parse_count(a, v, 0);
    else throw UsageError("unknown option " + a);
  }
  if (positional.size() != 1) throw UsageError("give exactly one MODEL.pt2 (got " + std::to_string(positional.size()) + ")");
  o.package = positional[0];
  if (o.inputs.empty()) throw UsageError("--inputs INPUTS.safetensors is required");
  return o;
}

std::vector<at::Tensor> order_inputs(std::vector<tensor_io::NamedTensor> named, const std::string& where) {
  std::vector<at::Tensor> ordered(named.size());
  for (auto& [name, tensor] : named) {
    size_t index = ordered.size();
    const std::string prefix = "input_";
    if (name.rfind(prefix, 0) == 0 && name.size() > prefix.size() &&
        std::all_of(name.begin() + prefix.size(), name.end(), ::isdigit) && name.size() < prefix.size() + 10 &&
        (name.size() == prefix.size() + 1 || name[prefix.size()] != '0')) {
      index = std::stoul(name.substr(prefix.size()));
    }
    if (index >= ordered.size()) {
      throw RunError(where + ": tensor \"" + name + "\" is not one of input_0 .. input_" +
                     std::to_string(named.size() - 1) + "; name the inputs by their flattened position");
    }
    if (ordered[index].defined()) throw RunError(where + ": tensor \"" + name + "\" appears twice");
    ordered[index] = std::move(tensor);
  }
  return ordered;  // N distinct names among input_0 .. input_{N-1}: every slot is filled
}

std::optional<size_t> count_spec_leaves(const std::string& serialized_spec) {
  const auto j = nlohmann::json::parse(serialized_spec, nullptr, false);
  // Format: [protocol_version, node]; node = {"type": str or null (a leaf), "children_spec": [node, ...]}.
  if (j.is_discarded() || !j.is_array() || j.size() != 2 || !j[1].is_object()) return std::nullopt;
  std::function<std::optional<size_t>(const nlohmann::json&)> leaves = [&](const nlohmann::json& node) -> std::optional<size_t> {
    if (!node.is_object() || !node.contains("type")) return std::nullopt;
    if (node["type"].is_null()) return 1;
    if (!node.contains("children_spec") || !node["children_spec"].is_array()) return std::nullopt;
    size_t n = 0;
    for (const auto& child : node["children_spec"]) {
      auto c = leaves(child);
      if (!c) return std::nullopt;
      n += *c;
    }
    return n;
  };
  return leaves(j[1]);
}

void check_inputs(const std::vector<at::Tensor>& inputs, std::optional<size_t> expected_count,
                  const std::unordered_map<std::string, std::string>& metadata) {
  if (expected_count && *expected_count != inputs.size()) {
    throw RunError("the program takes " + std::to_string(*expected_count) + " input tensor(s) but the inputs file holds " +
                   std::to_string(inputs.size()) + "; write one tensor per flattened input, named input_0 ..");
  }
  auto it = metadata.find(kInputsMetadataKey);
  if (it == metadata.end()) return;
  const auto specs = nlohmann::json::parse(it->second, nullptr, false);
  if (specs.is_discarded() || !specs.is_array()) {
    throw RunError(std::string("the package's \"") + kInputsMetadataKey + "\" metadata is not a JSON list; re-create the package");
  }
  if (specs.size() != inputs.size()) {
    throw RunError("the program takes " + std::to_string(specs.size()) + " input tensor(s) but the inputs file holds " +
                   std::to_string(inputs.size()));
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto& spec = specs[i];
    const std::string who = "input_" + std::to_string(i);
    if (!spec.is_object() || !spec.contains("dtype") || !spec["dtype"].is_string() || !spec.contains("shape") ||
        !spec["shape"].is_array()) {
      throw RunError(std::string("the package's \"") + kInputsMetadataKey + "\" entry for " + who + " is malformed");
    }
    const std::string want = spec["dtype"].get<std::string>();
    const std::string got = torch_dtype_name(inputs[i].scalar_type());
    if (want != got) throw RunError(who + " has dtype " + got + " but the program expects " + want);
    const auto& shape = spec["shape"];
    if (shape.size() != static_cast<size_t>(inputs[i].dim())) {
      throw RunError(who + " has " + std::to_string(inputs[i].dim()) + " dimension(s) but the program expects " +
                     std::to_string(shape.size()) + " (shape " + shape.dump() + ")");
    }
    for (size_t d = 0; d < shape.size(); ++d) {
      if (shape[d].is_number_integer() && shape[d].get<int64_t>() != inputs[i].size(static_cast<int64_t>(d))) {
        throw RunError(who + " has size " + std::to_string(inputs[i].size(static_cast<int64_t>(d))) + " in dimension " +
                       std::to_string(d) + " but the program expects " + shape[d].dump() + " (shape " + shape.dump() + ")");
      }
    }
  }
}

nlohmann::json timing_summary(std::vector<double> times_ms) {
  if (times_ms.empty()) return {{"iterations", 0}};
  std::sort(times_ms.begin(), times_ms.end());
  const auto percentile = [&](double p) {
    // Nearest rank: the smallest time with at least p% of the samples at or below it.
    size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(times_ms.size())));
    return times_ms[std::clamp<size_t>(rank, 1, times_ms.size()) - 1];
  };
  return {{"iterations", times_ms.size()},
          {"mean_ms", std::accumulate(times_ms.begin(), times_ms.end(), 0.0) / static_cast<double>(times_ms.size())},
          {"p50_ms", percentile(50)},
          {"p90_ms", percentile(90)},
          {"min_ms", times_ms.front()},
          {"max_ms", times_ms.back()}};
}

std::vector<std::string> output_names(size_t count, const std::unordered_map<std::string, std::string>& metadata) {
  std::vector<std::string> names;
  for (size_t i = 0; i < count; ++i) names.push_back("output_" + std::to_string(i));
  auto it = metadata.find(kOutputsMetadataKey);
  if (it == metadata.end()) return names;
  nlohmann::json list = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
  if (!list.is_array() || list.size() != count) return names;
  std::set<std::string> seen;
  for (const auto& name : list)
    if (!name.is_string() || name.get<std::string>().empty() || !seen.insert(name.get<std::string>()).second)
      return names;
  for (size_t i = 0; i < count; ++i) names[i] = list[i].get<std::string>();
  return names;
}

}  // namespace trtpack::run_pt2
