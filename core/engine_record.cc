#include "core/engine_record.h"

#include <algorithm>
#include <set>

namespace trtpack::core {
namespace {

using json = nlohmann::json;
constexpr int kMaxJsonDepth = 64;
constexpr const char* kSeeSpec = " (the fields and their types are in docs/FORMAT.md)";

std::string at(const std::string& path, const std::string& key) { return path.empty() ? key : path + "." + key; }
std::string at(const std::string& path, size_t index) { return path + "[" + std::to_string(index) + "]"; }

const json& require(const json& obj, const std::string& path, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end())
    throw RecordError(at(path, key), "missing; every record needs it (see docs/FORMAT.md)");
  return *it;
}

std::string get_string(const json& obj, const std::string& path, const char* key) {
  const json& v = require(obj, path, key);
  if (!v.is_string()) throw RecordError(at(path, key), "must be a string, got " + std::string(v.type_name()) + kSeeSpec);
  return v.get<std::string>();
}

int64_t get_int(const json& v, const std::string& field) {
  if (!v.is_number_integer())
    throw RecordError(field, "must be an integer, got " + std::string(v.is_number() ? "a fraction" : v.type_name()) +
                                 kSeeSpec);
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{INT64_MAX})
    throw RecordError(field, "does not fit in a signed 64-bit integer");
  return v.get<int64_t>();
}

const json& get_typed(const json& obj, const std::string& path, const char* key, json::value_t type, const char* what) {
  const json& v = require(obj, path, key);
  if (v.type() != type) throw RecordError(at(path, key), std::string("must be ") + what + ", got " + v.type_name() + kSeeSpec);
  return v;
}

void reject_unknown_keys(const json& obj, const std::string& path, std::initializer_list<const char*> known) {
  for (const auto& item : obj.items()) {
    if (std::none_of(known.begin(), known.end(), [&](const char* k) { return item.key() == k; }))
      throw RecordError(at(path, item.key()), "unknown key; remove it or check its spelling (see docs/FORMAT.md)");
  }
}

std::vector<TensorSpec> read_tensors(const json& obj, const char* key) {
  const json& list = get_typed(obj, "", key, json::value_t::array, "a list of {name, dtype, shape} objects");
  std::vector<TensorSpec> specs;
  for (size_t i = 0; i < list.size(); ++i) {
    std::string path = at(key, i);
    if (!list[i].is_object()) throw RecordError(path, "must be an object {name, dtype, shape}");
    reject_unknown_keys(list[i], path, {"name", "dtype", "shape"});
    TensorSpec spec{get_string(list[i], path, "name"), get_string(list[i], path, "dtype"), {}};
    const json& shape = get_typed(list[i], path, "shape", json::value_t::array, "a list of dims");
    for (size_t d = 0; d < shape.size(); ++d) {
      if (shape[d].is_string()) spec.shape.emplace_back(shape[d].get<std::string>());
      else if (shape[d].is_number_integer()) spec.shape.emplace_back(get_int(shape[d], at(at(path, "shape"), d)));
      else throw RecordError(at(at(path, "shape"), d), "must be an int >= 0 or an expression string");
    }
    specs.push_back(std::move(spec));
  }
  return specs;
}

std::map<std::string, SymbolRange> read_symbols(const json& obj) {
  const json& symbols = get_typed(obj, "", "symbols", json::value_t::object, "an object {name: {min, opt, max}}");
  std::map<std::string, SymbolRange> out;
  for (const auto& item : symbols.items()) {
    std::string path = at("symbols", item.key());
    if (!item.value().is_object()) throw RecordError(path, "must be an object {min, opt, max}");
    reject_unknown_keys(item.value(), path, {"min", "opt", "max"});
    out[item.key()] = {get_int(require(item.value(), path, "min"), at(path, "min")),
                       get_int(require(item.value(), path, "opt"), at(path, "opt")),
                       get_int(require(item.value(), path, "max"), at(path, "max"))};
  }
  return out;
}

std::array<int64_t, 2> read_version(const json& j) {
  const json& v = require(j, "", "format_version");
  if (!v.is_array() || v.size() != 2 || !is_non_negative_int(v[0]) || !is_non_negative_int(v[1]))
    throw RecordError("format_version", "must be [major, minor] with two non-negative integers, got " + v.dump());
  return {get_int(v[0], "format_version[0]"), get_int(v[1], "format_version[1]")};
}

json dims_to_json(const std::vector<Dim>& shape) {
  json out = json::array();
  for (const Dim& d : shape) std::visit([&](const auto& v) { out.push_back(v); }, d);
  return out;
}

json tensors_to_json(const std::vector<TensorSpec>& specs) {
  json out = json::array();
  for (const TensorSpec& s : specs) out.push_back({{"name", s.name}, {"dtype", s.dtype}, {"shape", dims_to_json(s.shape)}});
  return out;
}

}  // namespace

const std::vector<std::string>& allowed_dtypes() {
  static const std::vector<std::string> dtypes{"float32", "float16", "bfloat16", "int64", "int32", "int8", "uint8", "bool"};
  return dtypes;
}

