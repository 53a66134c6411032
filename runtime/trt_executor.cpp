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

#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <tuple>
#include <vector>

#include "runtime/boxed.h"
#include "runtime/engine_cache.h"
#include "runtime/engine_io.h"
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

// The record's dtype name of a TensorRT DataType (TensorRT's own spelling for one trtpack does not use).
std::string dtype_name(nv::DataType type) {
  switch (type) {
    case nv::DataType::kFLOAT: return "float32";
    case nv::DataType::kHALF: return "float16";
    case nv::DataType::kBF16: return "bfloat16";
    case nv::DataType::kINT8: return "int8";
    case nv::DataType::kINT32: return "int32";
    case nv::DataType::kINT64: return "int64";
    case nv::DataType::kBOOL: return "bool";
    case nv::DataType::kUINT8: return "uint8";
    default: return "TensorRT DataType " + std::to_string(static_cast<int>(type));
  }
}

// The deserialized plan's I/O, through TensorRT's I/O queries.
std::vector<runtime::PlanTensor> plan_io(const nv::ICudaEngine& engine) {
  std::vector<runtime::PlanTensor> io;
  for (int32_t i = 0; i < engine.getNbIOTensors(); ++i) {
    const char* name = engine.getIOTensorName(i);
    if (name == nullptr) continue;
    const nv::TensorIOMode mode = engine.getTensorIOMode(name);
    io.push_back({name,
                  mode == nv::TensorIOMode::kINPUT    ? runtime::Role::kInput
                  : mode == nv::TensorIOMode::kOUTPUT ? runtime::Role::kOutput
                                                      : runtime::Role::kNone,
                  dtype_name(engine.getTensorDataType(name))});
  }
  return io;
}

// One execution context per stream: a context holds the shapes of its last run, so runs on
// different streams must not share one.
struct Context {
  std::unique_ptr<nv::IExecutionContext> context;
  std::mutex run;  // setting shapes and addresses, then enqueueing, is one step
  // The signature of the last run (its record, input dtypes and sizes) and the output shapes TensorRT and the record
  // agreed on for it: TensorRT keeps a context's input shapes between runs, so a run with the same signature sets and
  // checks nothing again. `meta` is null until a run's shapes were all set and checked.
  const core::EngineMeta* meta = nullptr;
  std::vector<at::ScalarType> input_dtypes;
  std::vector<std::vector<int64_t>> input_sizes;
  std::vector<std::vector<int64_t>> output_shapes;
  std::vector<at::TensorOptions> output_options;

  bool same_signature(const core::EngineMeta& record, const std::vector<at::Tensor>& inputs) const {
    if (meta != &record || inputs.size() != input_sizes.size()) return false;
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (inputs[i].scalar_type() != input_dtypes[i] || inputs[i].sizes() != at::IntArrayRef(input_sizes[i]))
        return false;
    }
    return true;
  }
};

struct Engine {
  std::unique_ptr<nv::ICudaEngine> engine;
  std::set<const core::EngineMeta*> checked;  // records (parsed once per meta string) whose I/O matched the plan
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
  // A record already checked against this plan on this device: found without building a key with the plan's hash
  // (records are parsed once per meta string and never freed, so their addresses are stable).
  using Seen = std::tuple<const void*, size_t, const core::EngineMeta*, c10::DeviceIndex>;
  static std::mutex mutex;
  static std::map<Key, std::unique_ptr<Engine>> engines;
  static std::map<Seen, Engine*> seen;
  std::lock_guard<std::mutex> lock(mutex);
  const Seen seen_key{plan.data_ptr(), static_cast<size_t>(plan.nbytes()), &meta, device.index()};
  if (auto hit = seen.find(seen_key); hit != seen.end()) return *hit->second;
  auto& slot = engines[Key{plan.data_ptr(), static_cast<size_t>(plan.nbytes()), meta.plan_sha256, device.index()}];
  if (!slot) {
    const at::Tensor host = runtime::host_plan(plan, meta);  // a plan on CUDA is copied once, here
    c10::DeviceGuard guard(device);
    auto engine = std::make_unique<Engine>();
    engine->engine.reset(trt_runtime().deserializeCudaEngine(host.data_ptr(), host.nbytes()));
    TORCH_CHECK(engine->engine, "trtpack: ", backend(), " ", backend_version(), " could not deserialize engine '",
                meta.name, "' (built with ", meta.backend, " ", meta.backend_version, " for ",
                c10::Join(",", meta.targets), ") on ", device, "; see TensorRT's message above. Rebuild the engine "
                "with this TensorRT version for this GPU.");
    slot = std::move(engine);
  }
  if (!slot->checked.count(&meta)) {  // every record that names this plan, not only the first
    runtime::check_plan_io(meta, plan_io(*slot->engine));
    slot->checked.insert(&meta);
  }
  seen.emplace(seen_key, slot.get());
  return *slot;
}

