#include "sculpt/compress/codebook_share.h"

#include <filesystem>

#include "sculpt/core/error.h"
#include "sculpt/io/safetensors.h"

namespace fs = std::filesystem;

namespace sculpt::compress {

torch::Tensor cluster_sum(const torch::Tensor& values, const torch::Tensor& indices, int64_t k) {
  return torch::zeros({k}, values.options()).index_add_(0, indices, values.reshape(-1));
}

CodebookShare::CodebookShare(torch::nn::Module& module, const models::KeyMap& keys, const std::string& dir) {
  const auto path = (fs::path(dir) / io::kCodebookWeightsFile).string();
  SCULPT_CHECK(fs::exists(path), "codebook.method: finetune needs a k-means directory (sculpt compress --method kmeans); {} has no {}", dir,
               io::kCodebookWeightsFile);
  auto contents = io::read_codebook_contents(path);
  auto params = module.named_parameters();
  std::map<std::string, std::string> internal_of;
  for (const auto& kp : keys)
    if (!kp.alias) internal_of[kp.hf] = kp.internal;
  for (auto& [hf, c] : contents.coded) {
    auto it = internal_of.find(hf);
    auto* p = it == internal_of.end() ? nullptr : params.find(it->second);
    SCULPT_CHECK(p != nullptr, "{}: coded tensor '{}' is no weight of this model", path, hf);
    SCULPT_CHECK(p->sizes().vec() == c.shape, "{}: '{}' is coded as {}, the model's is {}", path, hf, c10::str(c.shape),
                 c10::str(p->sizes()));
    SharedMatrix m;
    m.hf = hf;
    m.weight = *p;
    m.bits = c.bits;
    const auto device = p->device();
    m.indices = c.indices.to(device);
    m.codebook = c.codebook.clone();
    // The first entry of every occupied cluster: scatter_reduce's amin over positions.
    const int64_t n = m.indices.numel(), k = c.codebook.numel();
    auto first = torch::full({k}, n, torch::TensorOptions().dtype(torch::kLong).device(device))
                     .scatter_reduce(0, m.indices, torch::arange(n, m.indices.options()), "amin", /*include_self=*/true);
    m.occupied = (first < n).nonzero().reshape(-1);
    m.first = first.index_select(0, m.occupied);
    const auto indices = m.indices;
    p->register_hook([indices, k](torch::Tensor grad) {
      return cluster_sum(grad, indices, k).index_select(0, indices).view_as(grad);
    });
    matrices_.push_back(std::move(m));
  }
  SCULPT_CHECK(!matrices_.empty(), "{}: no coded tensor to fine-tune", path);
  // The weights as the file codes them (a resumed run's checkpoint overwrites them afterwards).
  torch::NoGradGuard no_grad;
  for (auto& m : matrices_)
    m.weight.view(-1).copy_(m.codebook.to(m.weight.device(), m.weight.scalar_type()).index_select(0, m.indices));
}

void CodebookShare::project() {
  torch::NoGradGuard no_grad;
  for (auto& m : matrices_) {
    auto flat = m.weight.view(-1);
    const auto values = flat.index_select(0, m.first);
    auto centroids = torch::zeros({m.codebook.numel()}, flat.options()).index_copy_(0, m.occupied, values);
    flat.copy_(centroids.index_select(0, m.indices));
  }
}

std::map<std::string, io::CodedTensor> CodebookShare::coded() const {
  std::map<std::string, io::CodedTensor> out;
  for (const auto& m : matrices_) {
    auto codebook = m.codebook.clone();
    codebook.index_copy_(0, m.occupied.cpu(), m.weight.detach().reshape(-1).index_select(0, m.first).to(torch::kCPU, torch::kFloat32));
    out[m.hf] = {codebook, m.indices.cpu(), m.bits, m.weight.sizes().vec(), m.weight.scalar_type()};
  }
  return out;
}

void CodebookShare::write_directory(const std::string& dir) const {
  const auto float_file = fs::path(dir) / "model.safetensors";
  SCULPT_CHECK(fs::exists(float_file), "{}: no model.safetensors to turn into codebooks", dir);
  auto content = io::read_safetensors(float_file.string());
  const auto coded_now = coded();
  io::TensorMap plain;
  for (auto& [name, t] : content.tensors)
    if (!coded_now.count(name)) plain[name] = t;
  io::write_codebook_weights((fs::path(dir) / io::kCodebookWeightsFile).string(), plain, coded_now, content.metadata);
  fs::remove(float_file);
}

}  // namespace sculpt::compress
