// Masks through the shared layers and packing them (compress/pack_decoder.h) on the real OPT and
// T5 fixtures: a rotated OPT, and T5 v1.0 and v1.1 in their own basis and rotated, with partial
// masks of every kind (stream coordinates, heads, query/key and value dims of self- and
// cross-attention, FFN neurons, whole blocks; soft values and zeros) compute the same logits and
// the same greedy generation as the packed models they become, which reload from their
// directories; the map table's count at 0/1 masks is the packed model's exact weight count; an
// unrotated OPT packs heads and neurons exactly and refuses stream masks with the reason.
#include <algorithm>
#include <numeric>

#include "sculpt/compress/one_shot.h"
#include "sculpt/compress/pack_decoder.h"
#include "sculpt/compress/prune_report.h"
#include "sculpt/compress/rotate.h"
#include "sculpt/core/error.h"
#include "sculpt/data/span_corruption.h"
#include "sculpt/io/files.h"
#include "sculpt/io/hf_dir.h"
#include "decoder_masks.h"
#include "test_util.h"

namespace sculpt {
namespace {

models::Batch prompts() {
  models::Batch b;
  torch::manual_seed(3);
  b.input_ids = torch::randint(4, 1000, {2, 10});
  b.attention_mask = torch::ones({2, 10}, torch::kLong);
  b.input_ids[1].narrow(0, 0, 3).fill_(1);  // left padding, OPT's convention
  b.attention_mask[1].narrow(0, 0, 3).fill_(0);
  return b;
}

// Partial masks of every kind for a 2-layer, 4-head OPT: soft values where kept, zeros removed.
// Layer 0 keeps both blocks with some heads, dims and neurons; layer 1 keeps its attention block
// with no head (its output bias only, gated 0.9) and loses its FFN block.
models::ModelMasks partial_masks(const models::TransformerConfig& c, bool stream) {
  torch::manual_seed(5);
  const int64_t D = c.hidden_size, dh = c.head_dim(), F = c.intermediate_size;
  models::ModelMasks m;
  if (stream) m.embed = testing::soft_mask(D, D / 4);
  models::LayerMasks l0;
  l0.attn.head = torch::tensor({1.0f, 0.0f, 0.7f, 0.0f});
  l0.attn.qk = testing::soft_mask(dh, dh / 2), l0.attn.vo = testing::soft_mask(dh, dh / 4);
  l0.neurons = testing::soft_mask(F, F / 3);
  l0.attn.gate = torch::tensor(0.8f), l0.ffn = torch::tensor(1.0f);
  models::LayerMasks l1;
  l1.attn.head = torch::zeros({c.num_heads});
  l1.attn.gate = torch::tensor(0.9f), l1.ffn = torch::tensor(0.0f);
  l0.hidden = l1.hidden = m.embed;  // one stream mask, as the student shares it
  m.layers = {l0, l1};
  return m;
}

// PACKED computes what ROTATED computes under MASKS on the prompts (logits, loss) and greedy
// generation gives the same ids and scores; returns the masked logits.
torch::Tensor expect_packed_opt_equals_masked(models::Opt& rotated, models::Opt& packed, const models::ModelMasks& masks) {
  auto b = prompts();
  auto masked = rotated->forward(b.input_ids, b.attention_mask, b.input_ids, {.masks = &masks});
  auto got = packed->forward(b.input_ids, b.attention_mask, b.input_ids);
  EXPECT_TRUE(testing::all_close(got.logits, masked.logits, 1e-4, 1e-4));
  EXPECT_NEAR(got.loss.item<double>(), masked.loss.item<double>(), 1e-4);
  auto [ids, scores] = rotated->generate(b.input_ids, b.attention_mask, 6, &masks);
  auto [pids, pscores] = packed->generate(b.input_ids, b.attention_mask, 6);
  EXPECT_TRUE(torch::equal(pids, ids)) << pids << "\n" << ids;
  EXPECT_TRUE(testing::all_close(pscores, scores, 1e-4, 1e-4));
  return masked.logits;
}

// PACKED saved to DIR reloads strictly as the same model (shapes and logits on the prompts).
void expect_opt_reloads(models::Opt& packed, const std::string& dir) {
  auto b = prompts();
  models::save_opt(packed, dir);
  auto loaded = models::load_opt(dir);
  loaded->eval();
  EXPECT_EQ(loaded->config.layer_shapes, packed->config.layer_shapes);
  EXPECT_TRUE(torch::equal(loaded->forward(b.input_ids, b.attention_mask, torch::Tensor()).logits,
                           packed->forward(b.input_ids, b.attention_mask, torch::Tensor()).logits));
}

TEST(PackDecoder, MaskedRotatedOptEqualsItsPackedModelAndGeneratesTheSame) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/opt_causal_lm");
  auto model = models::load_opt(dir);
  model->eval();
  auto rotated = compress::rotate_opt(model, compress::stream_pca(model, {prompts()}));
  const auto masks = partial_masks(rotated->config, /*stream=*/true);
  auto packed = compress::pack_opt(rotated, masks);

