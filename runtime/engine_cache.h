#pragma once
// Per-plan memo of what the kernels learn once: the parsed meta, and whether the engine can run on a device.
#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <string>

#include "core/compatibility.h"
#include "core/engine_record.h"

namespace trtpack::runtime {

// The validated meta of a record, parsed once per meta string; a bad record raises a ValueError-like
// c10::Error that names the field and says what to do.
std::shared_ptr<const core::EngineMeta> parsed_meta(const std::string& meta);

// Checks that `plan` is the record's 1-D uint8 CPU tensor and matches the meta (size, plan header).
void check_plan_tensor(const at::Tensor& plan, const core::EngineMeta& meta);

// Whether the engine (plan bytes + meta) runs on `device`, decided by `decide` on the first call for that
// plan, meta and device, then answered from memory. An unusable engine's reason is logged once.
using Decide = std::function<core::Verdict(const core::EngineMeta&)>;
core::Verdict usable_on(const at::Tensor& plan, const std::string& meta, const c10::Device& device,
                        const Decide& decide);

}  // namespace trtpack::runtime
