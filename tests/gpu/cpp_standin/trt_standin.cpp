// The C++ face of trtpack's computing TensorRT STAND-IN: a TEST DOUBLE, not TensorRT.
//
// libtrtpack_trt_standin.so implements the slice of TensorRT's C++ runtime API that runtime/trt_executor.cpp calls
// (createInferRuntime, IRuntime::deserializeCudaEngine, ICudaEngine's I/O queries and createExecutionContext,
// IExecutionContext::setInputShape / getTensorShape / setTensorAddress / enqueueV3), compiled against NVIDIA's
// public TensorRT headers, so a libtorchtrt_runtime.so built with the C++ executor runs on a GPU that no TensorRT
// engine can run on. It computes through the same registry as trtpack.runtime.standin: the process is Python, and
// trtpack.runtime.standin_cpp attaches callbacks (ctypes) that find the plan's registered region, infer output shapes
// and compute it through the raw addresses, on the stream given, recording each run in the Python stand-in's `runs`.
//
// Like TensorRT it refuses, logging to the ILogger (and the Python stand-in's `errors`) and answering nullptr/false:
// a plan that is not the registered one (the Python side checks bytes, size, header, version), an unknown tensor
// name, a shape outside the profile, a missing address, an address on another device or in host memory. It reports
// each tensor's registered dtype through the I/O queries, so the executor catches a record that disagrees.
#include <dlfcn.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "standin_stubs.h"  // generated from the headers at build time (gen_stubs.py)

namespace nv = nvinfer1;

extern "C" {
// What trtpack.runtime.standin_cpp gives the stand-in (ctypes callbacks; each takes the GIL itself).
struct trtpack_standin_callbacks {
  // The registered engine of these plan bytes: its id (>= 0) and I/O written to `io` as lines
  // "name\tI|O\tdtype\tmin,dims\tmax,dims\n"; -1 when refused (the reason went to `error`).
  int64_t (*deserialize)(const void* plan, uint64_t size, int32_t device, char* io, uint64_t capacity);
  // Output shapes for these input shapes: each shape is 9 int64 (rank, then dims).
  int32_t (*output_shapes)(int64_t engine, const int64_t* input_shapes, int64_t* output_shapes);
  // Computes the engine: one address and one shape per I/O tensor (inputs first), on `stream`; 1 done, 0 refused.
  int32_t (*enqueue)(int64_t engine, const uint64_t* addresses, const int64_t* shapes, uint64_t stream);
  void (*error)(const char* message);
};
}

namespace trtpack_standin {
namespace {

constexpr int kDimSlots = 1 + nv::Dims::MAX_DIMS;
std::mutex attach_mutex;
trtpack_standin_callbacks callbacks{};
std::atomic<bool> null_contexts{false};

struct Io {
  std::string name;
  bool input = false;
  nv::DataType dtype = nv::DataType::kFLOAT;
  std::vector<int64_t> min, max;
};

nv::DataType dtype_of(const std::string& name) {
  static const std::map<std::string, nv::DataType> types{
      {"float32", nv::DataType::kFLOAT}, {"float16", nv::DataType::kHALF}, {"bfloat16", nv::DataType::kBF16},
      {"int8", nv::DataType::kINT8},     {"int32", nv::DataType::kINT32},  {"int64", nv::DataType::kINT64},
      {"bool", nv::DataType::kBOOL},     {"uint8", nv::DataType::kUINT8}};
  return types.at(name);
}

std::vector<int64_t> ints(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(std::stoll(item));
  return out;
}

std::string dims_text(const std::vector<int64_t>& dims) {
  std::string out = "(";
  for (size_t i = 0; i < dims.size(); ++i) out += (i ? ", " : "") + std::to_string(dims[i]);
  return out + (dims.size() == 1 ? ",)" : ")");
}

// libcuda's pointer query, found at run time (the stand-in links nothing of CUDA).
using PointerGetAttribute = int (*)(void*, int, uint64_t);
using CtxGetDevice = int (*)(int*);
struct Cuda {
  PointerGetAttribute pointer_attribute = nullptr;
  CtxGetDevice ctx_device = nullptr;
  Cuda() {
    if (void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD) ?: dlopen("libcuda.so.1", RTLD_NOW)) {
      pointer_attribute = reinterpret_cast<PointerGetAttribute>(dlsym(lib, "cuPointerGetAttribute"));
      ctx_device = reinterpret_cast<CtxGetDevice>(dlsym(lib, "cuCtxGetDevice"));
    }
  }
};
const Cuda& cuda() {
  static Cuda c;
  return c;
}
constexpr int kPointerDeviceOrdinal = 9;  // CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL

int device_of(uint64_t address) {  // -1: memory CUDA does not know (host memory)
  int ordinal = -1;
  if (cuda().pointer_attribute == nullptr || cuda().pointer_attribute(&ordinal, kPointerDeviceOrdinal, address) != 0)
    return -1;
  return ordinal;
}

class Engine;

class Context final : public nv::IExecutionContext {
 public:
  explicit Context(Engine& engine, bool null);
  ~Context() noexcept override = default;

