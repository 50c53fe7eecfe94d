// Real int8 products for a Linear (an int8 directory, io/int8_weights.h): the input quantized
// to unsigned 7 bits with its stored scale and zero point (or with its own range, dynamic), the
// symmetric per-channel int8 weights, int32 accumulation, float output.
//  * CPU: fbgemm's quantized linear (weights prepacked once). Activations stay in [0, 127]
//    (PyTorch's reduce_range on x86) so that fbgemm's 16-bit pair sums cannot saturate.
//  * CUDA: _int_mm (int8 x int8 -> int32) on the zero-point-shifted input, scaled after.
//    cuBLASLt's int8 kernels refuse odd shapes (on an H200, 17 rows x 64 x 48 failed with
//    CUBLAS_STATUS_NOT_SUPPORTED), and packed models have odd widths: int_mm_padded pads
//    every dimension with zeros, which leaves the products exact.
#pragma once
#include <torch/nn/module.h>

#include <string>

#include "sculpt/io/int8_weights.h"
#include "sculpt/models/key_map.h"
#include "sculpt/models/layers.h"

namespace sculpt::models {

class Int8LinearKernel : public LinearKernel {
 public:
  Int8LinearKernel(const io::Int8Matrix& m, const torch::Tensor& bias, const torch::Device& device);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) override;

 private:
  io::Int8Matrix m_;
  torch::Tensor bias_, q_t_, scale_;  // CUDA: q transposed [in, out], scale on the device
  c10::IValue packed_;                // CPU: fbgemm's prepacked weights
};

// int8 [M, K] x int8 [K, N] -> int32 [M, N] through _int_mm with rows padded to a multiple of
// 16 (at least 32) and K and N to multiples of 16. Runs on the CPU too (the tests check the
// padding there); pad_int8_weight does the weight's part once.
torch::Tensor pad_int8_weight(const torch::Tensor& q_t);
torch::Tensor int_mm_padded(const torch::Tensor& xq, const torch::Tensor& q_t_padded, int64_t n);

// Puts an Int8LinearKernel on every Linear of MODULE whose weight has an int8 matrix in DIR's
// model.int8.safetensors (HF names through KEYS); returns how many (0 for a float directory).
int64_t install_int8_kernels(torch::nn::Module& module, const KeyMap& keys, const std::string& dir);

}  // namespace sculpt::models
