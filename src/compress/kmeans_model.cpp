#include "sculpt/compress/kmeans_model.h"

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <map>

#include <fmt/format.h>

#include "sculpt/io/codebook_weights.h"
#include "sculpt/io/hf_dir.h"

namespace fs = std::filesystem;

namespace sculpt::compress {

nlohmann::json code_model_kmeans(const std::string& dir, const std::string& out, const KMeansOptions& o,
                                 const torch::Device& device, const TensorProgress& progress) {
  const int64_t k = int64_t{1} << o.bits;
  auto weights = io::load_hf_weights(dir);
  io::TensorMap plain;
  std::map<std::string, io::CodedTensor> coded;
  double bytes_before = 0, bytes_after = 0, err2 = 0, norm2 = 0;
  int64_t exact = 0, iterations = 0, done = 0;
  for (const auto& [name, t] : weights) {
    if (progress) progress(done++, static_cast<int64_t>(weights.size()), name);
    bytes_before += static_cast<double>(t.numel() * t.element_size());
    if (!t.is_floating_point() || t.dim() < 2 || t.numel() <= k) {
      plain[name] = t;
      bytes_after += static_cast<double>(t.numel() * t.element_size());
      continue;
    }
    auto km = kmeans_1d(t.to(device), o);
    auto rebuilt = km.centroids.index_select(0, km.indices).to(torch::kFloat64);
    auto x = t.reshape(-1).to(device, torch::kFloat64);
    err2 += (rebuilt - x).pow(2).sum().item<double>();
    norm2 += x.pow(2).sum().item<double>();
    exact += km.exact ? 1 : 0;
    iterations = std::max<int64_t>(iterations, km.iterations);
    bytes_after += static_cast<double>((t.numel() * o.bits + 7) / 8 + km.centroids.numel() * 4);
    coded[name] = {km.centroids.cpu(), km.indices.cpu(), o.bits, t.sizes().vec(), t.scalar_type()};
  }
  fs::create_directories(out);
  fs::copy_file(fs::path(dir) / "config.json", fs::path(out) / "config.json", fs::copy_options::overwrite_existing);
  io::write_codebook_weights((fs::path(out) / io::kCodebookWeightsFile).string(), plain, coded, {{"format", "pt"}});
  return {{"method", "kmeans"},
          {"bits", o.bits},
          {"scores", fmt::format("k-means++ seeds from {} entries per tensor, at most {} Lloyd iterations (most run: {})",
                                 o.seed_sample, o.max_iterations, iterations)},
          {"tensors_coded", coded.size()},
          {"tensors_coded_exactly", exact},
          {"tensors_plain", plain.size()},
          {"achieved",
           {{"bytes_before", bytes_before},
            {"bytes_after", bytes_after},
            {"compression_ratio", bytes_before / bytes_after},
            {"relative_error", norm2 > 0 ? std::sqrt(err2 / norm2) : 0.0}}}};
}

}  // namespace sculpt::compress
