#include "sculpt/compress/rotate.h"

#include <torch/torch.h>

#include "sculpt/core/error.h"

namespace sculpt::compress {
namespace {

using torch::Tensor;

Tensor f64(const Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat64); }

void set(Tensor& to, const Tensor& from) {
  SCULPT_CHECK(to.sizes() == from.sizes(), "rotation: shape mismatch {} vs {}", c10::str(to.sizes()), c10::str(from.sizes()));
  to.copy_(from.to(to.scalar_type()));
}

// What a (LayerNorm, reader) pair becomes: W' = W diag(γ) Q, b' = b + W β.
void fold_reader(models::Linear& to, models::Linear& from, const torch::nn::LayerNorm& norm, const Tensor& Q) {
  const auto W = f64(from->weight), gamma = f64(norm->weight), beta = f64(norm->bias);
  set(to->weight, (W * gamma.unsqueeze(0)).matmul(Q));
  const auto b = from->bias.defined() ? f64(from->bias) : torch::zeros({W.size(0)}, torch::kFloat64);
  set(to->bias, b + W.matmul(beta));
}

// A writer of the stream: W' = Qᵀ C W, b' = Qᵀ C b, with C = I - 11ᵀ/D the centring.
void fold_writer(models::Linear& to, models::Linear& from, const Tensor& QtC) {
  set(to->weight, QtC.matmul(f64(from->weight)));
  if (from->bias.defined()) set(to->bias, QtC.matmul(f64(from->bias)));
}

// An orthogonal [D, D] Q in fp64, checked.
Tensor checked_rotation(const Tensor& Q, int64_t D) {
  SCULPT_CHECK(Q.dim() == 2 && Q.size(0) == D && Q.size(1) == D, "rotation: Q must be [{0}, {0}]", D);
  const auto Qd = f64(Q);
  SCULPT_CHECK(torch::allclose(Qd.t().matmul(Qd), torch::eye(D, torch::kFloat64), 0, 1e-6), "rotation: Q is not orthogonal");
  return Qd;
}

// T5's (RMS norm weight, reader): W' = W diag(γ) Q.
void fold_rms_reader(models::Linear& to, const models::Linear& from, const Tensor& gamma, const Tensor& Q) {
  set(to->weight, (f64(from->weight) * gamma.unsqueeze(0)).matmul(Q));
}

// The eigenvectors of a covariance, largest eigenvalue first (eigh sorts ascending).
Tensor descending_eigenvectors(const Tensor& cov) { return std::get<1>(torch::linalg_eigh(cov)).flip({1}).contiguous(); }

}  // namespace

std::string rotation_problem(const models::TransformerConfig& c) {
  if (c.model_type != "opt" && c.model_type != "t5") return fmt::format("rotation is implemented for OPT and T5 (got {})", c.model_type);
  if (c.rotated_norm_width > 0) return "the model is already rotated";
  if (c.model_type == "t5") return {};  // RMS norms without a mean, v1.0 and v1.1 alike
  if (!c.pre_norm || !c.final_norm)
    return "post-LayerNorm OPT (do_layer_norm_before false, as opt-350m) normalises the residual stream itself: no orthogonal "
           "map commutes with its LayerNorms, so it cannot be rotated exactly";
  if (!c.bias) return "OPT without linear biases (enable_bias false) has nowhere to put the LayerNorms' beta";
  return {};
}

