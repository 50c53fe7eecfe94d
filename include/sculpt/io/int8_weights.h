// Int8 model directories (quantization-aware training's export, `sculpt quantize`): the weights
// in model.int8.safetensors beside config.json. A quantized matrix NAME is stored as
// NAME::int8 (I8 [out, in], symmetric, in [-127, 127]), NAME::scale (F32 [out], one per output
// channel), and the scale and zero point of its input (per tensor, unsigned 7-bit [0, 127]:
// x_q = clamp(round(x / s) + z, 0, 127)) as NAME::input_scale and NAME::input_zero_point
// (F32 / I32 scalars); every other tensor as it is. The metadata entry "sculpt_int8" says so.
// load_hf_weights returns the matrices dequantized (q x scale, the fake-quantized weights
// exactly), so every verb loads such a directory; models/int8_linear.h then puts the int8
// products in place.
#pragma once
#include <map>
#include <string>

#include "sculpt/io/safetensors.h"

namespace sculpt::io {

inline constexpr const char* kInt8WeightsFile = "model.int8.safetensors";

struct Int8Matrix {
  torch::Tensor q;       // [out, in] int8
  torch::Tensor scale;   // [out] float32
  double input_scale = 1;  // 0: dynamic (each input quantized by its own range)
  int64_t input_zero_point = 0;
};

void write_int8_weights(const std::string& path, const TensorMap& plain, const std::map<std::string, Int8Matrix>& quantized);
struct Int8Weights {
  TensorMap plain;                          // every other tensor
  std::map<std::string, Int8Matrix> quantized;
};
// A missing part, a wrong dtype or shape is refused naming the file and the tensor.
Int8Weights read_int8_weights(const std::string& path);
// Everything as float: the quantized matrices as q x scale (in their place among the plain ones).
TensorMap dequantized(const Int8Weights& w);

}  // namespace sculpt::io
