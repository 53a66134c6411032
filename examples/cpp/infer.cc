// A downstream C++ program running a trtpack .pt2 package: only libtorch and libtorchtrt_runtime.
//
//   infer MODEL.pt2 SHAPE [SHAPE ...]      e.g.  infer model.pt2 8x3x32x32
//
// Feeds one float32 input per SHAPE (values 0, 1/n, 2/n, ... for n elements, so runs are reproducible)
// and prints each output's shape and sum. Engines run where TensorRT can execute them; a program
// compiled with fallback=True runs its PyTorch reference elsewhere (e.g. on CPU).
#include <ATen/ATen.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <iomanip>
#include <iostream>
#include <sstream>

namespace {

std::vector<int64_t> parse_shape(const std::string& text) {
  std::vector<int64_t> shape;
  std::stringstream in(text);
  for (std::string dim; std::getline(in, dim, 'x');) {
    if (dim.empty() || dim.find_first_not_of("0123456789") != std::string::npos || dim.size() > 9) {
      throw std::invalid_argument("bad shape \"" + text + "\": write sizes joined by 'x', e.g. 8x3x32x32");
    }
    shape.push_back(std::stoll(dim));
  }
  return shape;
}

at::Tensor reproducible_input(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return at::arange(n, at::kFloat).div(std::max<int64_t>(n, 1)).reshape(shape);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: infer MODEL.pt2 SHAPE [SHAPE ...]   (SHAPE like 8x3x32x32, one per input)\n";
    return 2;
  }
  try {
    std::vector<at::Tensor> inputs;
    for (int i = 2; i < argc; ++i) inputs.push_back(reproducible_input(parse_shape(argv[i])));

    torch::inductor::AOTIModelPackageLoader model(argv[1]);
    const auto outputs = model.run(inputs);
    for (size_t i = 0; i < outputs.size(); ++i) {
      std::cout << "output " << i << " shape " << outputs[i].sizes() << " sum " << std::setprecision(9)
                << outputs[i].sum().item<double>() << "\n";
    }
    return 0;
  } catch (const std::exception& e) {
    std::string message = e.what();
    std::cerr << "infer: error: " << message.substr(0, message.find("\nException raised from")) << "\n";
    return 1;
  }
}
