#include "sculpt/compress/structure_scores.h"

#include <torch/torch.h>

#include "sculpt/core/error.h"
#include "sculpt/models/bert.h"

namespace sculpt::compress {
namespace {

torch::Tensor cpu64(const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat64); }

// Linear weights are [out, in]: a head owns rows h*dh..(h+1)*dh of W_q, W_k, W_v and those
// columns of W_o; a neuron owns row i of W_1 and column i of W_2.
torch::Tensor rows_per(const torch::Tensor& t, int64_t units) { return t.reshape({units, -1}).sum(1); }
torch::Tensor cols_per(const torch::Tensor& t, int64_t units) { return t.reshape({t.size(0), units, -1}).sum(std::vector<int64_t>{0, 2}); }

// The shared core's attention and FFN of each layer, in order: the student's Sp3Layer, BERT's
// and OPT's TransformerLayer, T5's self-attention and FFN (encoder blocks, then decoder blocks).
using UnitLayers = std::vector<std::pair<models::AttentionImpl*, models::FeedForwardImpl*>>;

template <typename Layer>
UnitLayers units_of(torch::nn::ModuleListImpl& layers) {
  UnitLayers out;
  for (const auto& m : layers) out.emplace_back(m->as<Layer>()->attn.get(), m->as<Layer>()->ffn.get());
  return out;
}

StructureScores group_units(const UnitLayers& layers, int64_t H, int64_t F, const UnitQuantity& f) {
  const auto L = static_cast<int64_t>(layers.size());
  StructureScores s;
  s.head = torch::zeros({L, H}, torch::kFloat64);
  s.ffn = torch::zeros({L, F}, torch::kFloat64);
  torch::NoGradGuard g;
  for (int64_t l = 0; l < L; ++l) {
    auto [a, ff] = layers[static_cast<size_t>(l)];
    auto head = torch::zeros({H}, torch::kFloat64);
    for (auto* lin : {&a->q, &a->k, &a->v}) {
      head += rows_per(cpu64(f((*lin)->weight)), H);
      if ((*lin)->bias.defined()) head += rows_per(cpu64(f((*lin)->bias)), H);
    }
    head += cols_per(cpu64(f(a->o->weight)), H);
    s.head[l] = head;
    // A gated FFN's neuron owns its row of both input maps (T5 v1.1's wi_0 and wi_1).
    auto neuron = rows_per(cpu64(f(ff->fc1->weight)), F) + cols_per(cpu64(f(ff->fc2->weight)), F);
    if (ff->fc1->bias.defined()) neuron += cpu64(f(ff->fc1->bias));
    if (ff->gate) {
      neuron += rows_per(cpu64(f(ff->gate->weight)), F);
      if (ff->gate->bias.defined()) neuron += cpu64(f(ff->gate->bias));
    }
    s.ffn[l] = neuron;
  }
  return s;
}

// Records what an output map reads (a block's head contexts, an FFN's activations): the sum over
// tokens of |x| per input coordinate (or of x > 0 for APoZ), then the product as usual.
struct RecordingKernel : models::LinearKernel {
  explicit RecordingKernel(bool positive) : positive(positive) {}
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) override {
    auto v = positive ? (x > 0).to(torch::kFloat64) : x.to(torch::kFloat64).abs();
    auto s = v.reshape({-1, x.size(-1)}).sum(0);
    sum = sum.defined() ? sum + s : s;
    return at::linear(x, weight, bias);
  }
  bool positive;
  torch::Tensor sum;
};