models::Opt rotate_opt(models::Opt& model, const Tensor& Q_full, int64_t keep) {
  torch::NoGradGuard no_grad;
  const auto& c = model->config;
  const std::string problem = rotation_problem(c);
  SCULPT_CHECK(problem.empty(), "{}", problem);
  const int64_t D = c.hidden_size;
  if (keep <= 0) keep = D;
  const auto Qd = checked_rotation(Q_full, D);
  SCULPT_CHECK(keep <= D, "rotation: cannot keep {} of {} dims", keep, D);
  const bool projected = static_cast<bool>(model->project_in);
  SCULPT_CHECK(!projected || keep != c.word_embed_proj_dim,
               "slicing to {} dims, the width of the embedding projection, is not supported (choose another width)", keep);
  const auto Q = Qd.narrow(1, 0, keep);                                                            // [D, keep]
  const auto C = torch::eye(D, torch::kFloat64) - torch::full({D, D}, 1.0 / static_cast<double>(D), torch::kFloat64);
  const auto QtC = Q.t().matmul(C);                                                                // [keep, D]

  models::TransformerConfig rc = c;
  rc.hidden_size = keep;
  rc.d_kv = c.head_dim();
  rc.word_embed_proj_dim = projected ? c.word_embed_proj_dim : keep;
  rc.rotated_norm_width = D;
  rc.tie_word_embeddings = projected;  // without projections the head gets its own folded matrix
  models::Opt out(rc);
  out->eval();

  // Writers: the token rows (or project_in) and the position rows, centred and rotated.
  if (projected) {
    set(out->embed_tokens->weight, f64(model->embed_tokens->weight));
    fold_writer(out->project_in, model->project_in, QtC);
  } else {
    set(out->embed_tokens->weight, f64(model->embed_tokens->weight).matmul(QtC.t()));
  }
  set(out->embed_positions->weight, f64(model->embed_positions->weight).matmul(QtC.t()));
  for (size_t l = 0; l < model->layers->size(); ++l) {
    auto* from = model->layers[l]->as<models::TransformerLayer>();
    auto* to = out->layers[l]->as<models::TransformerLayer>();
    fold_reader(to->attn->q, from->attn->q, from->attn_norm, Q);
    fold_reader(to->attn->k, from->attn->k, from->attn_norm, Q);
    fold_reader(to->attn->v, from->attn->v, from->attn_norm, Q);
    fold_writer(to->attn->o, from->attn->o, QtC);
    fold_reader(to->ffn->fc1, from->ffn->fc1, from->ffn_norm, Q);
    if (from->ffn->gate) fold_reader(to->ffn->gate, from->ffn->gate, from->ffn_norm, Q);
    fold_writer(to->ffn->fc2, from->ffn->fc2, QtC);
  }
  // The final norm's affine goes into its first reader, which gains a bias.
  const auto& fn = model->final_norm;
  if (projected) {
    fold_reader(out->project_out, model->project_out, fn, Q);
    if (model->score) set(out->score->weight, f64(model->score->weight));
  } else if (model->score) {
    fold_reader(out->score, model->score, fn, Q);
  } else {
    models::Linear tied(D, c.vocab_size, false);
    tied->weight.set_data(model->embed_tokens->weight.detach());
    fold_reader(out->lm_head, tied, fn, Q);
  }
  return out;
}