 private:
  struct Impl final : StubVExecutionContext {
    Context* self;
    nv::IExecutionContext* getPImpl() noexcept override { return self; }
    bool setInputShape(char const* name, nv::Dims const& dims) noexcept override;
    nv::Dims getTensorShape(char const* name) const noexcept override;
    bool setTensorAddress(char const* name, void* data) noexcept override;
    bool enqueueV3(cudaStream_t stream) noexcept override;
  } impl_;
  Engine& engine_;
  bool null_;
  std::vector<std::vector<int64_t>> shapes_;  // per I/O tensor; inputs as set, outputs as inferred
  std::vector<uint64_t> addresses_;
  bool outputs_known_ = false;
  friend struct Impl;
};

class Engine final : public nv::ICudaEngine {
 public:
  Engine(nv::ILogger* logger, int64_t id, int device, std::vector<Io> io)
      : logger_(logger), id_(id), device_(device), io_(std::move(io)) {
    impl_.self = this;
    mImpl = &impl_;
  }
  ~Engine() noexcept override = default;

  void error(const std::string& message) const noexcept;
  int index(const char* name) const {
    for (size_t i = 0; i < io_.size(); ++i)
      if (name != nullptr && io_[i].name == name) return static_cast<int>(i);
    return -1;
  }
  // Output shapes for the inputs' shapes, asked of the registry once per distinct input shapes.
  bool output_shapes(std::vector<std::vector<int64_t>>& shapes) {
    std::vector<int64_t> key;
    for (size_t i = 0; i < io_.size(); ++i)
      if (io_[i].input) key.insert(key.end(), shapes[i].begin(), shapes[i].end()), key.push_back(-1);
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = inferred_.find(key);
    if (it == inferred_.end()) {
      std::vector<int64_t> in, out;
      for (size_t i = 0; i < io_.size(); ++i) {
        if (!io_[i].input) continue;
        std::vector<int64_t> slot(kDimSlots, 0);
        slot[0] = static_cast<int64_t>(shapes[i].size());
        std::copy(shapes[i].begin(), shapes[i].end(), slot.begin() + 1);
        in.insert(in.end(), slot.begin(), slot.end());
      }
      out.assign(io_.size() * kDimSlots, 0);
      if (callbacks.output_shapes == nullptr || !callbacks.output_shapes(id_, in.data(), out.data())) {
        error("getTensorShape: the registry could not infer the output shapes");
        return false;
      }
      std::vector<std::vector<int64_t>> result;
      for (size_t o = 0; o < io_.size(); ++o) {
        const int64_t* slot = &out[o * kDimSlots];
        result.emplace_back(slot + 1, slot + 1 + slot[0]);
      }
      it = inferred_.emplace(key, std::move(result)).first;
    }
    for (size_t i = 0; i < io_.size(); ++i)  // the registry wrote each output's shape at its I/O index
      if (!io_[i].input) shapes[i] = it->second[i];
    return true;
  }