  const auto& c = rotated->config;
  EXPECT_EQ(packed->config.hidden_size, c.hidden_size - c.hidden_size / 4);
  const models::AttentionShape none{0, 0, 0, false};
  const models::LayerShape s0{{2, c.head_dim() / 2, c.head_dim() - c.head_dim() / 4, true}, none,
                              c.intermediate_size - c.intermediate_size / 3, true, {}, {}, {}, {}};
  const models::LayerShape s1{{0, c.head_dim(), c.head_dim(), true}, none, 0, false, {}, {}, {}, {}};
  ASSERT_EQ(packed->config.layer_shapes.size(), 2u);
  EXPECT_EQ(packed->config.layer_shapes[0], s0);
  EXPECT_EQ(packed->config.layer_shapes[1], s1);
  EXPECT_FALSE(packed->layers[1]->as<models::TransformerLayer>()->ffn);

  const auto masked = expect_packed_opt_equals_masked(rotated, packed, masks);
  // The masks change the function (the test is not passing on an unmasked model).
  auto b = prompts();
  auto plain = rotated->forward(b.input_ids, b.attention_mask, b.input_ids);
  EXPECT_GT((plain.logits - masked).abs().max().item<double>(), 1e-2);

  // The directory carries the layer shapes and reloads strictly as the same model.
  testing::TempDir tmp;
  expect_opt_reloads(packed, tmp.str());
}

TEST(PackDecoder, TheMapTableCountsThePackedWeightsExactlyAtBinaryMasks) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/opt_causal_lm");
  auto model = models::load_opt(dir);
  auto rotated = compress::rotate_opt(model, compress::stream_pca(model, {prompts()}));
  const auto& c = rotated->config;
  // All kept: the dense maps, 2 layers x (4 D^2 + 2 D F) = 2 x (4*64*64 + 2*64*128) = 65,536.
  EXPECT_EQ(compress::expected_weights(compress::opt_map_table({}, c)).item<double>(), 65536.0);
  EXPECT_EQ(compress::linear_map_weights(*rotated), 65536);
  const auto masks = compress::binary_masks(partial_masks(c, true));
  auto packed = compress::pack_opt(rotated, masks);
  // Layer 0: q, k 48 x (2 x 8); v, o 48 x (2 x 12); fc1, fc2 48 x 86; layer 1: o 48 x 0.
  const int64_t by_hand = 2 * 48 * 16 + 2 * 48 * 24 + 2 * 48 * 86;
  EXPECT_EQ(compress::linear_map_weights(*packed), by_hand);
  EXPECT_EQ(compress::expected_weights(compress::opt_map_table(masks, c)).item<double>(), static_cast<double>(by_hand));
}