models::T5 rotate_t5(models::T5& model, const Tensor& Q_full, int64_t keep) {
  torch::NoGradGuard no_grad;
  const auto& c = model->config;
  SCULPT_CHECK(c.rotated_norm_width == 0, "rotation: the model is already rotated");
  const int64_t D = c.hidden_size;
  if (keep <= 0) keep = D;
  SCULPT_CHECK(keep <= D, "rotation: cannot keep {} of {} dims", keep, D);
  const auto Q = checked_rotation(Q_full, D).narrow(1, 0, keep), Qt = Q.t();
  models::TransformerConfig rc = c;
  rc.hidden_size = keep;
  rc.rotated_norm_width = keep < D ? D : 0;
  rc.tie_word_embeddings = false;
  rc.scale_decoder_outputs = false;
  models::T5 out(rc);
  out->eval();
  set(out->shared->weight, f64(model->shared->weight).matmul(Q));
  auto writer = [&](models::Linear& to, const models::Linear& from) { set(to->weight, Qt.matmul(f64(from->weight))); };
  auto unit = [](models::RMSNorm& n) { n->weight.fill_(1.0); };
  const auto encoder_out = f64(model->encoder->final_norm->weight);
  for (const bool dec : {false, true}) {
    auto& from_stack = dec ? model->decoder : model->encoder;
    auto& to_stack = dec ? out->decoder : out->encoder;
    set(to_stack->rel_bias->weight, f64(from_stack->rel_bias->weight));
    for (size_t i = 0; i < from_stack->blocks->size(); ++i) {
      auto* f = from_stack->blocks[i]->as<models::T5Block>();
      auto* t = to_stack->blocks[i]->as<models::T5Block>();
      const auto g_self = f64(f->self_norm->weight), g_ffn = f64(f->ffn_norm->weight);
      for (auto [to, from] : {std::pair{t->self_attn->q, f->self_attn->q}, {t->self_attn->k, f->self_attn->k}, {t->self_attn->v, f->self_attn->v}})
        fold_rms_reader(to, from, g_self, Q);
      writer(t->self_attn->o, f->self_attn->o);
      if (f->cross_attn) {
        fold_rms_reader(t->cross_attn->q, f->cross_attn->q, f64(f->cross_norm->weight), Q);
        // Keys and values read the encoder's output: its final norm's weight folds in here.
        fold_rms_reader(t->cross_attn->k, f->cross_attn->k, encoder_out, Q);
        fold_rms_reader(t->cross_attn->v, f->cross_attn->v, encoder_out, Q);
        writer(t->cross_attn->o, f->cross_attn->o);
        unit(t->cross_norm);
      }
      fold_rms_reader(t->ffn->fc1, f->ffn->fc1, g_ffn, Q);
      if (f->ffn->gate) fold_rms_reader(t->ffn->gate, f->ffn->gate, g_ffn, Q);
      writer(t->ffn->fc2, f->ffn->fc2);
      unit(t->self_norm), unit(t->ffn_norm);
    }
    unit(to_stack->final_norm);
  }
  // The head: (scale) x W diag(γ_decoder) Q, W the tied embedding or v1.1's own lm_head.
  const double scale = c.scale_decoder_outputs ? std::pow(static_cast<double>(D), -0.5) : 1.0;
  const auto W = c.tie_word_embeddings ? f64(model->shared->weight) : f64(model->lm_head->weight);
  set(out->lm_head->weight, scale * (W * f64(model->decoder->final_norm->weight).unsqueeze(0)).matmul(Q));
  return out;
}

Tensor stream_pca(models::T5& model, const std::vector<models::Batch>& batches) {
  torch::NoGradGuard no_grad;
  const int64_t D = model->config.hidden_size;
  const bool was_training = model->is_training();
  model->eval();
  auto cov = torch::zeros({D, D}, torch::kFloat64);
  for (const auto& b : batches) {
    auto mask = b.attention_mask.defined() ? b.attention_mask : torch::ones_like(b.input_ids);
    auto out = model->forward(b.input_ids, mask, model->shift_right(b.input_ids), mask, torch::Tensor(), {true, false});
    const auto keep = mask.reshape(-1).nonzero().view(-1);
    // Every block's input of both stacks (the last entry of each is the final norm's output).
    for (const auto* states : {&out.encoder_hidden_states, &out.decoder_hidden_states})
      for (size_t l = 0; l + 1 < states->size(); ++l) {
        auto x = f64((*states)[l]).reshape({-1, D}).index_select(0, keep);
        cov += x.t().matmul(x);
      }
  }
  if (was_training) model->train();
  return descending_eigenvectors(cov);
}

Tensor stream_pca(models::Opt& model, const std::vector<models::Batch>& batches) {
  torch::NoGradGuard no_grad;
  const int64_t D = model->config.hidden_size;
  const bool was_training = model->is_training();
  model->eval();
  auto cov = torch::zeros({D, D}, torch::kFloat64);
  const auto C = torch::eye(D, torch::kFloat64) - torch::full({D, D}, 1.0 / static_cast<double>(D), torch::kFloat64);
  for (const auto& b : batches) {
    auto out = model->forward(b.input_ids, b.attention_mask, torch::Tensor(), {true, false});
    const auto keep = (b.attention_mask.defined() ? b.attention_mask : torch::ones_like(b.input_ids)).reshape(-1).nonzero().view(-1);
    for (int64_t l = 0; l < model->config.num_layers; ++l) {  // hidden_states[l]: block l's input
      auto x = f64(out.hidden_states[static_cast<size_t>(l)]).reshape({-1, D}).index_select(0, keep).matmul(C);
      cov += x.t().matmul(x);
    }
  }
  if (was_training) model->train();
  return descending_eigenvectors(cov);
}

}  // namespace sculpt::compress
