// Pruning a pre-norm OPT or T5 with distillation: SP3 carried to a pre-norm stream (method.md
// §7.1, §7.3). OPT as a causal LM on local text (data.task clm) or as a GLUE classifier; T5 on
// GLUE as text-to-text. The student is the teacher with its residual stream rotated exactly onto
// its principal directions (compress/rotate.h: the initialised student computes what the teacher
// computes; T5's one Q rotates both streams), masked through the shared layers (models/layers.h):
// one stream mask in that basis (prune.stream_masks per_site: one per residual site),
// heads, query/key and value dims shared by a block's heads, FFN neurons and whole blocks, as
// SP3's hard-concrete mask set in its shared-stream form (T5: over the encoder's blocks, then the
// decoder's, whose cross-attention has the same head, head-dim and block masks). The loss is the KL of
// the output distributions (OPT: next token at every position, or the class logits; T5: every
// target token) plus the layer MSE between the student's stream at each block's input and the
// teacher's rotated into the same basis (SP3's dynamic matching, or CoFi's; T5: per stream), and
// the Lagrangian on the expected remaining fraction of the linear maps (compress/pack_decoder.h's
// table, which also counts the packed model exactly). prune.method cofi: CoFi's mask set on the
// same rotated stream (whole heads, no head dims; FFN masks from intermediate_log_alpha), its
// target the pruned share of the same maps; layer_map cofi matches its teacher layers among the
// block inputs (the stream before each block: the last block's output is the final norm's input
// and is left out, as for SP3's matching). Exports are packed directories; the best is
// chosen by the task's dev metric (perplexity: lowest) within the target.
//
// One task for both families: each differs in the small, named places of its Family below.
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <numeric>
#include <random>

#include "sculpt/compress/distill.h"
#include "sculpt/compress/pack_decoder.h"
#include "sculpt/compress/prune_report.h"
#include "sculpt/compress/rotate.h"
#include "sculpt/core/error.h"
#include "sculpt/core/log.h"
#include "sculpt/io/files.h"
#include "sculpt/models/opt.h"
#include "sculpt/models/t5.h"
#include "sculpt/train/clm_data.h"
#include "sculpt/train/distill_loss.h"
#include "sculpt/train/distributed.h"
#include "sculpt/train/glue_data.h"
#include "sculpt/train/labeled_data.h"
#include "sculpt/train/controlled_prune_task.h"
#include "sculpt/train/t5_glue_data.h"
#include "sculpt/train/task.h"

namespace fs = std::filesystem;

