// The C ABI of core/ (see c_api.h): each entry point converts (pointer, length) arguments, calls the C++ core and
// turns a RecordError (or any other exception) into the (field, message) pair; nothing else happens here.
#include "core/c_api.h"

#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/compatibility.h"
#include "core/engine_record.h"
#include "core/plan_header.h"
#include "core/version.h"

using nlohmann::json;
using namespace trtpack::core;

namespace {

char* copy_out(std::string_view text) {
  char* p = static_cast<char*>(std::malloc(text.size() + 1));
  if (p == nullptr) throw std::bad_alloc();
  std::memcpy(p, text.data(), text.size());
  p[text.size()] = '\0';
  return p;
}

// Messages may quote damaged input cut mid-character: dump with replacement, never throw on it.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

template <typename F>
int guarded(char** error_field, char** error_message, F&& body) {
  try {
    body();
    return 0;
  } catch (const RecordError& e) {
    *error_field = copy_out(e.field());
    *error_message = copy_out(e.what());
  } catch (const std::bad_alloc&) {
    *error_field = copy_out("");
    *error_message = copy_out("out of memory in trtpack's core");
  } catch (const std::exception& e) {
    *error_field = copy_out("");
    *error_message = copy_out(std::string("trtpack core: ") + e.what());
  }
  return 1;
}

std::string_view text(const char* p, size_t n) { return {p, n}; }
std::span<const uint8_t> bytes(const uint8_t* p, size_t n) { return {p, n}; }

template <size_t N>
json fields_json(const FieldInfo (&fields)[N]) {
  json out = json::array();
  for (const FieldInfo& f : fields) out.push_back({f.key, std::string(kind_name(f.kind)), f.required, f.since, f.doc});
  return out;
}

json tree_of(const DimExpr& e) {
  if (e.kind == DimExpr::Kind::kInt) return e.value;
  if (e.kind == DimExpr::Kind::kSymbol) return json::array({"sym", e.symbol});
  return json::array({std::string(e.op()), tree_of(e.args[0]), tree_of(e.args[1])});
}

json parse_object(std::string_view what, std::string_view payload) {
  json j = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) throw RecordError(std::string(what), "must be a JSON object");
  return j;
}

}  // namespace

extern "C" {

int trtpack_c_api_version(void) { return TRTPACK_C_API_VERSION; }

void trtpack_free(void* p) { std::free(p); }

char* trtpack_info_json(void) {
  try {
    json bits = json::object();
    for (const auto& [bit, name] : target_bits()) bits[name] = bit;
    json info = {{"version", trtpack::kVersion},
                 {"format_id", kFormatId},
                 {"format_version", {kFormatMajor, kFormatMinor}},
                 {"max_plan_size", kMaxPlanSize},
                 {"dtypes", allowed_dtypes()},
                 {"fields", fields_json(kMetaFields)},
                 {"tensor_fields", fields_json(kTensorFields)},
                 {"symbol_range_fields", fields_json(kSymbolRangeFields)},
                 {"target_bits", bits}};
    return copy_out(dump(info));
  } catch (...) {
    return nullptr;
  }
}

int trtpack_canonical_meta(const char* meta, size_t meta_len, char** out, char** error_field, char** error_message) {
  return guarded(error_field, error_message,
                 [&] { *out = copy_out(encode_meta(parse_meta(text(meta, meta_len)))); });
}

int trtpack_check_plan(const char* meta, size_t meta_len, const uint8_t* plan, size_t plan_len, int verify_digest,
                       char** error_field, char** error_message) {
  return guarded(error_field, error_message, [&] {
    check_plan(parse_meta(text(meta, meta_len)), bytes(plan, plan_len), verify_digest != 0);
  });
}

int trtpack_check_plan_digest_fd(const char* meta, size_t meta_len, int fd, uint64_t offset, char** error_field,
                                 char** error_message) {
  return guarded(error_field, error_message,
                 [&] { check_plan_digest_fd(parse_meta(text(meta, meta_len)), fd, offset); });
}

void trtpack_xxh3(const uint8_t* data, size_t len, char* out) {
  std::string hex = xxh3_hex(bytes(data, len));
  std::memcpy(out, hex.c_str(), hex.size() + 1);
}

void* trtpack_xxh3_stream_new(void) {
  try {
    return new Xxh3Stream();
  } catch (...) {
    return nullptr;
  }
}

void trtpack_xxh3_stream_update(void* stream, const uint8_t* data, size_t len) {
  static_cast<Xxh3Stream*>(stream)->update(bytes(data, len));
}

void trtpack_xxh3_stream_hex(const void* stream, char* out) {
  std::string hex = static_cast<const Xxh3Stream*>(stream)->hex();
  std::memcpy(out, hex.c_str(), hex.size() + 1);
}

void trtpack_xxh3_stream_free(void* stream) { delete static_cast<Xxh3Stream*>(stream); }

int trtpack_plan_header(const uint8_t* plan, size_t plan_len, char** out, char** error_field, char** error_message) {
  return guarded(error_field, error_message, [&] {
    PlanHeader h = read_plan_header(bytes(plan, plan_len));
    *out = copy_out(dump({{"magic", h.magic},
                          {"version", h.version},
                          {"size", h.size},
                          {"target_mask", h.target_mask},
                          {"targets", h.targets},
                          {"unknown_target_bits", h.unknown_target_bits}}));
  });
}

int trtpack_parse_dim(const char* expr, size_t expr_len, char** out, char** error_field, char** error_message) {
  return guarded(error_field, error_message,
                 [&] { *out = copy_out(dump(tree_of(parse_dim_expr(text(expr, expr_len))))); });
}

int trtpack_eval_dim(const char* expr, size_t expr_len, const char* symbols_json, size_t symbols_len, int64_t* out,
                     char** error_field, char** error_message) {
  return guarded(error_field, error_message, [&] {
    std::map<std::string, int64_t> symbols;
    const json given = parse_object("symbols", text(symbols_json, symbols_len));
    for (const auto& [name, value] : given.items()) {
      if (!value.is_number_integer()) throw RecordError("symbols", "value of '" + name + "' must be an integer");
      if (value.is_number_unsigned() && value.get<uint64_t>() > uint64_t{INT64_MAX})
        throw RecordError("symbols", "value of '" + name + "' is out of range (above 2^63-1)");
      symbols[name] = value.get<int64_t>();
    }
    *out = eval_dim_expr(parse_dim_expr(text(expr, expr_len)), symbols);
  });
}

int trtpack_compatibility(const char* meta, size_t meta_len, const char* machine_json, size_t machine_len, char** out,
                          char** error_field, char** error_message) {
  return guarded(error_field, error_message, [&] {
    const json m = parse_object("machine", text(machine_json, machine_len));
    Machine machine;
    machine.cuda = m.value("cuda", false);
    if (m.contains("sm") && m["sm"].is_string()) machine.sm = m["sm"].get<std::string>();
    if (m.contains("backends"))
      for (const auto& [name, version] : m["backends"].items()) machine.backends[name] = version.get<std::string>();
    const Verdict v = compatibility(parse_meta(text(meta, meta_len)), machine);
    *out = copy_out(dump({{"usable", v.usable}, {"reason", v.reason}}));
  });
}

}  // extern "C"
