// k-means weight sharing (issue 13): bit packing by hand, the exact codebook when there are no
// more distinct values than centroids, Lloyd's fixed point on well separated clusters, and the
// codebook weights file: round trip through load_hf_weights and refusal of damaged files.
#include <torch/torch.h>

#include <filesystem>

#include "sculpt/compress/codebook_share.h"
#include "sculpt/compress/kmeans.h"
#include "sculpt/core/error.h"
#include "sculpt/io/codebook_weights.h"
#include "sculpt/io/hf_dir.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace sculpt {
namespace {

TEST(KMeans, BitsArePackedLsbFirstIntoAByteStream) {
  // 3-bit indices 5 (101), 3 (011), 7 (111): stream LSB-first 1,0,1, 1,1,0, 1,1,1 ->
  // byte 0 = bits 0..7 = 1,0,1,1,1,0,1,1 = 0b11011101 = 221; byte 1 = bit 8 = 1.
  auto packed = io::pack_bits(torch::tensor({5, 3, 7}), 3);
  EXPECT_TRUE(torch::equal(packed, torch::tensor({221, 1}, torch::kUInt8))) << packed;
  EXPECT_TRUE(torch::equal(io::unpack_bits(packed, 3, 3), torch::tensor({5, 3, 7}, torch::kLong)));
  // Every width, across the chunk boundary (2^20 entries) and with a ragged end.
  for (int bits : {1, 2, 5, 8}) {
    auto idx = torch::randint(0, int64_t{1} << bits, {(int64_t{1} << 20) + 13}, torch::kLong);
    auto p = io::pack_bits(idx, bits);
    EXPECT_EQ(p.numel(), (idx.numel() * bits + 7) / 8);
    EXPECT_TRUE(torch::equal(io::unpack_bits(p, bits, idx.numel()), idx)) << bits;
  }
  EXPECT_THROW(io::pack_bits(torch::tensor({4}), 2), Error);
  EXPECT_THROW(io::pack_bits(torch::tensor({1}), 9), Error);
  EXPECT_THROW(io::unpack_bits(torch::zeros({2}, torch::kUInt8), 3, 7), Error);  // 7 x 3 bits need 3 bytes
}

TEST(KMeans, NoMoreDistinctValuesThanCentroidsComeBackExactly) {
  auto values = torch::tensor({0.5f, -1.25f, 3.0f, 0.5f, 7.75f, -1.25f}).repeat({40}).view({12, 20});
  auto km = compress::kmeans_1d(values, {2, 30, 65536, 0});  // 4 distinct values, 4 centroids
  EXPECT_TRUE(km.exact);
  EXPECT_TRUE(torch::equal(km.centroids, torch::tensor({-1.25f, 0.5f, 3.0f, 7.75f})));
  EXPECT_TRUE(torch::equal(km.centroids.index_select(0, km.indices).view({12, 20}), values));
  // One more distinct value than centroids: clustered, no longer exact.
  auto more = torch::cat({values.view(-1), torch::tensor({10.0f})});
  EXPECT_FALSE(compress::kmeans_1d(more, {2, 30, 65536, 0}).exact);
}

TEST(KMeans, LloydConvergesToTheMeansOfSeparatedClusters) {
  // Four tight clusters far apart: any k-means++ seeding puts one seed in each, and the fixed
  // point is the clusters' means.
  torch::manual_seed(0);
  std::vector<torch::Tensor> parts;
  const std::vector<float> centres{-10, -1, 4, 20};
  for (float c : centres) parts.push_back(c + 0.01f * torch::randn({500}));
  auto x = torch::cat(parts);
  auto km = compress::kmeans_1d(x, {2, 50, 65536, 3});
  ASSERT_EQ(km.centroids.numel(), 4);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(km.centroids[i].item<float>(), parts[static_cast<size_t>(i)].mean().item<float>(), 1e-5);
  EXPECT_TRUE(torch::equal(km.indices, torch::arange(4).repeat_interleave(500)));
  EXPECT_GE(km.iterations, 1);
  EXPECT_FALSE(km.exact);
}

TEST(KMeans, CodebookWeightsRoundTripThroughTheModelLoaderAndRefuseDamage) {
  testing::TempDir dir;
  auto w = torch::tensor({1.5f, -2.0f, 1.5f, 0.25f, -2.0f, 0.25f}).view({2, 3});
  io::CodedTensor c{torch::tensor({-2.0f, 0.25f, 1.5f}), torch::tensor({2, 0, 2, 1, 0, 1}), 2, {2, 3}, torch::kBFloat16};
  const auto file = (fs::path(dir.str()) / io::kCodebookWeightsFile).string();
  io::write_codebook_weights(file, {{"bias", torch::tensor({0.5f, 1.0f})}}, {{"layer.weight", c}});
  auto loaded = io::load_hf_weights(dir.str());
  ASSERT_EQ(loaded.size(), 2u);
  EXPECT_EQ(loaded["layer.weight"].scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(loaded["layer.weight"].to(torch::kFloat32), w));
  EXPECT_TRUE(torch::equal(loaded["bias"], torch::tensor({0.5f, 1.0f})));
  EXPECT_EQ(io::load_hf_weight_shapes(dir.str()).at("layer.weight"), (std::vector<int64_t>{2, 3}));
  // An index past the codebook (3 with 3 centroids), a short index stream, a missing part.
  auto expect_refused = [&](const io::TensorMap& tensors, const std::string& meta, const std::string& words) {
    io::write_safetensors(file, tensors, {{"sculpt_codebook", meta}});
    try {
      io::load_hf_weights(dir.str());
      ADD_FAILURE() << "accepted: " << words;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(io::kCodebookWeightsFile), std::string::npos) << e.what();
    }
  };
  const std::string meta = R"({"layer.weight": {"bits": 2, "shape": [2, 3], "dtype": "F32"}})";
  expect_refused({{"layer.weight::codebook", c.codebook}, {"layer.weight::indices", io::pack_bits(torch::tensor({3, 0, 2, 1, 0, 1}), 2)}},
                 meta, "index past its 3 centroids");
  expect_refused({{"layer.weight::codebook", c.codebook}, {"layer.weight::indices", torch::zeros({1}, torch::kUInt8)}}, meta,
                 "must be 2 bytes");
  expect_refused({{"layer.weight::codebook", c.codebook}}, meta, "lacks its ::indices");
  expect_refused({{"other::codebook", c.codebook}, {"layer.weight::codebook", c.codebook},
                  {"layer.weight::indices", io::pack_bits(c.indices, 2)}},
                 meta, "'other::codebook' belongs to no coded tensor");
  expect_refused({}, "[1, 2]", "not a JSON object");
}

