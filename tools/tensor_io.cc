#include "tools/tensor_io.h"

#include <ATen/ops/empty.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

namespace trtpack::tensor_io {
namespace {

static_assert(std::endian::native == std::endian::little, "safetensors stores little-endian data");

struct DtypeInfo {
  const char* code;
  at::ScalarType dtype;
  uint64_t item_bytes;
};

constexpr DtypeInfo kDtypes[] = {
    {"BOOL", at::kBool, 1},     {"U8", at::kByte, 1},        {"I8", at::kChar, 1},
    {"I16", at::kShort, 2},     {"I32", at::kInt, 4},        {"I64", at::kLong, 8},
    {"F16", at::kHalf, 2},      {"BF16", at::kBFloat16, 2},  {"F32", at::kFloat, 4},
    {"F64", at::kDouble, 8},    {"F8_E4M3", at::kFloat8_e4m3fn, 1}, {"F8_E5M2", at::kFloat8_e5m2, 1},
};

const DtypeInfo* find_code(const std::string& code) {
  for (const auto& d : kDtypes) {
    if (code == d.code) return &d;
  }
  return nullptr;
}

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw TensorIoError(where + ": not a valid safetensors file: " + what);
}

uint64_t read_u64_le(const std::string& bytes) {
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), sizeof n);
  return n;
}

struct Entry {
  std::string name;
  const DtypeInfo* dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

Entry parse_entry(const std::string& name, const nlohmann::json& j, const std::string& where) {
  const std::string field = "tensor \"" + name + "\"";
  if (!j.is_object()) fail(where, field + " is not a JSON object");
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!j.contains(key)) fail(where, field + " has no \"" + key + "\"");
  }
  if (!j["dtype"].is_string()) fail(where, field + ": \"dtype\" is not a string");
  Entry e{name, find_code(j["dtype"].get<std::string>()), {}, 0, 0};
  if (!e.dtype) fail(where, field + ": unknown dtype \"" + j["dtype"].get<std::string>() + "\"");

  const auto& shape = j["shape"];
  if (!shape.is_array()) fail(where, field + ": \"shape\" is not a list");
  uint64_t numel = 1;
  for (const auto& dim : shape) {
    if (!dim.is_number_unsigned()) fail(where, field + ": a dimension of \"shape\" is not a non-negative integer");
    uint64_t d = dim.get<uint64_t>();
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) fail(where, field + ": dimension too large");
    if (__builtin_mul_overflow(numel, d, &numel)) fail(where, field + ": shape overflows");
    e.shape.push_back(static_cast<int64_t>(d));
  }
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, e.dtype->item_bytes, &nbytes)) fail(where, field + ": size overflows");

  const auto& offs = j["data_offsets"];
  if (!offs.is_array() || offs.size() != 2 || !offs[0].is_number_unsigned() || !offs[1].is_number_unsigned()) {
    fail(where, field + ": \"data_offsets\" is not a list of two non-negative integers");
  }
  e.begin = offs[0].get<uint64_t>();
  e.end = offs[1].get<uint64_t>();
  if (e.end < e.begin) fail(where, field + ": data_offsets end before they begin");
  if (e.end - e.begin != nbytes) {
    fail(where, field + ": data_offsets span " + std::to_string(e.end - e.begin) + " bytes but dtype and shape need " +
                    std::to_string(nbytes));
  }
  return e;
}

at::Tensor make_tensor(const Entry& e, const char* data, const std::string& where) {
  at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(e.dtype->dtype));
  const uint64_t n = e.end - e.begin;
  if (n) std::memcpy(t.data_ptr(), data + e.begin, n);
  if (e.dtype->dtype == at::kBool) {
    const auto* p = static_cast<const uint8_t*>(t.data_ptr());
    if (std::any_of(p, p + n, [](uint8_t b) { return b > 1; })) {
      fail(where, "tensor \"" + e.name + "\": a BOOL byte is neither 0 nor 1");
    }
  }
  return t;
}

}  // namespace

std::string dtype_code(at::ScalarType dtype) {
  for (const auto& d : kDtypes) {
    if (d.dtype == dtype) return d.code;
  }
  throw TensorIoError(std::string("safetensors has no code for dtype ") + c10::toString(dtype));
}

std::vector<NamedTensor> parse_safetensors(const std::string& bytes, const std::string& where) {
  if (bytes.size() < 8) fail(where, "shorter than the 8-byte header length");
  const uint64_t header_len = read_u64_le(bytes);
  if (header_len > kMaxHeaderBytes) fail(where, "header length " + std::to_string(header_len) + " exceeds the limit");
  if (header_len > bytes.size() - 8) fail(where, "header length " + std::to_string(header_len) + " runs past the end of the file");
  const std::string header = bytes.substr(8, header_len);
  if (header.empty() || header[0] != '{') fail(where, "header does not start with '{'");
  const auto j = nlohmann::json::parse(header, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) fail(where, "header is not a JSON object");

  std::vector<Entry> entries;
  for (const auto& [name, value] : j.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) fail(where, "__metadata__ is not a JSON object");
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string()) fail(where, "__metadata__ value \"" + k + "\" is not a string");
      }
      continue;
    }
    entries.push_back(parse_entry(name, value, where));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });

  // Offsets must tile the data buffer exactly: no gaps, no overlaps, nothing left over.
  const uint64_t data_len = bytes.size() - 8 - header_len;
  uint64_t expected = 0;
  for (const auto& e : entries) {
    if (e.begin != expected) fail(where, "tensor \"" + e.name + "\" data does not start where the previous tensor's ends");
    expected = e.end;
  }
  if (expected != data_len) {
    fail(where, "tensors cover " + std::to_string(expected) + " data bytes but the file holds " + std::to_string(data_len));
  }

  const char* data = bytes.data() + 8 + header_len;
  std::vector<NamedTensor> out;
  out.reserve(entries.size());
  for (const auto& e : entries) out.push_back({e.name, make_tensor(e, data, where)});
  return out;
}

std::vector<NamedTensor> read_safetensors(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw TensorIoError(path + ": no such file");
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buf;
  buf << in.rdbuf();
  if (!in && !in.eof()) throw TensorIoError(path + ": cannot be read");
  return parse_safetensors(buf.str(), path);
}

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> data;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__" || !names.insert(name).second) {
      throw TensorIoError(path + ": tensor name \"" + name + "\" is reserved or used twice");
    }
    at::Tensor t = tensor.to(at::kCPU).contiguous();
    const uint64_t n = t.nbytes();
    header[name] = {{"dtype", dtype_code(t.scalar_type())}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + n}}};
    offset += n;
    data.push_back(std::move(t));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data 8-byte aligned, as the reference writer does

  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    const uint64_t len = text.size();
    out.write(reinterpret_cast<const char*>(&len), sizeof len);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& t : data) out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
    out.close();
    if (!out) throw TensorIoError(path + ": cannot be written");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw TensorIoError(path + ": cannot be written: " + ec.message());
}

}  // namespace trtpack::tensor_io
