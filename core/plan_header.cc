#include "core/plan_header.h"

#include <openssl/evp.h>

#include <cstdio>

namespace trtpack::core {
namespace {

uint64_t read_u64_le(std::span<const uint8_t> bytes, size_t offset) {
  uint64_t value = 0;
  for (size_t i = 0; i < 8; ++i) value |= uint64_t{bytes[offset + i]} << (8 * i);
  return value;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ",") + s;
  return out.empty() ? "(none)" : out;
}

std::string hex(uint64_t value) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(value));
  return buf;
}

}  // namespace

const std::vector<std::pair<uint64_t, std::string>>& target_bits() {
  static const std::vector<std::pair<uint64_t, std::string>> bits{
      {0x1, "sm75"}, {0x2, "sm80"}, {0x4, "sm86"}, {0x8, "sm89"}, {0x10, "sm120"}, {0x20, "sm121"}};
  return bits;
}

PlanHeader read_plan_header(std::span<const uint8_t> plan) {
  if (plan.size() < kPlanHeaderSize)
    throw RecordError("plan", "is " + std::to_string(plan.size()) + " bytes, shorter than the 64-byte TensorRT-RTX "
                              "header: the plan is truncated or empty");
  PlanHeader h;
  h.magic.assign(reinterpret_cast<const char*>(plan.data() + kMagicOffset), 4);
  if (h.magic != "vtrt")
    throw RecordError("plan", "does not start with the TensorRT-RTX magic \"vtrt\": it is not a TensorRT-RTX plan "
                              "(or it is damaged); check the record's backend");
  h.size = read_u64_le(plan, kSizeOffset);
  const uint8_t* v = plan.data() + kVersionOffset;
  h.version = std::to_string(v[0]) + "." + std::to_string(v[1]) + "." + std::to_string(v[2]) + "." + std::to_string(v[3]);
  h.target_mask = read_u64_le(plan, kTargetsOffset);
  h.unknown_target_bits = h.target_mask;
  for (const auto& [bit, name] : target_bits()) {
    if (h.target_mask & bit) h.targets.push_back(name);
    h.unknown_target_bits &= ~bit;
  }
  return h;
}

std::string sha256_hex(std::span<const uint8_t> bytes) {
  unsigned char digest[32];
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr) != 1 || length != 32)
    throw RecordError("plan_sha256", "OpenSSL could not compute SHA-256");
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : digest) {
    out += kHex[b >> 4];
    out += kHex[b & 0xf];
  }
  return out;
}

void check_plan(const EngineMeta& meta, std::span<const uint8_t> plan, bool verify_hash) {
  if (plan.size() != meta.plan_size)
    throw RecordError("plan_size", "the record says " + std::to_string(meta.plan_size) + " bytes but the plan has " +
                                       std::to_string(plan.size()) + ": the plan is truncated or belongs to another "
                                       "record; re-export the engine");
  if (meta.backend == "tensorrt_rtx") {
    PlanHeader h = read_plan_header(plan);
    if (h.size != plan.size())
      throw RecordError("plan", "header says the plan is " + std::to_string(h.size) + " bytes but it has " +
                                    std::to_string(plan.size()) + ": the plan is damaged; re-export the engine");
    if (h.version != meta.backend_version)
      throw RecordError("backend_version", "the record says TensorRT-RTX " + meta.backend_version +
                                               " but the plan header says " + h.version +
                                               ": the plan and the record do not belong together; re-export the engine");
    if (h.targets != meta.targets)
      throw RecordError("targets", "the record says " + join(meta.targets) + " but the plan header says " +
                                       join(h.targets) + " (mask " + hex(h.target_mask) +
                                       "): the plan and the record do not belong together; re-export the engine");
  }
  if (verify_hash) {
    std::string actual = sha256_hex(plan);
    if (actual != meta.plan_sha256)
      throw RecordError("plan_sha256", "the plan's SHA-256 is " + actual + " but the record says " + meta.plan_sha256 +
                                           ": the plan bytes were changed or damaged; re-export the engine");
  }
}

}  // namespace trtpack::core