  nv::ILogger* logger_;
  int64_t id_;
  int device_;
  std::vector<Io> io_;

 private:
  struct Impl final : StubVCudaEngine {
    Engine* self;
    nv::ICudaEngine* getPImpl() noexcept override { return self; }
    int32_t getNbIOTensors() const noexcept override { return static_cast<int32_t>(self->io_.size()); }
    char const* getIOTensorName(int32_t index) const noexcept override {
      return index >= 0 && index < getNbIOTensors() ? self->io_[index].name.c_str() : nullptr;
    }
    nv::TensorIOMode getTensorIOMode(char const* name) const noexcept override {
      const int i = self->index(name);
      return i < 0 ? nv::TensorIOMode::kNONE : self->io_[i].input ? nv::TensorIOMode::kINPUT : nv::TensorIOMode::kOUTPUT;
    }
    nv::DataType getTensorDataType(char const* name) const noexcept override {
      const int i = self->index(name);
      return i < 0 ? nv::DataType::kFLOAT : self->io_[i].dtype;
    }
    nv::IExecutionContext* createExecutionContext(nv::ExecutionContextAllocationStrategy) noexcept override {
      return new (std::nothrow) Context(*self, null_contexts.load());
    }
  } impl_;
  std::mutex mutex_;
  std::map<std::vector<int64_t>, std::vector<std::vector<int64_t>>> inferred_;
};

void Engine::error(const std::string& message) const noexcept {
  try {
    if (logger_ != nullptr) logger_->log(nv::ILogger::Severity::kERROR, ("[TensorRT C++ stand-in] " + message).c_str());
    if (callbacks.error != nullptr) callbacks.error(message.c_str());
  } catch (...) {
  }
}

Context::Context(Engine& engine, bool null)
    : engine_(engine), null_(null), shapes_(engine.io_.size()), addresses_(engine.io_.size(), 0) {
  impl_.self = this;
  mImpl = &impl_;
}

bool Context::Impl::setInputShape(char const* name, nv::Dims const& dims) noexcept {
  Context& c = *self;
  const int i = c.engine_.index(name);
  if (i < 0 || !c.engine_.io_[i].input) {
    c.engine_.error(std::string("setInputShape: no input named '") + (name ? name : "(null)") + "'");
    return false;
  }
  const Io& io = c.engine_.io_[i];
  std::vector<int64_t> shape(dims.d, dims.d + std::max(dims.nbDims, 0));
  bool inside = shape.size() == io.min.size();
  for (size_t d = 0; inside && d < shape.size(); ++d) inside = io.min[d] <= shape[d] && shape[d] <= io.max[d];
  if (!inside) {
    c.engine_.error("setInputShape: '" + io.name + "' " + dims_text(shape) + " is outside the profile [" +
                    dims_text(io.min) + ", " + dims_text(io.max) + "]");
    return false;
  }
  if (c.shapes_[i] != shape) c.outputs_known_ = false;
  c.shapes_[i] = std::move(shape);
  return true;
}

nv::Dims Context::Impl::getTensorShape(char const* name) const noexcept {
  Context& c = *self;
  nv::Dims dims{};
  const int i = c.engine_.index(name);
  if (i < 0) {
    dims.nbDims = -1;  // TensorRT's answer for an unknown name
    return dims;
  }
  if (!c.engine_.io_[i].input && !c.outputs_known_) {
    for (size_t k = 0; k < c.shapes_.size(); ++k)
      if (c.engine_.io_[k].input && c.shapes_[k].empty() && !c.engine_.io_[k].min.empty()) {
        c.engine_.error("getTensorShape: input '" + c.engine_.io_[k].name + "' has no shape set");
        dims.nbDims = -1;
        return dims;
      }
    if (!c.engine_.output_shapes(c.shapes_)) {
      dims.nbDims = -1;
      return dims;
    }
    c.outputs_known_ = true;
  }
  const std::vector<int64_t>& shape = c.shapes_[i];
  dims.nbDims = static_cast<int32_t>(shape.size());
  std::copy(shape.begin(), shape.end(), dims.d);
  return dims;
}

bool Context::Impl::setTensorAddress(char const* name, void* data) noexcept {
  Context& c = *self;
  if (c.null_) return true;  // a null context binds and enqueues nothing (shapes are kept: what a benchmark
                             // measures the executor against)
  const int i = c.engine_.index(name);
  if (i < 0) {
    c.engine_.error(std::string("setTensorAddress: no tensor named '") + (name ? name : "(null)") + "'");
    return false;
  }
  c.addresses_[i] = reinterpret_cast<uint64_t>(data);
  return true;
}

bool Context::Impl::enqueueV3(cudaStream_t stream) noexcept {
  Context& c = *self;
  if (c.null_) return true;
  const auto& io = c.engine_.io_;
  std::string missing;
  for (size_t i = 0; i < io.size(); ++i)
    if (c.addresses_[i] == 0) missing += (missing.empty() ? "" : ", ") + io[i].name;
  if (!missing.empty()) {
    c.engine_.error("enqueueV3: no address set for " + missing);
    return false;
  }
  for (size_t i = 0; i < io.size(); ++i) {
    const int owner = device_of(c.addresses_[i]);
    if (owner != c.engine_.device_) {
      char at[32];
      std::snprintf(at, sizeof at, "%#llx", static_cast<unsigned long long>(c.addresses_[i]));
      c.engine_.error("enqueueV3: '" + io[i].name + "' at " + at + " is in " +
                      (owner < 0 ? std::string("host memory") : "cuda:" + std::to_string(owner)) +
                      ", the engine is on cuda:" + std::to_string(c.engine_.device_));
      return false;
    }
  }
  for (size_t i = 0; i < io.size() && !c.outputs_known_; ++i)  // the outputs' shapes, if nobody asked yet
    if (!io[i].input && getTensorShape(io[i].name.c_str()).nbDims < 0) return false;
  std::vector<int64_t> shapes(io.size() * kDimSlots, 0);
  for (size_t i = 0; i < io.size(); ++i) {
    shapes[i * kDimSlots] = static_cast<int64_t>(c.shapes_[i].size());
    std::copy(c.shapes_[i].begin(), c.shapes_[i].end(), shapes.begin() + i * kDimSlots + 1);
  }
  if (callbacks.enqueue == nullptr) {
    c.engine_.error("enqueueV3: no registry is attached (trtpack.runtime.standin_cpp.attach)");
    return false;
  }
  return callbacks.enqueue(c.engine_.id_, c.addresses_.data(), shapes.data(), reinterpret_cast<uint64_t>(stream)) == 1;
}

class Runtime final : public nv::IRuntime {
 public:
  explicit Runtime(nv::ILogger* logger) : logger_(logger) {
    impl_.self = this;
    mImpl = &impl_;
  }
  ~Runtime() noexcept override = default;

