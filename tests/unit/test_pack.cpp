// Packing (method.md §3.9): the masked student with its eval masks and the packed dense model
// compute the same logits, whatever the compactors hold; the packed directory round-trips;
// the packed model's weight count is the SP3 count of what the masks keep.
#include <fmt/ranges.h>

#include "sculpt/compress/pack.h"
#include "sculpt/compress/pca.h"
#include "sculpt/compress/prune_report.h"
#include "sculpt/compress/quantize.h"
#include "sculpt/models/any_bert.h"
#include "sculpt/recipe/recipe.h"
#include "sculpt/train/select_weights.h"
#include "sculpt/core/error.h"
#include "sculpt/train/optim.h"
#include "sp3_test_models.h"
#include "test_util.h"

namespace sculpt {
namespace {

// Random compactors, biases and LN affines everywhere (biases of in-compactors included: the
// method's mixer folds them twice, which only this kind of test catches).
void scramble(compress::Sp3Bert& s, double scale) {
  torch::NoGradGuard g;
  for (auto& p : s->named_parameters()) {
    const auto& k = p.key();
    if (k.find("sites.") == 0 || k.find(".cq.") != std::string::npos || k.find(".ck.") != std::string::npos ||
        k.find(".cv.") != std::string::npos || k.find(".co.") != std::string::npos)
      p.value().add_(torch::randn_like(p.value()) * scale);
  }
}

// An SP3 student of the tiny teacher (originals frozen) with scrambled compactors.
compress::Sp3Bert scrambled_student(uint64_t seed, double scale, const std::string& architecture = "BertForSequenceClassification") {
  auto t = testing::tiny_teacher(3, architecture);
  compress::Sp3Bert s(t, true);
  torch::manual_seed(seed);
  scramble(s, scale);
  return s;
}

// Soft eval-mask values with zeros in every kind of mask, head patterns tiled over heads.
compress::Sp3Masks partial_masks(bool drop_blocks) {
  auto soft = [](std::vector<int64_t> shape, double keep) {
    auto u = torch::rand(shape);
    return torch::where(u < keep, 0.5 + 0.5 * torch::rand(shape), torch::zeros(shape));
  };
  compress::Sp3Masks m;
  m.hidden = soft({5, 16}, 0.7);
  auto dims = [&] {  // a per-head pattern, tiled over the 4 heads; each layer keeps one for sure
    auto d = soft({2, 4}, 0.75);
    d[0][0] = 0.9;
    d[1][3] = 0.9;
    return d.repeat({1, 4});
  };
  m.qk = dims();
  m.vo = dims();
  m.head = soft({2, 4}, 0.7);
  m.head[0] = torch::tensor({0.9, 0.0, 0.7, 0.6});
  m.head[1][0] = 0.8;
  m.mha = torch::tensor({0.9, drop_blocks ? 0.0 : 0.95});
  m.ffn = soft({2, 24}, 0.6);
  m.ffn_layer = torch::tensor({drop_blocks ? 0.0 : 0.97, 0.9});
  return m;
}

// Pack and check what every packing must give: the masked student's logits (1e-4), the same
// logits after a save/load round trip, a shape (without folding) and parameter count that are
// the module's own.
// The head's outputs side by side: the logits, or the start and end logits of a span model.
torch::Tensor head_outputs(const models::ModelOutput& o) {
  return o.logits.defined() ? o.logits : torch::stack({o.start_logits, o.end_logits});
}

models::PackedBert check_pack(compress::Sp3Bert& s, const compress::Sp3Masks& m) {
  s->eval();
  auto b = testing::tiny_batch();
  auto expected = head_outputs(s->forward(b, m));
  auto packed = compress::pack_student(s, m);
  packed->eval();
  auto got = head_outputs(packed->forward(b));
  EXPECT_TRUE(testing::all_close(got, expected, 1e-4, 1e-4)) << got << "\n" << expected;
  testing::TempDir dir;
  models::save_packed_bert(packed, dir.str());
  auto loaded = models::load_packed_bert(dir.str());
  loaded->eval();
  EXPECT_TRUE(torch::equal(head_outputs(loaded->forward(b)), got));
  EXPECT_EQ(models::packed_config_to_json(loaded->config), models::packed_config_to_json(packed->config));
  EXPECT_EQ(models::packed_config_to_json(compress::packed_shape(s, m)), models::packed_config_to_json(packed->config));
  int64_t numel = 0;
  for (const auto& t : packed->parameters()) numel += t.numel();
  EXPECT_EQ(models::count_packed(packed->config).total_parameters, numel);
  return packed;
}

// CoFi-mode eval masks (one shared hidden mask, whole heads) from scrambled log alphas.
compress::Sp3Masks cofi_eval_masks(const models::TransformerConfig& c) {
  compress::MaskSetOptions mo;
  mo.shared_hidden = true;
  mo.head_dims = false;
  compress::Sp3MaskSet set(c, mo);
  torch::manual_seed(4);
  {
    torch::NoGradGuard g;
    for (auto& p : set->parameters()) p.copy_(torch::randn_like(p) * 3);
  }
  set->eval();
  return set->sample_or_eval();
}

TEST(Pack, PackedEqualsMaskedStudentWithTrainedLookingCompactors) {
  auto s = scrambled_student(21, 0.2);
  check_pack(s, partial_masks(false));
  check_pack(s, compress::Sp3Masks{});  // all kept: a dense model with residual maps
}

TEST(Pack, SpanModelPacksWithItsStudentAndReloadsAsOne) {
  // SQuAD pruning: the span head reads the last site like the pooler does, so it folds the same
  // way; the packed directory says which head it has and reloads as a span model.
  auto s = scrambled_student(23, 0.2, "BertForQuestionAnswering");
  ASSERT_TRUE(s->heads.qa && !s->heads.pooler && !s->heads.classifier);
  auto packed = check_pack(s, partial_masks(true));
  EXPECT_EQ(models::packed_config_to_json(packed->config)["architectures"][0], "SculptPackedBertForQuestionAnswering");
  EXPECT_EQ(packed->heads.qa->weight.size(1), packed->config.layers.back().out_dim);
  check_pack(s, compress::Sp3Masks{});
  // The span loss (HF's: mean of the start and end cross-entropies) is the student's too.
  auto b = testing::tiny_batch();
  b.start_positions = torch::tensor({1, 4, 2});
  b.end_positions = torch::tensor({3, 4, 30});  // past the sequence: ignored, as HF
  const auto m = partial_masks(true);
  auto student = s->forward(b, m);
  auto repacked = compress::pack_student(s, m);
  repacked->eval();
  auto packed_out = repacked->forward(b);
  EXPECT_NEAR(packed_out.loss.item<double>(), student.loss.item<double>(), 1e-5);
  namespace F = torch::nn::functional;
  auto by_hand = (F::cross_entropy(student.start_logits, b.start_positions) +
                  F::cross_entropy(student.end_logits.narrow(0, 0, 2), b.end_positions.narrow(0, 0, 2))) / 2;
  EXPECT_NEAR(student.loss.item<double>(), by_hand.item<double>(), 1e-6);
}

TEST(Pack, PackedModelsBiasesAndNormWeightsEscapeWeightDecay) {
  // The fine-tune stage trains the packed model: HF's rule (no decay on biases and LayerNorm
  // weights) must see its parameters under their HF names, not the short internal ones.
  auto s = scrambled_student(21, 0.2);
  auto packed = check_pack(s, partial_masks(false));
  const int64_t L = static_cast<int64_t>(packed->config.layers.size());
  auto named = train::hf_named_parameters(*packed, models::packed_bert_key_map(packed->config));
  std::vector<std::string> plain_names;
  for (const auto& [name, p] : named)
    if (train::no_decay(name)) plain_names.push_back(name);
  // Per layer: q, k, v, o, residual 1, FFN 1 and 2, residual 2 biases and both LayerNorms' weight
  // and bias (12); the embedding LayerNorm (2), pooler and classifier biases (2).
  EXPECT_EQ(static_cast<int64_t>(plain_names.size()), 12 * L + 4) << fmt::format("{}", fmt::join(plain_names, " "));
  auto setup = train::make_optimizer(named, train::AdamWSettings{1e-3, 0.01});
  const auto& groups = setup.optimizer->param_groups();
  EXPECT_EQ(static_cast<int64_t>(groups[1].params().size()), 12 * L + 4);
  EXPECT_EQ(static_cast<int64_t>(groups[0].params().size()), 8 * L + 3 + 2);  // matrices, 3 embeddings, pooler, classifier
  EXPECT_EQ(static_cast<const torch::optim::AdamWOptions&>(groups[1].options()).weight_decay(), 0.0);
}

TEST(Pack, PackedModelsQuantizeToInt8AndTrackTheFakeQuantizedOne) {
  // Post-training quantization of an SP3 packed model: every non-empty matrix of the shared
  // core's Linears, the dense residual maps included, runs int8 products once reloaded.
  auto s = scrambled_student(21, 0.2);
  auto packed = check_pack(s, partial_masks(/*drop_blocks=*/true));
  const auto& pc = packed->config;
  ASSERT_FALSE(pc.diagonal_residual);
  ASSERT_EQ(pc.layers[1].heads, 0);    // layer 1's attention block removed: q, k, v, o are empty
  ASSERT_EQ(pc.layers[0].ffn_dim, 0);  // layer 0's FFN block removed: fc1, fc2 are empty
  const auto keys = models::packed_bert_key_map(pc);
  const recipe::QuantizeSection defaults;
  std::vector<std::pair<std::string, std::string>> names;
  for (const auto& w : train::select_weights(*packed, keys, defaults.include, defaults.exclude, "quantize")) names.emplace_back(w.hf, w.internal);
  // Layer 0: q, k, v, o and both residual maps; layer 1: both residual maps, fc1 and fc2.
  ASSERT_EQ(names.size(), 10u);
  EXPECT_EQ(names[4], (std::pair<std::string, std::string>{"bert.encoder.layer.0.attention.residual.weight", "layers.0.res1.weight"}));
  auto layers = compress::attach_fake_quant(*packed, names, 0.0);
  torch::NoGradGuard no_grad;
  packed->eval();
  auto b = testing::tiny_batch();
  packed->forward(b);  // calibrate
  for (auto& [hf, k] : layers) k->observe = false;
  const auto fake = packed->forward(b).logits;
  testing::TempDir dir;
  models::save_packed_bert(packed, dir.str());
  compress::write_int8_directory(dir.str(), compress::int8_matrices(*packed, layers, keys), "test");
  auto loaded = models::load_any_bert(dir.str());
  EXPECT_TRUE(loaded.packed);
  EXPECT_EQ(loaded.int8_layers, 10);
  loaded.module->eval();
  const auto real = loaded.forward(b, {}).logits;
  // The same integer products; only float rounding differs (stated: 1e-3 of the largest logit).
  const double scale = fake.abs().max().item<double>(), diff = (real - fake).abs().max().item<double>();
  std::printf("[quantize] packed tiny BERT logits: max |int8 - fake| %.3g of max |logit| %.3g\n", diff, scale);
  EXPECT_LE(diff, 1e-3 * scale) << "int8 logits " << real << " vs fake-quantized " << fake;
}

TEST(Pack, ShapesThatCannotDependOnTheInputAreNamed) {
  models::PackedBertConfig c;
  c.embedding_dim = 4;
  c.layers = {{4, 4, 2, 2, 2, 3}, {4, 4, 0, 0, 0, 3}};
  EXPECT_EQ(compress::input_independence(c), "");
  c.layers[0].vo_dim = 0;  // heads whose values are gone pass only a bias: no attention path left
  EXPECT_EQ(compress::input_independence(c), "no attention head is left in any layer, so [CLS] never sees the other tokens");
  c.layers[0].vo_dim = 2;
  c.layers[1].out_dim = 0;
  EXPECT_EQ(compress::input_independence(c), "layer 1: the FFN site keeps no dims");
  c.embedding_dim = 0;
  EXPECT_EQ(compress::input_independence(c), "the embedding site keeps no dims");
  // The real thing: a student whose masks remove every head packs into such a model.
  auto s = scrambled_student(21, 0.2);
  auto m = partial_masks(false);
  m.head.zero_();
  EXPECT_EQ(compress::input_independence(compress::packed_shape(s, m)),
            "no attention head is left in any layer, so [CLS] never sees the other tokens");
  EXPECT_EQ(compress::input_independence(compress::packed_shape(s, partial_masks(false))), "");
}

// The packed model's hidden states map back to the masked student's through the exported
// affine maps: h = A x + a for every state (so a distillation projection carries over).
void expect_state_maps_exact(compress::Sp3Bert& s, const compress::Sp3Masks& m) {
  s->eval();
  auto b = testing::tiny_batch();
  auto student = s->forward(b, m, true).hidden_states;
  auto packed = compress::pack_student(s, m);
  packed->eval();
  auto got = packed->forward(b, {true, false}).hidden_states;
  auto maps = compress::packed_state_maps(s, m);
  ASSERT_EQ(maps.size(), student.size());
  ASSERT_EQ(got.size(), student.size());
  for (size_t i = 0; i < maps.size(); ++i) {
    const auto& [A, a] = maps[i];
    EXPECT_EQ(A.size(1), got[i].size(-1));
    EXPECT_TRUE(testing::all_close(got[i].matmul(A.t()) + a, student[i], 1e-4, 1e-4)) << "state " << i;
  }
}

TEST(Pack, StateMapsCarryTheStudentsHiddenStatesOntoThePackedModel) {
  auto s = scrambled_student(21, 0.2);
  expect_state_maps_exact(s, partial_masks(false));  // SP3: a rotated basis per site
  auto t = testing::tiny_teacher();
  compress::Sp3Bert cofi(t, compress::StudentOptions{false, false});
  auto m = cofi_eval_masks(t->config);
  expect_state_maps_exact(cofi, m);
  // CoFi mode: one kept set with its soft mask values, the same map at every state (the
  // fine-tune stage then trains one shared projection, as CoFi's layer_transformation).
  auto maps = compress::packed_state_maps(cofi, m);
  for (const auto& [A, a] : maps) {
    EXPECT_TRUE(torch::equal(A, maps[0].first));
    EXPECT_EQ(a.abs().sum().item<double>(), 0.0);
  }
}

TEST(Pack, RemovedBlocksHeadsAndExactModeStillMatch) {
  auto t = testing::tiny_teacher();
  compress::Sp3Bert s(t, true);
  compress::PcaOptions o;
  o.mode = "exact";
  torch::manual_seed(3);
  std::vector<models::Batch> examples;
  for (int i = 0; i < 20; ++i) examples.push_back({torch::randint(5, 60, {1, 7})});
  compress::init_sp3_from_pca(s, compress::collect_sp3_moments(s, examples, o), o);
  torch::manual_seed(22);
  scramble(s, 0.05);
  auto m = partial_masks(true);
  m.head[1].zero_();  // layer 1: every head gone, its MHA scalar still on: only biases remain
  auto packed = check_pack(s, m);
  EXPECT_TRUE(packed->config.rms_norm);
  EXPECT_EQ(packed->config.layers[1].heads, 0);
  EXPECT_EQ(packed->config.layers[0].ffn_dim, 0);
  EXPECT_EQ(packed->config.layers[0].heads, 3);
}

TEST(Pack, SitesPrunedToNothingStillPackAndMatch) {
  auto s = scrambled_student(24, 0.1);
  auto m = partial_masks(false);
  m.hidden[2].zero_();  // layer 0's FFN site: nothing left
  m.hidden[4].zero_();  // the last site: the pooler reads only biases
  auto packed = check_pack(s, m);
  EXPECT_EQ(packed->config.layers[0].out_dim, 0);
  EXPECT_EQ(packed->config.layers[1].out_dim, 0);
}

TEST(Pack, CofiModeStudentPacksWithTheSharedHiddenMask) {
  auto t = testing::tiny_teacher();
  compress::Sp3Bert s(t, compress::StudentOptions{false, false});
  auto params = s->named_parameters();
  EXPECT_TRUE(params["layers.0.attn.q.weight"].requires_grad());  // whole model trains
  EXPECT_FALSE(params["embed.tok.weight"].requires_grad());       // but the embeddings (CoFi)
  EXPECT_FALSE(params["sites.1.in.weight"].requires_grad());      // no compactors
  EXPECT_TRUE(params["sites.1.norm.weight"].requires_grad());
  auto m = cofi_eval_masks(t->config);
  EXPECT_FALSE(m.qk.defined());
  EXPECT_TRUE(torch::equal(m.hidden[0], m.hidden[4]));
  // One kept set everywhere: the residual maps are diagonals, stored as vectors.
  auto packed = check_pack(s, m);
  EXPECT_TRUE(packed->config.diagonal_residual);
  EXPECT_TRUE(packed->config.norm_over_kept);  // LayerNorm over the kept dims, as CoFi
  EXPECT_EQ(packed->layers[0]->as<models::PackedBertLayer>()->r1->weight.dim(), 1);
  // CoFi's pruned fraction with all kept: only the 5D per layer its formula leaves out
  // (FFN bias and LN), 5*16*2 of L[(4D^2+4D) + (2DF+5D)] = 3872.
  compress::MaskSetOptions mo;
  mo.shared_hidden = true;
  mo.head_dims = false;
  compress::Sp3MaskSet full(t->config, mo);
  EXPECT_NEAR(compress::cofi_expected_sparsity(full->cofi_keep_probs(), full->shape).item<double>(), 160.0 / 3872, 1e-4);
}

TEST(Pack, CofiSkipOfARemovedBlocksNormIsCarriedIntoThePackedModel) {
  // CoFi's code: a block whose layer mask is 0 skips its LayerNorm. The packed model marks the
  // layer and passes the state through; masked student == packed only if both do it.
  auto t = testing::tiny_teacher();
  compress::Sp3Bert skip(t, compress::StudentOptions{false, false, true});
  compress::Sp3Bert plain(t, compress::StudentOptions{false, false});
  auto m = cofi_eval_masks(t->config);
  m.mha = torch::tensor({0.0f, 1.0f});        // layer 0's attention removed
  m.ffn_layer = torch::tensor({1.0f, 0.0f});  // layer 1's FFN removed
  auto packed = check_pack(skip, m);
  EXPECT_TRUE(packed->config.layers[0].skip_attn_norm);
  EXPECT_FALSE(packed->config.layers[0].skip_ffn_norm);
  EXPECT_FALSE(packed->config.layers[1].skip_attn_norm);
  EXPECT_TRUE(packed->config.layers[1].skip_ffn_norm);
  EXPECT_EQ(packed->config.layers[0].heads, 0);
  // The skip changes the function: the plain student's logits differ, and it packs without flags.
  skip->eval(), plain->eval();
  auto b = testing::tiny_batch();
  EXPECT_GT((skip->forward(b, m).logits - plain->forward(b, m).logits).abs().max().item<double>(), 1e-3);
  auto unflagged = check_pack(plain, m);
  EXPECT_FALSE(unflagged->config.layers[0].skip_attn_norm);
  // Flags on a dense-residual (SP3) packed model are refused.
  auto j = models::packed_config_to_json(packed->config);
  j["sculpt_packed"]["residual"] = "dense";
  EXPECT_THROW(models::packed_config_from_json(j, "x/config.json"), Error);
}

TEST(Pack, CofiIntermediateLogAlphaInitIsItsOwn) {
  auto t = testing::tiny_teacher();
  compress::MaskSetOptions mo;
  mo.shared_hidden = true;
  mo.head_dims = false;
  mo.ffn_init_mean = 0.0;  // CoFi's code: ln(1 - 0.5) - ln(0.5)
  compress::Sp3MaskSet set(t->config, mo);
  EXPECT_NEAR(set->ffn->log_alpha.mean().item<double>(), 0.0, 0.01);
  EXPECT_NEAR(set->head->log_alpha.mean().item<double>(), 10.0, 0.01);
  EXPECT_NEAR(set->hidden->log_alpha.mean().item<double>(), 10.0, 0.01);
  // A neuron's keep probability at log alpha 0: L = sigmoid(log alpha + beta ln 11) = 0.832 (method.md §5.2).
  EXPECT_NEAR(set->ffn->keep_prob().mean().item<double>(), 1.0 / (1.0 + std::exp(-2.0 / 3.0 * std::log(11.0))), 0.01);
}

TEST(Pack, CountsAreSp3sSizeAtTheMasksPatternAndBadConfigsAreRefused) {
  auto s = scrambled_student(23, 0.1);
  auto m = partial_masks(false);
  auto packed = check_pack(s, m);
  // The weight-matrix count is exactly SP3's expected size at the 0/1 pattern of the masks.
  auto c = models::count_packed(packed->config);
  compress::Sp3KeepProbs p;
  auto bin = [](const torch::Tensor& z) { return (z != 0).to(torch::kFloat32); };
  p.hidden = bin(m.hidden);
  p.qk = bin(m.qk).view({2, 4, 4}).select(1, 0);
  p.vo = bin(m.vo).view({2, 4, 4}).select(1, 0);
  p.head = bin(m.head);
  p.mha = bin(m.mha);
  p.ffn = bin(m.ffn);
  p.ffn_layer = bin(m.ffn_layer);
  EXPECT_EQ(c.matrices, compress::sp3_expected_params(p).item<double>());
  // A damaged packed config is refused with the reason.
  auto j = models::packed_config_to_json(packed->config);
  j["sculpt_packed"]["layers"][0]["heads"] = 99;
  EXPECT_THROW(models::packed_config_from_json(j, "x/config.json"), Error);
}

}  // namespace
}  // namespace sculpt
