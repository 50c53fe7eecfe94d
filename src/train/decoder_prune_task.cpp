// Pruning OPT with distillation: SP3 carried to a pre-norm decoder (method.md §7.1, §7.3), as a
// causal LM on local text (data.task clm) or as a GLUE classifier. The student is the teacher
// with its residual stream rotated exactly onto its principal directions (compress/rotate.h: the
// initialised student computes what the teacher computes), masked through the shared layers
// (models/layers.h): one stream mask in that basis, heads, query/key and value dims shared by a
// layer's heads, FFN neurons and whole blocks, as SP3's hard-concrete mask set in its
// shared-stream form. The loss is the KL of the next-token distributions at every position (or of
// the class logits; MSE for a regression head) plus the layer MSE between the student's stream at
// each layer's input and the teacher's rotated into the same basis (SP3's dynamic matching, or
// CoFi's), and the Lagrangian on the expected remaining fraction of the linear maps
// (compress/pack_decoder.h's table, which also counts the packed model exactly). Exports are packed
// OPT directories; the best is chosen by the task's dev metric (perplexity: lowest) within the target.
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <numeric>
#include <random>

#include "sculpt/compress/pack_decoder.h"
#include "sculpt/compress/prune_report.h"
#include "sculpt/compress/rotate.h"
#include "sculpt/core/error.h"
#include "sculpt/core/log.h"
#include "sculpt/io/files.h"
#include "sculpt/models/opt.h"
#include "sculpt/train/clm_data.h"
#include "sculpt/train/labeled_data.h"
#include "sculpt/train/prune_control.h"
#include "sculpt/train/distill_loss.h"
#include "sculpt/train/distributed.h"
#include "sculpt/train/glue_data.h"
#include "sculpt/train/task.h"

namespace fs = std::filesystem;

namespace sculpt::train {
namespace {

struct DecoderPruneModuleImpl : torch::nn::Module {
  DecoderPruneModuleImpl(models::Opt& teacher, const torch::Tensor& Q, const recipe::PruneSection& p, double beta1) {
    student = register_module("student", compress::rotate_opt(teacher, Q));
    // The basis the teacher's states are compared in; kept (not trained) so a resumed run has it.
    rotation = register_parameter("rotation", Q.to(torch::kFloat), /*requires_grad=*/false);
    if (p.freeze_original)
      for (auto& t : student->parameters()) t.set_requires_grad(false);
    else  // as CoFi: the embeddings stay as they are, the maps learn
      for (auto* e : {&student->embed_tokens, &student->embed_positions}) (*e)->weight.set_requires_grad(false);
    compress::MaskSetOptions mo;
    mo.shared_hidden = true;  // one stream, one basis: the stream mask is shared by every writer
    mo.head_dims = true;
    masks = register_module("masks", compress::Sp3MaskSet(teacher->config, mo));
    const double lead = p.controller == "anti_windup" ? 0.5 / (1.0 - beta1) : 0.0;
    lagrangian = register_module("lagrangian", compress::Lagrangian(p.absolute, lead));
  }
  models::Opt student{nullptr};
  torch::Tensor rotation;
  compress::Sp3MaskSet masks{nullptr};
  compress::Lagrangian lagrangian{nullptr};
};
TORCH_MODULE(DecoderPruneModule);

models::Opt load_opt_teacher(const recipe::Recipe& r) {
  const std::string problem = teacher_problem(r);
  SCULPT_CHECK(problem.empty(), "{}", problem);
  auto teacher = models::load_opt(r.model.path);
  const std::string rotation = compress::rotation_problem(teacher->config);
  SCULPT_CHECK(rotation.empty(), "{}: {}", r.model.path, rotation);
  teacher->eval();
  for (auto& p : teacher->parameters()) p.set_requires_grad(false);
  return teacher;
}

class DecoderPruneTask : public Task {
 public:
  DecoderPruneTask(const recipe::Recipe& r, const torch::Device& device, bool restoring)
      : r_(r), p_(r.prune), device_(device), teacher_(load_opt_teacher(r)),
        data_(r.data.is_clm() ? open_clm_data(r, teacher_->config.max_positions)
                              : open_labeled_data(r, /*dev_only=*/false, teacher_->config.max_positions)),
        module_(teacher_, restoring ? torch::eye(teacher_->config.hidden_size, torch::kDouble) : stream_basis(), r.prune,
                r.train.betas[0]) {
    if (restoring) LOG_INFO("[prune] resuming: the rotation comes from the checkpoint");
    for (const auto& p : module_->named_parameters()) keys_.push_back({p.key(), p.key()});
    dense_ = compress::expected_weights(compress::opt_map_table({}, teacher_->config)).item<double>();
    // All kept is exactly 1: a pre-norm stream has no residual maps to add.
    control_ = std::make_unique<PruneControl>(p_, module_->masks, module_->lagrangian, 1.0, /*pruned=*/false,
                                              [this] { return expected_remaining(); });
    teacher_->to(device_);
    module_->to(device_);
  }

