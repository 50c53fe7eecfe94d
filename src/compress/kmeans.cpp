#include "sculpt/compress/kmeans.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "sculpt/core/error.h"

namespace sculpt::compress {
namespace {

// Index of each value's nearest centroid (centroids ascending): the midpoints split the line.
torch::Tensor assign(const torch::Tensor& x, const torch::Tensor& centroids) {
  if (centroids.numel() == 1) return torch::zeros({x.numel()}, x.options().dtype(torch::kLong));
  auto mid = (centroids.narrow(0, 0, centroids.numel() - 1) + centroids.narrow(0, 1, centroids.numel() - 1)) / 2;
  return torch::bucketize(x, mid);
}

// k-means++ (Arthur & Vassilvitskii): the first seed uniform, each next one drawn with
// probability proportional to its squared distance to the nearest seed so far.
torch::Tensor plus_plus_seeds(const torch::Tensor& sample, int64_t k, torch::Generator& gen) {
  std::vector<torch::Tensor> seeds{sample.index_select(0, torch::randint(sample.numel(), {1}, gen, sample.options().dtype(torch::kLong)))};
  auto d2 = (sample - seeds.back()).pow(2);
  for (int64_t i = 1; i < k; ++i) {
    if (d2.sum().item<double>() <= 0) break;  // every sampled value is a seed already
    auto next = sample.index_select(0, torch::multinomial(d2, 1, false, gen));
    seeds.push_back(next);
    d2 = torch::minimum(d2, (sample - next).pow(2));
  }
  return std::get<0>(torch::cat(seeds).sort());
}

}  // namespace

KMeans1d kmeans_1d(const torch::Tensor& values, const KMeansOptions& o) {
  SCULPT_CHECK(o.bits >= 1 && o.bits <= 8, "k-means codebooks of {} bits: 1 to 8", o.bits);
  SCULPT_CHECK(values.numel() > 0, "k-means of an empty tensor");
  const int64_t k = int64_t{1} << o.bits;
  auto x = values.detach().reshape(-1).to(torch::kFloat32);
  KMeans1d out;
  auto distinct = std::get<0>(torch::_unique(x, /*sorted=*/true));
  if (distinct.numel() <= k) {
    out.centroids = distinct;
    out.indices = torch::searchsorted(distinct, x);
    out.exact = true;
    return out;
  }
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(o.seed);
  auto cpu = x.to(torch::kCPU);
  auto sample = cpu.numel() > o.seed_sample ? cpu.index_select(0, torch::randperm(cpu.numel(), gen, torch::kLong).narrow(0, 0, o.seed_sample)) : cpu;
  auto centroids = plus_plus_seeds(sample, k, gen).to(x.device());
  auto idx = assign(x, centroids);
  for (out.iterations = 0; out.iterations < o.max_iterations;) {
    auto sums = torch::zeros({centroids.numel()}, x.options().dtype(torch::kFloat64)).index_add_(0, idx, x.to(torch::kFloat64));
    auto counts = torch::bincount(idx, {}, centroids.numel()).to(torch::kFloat64);
    // An empty cluster keeps its centroid; the means of the others stay in order.
    centroids = torch::where(counts > 0, sums / counts.clamp_min(1), centroids.to(torch::kFloat64)).to(torch::kFloat32);
    centroids = std::get<0>(centroids.sort());
    auto next = assign(x, centroids);
    ++out.iterations;
    const bool stable = torch::equal(next, idx);
    idx = next;
    if (stable) break;
  }
  out.centroids = centroids;
  out.indices = idx;
  return out;
}

}  // namespace sculpt::compress