// Per-site stream masks (LayerMasks::sites) on the rotated OPT: each of the 2L+1 = 5 sites keeps
// its own coordinates (widths 48, 48, 40, 56, 56 of 64; soft values where kept; the last site
// keeps exactly the coordinates of the one before it, a gather-free shortcut), on top of the
// partial head/dim/neuron/block masks above. The packed model's blocks read and write their sites'
// widths, the residual gathers from site to site, and it computes, generates and reloads as the
// masked model does; the table counts its weights exactly.
TEST(PackDecoder, PerSiteStreamMasksPackToSitesOfTheirOwnWidths) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/opt_causal_lm");
  auto model = models::load_opt(dir);
  model->eval();
  auto rotated = compress::rotate_opt(model, compress::stream_pca(model, {prompts()}));
  const auto& c = rotated->config;
  const int64_t D = c.hidden_size;
  auto masks = partial_masks(c, /*stream=*/false);
  torch::manual_seed(11);
  auto site = [&](int64_t zeros) {
    auto v = torch::rand({D}) * 0.5 + 0.5;
    v.index_fill_(0, torch::randperm(D).narrow(0, 0, zeros), 0.0);
    return v;
  };
  masks.embed = site(16);
  masks.layers[0].hidden = masks.layers[1].hidden = torch::Tensor();
  masks.layers[0].sites = torch::stack({site(16), site(24)});
  const auto w3 = site(8);
  masks.layers[1].sites = torch::stack({w3, w3 * 0.9});
  auto packed = compress::pack_opt(rotated, masks);

  EXPECT_EQ(packed->config.hidden_size, 48);
  ASSERT_EQ(packed->config.layer_shapes.size(), 2u);
  const auto& s0 = packed->config.layer_shapes[0];
  const auto& s1 = packed->config.layer_shapes[1];
  EXPECT_EQ(s0.attn_from.size(), 48u);
  EXPECT_EQ(s0.ffn_from.size(), 40u);
  EXPECT_EQ(s1.attn_from.size(), 56u);
  EXPECT_EQ(s1.ffn_from.size(), 56u);
  std::vector<int64_t> same(56);
  std::iota(same.begin(), same.end(), 0);
  EXPECT_EQ(s1.ffn_from, same);
  EXPECT_EQ(packed->config.stream_width(2), 56);
  // A coordinate of site 1 that site 0 dropped starts from zero (-1); count them from the masks.
  const auto fresh = ((masks.layers[0].sites[0] != 0) & (masks.embed == 0)).sum().item<int64_t>();
  EXPECT_GT(fresh, 0);
  EXPECT_EQ(std::count(s0.attn_from.begin(), s0.attn_from.end(), -1), fresh);
  EXPECT_EQ(packed->lm_head->weight.size(1), 56);

  const auto masked = expect_packed_opt_equals_masked(rotated, packed, masks);
  // The sites change the function: the same masks with one shared stream mask differ.
  auto b = prompts();
  auto shared = partial_masks(c, /*stream=*/true);
  auto shared_out = rotated->forward(b.input_ids, b.attention_mask, b.input_ids, {.masks = &shared});
  EXPECT_GT((shared_out.logits - masked).abs().max().item<double>(), 1e-2);

  // Sites w0..w4 = 48, 48, 40, 56, 56. Layer 0: q, k 48 x (2 x 8), v 48 x (2 x 12), o (2 x 12) x 48,
  // fc1 48 x 86, fc2 86 x 40; layer 1: an attention block with no head (o: 0 x 56), no FFN.
  const int64_t by_hand = 2 * 48 * 16 + 48 * 24 + 24 * 48 + 48 * 86 + 86 * 40;
  EXPECT_EQ(compress::linear_map_weights(*packed), by_hand);
  EXPECT_EQ(compress::expected_weights(compress::opt_map_table(compress::binary_masks(masks), c)).item<double>(),
            static_cast<double>(by_hand));

  // The directory carries the sites (sculpt_packed attn_from/ffn_from, the shortcut scales) and
  // reloads strictly as the same model; a coordinate past its site's width is refused by name.
  testing::TempDir tmp;
  expect_opt_reloads(packed, tmp.str());
  auto config = io::read_json(tmp.str("config.json"));
  config["sculpt_packed"]["layers"][1]["ffn_from"][0] = 56;
  io::write_file_atomic(tmp.str("config.json"), config.dump());
  try {
    models::load_opt(tmp.str());
    FAIL() << "a coordinate past its site loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json sculpt_packed layers[1]: ffn_from holds 56; expected -1 or a coordinate in [0, 56)"),
              std::string::npos) << e.what();
  }
}

// A T5 fixture (rotated onto its stream's principal directions when ROTATE) and a batch: two
// prompts (the second padded), five labels each.
struct T5Case {
  models::T5 model{nullptr};
  torch::Tensor ids, mask, labels;
};
T5Case t5_case(const std::string& dir, bool rotate) {
  auto original = models::load_t5(dir);
  original->eval();
  torch::manual_seed(3);
  auto ids = torch::randint(3, 1000, {2, 9}), mask = torch::ones({2, 9}, torch::kLong);
  mask[1].narrow(0, 6, 3).fill_(0);
  auto labels = torch::randint(3, 1000, {2, 5});
  models::Batch calibration;
  calibration.input_ids = ids, calibration.attention_mask = mask;
  auto model = rotate ? compress::rotate_t5(original, compress::stream_pca(original, {calibration})) : original;
  model->eval();
  return {model, ids, mask, labels};
}
// PACKED computes what MODEL computes under MASKS (logits, loss) and generates the same ids and
// scores; returns the masked logits.
torch::Tensor expect_packed_t5_equals_masked(models::T5& model, models::T5& packed, const models::ModelMasks& masks, const torch::Tensor& ids,
                                             const torch::Tensor& mask, const torch::Tensor& labels, const std::string& what) {
  auto masked = model->forward(ids, mask, {}, {}, labels, {.masks = &masks});
  auto got = packed->forward(ids, mask, {}, {}, labels);
  EXPECT_TRUE(testing::all_close(got.logits, masked.logits, 1e-4, 1e-4)) << what;
  EXPECT_NEAR(got.loss.item<double>(), masked.loss.item<double>(), 1e-4) << what;
  auto [gids, gscores] = model->generate(ids, mask, 6, &masks);
  auto [pids, pscores] = packed->generate(ids, mask, 6);
  EXPECT_TRUE(torch::equal(pids, gids)) << what << "\n" << pids << "\n" << gids;
  EXPECT_TRUE(testing::all_close(pscores, gscores, 1e-4, 1e-4)) << what;
  return masked.logits;
}
// PACKED's directory carries its shapes and reloads strictly as the same model.
void expect_t5_reloads(models::T5& packed, const torch::Tensor& ids, const torch::Tensor& mask, const torch::Tensor& labels,
                       const std::string& what) {
  testing::TempDir tmp;
  models::save_t5(packed, tmp.str());
  auto loaded = models::load_t5(tmp.str());
  loaded->eval();
  EXPECT_EQ(loaded->config.layer_shapes, packed->config.layer_shapes) << what;
  EXPECT_TRUE(torch::equal(loaded->forward(ids, mask, {}, {}, labels).logits, packed->forward(ids, mask, {}, {}, labels).logits)) << what;
}

