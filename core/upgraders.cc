// One explicit upgrader per older format version; each turns version N into the next one.
// The history these encode is written down in docs/FORMAT.md ("Older versions").
#include "core/engine_record.h"

namespace trtpack::core {
namespace {

using json = nlohmann::json;

void rename(json& j, const char* old_key, const char* new_key, const char* version) {
  auto it = j.find(old_key);
  if (it == j.end())
    throw RecordError(old_key, std::string("missing in a format ") + version + " record; the record is damaged");
  json value = std::move(*it);
  j.erase(old_key);
  j[new_key] = std::move(value);
}

// 0.1 (trtpack 0.0.x): TensorRT-RTX only, so no "backend"; cc numbers instead of names;
// dtypes written as "torch.float32"; different key names; no build settings.
void upgrade_0_1_to_1_0(json& j) {
  rename(j, "engine_name", "name", "0.1");
  rename(j, "trt_version", "backend_version", "0.1");
  rename(j, "plan_bytes", "plan_size", "0.1");
  rename(j, "sha256", "plan_sha256", "0.1");
  rename(j, "compute_capabilities", "targets", "0.1");
  if (!j["targets"].is_array()) throw RecordError("compute_capabilities", "must be a list of integers like [80, 86]");
  for (json& cc : j["targets"]) {
    if (!is_non_negative_int(cc)) throw RecordError("compute_capabilities", "must be a list of integers like [80, 86]");
    cc = "sm" + std::to_string(cc.get<int64_t>());
  }
  for (const char* list : {"inputs", "outputs"}) {
    if (!j.contains(list) || !j[list].is_array()) continue;  // reported by the 1.0 validation
    for (json& tensor : j[list]) {
      if (!tensor.is_object() || !tensor.contains("dtype") || !tensor["dtype"].is_string()) continue;
      std::string dtype = tensor["dtype"];
      if (dtype.rfind("torch.", 0) == 0) tensor["dtype"] = dtype.substr(6);
    }
  }
  j["backend"] = "tensorrt_rtx";
  j["build"] = json::object();
  j["format_version"] = json::array({1, 0});
}

struct Upgrader {
  int64_t major, minor;
  void (*step)(json&);
};
constexpr Upgrader kUpgraders[] = {{0, 1, upgrade_0_1_to_1_0}};

}  // namespace

void upgrade_to_current(json& j) {
  for (;;) {
    auto it = j.find("format_version");
    if (it == j.end() || !it->is_array() || it->size() != 2 || !is_non_negative_int((*it)[0]) ||
        !is_non_negative_int((*it)[1]))
      throw RecordError("format_version", "must be [major, minor] with two non-negative integers");
    const json& v = *it;
    int64_t major = v[0].get<int64_t>(), minor = v[1].get<int64_t>();
    if (major == kFormatMajor) return;
    const Upgrader* found = nullptr;
    for (const Upgrader& u : kUpgraders)
      if (u.major == major && u.minor == minor) found = &u;
    if (!found)
      throw RecordError("format_version", "no upgrader from format " + std::to_string(major) + "." +
                                              std::to_string(minor) + "; this trtpack reads 0.1 and " +
                                              std::to_string(kFormatMajor) + ".x: re-export the engine");
    found->step(j);
  }
}

}  // namespace trtpack::core