// Activation scores of any family's layers, from kernels on each attention block's output map
// and each FFN's output map while RUN feeds the sample (every token real: unpadded examples).
StructureScores recorded_activation_scores(const UnitLayers& layers, int64_t H, int64_t F, const std::string& statistic,
                                           const std::function<int64_t()>& run) {
  SCULPT_CHECK(statistic == "mean_abs" || statistic == "apoz", "--statistic '{}': mean_abs or apoz", statistic);
  std::vector<std::shared_ptr<RecordingKernel>> context, act;
  for (auto [a, ff] : layers) {
    context.push_back(std::make_shared<RecordingKernel>(false));
    act.push_back(std::make_shared<RecordingKernel>(statistic == "apoz"));
    a->o->kernel = context.back();
    ff->fc2->kernel = act.back();
  }
  // The kernels come off whatever RUN does (an error included): the model computes as before.
  struct Uninstall {
    const UnitLayers& layers;
    ~Uninstall() {
      for (auto [a, ff] : layers) a->o->kernel.reset(), ff->fc2->kernel.reset();
    }
  };
  int64_t tokens = 0;
  {
    Uninstall uninstall{layers};
    torch::NoGradGuard g;
    tokens = run();
  }
  const auto L = static_cast<int64_t>(layers.size());
  StructureScores s;
  s.head = torch::zeros({L, H}, torch::kFloat64);
  s.ffn = torch::zeros({L, F}, torch::kFloat64);
  for (int64_t l = 0; l < L; ++l) {
    const auto& c = context[static_cast<size_t>(l)]->sum;
    const auto& f = act[static_cast<size_t>(l)]->sum;
    SCULPT_CHECK(c.defined() && f.defined(), "activation scores: layer {} saw no input", l);
    s.head[l] = cpu64(c).view({H, -1}).mean(1) / static_cast<double>(tokens);
    s.ffn[l] = cpu64(f) / static_cast<double>(tokens);
  }
  s.source = fmt::format("activations ({}) over {} tokens", statistic == "apoz" ? "1 - APoZ for neurons, mean |context| for heads" : "mean |output|",
                         tokens);
  return s;
}

UnitLayers units_of(models::T5& model) {
  UnitLayers layers;
  for (auto* stack : {&model->encoder, &model->decoder})
    for (const auto& m : *(*stack)->blocks) layers.emplace_back(m->as<models::T5Block>()->self_attn.get(), m->as<models::T5Block>()->ffn.get());
  return layers;
}

}  // namespace

StructureScores activation_scores(models::Opt& model, const std::vector<models::Batch>& examples, const std::string& statistic) {
  SCULPT_CHECK(!examples.empty(), "activation scores need at least one example");
  model->eval();
  const auto device = model->parameters().front().device();
  auto s = recorded_activation_scores(units_of<models::TransformerLayer>(*model->layers), model->config.num_heads,
                                      model->config.intermediate_size, statistic, [&] {
                                        int64_t tokens = 0;
                                        for (const auto& e : examples) {
                                          model->forward(e.input_ids.to(device), e.attention_mask.to(device), torch::Tensor());
                                          tokens += e.input_ids.numel();
                                        }
                                        return tokens;
                                      });
  s.source += fmt::format(" of {} examples", examples.size());
  return s;
}

StructureScores activation_scores(models::T5& model, const std::vector<models::Batch>& examples, const std::string& statistic) {
  SCULPT_CHECK(!examples.empty(), "activation scores need at least one example");
  model->eval();
  const auto device = model->parameters().front().device();
  // The decoder reads the same text shifted right (teacher forcing on the input as its target),
  // so each token is seen once by each stack: the count is that of one stack's.
  auto s = recorded_activation_scores(units_of(model), model->config.num_heads, model->config.intermediate_size, statistic, [&] {
    int64_t tokens = 0;
    for (const auto& e : examples) {
      auto ids = e.input_ids.to(device);
      model->forward(ids, e.attention_mask.to(device), {}, {}, ids);
      tokens += e.input_ids.numel();
    }
    return tokens;
  });
  s.source += fmt::format(" of {} examples (the decoder reading each example shifted right)", examples.size());
  return s;
}

StructureScores group_by_unit(Sp3Bert& model, const UnitQuantity& f) {
  return group_units(units_of<Sp3Layer>(*model->layers), model->config.num_heads, model->config.intermediate_size, f);
}

StructureScores group_by_unit(models::Bert& model, const UnitQuantity& f) {
  return group_units(units_of<models::TransformerLayer>(*model->layers), model->config.num_heads, model->config.intermediate_size, f);
}

StructureScores group_by_unit(models::Opt& model, const UnitQuantity& f) {
  return group_units(units_of<models::TransformerLayer>(*model->layers), model->config.num_heads, model->config.intermediate_size, f);
}