TEST(PackDecoder, MaskedT5EqualsItsPackedModelAndGeneratesTheSame) {
  for (const char* fixture : {"t5_small", "t5_v1_1"})
    for (bool rotate : {false, true}) {
      SCULPT_REQUIRE_SHARED(dir, std::string("fixtures/hf/") + fixture);
      const std::string what = std::string(fixture) + (rotate ? " rotated" : "");
      auto [model, ids, mask, labels] = t5_case(dir, rotate);
      const auto masks = testing::partial_t5_masks(model->config);
      auto packed = compress::pack_t5(model, masks);
      const auto& c = model->config;
      EXPECT_EQ(packed->config.hidden_size, 48) << what;
      ASSERT_EQ(packed->config.layer_shapes.size(), 4u);
      const auto& s = packed->config.layer_shapes;
      EXPECT_EQ(s[0].attn, (models::AttentionShape{3, 8, 12, true})) << what;
      EXPECT_EQ(s[0].bias_heads, (std::vector<int64_t>{0, 2, 3})) << what;
      EXPECT_FALSE(s[1].attn.present);
      EXPECT_EQ(s[1].ffn_dim, 0);
      EXPECT_EQ(s[2].cross, (models::AttentionShape{2, 8, 8, true})) << what;
      EXPECT_EQ(s[2].bias_heads, (std::vector<int64_t>{1, 2})) << what;
      EXPECT_FALSE(s[2].ffn);
      EXPECT_EQ(s[3].attn.heads, 0);
      EXPECT_EQ(s[3].cross, (models::AttentionShape{4, 16, 16, true}));
      // Soft stream values untie v1.0's LM head from the (scaled) input embedding.
      EXPECT_FALSE(packed->config.tie_word_embeddings) << what;

      const auto masked = expect_packed_t5_equals_masked(model, packed, masks, ids, mask, labels, what);
      auto plain = model->forward(ids, mask, {}, {}, labels);
      EXPECT_GT((plain.logits - masked).abs().max().item<double>(), 1e-2) << what;
      // The map table at 0/1 masks counts the packed maps exactly.
      EXPECT_EQ(compress::expected_weights(compress::t5_map_table(compress::binary_masks(masks), c)).item<double>(),
                static_cast<double>(compress::linear_map_weights(*packed)))
          << what;
      EXPECT_EQ(compress::expected_weights(compress::t5_map_table({}, c)).item<double>(),
                static_cast<double>(compress::linear_map_weights(*model)))
          << what;

      expect_t5_reloads(packed, ids, mask, labels, what);
    }
}