EngineMeta parse_meta(std::string_view json_text) {
  if (json_text.size() > kMaxMetaSize)
    throw RecordError("meta", "is " + std::to_string(json_text.size()) + " bytes; the limit is " +
                                  std::to_string(kMaxMetaSize) + ": this is not an engine record's meta");
  // Rejects duplicate keys (nlohmann would keep the last silently) and absurd nesting.
  std::vector<std::set<std::string>> open_objects;
  int depth = 0;
  auto guard = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) {
      if (++depth > kMaxJsonDepth) throw RecordError("meta", "nested deeper than 64 levels: not an engine record");
      if (event == json::parse_event_t::object_start) open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end || event == json::parse_event_t::array_end) {
      --depth;
      if (event == json::parse_event_t::object_end) open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !open_objects.back().insert(parsed.get<std::string>()).second) {
      throw RecordError(parsed.get<std::string>(), "key appears twice in one object; keep one");
    }
    return true;
  };
  json j;
  try {
    j = json::parse(json_text.begin(), json_text.end(), guard);
  } catch (const json::exception& e) {
    throw RecordError("meta", std::string("is not valid JSON (") + e.what() + "): pass the meta string exactly as saved");
  }
  return meta_from_json(std::move(j));
}

EngineMeta meta_from_json(json j) {
  if (!j.is_object()) throw RecordError("meta", "must be a JSON object, got " + std::string(j.type_name()));
  std::string format = get_string(j, "", "format");
  if (format != kFormatId)
    throw RecordError("format", "is \"" + format + "\", expected \"" + kFormatId + "\": this is not a trtpack engine record");
  auto version = read_version(j);
  if (version[0] > kFormatMajor)
    throw RecordError("format_version", "record is format " + std::to_string(version[0]) + "." +
                                            std::to_string(version[1]) + " but this trtpack reads format " +
                                            std::to_string(kFormatMajor) + ".x (up to " + std::to_string(kFormatMajor) +
                                            "." + std::to_string(kFormatMinor) + "): upgrade trtpack to read it");
  if (version[0] < kFormatMajor) {
    upgrade_to_current(j);
    version = read_version(j);
  }
  EngineMeta m;
  m.format_version = version;
  m.name = get_string(j, "", "name");
  m.backend = get_string(j, "", "backend");
  m.backend_version = get_string(j, "", "backend_version");
  const json& targets = get_typed(j, "", "targets", json::value_t::array, "a list of strings like \"sm86\"");
  for (size_t i = 0; i < targets.size(); ++i) {
    if (!targets[i].is_string()) throw RecordError(at("targets", i), "must be a string like \"sm86\"");
    m.targets.push_back(targets[i].get<std::string>());
  }
  m.trtpack_version = get_string(j, "", "trtpack_version");
  m.torch_version = get_string(j, "", "torch_version");
  int64_t plan_size = get_int(require(j, "", "plan_size"), "plan_size");
  if (plan_size < 0) throw RecordError("plan_size", "must be >= 0, got " + std::to_string(plan_size));
  m.plan_size = static_cast<uint64_t>(plan_size);
  m.plan_sha256 = get_string(j, "", "plan_sha256");
  m.inputs = read_tensors(j, "inputs");
  m.outputs = read_tensors(j, "outputs");
  m.symbols = read_symbols(j);
  m.build = get_typed(j, "", "build", json::value_t::object, "an object of build settings");
  static const std::set<std::string> kKnown{"format", "format_version", "name", "backend", "backend_version",
                                            "targets", "trtpack_version", "torch_version", "plan_size",
                                            "plan_sha256", "inputs", "outputs", "symbols", "build"};
  for (const auto& item : j.items()) {
    if (kKnown.count(item.key())) continue;
    if (version[1] <= kFormatMinor)
      throw RecordError(item.key(), "unknown key in a format " + std::to_string(version[0]) + "." +
                                        std::to_string(version[1]) + " record; remove it or check its spelling");
    m.extra[item.key()] = item.value();  // added by a newer minor version: kept, not interpreted
  }
  validate(m);
  return m;
}

json meta_to_json(const EngineMeta& m) {
  validate(m);
  json symbols = json::object();
  for (const auto& [name, r] : m.symbols) symbols[name] = {{"min", r.min}, {"opt", r.opt}, {"max", r.max}};
  json j = m.extra;
  j.update(json{{"format", kFormatId},
                {"format_version", m.format_version},
                {"name", m.name},
                {"backend", m.backend},
                {"backend_version", m.backend_version},
                {"targets", m.targets},
                {"trtpack_version", m.trtpack_version},
                {"torch_version", m.torch_version},
                {"plan_size", m.plan_size},
                {"plan_sha256", m.plan_sha256},
                {"inputs", tensors_to_json(m.inputs)},
                {"outputs", tensors_to_json(m.outputs)},
                {"symbols", symbols},
                {"build", m.build}});
  return j;
}

std::string canonical_dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::strict); }

std::string encode_meta(const EngineMeta& meta) { return canonical_dump(meta_to_json(meta)); }

std::vector<int64_t> eval_shape(const TensorSpec& spec, const std::map<std::string, int64_t>& symbols) {
  std::vector<int64_t> out;
  for (size_t d = 0; d < spec.shape.size(); ++d) {
    const Dim& dim = spec.shape[d];
    std::string field = spec.name + ".shape[" + std::to_string(d) + "]";
    out.push_back(std::holds_alternative<int64_t>(dim)
                      ? std::get<int64_t>(dim)
                      : eval_dim_expr(parse_dim_expr(std::get<std::string>(dim), field), symbols, field));
  }
  return out;
}

}  // namespace trtpack::core
