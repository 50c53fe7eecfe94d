// Pruning as a Task of the one training loop (method.md §3.4–3.8, §5), on a GLUE task or SQuAD: a
// frozen fine-tuned teacher, the SP3 (or CoFi-mode) student with its hard-concrete masks, the Lagrangian and
// the distillation projection. Everything that depends on the update number (mask groups
// switched on, the target ramp) is recomputed from it, so a resumed run continues exactly.
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <random>

#include "sculpt/compress/distill.h"
#include "sculpt/compress/lagrangian.h"
#include "sculpt/compress/pack.h"
#include "sculpt/compress/pca.h"
#include "sculpt/core/error.h"
#include "sculpt/core/log.h"
#include "sculpt/io/files.h"
#include "sculpt/io/safetensors.h"
#include "sculpt/metrics/glue_metrics.h"
#include "sculpt/models/bert.h"
#include "sculpt/models/opt.h"
#include "sculpt/models/t5.h"
#include "sculpt/models/packed_bert.h"
#include "sculpt/io/hf_dir.h"
#include "sculpt/train/glue_data.h"
#include "sculpt/train/labeled_data.h"
#include "sculpt/compress/prune_report.h"
#include "sculpt/train/distill_loss.h"
#include "sculpt/train/distributed.h"
#include "sculpt/train/controlled_prune_task.h"
#include "sculpt/train/task.h"

namespace fs = std::filesystem;

namespace sculpt::train {
namespace {

struct PruneModuleImpl : torch::nn::Module {
  PruneModuleImpl(models::Bert& teacher, const recipe::PruneSection& p, double beta1) {
    const bool cofi = p.method == "cofi";
    student = register_module("student", compress::Sp3Bert(teacher, compress::StudentOptions{p.freeze_original, !cofi, p.skip_empty_block_norm}));
    compress::MaskSetOptions mo;
    mo.shared_hidden = cofi;
    mo.head_dims = !cofi;
    if (cofi) mo.ffn_init_mean = p.intermediate_log_alpha;
    masks = register_module("masks", compress::Sp3MaskSet(teacher->config, mo));
    // Half of Adam's momentum horizon 1 / (1 - beta1) (lagrangian.h).
    const double lead = p.controller == "anti_windup" ? 0.5 / (1.0 - beta1) : 0.0;
    lagrangian = register_module("lagrangian", compress::Lagrangian(p.absolute, lead));
    const int64_t D = teacher->config.hidden_size;
    projection = register_module("projection", models::Linear(D, D, cofi));
    torch::NoGradGuard g;
    projection->weight.copy_(torch::eye(D));
    if (cofi) projection->bias.zero_();
  }
  compress::Sp3Bert student{nullptr};
  compress::Sp3MaskSet masks{nullptr};
  compress::Lagrangian lagrangian{nullptr};
  models::Linear projection{nullptr};
};
TORCH_MODULE(PruneModule);

models::Bert load_teacher(const recipe::Recipe& r) {
  const std::string problem = teacher_problem(r);
  SCULPT_CHECK(problem.empty(), "{}", problem);
  auto teacher = models::load_bert(r.model.path, /*strict=*/true).model;
  teacher->eval();
  for (auto& p : teacher->parameters()) p.set_requires_grad(false);
  return teacher;
}

class PruneTask : public ControlledPruneTask {
 public:
  PruneTask(const recipe::Recipe& r, const torch::Device& device, bool restoring)
      : r_(r), p_(r.prune), cofi_(r.prune.method == "cofi"), device_(device), teacher_(load_teacher(r)),
        data_(open_labeled_data(r, /*dev_only=*/false, teacher_->config.max_positions)), module_(teacher_, r.prune, r.train.betas[0]) {
    if (!cofi_ && !restoring) init_from_pca();
    if (!cofi_ && restoring) {
      // The checkpoint holds every compactor; only the norm kind the init chose is structural.
      if (p_.init == "exact")
        for (auto& s : *module_->student->sites) s->as<compress::LnSite>()->rms = true;
      LOG_INFO("[prune] resuming: PCA init skipped, the checkpoint holds the compactors");
    }
    const auto& s = module_->masks->shape;
    const double D = static_cast<double>(s.hidden), F = static_cast<double>(s.ffn);
    // All kept: nothing pruned (CoFi), or SP3's 14/12 for BERT-base (the residual maps count).
    const double all_kept = cofi_ ? 0.0 : (6 * D * D + 2 * D * F) / (4 * D * D + 2 * D * F);
    control_ = std::make_unique<PruneControl>(p_, module_->masks, module_->lagrangian, all_kept, cofi_,
                                              [this] { return expected_sparsity(); });
    for (const auto& p : module_->named_parameters()) keys_.push_back({p.key(), p.key()});
    teacher_->to(device_);
    module_->to(device_);
  }

