// SP3's initialisation of the compactors from the teacher's activations (method.md §3.3,
// `paper` mode): per LayerNorm site the uncentred second moment of its inputs (fp64) gives a
// basis U (eigenvectors by descending energy): W_in = Uᵀ, W_out = diag(γ) U; the first
// `skip_sites` sites stay identity. Per head, Q/K compactors come from the joint SVD that keeps
// q·k unchanged (uᵀv = I) and V/O from the PCA of v (C_o C_v = I).
#pragma once
#include <string>
#include <vector>

#include "sculpt/compress/sp3_bert.h"

namespace sculpt::compress {

struct PcaOptions {
  // paper: SP3's rotated LayerNorm (approximate; first sites skipped). exact: centring folded
  // into W_in and RMS statistics, so the initialised student equals the teacher.
  std::string mode = "paper";
  int64_t tokens_per_example = 8;  // random positions taken from each example
  int64_t skip_sites = 3;          // SP3 leaves the first three LN sites as identity
  uint64_t seed = 0;
  // false: only the LN sites are rotated, the per-head Q/K/V/O compactors stay identities
  // (slicing prunes no head dims, and the joint SVD's inverse singular values cost precision).
  bool head_compactors = true;
};

// Second moments collected over examples; `examples` are unpadded single-example batches.
struct Sp3Moments {
  std::vector<torch::Tensor> site;     // [D, D] fp64 per LN site
  std::vector<torch::Tensor> q, k, v;  // [H, d_head, d_head] fp64 per layer
  int64_t rows = 0;
};

Sp3Moments collect_sp3_moments(Sp3Bert& student, const std::vector<models::Batch>& examples, const PcaOptions& options);
// Eigenvectors of a symmetric matrix, columns sorted by descending eigenvalue.
std::pair<torch::Tensor, torch::Tensor> sorted_eigh(const torch::Tensor& m);
void init_sp3_from_pca(Sp3Bert& student, const Sp3Moments& moments, const PcaOptions& options);

}  // namespace sculpt::compress
