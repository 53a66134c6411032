#pragma once
// The 64-byte header TensorRT-RTX writes at the start of every plan (layout in docs/FORMAT.md,
// measured on plans built by TensorRT-RTX 1.7.1.116), and the plan-vs-record cross-check.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/engine_record.h"

namespace trtpack::core {

inline constexpr size_t kPlanHeaderSize = 64;
inline constexpr size_t kMagicOffset = 0x00;      // "vtrt"
inline constexpr size_t kSizeOffset = 0x10;       // u64 little-endian: the whole plan's size in bytes
inline constexpr size_t kVersionOffset = 0x18;    // 4 bytes: major, minor, patch, build
inline constexpr size_t kTargetsOffset = 0x20;    // u64 little-endian bitmask, see target_bits()

struct PlanHeader {
  std::string magic;                // always "vtrt" once parsed
  std::string version;              // "1.7.1.116"
  uint64_t size = 0;                // plan size the header claims
  uint64_t target_mask = 0;
  std::vector<std::string> targets; // known bits, ascending: {"sm80", "sm86", ...}
  uint64_t unknown_target_bits = 0; // bits of target_mask with no known compute capability
};

// Bit → target name, ascending: sm75=0x1, sm80=0x2, sm86=0x4, sm89=0x8, sm120=0x10, sm121=0x20.
const std::vector<std::pair<uint64_t, std::string>>& target_bits();

// Throws RecordError("plan", ...) if the bytes are too short or not a TensorRT-RTX plan.
PlanHeader read_plan_header(std::span<const uint8_t> plan);

std::string sha256_hex(std::span<const uint8_t> bytes);

// XXH3-128 as 32 lowercase hex digits (its canonical, big-endian form): an integrity check, not a
// cryptographic one; ~10x SHA-256's speed.
std::string xxh3_hex(std::span<const uint8_t> bytes);

// XXH3-128 over bytes that arrive in pieces (a plan streamed from a file).
class Xxh3Stream {
 public:
  Xxh3Stream();
  ~Xxh3Stream();
  Xxh3Stream(const Xxh3Stream&) = delete;
  Xxh3Stream& operator=(const Xxh3Stream&) = delete;
  void update(std::span<const uint8_t> bytes);
  std::string hex() const;

 private:
  void* state_;  // XXH3_state_t, kept out of this header
};

// The record's digest rule, written once: XXH3-128 against plan_xxh3 where the record has it (format 1.1+), else
// SHA-256 against plan_sha256. Fed in pieces; check() throws RecordError naming that field when they differ.
class PlanDigest {
 public:
  explicit PlanDigest(const EngineMeta& meta);
  ~PlanDigest();
  PlanDigest(const PlanDigest&) = delete;
  PlanDigest& operator=(const PlanDigest&) = delete;
  void update(std::span<const uint8_t> bytes);
  void check();

 private:
  const EngineMeta& meta_;
  Xxh3Stream xxh3_;
  void* sha256_ = nullptr;  // EVP_MD_CTX, only for records without plan_xxh3
};

// PlanDigest over meta.plan_size bytes read with pread from `fd` at `offset` (a plan file streamed through the
// page cache rather than mapped). Throws RecordError("plan", ...) when the file ends early or cannot be read.
void check_plan_digest_fd(const EngineMeta& meta, int fd, uint64_t offset);

// Plan bytes vs record: size always; for backend "tensorrt_rtx" also the header (magic, size,
// version == backend_version, targets == record targets); with verify_hash, PlanDigest over the bytes. Throws RecordError naming the field that
// disagrees.
void check_plan(const EngineMeta& meta, std::span<const uint8_t> plan, bool verify_hash);

}  // namespace trtpack::core
