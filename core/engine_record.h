#pragma once
// The engine record's meta JSON (specified in docs/FORMAT.md): parse, validate, upgrade, serialise.
#include <array>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/dim_expr.h"
#include "core/record_error.h"
#include "core/record_fields.h"

namespace trtpack::core {

inline constexpr const char* kFormatId = "trtpack.engine";
inline constexpr int kFormatMajor = 1;
inline constexpr int kFormatMinor = 1;
inline constexpr uint64_t kMaxPlanSize = uint64_t{16} << 30;   // 16 GiB
inline constexpr size_t kMaxMetaSize = size_t{16} << 20;        // 16 MiB of JSON text
inline constexpr size_t kMaxTensors = 4096;                     // per inputs / outputs list
inline constexpr size_t kMaxRank = 8;                           // TensorRT's own limit
inline constexpr size_t kMaxBuildSize = size_t{64} << 10;       // the free-form "build" object, as compact JSON

// "float32", "float16", "bfloat16", "int64", "int32", "int8", "uint8", "bool".
const std::vector<std::string>& allowed_dtypes();

// The structs below hold one member per field of core/record_fields.h, named by its key.

// One dimension: a non-negative int, or an expression over declared symbols (kept as written).
using Dim = std::variant<int64_t, std::string>;

struct TensorSpec {
  std::string name;
  std::string dtype;
  std::vector<Dim> shape;
};

struct SymbolRange {
  int64_t min = 1, opt = 1, max = 1;
};

struct EngineMeta {
  std::string format = kFormatId;
  std::array<int64_t, 2> format_version{kFormatMajor, kFormatMinor};
  std::string name;
  std::string backend;           // "tensorrt_rtx" | "tensorrt"
  std::string backend_version;   // e.g. "1.7.1.116"
  std::vector<std::string> targets;   // e.g. {"sm80", "sm86"}
  std::string trtpack_version;
  std::string torch_version;
  uint64_t plan_size = 0;
  std::string plan_sha256;       // 64 lowercase hex digits
  std::string plan_xxh3;         // 32 lowercase hex digits; empty in records older than 1.1
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  std::map<std::string, SymbolRange> symbols;
  nlohmann::json build = nlohmann::json::object();
  // Keys a newer minor version added: kept so a re-encode loses nothing.
  nlohmann::json extra = nlohmann::json::object();
};

// Text → validated record. Older versions are upgraded first (see upgraders.cc); a newer minor
// version of the same major is accepted; a newer major is refused.
EngineMeta parse_meta(std::string_view json_text);
EngineMeta meta_from_json(nlohmann::json j);

// Record → JSON; validates first, so only valid records are ever written.
nlohmann::json meta_to_json(const EngineMeta& meta);
// Canonical text: sorted keys, no whitespace, UTF-8. Same record → same bytes.
std::string encode_meta(const EngineMeta& meta);
std::string canonical_dump(const nlohmann::json& j);

// Checks every rule of docs/FORMAT.md that the typed struct cannot express.
void validate(const EngineMeta& meta);

// Upgrades an older-format meta object to the current format in place (one explicit step per
// older version). Throws RecordError for a version no upgrader knows.
void upgrade_to_current(nlohmann::json& j);

// An integer >= 0 that fits in int64 (nlohmann stores those as signed or unsigned).
inline bool is_non_negative_int(const nlohmann::json& v) {
  return v.is_number_unsigned() ? v.get<uint64_t>() <= uint64_t{INT64_MAX}
                                : v.is_number_integer() && v.get<int64_t>() >= 0;
}

// Value of each output dim (or input dim) given the symbols' values.
std::vector<int64_t> eval_shape(const TensorSpec& spec, const std::map<std::string, int64_t>& symbols);

}  // namespace trtpack::core
