// The C++ executor's CPU part (runtime/engine_io): what it refuses and computes around TensorRT's calls. Runs in CI
// without TensorRT; the calls themselves run on the GPU machine against the TensorRT stand-in (tests/README.md).
#include "runtime/engine_io.h"

#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <string>

namespace trtpack::runtime {
namespace {

// y = f(x, z): x [s0, 64] float32, z [s0, s1] float16; y [s0, (s1+1)//2] float32; symbols s0 in [1, 16], s1 in [2, 8].
core::EngineMeta meta() {
  core::EngineMeta m;
  m.name = "region_0";
  m.inputs = {{"x", "float32", {std::string("s0"), int64_t{64}}},
              {"z", "float16", {std::string("s0"), std::string("s1")}}};
  m.outputs = {{"y", "float32", {std::string("s0"), std::string("(s1+1)//2")}}};
  m.symbols = {{"s0", {1, 4, 16}}, {"s1", {2, 2, 8}}};
  m.plan_size = 64;
  return m;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "(no error)";
}

#define EXPECT_HAS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

TEST(PlanIo, MatchingPlanPasses) {
  EXPECT_NO_THROW(check_plan_io(meta(), {{"z", Role::kInput, "float16"}, {"x", Role::kInput, "float32"},
                                         {"y", Role::kOutput, "float32"}}));
}

TEST(PlanIo, MissingTensorIsNamedWithWhatThePlanHas) {
  const std::string e = error_of([] {
    check_plan_io(meta(), {{"x", Role::kInput, "float32"}, {"y", Role::kOutput, "float32"}});
  });
  EXPECT_HAS(e, "trtpack: engine 'region_0': the record names input 'z', which the plan does not have (it has x, y)");
  EXPECT_HAS(e, "rebuild the engine with trtpack");
}

TEST(PlanIo, RoleMismatch) {
  const std::string e = error_of([] {
    check_plan_io(meta(), {{"x", Role::kInput, "float32"}, {"z", Role::kOutput, "float16"},
                           {"y", Role::kOutput, "float32"}});
  });
  EXPECT_HAS(e, "'z' is an input in the record but an output in the plan");
}

TEST(PlanIo, DtypeMismatchIsRefused) {
  const std::string e = error_of([] {
    check_plan_io(meta(), {{"x", Role::kInput, "float32"}, {"z", Role::kInput, "float16"},
                           {"y", Role::kOutput, "TensorRT DataType 9"}});
  });
  EXPECT_HAS(e, "output 'y' is float32 in the record but TensorRT DataType 9 in the plan");
}

TEST(Bind, EvaluatesOutputShapesFromTheSymbolsTheInputsBind) {
  const Binding b = bind(meta(), {at::zeros({3, 64}), at::zeros({3, 5}, at::kHalf)});
  ASSERT_EQ(b.output_shapes.size(), 1u);
  EXPECT_EQ(b.output_shapes[0], (std::vector<int64_t>{3, 3}));
}

TEST(Bind, MakesInputsContiguousAndKeepsContiguousOnesInPlace) {
  at::Tensor x = at::zeros({64, 3}).t();
  at::Tensor z = at::zeros({3, 4}, at::kHalf);
  const Binding b = bind(meta(), {x, z});
  EXPECT_TRUE(b.inputs[0].is_contiguous());
  EXPECT_NE(b.inputs[0].data_ptr(), x.data_ptr());
  EXPECT_EQ(b.inputs[1].data_ptr(), z.data_ptr());
}

TEST(Bind, RefusesCountDtypeAndRank) {
  EXPECT_HAS(error_of([] { bind(meta(), {at::zeros({3, 64})}); }),
             "trtpack: engine 'region_0' takes 2 inputs but got 1; pass the inputs it was built for, in that order.");
  EXPECT_HAS(error_of([] { bind(meta(), {at::zeros({3, 64}, at::kDouble), at::zeros({3, 4}, at::kHalf)}); }),
             "input 'x' must be float32 but is Double; convert it");
  EXPECT_HAS(error_of([] { bind(meta(), {at::zeros({3, 64, 1}), at::zeros({3, 4}, at::kHalf)}); }),
             "input 'x' must have 2 dims but has shape [3, 64, 1]");
}

TEST(Bind, OutputOverAnUnboundSymbolIsRefused) {
  core::EngineMeta m = meta();
  m.inputs[1].shape = {std::string("s0"), std::string("2*s1")};  // s1 is named by no dim alone
  EXPECT_HAS(error_of([&] { bind(m, {at::zeros({3, 64}), at::zeros({3, 4}, at::kHalf)}); }),
             "trtpack: engine 'region_0': output 'y' has no shape for these inputs");
}

TEST(Shapes, OutOfProfileRefusalNamesTheRanges) {
  const std::string e = error_of([] { refuse_shape(meta(), 0, {17, 64}); });
  EXPECT_EQ(e, "trtpack: engine 'region_0' input 'x' has shape [17, 64], outside what it was built for (s0 in [1, 16], "
               "s1 in [2, 8]); rebuild with wider dynamic_shapes or pass an input in range.");
  core::EngineMeta m = meta();
  m.symbols.clear();
  EXPECT_EQ(ranges_text(m), "all sizes static");
}

TEST(Shapes, OutputShapeFromTensorRtMustMatchTheRecord) {
  EXPECT_NO_THROW(check_output_shape(meta(), 0, {3, 2}, {3, 2}));
  EXPECT_HAS(error_of([] { check_output_shape(meta(), 0, {3, 4}, {3, 2}); }),
             "output 'y': TensorRT computes shape [3, 4] but the record says [3, 2]; the meta does not describe");
  EXPECT_HAS(error_of([] { check_output_shape(meta(), 0, {3, -1}, {3, 2}); }),
             "output 'y' has a data-dependent shape ([3, -1])");
}

TEST(HostPlan, RefusesWhatIsNotTheRecordsByteBuffer) {
  EXPECT_HAS(error_of([] { host_plan(at::zeros({64}), meta()); }),
             "plan must be a contiguous 1-D uint8 CPU tensor, got Float");
  EXPECT_HAS(error_of([] { host_plan(at::zeros({8, 8}, at::kByte), meta()); }), "of shape [8, 8]");
  EXPECT_HAS(error_of([] { host_plan(at::zeros({10}, at::kByte), meta()); }),
             "trtpack: engine 'region_0': the plan does not match its record");
}

TEST(ScalarType, RecordNamesAndAnUnknownOne) {
  EXPECT_EQ(scalar_type("bfloat16"), at::kBFloat16);
  EXPECT_EQ(scalar_type("bool"), at::kBool);
  EXPECT_HAS(error_of([] { scalar_type("float64"); }), "dtype 'float64' cannot be allocated");
}

}  // namespace
}  // namespace trtpack::runtime
