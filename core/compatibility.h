#pragma once
// Can this machine run this engine? The answer always carries the reason and the fix.
#include <map>
#include <optional>
#include <string>

#include "core/engine_record.h"

namespace trtpack::core {

struct Machine {
  bool cuda = false;                           // a CUDA device is visible
  std::optional<std::string> sm;               // its compute capability, e.g. "sm90"
  std::map<std::string, std::string> backends; // installed backends: "tensorrt_rtx" -> "1.7.1.116"
};

struct Verdict {
  bool usable = false;
  std::string reason;
};

// Rules, in order: a CUDA device; its compute capability among the record's targets; the
// record's backend installed; in exactly the record's backend_version (plans load only there).
Verdict compatibility(const EngineMeta& meta, const Machine& machine);

// "TensorRT-RTX" / "TensorRT".
std::string backend_display_name(const std::string& backend);

}  // namespace trtpack::core
