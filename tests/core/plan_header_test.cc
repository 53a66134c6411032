// Synthetic plans with the measured TensorRT-RTX header layout (tests/core/test_record.py
// checks the same code against a plan really built by TensorRT-RTX).
#include "core/plan_header.h"

#include <gtest/gtest.h>

#include "tests/core/test_util.h"

namespace trtpack::core {
namespace {

using testing::fails_with;

void put_u64(std::vector<uint8_t>& b, size_t offset, uint64_t v) {
  for (int i = 0; i < 8; ++i) b[offset + i] = static_cast<uint8_t>(v >> (8 * i));
}

std::vector<uint8_t> fake_rtx_plan(size_t size, uint64_t mask, std::array<uint8_t, 4> version = {1, 7, 1, 116}) {
  std::vector<uint8_t> b(size, 0xab);
  std::fill(b.begin(), b.begin() + kPlanHeaderSize, 0);
  std::memcpy(b.data(), "vtrt", 4);
  put_u64(b, kSizeOffset, size);
  std::copy(version.begin(), version.end(), b.begin() + kVersionOffset);
  std::memcpy(b.data() + 0x1c, "vtrt", 4);
  put_u64(b, kTargetsOffset, mask);
  return b;
}

EngineMeta meta_for(const std::vector<uint8_t>& plan) {
  EngineMeta m = parse_meta(testing::read_fixture("v1_0.json"));
  m.plan_size = plan.size();
  m.plan_sha256 = sha256_hex(plan);
  return m;
}

TEST(PlanHeader, ReadsVersionTargetsAndUnknownBits) {
  PlanHeader h = read_plan_header(fake_rtx_plan(200, 0x7e));
  EXPECT_EQ(h.magic, "vtrt");
  EXPECT_EQ(h.version, "1.7.1.116");
  EXPECT_EQ(h.size, 200u);
  EXPECT_EQ(h.target_mask, 0x7eu);
  EXPECT_EQ(h.targets, (std::vector<std::string>{"sm80", "sm86", "sm89", "sm120", "sm121"}));
  EXPECT_EQ(h.unknown_target_bits, 0x40u);
  EXPECT_EQ(read_plan_header(fake_rtx_plan(64, 0x1)).targets, (std::vector<std::string>{"sm75"}));
}

TEST(PlanHeader, RejectsShortAndForeignBytes) {
  std::vector<uint8_t> plan = fake_rtx_plan(200, 0x3e);
  EXPECT_TRUE(fails_with([&] { read_plan_header({plan.data(), 63}); }, "plan", "63 bytes, shorter than the 64-byte"));
  EXPECT_TRUE(fails_with([&] { read_plan_header({}); }, "plan", "0 bytes"));
  plan[0] = 'f';
  EXPECT_TRUE(fails_with([&] { read_plan_header(plan); }, "plan", "does not start with the TensorRT-RTX magic"));
}

TEST(Sha256, KnownVectors) {
  const std::string abc = "abc";
  EXPECT_EQ(sha256_hex({reinterpret_cast<const uint8_t*>(abc.data()), abc.size()}),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex({}), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Xxh3, KnownVectorsAndStreamingAgree) {  // vectors: `xxhsum -H2` (xxHash's own tool)
  const std::string abc = "abc";
  std::span<const uint8_t> bytes{reinterpret_cast<const uint8_t*>(abc.data()), abc.size()};
  EXPECT_EQ(xxh3_hex(bytes), "06b05ab6733a618578af5f94892f3950");
  EXPECT_EQ(xxh3_hex({}), "99aa06d3014798d86001c324468d497f");
  std::vector<uint8_t> big = fake_rtx_plan(1 << 20, 0x3e);
  Xxh3Stream stream;
  for (size_t pos = 0; pos < big.size(); pos += 65537)
    stream.update({big.data() + pos, std::min<size_t>(65537, big.size() - pos)});
  EXPECT_EQ(stream.hex(), xxh3_hex(big));
}

TEST(CheckPlan, Format1_1RecordsAreVerifiedByXxh3) {
  std::vector<uint8_t> plan = fake_rtx_plan(300, 0x3e);
  EngineMeta meta = meta_for(plan);
  meta.format_version = {1, 1};
  meta.plan_xxh3 = xxh3_hex(plan);
  meta.plan_sha256 = std::string(64, '0');  // not read when the record has plan_xxh3
  EXPECT_NO_THROW(check_plan(meta, plan, true));
  plan[200] ^= 1;
  EXPECT_TRUE(fails_with([&] { check_plan(meta, plan, true); }, "plan_xxh3", "were changed or damaged"));
}

TEST(CheckPlan, AcceptsTheMatchingPlan) {
  std::vector<uint8_t> plan = fake_rtx_plan(300, 0x3e);
  EXPECT_NO_THROW(check_plan(meta_for(plan), plan, true));
  std::vector<uint8_t> with_unknown_bit = fake_rtx_plan(300, 0x7e);  // what default 1.7.1 builds write
  EXPECT_NO_THROW(check_plan(meta_for(with_unknown_bit), with_unknown_bit, true));
}

TEST(CheckPlan, EachMismatchIsNamed) {
  std::vector<uint8_t> plan = fake_rtx_plan(300, 0x3e);
  EngineMeta meta = meta_for(plan);
  std::vector<uint8_t> shorter(plan.begin(), plan.end() - 1);
  EXPECT_TRUE(fails_with([&] { check_plan(meta, shorter, false); }, "plan_size", "says 300 bytes but the plan has 299"));

  std::vector<uint8_t> bad_size = plan;
  put_u64(bad_size, kSizeOffset, 301);
  EXPECT_TRUE(fails_with([&] { check_plan(meta, bad_size, false); }, "plan", "header says the plan is 301 bytes"));

  std::vector<uint8_t> bad_version = plan;
  bad_version[kVersionOffset + 1] = 8;
  EXPECT_TRUE(fails_with([&] { check_plan(meta, bad_version, false); }, "backend_version",
                         "record says TensorRT-RTX 1.7.1.116 but the plan header says 1.8.1.116"));

  std::vector<uint8_t> bad_targets = plan;
  put_u64(bad_targets, kTargetsOffset, 0x04);
  EXPECT_TRUE(fails_with([&] { check_plan(meta, bad_targets, false); }, "targets",
                         "record says sm80,sm86,sm89,sm120,sm121 but the plan header says sm86 (mask 0x4)"));

  std::vector<uint8_t> bad_body = plan;
  bad_body[200] ^= 1;
  EXPECT_NO_THROW(check_plan(meta, bad_body, false));  // the hash is only read when asked
  EXPECT_TRUE(fails_with([&] { check_plan(meta, bad_body, true); }, "plan_sha256", "were changed or damaged"));
}

TEST(CheckPlan, FullTensorRtPlansGetSizeAndHashOnly) {
  std::vector<uint8_t> plan(500, 0x5a);  // no known header layout for full TensorRT
  EngineMeta meta = meta_for(plan);
  meta.backend = "tensorrt";
  meta.backend_version = "10.13.3.9";
  meta.targets = {"sm90"};
  EXPECT_NO_THROW(check_plan(meta, plan, true));
  plan[10] = 0;
  EXPECT_TRUE(fails_with([&] { check_plan(meta, plan, true); }, "plan_sha256", "SHA-256"));
}

}  // namespace
}  // namespace trtpack::core
