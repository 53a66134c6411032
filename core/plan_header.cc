#include "core/plan_header.h"

#include <openssl/evp.h>
#include <xxhash.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

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

std::string hex_of(const unsigned char* bytes, size_t n) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += kHex[bytes[i] >> 4];
    out += kHex[bytes[i] & 0xf];
  }
  return out;
}

std::string sha256_hex(std::span<const uint8_t> bytes) {
  unsigned char digest[32];
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr) != 1 || length != 32)
    throw RecordError("plan_sha256", "OpenSSL could not compute SHA-256");
  return hex_of(digest, sizeof digest);
}

namespace {
std::string canonical_hex(XXH128_hash_t hash) {
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, hash);
  return hex_of(canonical.digest, sizeof canonical.digest);
}
}  // namespace

std::string xxh3_hex(std::span<const uint8_t> bytes) { return canonical_hex(XXH3_128bits(bytes.data(), bytes.size())); }

Xxh3Stream::Xxh3Stream() : state_(XXH3_createState()) {
  if (state_ == nullptr || XXH3_128bits_reset(static_cast<XXH3_state_t*>(state_)) != XXH_OK)
    throw RecordError("plan_xxh3", "xxHash could not start a digest (out of memory)");
}

Xxh3Stream::~Xxh3Stream() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }

void Xxh3Stream::update(std::span<const uint8_t> bytes) {
  XXH3_128bits_update(static_cast<XXH3_state_t*>(state_), bytes.data(), bytes.size());
}

std::string Xxh3Stream::hex() const { return canonical_hex(XXH3_128bits_digest(static_cast<XXH3_state_t*>(state_))); }

PlanDigest::PlanDigest(const EngineMeta& meta) : meta_(meta) {
  if (!meta.plan_xxh3.empty()) return;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(ctx);
    throw RecordError("plan_sha256", "OpenSSL could not start a SHA-256 digest");
  }
  sha256_ = ctx;
}

PlanDigest::~PlanDigest() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(sha256_)); }

void PlanDigest::update(std::span<const uint8_t> bytes) {
  if (sha256_ == nullptr) {
    xxh3_.update(bytes);
  } else if (EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(sha256_), bytes.data(), bytes.size()) != 1) {
    throw RecordError("plan_sha256", "OpenSSL could not compute SHA-256");
  }
}

void PlanDigest::check() {
  if (sha256_ == nullptr) {
    std::string actual = xxh3_.hex();
    if (actual != meta_.plan_xxh3)
      throw RecordError("plan_xxh3", "the plan's XXH3-128 is " + actual + " but the record says " + meta_.plan_xxh3 +
                                         ": the plan bytes were changed or damaged; re-export the engine");
    return;
  }
  unsigned char bytes[32];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(sha256_), bytes, &length) != 1 || length != 32)
    throw RecordError("plan_sha256", "OpenSSL could not compute SHA-256");
  std::string actual = hex_of(bytes, sizeof bytes);
  if (actual != meta_.plan_sha256)
    throw RecordError("plan_sha256", "the plan's SHA-256 is " + actual + " but the record says " + meta_.plan_sha256 +
                                         ": the plan bytes were changed or damaged; re-export the engine");
}

void check_plan_digest_fd(const EngineMeta& meta, int fd, uint64_t offset) {
  constexpr size_t kChunk = size_t{8} << 20;
  std::vector<uint8_t> buffer(std::min<uint64_t>(kChunk, std::max<uint64_t>(meta.plan_size, 1)));
  PlanDigest digest(meta);
  uint64_t done = 0;
  while (done < meta.plan_size) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), meta.plan_size - done));
    ssize_t got = pread(fd, buffer.data(), want, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0)
      throw RecordError("plan", std::string("cannot be read (") + std::strerror(errno) + "); check the file and load again");
    if (got == 0)
      throw RecordError("plan_size", "the record says " + std::to_string(meta.plan_size) + " bytes but the file ends after " +
                                         std::to_string(done) + ": the plan is truncated; re-export the engine");
    digest.update({buffer.data(), static_cast<size_t>(got)});
    done += static_cast<uint64_t>(got);
  }
  digest.check();
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
    PlanDigest digest(meta);
    digest.update(plan);
    digest.check();
  }
}

}  // namespace trtpack::core
