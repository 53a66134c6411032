// Value rules of docs/FORMAT.md, checked on the typed record (so records built in C++ are held to
// the same rules as records read from JSON).
#include <algorithm>
#include <map>
#include <mutex>
#include <regex>
#include <set>

#include "core/engine_record.h"

namespace trtpack::core {
namespace {

// Patterns are compiled once: std::regex construction dominates validation time otherwise.
bool matches(const std::string& s, const char* pattern) {
  static std::mutex mu;
  static std::map<const char*, std::regex> compiled;
  const std::regex* re;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = compiled.find(pattern);
    if (it == compiled.end()) it = compiled.emplace(pattern, std::regex(pattern)).first;
    re = &it->second;
  }
  return std::regex_match(s, *re);
}

void check_text(const std::string& value, const std::string& field, size_t max_len) {
  if (value.empty()) throw RecordError(field, "must not be empty");
  if (value.size() > max_len) throw RecordError(field, "is longer than " + std::to_string(max_len) + " characters");
  for (unsigned char c : value)
    if (c < 0x20 || c == 0x7f) throw RecordError(field, "contains a control character; use printable text");
}

int target_number(const std::string& target) { return std::stoi(target.substr(2)); }

void check_targets(const EngineMeta& m) {
  if (m.targets.empty()) throw RecordError("targets", "must list at least one compute capability, e.g. [\"sm86\"]");
  for (size_t i = 0; i < m.targets.size(); ++i) {
    const std::string field = "targets[" + std::to_string(i) + "]";
    if (!matches(m.targets[i], "sm[1-9][0-9]{1,2}"))
      throw RecordError(field, "\"" + m.targets[i] + "\" is not a compute capability like \"sm86\" or \"sm120\"");
    if (i > 0 && target_number(m.targets[i - 1]) >= target_number(m.targets[i]))
      throw RecordError(field, "targets must be unique and in ascending order (sm75 < sm80 < ... < sm121)");
  }
}

void check_dim(const Dim& dim, const std::string& field, const EngineMeta& m) {
  if (const int64_t* value = std::get_if<int64_t>(&dim)) {
    if (*value < 0) throw RecordError(field, "must be >= 0, got " + std::to_string(*value));
    return;
  }
  std::set<std::string> used;
  collect_symbols(parse_dim_expr(std::get<std::string>(dim), field), used);
  for (const std::string& symbol : used)
    if (!m.symbols.count(symbol))
      throw RecordError(field, "uses symbol '" + symbol + "' which \"symbols\" does not declare: add its {min, opt, max}");
}

void check_tensors(const std::vector<TensorSpec>& specs, const char* list, const EngineMeta& m,
                   std::set<std::string>& names) {
  if (specs.size() > kMaxTensors)
    throw RecordError(list, "has " + std::to_string(specs.size()) + " entries; the limit is " + std::to_string(kMaxTensors));
  const auto& dtypes = allowed_dtypes();
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::string path = std::string(list) + "[" + std::to_string(i) + "]";
    const TensorSpec& s = specs[i];
    check_text(s.name, path + ".name", 256);
    if (!names.insert(s.name).second)
      throw RecordError(path + ".name", "\"" + s.name + "\" is used twice; inputs and outputs need unique names");
    if (std::find(dtypes.begin(), dtypes.end(), s.dtype) == dtypes.end())
      throw RecordError(path + ".dtype", "\"" + s.dtype + "\" is not supported; use one of float32, float16, bfloat16, "
                                         "int64, int32, int8, uint8, bool (torch names without \"torch.\")");
    if (s.shape.size() > kMaxRank)
      throw RecordError(path + ".shape", "has rank " + std::to_string(s.shape.size()) + "; TensorRT allows at most 8");
    for (size_t d = 0; d < s.shape.size(); ++d) check_dim(s.shape[d], path + ".shape[" + std::to_string(d) + "]", m);
  }
}

}  // namespace

void validate(const EngineMeta& m) {
  if (m.format != kFormatId)
    throw RecordError("format", "is \"" + m.format + "\", expected \"" + kFormatId + "\": this is not a trtpack engine record");
  if (m.format_version[0] != kFormatMajor || m.format_version[1] < 0)
    throw RecordError("format_version", "must be [" + std::to_string(kFormatMajor) + ", minor] after upgrading");
  if (!matches(m.name, "[A-Za-z0-9_.-]{1,128}"))
    throw RecordError("name", "\"" + m.name + "\" must be 1-128 characters of A-Z a-z 0-9 _ . - (it names files)");
  if (m.backend != "tensorrt_rtx" && m.backend != "tensorrt")
    throw RecordError("backend", "\"" + m.backend + "\" is not a backend; use \"tensorrt_rtx\" or \"tensorrt\"");
  if (!matches(m.backend_version, "[0-9]{1,9}(\\.[0-9]{1,9}){1,3}"))
    throw RecordError("backend_version", "\"" + m.backend_version + "\" must be a dotted version like \"1.7.1.116\"");
  check_targets(m);
  check_text(m.trtpack_version, "trtpack_version", 64);
  check_text(m.torch_version, "torch_version", 64);
  if (m.plan_size == 0 || m.plan_size > kMaxPlanSize)
    throw RecordError("plan_size", std::to_string(m.plan_size) + " bytes is outside 1 byte .. 16 GiB: the record is corrupt");
  if (!matches(m.plan_sha256, "[0-9a-f]{64}"))
    throw RecordError("plan_sha256", "must be 64 lowercase hex digits (SHA-256 of the plan bytes)");
  if (!m.plan_xxh3.empty() && !matches(m.plan_xxh3, "[0-9a-f]{32}"))
    throw RecordError("plan_xxh3", "must be 32 lowercase hex digits (XXH3-128 of the plan bytes)");
  for (const auto& [name, r] : m.symbols) {
    const std::string path = "symbols." + name;
    if (!is_symbol_name(name))
      throw RecordError(path, "\"" + name + "\" is not a symbol name ([a-z_][a-z0-9_]*, not max/min)");
    if (!(1 <= r.min && r.min <= r.opt && r.opt <= r.max))
      throw RecordError(path, "needs 1 <= min <= opt <= max, got min=" + std::to_string(r.min) +
                                  " opt=" + std::to_string(r.opt) + " max=" + std::to_string(r.max));
  }
  std::set<std::string> names;
  check_tensors(m.inputs, "inputs", m, names);
  check_tensors(m.outputs, "outputs", m, names);
  if (m.outputs.empty()) throw RecordError("outputs", "must list at least one output tensor");
  if (!m.build.is_object()) throw RecordError("build", "must be an object of build settings");
  if (m.build.dump().size() > kMaxBuildSize)
    throw RecordError("build", "is over " + std::to_string(kMaxBuildSize) + " bytes of JSON; keep only the settings "
                               "that reproduce the plan");
  if (!m.extra.is_object()) throw RecordError("meta", "extra keys must form an object");
}

}  // namespace trtpack::core
