#include "core/engine_record.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/core/test_util.h"

namespace trtpack::core {
namespace {

using json = nlohmann::json;
using testing::fails_with;
using testing::read_fixture;

json valid() { return json::parse(read_fixture("v1_0.json")); }

// Parses `valid()` after `edit`; expects a RecordError on `field` mentioning `part`.
::testing::AssertionResult rejects(const std::function<void(json&)>& edit, const std::string& field,
                                   const std::string& part) {
  json j = valid();
  edit(j);
  return fails_with([&] { parse_meta(j.dump()); }, field, part);
}

TEST(EngineRecord, CanonicalRoundTripIsByteIdentical) {
  std::string text = read_fixture("v1_0.json");
  EXPECT_EQ(encode_meta(parse_meta(text)), text);
  // Same record, other key order and whitespace: same canonical bytes.
  EXPECT_EQ(encode_meta(parse_meta(valid().dump(2))), text);
  std::string other = read_fixture("v1_0_static_tensorrt.json");
  EXPECT_EQ(encode_meta(parse_meta(other)), other);
}

TEST(EngineRecord, ReadsEveryField) {
  EngineMeta m = parse_meta(read_fixture("v1_0.json"));
  EXPECT_EQ(m.name, "trt_region_0");
  EXPECT_EQ(m.backend, "tensorrt_rtx");
  EXPECT_EQ(m.backend_version, "1.7.1.116");
  EXPECT_EQ(m.targets, (std::vector<std::string>{"sm80", "sm86", "sm89", "sm120", "sm121"}));
  EXPECT_EQ(m.plan_size, 12345u);
  ASSERT_EQ(m.inputs.size(), 1u);
  EXPECT_EQ(m.inputs[0].shape, (std::vector<Dim>{std::string("s0"), int64_t{3}, int64_t{16}, std::string("s1")}));
  EXPECT_EQ(m.symbols.at("s1").opt, 16);
  EXPECT_EQ(m.build.at("onnx_opset"), 18);
  EXPECT_EQ(eval_shape(m.outputs[0], {{"s0", 2}, {"s1", 16}}), (std::vector<int64_t>{2, 8, 7}));
  EXPECT_EQ(eval_shape(m.outputs[1], {{"s0", 1}, {"s1", 16}}), (std::vector<int64_t>{8}));
}

TEST(EngineRecord, BuildingInCppIsValidatedToo) {
  EngineMeta m = parse_meta(read_fixture("v1_0.json"));
  m.outputs[0].dtype = "complex64";
  EXPECT_TRUE(fails_with([&] { encode_meta(m); }, "outputs[0].dtype", "\"complex64\" is not supported"));
}

TEST(Upgrade, Format0_1FixtureUpgradesToTheExpectedRecord) {
  EngineMeta m = parse_meta(read_fixture("v0_1.json"));
  EXPECT_EQ(m.format_version, (std::array<int64_t, 2>{1, 0}));
  EXPECT_EQ(m.backend, "tensorrt_rtx");
  EXPECT_EQ(m.inputs[0].dtype, "float32");
  EXPECT_EQ(encode_meta(m), read_fixture("v0_1.upgraded.json"));
}

TEST(Upgrade, Format0_1ErrorsNameTheOldKeys) {
  json old = json::parse(read_fixture("v0_1.json"));
  old.erase("engine_name");
  EXPECT_TRUE(fails_with([&] { parse_meta(old.dump()); }, "engine_name", "missing in a format 0.1 record"));
  old = json::parse(read_fixture("v0_1.json"));
  old["compute_capabilities"] = {"sm80"};
  EXPECT_TRUE(fails_with([&] { parse_meta(old.dump()); }, "compute_capabilities", "list of integers"));
}

TEST(Versions, NewerMinorIsReadAndItsAdditionsKept) {
  std::string text = read_fixture("v1_2_newer_minor.json");
  EngineMeta m = parse_meta(text);
  EXPECT_EQ(m.format_version, (std::array<int64_t, 2>{1, 2}));
  EXPECT_EQ(m.extra.at("timing_cache_sha256"), std::string(64, '0'));
  std::string encoded = encode_meta(m);
  EXPECT_EQ(encoded, canonical_dump(json::parse(text)));
  EXPECT_EQ(encode_meta(parse_meta(encoded)), encoded);
}

TEST(Versions, Format1_1AddsPlanXxh3AndOlderRecordsStayWithoutIt) {
  EngineMeta m = parse_meta(read_fixture("v1_1.json"));
  EXPECT_EQ(m.plan_xxh3, "0f1e2d3c4b5a69788796a5b4c3d2e1f0");
  EXPECT_EQ(encode_meta(m), canonical_dump(json::parse(read_fixture("v1_1.json"))));
  EngineMeta old = parse_meta(read_fixture("v1_0.json"));
  EXPECT_TRUE(old.plan_xxh3.empty());
  EXPECT_EQ(json::parse(encode_meta(old)).count("plan_xxh3"), 0u);  // a 1.0 record re-encodes as 1.0
  EXPECT_TRUE(rejects([](json& j) { j["plan_xxh3"] = std::string(32, '0'); }, "plan_xxh3",
                      "is a format 1.1 key in a format 1.0 record"));
  json bad = json::parse(read_fixture("v1_1.json"));
  bad["plan_xxh3"] = std::string(32, 'G');
  EXPECT_TRUE(fails_with([&] { parse_meta(bad.dump()); }, "plan_xxh3", "32 lowercase hex digits"));
}

TEST(Versions, NewerMajorIsRefusedNamingBothVersions) {
  EXPECT_TRUE(fails_with([] { parse_meta(read_fixture("v2_0_newer_major.json")); }, "format_version",
                         "record is format 2.0 but this trtpack reads format 1.x (up to 1.1): upgrade trtpack"));
}

TEST(Versions, OlderVersionWithoutUpgraderIsRefused) {
  EXPECT_TRUE(rejects([](json& j) { j["format_version"] = {0, 2}; }, "format_version", "no upgrader from format 0.2"));
}

TEST(Validation, TextLevelErrors) {
  EXPECT_TRUE(fails_with([] { parse_meta("{\"format\":"); }, "meta", "is not valid JSON"));
  EXPECT_TRUE(fails_with([] { parse_meta("[1,2]"); }, "meta", "must be a JSON object, got array"));
  EXPECT_TRUE(fails_with([] { parse_meta("{\"name\":\"a\",\"name\":\"b\"}"); }, "name", "key appears twice"));
  EXPECT_TRUE(fails_with([] { parse_meta(std::string(100, '[') + std::string(100, ']')); }, "meta", "nested deeper"));
  EXPECT_TRUE(fails_with([] { parse_meta(std::string(kMaxMetaSize + 1, ' ')); }, "meta", "the limit is 16777216"));
  EXPECT_TRUE(fails_with([] { parse_meta("{\"format\":\"\xff\"}"); }, "meta", "is not valid JSON"));
}

TEST(Validation, EveryRequiredFieldIsRequired) {
  for (const FieldInfo& f : kMetaFields)
    if (f.required) {
      EXPECT_TRUE(rejects([&](json& j) { j.erase(f.key); }, f.key, "missing")) << f.key;
    }
  for (const FieldInfo& f : kTensorFields)
    EXPECT_TRUE(rejects([&](json& j) { j["inputs"][0].erase(f.key); }, std::string("inputs[0].") + f.key, "missing"));
  for (const FieldInfo& f : kSymbolRangeFields)
    EXPECT_TRUE(rejects([&](json& j) { j["symbols"]["s0"].erase(f.key); }, std::string("symbols.s0.") + f.key, "missing"));
}

// The writer and the parser are driven by the same tables: a record is written with exactly their keys.
TEST(FieldTables, WriterWritesExactlyTheTableKeys) {
  json j = meta_to_json(parse_meta(read_fixture("v1_1.json")));  // the current minor: every key present
  std::vector<std::string> keys, tensor_keys, range_keys, want, want_tensor, want_range;
  for (const auto& item : j.items()) keys.push_back(item.key());
  for (const auto& item : j["inputs"][0].items()) tensor_keys.push_back(item.key());
  for (const auto& item : j["symbols"]["s0"].items()) range_keys.push_back(item.key());
  for (const FieldInfo& f : kMetaFields) want.push_back(f.key);
  for (const FieldInfo& f : kTensorFields) want_tensor.push_back(f.key);
  for (const FieldInfo& f : kSymbolRangeFields) want_range.push_back(f.key);
  std::sort(want.begin(), want.end());  // nlohmann keeps object keys sorted
  std::sort(want_tensor.begin(), want_tensor.end());
  std::sort(want_range.begin(), want_range.end());
  EXPECT_EQ(keys, want);
  EXPECT_EQ(tensor_keys, want_tensor);
  EXPECT_EQ(range_keys, want_range);
}

TEST(FieldTables, EveryTopLevelKindIsEnforced) {
  // A value of the wrong JSON kind is refused for every field, with the kind's phrase.
  for (const FieldInfo& f : kMetaFields) {
    json wrong = f.kind == FieldKind::kString ? json(true) : json("text");
    EXPECT_TRUE(rejects([&](json& j) { j[f.key] = wrong; }, f.key, "must be")) << f.key;
  }
}

TEST(FieldTables, CppBuiltRecordsKeepTheFormatId) {
  EngineMeta m = parse_meta(read_fixture("v1_0.json"));
  m.format = "safetensors";
  EXPECT_TRUE(fails_with([&] { encode_meta(m); }, "format", "not a trtpack engine record"));
}

TEST(Validation, WrongTypes) {
  EXPECT_TRUE(rejects([](json& j) { j["name"] = 5; }, "name", "must be a string, got number"));
  EXPECT_TRUE(rejects([](json& j) { j["plan_size"] = "12"; }, "plan_size", "must be an integer, got string"));
  EXPECT_TRUE(rejects([](json& j) { j["plan_size"] = 1.5; }, "plan_size", "must be an integer, got a fraction"));
  EXPECT_TRUE(rejects([](json& j) { j["plan_size"] = true; }, "plan_size", "must be an integer, got boolean"));
  EXPECT_TRUE(rejects([](json& j) { j["format_version"] = "1.0"; }, "format_version", "must be [major, minor]"));
  EXPECT_TRUE(rejects([](json& j) { j["format_version"] = {1}; }, "format_version", "must be [major, minor]"));
  EXPECT_TRUE(rejects([](json& j) { j["format_version"] = {1, -1}; }, "format_version", "must be [major, minor]"));
  EXPECT_TRUE(rejects([](json& j) { j["targets"] = "sm86"; }, "targets", "must be a list"));
  EXPECT_TRUE(rejects([](json& j) { j["targets"] = {86}; }, "targets[0]", "must be a string"));
  EXPECT_TRUE(rejects([](json& j) { j["inputs"] = json::object(); }, "inputs", "must be a list"));
  EXPECT_TRUE(rejects([](json& j) { j["inputs"][0] = "x"; }, "inputs[0]", "must be an object"));
  EXPECT_TRUE(rejects([](json& j) { j["inputs"][0]["shape"] = 3; }, "inputs[0].shape", "must be a list of dims"));
  EXPECT_TRUE(rejects([](json& j) { j["inputs"][0]["shape"][1] = 1.5; }, "inputs[0].shape[1]", "int >= 0 or an expression"));
  EXPECT_TRUE(rejects([](json& j) { j["symbols"] = json::array(); }, "symbols", "must be an object"));
  EXPECT_TRUE(rejects([](json& j) { j["symbols"]["s0"] = 4; }, "symbols.s0", "must be an object {min, opt, max}"));
  EXPECT_TRUE(rejects([](json& j) { j["symbols"]["s0"]["min"] = "1"; }, "symbols.s0.min", "must be an integer"));
  EXPECT_TRUE(rejects([](json& j) { j["build"] = "O3"; }, "build", "must be an object"));
}

TEST(Validation, UnknownKeysAreRejectedAtTheCurrentVersion) {
  EXPECT_TRUE(rejects([](json& j) { j["plan_sha"] = "x"; }, "plan_sha", "unknown key in a format 1.0 record"));
  EXPECT_TRUE(rejects([](json& j) { j["inputs"][0]["dims"] = {1}; }, "inputs[0].dims", "unknown key"));
  EXPECT_TRUE(rejects([](json& j) { j["symbols"]["s0"]["step"] = 1; }, "symbols.s0.step", "unknown key"));
}

TEST(Validation, FormatIdentity) {
  EXPECT_TRUE(rejects([](json& j) { j["format"] = "safetensors"; }, "format", "not a trtpack engine record"));
}

TEST(Validation, ScalarValues) {
  EXPECT_TRUE(rejects([](json& j) { j["name"] = "my engine"; }, "name", "A-Z a-z 0-9 _ . -"));
  EXPECT_TRUE(rejects([](json& j) { j["name"] = ""; }, "name", "1-128 characters"));
  EXPECT_TRUE(rejects([](json& j) { j["backend"] = "onnxruntime"; }, "backend", "use \"tensorrt_rtx\" or \"tensorrt\""));
  EXPECT_TRUE(rejects([](json& j) { j["backend_version"] = "v1.7"; }, "backend_version", "dotted version"));
  EXPECT_TRUE(rejects([](json& j) { j["backend_version"] = "1"; }, "backend_version", "dotted version"));
  EXPECT_TRUE(rejects([](json& j) { j["trtpack_version"] = ""; }, "trtpack_version", "must not be empty"));
  EXPECT_TRUE(rejects([](json& j) { j["torch_version"] = "2.13\n"; }, "torch_version", "control character"));
  EXPECT_TRUE(rejects([](json& j) { j["plan_size"] = -1; }, "plan_size", "must be >= 0"));
  EXPECT_TRUE(rejects([](json& j) { j["plan_size"] = 0; }, "plan_size", "outside 1 byte .. 16 GiB"));
  EXPECT_TRUE(rejects([](json& j) { j["plan_size"] = (uint64_t{16} << 30) + 1; }, "plan_size", "outside 1 byte .. 16 GiB"));
  EXPECT_TRUE(rejects([](json& j) { j["plan_size"] = UINT64_MAX; }, "plan_size", "is out of range"));
  // 2^64 and beyond parse as doubles: out of range, never "a fraction".
  EXPECT_TRUE(rejects([](json& j) { j["plan_size"] = 18446744073709551616.0; }, "plan_size", "is out of range"));
  EXPECT_TRUE(rejects([](json& j) { j["plan_size"] = -1e30; }, "plan_size", "is out of range"));
  EXPECT_TRUE(rejects([](json& j) { j["plan_sha256"] = std::string(64, 'A'); }, "plan_sha256", "64 lowercase hex"));
  EXPECT_TRUE(rejects([](json& j) { j["plan_sha256"] = "abc"; }, "plan_sha256", "64 lowercase hex"));
}

TEST(Validation, Targets) {
  EXPECT_TRUE(rejects([](json& j) { j["targets"] = json::array(); }, "targets", "at least one"));
  EXPECT_TRUE(rejects([](json& j) { j["targets"] = {"86"}; }, "targets[0]", "not a compute capability"));
  EXPECT_TRUE(rejects([](json& j) { j["targets"] = {"sm8"}; }, "targets[0]", "not a compute capability"));
  EXPECT_TRUE(rejects([](json& j) { j["targets"] = {"sm86", "sm80"}; }, "targets[1]", "ascending order"));
  EXPECT_TRUE(rejects([](json& j) { j["targets"] = {"sm86", "sm86"}; }, "targets[1]", "unique"));
}

TEST(Validation, Symbols) {
  EXPECT_TRUE(rejects([](json& j) { j["symbols"]["S0"] = {{"min", 1}, {"opt", 1}, {"max", 1}}; }, "symbols.S0", "not a symbol name"));
  EXPECT_TRUE(rejects([](json& j) { j["symbols"]["max"] = {{"min", 1}, {"opt", 1}, {"max", 1}}; }, "symbols.max", "not max/min"));
  EXPECT_TRUE(rejects([](json& j) { j["symbols"]["s0"]["min"] = 0; }, "symbols.s0", "1 <= min <= opt <= max, got min=0"));
  EXPECT_TRUE(rejects([](json& j) { j["symbols"]["s0"]["opt"] = 64; }, "symbols.s0", "opt=64 max=32"));
  EXPECT_TRUE(rejects([](json& j) { j["symbols"]["s0"].erase("max"); }, "symbols.s0.max", "missing"));
}

TEST(Validation, Tensors) {
  EXPECT_TRUE(rejects([](json& j) { j["inputs"][0]["name"] = ""; }, "inputs[0].name", "must not be empty"));
  EXPECT_TRUE(rejects([](json& j) { j["outputs"][1]["name"] = "out0"; }, "outputs[1].name", "\"out0\" is used twice"));
  EXPECT_TRUE(rejects([](json& j) { j["outputs"][0]["name"] = "x"; }, "outputs[0].name", "\"x\" is used twice"));
  EXPECT_TRUE(rejects([](json& j) { j["inputs"][0]["dtype"] = "float64"; }, "inputs[0].dtype", "use one of float32"));
  EXPECT_TRUE(rejects([](json& j) { j["inputs"][0]["dtype"] = "torch.float32"; }, "inputs[0].dtype", "without \"torch.\""));
  EXPECT_TRUE(rejects([](json& j) { j["inputs"][0]["shape"] = json(std::vector<int>(9, 1)); }, "inputs[0].shape", "at most 8"));
  EXPECT_TRUE(rejects([](json& j) { j["inputs"][0]["shape"][1] = -3; }, "inputs[0].shape[1]", "must be >= 0"));
  EXPECT_TRUE(rejects([](json& j) { j["outputs"][0]["shape"][2] = "(s1-3)//"; }, "outputs[0].shape[2]", "ends early"));
  EXPECT_TRUE(rejects([](json& j) { j["outputs"][0]["shape"][2] = "s7+1"; }, "outputs[0].shape[2]",
                      "uses symbol 's7' which \"symbols\" does not declare"));
  EXPECT_TRUE(rejects([](json& j) { j["outputs"] = json::array(); }, "outputs", "at least one output"));
  EXPECT_TRUE(rejects([](json& j) { j["inputs"] = json(std::vector<json>(kMaxTensors + 1, j["inputs"][0])); },
                      "inputs", "the limit is 4096"));
}

}  // namespace
}  // namespace trtpack::core
