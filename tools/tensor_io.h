// Reads and writes safetensors files (https://github.com/huggingface/safetensors#format):
// an 8-byte little-endian header length, a JSON header, then the raw tensor bytes.
// The reader trusts nothing in the file: every length, offset and shape is checked.
#pragma once
#include <ATen/Tensor.h>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace trtpack::tensor_io {

// A file that is missing, unreadable, or not valid safetensors. The message names the file and the fault.
class TensorIoError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct NamedTensor {
  std::string name;
  at::Tensor tensor;
};

// Largest JSON header accepted (the same cap as the reference implementation).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Tensors in file order (by data offset), as contiguous CPU tensors.
std::vector<NamedTensor> read_safetensors(const std::string& path);

// Parses a whole safetensors file held in memory; `where` names it in errors.
std::vector<NamedTensor> parse_safetensors(const std::string& bytes, const std::string& where);

// Writes tensors (moved to CPU, made contiguous) in the given order; names must be unique.
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// The safetensors dtype code ("F32", "BF16", ...) for a torch dtype; throws TensorIoError if it has none.
std::string dtype_code(at::ScalarType dtype);

}  // namespace trtpack::tensor_io