namespace sculpt::train {
namespace {

// The teacher's states at the blocks' inputs (the last state, after the final norm, is left out:
// the teacher's has the norm's weight, the student's reads it folded into the next map), rotated
// into the student's basis: centred first where the rotation made the norms RMS norms (OPT).
std::vector<torch::Tensor> block_inputs(const std::vector<torch::Tensor>& states, const torch::Tensor* rotation, bool centre) {
  std::vector<torch::Tensor> out;
  for (size_t i = 0; i + 1 < states.size(); ++i) {
    const auto& h = states[i];
    out.push_back(!rotation ? h : (centre ? h - h.mean(-1, true) : h).matmul(*rotation));
  }
  return out;
}

struct OptFamily {
  using Model = models::Opt;
  using Data = LabeledData;
  static constexpr const char* kName = "opt";
  static Model load(const std::string& dir) { return models::load_opt(dir); }
  static std::unique_ptr<Data> open_data(const recipe::Recipe& r, Model& teacher) {
    return r.data.is_clm() ? open_clm_data(r, teacher->config.max_positions)
                           : open_labeled_data(r, /*dev_only=*/false, teacher->config.max_positions);
  }
  static std::string task_name(const recipe::Recipe& r, const Data& d) { return r.data.is_clm() ? "causal LM" : d.task(); }
  static Model rotate(Model& teacher, const torch::Tensor& Q) { return compress::rotate_opt(teacher, Q); }
  static std::vector<torch::Tensor> embeddings(Model& m) { return {m->embed_tokens->weight, m->embed_positions->weight}; }
  static models::TransformerConfig block_config(const models::TransformerConfig& c) { return c; }
  static std::vector<compress::MaskedMap> map_table(const models::ModelMasks& keep, const models::TransformerConfig& c) {
    return compress::opt_map_table(keep, c);
  }
  static DistillTerms distill(Model& student, Model& teacher, const models::Batch& batch, const models::ModelMasks& masks,
                              const torch::Tensor& rotation, const recipe::Recipe& r) {
    models::ForwardOptions o;
    o.hidden_states = true;
    o.masks = &masks;
    // The task term (distill.task_weight) is the student's own loss (next-token or the labels').
    const auto& d = r.prune.distill;
    const auto labels = d.task_weight == 0 ? torch::Tensor() : r.data.is_clm() ? batch.input_ids : batch.labels;
    auto s = student->forward(batch.input_ids, batch.attention_mask, labels, o);
    models::OptImpl::Output t;
    {
      torch::NoGradGuard g;
      t = teacher->forward(batch.input_ids, batch.attention_mask, torch::Tensor(), {true, false});
    }
    // A causal LM's logits per token, [B T, V]: the KL is a mean over tokens.
    auto flat = [](const torch::Tensor& l) { return l.dim() == 3 ? l.reshape({-1, l.size(-1)}) : l; };
    models::ModelOutput so, to;
    so.loss = s.loss, so.logits = flat(s.logits), so.hidden_states = block_inputs(s.hidden_states, nullptr, false);
    to.logits = flat(t.logits), to.hidden_states = block_inputs(t.hidden_states, &rotation, /*centre=*/true);
    return distill_loss(so, so.hidden_states, to, batch.attention_mask, d);
  }
  static std::map<std::string, double> evaluate(const Data& data, Model& student, const models::ModelMasks& masks,
                                                const recipe::Recipe& r, const torch::Device& device) {
    models::ForwardOptions o;
    o.masks = &masks;
    return data.evaluate([&](const models::Batch& b) { return models::opt_logits(student, b, o); }, r.data.eval_batch_size, device,
                         &process_group(device));
  }
  static Model pack(Model& m, const models::ModelMasks& masks) { return compress::pack_opt(m, masks); }
  static void save(Model& m, const std::string& dir) { models::save_opt(m, dir); }
};

struct T5Family {
  using Model = models::T5;
  using Data = T5GlueData;
  static constexpr const char* kName = "t5";
  static Model load(const std::string& dir) { return models::load_t5(dir); }
  static std::unique_ptr<Data> open_data(const recipe::Recipe& r, Model& teacher) {
    return std::make_unique<T5GlueData>(r, teacher->config.pad_token_id);
  }
  static std::string task_name(const recipe::Recipe&, const Data& d) { return d.task().name + " as text-to-text"; }
  static Model rotate(Model& teacher, const torch::Tensor& Q) { return compress::rotate_t5(teacher, Q); }
  static std::vector<torch::Tensor> embeddings(Model& m) { return {m->shared->weight}; }
  // The masks' blocks: the encoder's, then the decoder's, of one shape.
  static models::TransformerConfig block_config(models::TransformerConfig c) {
    c.num_layers += c.num_decoder_layers;
    return c;
  }
  static std::vector<compress::MaskedMap> map_table(const models::ModelMasks& keep, const models::TransformerConfig& c) {
    return compress::t5_map_table(keep, c);
  }
  // KL of every target token's distribution; the layer loss of each stream over its own tokens
  // (the encoder's inputs, the decoder's targets shifted right), summed.
  static DistillTerms distill(Model& student, Model& teacher, const models::Batch& batch, const models::ModelMasks& masks,
                              const torch::Tensor& rotation, const recipe::Recipe& r) {
    const auto& d = r.prune.distill;
    models::ForwardOptions o;
    o.hidden_states = d.layer_weight > 0;
    o.masks = &masks;
    auto s = student->forward(batch.input_ids, batch.attention_mask, {}, batch.decoder_attention_mask, batch.labels, o);
    models::T5Impl::Output t;
    {
      torch::NoGradGuard g;
      t = teacher->forward(batch.input_ids, batch.attention_mask, {}, batch.decoder_attention_mask, batch.labels, {d.layer_weight > 0, false});
    }
    DistillTerms terms;
    auto pred = compress::masked_logits_kl(s.logits, t.logits, batch.decoder_attention_mask, d.temperature, d.t_squared);
    auto loss = d.pred_weight * pred;
    if (d.layer_weight > 0) {
      auto stream = [&](const std::vector<torch::Tensor>& sh, const std::vector<torch::Tensor>& th, const torch::Tensor& mask) {
        const auto a = block_inputs(sh, nullptr, false), b = block_inputs(th, &rotation, /*centre=*/false);
        return d.layer_map == "cofi" ? compress::cofi_layer_distill(a, b, mask) : compress::layer_distill(a, b, mask);
      };
      const auto enc = stream(s.encoder_hidden_states, t.encoder_hidden_states, batch.attention_mask);
      const auto dec = stream(s.decoder_hidden_states, t.decoder_hidden_states, batch.decoder_attention_mask);
      loss = loss + d.layer_weight * (enc.loss + dec.loss);
      terms.layer = (enc.loss + dec.loss).detach();
      terms.match = torch::cat({enc.match, dec.match});
    }
    if (d.task_weight > 0) loss = loss + d.task_weight * s.loss;
    terms.loss = loss;
    terms.pred = pred.detach();
    return terms;
  }
  static std::map<std::string, double> evaluate(const Data& data, Model& student, const models::ModelMasks& masks,
                                                const recipe::Recipe& r, const torch::Device& device) {
    models::ForwardOptions o;
    o.masks = &masks;
    return data.evaluate(
        [&](const torch::Tensor& ids, const torch::Tensor& mask) { return student->generate(ids, mask, T5GlueData::kMaxNewTokens, &masks).first; },
        [&](const models::Batch& b) { return student->forward(b.input_ids, b.attention_mask, {}, b.decoder_attention_mask, b.labels, o).logits; },
        r.data.eval_batch_size, device);
  }
  static Model pack(Model& m, const models::ModelMasks& masks) { return compress::pack_t5(m, masks); }
  static void save(Model& m, const std::string& dir) { models::save_t5(m, dir); }
};

template <class F>
struct DecoderPruneModule : torch::nn::Module {
  DecoderPruneModule(typename F::Model& teacher, const torch::Tensor& Q, const recipe::PruneSection& p, double beta1) {
    student = register_module("student", F::rotate(teacher, Q));
    // The basis the teacher's states are compared in; kept (not trained) so a resumed run has it.
    rotation = register_parameter("rotation", Q.to(torch::kFloat), /*requires_grad=*/false);
    if (p.freeze_original)
      for (auto& t : student->parameters()) t.set_requires_grad(false);
    else  // as CoFi: the embeddings stay as they are, the maps learn
      for (auto& e : F::embeddings(student)) e.set_requires_grad(false);
    const bool cofi = p.method == "cofi";
    compress::MaskSetOptions mo;
    // One stream, one basis: one stream mask shared by every writer, or (per_site) one per site.
    mo.shared_hidden = p.stream_masks != "per_site";
    mo.head_dims = !cofi;     // CoFi: whole heads, no head dims
    if (cofi) mo.ffn_init_mean = p.intermediate_log_alpha;
    mo.cross_layers = teacher->config.num_decoder_layers;  // T5's decoder blocks (OPT: 0)
    masks = register_module("masks", compress::Sp3MaskSet(F::block_config(teacher->config), mo));
    const double lead = p.controller == "anti_windup" ? 0.5 / (1.0 - beta1) : 0.0;
    lagrangian = register_module("lagrangian", compress::Lagrangian(p.absolute, lead));
  }
  typename F::Model student{nullptr};
  torch::Tensor rotation;
  compress::Sp3MaskSet masks{nullptr};
  compress::Lagrangian lagrangian{nullptr};
};

template <class F>
typename F::Model load_teacher(const recipe::Recipe& r) {
  const std::string problem = teacher_problem(r);
  SCULPT_CHECK(problem.empty(), "{}", problem);
  auto teacher = F::load(r.model.path);
  const std::string rotation = compress::rotation_problem(teacher->config);
  SCULPT_CHECK(rotation.empty(), "{}: {}", r.model.path, rotation);
  teacher->eval();
  for (auto& p : teacher->parameters()) p.set_requires_grad(false);
  return teacher;
}

template <class F>
class DecoderPruneTask : public ControlledPruneTask {
 public:
  DecoderPruneTask(const recipe::Recipe& r, const torch::Device& device, bool restoring)
      : r_(r), p_(r.prune), cofi_(r.prune.method == "cofi"), device_(device), teacher_(load_teacher<F>(r)), data_(F::open_data(r, teacher_)) {
    const auto Q = restoring ? torch::eye(teacher_->config.hidden_size, torch::kDouble) : stream_basis();
    if (restoring) LOG_INFO("[prune] resuming: the rotation comes from the checkpoint");
    module_ = std::make_shared<DecoderPruneModule<F>>(teacher_, Q, r.prune, r.train.betas[0]);
    for (const auto& p : module_->named_parameters()) keys_.push_back({p.key(), p.key()});
    dense_ = compress::expected_weights(F::map_table({}, teacher_->config)).template item<double>();
    // All kept is exactly 1 (a pre-norm stream has no residual maps to add); CoFi's size is the
    // pruned share of the same maps, from 0.
    control_ = std::make_unique<PruneControl>(p_, module_->masks, module_->lagrangian, cofi_ ? 0.0 : 1.0, /*pruned=*/cofi_, [this] {
      return cofi_ ? 1 - expected_remaining() : expected_remaining();
    });
    teacher_->to(device_);
    module_->to(device_);
  }

