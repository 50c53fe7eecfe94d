// Deep Compression's centroid fine-tuning (Han et al. 2016, §3.2): a model whose matrices share
// weights through a k-means codebook per tensor (io/codebook_weights.h) trains its centroids, the
// gradient of a centroid being the sum of its entries' gradients. Done on the model's own
// weights, so any task and optimizer train it unchanged:
//  * a gradient hook turns every entry's gradient into its cluster's sum (plain SGD then moves a
//    centroid by lr x that sum, as the paper);
//  * after every update each entry is set to its cluster's value, read at the cluster's first
//    entry: the entries received identical updates and can differ only by the optimizer's
//    rounding, and no averaging (which rounds too) is involved;
//  * the indices never change; an export is a codebook directory again.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "sculpt/io/codebook_weights.h"
#include "sculpt/models/key_map.h"

namespace sculpt::compress {

// The sum of `values` per cluster: [k], entry c = sum of values[i] with indices[i] == c.
torch::Tensor cluster_sum(const torch::Tensor& values, const torch::Tensor& indices, int64_t k);

struct SharedMatrix {
  std::string hf;          // HF name (the key in the codebook file)
  torch::Tensor weight;    // the model's parameter
  torch::Tensor indices;   // [numel] int64, on the weight's device
  torch::Tensor first;     // [clusters with entries] the first entry of each, and
  torch::Tensor occupied;  // which clusters those are (int64)
  torch::Tensor codebook;  // [K] float32 as read (empty clusters keep their value)
  int bits = 0;
};

class CodebookShare {
 public:
  // The coded tensors of DIR's model.codebook.safetensors bound to MODULE's parameters (HF names
  // through KEYS), their gradient hooks installed and the weights set to the coded values. A
  // directory without codebooks, or a coded tensor the model lacks or shapes differently, is
  // refused naming it.
  CodebookShare(torch::nn::Module& module, const models::KeyMap& keys, const std::string& dir);
  void project();  // every entry onto its cluster's value
  std::map<std::string, io::CodedTensor> coded() const;
  // DIR (a float export of the model) becomes a codebook directory with the current centroids:
  // model.safetensors -> model.codebook.safetensors.
  void write_directory(const std::string& dir) const;
  const std::vector<SharedMatrix>& matrices() const { return matrices_; }

 private:
  std::vector<SharedMatrix> matrices_;
};

}  // namespace sculpt::compress
