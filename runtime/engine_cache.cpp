#include "runtime/engine_cache.h"

#include <c10/util/Exception.h>

#include <map>
#include <mutex>
#include <span>
#include <tuple>
#include <unordered_map>

#include "core/plan_header.h"
#include "core/record_error.h"

namespace trtpack::runtime {
namespace {

std::mutex cache_mutex;

// A plan is known by where its bytes are, how many, and its meta (which holds its SHA-256): a freed and
// reused address with the same size and meta is the same engine.
using VerdictKey = std::tuple<const void*, size_t, std::string, std::string>;

}  // namespace

std::shared_ptr<const core::EngineMeta> parsed_meta(const std::string& meta) {
  static std::unordered_map<std::string, std::shared_ptr<const core::EngineMeta>> parsed;
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    auto it = parsed.find(meta);
    if (it != parsed.end()) return it->second;
  }
  std::shared_ptr<const core::EngineMeta> result;
  try {
    result = std::make_shared<const core::EngineMeta>(core::parse_meta(meta));
  } catch (const core::RecordError& e) {
    TORCH_CHECK_VALUE(false, "trtpack: the engine record's meta is invalid: ", e.what(),
                      ". Rebuild the engine with trtpack, or check that the meta string was not altered.");
  }
  std::lock_guard<std::mutex> lock(cache_mutex);
  return parsed.emplace(meta, result).first->second;
}

void check_plan_tensor(const at::Tensor& plan, const core::EngineMeta& meta) {
  TORCH_CHECK_VALUE(plan.dim() == 1 && plan.scalar_type() == at::kByte && plan.is_cpu() && plan.is_contiguous(),
                    "trtpack: engine '", meta.name, "': plan must be a contiguous 1-D uint8 CPU tensor, got ",
                    plan.scalar_type(), " of shape ", plan.sizes(), " on ", plan.device(),
                    "; pass the record's plan buffer unchanged (plan.cpu().contiguous()).");
  try {
    core::check_plan(meta, std::span<const uint8_t>(plan.data_ptr<uint8_t>(), plan.numel()), /*verify_hash=*/false);
  } catch (const core::RecordError& e) {
    TORCH_CHECK_VALUE(false, "trtpack: engine '", meta.name, "': the plan does not match its record: ", e.what());
  }
}

core::Verdict usable_on(const at::Tensor& plan, const std::string& meta, const c10::Device& device,
                        const Decide& decide) {
  static std::map<VerdictKey, core::Verdict> verdicts;
  VerdictKey key{plan.data_ptr(), static_cast<size_t>(plan.nbytes()), meta, device.str()};
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    auto it = verdicts.find(key);
    if (it != verdicts.end()) return it->second;
  }
  auto record = parsed_meta(meta);
  check_plan_tensor(plan.is_cpu() ? plan : plan.cpu(), *record);  // a plan moved with the module (.to("cuda")) too
  core::Verdict verdict = decide(*record);
  std::lock_guard<std::mutex> lock(cache_mutex);
  auto [it, inserted] = verdicts.emplace(std::move(key), verdict);
  if (inserted && !it->second.usable) {
    TORCH_WARN("trtpack: engine '", record->name, "' cannot run on ", device, " (engine_usable is false, so a fallback program "
               "runs its PyTorch reference): ",
               it->second.reason);
  }
  return it->second;
}

}  // namespace trtpack::runtime