  std::string describe() const override {
    return fmt::format("{} pruning of {} on {} to {} {}", p_.method, F::kName, F::task_name(r_, *data_), p_.target,
                       cofi_ ? "pruned" : "remaining");
  }
  torch::nn::Module& model() override { return *module_; }
  const models::KeyMap& keys() const override { return keys_; }
  const std::vector<int64_t>& train_lengths() const override { return data_->train_lengths(); }
  std::string main_metric() const override { return data_->main_metric(r_); }
  bool higher_is_better() const override { return main_metric() != "perplexity" && main_metric() != "loss"; }

  OptimizerSetup make_optimizer(const AdamWSettings& s) override {
    std::vector<std::pair<std::string, torch::Tensor>> named;
    for (const auto& p : module_->student->named_parameters()) named.emplace_back("student." + p.key(), p.value());
    return train::make_optimizer(named, s, control_->optimizer_groups());
  }
  std::vector<torch::Tensor> clipped_parameters() override {
    std::vector<torch::Tensor> out;
    for (const auto& p : module_->student->parameters())
      if (p.requires_grad()) out.push_back(p);
    return out;
  }

  models::Batch collate(const std::vector<size_t>& idx) const override { return data_->collate_train(idx); }

  torch::Tensor loss(const models::Batch& batch) override {
    const auto masks = compress::model_masks(module_->masks->sample_or_eval(), module_->masks->shape, per_site());
    auto terms = F::distill(module_->student, teacher_, batch, masks, module_->rotation, r_);
    return control_->constrained(terms.loss, terms);
  }