// Per-site masks on T5, both fixtures, in their own basis and rotated: the partial masks above
// with a mask per site instead of the one stream mask. Site widths (of 64): embeddings 48 (both
// streams); encoder blocks 48, 40 | 56, 32 (the encoder's output, which cross-attention reads);
// decoder blocks 48, 56, 40 | 32, 48, 64 (self, cross, FFN).
TEST(PackDecoder, PerSiteT5MasksPackToSitesOfTheirOwnWidths) {
  for (const char* fixture : {"t5_small", "t5_v1_1"})
    for (bool rotate : {false, true}) {
      SCULPT_REQUIRE_SHARED(dir, std::string("fixtures/hf/") + fixture);
      const std::string what = std::string(fixture) + (rotate ? " rotated" : "");
      auto [model, ids, mask, labels] = t5_case(dir, rotate);
      const auto& c = model->config;
      const int64_t D = c.hidden_size;
      const auto shared = testing::partial_t5_masks(c);
      auto masks = shared;
      torch::manual_seed(13);
      auto site = [&](int64_t zeros) {
        auto v = torch::rand({D}) * 0.5 + 0.5;
        v.index_fill_(0, torch::randperm(D).narrow(0, 0, zeros), 0.0);
        return v;
      };
      const std::vector<std::vector<int64_t>> zeros = {{16, 24}, {8, 32}, {16, 8, 24}, {32, 16, 0}};
      for (size_t i = 0; i < 4; ++i) {
        std::vector<torch::Tensor> rows;
        for (int64_t z : zeros[i]) rows.push_back(site(z));
        masks.layers[i].sites = torch::stack(rows);
        masks.layers[i].hidden = torch::Tensor();
      }
      auto packed = compress::pack_t5(model, masks);
      EXPECT_EQ(packed->config.hidden_size, 48) << what;
      const auto& s = packed->config.layer_shapes;
      ASSERT_EQ(s.size(), 4u);
      const std::vector<std::vector<size_t>> widths = {{48, 40}, {56, 32}, {48, 56, 40}, {32, 48, 64}};
      for (size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(s[i].attn_from.size(), widths[i][0]) << what << " block " << i;
        if (i >= 2) EXPECT_EQ(s[i].cross_from.size(), widths[i][1]) << what << " block " << i;
        EXPECT_EQ(s[i].ffn_from.size(), widths[i].back()) << what << " block " << i;
      }
      EXPECT_EQ(packed->encoder->final_norm->weight.size(0), 32);
      EXPECT_EQ(packed->decoder->final_norm->weight.size(0), 64);
      EXPECT_EQ(packed->decoder->blocks[0]->as<models::T5Block>()->cross_attn->k->weight.size(1), 32);  // the encoder's output
      EXPECT_EQ(packed->decoder->blocks[0]->as<models::T5Block>()->cross_attn->q->weight.size(1), 48);
      EXPECT_FALSE(packed->config.tie_word_embeddings) << what;
      EXPECT_EQ(packed->lm_head->weight.size(1), 64);

      const auto masked = expect_packed_t5_equals_masked(model, packed, masks, ids, mask, labels, what);
      // The sites change the function: the one-stream masks give other logits.
      EXPECT_GT((model->forward(ids, mask, {}, {}, labels, {.masks = &shared}).logits - masked).abs().max().item<double>(), 1e-2) << what;
      EXPECT_EQ(compress::expected_weights(compress::t5_map_table(compress::binary_masks(masks), c)).item<double>(),
                static_cast<double>(compress::linear_map_weights(*packed)))
          << what;

      expect_t5_reloads(packed, ids, mask, labels, what);
    }
}

TEST(PackDecoder, AnUnrotatedOptPacksHeadsAndNeuronsAndRefusesStreamMasks) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/opt_seqcls");
  auto model = models::load_opt(dir);
  model->eval();
  const auto masks = partial_masks(model->config, /*stream=*/false);
  auto packed = compress::pack_opt(model, masks);
  auto b = prompts();
  models::ForwardOptions o;
  o.masks = &masks;
  auto masked = model->forward(b.input_ids, b.attention_mask, torch::Tensor(), o);
  EXPECT_TRUE(testing::all_close(packed->forward(b.input_ids, b.attention_mask, torch::Tensor()).logits, masked.logits, 1e-5, 1e-5));
  EXPECT_EQ(packed->config.hidden_size, model->config.hidden_size);
  try {
    compress::pack_opt(model, partial_masks(model->config, true));
    FAIL() << "stream masks on an unrotated OPT packed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rotate it first"), std::string::npos) << e.what();
  }
}

