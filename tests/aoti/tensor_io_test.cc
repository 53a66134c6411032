// The safetensors reader accepts what the writer (and the reference Python writer) produce, and turns
// every malformed file into a TensorIoError: truncations, lying lengths, gaps, overlaps, bad dtypes.
#include "tools/tensor_io.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace trtpack::tensor_io {
namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::path(::testing::TempDir()) / name).string();
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A file with the given header (as JSON text) and data bytes.
std::string file_bytes(const std::string& header, const std::string& data) {
  uint64_t n = header.size();
  std::string out(reinterpret_cast<const char*>(&n), 8);
  return out + header + data;
}

void expect_rejected(const std::string& bytes, const std::string& fragment) {
  try {
    parse_safetensors(bytes, "f.safetensors");
    FAIL() << "accepted a bad file; expected an error mentioning: " << fragment;
  } catch (const TensorIoError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("f.safetensors"), std::string::npos) << e.what();
  }
}

TEST(TensorIo, RoundTripsEveryDtypeInOrder) {
  std::vector<NamedTensor> tensors = {
      {"input_0", at::randn({2, 3})},
      {"input_1", at::arange(6, at::kLong).reshape({3, 2})},
      {"b", at::randn({4}).to(at::kBFloat16)},
      {"h", at::randn({1, 1, 2}).to(at::kHalf)},
      {"d", at::randn({3}).to(at::kDouble)},
      {"i32", at::arange(5, at::kInt)},
      {"i16", at::arange(3, at::kShort)},
      {"i8", at::arange(-2, 2, at::kChar)},
      {"u8", at::arange(7, at::kByte)},
      {"flags", at::tensor({1, 0, 1}).to(at::kBool)},
      {"empty", at::empty({0, 5})},
      {"scalar", at::scalar_tensor(2.5)},
  };
  const auto path = temp_path("roundtrip.safetensors");
  write_safetensors(path, tensors, {{"producer", "test"}});
  auto back = read_safetensors(path);
  ASSERT_EQ(back.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(back[i].name, tensors[i].name);
    EXPECT_EQ(back[i].tensor.scalar_type(), tensors[i].tensor.scalar_type()) << tensors[i].name;
    EXPECT_EQ(back[i].tensor.sizes(), tensors[i].tensor.sizes()) << tensors[i].name;
    EXPECT_TRUE(at::equal(back[i].tensor, tensors[i].tensor)) << tensors[i].name;
  }
  const std::string bytes = slurp(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  EXPECT_EQ(header_len % 8, 0u) << "data must start 8-byte aligned";
  EXPECT_EQ(nlohmann::json::parse(bytes.substr(8, header_len))["__metadata__"]["producer"], "test");
}

TEST(TensorIo, WritesNonContiguousTensorsByValue) {
  auto t = at::arange(12, at::kFloat).reshape({3, 4}).t();
  const auto path = temp_path("strided.safetensors");
  write_safetensors(path, {{"x", t}});
  EXPECT_TRUE(at::equal(read_safetensors(path)[0].tensor, t));
}

TEST(TensorIo, RejectsDuplicateAndReservedNames) {
  EXPECT_THROW(write_safetensors(temp_path("dup.safetensors"), {{"x", at::ones({1})}, {"x", at::ones({1})}}),
               TensorIoError);
  EXPECT_THROW(write_safetensors(temp_path("meta.safetensors"), {{"__metadata__", at::ones({1})}}), TensorIoError);
}

TEST(TensorIo, MissingFileSaysSo) {
  try {
    read_safetensors(temp_path("does_not_exist.safetensors"));
    FAIL();
  } catch (const TensorIoError& e) {
    EXPECT_NE(std::string(e.what()).find("no such file"), std::string::npos);
  }
}

TEST(TensorIo, RejectsMalformedFiles) {
  const std::string four_floats(16, '\0');
  expect_rejected("abc", "shorter than");
  expect_rejected(file_bytes("{}", "").substr(0, 8) + "{", "runs past the end");
  {
    std::string huge(8, '\0');
    uint64_t n = kMaxHeaderBytes + 1;
    std::memcpy(huge.data(), &n, 8);
    expect_rejected(huge, "exceeds the limit");
  }
  expect_rejected(file_bytes("[1,2]", ""), "does not start with '{'");
  expect_rejected(file_bytes("{\"x\":", ""), "not a JSON object");
  expect_rejected(file_bytes(R"({"x":{"dtype":"F17","shape":[4],"data_offsets":[0,16]}})", four_floats), "unknown dtype");
  expect_rejected(file_bytes(R"({"x":{"shape":[4],"data_offsets":[0,16]}})", four_floats), "has no \"dtype\"");
  expect_rejected(file_bytes(R"({"x":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", four_floats),
                  "not a non-negative integer");
  expect_rejected(file_bytes(R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}})", four_floats), "need 16");
  expect_rejected(file_bytes(R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}})", four_floats), "end before");
  expect_rejected(file_bytes(R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0]}})", four_floats), "two non-negative");
  expect_rejected(file_bytes(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", four_floats),
                  "does not start where");  // gap at the front
  expect_rejected(file_bytes(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"y":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                             four_floats),
                  "does not start where");  // overlap
  expect_rejected(file_bytes(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})", four_floats),
                  "cover 12 data bytes but the file holds 16");
  expect_rejected(file_bytes(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})", four_floats),
                  "overflows");
  expect_rejected(file_bytes(R"({"x":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", std::string("\x01\x02", 2)),
                  "neither 0 nor 1");
  expect_rejected(file_bytes(R"({"__metadata__":{"k":1}})", ""), "is not a string");
}

TEST(TensorIo, EveryTruncationAndByteFlipIsAnErrorOrAValidFile) {
  const auto path = temp_path("fuzz.safetensors");
  write_safetensors(path, {{"a", at::randn({3})}, {"b", at::arange(4, at::kLong)}, {"c", at::tensor({1}).to(at::kBool)}});
  const std::string good = slurp(path);
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_THROW(parse_safetensors(good.substr(0, n), "cut"), TensorIoError) << "truncated to " << n;
  }
  for (size_t i = 0; i < good.size(); ++i) {
    for (unsigned char flip : {0x01, 0x80, 0xff}) {
      std::string bad = good;
      bad[i] = static_cast<char>(bad[i] ^ flip);
      try {
        for (const auto& [name, t] : parse_safetensors(bad, "flip")) EXPECT_TRUE(t.defined()) << name;
      } catch (const TensorIoError&) {
      }
    }
  }
}

}  // namespace
}  // namespace trtpack::tensor_io
