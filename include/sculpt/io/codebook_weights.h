// Weights shared through a codebook per tensor (Deep Compression's weight sharing), stored as
// model.codebook.safetensors beside config.json: each coded tensor NAME becomes NAME::codebook
// (F32, its 2^b centroids at most) and NAME::indices (U8, one b-bit index per entry packed
// LSB-first into a byte stream); the metadata entry "sculpt_codebook" records each coded
// tensor's bits, shape and dtype. Every other tensor is stored as it is. load_hf_weights
// rebuilds the coded tensors, so every verb loads such a directory like any other.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "sculpt/io/safetensors.h"

namespace sculpt::io {

inline constexpr const char* kCodebookWeightsFile = "model.codebook.safetensors";

// indices (integers in [0, 2^bits)) as a uint8 stream of ceil(n bits / 8) bytes; bits 1..8.
torch::Tensor pack_bits(const torch::Tensor& indices, int bits);
// The first n indices of a packed stream, as int64.
torch::Tensor unpack_bits(const torch::Tensor& packed, int bits, int64_t n);

struct CodedTensor {
  torch::Tensor codebook;  // [K] float32, K <= 2^bits
  torch::Tensor indices;   // [numel] integers < K
  int bits = 8;
  std::vector<int64_t> shape;
  torch::ScalarType dtype = torch::kFloat32;  // the original's, restored on loading
};

void write_codebook_weights(const std::string& path, const TensorMap& plain, const std::map<std::string, CodedTensor>& coded,
                            const Metadata& metadata = {});
struct CodebookContents {
  TensorMap plain;                           // the tensors stored as they are
  std::map<std::string, CodedTensor> coded;  // checked: indices unpacked and within their codebook
};
CodebookContents read_codebook_contents(const std::string& path);
// Every tensor, the coded ones rebuilt (codebook[indices] reshaped); a missing part, a wrong
// byte count or an index past the codebook is refused naming the file and the tensor.
TensorMap read_codebook_weights(const std::string& path);
// Declared shapes (the coded tensors' from the metadata), without rebuilding anything.
TensorShapes read_codebook_shapes(const std::string& path);

}  // namespace sculpt::io