  std::string describe() const override {
    return fmt::format("{} pruning of bert on {} to {} {}", p_.method, data_->task(), p_.target, cofi_ ? "pruned" : "remaining");
  }
  torch::nn::Module& model() override { return *module_; }
  const models::KeyMap& keys() const override { return keys_; }
  const std::vector<int64_t>& train_lengths() const override { return data_->train_lengths(); }
  std::string main_metric() const override { return data_->main_metric(r_); }

  OptimizerSetup make_optimizer(const AdamWSettings& s) override {
    std::vector<std::pair<std::string, torch::Tensor>> named;
    for (const auto& p : module_->student->named_parameters()) named.emplace_back("student." + p.key(), p.value());
    for (const auto& p : module_->projection->named_parameters()) named.emplace_back("projection." + p.key(), p.value());
    return train::make_optimizer(named, s, control_->optimizer_groups());
  }
  std::vector<torch::Tensor> clipped_parameters() override {
    std::vector<torch::Tensor> out;
    for (auto* m : std::initializer_list<torch::nn::Module*>{module_->student.get(), module_->projection.get()})
      for (const auto& p : m->parameters())
        if (p.requires_grad()) out.push_back(p);
    return out;
  }

  models::Batch collate(const std::vector<size_t>& idx) const override {
    return data_->collate_train(idx);
  }
  torch::Tensor loss(const models::Batch& batch) override {
    const auto t = teacher_outputs(teacher_, batch);
    auto masks = module_->masks->sample_or_eval();
    auto s = module_->student->forward(batch, masks, true);
    std::vector<torch::Tensor> projected;
    for (const auto& h : s.hidden_states) projected.push_back(module_->projection(h));
    // CoFi's layer-existence filter reads this step's sampled block masks.
    const torch::Tensor exists = p_.layer_filter == "mha" ? masks.mha : p_.layer_filter == "ffn" ? masks.ffn_layer : torch::Tensor();
    auto terms = distill_loss(s, projected, t, batch.attention_mask, p_.distill, exists);
    return control_->constrained(terms.loss, terms);
  }

  std::map<std::string, double> evaluate() override {
    torch::NoGradGuard no_grad;
    module_->eval();
    auto masks = module_->masks->sample_or_eval();
    auto all = data_->evaluate([&](const models::Batch& b) { return module_->student->forward(b, masks); }, r_.data.eval_batch_size,
                               device_, &process_group(device_));
    all[control_->size_key()] = expected_sparsity().item<double>();
    // The packed size from the kept structure alone; the weights are folded only on export.
    const auto shape = compress::packed_shape(module_->student, masks);
    for (const auto& [k, v] : compress::sparsity_report(shape, module_->masks->shape)) all[k] = v;
    const std::string dead = compress::input_independence(shape);
    all["input_dependent"] = dead.empty() ? 1 : 0;
    if (!dead.empty())
      LOG_WARN("[prune] these masks leave a model that cannot depend on its input ({}): never chosen as best", dead);
    return all;
  }
  bool eligible_for_best(const std::map<std::string, double>& m) const override {
    if (auto it = m.find("input_dependent"); it != m.end() && it->second == 0) return false;
    return control_->within_target(m.at(cofi_ ? "packed_sparsity" : "packed_remaining"));
  }

  void export_to(const std::string& dir) override {
    const bool was_training = module_->is_training();
    module_->eval();
    auto packed = compress::pack_student(module_->student, eval_masks());
    if (was_training) module_->train();
    models::save_packed_bert(packed, dir);
    copy_tokenizer_files(r_.model.tokenizer, dir);
    nlohmann::json report = compress::sparsity_report(packed->config, module_->masks->shape);
    report["kept"] = compress::kept_sizes(eval_masks());
    io::write_file_atomic((fs::path(dir) / "pruning.json").string(), report.dump(2) + "\n");
    if (p_.finetune_as == "cofi") export_projection(dir);
  }

 private:
  torch::Tensor expected_sparsity() const {
    const auto& m = module_->masks;
    return cofi_ ? compress::cofi_expected_sparsity(m->cofi_keep_probs(), m->shape)
                 : compress::sp3_expected_remaining(m->keep_probs(), m->shape);
  }
  // The distillation projection carried onto the packed model's hidden states, for a fine-tune
  // stage that keeps distilling (pack.h: packed_state_maps).
  void export_projection(const std::string& dir) {
    torch::NoGradGuard g;
    const auto W = module_->projection->weight.detach().to(torch::kCPU);
    const auto b = module_->projection->bias.defined() ? module_->projection->bias.detach().to(torch::kCPU) : torch::zeros({W.size(0)});
    io::TensorMap maps;
    const auto state_maps = compress::packed_state_maps(module_->student, eval_masks());
    for (size_t i = 0; i < state_maps.size(); ++i) {
      const auto& [A, a] = state_maps[i];
      maps[fmt::format("weight.{}", i)] = W.matmul(A).contiguous();
      maps[fmt::format("bias.{}", i)] = (W.matmul(a) + b).contiguous();
    }
    io::write_safetensors((fs::path(dir) / "distill_projection.safetensors").string(), maps, {{"format", "pt"}});
  }
  compress::Sp3Masks eval_masks() { return control_->eval_masks(); }

