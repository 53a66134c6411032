// run_pt2: runs an AOTInductor .pt2 package with libtorch and libtorchtrt_runtime only (no Python).
// See kUsage in run_pt2_lib.cc for the command line.
#include <torch/cuda.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include "tools/run_pt2_lib.h"
#include "tools/tensor_io.h"

namespace {

using trtpack::run_pt2::Options;
using trtpack::run_pt2::RunError;
using Clock = std::chrono::steady_clock;

// libtorch errors carry a C++ backtrace after the message; users need only the message.
std::string without_backtrace(const std::string& message) {
  return message.substr(0, message.find("\nException raised from"));
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// The package runs on the device type it was built for; inputs must live there too.
at::Device package_device(const std::unordered_map<std::string, std::string>& metadata) {
  auto it = metadata.find("AOTI_DEVICE_KEY");
  const std::string key = it == metadata.end() ? "cpu" : it->second;
  if (key == "cpu") return at::kCPU;
  if (key == "cuda") {
    if (!torch::cuda::is_available()) {
      throw RunError("the package was built for CUDA but this machine (or this libtorch) has no CUDA device; "
                     "run it on a CUDA machine, or build a CPU package on a CPU machine");
    }
    return at::kCUDA;
  }
  throw RunError("the package was built for device type \"" + key + "\", which run_pt2 does not drive");
}

void synchronize(const at::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

int run(const Options& o) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(o.package, ec)) throw RunError(o.package + ": no such file");

  auto named = trtpack::tensor_io::read_safetensors(o.inputs);
  auto inputs = trtpack::run_pt2::order_inputs(std::move(named), o.inputs);

  const auto load_start = Clock::now();
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;
  try {
    loader = std::make_unique<torch::inductor::AOTIModelPackageLoader>(o.package, o.model_name);
  } catch (const std::exception& e) {
    throw RunError(o.package + ": cannot be loaded as an AOTInductor package (" + without_backtrace(e.what()) +
                   "); make it with trtpack.save(..., \"x.pt2\") on a machine of the device type it will run on");
  }
  const double load_ms = ms_since(load_start);

  const auto metadata = loader->get_metadata();
  const auto call_spec = loader->get_call_spec();
  const auto expected = call_spec.empty() ? std::nullopt : trtpack::run_pt2::count_spec_leaves(call_spec[0]);
  trtpack::run_pt2::check_inputs(inputs, expected, metadata);

  const at::Device device = package_device(metadata);
  for (auto& t : inputs) t = t.to(device);

  std::vector<at::Tensor> outputs;
  for (int i = 0; i < o.warmup; ++i) outputs = loader->run(inputs);
  synchronize(device);
  std::vector<double> times;
  for (int i = 0; i < o.iterations; ++i) {
    const auto start = Clock::now();
    outputs = loader->run(inputs);
    synchronize(device);
    times.push_back(ms_since(start));
  }

  auto timing = trtpack::run_pt2::timing_summary(times);
  timing["warmup"] = o.warmup;
  timing["load_ms"] = load_ms;
  timing["device"] = device.str();
  if (!o.outputs.empty()) {
    std::vector<trtpack::tensor_io::NamedTensor> named_outputs;
    const auto names = trtpack::run_pt2::output_names(outputs.size(), metadata);
    for (size_t i = 0; i < outputs.size(); ++i) named_outputs.push_back({names[i], outputs[i]});
    trtpack::tensor_io::write_safetensors(o.outputs, named_outputs);
  }
  if (!o.timing.empty()) {
    std::ofstream out(o.timing);
    out << timing.dump(2) << "\n";
    if (!out) throw RunError(o.timing + ": cannot be written");
  }
  std::cout << timing.dump() << std::endl;
  return 0;
}

// Under `bazel run` the process starts in its runfiles; relative paths mean the user's directory.
std::string from_user_dir(const std::string& path) {
  const char* dir = std::getenv("BUILD_WORKING_DIRECTORY");
  if (path.empty() || !dir || std::filesystem::path(path).is_absolute()) return path;
  return (std::filesystem::path(dir) / path).string();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    auto options = trtpack::run_pt2::parse_args(std::vector<std::string>(argv + 1, argv + argc));
    if (!options) {
      std::cout << trtpack::run_pt2::kUsage;
      return 0;
    }
    for (std::string* path : {&options->package, &options->inputs, &options->outputs, &options->timing}) {
      *path = from_user_dir(*path);
    }
    return run(*options);
  } catch (const trtpack::run_pt2::UsageError& e) {
    std::cerr << "run_pt2: error: " << e.what() << "\n\n" << trtpack::run_pt2::kUsage;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "run_pt2: error: " << without_backtrace(e.what()) << "\n";
    return 1;
  }
}
