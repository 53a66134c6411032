// Verdicts for a faked machine description (no device query happens in core/).
#include "core/compatibility.h"

#include <gtest/gtest.h>

#include "tests/core/test_util.h"

namespace trtpack::core {
namespace {

const std::string kBuilt = "built for sm80,sm86,sm89,sm120,sm121 with TensorRT-RTX 1.7.1.116; ";

EngineMeta rtx_meta() { return parse_meta(testing::read_fixture("v1_0.json")); }

EngineMeta trt_meta() { return parse_meta(testing::read_fixture("v1_0_static_tensorrt.json")); }

Machine machine(bool cuda, std::optional<std::string> sm, std::map<std::string, std::string> backends) {
  return Machine{cuda, std::move(sm), std::move(backends)};
}

TEST(Compatibility, NoCudaDevice) {
  Verdict v = compatibility(rtx_meta(), machine(false, std::nullopt, {{"tensorrt_rtx", "1.7.1.116"}}));
  EXPECT_FALSE(v.usable);
  EXPECT_EQ(v.reason.rfind(kBuilt + "this machine has no CUDA device: run it on a machine with an NVIDIA GPU", 0), 0u)
      << v.reason;
  EXPECT_NE(v.reason.find("fallback=True"), std::string::npos);
}

TEST(Compatibility, UnknownComputeCapability) {
  Verdict v = compatibility(rtx_meta(), machine(true, std::nullopt, {{"tensorrt_rtx", "1.7.1.116"}}));
  EXPECT_FALSE(v.usable);
  EXPECT_NE(v.reason.find("compute capability of this machine's GPU is unknown"), std::string::npos) << v.reason;
}

TEST(Compatibility, WrongSmThatTensorRtRtxCannotRun) {
  Verdict v = compatibility(rtx_meta(), machine(true, "sm90", {{"tensorrt_rtx", "1.7.1.116"}}));
  EXPECT_FALSE(v.usable);
  EXPECT_EQ(v.reason, kBuilt + "this machine's GPU is sm90, which TensorRT-RTX cannot run: rebuild with "
                               "backend='tensorrt' or run on an RTX/Ampere GPU");
}

TEST(Compatibility, WrongSmThatTensorRtRtxCouldTarget) {
  Verdict v = compatibility(rtx_meta(), machine(true, "sm75", {{"tensorrt_rtx", "1.7.1.116"}}));
  EXPECT_FALSE(v.usable);
  EXPECT_EQ(v.reason, kBuilt + "this machine's GPU is sm75, which the plan was not built for: rebuild with "
                               "targets including 'sm75'");
}

TEST(Compatibility, WrongSmForFullTensorRt) {
  Verdict v = compatibility(trt_meta(), machine(true, "sm86", {{"tensorrt", "10.13.3.9"}}));
  EXPECT_FALSE(v.usable);
  EXPECT_EQ(v.reason, "built for sm90 with TensorRT 10.13.3.9; this machine's GPU is sm86, which the plan was not "
                      "built for: TensorRT plans run only on the GPU generation they were built on: rebuild on "
                      "this machine");
}

TEST(Compatibility, BackendMissing) {
  Verdict v = compatibility(rtx_meta(), machine(true, "sm86", {{"tensorrt", "10.13.3.9"}}));
  EXPECT_FALSE(v.usable);
  EXPECT_EQ(v.reason, kBuilt + "TensorRT-RTX is not installed here: pip install tensorrt-rtx-cu12==1.7.1.116");
  Verdict trt = compatibility(trt_meta(), machine(true, "sm90", {}));
  EXPECT_EQ(trt.reason, "built for sm90 with TensorRT 10.13.3.9; TensorRT is not installed here: pip install "
                        "tensorrt==10.13.3.9");
}

TEST(Compatibility, BackendVersionDiffers) {
  Verdict v = compatibility(rtx_meta(), machine(true, "sm86", {{"tensorrt_rtx", "1.8.0.20"}}));
  EXPECT_FALSE(v.usable);
  EXPECT_EQ(v.reason, kBuilt + "this machine has TensorRT-RTX 1.8.0.20, and TensorRT-RTX plans load only in the "
                               "exact version that built them: pip install tensorrt-rtx-cu12==1.7.1.116, or rebuild "
                               "the engine with 1.8.0.20");
}

TEST(Compatibility, GoodCase) {
  Verdict v = compatibility(rtx_meta(), machine(true, "sm86", {{"tensorrt_rtx", "1.7.1.116"}, {"tensorrt", "10.1"}}));
  EXPECT_TRUE(v.usable);
  EXPECT_EQ(v.reason, kBuilt + "this machine's GPU is sm86 with TensorRT-RTX 1.7.1.116 installed: usable");
  EXPECT_TRUE(compatibility(trt_meta(), machine(true, "sm90", {{"tensorrt", "10.13.3.9"}})).usable);
}

}  // namespace
}  // namespace trtpack::core