nv::Dims to_dims(at::IntArrayRef sizes) {
  nv::Dims dims{};
  dims.nbDims = static_cast<int32_t>(sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) dims.d[i] = sizes[i];
  return dims;
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
#ifdef TRTPACK_TRT_VERSION  // the library's version where its headers are another's (the stand-in build's)
  static const std::string version = TRTPACK_TRT_VERSION;
#else
  static const std::string version = std::to_string(NV_TENSORRT_MAJOR) + "." + std::to_string(NV_TENSORRT_MINOR) +
                                     "." + std::to_string(NV_TENSORRT_PATCH) + "." + std::to_string(NV_TENSORRT_BUILD);
#endif
  return version;
}

core::Verdict verdict_on(const at::Tensor& plan, const core::EngineMeta& meta, const c10::Device& device) {
  int major = 0, minor = 0;
  core::Machine machine;
  machine.cuda = true;
#ifdef TRTPACK_TENSORRT_STANDIN
  // A stand-in build (a test double): the GPU is the one the stand-in says it is, as in trtpack.runtime.standin.
  const char* sm = std::getenv("TRTPACK_STANDIN_SM");
  machine.sm = sm != nullptr && *sm != '\0' ? std::string(sm) : std::string("sm86");
#else
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device.index()) == cudaSuccess &&
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device.index()) == cudaSuccess)
    machine.sm = "sm" + std::to_string(major) + std::to_string(minor);
#endif
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
  c10::DeviceGuard guard(device);
  const c10::Stream stream = c10::impl::getDeviceGuardImpl(device.type())->getStream(device);
  Context& ctx = engine_for(plan, *meta, device).context_for(stream, meta->name);
  std::lock_guard<std::mutex> lock(ctx.run);

  std::vector<at::Tensor> held;  // contiguous inputs, alive until enqueued
  if (ctx.same_signature(*meta, inputs)) {
    held.reserve(inputs.size());
    for (const at::Tensor& x : inputs) held.push_back(x.contiguous());
  } else {
    ctx.meta = nullptr;  // until every shape is set and checked
    runtime::Binding binding = runtime::bind(*meta, inputs);  // count, dtypes, ranks; the record's output shapes
    ctx.input_dtypes.clear();
    ctx.input_sizes.clear();
    for (size_t i = 0; i < binding.inputs.size(); ++i) {
      const at::Tensor& x = binding.inputs[i];
      if (!ctx.context->setInputShape(meta->inputs[i].name.c_str(), to_dims(x.sizes())))
        runtime::refuse_shape(*meta, i, x.sizes());
      ctx.input_dtypes.push_back(x.scalar_type());
      ctx.input_sizes.push_back(x.sizes().vec());
    }
    ctx.output_options.clear();
    for (size_t i = 0; i < meta->outputs.size(); ++i) {
      const core::TensorSpec& spec = meta->outputs[i];
      const nv::Dims dims = ctx.context->getTensorShape(spec.name.c_str());
      TORCH_CHECK(dims.nbDims >= 0, "trtpack: engine '", meta->name, "' has no output named '", spec.name,
                  "'; the meta does not describe this plan: rebuild the engine with trtpack.");
      runtime::check_output_shape(*meta, i, std::vector<int64_t>(dims.d, dims.d + dims.nbDims),
                                  binding.output_shapes[i]);
      ctx.output_options.push_back(at::TensorOptions().dtype(runtime::scalar_type(spec.dtype)).device(device));
    }
    ctx.output_shapes = std::move(binding.output_shapes);
    held = std::move(binding.inputs);
    ctx.meta = meta.get();
  }
  for (size_t i = 0; i < held.size(); ++i) {
    const char* name = meta->inputs[i].name.c_str();
    TORCH_CHECK(ctx.context->setTensorAddress(name, held[i].data_ptr()), "trtpack: TensorRT refused the address of "
                "input '", name, "' of engine '", meta->name, "'; see TensorRT's message above.");
  }
  std::vector<at::Tensor> outputs;
  outputs.reserve(meta->outputs.size());
  for (size_t i = 0; i < meta->outputs.size(); ++i) {
    const std::string& name = meta->outputs[i].name;
    outputs.push_back(at::empty(ctx.output_shapes[i], ctx.output_options[i]));
    TORCH_CHECK(ctx.context->setTensorAddress(name.c_str(), outputs.back().data_ptr()), "trtpack: TensorRT "
                "refused the address of output '", name, "' of engine '", meta->name, "'; see TensorRT's "
                "message above.");
  }
  TORCH_CHECK(ctx.context->enqueueV3(static_cast<cudaStream_t>(stream.native_handle())), "trtpack: TensorRT failed "
              "to run engine '", meta->name, "'; see TensorRT's message above.");
  return outputs;
}

}  // namespace trtpack::trt

// Which TensorRT this library's executor runs, readable once loaded (trtpack.runtime.executors reads it with ctypes).
extern "C" __attribute__((used, visibility("default"))) const char* trtpack_runtime_executor() {
  static const std::string text = trtpack::trt::backend() + " " + trtpack::trt::backend_version()
#ifdef TRTPACK_TENSORRT_STANDIN
                                  + " stand-in"
#endif
      ;
  return text.c_str();
}

TORCH_LIBRARY_IMPL(trtpack, CUDA, m) {
  m.impl("execute_engine", trtpack::boxed_kernel<std::vector<at::Tensor>, &trtpack::trt::execute_engine>());
  m.impl("engine_usable", trtpack::boxed_kernel<at::Tensor, &trtpack::trt::engine_usable>());
}
