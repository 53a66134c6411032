// libFuzzer entry: arbitrary bytes as meta JSON, then (if they parse) through every consumer.
// Anything but RecordError escaping, or a crash, is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/compatibility.h"
#include "core/engine_record.h"
#include "core/plan_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace trtpack::core;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    EngineMeta meta = parse_meta(text);
    std::string encoded = encode_meta(meta);
    if (encode_meta(parse_meta(encoded)) != encoded) __builtin_trap();  // canonical form must be a fixed point
    compatibility(meta, Machine{true, "sm86", {{"tensorrt_rtx", "1.7.1.116"}}});
    std::map<std::string, int64_t> values;
    for (const auto& [name, range] : meta.symbols) values[name] = range.opt;
    for (const TensorSpec& spec : meta.outputs) {
      try {
        eval_shape(spec, values);
      } catch (const RecordError&) {  // e.g. division by zero at these values: reported, not a crash
      }
    }
  } catch (const RecordError&) {
  }
  try {
    read_plan_header({data, size});
  } catch (const RecordError&) {
  }
  return 0;
}
