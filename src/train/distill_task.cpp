// Fine-tuning a packed model while it keeps distilling from the dense teacher: CoFi's stage
// after pruning (method.md §5.5–5.6), with the loss of the pruning run (recipe `distill:`,
// normally written by the pruning run for its `finetune` stage). The distillation projection
// continues exactly from the pruning run's through the maps it exported beside the packed
// model (distill_projection.safetensors: h_student = A x + a, so W h + b = (W A) x + (W a + b)).
#include <torch/torch.h>

#include <filesystem>

#include "sculpt/compress/distill.h"
#include "sculpt/train/distill_loss.h"
#include "sculpt/core/error.h"
#include "sculpt/core/log.h"
#include "sculpt/io/safetensors.h"
#include "sculpt/metrics/glue_metrics.h"
#include "sculpt/models/bert.h"
#include "sculpt/models/layers.h"
#include "sculpt/models/packed_bert.h"
#include "sculpt/train/distributed.h"
#include "sculpt/train/glue_data.h"
#include "sculpt/train/task.h"

namespace fs = std::filesystem;

namespace sculpt::train {
namespace {

// The packed model and its distillation projections (one shared, as CoFi's single
// layer_transformation, when every state's map is the same; else one per hidden state).
struct DistilledPackedImpl : torch::nn::Module {
  DistilledPackedImpl(models::PackedBert p, const io::TensorMap& maps) {
    packed = register_module("packed", std::move(p));
    projections = register_module("projections", torch::nn::ModuleList());
    const int64_t states = static_cast<int64_t>(packed->config.layers.size()) + 1;
    bool shared = true;
    for (int64_t i = 0; i < states; ++i) {
      SCULPT_CHECK(maps.count(fmt::format("weight.{}", i)) && maps.count(fmt::format("bias.{}", i)),
                   "distill_projection.safetensors: no weight.{0} / bias.{0}", i);
      shared &= torch::equal(maps.at(fmt::format("weight.{}", i)), maps.at("weight.0")) &&
                torch::equal(maps.at(fmt::format("bias.{}", i)), maps.at("bias.0"));
    }
    for (int64_t i = 0; i < (shared ? 1 : states); ++i) {
      const auto& w = maps.at(fmt::format("weight.{}", i));
      models::Linear l(std::max<int64_t>(1, w.size(1)), w.size(0));
      l->weight.set_data(w.to(torch::kFloat32).clone());
      l->bias.set_data(maps.at(fmt::format("bias.{}", i)).to(torch::kFloat32).clone());
      projections->push_back(l);
    }
  }
  torch::Tensor project(size_t state, const torch::Tensor& h) {
    return projections[std::min(state, projections->size() - 1)]->as<models::LinearImpl>()->forward(h);
  }
  models::PackedBert packed{nullptr};
  torch::nn::ModuleList projections{nullptr};
};
TORCH_MODULE(DistilledPacked);

class DistilledPackedTask : public Task {
 public:
  DistilledPackedTask(const recipe::Recipe& r, const torch::Device& device)
      : r_(r), d_(r.distill), data_(r), device_(device), teacher_(load_teacher(r.distill.teacher)),
        module_(models::load_packed_bert(r.model.path), read_maps(r.model.path)) {
    const auto& pc = module_->packed->config;
    SCULPT_CHECK(pc.base.num_labels == data_.task.num_labels(), "{}: packed model has {} labels, task {} needs {}", r.model.path,
                 pc.base.num_labels, data_.task.name, data_.task.num_labels());
    SCULPT_CHECK(teacher_->config.num_labels == pc.base.num_labels && teacher_->config.hidden_size == pc.base.hidden_size,
                 "distill.teacher {}: not the teacher of {} ({} labels, hidden {})", r.distill.teacher, r.model.path,
                 teacher_->config.num_labels, teacher_->config.hidden_size);
    for (const auto& k : models::packed_bert_key_map(pc)) keys_.push_back({k.hf, "packed." + k.internal, k.alias});
    for (size_t i = 0; i < module_->projections->size(); ++i)
      for (const char* p : {"weight", "bias"})
        keys_.push_back({fmt::format("distill.projection.{}.{}", i, p), fmt::format("projections.{}.{}", i, p)});
    teacher_->to(device_);
    module_->to(device_);
  }

  std::string describe() const override {
    return fmt::format("packed bert on {}, distilling from {}", data_.task.name, r_.distill.teacher);
  }
  torch::nn::Module& model() override { return *module_; }
  const models::KeyMap& keys() const override { return keys_; }
  const std::vector<int64_t>& train_lengths() const override { return data_.lengths; }
  std::string main_metric() const override { return r_.eval.metric.empty() ? metrics::glue_main_metric(data_.task.name) : r_.eval.metric; }
  models::Batch collate(const std::vector<size_t>& idx) const override {
    return data_.collate_train(idx);
  }

  torch::Tensor loss(const models::Batch& batch) override {
    const auto t = teacher_outputs(teacher_, batch);
    auto s = module_->packed->forward(batch, {true, false});
    std::vector<torch::Tensor> projected;
    for (size_t i = 0; i < s.hidden_states.size(); ++i) projected.push_back(module_->project(i, s.hidden_states[i]));
    auto terms = distill_loss(s, projected, t, batch.attention_mask, d_);
    last_pred_ = terms.pred, last_layer_ = terms.layer;
    return terms.loss;
  }
  nlohmann::json log_fields() override {
    if (!last_pred_.defined()) return nlohmann::json::object();
    return {{"pred_loss", last_pred_.item<double>()}, {"layer_loss", last_layer_.defined() ? last_layer_.item<double>() : 0.0}};
  }
  std::string log_line(const nlohmann::json& f) const override {
    if (f.empty()) return {};
    return fmt::format(" : pred {:.3e} layer {:.4f}", f["pred_loss"].get<double>(), f["layer_loss"].get<double>());
  }

  std::map<std::string, double> evaluate() override {
    torch::NoGradGuard no_grad;
    module_->eval();
    return data_.evaluate([this](const models::Batch& b) { return module_->packed->forward(b).logits; }, r_.data.eval_batch_size,
                          device_, &process_group(device_));
  }
  void export_to(const std::string& dir) override {
    models::save_packed_bert(module_->packed, dir);
    copy_tokenizer_files(r_.model.tokenizer, dir);
  }

 private:
  static models::Bert load_teacher(const std::string& dir) {
    SCULPT_CHECK(fs::exists(fs::path(dir) / "config.json"), "distill.teacher {}: no config.json", dir);
    auto t = models::load_bert(dir, /*strict=*/true).model;
    t->eval();
    for (auto& p : t->parameters()) p.set_requires_grad(false);
    return t;
  }
  static io::TensorMap read_maps(const std::string& packed_dir) {
    const auto path = fs::path(packed_dir) / "distill_projection.safetensors";
    SCULPT_CHECK(fs::exists(path), "{}: no distill_projection.safetensors (a packed model exported by a CoFi pruning run with "
                                   "prune.finetune_as cofi carries it)", packed_dir);
    return io::read_safetensors(path.string()).tensors;
  }

  const recipe::Recipe& r_;
  const recipe::DistillSection& d_;
  GlueData data_;
  torch::Device device_;
  models::Bert teacher_;
  DistilledPacked module_;
  models::KeyMap keys_;
  torch::Tensor last_pred_, last_layer_;
};

}  // namespace

std::unique_ptr<Task> make_distilled_packed_task(const recipe::Recipe& r, const torch::Device& device) {
  return std::make_unique<DistilledPackedTask>(r, device);
}

}  // namespace sculpt::train