TEST(CodebookShare, GradientsSumPerClusterAndExportsKeepTheIndices) {
  EXPECT_TRUE(torch::equal(compress::cluster_sum(torch::tensor({1.0, 2.0, 3.0, 4.0}), torch::tensor({0, 1, 0, 2}), 4),
                           torch::tensor({4.0, 2.0, 4.0, 0.0})));
  // A 2x3 weight on a 2-bit codebook {-1, 0.5, 2, 7}; centroid 7 has no entry.
  testing::TempDir dir;
  io::CodedTensor c{torch::tensor({-1.0f, 0.5f, 2.0f, 7.0f}), torch::tensor({0, 1, 1, 2, 0, 2}), 2, {2, 3}, torch::kFloat32};
  io::write_codebook_weights(dir.str(io::kCodebookWeightsFile), {{"bias", torch::tensor({0.25f})}}, {{"layer.0.weight", c}});
  torch::nn::Module m;
  auto w = m.register_parameter("w", torch::zeros({2, 3}));
  const models::KeyMap keys = {{"layer.0.weight", "w"}};
  compress::CodebookShare share(m, keys, dir.str());
  ASSERT_EQ(share.matrices().size(), 1u);
  EXPECT_TRUE(torch::equal(w, torch::tensor({{-1.0f, 0.5f, 0.5f}, {2.0f, -1.0f, 2.0f}})));  // set on the codebook
  // d/dw of sum(w * g) is g; each entry gets its cluster's sum: {1 + 5, 2 + 3, 4 + 6}.
  const auto g = torch::tensor({{1.0f, 2.0f, 3.0f}, {4.0f, 5.0f, 6.0f}});
  (w * g).sum().backward();
  EXPECT_TRUE(torch::equal(w.grad(), torch::tensor({{6.0f, 5.0f, 5.0f}, {10.0f, 6.0f, 10.0f}}))) << w.grad();
  // Plain SGD (lr 0.1) then the projection: each centroid moved by lr x its summed gradient.
  torch::optim::SGD sgd({w}, torch::optim::SGDOptions(0.1));
  sgd.step();
  share.project();
  const float c0 = -1.0f - 0.1f * 6.0f, c1 = 0.5f - 0.1f * 5.0f, c2 = 2.0f - 0.1f * 10.0f;
  EXPECT_TRUE(torch::allclose(w, torch::tensor({{c0, c1, c1}, {c2, c0, c2}}), 0, 1e-6)) << w;
  const float v0 = w[0][0].item<float>(), v1 = w[0][1].item<float>(), v2 = w[1][0].item<float>();
  EXPECT_TRUE(torch::equal(w, torch::tensor({{v0, v1, v1}, {v2, v0, v2}}))) << w;  // members share one value exactly
  const auto coded = share.coded().at("layer.0.weight");
  EXPECT_TRUE(torch::equal(coded.codebook, torch::tensor({v0, v1, v2, 7.0f}))) << coded.codebook;
  EXPECT_TRUE(torch::equal(coded.indices, c.indices));
  // A float export becomes a codebook directory again: the same indices, the new centroids.
  testing::TempDir out;
  io::write_safetensors(out.str("model.safetensors"), {{"layer.0.weight", w.detach()}, {"bias", torch::tensor({0.25f})}});
  share.write_directory(out.str());
  EXPECT_FALSE(fs::exists(out.str("model.safetensors")));
  const auto back = io::read_codebook_contents(out.str(io::kCodebookWeightsFile));
  EXPECT_TRUE(torch::equal(back.coded.at("layer.0.weight").indices, c.indices));
  EXPECT_TRUE(torch::equal(back.coded.at("layer.0.weight").codebook, coded.codebook));
  EXPECT_TRUE(torch::equal(back.plain.at("bias"), torch::tensor({0.25f})));
  // A directory without codebooks, and a coded tensor the model lacks, are refused by name.
  EXPECT_THROW(compress::CodebookShare(m, keys, out.str("nowhere")), Error);
  try {
    compress::CodebookShare(m, {{"other.weight", "w"}}, dir.str());
    FAIL() << "a coded tensor the model lacks passed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'layer.0.weight' is no weight of this model"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace sculpt
