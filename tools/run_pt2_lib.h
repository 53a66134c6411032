// The testable parts of run_pt2: argument parsing, matching input files to the program, timing statistics.
#pragma once
#include <ATen/Tensor.h>
#include <nlohmann/json.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "tools/tensor_io.h"

namespace trtpack::run_pt2 {

// Bad command line: main prints the message and the usage text and exits 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Anything else that stops a run (missing file, inputs that do not fit the program): exit 1.
class RunError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

extern const char kUsage[];

struct Options {
  std::string package;
  std::string inputs;
  std::string outputs;  // empty: do not write outputs
  std::string timing;   // empty: timing only on stdout
  std::string model_name = "model";
  int iterations = 1;
  int warmup = 0;
};

// Throws UsageError. Returns nullopt for --help.
std::optional<Options> parse_args(const std::vector<std::string>& args);

// Input tensors must be named input_0 .. input_{N-1}: the program's inputs flattened in order
// (torch.utils._pytree.tree_leaves((args, kwargs))). Returns them in that order.
std::vector<at::Tensor> order_inputs(std::vector<tensor_io::NamedTensor> named, const std::string& where);

// Number of leaves in an AOTInductor serialized input tree spec; nullopt if the spec cannot be read.
std::optional<size_t> count_spec_leaves(const std::string& serialized_spec);

// Key of the package metadata entry trtpack.aoti.package writes: a JSON list of
// {"dtype": "float32", "shape": [int or str, ...]} per flattened input (str = dynamic dimension).
constexpr const char kInputsMetadataKey[] = "trtpack.inputs";

// Checks count, dtype, rank and static dimensions. expected_count comes from the call spec (if readable),
// metadata from the package. Throws RunError naming the input and what to change.
void check_inputs(const std::vector<at::Tensor>& inputs, std::optional<size_t> expected_count,
                  const std::unordered_map<std::string, std::string>& metadata);

// Key of the metadata entry naming each flattened output (a JSON list of strings, trtpack.artifacts.pt2.output_names).
constexpr const char kOutputsMetadataKey[] = "trtpack.outputs";

// The name of each of `count` outputs in the outputs file: the package's trtpack.outputs names when it has one name
// per output, all distinct and non-empty; otherwise output_0 .. output_{count-1}.
std::vector<std::string> output_names(size_t count, const std::unordered_map<std::string, std::string>& metadata);

// {"iterations", "mean_ms", "p50_ms", "p90_ms", "min_ms", "max_ms"} from per-iteration times in ms.
nlohmann::json timing_summary(std::vector<double> times_ms);

}  // namespace trtpack::run_pt2