 private:
  struct Impl final : StubVRuntime {
    Runtime* self;
    nv::IRuntime* getPImpl() noexcept override { return self; }
    nv::ILogger* getLogger() const noexcept override { return self->logger_; }
    nv::ICudaEngine* deserializeCudaEngine(void const* blob, std::size_t size) noexcept override;
  } impl_;
  nv::ILogger* logger_;
};

nv::ICudaEngine* Runtime::Impl::deserializeCudaEngine(void const* blob, std::size_t size) noexcept {
  Engine refusal(self->logger_, -1, -1, {});
  try {
    if (callbacks.deserialize == nullptr) {
      refusal.error("deserializeCudaEngine: no registry is attached: in the Python process, call "
                    "trtpack.runtime.standin_cpp.attach() (trtpack does when TRTPACK_TENSORRT_STANDIN=1)");
      return nullptr;
    }
    int device = -1;
    if (cuda().ctx_device == nullptr || cuda().ctx_device(&device) != 0) {
      refusal.error("deserializeCudaEngine: no current CUDA device");
      return nullptr;
    }
    std::vector<char> text(1 << 16, '\0');
    const int64_t id = callbacks.deserialize(blob, size, device, text.data(), text.size());
    if (id < 0) return nullptr;  // the registry logged why
    std::vector<Io> io;
    std::stringstream lines(text.data());
    for (std::string line; std::getline(lines, line);) {
      std::stringstream fields(line);
      std::string name, role, dtype, lo, hi;
      std::getline(fields, name, '\t');
      std::getline(fields, role, '\t');
      std::getline(fields, dtype, '\t');
      std::getline(fields, lo, '\t');
      std::getline(fields, hi, '\t');
      io.push_back({name, role == "I", dtype_of(dtype), ints(lo), ints(hi)});
    }
    return new Engine(self->logger_, id, device, std::move(io));
  } catch (const std::exception& e) {
    refusal.error(std::string("deserializeCudaEngine: ") + e.what());
    return nullptr;
  }
}

}  // namespace