  std::map<std::string, double> evaluate() override {
    torch::NoGradGuard no_grad;
    module_->eval();
    const auto masks = compress::model_masks(control_->eval_masks(), module_->masks->shape, per_site());
    auto all = F::evaluate(*data_, module_->student, masks, r_, device_);
    all["expected_remaining"] = expected_remaining().template item<double>();
    all["packed_remaining"] = packed_remaining(masks);
    if (cofi_) all["expected_sparsity"] = 1 - all["expected_remaining"], all["packed_sparsity"] = 1 - all["packed_remaining"];
    return all;
  }
  bool eligible_for_best(const std::map<std::string, double>& m) const override {
    return control_->within_target(m.at(cofi_ ? "packed_sparsity" : "packed_remaining"));
  }

  void export_to(const std::string& dir) override {
    const bool was_training = module_->is_training();
    module_->eval();
    const auto sp3 = control_->eval_masks();
    const auto masks = compress::model_masks(sp3, module_->masks->shape, per_site());
    auto packed = F::pack(module_->student, masks);
    if (was_training) module_->train();
    packed->to(torch::kCPU);
    F::save(packed, dir);
    copy_tokenizer_files(r_.model.tokenizer, dir);
    const double weights = static_cast<double>(compress::linear_map_weights(*packed));
    nlohmann::json report = {{"packed_remaining", weights / dense_},
                             {"packed_sparsity", 1 - weights / dense_},
                             {"packed_map_weights", weights},
                             {"dense_map_weights", dense_},
                             {"hidden_size", packed->config.hidden_size},
                             {"stream_masks", p_.stream_masks},
                             {"kept", compress::kept_sizes(sp3)}};
    io::write_file_atomic((fs::path(dir) / "pruning.json").string(), report.dump(2) + "\n");
  }

