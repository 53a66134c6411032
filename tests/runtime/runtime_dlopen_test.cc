// libtorchtrt_runtime.so loaded with dlopen into a process with libtorch and no Python (as an AOTInductor runner
// does): both ops appear in c10's dispatcher with the schema Python sees (op_schemas.txt, also read by
// test_kernels.py), and their CPU kernels answer.
// Usage: runtime_dlopen_test <path of libtorchtrt_runtime.so> <path of op_schemas.txt>
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

namespace {

std::string library_path;
std::string schemas_path;

std::vector<std::string> expected_schemas() {
  std::ifstream in(schemas_path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  return lines;
}

std::optional<c10::OperatorHandle> find(const char* name) { return c10::Dispatcher::singleton().findSchema({name, ""}); }

// Calls an op boxed, as AOTInductor's proxy executor does: (inputs, plan, meta) in, the one result out.
c10::IValue call(const char* name, std::vector<at::Tensor> inputs, at::Tensor plan, const std::string& meta) {
  std::vector<c10::IValue> stack{c10::IValue(std::move(inputs)), c10::IValue(std::move(plan)), c10::IValue(meta)};
  find(name)->callBoxed(&stack);
  return stack.at(0);
}

// A record libtorchtrt_runtime accepts: backend "tensorrt" (no plan header to match), plan of 16 bytes.
const std::string kMeta =
    R"({"backend":"tensorrt","backend_version":"10.13.0.35","build":{},"format":"trtpack.engine",)"
    R"("format_version":[1,0],"inputs":[{"dtype":"float32","name":"x","shape":["s0",3]}],"name":"cpp_engine",)"
    R"("outputs":[{"dtype":"float32","name":"y","shape":["s0",3]}],)"
    R"("plan_sha256":"0000000000000000000000000000000000000000000000000000000000000000","plan_size":16,)"
    R"("symbols":{"s0":{"max":8,"min":1,"opt":2}},"targets":["sm90"],"torch_version":"2.13.0",)"
    R"("trtpack_version":"0.1.0"})";

class RuntimeLibrary : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_FALSE(find("trtpack::execute_engine").has_value()) << "the ops must come from the library, not the test";
    handle_ = dlopen(library_path.c_str(), RTLD_NOW | RTLD_GLOBAL);
    ASSERT_NE(handle_, nullptr) << dlerror();
  }
  static void* handle_;
};
void* RuntimeLibrary::handle_ = nullptr;

TEST_F(RuntimeLibrary, RegistersBothOpsWithThePythonVisibleSchema) {
  const std::vector<std::string> expected = expected_schemas();
  ASSERT_EQ(expected.size(), 2u);
  for (const auto& [name, schema] : {std::pair{"trtpack::execute_engine", expected[0]},
                                     std::pair{"trtpack::engine_usable", expected[1]}}) {
    auto op = find(name);
    ASSERT_TRUE(op.has_value()) << name;
    EXPECT_EQ(c10::toString(op->schema()), schema);
  }
}

TEST_F(RuntimeLibrary, EngineUsableIsFalseOnCpuWithoutPython) {
  at::Tensor usable = call("trtpack::engine_usable", {at::ones({2, 3})}, at::zeros({16}, at::kByte), kMeta).toTensor();
  EXPECT_EQ(usable.scalar_type(), at::kBool);
  EXPECT_EQ(usable.dim(), 0);
  EXPECT_FALSE(usable.item<bool>());
}

TEST_F(RuntimeLibrary, ExecuteEngineOnCpuSaysWhatToDo) {
  try {
    call("trtpack::execute_engine", {at::ones({2, 3})}, at::zeros({16}, at::kByte), kMeta);
    FAIL() << "execute_engine ran on CPU";
  } catch (const c10::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'cpp_engine' (built for sm90 with TensorRT 10.13.0.35) runs only on CUDA devices"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("fallback=True"), std::string::npos) << what;
  }
}

TEST_F(RuntimeLibrary, AMalformedRecordIsRefusedByField) {
  EXPECT_THROW(
      {
        try {
          call("trtpack::engine_usable", {at::ones({2, 3})}, at::zeros({15}, at::kByte), kMeta);
        } catch (const c10::Error& e) {
          EXPECT_NE(std::string(e.what()).find("plan_size"), std::string::npos) << e.what();
          throw;
        }
      },
      c10::Error);
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (argc != 3) {
    fprintf(stderr, "usage: %s <libtorchtrt_runtime.so> <op_schemas.txt>\n", argv[0]);
    return 2;
  }
  library_path = argv[1];
  schemas_path = argv[2];
  return RUN_ALL_TESTS();
}