TEST(PackDecoder, OneShotOptScoresByHandAndItsPackedBlocksEqualTheMaskedModel) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/opt_causal_lm");
  auto model = models::load_opt(dir);
  model->eval();
  const auto& c = model->config;
  const int64_t dh = c.head_dim();
  auto* layer = model->layers[1]->as<models::TransformerLayer>();
  auto* a = layer->attn.get();
  // Magnitude: head 2 of layer 1 owns rows 2dh..3dh of q, k, v (and biases) and those columns of o.
  const auto mag = compress::group_by_unit(model, [](const torch::Tensor& w) { return w.pow(2); });
  double head = 0;
  for (auto* lin : {&a->q, &a->k, &a->v})
    head += (*lin)->weight.narrow(0, 2 * dh, dh).pow(2).sum().item<double>() + (*lin)->bias.narrow(0, 2 * dh, dh).pow(2).sum().item<double>();
  head += a->o->weight.narrow(1, 2 * dh, dh).pow(2).sum().item<double>();
  EXPECT_NEAR(mag.head[1][2].item<double>(), head, 1e-6 * head);  // float sums by hand, fp64 in the scores
  // Taylor on the causal-LM loss of two prompts of 7 and 12 tokens: the mean over all 17
  // predicted tokens, against autograd of the summed token losses over 17.
  torch::manual_seed(9);
  std::vector<models::Batch> examples(2);
  for (int i = 0; i < 2; ++i) {
    examples[static_cast<size_t>(i)].input_ids = torch::randint(4, 1000, {1, i == 0 ? 7 : 12});
    examples[static_cast<size_t>(i)].attention_mask = torch::ones_like(examples[static_cast<size_t>(i)].input_ids);
  }
  const auto taylor = compress::taylor_opt_scores(model, examples);
  EXPECT_NE(taylor.source.find("causal-LM loss over 17 predicted tokens of 2 examples"), std::string::npos) << taylor.source;
  model->zero_grad();
  torch::Tensor sum = torch::zeros({});
  for (const auto& e : examples) {
    auto logits = model->forward(e.input_ids, e.attention_mask, torch::Tensor()).logits;
    const int64_t T = logits.size(1);
    sum = sum + torch::nn::functional::cross_entropy(logits.narrow(1, 0, T - 1).reshape({T - 1, -1}), e.input_ids.narrow(1, 1, T - 1).reshape(-1),
                                                     torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
  }
  (sum / 17.0).backward();
  auto* f = layer->ffn.get();
  const int64_t n = 5;
  const double neuron = (f->fc1->weight[n] * f->fc1->weight.grad()[n]).abs().sum().item<double>() +
                        (f->fc1->bias[n] * f->fc1->bias.grad()[n]).abs().item<double>() +
                        (f->fc2->weight.select(1, n) * f->fc2->weight.grad().select(1, n)).abs().sum().item<double>();
  EXPECT_NEAR(taylor.ffn[1][n].item<double>(), neuron, 1e-4 * neuron);
  model->zero_grad();
  // Whole blocks by score (one attention and one FFN block of two go): the packed model computes
  // what the original computes under the same masks.
  const auto masks = compress::allocate(mag, 0.5, {"blocks", "global"});
  ASSERT_TRUE(masks.mha.defined());
  EXPECT_EQ(masks.mha.sum().item<double>(), 1.0);
  EXPECT_EQ(masks.ffn_layer.sum().item<double>(), 1.0);
  torch::NoGradGuard no_grad;
  const auto unit = compress::unit_masks(masks);
  auto packed = compress::pack_opt(model, unit);
  const auto b = prompts();
  models::ForwardOptions o;
  o.masks = &unit;
  const auto expected = model->forward(b.input_ids, b.attention_mask, torch::Tensor(), o).logits;
  const auto got = packed->forward(b.input_ids, b.attention_mask, torch::Tensor()).logits;
  EXPECT_TRUE(testing::all_close(got, expected, 1e-4, 1e-4));
  EXPECT_EQ(compress::linear_map_weights(*packed), compress::linear_map_weights(*model) / 2);
}

TEST(PackDecoder, OneShotT5GatedNeuronsScoreBothInputRowsAndPackAsMasked) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/t5_v1_1");
  auto model = models::load_t5(dir);
  model->eval();
  const auto mag = compress::group_by_unit(model, [](const torch::Tensor& w) { return w.pow(2); });
  ASSERT_EQ(mag.head.size(0), 4);  // 2 encoder blocks, then 2 decoder blocks
  // Neuron 7 of the first decoder block (row 2): its rows of wi_0 and wi_1 and its column of wo.
  auto* ff = model->decoder->blocks[0]->as<models::T5Block>()->ffn.get();
  ASSERT_TRUE(ff->gate);
  const double neuron = ff->fc1->weight[7].pow(2).sum().item<double>() + ff->gate->weight[7].pow(2).sum().item<double>() +
                        ff->fc2->weight.select(1, 7).pow(2).sum().item<double>();
  EXPECT_NEAR(mag.ffn[2][7].item<double>(), neuron, 1e-6 * neuron);
  // Half of the self-attention heads and neurons by score: the packed T5 computes what the
  // original computes under the same masks (cross-attention untouched).
  const auto masks = compress::unit_masks(compress::allocate(mag, 0.5, {"units", "global"}));
  torch::NoGradGuard no_grad;
  auto packed = compress::pack_t5(model, masks);
  torch::manual_seed(3);
  auto ids = torch::randint(3, 1000, {2, 9}), mask = torch::ones({2, 9}, torch::kLong), labels = torch::randint(3, 1000, {2, 5});
  models::ForwardOptions o;
  o.masks = &masks;
  const auto expected = model->forward(ids, mask, {}, {}, labels, o).logits;
  EXPECT_TRUE(testing::all_close(packed->forward(ids, mask, {}, {}, labels).logits, expected, 1e-4, 1e-4));
  const auto& shapes = packed->config.layer_shapes;
  for (size_t i = 0; i < shapes.size(); ++i) EXPECT_EQ(shapes[i].cross.present, i >= 2) << i;  // the decoder's, whole
}

