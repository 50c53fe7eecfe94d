// Weight sharing through k-means (Deep Compression, Han et al. 2016): each matrix's entries
// clustered into 2^b centroids, stored as b-bit indices and the codebook
// (io/codebook_weights.h). One-dimensional k-means: k-means++ seeding, then Lloyd's iterations
// with the assignment a bucketize against the midpoints of the sorted centroids, on the
// tensor's own device.
#pragma once
#include <torch/types.h>

#include <cstdint>

namespace sculpt::compress {

struct KMeansOptions {
  int bits = 4;
  int max_iterations = 30;
  int64_t seed_sample = 65536;  // k-means++ seeds from this many entries drawn at random (all if fewer)
  uint64_t seed = 0;
};

struct KMeans1d {
  torch::Tensor centroids;  // [K] float32, ascending, K <= 2^bits
  torch::Tensor indices;    // [numel] int64
  int iterations = 0;       // Lloyd's iterations run (0 when the values were coded exactly)
  bool exact = false;       // at most 2^bits distinct values: the codebook is those values
};

// Clusters the entries of `values` (any shape). With no more distinct values than centroids the
// codebook is the distinct values themselves and the weights come back exactly.
KMeans1d kmeans_1d(const torch::Tensor& values, const KMeansOptions& options);

}  // namespace sculpt::compress