 private:
  // The teacher's principal directions over pca_examples train examples (SliceGPT's calibration).
  torch::Tensor stream_basis() {
    std::vector<size_t> order(data_->train_size());
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 rng(static_cast<uint64_t>(r_.run.seed));
    std::shuffle(order.begin(), order.end(), rng);
    order.resize(std::min(order.size(), static_cast<size_t>(p_.pca_examples)));
    std::vector<models::Batch> batches;
    for (size_t begin = 0; begin < order.size(); begin += 8) {
      const auto first = order.begin() + static_cast<std::ptrdiff_t>(begin);
      batches.push_back(data_->collate_train(std::vector<size_t>(first, first + static_cast<std::ptrdiff_t>(std::min<size_t>(8, order.size() - begin)))));
    }
    auto t0 = std::chrono::steady_clock::now();
    auto Q = compress::stream_pca(teacher_, batches);
    LOG_INFO("[prune] stream rotation from {} train examples in {:.1f}s: the student starts equal to the teacher", order.size(),
             std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return Q;
  }
  // The mask set's own say: a hidden mask per site, or one shared (prune.stream_masks).
  bool per_site() const { return !module_->masks->options.shared_hidden; }
  torch::Tensor expected_remaining() const {
    return (compress::expected_weights(F::map_table(compress::model_keep(module_->masks->keep_probs(), per_site()), teacher_->config)) / dense_)
        .to(torch::kFloat);
  }
  // The packed model's exact share, from the masks alone (the table at 0/1 masks).
  double packed_remaining(const models::ModelMasks& masks) const {
    return compress::expected_weights(F::map_table(compress::binary_masks(masks), teacher_->config)).template item<double>() / dense_;
  }
  const recipe::Recipe& r_;
  const recipe::PruneSection& p_;
  bool cofi_;
  torch::Device device_;
  typename F::Model teacher_;
  std::unique_ptr<typename F::Data> data_;
  std::shared_ptr<DecoderPruneModule<F>> module_;
  models::KeyMap keys_;
  double dense_ = 0;
};

}  // namespace

std::unique_ptr<Task> make_decoder_prune_task(const recipe::Recipe& r, const torch::Device& device, bool restoring) {
  if (r.model.family == "t5") return std::make_unique<DecoderPruneTask<T5Family>>(r, device, restoring);
  return std::make_unique<DecoderPruneTask<OptFamily>>(r, device, restoring);
}

}  // namespace sculpt::train
