// Replays the fuzz entry point (core/engine_record_fuzz.cc) over the seed corpus and over every
// truncation and single-byte corruption of it, with g++: no libFuzzer needed for this much.
#include <gtest/gtest.h>

#include "tests/core/test_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

void run(const std::string& bytes) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

TEST(FuzzReplay, SeedCorpusTruncationsAndCorruptions) {
  for (const char* name : {"v0_1.json", "v1_0.json", "v1_0_static_tensorrt.json", "v1_1.json", "v1_2_newer_minor.json",
                           "v2_0_newer_major.json", "v0_1.upgraded.json"}) {
    const std::string seed = trtpack::core::testing::read_fixture(name);
    run(seed);
    for (size_t cut = 0; cut < seed.size(); ++cut) run(seed.substr(0, cut));
    for (size_t i = 0; i < seed.size(); ++i) {
      for (char c : {'\0', '"', '9', '-', '{', ']', '\xff'}) {
        std::string mutated = seed;
        mutated[i] = c;
        run(mutated);
      }
    }
  }
}

}  // namespace
