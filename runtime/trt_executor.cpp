#include "runtime/trt_executor.h"

#if !__has_include(<NvInferRuntime.h>)
#error "trtpack: the TensorRT executor needs TensorRT's headers: build with --config=tensorrt and TENSORRT_ROOT set."
#endif
#include <NvInferRuntime.h>
#include <NvInferVersion.h>
#include <c10/core/DeviceGuard.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <c10/util/Exception.h>
#include <c10/util/StringUtil.h>
#include <cuda_runtime_api.h>
#include <torch/library.h>

#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "runtime/engine_cache.h"
#include "runtime/boxed.h"
#include "runtime/kernels.h"

namespace trtpack::trt {
namespace {

namespace nv = nvinfer1;

class Logger final : public nv::ILogger {
  void log(Severity severity, const char* message) noexcept override {
    if (severity > Severity::kWARNING) return;
    try {
      TORCH_WARN("trtpack: TensorRT: ", message);
    } catch (...) {  // a logger must not throw into TensorRT
    }
  }
};

nv::IRuntime& trt_runtime() {
  static Logger logger;
  static std::unique_ptr<nv::IRuntime> runtime(nv::createInferRuntime(logger));
  TORCH_CHECK(runtime, "trtpack: TensorRT could not create its runtime (", backend(), " ", backend_version(),
              "); check that its libraries and a CUDA driver are installed.");
  return *runtime;
}

at::ScalarType scalar_type(const std::string& dtype) {
  static const std::map<std::string, at::ScalarType> types{
      {"float32", at::kFloat}, {"float16", at::kHalf}, {"bfloat16", at::kBFloat16}, {"int64", at::kLong},
      {"int32", at::kInt},     {"int8", at::kChar},    {"uint8", at::kByte},        {"bool", at::kBool}};
  return types.at(dtype);  // the core validated the dtype
}

// One execution context per stream: a context holds the shapes of its last run, so runs on
// different streams must not share one.
struct Context {
  std::unique_ptr<nv::IExecutionContext> context;
  std::mutex run;  // setting shapes and addresses, then enqueueing, is one step
};

struct Engine {
  std::unique_ptr<nv::ICudaEngine> engine;
  std::mutex contexts_mutex;
  std::map<c10::StreamId, std::unique_ptr<Context>> contexts;

  Context& context_for(const c10::Stream& stream, const std::string& name) {
    std::lock_guard<std::mutex> lock(contexts_mutex);
    auto& slot = contexts[stream.id()];
    if (!slot) {
      slot = std::make_unique<Context>();
      slot->context.reset(engine->createExecutionContext());
      TORCH_CHECK(slot->context, "trtpack: TensorRT could not create an execution context for engine '", name,
                  "' (out of GPU memory?).");
    }
    return *slot;
  }
};

// Deserialized once per plan and device: plans are device-bound once loaded.
Engine& engine_for(const at::Tensor& plan, const core::EngineMeta& meta, const c10::Device& device) {
  using Key = std::tuple<const void*, size_t, std::string, c10::DeviceIndex>;
  static std::mutex mutex;
  static std::map<Key, std::unique_ptr<Engine>> engines;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = engines[Key{plan.data_ptr(), static_cast<size_t>(plan.nbytes()), meta.plan_sha256, device.index()}];
  if (!slot) {
    runtime::check_plan_tensor(plan, meta);
    c10::DeviceGuard guard(device);
    auto engine = std::make_unique<Engine>();
    engine->engine.reset(trt_runtime().deserializeCudaEngine(plan.data_ptr(), plan.nbytes()));
    TORCH_CHECK(engine->engine, "trtpack: ", backend(), " ", backend_version(), " could not deserialize engine '",
                meta.name, "' (built with ", meta.backend, " ", meta.backend_version, " for ",
                c10::Join(",", meta.targets), ") on ", device, "; see TensorRT's message above. Rebuild the engine "
                "with this TensorRT version for this GPU.");
    slot = std::move(engine);
  }
  return *slot;
}

nv::Dims to_dims(at::IntArrayRef sizes) {
  nv::Dims dims{};
  dims.nbDims = static_cast<int32_t>(sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) dims.d[i] = sizes[i];
  return dims;
}

std::string symbol_ranges(const core::EngineMeta& meta) {
  std::string out;
  for (const auto& [name, range] : meta.symbols)
    out += (out.empty() ? "" : ", ") + name + " in [" + std::to_string(range.min) + ", " + std::to_string(range.max) +
           "]";
  return out.empty() ? "static shapes" : out;
}

}  // namespace

const std::string& backend() {
#ifdef TRTPACK_TRT_BACKEND
  static const std::string name = TRTPACK_TRT_BACKEND;
#else
  static const std::string name = "tensorrt";
#endif
  return name;
}

const std::string& backend_version() {
  static const std::string version = std::to_string(NV_TENSORRT_MAJOR) + "." + std::to_string(NV_TENSORRT_MINOR) +
                                     "." + std::to_string(NV_TENSORRT_PATCH) + "." + std::to_string(NV_TENSORRT_BUILD);
  return version;
}

core::Verdict verdict_on(const at::Tensor& plan, const core::EngineMeta& meta, const c10::Device& device) {
  int major = 0, minor = 0;
  core::Machine machine;
  machine.cuda = true;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device.index()) == cudaSuccess &&
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device.index()) == cudaSuccess)
    machine.sm = "sm" + std::to_string(major) + std::to_string(minor);
  machine.backends[backend()] = backend_version();
  core::Verdict verdict = core::compatibility(meta, machine);
  if (!verdict.usable) return verdict;
  try {
    engine_for(plan, meta, device);
  } catch (const c10::Error& e) {
    return {false, e.what_without_backtrace()};
  }
  return verdict;
}

