#include "core/engine_record.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <set>
#include <type_traits>

namespace trtpack::core {
namespace {

using json = nlohmann::json;
constexpr int kMaxJsonDepth = 64;
constexpr size_t kMaxJsonValues = 200000;  // 4096 inputs + 4096 outputs of rank 8 fit well within it
constexpr const char* kSeeSpec = " (the fields and their types are in docs/FORMAT.md)";

std::string at(const std::string& path, const std::string& key) { return path.empty() ? key : path + "." + key; }
std::string at(const std::string& path, size_t index) { return path + "[" + std::to_string(index) + "]"; }

template <size_t N>
std::string braced_keys(const FieldInfo (&fields)[N]) {
  std::string out = "{";
  for (const FieldInfo& f : fields) out += (out.size() > 1 ? ", " : "") + std::string(f.key);
  return out + "}";
}

std::string kind_phrase(FieldKind kind) {
  switch (kind) {
    case FieldKind::kString: return "a string";
    case FieldKind::kInteger: return "an integer";
    case FieldKind::kVersion: return "[major, minor] with two non-negative integers";
    case FieldKind::kStringList: return "a list of strings";
    case FieldKind::kDimList: return "a list of dims";
    case FieldKind::kTensorList: return "a list of " + braced_keys(kTensorFields) + " objects";
    case FieldKind::kSymbolMap: return "an object {name: " + braced_keys(kSymbolRangeFields) + "}";
    case FieldKind::kObject: return "an object";
  }
  return "?";
}

// The C++ type that holds each kind: the static_asserts below keep the field tables and the structs in step.
template <class T> constexpr bool always_false = false;
template <class T>
constexpr FieldKind kind_of() {
  if constexpr (std::is_same_v<T, std::string>) return FieldKind::kString;
  else if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, uint64_t>) return FieldKind::kInteger;
  else if constexpr (std::is_same_v<T, std::array<int64_t, 2>>) return FieldKind::kVersion;
  else if constexpr (std::is_same_v<T, std::vector<std::string>>) return FieldKind::kStringList;
  else if constexpr (std::is_same_v<T, std::vector<Dim>>) return FieldKind::kDimList;
  else if constexpr (std::is_same_v<T, std::vector<TensorSpec>>) return FieldKind::kTensorList;
  else if constexpr (std::is_same_v<T, std::map<std::string, SymbolRange>>) return FieldKind::kSymbolMap;
  else if constexpr (std::is_same_v<T, json>) return FieldKind::kObject;
  else static_assert(always_false<T>, "no FieldKind holds this type");
}
#define TRTPACK_META_KIND(key, kind, required, since, doc) \
  static_assert(kind_of<decltype(EngineMeta::key)>() == FieldKind::kind, "EngineMeta::" #key " does not hold its kind");
#define TRTPACK_TENSOR_KIND(key, kind, required, since, doc) \
  static_assert(kind_of<decltype(TensorSpec::key)>() == FieldKind::kind, "TensorSpec::" #key " does not hold its kind");
#define TRTPACK_RANGE_KIND(key, kind, required, since, doc) \
  static_assert(kind_of<decltype(SymbolRange::key)>() == FieldKind::kind, "SymbolRange::" #key " does not hold its kind");
TRTPACK_META_FIELDS(TRTPACK_META_KIND)
TRTPACK_TENSOR_FIELDS(TRTPACK_TENSOR_KIND)
TRTPACK_SYMBOL_RANGE_FIELDS(TRTPACK_RANGE_KIND)

// --- reading: one read_value per C++ type; `field` is the value's JSON path, for messages ---------

[[noreturn]] void wrong_kind(const json& v, const std::string& field, FieldKind kind) {
  throw RecordError(field, "must be " + kind_phrase(kind) + ", got " + v.type_name() + kSeeSpec);
}

int64_t get_int(const json& v, const std::string& field) {
  // JSON integers past 2^64-1 reach us as doubles: those are out of range, not fractions.
  if (v.is_number_float() && std::fabs(v.get<double>()) >= 9223372036854775808.0)
    throw RecordError(field, "is out of range: " + v.dump() + " does not fit in a signed 64-bit integer");
  if (!v.is_number_integer())
    throw RecordError(field, "must be an integer, got " + std::string(v.is_number() ? "a fraction" : v.type_name()) +
                                 kSeeSpec);
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{INT64_MAX})
    throw RecordError(field, "is out of range: " + v.dump() + " does not fit in a signed 64-bit integer");
  return v.get<int64_t>();
}

template <size_t N>
void reject_unknown_keys(const json& obj, const std::string& path, const FieldInfo (&fields)[N]) {
  for (const auto& item : obj.items()) {
    if (std::none_of(std::begin(fields), std::end(fields), [&](const FieldInfo& f) { return item.key() == f.key; }))
      throw RecordError(at(path, item.key()), "unknown key; remove it or check its spelling (see docs/FORMAT.md)");
  }
}

void read_value(const json& v, const std::string& field, std::string& out) {
  if (!v.is_string()) wrong_kind(v, field, FieldKind::kString);
  out = v.get<std::string>();
}

void read_value(const json& v, const std::string& field, int64_t& out) { out = get_int(v, field); }

void read_value(const json& v, const std::string& field, uint64_t& out) {
  int64_t value = get_int(v, field);
  if (value < 0) throw RecordError(field, "must be >= 0, got " + std::to_string(value));
  out = static_cast<uint64_t>(value);
}

void read_value(const json& v, const std::string& field, std::array<int64_t, 2>& out) {
  if (!v.is_array() || v.size() != 2 || !is_non_negative_int(v[0]) || !is_non_negative_int(v[1]))
    throw RecordError(field, "must be " + kind_phrase(FieldKind::kVersion) + ", got " + v.dump());
  out = {get_int(v[0], at(field, 0)), get_int(v[1], at(field, 1))};
}

void read_value(const json& v, const std::string& field, std::vector<std::string>& out) {
  if (!v.is_array()) wrong_kind(v, field, FieldKind::kStringList);
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string()) throw RecordError(at(field, i), "must be a string");
    out.push_back(v[i].get<std::string>());
  }
}

void read_value(const json& v, const std::string& field, std::vector<Dim>& out) {
  if (!v.is_array()) wrong_kind(v, field, FieldKind::kDimList);
  for (size_t d = 0; d < v.size(); ++d) {
    if (v[d].is_string()) out.emplace_back(v[d].get<std::string>());
    else if (v[d].is_number_integer()) out.emplace_back(get_int(v[d], at(field, d)));
    else throw RecordError(at(field, d), "must be an int >= 0 or an expression string");
  }
}

void read_value(const json& v, const std::string& field, json& out) {
  if (!v.is_object()) wrong_kind(v, field, FieldKind::kObject);
  out = v;
}

void read_value(const json& v, const std::string& field, TensorSpec& out);
void read_value(const json& v, const std::string& field, SymbolRange& out);
void read_value(const json& v, const std::string& field, std::vector<TensorSpec>& out);
void read_value(const json& v, const std::string& field, std::map<std::string, SymbolRange>& out);

// A key of `obj` (at `path`) into `out`; a required key must be there.
template <class T>
void read_field(const json& obj, const std::string& path, const char* key, bool required, T& out) {
  auto it = obj.find(key);
  if (it == obj.end()) {
    if (required) throw RecordError(at(path, key), "missing; every record needs it (see docs/FORMAT.md)");
    return;
  }
  read_value(*it, at(path, key), out);
}

#define TRTPACK_READ(key, kind, required, since, doc) read_field(v, field, #key, required, out.key);

void read_value(const json& v, const std::string& field, TensorSpec& out) {
  if (!v.is_object()) throw RecordError(field, "must be an object " + braced_keys(kTensorFields));
  reject_unknown_keys(v, field, kTensorFields);
  TRTPACK_TENSOR_FIELDS(TRTPACK_READ)
}

void read_value(const json& v, const std::string& field, SymbolRange& out) {
  if (!v.is_object()) throw RecordError(field, "must be an object " + braced_keys(kSymbolRangeFields));
  reject_unknown_keys(v, field, kSymbolRangeFields);
  TRTPACK_SYMBOL_RANGE_FIELDS(TRTPACK_READ)
}

void read_value(const json& v, const std::string& field, EngineMeta& out) { TRTPACK_META_FIELDS(TRTPACK_READ) }

void read_value(const json& v, const std::string& field, std::vector<TensorSpec>& out) {
  if (!v.is_array()) wrong_kind(v, field, FieldKind::kTensorList);
  if (v.size() > kMaxTensors)
    throw RecordError(field, "has " + std::to_string(v.size()) + " entries; the limit is " + std::to_string(kMaxTensors));
  out.resize(v.size());
  for (size_t i = 0; i < v.size(); ++i) read_value(v[i], at(field, i), out[i]);
}

void read_value(const json& v, const std::string& field, std::map<std::string, SymbolRange>& out) {
  if (!v.is_object()) wrong_kind(v, field, FieldKind::kSymbolMap);
  for (const auto& item : v.items()) read_value(item.value(), at(field, item.key()), out[item.key()]);
}

std::array<int64_t, 2> read_version(const json& j) {
  std::array<int64_t, 2> version{};
  read_field(j, "", "format_version", true, version);
  return version;
}

// --- writing: one to_json_value per C++ type -------------------------------------------------------

template <class T>
json to_json_value(const T& v) {  // strings, integers, the version, string lists, the build object
  return json(v);
}

json to_json_value(const std::vector<Dim>& shape) {
  json out = json::array();
  for (const Dim& d : shape) std::visit([&](const auto& v) { out.push_back(v); }, d);
  return out;
}

#define TRTPACK_WRITE(key, kind, required, since, doc) out[#key] = to_json_value(in.key);
// An optional key a record does not have (an empty string) is left out, as older minors wrote it.
#define TRTPACK_WRITE_META(key, kind, required, since, doc) \
  if (required || !is_absent(in.key)) out[#key] = to_json_value(in.key);

template <class T>
bool is_absent(const T& value) {
  if constexpr (std::is_same_v<T, std::string>) return value.empty();
  else return false;
}

json to_json_value(const TensorSpec& in) {
  json out = json::object();
  TRTPACK_TENSOR_FIELDS(TRTPACK_WRITE)
  return out;
}

json to_json_value(const SymbolRange& in) {
  json out = json::object();
  TRTPACK_SYMBOL_RANGE_FIELDS(TRTPACK_WRITE)
  return out;
}

json to_json_value(const std::vector<TensorSpec>& specs) {
  json out = json::array();
  for (const TensorSpec& s : specs) out.push_back(to_json_value(s));
  return out;
}

json to_json_value(const std::map<std::string, SymbolRange>& ranges) {
  json out = json::object();
  for (const auto& [name, range] : ranges) out[name] = to_json_value(range);
  return out;
}

// Linear-time checks of the JSON text before any DOM is built: nesting, value count, duplicate keys.
class RecordShapeCheck : public nlohmann::json_sax<json> {
 public:
  bool null() override { return value(); }
  bool boolean(bool) override { return value(); }
  bool number_integer(number_integer_t) override { return value(); }
  bool number_unsigned(number_unsigned_t) override { return value(); }
  bool number_float(number_float_t, const string_t&) override { return value(); }
  bool string(string_t&) override { return value(); }
  bool binary(binary_t&) override { return value(); }
  bool start_object(std::size_t) override {
    open(true);
    return true;
  }
  bool key(string_t& k) override {
    if (!keys_.back().insert(k).second) throw RecordError(k, "key appears twice in one object; keep one");
    return true;
  }
  bool end_object() override {
    keys_.pop_back();
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override {
    open(false);
    return true;
  }
  bool end_array() override {
    --depth_;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    throw RecordError("meta", std::string("is not valid JSON (") + e.what() + "): pass the meta string exactly as saved");
  }

 private:
  bool value() {
    if (++values_ > kMaxJsonValues)
      throw RecordError("meta", "holds more than " + std::to_string(kMaxJsonValues) +
                                    " JSON values: not an engine record (at most 4096 inputs and outputs)");
    return true;
  }
  void open(bool object) {
    value();
    if (++depth_ > kMaxJsonDepth)
      throw RecordError("meta", "nested deeper than " + std::to_string(kMaxJsonDepth) + " levels: not an engine record");
    if (object) keys_.emplace_back();
  }
  size_t values_ = 0;
  int depth_ = 0;
  std::vector<std::set<std::string>> keys_;
};

}  // namespace

const std::vector<std::string>& allowed_dtypes() {
  static const std::vector<std::string> dtypes{"float32", "float16", "bfloat16", "int64", "int32", "int8", "uint8", "bool"};
  return dtypes;
}

EngineMeta parse_meta(std::string_view json_text) {
  if (json_text.size() > kMaxMetaSize)
    throw RecordError("meta", "is " + std::to_string(json_text.size()) + " bytes; the limit is " +
                                  std::to_string(kMaxMetaSize) + ": this is not an engine record's meta");
  // A first SAX pass rejects duplicate keys (nlohmann would keep the last silently), absurd nesting and too many
  // values, in linear time; only then is the DOM built (without a callback: nlohmann's callback parser rescans the
  // parent container at every object/array end, which made 40k empty objects take minutes).
  RecordShapeCheck check;
  try {
    json::sax_parse(json_text.begin(), json_text.end(), &check);
  } catch (const json::exception& e) {
    throw RecordError("meta", std::string("is not valid JSON (") + e.what() + "): pass the meta string exactly as saved");
  }
  json j;
  try {
    j = json::parse(json_text.begin(), json_text.end());
  } catch (const json::exception& e) {
    throw RecordError("meta", std::string("is not valid JSON (") + e.what() + "): pass the meta string exactly as saved");
  }
  return meta_from_json(std::move(j));
}

EngineMeta meta_from_json(json j) {
  if (!j.is_object()) throw RecordError("meta", "must be a JSON object, got " + std::string(j.type_name()));
  std::string format;
  read_field(j, "", "format", true, format);
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
  EngineMeta out;
  read_value(j, "", out);
  for (const auto& item : j.items()) {
    auto known = std::find_if(std::begin(kMetaFields), std::end(kMetaFields),
                              [&](const FieldInfo& f) { return item.key() == f.key; });
    if (known != std::end(kMetaFields) && known->since > version[1])
      throw RecordError(item.key(), "is a format " + std::to_string(kFormatMajor) + "." + std::to_string(known->since) +
                                        " key in a format " + std::to_string(version[0]) + "." +
                                        std::to_string(version[1]) + " record; re-export the engine");
    if (known != std::end(kMetaFields)) continue;
    if (version[1] <= kFormatMinor)
      throw RecordError(item.key(), "unknown key in a format " + std::to_string(version[0]) + "." +
                                        std::to_string(version[1]) + " record; remove it or check its spelling");
    out.extra[item.key()] = item.value();  // added by a newer minor version: kept, not interpreted
  }
  validate(out);
  return out;
}

json meta_to_json(const EngineMeta& in) {
  validate(in);
  json out = in.extra;
  TRTPACK_META_FIELDS(TRTPACK_WRITE_META)
  return out;
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
