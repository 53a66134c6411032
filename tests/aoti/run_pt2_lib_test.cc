// run_pt2's command line, input matching and timing statistics.
#include "tools/run_pt2_lib.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace trtpack::run_pt2 {
namespace {

template <typename Error, typename Fn>
void expect_error(Fn fn, const std::string& fragment) {
  try {
    fn();
    FAIL() << "no error; expected one mentioning: " << fragment;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(ParseArgs, ReadsEveryOption) {
  auto o = parse_args({"m.pt2", "--inputs", "in.st", "--outputs", "out.st", "--iterations", "7", "--warmup", "2",
                       "--timing", "t.json", "--model-name", "other"});
  ASSERT_TRUE(o);
  EXPECT_EQ(o->package, "m.pt2");
  EXPECT_EQ(o->inputs, "in.st");
  EXPECT_EQ(o->outputs, "out.st");
  EXPECT_EQ(o->timing, "t.json");
  EXPECT_EQ(o->model_name, "other");
  EXPECT_EQ(o->iterations, 7);
  EXPECT_EQ(o->warmup, 2);
}

TEST(ParseArgs, DefaultsAndHelp) {
  auto o = parse_args({"--inputs", "in.st", "m.pt2"});
  ASSERT_TRUE(o);
  EXPECT_EQ(o->iterations, 1);
  EXPECT_EQ(o->warmup, 0);
  EXPECT_EQ(o->model_name, "model");
  EXPECT_TRUE(o->outputs.empty());
  EXPECT_FALSE(parse_args({"--help"}));
}

TEST(ParseArgs, RejectsBadCommandLines) {
  expect_error<UsageError>([] { parse_args({"m.pt2"}); }, "--inputs");
  expect_error<UsageError>([] { parse_args({"--inputs", "i"}); }, "exactly one MODEL.pt2 (got 0)");
  expect_error<UsageError>([] { parse_args({"a.pt2", "b.pt2", "--inputs", "i"}); }, "(got 2)");
  expect_error<UsageError>([] { parse_args({"m.pt2", "--inputs"}); }, "--inputs needs a value");
  expect_error<UsageError>([] { parse_args({"m.pt2", "--inputs", "i", "--bogus", "1"}); }, "unknown option --bogus");
  expect_error<UsageError>([] { parse_args({"m.pt2", "--inputs", "i", "--iterations", "0"}); }, "from 1");
  expect_error<UsageError>([] { parse_args({"m.pt2", "--inputs", "i", "--iterations", "3x"}); }, "got \"3x\"");
  expect_error<UsageError>([] { parse_args({"m.pt2", "--inputs", "i", "--warmup", "-1"}); }, "from 0");
}

std::vector<tensor_io::NamedTensor> named(std::vector<std::string> names) {
  std::vector<tensor_io::NamedTensor> out;
  for (size_t i = 0; i < names.size(); ++i) out.push_back({names[i], at::full({1}, static_cast<double>(i))});
  return out;
}

TEST(OrderInputs, OrdersByPositionInTheName) {
  auto t = order_inputs(named({"input_2", "input_0", "input_1"}), "f");
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].item<float>(), 1.0f);
  EXPECT_EQ(t[1].item<float>(), 2.0f);
  EXPECT_EQ(t[2].item<float>(), 0.0f);
  EXPECT_TRUE(order_inputs({}, "f").empty());
}

TEST(OrderInputs, RejectsOtherNames) {
  for (const auto& bad : {"x", "input_", "input_01", "input_2", "input_-1", "input_1a", "input_99999999999"}) {
    expect_error<RunError>([&] { order_inputs(named({"input_0", bad}), "f.st"); }, std::string("\"") + bad + "\"");
  }
}

TEST(CountSpecLeaves, CountsTensorLeavesOfArgsAndKwargs) {
  const std::string leaf = R"({"type": null, "context": null, "children_spec": []})";
  const std::string spec = R"([1, {"type": "builtins.tuple", "context": "null", "children_spec": [)"
                           R"({"type": "builtins.tuple", "context": "null", "children_spec": [)" + leaf + "," + leaf +
                           R"(]}, {"type": "builtins.dict", "context": "[\"y\"]", "children_spec": [)" + leaf + "]}]}]";
  EXPECT_EQ(count_spec_leaves(spec), 3u);
  EXPECT_EQ(count_spec_leaves("[1, " + leaf + "]"), 1u);
  EXPECT_FALSE(count_spec_leaves("not json"));
  EXPECT_FALSE(count_spec_leaves(R"([1, {"context": null}])"));
  EXPECT_FALSE(count_spec_leaves(R"([1, {"type": "builtins.tuple"}])"));
}