void unsupported(const char* method) noexcept {
  std::fprintf(stderr, "[TensorRT C++ stand-in] ERROR: %s is not implemented by the stand-in (a test double)\n",
               method);
}

}  // namespace trtpack_standin

extern "C" {

__attribute__((visibility("default"))) void* createInferRuntime_INTERNAL(void* logger, int32_t) noexcept {
  return static_cast<nv::IRuntime*>(new (std::nothrow) trtpack_standin::Runtime(static_cast<nv::ILogger*>(logger)));
}

__attribute__((visibility("default"))) int32_t getInferLibVersion() noexcept { return NV_TENSORRT_VERSION; }

// Called by trtpack.runtime.standin_cpp.attach(): where the stand-in finds the registry.
__attribute__((visibility("default"))) void trtpack_standin_attach(const trtpack_standin_callbacks* given) {
  std::lock_guard<std::mutex> lock(trtpack_standin::attach_mutex);
  trtpack_standin::callbacks = given ? *given : trtpack_standin_callbacks{};
}

// While on, new execution contexts are null contexts (every call does nothing): bench.engine_call's baseline.
__attribute__((visibility("default"))) void trtpack_standin_null_contexts(int32_t on) {
  trtpack_standin::null_contexts = on != 0;
}

// Runs one single-input single-output engine through the stand-in's own C++ API (createInferRuntime ... enqueueV3)
// with the given shape and addresses, so a test can hand it what the executor never would (a host address, none, a
// shape out of the profile, other plan bytes). Returns 1 if it ran, 0 if refused (the reason is in the stand-in's
// errors), -1 if deserialization failed.
__attribute__((visibility("default"))) int32_t trtpack_standin_probe(const void* plan, uint64_t size,
                                                                     const int64_t* shape, int32_t rank,
                                                                     uint64_t input, uint64_t output,
                                                                     uint64_t stream) {
  struct Quiet final : nv::ILogger {
    void log(Severity, const char*) noexcept override {}
  } logger;
  std::unique_ptr<nv::IRuntime> runtime(nv::createInferRuntime(logger));
  std::unique_ptr<nv::ICudaEngine> engine(runtime->deserializeCudaEngine(plan, size));
  if (!engine) return -1;
  std::unique_ptr<nv::IExecutionContext> context(engine->createExecutionContext());
  const char* in = engine->getIOTensorName(0);
  const char* out = engine->getIOTensorName(1);
  nv::Dims dims{};
  dims.nbDims = rank;
  for (int32_t d = 0; d < rank; ++d) dims.d[d] = shape[d];
  if (!context->setInputShape(in, dims)) return 0;
  if (input) context->setTensorAddress(in, reinterpret_cast<void*>(input));
  if (output) context->setTensorAddress(out, reinterpret_cast<void*>(output));
  return context->enqueueV3(reinterpret_cast<cudaStream_t>(stream)) ? 1 : 0;
}
}
