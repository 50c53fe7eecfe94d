// A pruning recipe end to end: learn the masks (the training loop with the prune task, whose
// `best` and `final` exports are packed models) or compress in one shot (one_shot_run.h),
// evaluate the packed model beside the teacher, then the optional fine-tune stage on the packed
// model in <run>/finetune. Each stage resumes.
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <memory>

#include "sculpt/core/log.h"
#include "sculpt/io/files.h"
#include "sculpt/io/hf_dir.h"
#include "sculpt/models/bert.h"
#include "sculpt/models/opt.h"
#include "sculpt/models/t5.h"
#include "sculpt/models/any_bert.h"
#include "sculpt/train/checkpoint.h"
#include "sculpt/train/clm_data.h"
#include "sculpt/train/distributed.h"
#include "sculpt/train/finetune.h"
#include "sculpt/train/labeled_data.h"
#include "sculpt/train/one_shot_run.h"
#include "sculpt/train/t5_glue_data.h"

namespace fs = std::filesystem;

namespace sculpt::train {
namespace {

// The fine-tune stage's recipe: the pruning recipe without `prune`, starting from the packed
// model, in its own run directory (so `sculpt resume <run>/finetune` works on its own too).
recipe::Recipe finetune_recipe(const recipe::Recipe& r, const std::string& packed_dir) {
  YAML::Node root = YAML::Clone(r.resolved);
  root.remove("prune");
  root["model"]["path"] = packed_dir;
  root["model"]["tokenizer"] = r.model.tokenizer;
  root["run"]["dir"] = (fs::path(r.run_dir()) / "finetune").string();
  root["train"]["duration"] = r.prune.finetune.str();
  root["train"]["lr"] = r.prune.finetune_lr;
  // After learned masks the stage recovers a trained model: no warmup. A one-shot method's recipe
  // trains nothing else, so its train section (warmup included) is the stage's own, e.g. a
  // whole task fine-tune after compressing a pretrained model.
  if (!r.prune.one_shot()) root["train"]["warmup"] = 0;
  if (r.prune.method == "kmeans") root["codebook"]["method"] = "finetune";  // the centroids train, the indices stay
  if (r.prune.finetune_as == "cofi") {
    // CoFi's stage: distillation kept on with the pruning run's weights, no LR schedule, the
    // embeddings frozen (method.md §5.4, §5.6).
    YAML::Node distill = YAML::Clone(r.resolved["prune"]["distill"]);
    distill["teacher"] = r.model.path;
    root["distill"] = distill;
    root["train"]["lr_schedule"] = "constant";
    root["train"]["freeze_embeddings"] = true;
  }
  YAML::Emitter out;
  out << root;
  return recipe::parse_recipe(out.c_str(), r.source + " (fine-tune stage)");
}

nlohmann::json decoder_summary(const recipe::Recipe& r, const fs::path& packed, const std::string& metric, const std::map<std::string, double>& t,
                               const std::map<std::string, double>& s, int64_t teacher_width, int64_t student_width) {
  auto report = io::read_json((packed / "pruning.json").string());
  LOG_INFO("[prune] packed model {}: {} {:.4f} vs teacher {:.4f}; remaining {:.4f} of the linear maps, stream {} of {} dims",
           packed.string(), metric, s.at(metric), t.at(metric), report["packed_remaining"].get<double>(), student_width, teacher_width);
  const bool lower_better = metric == "perplexity" || metric == "loss";
  const double retained = lower_better ? t.at(metric) / s.at(metric) : (t.at(metric) != 0 ? s.at(metric) / t.at(metric) : 0.0);
  return {{"method", r.prune.method}, {"target", r.prune.target}, {"metric", metric}, {"teacher", t}, {"packed", s},
          {"packed_model", packed.string()}, {"retained", retained}, {"sparsity", report}};
}

// The packed OPT's and its teacher's dev scores (perplexity on the recipe's text, or the GLUE
// task's metrics), and the sizes.
nlohmann::json evaluate_packed_opt(const recipe::Recipe& r, const fs::path& packed) {
  const torch::Device device = resolve_device(r.run.device);
  torch::NoGradGuard no_grad;
  auto teacher = models::load_opt(r.model.path), student = models::load_opt(packed.string());
  for (auto* m : {&teacher, &student}) (*m)->to(device), (*m)->eval();
  const auto data = r.data.is_clm() ? open_clm_data(r, teacher->config.max_positions)
                                    : open_labeled_data(r, /*dev_only=*/true, teacher->config.max_positions);
  const std::string metric = data->main_metric(r);
  auto t = data->evaluate([&](const models::Batch& b) { return models::opt_logits(teacher, b); }, r.data.eval_batch_size, device);
  auto s = data->evaluate([&](const models::Batch& b) { return models::opt_logits(student, b); }, r.data.eval_batch_size, device);
  return decoder_summary(r, packed, metric, t, s, teacher->config.hidden_size, student->config.hidden_size);
}

// The packed T5's and its teacher's dev scores (GLUE as text-to-text, by greedy generation).
nlohmann::json evaluate_packed_t5(const recipe::Recipe& r, const fs::path& packed) {
  const torch::Device device = resolve_device(r.run.device);
  torch::NoGradGuard no_grad;
  auto teacher = models::load_t5(r.model.path), student = models::load_t5(packed.string());
  for (auto* m : {&teacher, &student}) (*m)->to(device), (*m)->eval();
  const T5GlueData data(r, teacher->config.pad_token_id, /*dev_only=*/true);
  auto score = [&](models::T5& m) {
    return data.evaluate(
        [&m](const torch::Tensor& ids, const torch::Tensor& mask) { return m->generate(ids, mask, T5GlueData::kMaxNewTokens).first; },
        [&m](const models::Batch& b) { return m->forward(b.input_ids, b.attention_mask, {}, b.decoder_attention_mask, b.labels).logits; },
        r.data.eval_batch_size, device);
  };
  auto t = score(teacher), s = score(student);
  return decoder_summary(r, packed, data.main_metric(r), t, s, teacher->config.hidden_size, student->config.hidden_size);
}

// compression.json's body: the packed model's and the teacher's dev scores and the sizes.
nlohmann::json evaluate_packed(const recipe::Recipe& r, const fs::path& packed) {
  if (r.model.family == "opt") return evaluate_packed_opt(r, packed);
  if (r.model.family == "t5") return evaluate_packed_t5(r, packed);
  const torch::Device device = resolve_device(r.run.device);
  torch::NoGradGuard no_grad;
  auto student = models::load_any_bert(packed.string());  // packed, or a codebook directory (kmeans)
  const auto data = open_labeled_data(r, /*dev_only=*/true, student.config.max_positions);  // the report reads dev only
  const std::string metric = data->main_metric(r);
  student.to(device);
  student.module->eval();
  auto s = data->evaluate([&](const models::Batch& b) { return student.forward(b, {}); }, r.data.eval_batch_size, device);
  auto report = io::read_json((packed / "pruning.json").string());
  const char* size_key = r.prune.method == "sp3" ? "packed_remaining" : "packed_sparsity";
  nlohmann::json summary = {{"method", r.prune.method}, {"target", r.prune.target},        {"metric", metric},
                            {"packed", s},              {"packed_model", packed.string()}, {"sparsity", report}};
  const auto config = io::read_json((fs::path(r.model.path) / "config.json").string());
  if (models::bert_config_from_json(config, r.model.path).head != models::HeadType::sequence_classification) {
    // Compressed before the task fine-tune: there is no dense model of the task here to compare
    // with (a sweep's compare_to stage names it), and the packed model's new head is untrained.
    summary["teacher"] = nullptr;
    summary["new_head"] = true;
    LOG_INFO("[prune] packed model {}: {} {:.4f} with its new, untrained head ({} has none for the task); {} {:.4f}", packed.string(),
             metric, s[metric], r.model.path, size_key, report[size_key].get<double>());
    return summary;
  }
  auto teacher = models::load_bert(r.model.path, true).model;
  teacher->to(device);
  teacher->eval();
  auto t = data->evaluate([&](const models::Batch& b) { return teacher->forward(b); }, r.data.eval_batch_size, device);
  summary["teacher"] = t;
  summary["retained"] = t[metric] != 0 ? s[metric] / t[metric] : 0.0;
  LOG_INFO("[prune] packed model {}: {} {:.4f} vs teacher {:.4f} ({:.1f}% kept); {} {:.4f}", packed.string(), metric, s[metric],
           t[metric], 100 * summary["retained"].get<double>(), size_key, report[size_key].get<double>());

  return summary;
}

}  // namespace

RunResult run_recipe(const recipe::Recipe& r, bool resume) {
  if (!r.prune.enabled()) return run_finetune(r, resume);
  const fs::path run_dir = r.run_dir();
  RunResult pruned;
  if (r.prune.one_shot()) run_one_shot(r);  // no mask training: best/ straight from the teacher
  else pruned = run_finetune(r, resume);
  fs::path packed = run_dir / "best";
  if (!fs::exists(packed / "config.json")) {
    LOG_WARN("[prune] no evaluation met the target within epsilon ({}); packing the final masks instead", r.prune.epsilon);
    packed = run_dir / "final";
  }

  // The packed model beside the teacher, same dev data, same run (rank 0 only; the other
  // ranks go on to the fine-tune stage and wait for it there).
  const bool main = process_group(resolve_device(r.run.device)).is_main();
  nlohmann::json summary;
  if (main) summary = evaluate_packed(r, packed);
  RunResult result = pruned;
  if (r.prune.finetune.value > 0) {
    auto f = finetune_recipe(r, packed.string());
    const bool done = fs::exists(fs::path(f.run_dir()) / "results.json");
    if (!done) {
      LOG_INFO("[prune] fine-tune stage: {} on the packed model, lr {}", r.prune.finetune.str(), r.prune.finetune_lr);
      result = run_finetune(f, !CheckpointManager(f.run_dir(), 1).list().empty());
    }
    if (main) {
      auto fr = io::read_json((fs::path(f.run_dir()) / "results.json").string());
      summary["finetuned"] = fr["final"];
      summary["finetuned_best"] = fr["best"];
      summary["finetuned_model"] = (fs::path(f.run_dir()) / "best").string();
    }
  }
  if (main) {
    io::write_file_atomic((run_dir / "compression.json").string(), summary.dump(2) + "\n");
    LOG_INFO("[prune] summary in {}", (run_dir / "compression.json").string());
  }
  return result;
}

}  // namespace sculpt::train