TEST(PackDecoder, T5MaskSetCoversTheDecodersCrossAttentionAndPacksWhatItMasks) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/t5_small");
  auto model = models::load_t5(dir);
  model->eval();
  // The pruning task's mask set: the 2 + 2 blocks as one list, cross-attention on the last 2.
  auto blocks = model->config;
  blocks.num_layers += blocks.num_decoder_layers;
  compress::MaskSetOptions mo;
  mo.shared_hidden = true;
  mo.cross_layers = model->config.num_decoder_layers;
  compress::Sp3MaskSet set(blocks, mo);
  set->eval();
  ASSERT_TRUE(set->cross_head);
  EXPECT_EQ(set->group(0).size(), 6u);  // hidden, qk, vo, ffn, cross qk, cross vo
  EXPECT_EQ(set->group(1).size(), 5u);  // head, mha, ffn_layer, cross head, cross mha
  {
    torch::NoGradGuard g;
    set->cross_head->log_alpha[0][1] = -10;  // cross head 1 of the first decoder block goes
    set->cross_qk->log_alpha[1][3] = -10;    // a query/key dim of the second's cross-attention
    set->cross_mha->log_alpha[1][0] = -10;   // ... and then its whole cross-attention block
    set->head->log_alpha[1][2] = -10;        // self-attention head 2 of the second encoder block
  }
  const auto sp3 = set->sample_or_eval();
  const auto masks = compress::model_masks(sp3, set->shape);
  ASSERT_EQ(masks.layers.size(), 4u);
  EXPECT_FALSE(masks.layers[1].cross.head.defined());  // an encoder block has none
  EXPECT_EQ(masks.layers[2].cross.head.eq(0).sum().item<int64_t>(), 1);
  EXPECT_EQ(masks.layers[3].cross.qk.eq(0).sum().item<int64_t>(), 1);
  EXPECT_EQ(masks.layers[3].cross.gate.item<double>(), 0.0);
  const auto kept = compress::kept_sizes(sp3);
  EXPECT_EQ(kept["cross_heads"].get<std::vector<int64_t>>(), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(kept["cross_mha"].get<std::vector<int64_t>>(), (std::vector<int64_t>{1, 0}));
  // The packed T5 has exactly the table's count: less one self head (4 x 64 x 16), one cross head
  // of block 2 (4 x 64 x 16) and all of block 3's cross-attention (4 x 64 x 64).
  torch::NoGradGuard no_grad;
  auto packed = compress::pack_t5(model, masks);
  const double table = compress::expected_weights(compress::t5_map_table(compress::binary_masks(masks), model->config)).item<double>();
  EXPECT_EQ(static_cast<double>(compress::linear_map_weights(*packed)), table);
  EXPECT_EQ(table, 163840.0 - 2 * 4 * 64 * 16 - 4 * 64 * 64);
  // ... and computes what the masked model computes.
  torch::manual_seed(5);
  auto ids = torch::randint(3, 1000, {2, 9}), mask = torch::ones({2, 9}, torch::kLong), labels = torch::randint(3, 1000, {2, 5});
  models::ForwardOptions o;
  o.masks = &masks;
  EXPECT_TRUE(testing::all_close(packed->forward(ids, mask, {}, {}, labels).logits, model->forward(ids, mask, {}, {}, labels, o).logits,
                                 1e-4, 1e-4));
}

TEST(PackDecoder, T5TaylorScoresAreWeightTimesGradientOfTheMeanTargetLoss) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/t5_v1_1");
  auto model = models::load_t5(dir);
  model->eval();
  // Two span-corrupted examples of 11 and 24 tokens: 2 + 1 + 1 and 4 + 1 + 1 targets (noise, sentinels, </s>).
  std::vector<models::Batch> examples;
  for (int64_t n : {11, 24}) {
    std::vector<int64_t> ids(static_cast<size_t>(n));
    std::iota(ids.begin(), ids.end(), 20);
    const auto c = data::span_corrupt(ids, 1099, 2, static_cast<uint64_t>(n));
    models::Batch b;
    b.input_ids = torch::tensor(c.inputs, torch::kLong).view({1, -1});
    b.attention_mask = torch::ones_like(b.input_ids);
    b.labels = torch::tensor(c.targets, torch::kLong).view({1, -1});
    examples.push_back(b);
  }
  ASSERT_EQ(examples[0].labels.numel() + examples[1].labels.numel(), 10);
  const auto taylor = compress::taylor_t5_scores(model, examples);
  EXPECT_NE(taylor.source.find("sequence-to-sequence loss over 10 target tokens of 2 examples"), std::string::npos) << taylor.source;
  // By hand: the summed token losses over 10, backward, |w * g| over a unit's weights.
  model->zero_grad();
  torch::Tensor sum = torch::zeros({});
  for (const auto& e : examples) {
    auto logits = model->forward(e.input_ids, e.attention_mask, {}, {}, e.labels).logits;
    sum = sum + torch::nn::functional::cross_entropy(logits.view({-1, logits.size(-1)}), e.labels.view(-1),
                                                     torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
  }
  (sum / 10.0).backward();
  auto wg = [](const torch::Tensor& w) { return (w * w.grad()).abs(); };
  auto* dec = model->decoder->blocks[0]->as<models::T5Block>();
  auto* ff = dec->ffn.get();
  const double neuron = wg(ff->fc1->weight)[7].sum().item<double>() + wg(ff->gate->weight)[7].sum().item<double>() +
                        wg(ff->fc2->weight).select(1, 7).sum().item<double>();
  EXPECT_NEAR(taylor.ffn[2][7].item<double>(), neuron, 1e-4 * neuron);
  // Head 1 of the first encoder block: its 16 rows of q, k and v and its 16 columns of o.
  auto* att = model->encoder->blocks[0]->as<models::T5Block>()->self_attn.get();
  const double head = wg(att->q->weight).narrow(0, 16, 16).sum().item<double>() + wg(att->k->weight).narrow(0, 16, 16).sum().item<double>() +
                      wg(att->v->weight).narrow(0, 16, 16).sum().item<double>() + wg(att->o->weight).narrow(1, 16, 16).sum().item<double>();
  EXPECT_NEAR(taylor.head[0][1].item<double>(), head, 1e-4 * head);
  model->zero_grad();
}