StructureScores group_by_unit(models::T5& model, const UnitQuantity& f) {
  return group_units(units_of(model), model->config.num_heads, model->config.intermediate_size, f);
}

StructureScores magnitude_scores(Sp3Bert& model) {
  auto s = group_by_unit(model, [](const torch::Tensor& w) { return w.pow(2); });
  s.source = "weights (squared L2 norm per head and per neuron)";
  return s;
}

StructureScores activation_scores(Sp3Bert& model, const std::vector<models::Batch>& batches, const std::string& statistic) {
  SCULPT_CHECK(statistic == "mean_abs" || statistic == "apoz", "--statistic '{}': mean_abs or apoz", statistic);
  SCULPT_CHECK(!batches.empty(), "activation scores need at least one batch of inputs");
  torch::NoGradGuard g;
  const bool was_training = model->is_training();
  model->eval();
  const auto& c = model->config;
  const int64_t L = c.num_layers, H = c.num_heads, dh = c.head_dim();
  const auto device = model->parameters().front().device();
  // Accumulated on the model's device and read back once at the end (no host sync per batch).
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(device);
  auto head = torch::zeros({L, H}, f64), ffn = torch::zeros({L, c.intermediate_size}, f64), tokens = torch::zeros({}, f64);
  for (const auto& b : batches) {
    Sp3Features f;
    auto batch = b.to(device);
    batch.labels = torch::Tensor();  // unlabelled text carries -1: no loss to compute
    model->forward(batch, {}, false, &f);
    // Real tokens only: padding positions carry activations that no output depends on.
    auto real = (batch.attention_mask.defined() ? batch.attention_mask : torch::ones_like(batch.input_ids)).to(torch::kFloat64).unsqueeze(-1);
    tokens += real.sum();
    for (int64_t l = 0; l < L; ++l) {
      auto ctx = f.context[static_cast<size_t>(l)].to(torch::kFloat64).abs() * real;  // [B, T, H*dh]
      head[l] += ctx.sum(std::vector<int64_t>{0, 1}).view({H, dh}).sum(1) / static_cast<double>(dh);
      auto act = f.ffn_act[static_cast<size_t>(l)].to(torch::kFloat64);
      auto per = statistic == "apoz" ? (act > 0).to(torch::kFloat64) : act.abs();
      ffn[l] += (per * real).sum(std::vector<int64_t>{0, 1});
    }
  }
  if (was_training) model->train();
  StructureScores s{cpu64(head / tokens), cpu64(ffn / tokens), {}};
  s.source = fmt::format("activations ({}) over {} tokens of {} batches", statistic == "apoz" ? "1 - APoZ for neurons, mean |context| for heads" : "mean |output|",
                         static_cast<int64_t>(tokens.item<double>()), batches.size());
  return s;
}

namespace {

// |w * dL/dw| per unit once ACCUMULATE has put the sample's mean loss's gradient into the
// weights (eval mode: no dropout); the gradients are cleared and the mode restored afterwards.
// ENABLE: switch gradients on for every parameter (a freshly loaded model); the student keeps
// its frozen compactors as they are.
template <typename Model>
StructureScores taylor_of(Model& model, bool enable, const std::function<void(const torch::Device&)>& accumulate) {
  const bool was_training = model->is_training();
  model->eval();
  for (auto& p : model->parameters()) {
    if (enable) p.set_requires_grad(true);
    if (p.grad().defined()) p.mutable_grad().zero_();
  }
  accumulate(model->parameters().front().device());
  auto s = group_by_unit(model, [](const torch::Tensor& w) {
    SCULPT_CHECK(w.grad().defined(), "Taylor scores: a weight got no gradient (frozen?)");
    return (w * w.grad()).abs();
  });
  for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();
  if (was_training) model->train();
  return s;
}

}  // namespace