TEST(CheckInputs, ChecksCountDtypeRankAndStaticDims) {
  const std::unordered_map<std::string, std::string> meta = {
      {kInputsMetadataKey, R"([{"dtype":"float32","shape":["s0",4]},{"dtype":"int64","shape":[]}])"}};
  const auto x = at::zeros({5, 4});
  const auto n = at::scalar_tensor(3, at::kLong);
  EXPECT_NO_THROW(check_inputs({x, n}, 2, meta));
  EXPECT_NO_THROW(check_inputs({at::zeros({1, 4}), n}, std::nullopt, meta));
  expect_error<RunError>([&] { check_inputs({x}, 2, {}); }, "takes 2 input tensor(s) but the inputs file holds 1");
  expect_error<RunError>([&] { check_inputs({x}, std::nullopt, meta); }, "takes 2 input");
  expect_error<RunError>([&] { check_inputs({x.to(at::kDouble), n}, 2, meta); },
                         "input_0 has dtype float64 but the program expects float32");
  expect_error<RunError>([&] { check_inputs({x, n.to(at::kInt)}, 2, meta); }, "input_1 has dtype int32");
  expect_error<RunError>([&] { check_inputs({at::zeros({5, 4, 1}), n}, 2, meta); }, "has 3 dimension(s)");
  expect_error<RunError>([&] { check_inputs({at::zeros({5, 3}), n}, 2, meta); },
                         "input_0 has size 3 in dimension 1 but the program expects 4");
  expect_error<RunError>([&] { check_inputs({x, n}, 2, {{kInputsMetadataKey, "{"}}); }, "not a JSON list");
  expect_error<RunError>([&] { check_inputs({x}, 1, {{kInputsMetadataKey, "[3]"}}); }, "is malformed");
}

TEST(TimingSummary, NearestRankPercentiles) {
  std::vector<double> times;
  for (int i = 10; i >= 1; --i) times.push_back(i);
  const auto s = timing_summary(times);
  EXPECT_EQ(s["iterations"], 10);
  EXPECT_DOUBLE_EQ(s["mean_ms"].get<double>(), 5.5);
  EXPECT_DOUBLE_EQ(s["p50_ms"].get<double>(), 5.0);
  EXPECT_DOUBLE_EQ(s["p90_ms"].get<double>(), 9.0);
  EXPECT_DOUBLE_EQ(s["min_ms"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(s["max_ms"].get<double>(), 10.0);
  const auto one = timing_summary({2.0});
  EXPECT_DOUBLE_EQ(one["p50_ms"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(one["p90_ms"].get<double>(), 2.0);
  EXPECT_EQ(timing_summary({})["iterations"], 0);
}

}  // namespace
}  // namespace trtpack::run_pt2

namespace trtpack::run_pt2 {
namespace {

TEST(OutputNames, UsesThePackagesNamesOnlyWhenTheyFitEveryOutput) {
  using Meta = std::unordered_map<std::string, std::string>;
  EXPECT_EQ(output_names(2, Meta{}), (std::vector<std::string>{"output_0", "output_1"}));
  EXPECT_EQ(output_names(2, Meta{{kOutputsMetadataKey, R"(["last_hidden_state","pooler_output"])"}}),
            (std::vector<std::string>{"last_hidden_state", "pooler_output"}));
  for (const char* bad : {R"(["a"])", R"(["a","a"])", R"(["a",""])", R"(["a",3])", "not json", R"({"a":1})"})
    EXPECT_EQ(output_names(2, Meta{{kOutputsMetadataKey, bad}}), (std::vector<std::string>{"output_0", "output_1"}))
        << bad;
}

}  // namespace
}  // namespace trtpack::run_pt2