// Keeps every input its Linear reads.
struct CaptureKernel : models::LinearKernel {
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) override {
    seen.push_back(x.reshape({-1, x.size(-1)}).to(torch::kFloat64));
    return at::linear(x, w, b);
  }
  std::vector<torch::Tensor> seen;
};

TEST(PackDecoder, ActivationScoresOfOptAndT5AreMeansOfWhatTheOutputMapsRead) {
  SCULPT_REQUIRE_SHARED(opt_dir, "fixtures/hf/opt_causal_lm");
  SCULPT_REQUIRE_SHARED(t5_dir, "fixtures/hf/t5_v1_1");
  torch::manual_seed(4);
  std::vector<models::Batch> examples(2);
  for (int i = 0; i < 2; ++i) {
    examples[static_cast<size_t>(i)].input_ids = torch::randint(4, 1000, {1, i == 0 ? 6 : 11});
    examples[static_cast<size_t>(i)].attention_mask = torch::ones_like(examples[static_cast<size_t>(i)].input_ids);
  }
  torch::NoGradGuard no_grad;
  // OPT, layer 1: a head's score is the mean |context| over its 16 dims and all 17 tokens; a
  // neuron's (mean_abs) the mean |activation|.
  auto opt = models::load_opt(opt_dir);
  opt->eval();
  auto* layer = opt->layers[1]->as<models::TransformerLayer>();
  auto ctx = std::make_shared<CaptureKernel>(), act = std::make_shared<CaptureKernel>();
  layer->attn->o->kernel = ctx, layer->ffn->fc2->kernel = act;
  for (const auto& e : examples) opt->forward(e.input_ids, e.attention_mask, torch::Tensor());
  layer->attn->o->kernel.reset(), layer->ffn->fc2->kernel.reset();
  const auto s = compress::activation_scores(opt, examples, "mean_abs");
  const auto c = torch::cat(ctx->seen).abs();  // [17, 64]
  ASSERT_EQ(c.size(0), 17);
  EXPECT_TRUE(torch::allclose(s.head[1], c.view({17, 4, 16}).mean(std::vector<int64_t>{0, 2}), 1e-12, 1e-12)) << s.head[1];
  EXPECT_TRUE(torch::allclose(s.ffn[1], torch::cat(act->seen).abs().mean(0), 1e-12, 1e-12));
  EXPECT_NE(s.source.find("over 17 tokens of 2 examples"), std::string::npos) << s.source;
  // T5 v1.1, the first decoder block (row 2), APoZ: the share of positive gated activations.
  auto t5 = models::load_t5(t5_dir);
  t5->eval();
  auto* block = t5->decoder->blocks[0]->as<models::T5Block>();
  auto gated = std::make_shared<CaptureKernel>();
  block->ffn->fc2->kernel = gated;
  for (const auto& e : examples) t5->forward(e.input_ids, e.attention_mask, {}, {}, e.input_ids);
  block->ffn->fc2->kernel.reset();
  const auto t = compress::activation_scores(t5, examples, "apoz");
  ASSERT_EQ(t.ffn.size(0), 4);
  EXPECT_TRUE(torch::allclose(t.ffn[2], (torch::cat(gated->seen) > 0).to(torch::kFloat64).mean(0), 1e-12, 1e-12));
  // The kernels are gone afterwards: the model computes what it computed.
  EXPECT_FALSE(block->ffn->fc2->kernel);
  EXPECT_FALSE(layer->attn->o->kernel);
}

}  // namespace
}  // namespace sculpt