StructureScores taylor_scores(Sp3Bert& model, const std::vector<models::Batch>& batches) {
  SCULPT_CHECK(!batches.empty(), "Taylor scores need at least one labelled batch");
  int64_t examples = 0;
  for (const auto& b : batches) {
    SCULPT_CHECK(b.labels.defined(), "Taylor scores need labelled examples");
    examples += b.size();
  }
  auto s = taylor_of(model, false, [&](const torch::Device& device) {
    for (const auto& b : batches)  // the mean loss over the whole sample, whatever the batch sizes
      (model->forward(b.to(device), {}).loss * static_cast<double>(b.size()) / static_cast<double>(examples)).backward();
  });
  s.source = fmt::format("first-order Taylor |w * dL/dw| of the task loss over {} labelled examples", examples);
  return s;
}

StructureScores taylor_mlm_scores(models::Bert& mlm, const std::vector<models::Batch>& masked) {
  SCULPT_CHECK(mlm->config.head == models::HeadType::masked_lm, "Taylor scores on the masked-LM loss need a BertForMaskedLM");
  SCULPT_CHECK(!masked.empty(), "Taylor scores need at least one masked batch");
  int64_t tokens = 0, examples = 0;
  for (const auto& b : masked) {
    SCULPT_CHECK(b.labels.defined() && b.masked_positions.defined(), "Taylor scores on the masked-LM loss need masked batches");
    tokens += b.masked_positions.numel();
    examples += b.size();
  }
  auto s = taylor_of(mlm, true, [&](const torch::Device& device) {
    for (const auto& b : masked)  // the mean loss over every masked token of the sample
      (mlm->forward(b.to(device), {}).loss * static_cast<double>(b.masked_positions.numel()) / static_cast<double>(tokens)).backward();
  });
  s.source = fmt::format("first-order Taylor |w * dL/dw| of the masked-LM loss over {} masked tokens of {} examples", tokens, examples);
  return s;
}

StructureScores taylor_opt_scores(models::Opt& model, const std::vector<models::Batch>& examples) {
  SCULPT_CHECK(!examples.empty(), "Taylor scores need at least one example");
  const bool lm = model->config.head == models::HeadType::causal_lm;
  // The causal LM's loss is a mean over T - 1 predicted tokens; a classifier's over one label.
  auto weight = [&](const models::Batch& b) { return lm ? b.input_ids.numel() - b.input_ids.size(0) : b.size(); };
  int64_t total = 0;
  for (const auto& b : examples) {
    SCULPT_CHECK(lm || b.labels.defined(), "Taylor scores of a classifier need labelled examples");
    total += weight(b);
  }
  SCULPT_CHECK(total > 0, "Taylor scores: no token to predict (one-token examples)");
  auto s = taylor_of(model, true, [&](const torch::Device& device) {
    for (const auto& b : examples) {
      if (weight(b) == 0) continue;
      auto d = b.to(device);
      auto out = model->forward(d.input_ids, d.attention_mask, lm ? d.input_ids : d.labels);
      (out.loss * static_cast<double>(weight(b)) / static_cast<double>(total)).backward();
    }
  });
  s.source = fmt::format("first-order Taylor |w * dL/dw| of the {} over {} {} of {} examples", lm ? "causal-LM loss" : "task loss", total,
                         lm ? "predicted tokens" : "labels", examples.size());
  return s;
}

StructureScores taylor_t5_scores(models::T5& model, const std::vector<models::Batch>& corrupted) {
  SCULPT_CHECK(!corrupted.empty(), "Taylor scores need at least one example");
  int64_t total = 0;
  for (const auto& b : corrupted) {
    SCULPT_CHECK(b.labels.defined() && b.input_ids.size(0) == 1, "Taylor scores of a T5 read single examples with their targets");
    total += b.labels.numel();
  }
  auto s = taylor_of(model, true, [&](const torch::Device& device) {
    for (const auto& b : corrupted) {  // the decoder reads the targets shifted right; the loss is their mean
      auto d = b.to(device);
      auto out = model->forward(d.input_ids, d.attention_mask, {}, {}, d.labels);
      (out.loss * static_cast<double>(b.labels.numel()) / static_cast<double>(total)).backward();
    }
  });
  s.source = fmt::format("first-order Taylor |w * dL/dw| of the sequence-to-sequence loss over {} target tokens of {} examples", total,
                         corrupted.size());
  return s;
}

}  // namespace sculpt::compress