at::Tensor engine_usable(const std::vector<at::Tensor>& inputs, const at::Tensor& plan, const std::string& meta) {
  const c10::Device device = trtpack::engine_device(inputs, plan);
  const core::Verdict verdict = runtime::usable_on(
      plan, meta, device, [&](const core::EngineMeta& m) { return verdict_on(plan, m, device); });
  return at::scalar_tensor(verdict.usable, at::TensorOptions().dtype(at::kBool));
}

std::vector<at::Tensor> execute_engine(const std::vector<at::Tensor>& inputs, const at::Tensor& plan,
                                       const std::string& meta_text) {
  const auto meta = runtime::parsed_meta(meta_text);
  const c10::Device device = trtpack::engine_device(inputs, plan);
  TORCH_CHECK_VALUE(inputs.size() == meta->inputs.size(), "trtpack: engine '", meta->name, "' takes ",
                    meta->inputs.size(), " inputs but got ", inputs.size(), "; pass the inputs it was built for.");
  c10::DeviceGuard guard(device);
  const c10::Stream stream = c10::impl::getDeviceGuardImpl(device.type())->getStream(device);
  Context& ctx = engine_for(plan, *meta, device).context_for(stream, meta->name);
  std::lock_guard<std::mutex> lock(ctx.run);

  std::vector<at::Tensor> held;  // contiguous inputs stay alive until enqueued
  for (size_t i = 0; i < inputs.size(); ++i) {
    const core::TensorSpec& spec = meta->inputs[i];
    TORCH_CHECK_VALUE(inputs[i].scalar_type() == scalar_type(spec.dtype), "trtpack: engine '", meta->name,
                      "' input '", spec.name, "' must be ", spec.dtype, " but is ", inputs[i].scalar_type(),
                      "; convert it (TensorRT-RTX networks are strongly typed).");
    held.push_back(inputs[i].contiguous());
    TORCH_CHECK_VALUE(ctx.context->setInputShape(spec.name.c_str(), to_dims(held.back().sizes())), "trtpack: engine '",
                      meta->name, "' input '", spec.name, "' has shape ", held.back().sizes(),
                      ", outside what it was built for (", symbol_ranges(*meta),
                      "); rebuild with wider dynamic_shapes or pass an input in range.");
    TORCH_CHECK(ctx.context->setTensorAddress(spec.name.c_str(), held.back().data_ptr()), "trtpack: TensorRT refused "
                "the address of input '", spec.name, "' of engine '", meta->name, "'.");
  }
  std::vector<at::Tensor> outputs;
  for (const core::TensorSpec& spec : meta->outputs) {
    const nv::Dims dims = ctx.context->getTensorShape(spec.name.c_str());
    TORCH_CHECK(dims.nbDims >= 0, "trtpack: engine '", meta->name, "' has no output named '", spec.name,
                "'; the meta does not describe this plan: rebuild the engine with trtpack.");
    std::vector<int64_t> shape(dims.d, dims.d + dims.nbDims);
    for (int64_t d : shape)
      TORCH_CHECK(d >= 0, "trtpack: engine '", meta->name, "' output '", spec.name, "' has a data-dependent shape (",
                  c10::IntArrayRef(shape), "), which trtpack's executor does not support; keep that operation out "
                  "of the engine.");
    outputs.push_back(at::empty(shape, at::TensorOptions().dtype(scalar_type(spec.dtype)).device(device)));
    TORCH_CHECK(ctx.context->setTensorAddress(spec.name.c_str(), outputs.back().data_ptr()), "trtpack: TensorRT "
                "refused the address of output '", spec.name, "' of engine '", meta->name, "'.");
  }
  TORCH_CHECK(ctx.context->enqueueV3(static_cast<cudaStream_t>(stream.native_handle())), "trtpack: TensorRT failed "
              "to run engine '", meta->name, "'; see TensorRT's message above.");
  return outputs;
}

}  // namespace trtpack::trt

TORCH_LIBRARY_IMPL(trtpack, CUDA, m) {
  m.impl("execute_engine", trtpack::boxed_kernel<std::vector<at::Tensor>, &trtpack::trt::execute_engine>());
  m.impl("engine_usable", trtpack::boxed_kernel<at::Tensor, &trtpack::trt::engine_usable>());
}
