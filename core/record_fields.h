#pragma once
// The engine record's fields, each written once. The X-macro lists drive the C++ parser and writer
// (engine_record.cc), become trtpack.record.FIELDS in Python, and tests/core/test_schema.py checks
// docs/engine_meta.schema.json and docs/FORMAT.md §2 against them and locks them (format_lock.json).
//
// X(key, kind, required, since, doc)
//   key      the JSON key, also the member's name in the C++ struct (EngineMeta, TensorSpec, SymbolRange)
//   kind     the JSON kind the parser requires (FieldKind below; static_asserts tie it to the member's type)
//   required whether every record of the current major version has it
//   since    the minor version of the current major that added the key (0 = there from the start); a key
//            added by a minor bump is optional, since records of older minors lack it
//   doc      one line; docs/FORMAT.md §2 gives the full rule
#include <cstddef>
#include <string_view>

namespace trtpack::core {

#define TRTPACK_META_FIELDS(X)                                                                        \
  X(format, kString, true, 0, "exactly \"trtpack.engine\"")                                         \
  X(format_version, kVersion, true, 0, "[major, minor] of this format")                             \
  X(name, kString, true, 0, "the engine's name: 1-128 of A-Z a-z 0-9 _ . - (it names files)")       \
  X(backend, kString, true, 0, "\"tensorrt_rtx\" or \"tensorrt\"")                                  \
  X(backend_version, kString, true, 0, "version of the backend that built the plan, e.g. 1.7.1.116") \
  X(targets, kStringList, true, 0, "compute capabilities the plan was built for, ascending: sm86")   \
  X(trtpack_version, kString, true, 0, "trtpack version that wrote the record")                     \
  X(torch_version, kString, true, 0, "torch version that exported the program")                     \
  X(plan_size, kInteger, true, 0, "plan length in bytes, 1 .. 16 GiB")                              \
  X(plan_sha256, kString, true, 0, "SHA-256 of the plan bytes, 64 lowercase hex digits")            \
  X(plan_xxh3, kString, false, 1, "XXH3-128 of the plan bytes, 32 lowercase hex digits (load's check)") \
  X(inputs, kTensorList, true, 0, "input tensors in binding order")                                 \
  X(outputs, kTensorList, true, 0, "output tensors in the order execute_engine returns them")       \
  X(symbols, kSymbolMap, true, 0, "symbol name -> the range of its optimization profile")           \
  X(build, kObject, true, 0, "free-form build settings that matter for reproducing the plan")

// One entry of "inputs" / "outputs".
#define TRTPACK_TENSOR_FIELDS(X)                                                             \
  X(name, kString, true, 0, "binding name, unique across inputs and outputs")              \
  X(dtype, kString, true, 0, "torch dtype name without \"torch.\", e.g. float32")          \
  X(shape, kDimList, true, 0, "dims: an int >= 0 or an expression string over symbols")

// One value of "symbols".
#define TRTPACK_SYMBOL_RANGE_FIELDS(X)                     \
  X(min, kInteger, true, 0, "smallest value, >= 1")      \
  X(opt, kInteger, true, 0, "value the plan is tuned for") \
  X(max, kInteger, true, 0, "largest value")

enum class FieldKind { kString, kInteger, kVersion, kStringList, kDimList, kTensorList, kSymbolMap, kObject };

// Stable names: they are part of the format lock (tests/core/format_lock.json).
constexpr std::string_view kind_name(FieldKind kind) {
  switch (kind) {
    case FieldKind::kString: return "string";
    case FieldKind::kInteger: return "integer";
    case FieldKind::kVersion: return "version";
    case FieldKind::kStringList: return "string_list";
    case FieldKind::kDimList: return "dim_list";
    case FieldKind::kTensorList: return "tensor_list";
    case FieldKind::kSymbolMap: return "symbol_map";
    case FieldKind::kObject: return "object";
  }
  return "?";
}

struct FieldInfo {
  const char* key;
  FieldKind kind;
  bool required;
  int since;
  const char* doc;
};

#define TRTPACK_FIELD_INFO(key, kind, required, since, doc) FieldInfo{#key, FieldKind::kind, required, since, doc},
inline constexpr FieldInfo kMetaFields[] = {TRTPACK_META_FIELDS(TRTPACK_FIELD_INFO)};
inline constexpr FieldInfo kTensorFields[] = {TRTPACK_TENSOR_FIELDS(TRTPACK_FIELD_INFO)};
inline constexpr FieldInfo kSymbolRangeFields[] = {TRTPACK_SYMBOL_RANGE_FIELDS(TRTPACK_FIELD_INFO)};
#undef TRTPACK_FIELD_INFO

}  // namespace trtpack::core