  // SP3's PCA / SVD initialisation from `pca_examples` train examples, each alone.
  void init_from_pca() {
    std::vector<size_t> order(data_->train_size());
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 rng(static_cast<uint64_t>(r_.run.seed));
    std::shuffle(order.begin(), order.end(), rng);
    order.resize(std::min(order.size(), static_cast<size_t>(p_.pca_examples)));
    std::vector<models::Batch> examples;
    for (size_t i : order) examples.push_back(data_->collate_train({i}));
    compress::PcaOptions o;
    o.mode = p_.init;
    o.tokens_per_example = p_.pca_tokens;
    o.seed = static_cast<uint64_t>(r_.run.seed);
    auto t0 = std::chrono::steady_clock::now();
    compress::init_sp3_from_pca(module_->student, compress::collect_sp3_moments(module_->student, examples, o), o);
    module_->student->train();
    LOG_INFO("[prune] PCA init ({}) from {} examples x {} tokens in {:.1f}s", o.mode, examples.size(), o.tokens_per_example,
             std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }

  const recipe::Recipe& r_;
  const recipe::PruneSection& p_;
  bool cofi_;
  torch::Device device_;
  models::Bert teacher_;
  std::unique_ptr<LabeledData> data_;
  PruneModule module_;
  models::KeyMap keys_;
};

}  // namespace

std::string teacher_problem(const recipe::Recipe& r) {
  const auto path = fs::path(r.model.path) / "config.json";
  if (!fs::exists(path)) return fmt::format("{}: no config.json (pruning needs the fine-tuned teacher in model.path)", r.model.path);
  const auto j = io::read_json(path.string());
  if (r.model.family == "opt") {
    const auto c = models::opt_config_from_json(j, path.string());
    if (!c.layer_shapes.empty()) return fmt::format("{} is a packed model; pruning starts from the dense teacher", r.model.path);
    if (r.data.is_clm()) {
      if (c.head != models::HeadType::causal_lm) return fmt::format("{}: pruning on data.task clm needs an OPTForCausalLM", r.model.path);
      return {};
    }
    const auto& task = data::glue_task(r.data.task);
    if (c.head != models::HeadType::sequence_classification || c.num_labels != task.num_labels())
      return fmt::format("{}: the teacher must be an OPTForSequenceClassification fine-tuned on {}, num_labels {} (fine-tune one "
                         "first, e.g. recipes/opt-125m/{}_finetune.yaml)", r.model.path, task.name, task.num_labels(), task.name);
    return {};
  }
  if (r.model.family == "t5") {
    const auto c = models::t5_config_from_json(j, path.string());
    if (!c.layer_shapes.empty()) return fmt::format("{} is a packed model; pruning starts from the dense teacher", r.model.path);
    return {};  // any T5ForConditionalGeneration: its GLUE answers are words, not a head's labels
  }
  if (models::is_packed_bert(j))
    return fmt::format("{} is a packed model; pruning starts from the dense fine-tuned teacher", r.model.path);
  const auto c = models::bert_config_from_json(j, path.string());
  if (r.data.is_squad()) {
    if (c.head != models::HeadType::question_answering)
      return fmt::format("{}: the teacher must be a BERT fine-tuned on {} (BertForQuestionAnswering; fine-tune one first with "
                         "recipes/bert-base/squad_v1_finetune.yaml)", r.model.path, r.data.task);
    return {};
  }
  const auto& task = data::glue_task(r.data.task);
  if (c.head != models::HeadType::sequence_classification || c.num_labels != task.num_labels())
    return fmt::format("{}: the teacher must be a fine-tuned {} classifier, num_labels {} (fine-tune one first with a *_finetune "
                       "recipe)",
                       r.model.path, task.name, task.num_labels());
  return {};
}

std::unique_ptr<Task> make_prune_task(const recipe::Recipe& r, const torch::Device& device, bool restoring) {
  if (r.model.family == "opt" || r.model.family == "t5") return make_decoder_prune_task(r, device, restoring);
  return std::make_unique<PruneTask>(r, device, restoring);
}

}  // namespace sculpt::train