  std::string describe() const override {
    return fmt::format("{} pruning of opt on {} to {} remaining", p_.method, r_.data.is_clm() ? "causal LM" : data_->task(), p_.target);
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

  void begin_update(int64_t step, int64_t per_epoch, int64_t total) override { control_->begin_update(step, per_epoch, total); }

  models::Batch collate(const std::vector<size_t>& idx) const override { return data_->collate_train(idx); }

  torch::Tensor loss(const models::Batch& batch) override {
    const auto sp3 = module_->masks->sample_or_eval();
    const auto masks = compress::model_masks(sp3, module_->masks->shape);
    models::ForwardOptions o;
    o.hidden_states = true;
    o.masks = &masks;
    // The task term (distill.task_weight) is the student's own loss (next-token or the labels').
    const auto labels = p_.distill.task_weight == 0 ? torch::Tensor() : r_.data.is_clm() ? batch.input_ids : batch.labels;
    auto s = module_->student->forward(batch.input_ids, batch.attention_mask, labels, o);
    models::OptImpl::Output t;
    {
      torch::NoGradGuard g;
      t = teacher_->forward(batch.input_ids, batch.attention_mask, torch::Tensor(), {true, false});
    }
    const auto student = as_output(s, nullptr);
    auto terms = distill_loss(student, student.hidden_states, as_output(t, &module_->rotation), batch.attention_mask, p_.distill);
    return control_->constrained(terms.loss, terms);
  }
  void before_step() override { control_->before_step(); }
  void after_step() override { control_->after_step(); }
  nlohmann::json log_fields() override { return control_->log_fields(); }
  std::string log_line(const nlohmann::json& f) const override { return control_->log_line(f); }

  std::map<std::string, double> evaluate() override {
    torch::NoGradGuard no_grad;
    module_->eval();
    const auto masks = compress::model_masks(control_->eval_masks(), module_->masks->shape);
    models::ForwardOptions o;
    o.masks = &masks;
    auto all = data_->evaluate([&](const models::Batch& b) { return models::opt_logits(module_->student, b, o); },
                               r_.data.eval_batch_size, device_, &process_group(device_));
    all["expected_remaining"] = expected_remaining().item<double>();
    all["packed_remaining"] = packed_remaining(masks);
    return all;
  }
  bool eligible_for_best(const std::map<std::string, double>& m) const override {
    return control_->within_target(m.at("packed_remaining"));
  }

  void export_to(const std::string& dir) override {
    const bool was_training = module_->is_training();
    module_->eval();
    const auto sp3 = control_->eval_masks();
    const auto masks = compress::model_masks(sp3, module_->masks->shape);
    auto packed = compress::pack_opt(module_->student, masks);
    if (was_training) module_->train();
    packed->to(torch::kCPU);
    models::save_opt(packed, dir);
    copy_tokenizer_files(r_.model.tokenizer, dir);
    const double weights = static_cast<double>(compress::linear_map_weights(*packed));
    nlohmann::json report = {{"packed_remaining", weights / dense_},
                             {"packed_map_weights", weights},
                             {"dense_map_weights", dense_},
                             {"hidden_size", packed->config.hidden_size},
                             {"kept", compress::kept_sizes(sp3)}};
    io::write_file_atomic((fs::path(dir) / "pruning.json").string(), report.dump(2) + "\n");
  }

 private:
  // The teacher's principal directions over pca_examples train blocks (SliceGPT's calibration).
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
  // The logits (a causal LM's per token, [B T, V]: the KL is a mean over tokens) and the streams
  // at the layers' inputs (the last hidden state, after the final norm, is left out: the teacher's
  // has the norm's affine, the student's reads it in the next map). ROTATION: the teacher's states
  // centred and rotated into the student's basis.
  static models::ModelOutput as_output(const models::OptImpl::Output& o, const torch::Tensor* rotation) {
    models::ModelOutput out;
    out.loss = o.loss;
    out.logits = o.logits.dim() == 3 ? o.logits.reshape({-1, o.logits.size(-1)}) : o.logits;
    for (size_t i = 0; i + 1 < o.hidden_states.size(); ++i) {
      const auto& h = o.hidden_states[i];
      out.hidden_states.push_back(rotation ? (h - h.mean(-1, true)).matmul(*rotation) : h);
    }
    return out;
  }
  torch::Tensor expected_remaining() const {
    return (compress::expected_weights(compress::opt_map_table(compress::model_keep(module_->masks->keep_probs()), teacher_->config)) /
            dense_)
        .to(torch::kFloat);
  }
  // The packed model's exact share, from the masks alone (the table at 0/1 masks).
  double packed_remaining(const models::ModelMasks& masks) const {
    return compress::expected_weights(compress::opt_map_table(compress::binary_masks(masks), teacher_->config)).item<double>() / dense_;
  }
  const recipe::Recipe& r_;
  const recipe::PruneSection& p_;
  torch::Device device_;
  models::Opt teacher_;
  std::unique_ptr<LabeledData> data_;
  DecoderPruneModule module_;
  models::KeyMap keys_;
  double dense_ = 0;
  std::unique_ptr<PruneControl> control_;
};

}  // namespace

std::unique_ptr<Task> make_decoder_prune_task(const recipe::Recipe& r, const torch::Device& device, bool restoring) {
  return std::make_unique<DecoderPruneTask>(r, device, restoring);
}

}  // namespace sculpt::train
