#include "sculpt/train/one_shot_run.h"

#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <numeric>
#include <optional>

#include "sculpt/compress/kmeans_model.h"
#include "sculpt/compress/one_shot.h"
#include "sculpt/compress/one_shot_decoder.h"
#include "sculpt/core/error.h"
#include "sculpt/core/log.h"
#include "sculpt/data/mlm_masking.h"
#include "sculpt/io/files.h"
#include "sculpt/models/bert.h"
#include "sculpt/train/bert_classifier.h"
#include "sculpt/train/clm_data.h"
#include "sculpt/train/distributed.h"
#include "sculpt/train/evaluate.h"
#include "sculpt/train/glue_data.h"
#include "sculpt/train/labeled_data.h"
#include "sculpt/train/t5_glue_data.h"

namespace fs = std::filesystem;

namespace sculpt::train {
namespace {

// best/ is the teacher coded by k-means (a codebook directory of the same shapes, so every size
// column reads "all kept"); pruning.json carries the coding report in place of the scores.
void run_kmeans(const recipe::Recipe& r, const torch::Device& device, std::chrono::steady_clock::time_point t0) {
  const fs::path run_dir = r.run_dir(), best = run_dir / "best", tmp = run_dir / "best.tmp";
  fs::remove_all(tmp);
  compress::KMeansOptions o;
  o.bits = static_cast<int>(r.prune.bits);
  o.seed = static_cast<uint64_t>(r.run.seed);
  auto coded = compress::code_model_kmeans(r.model.path, tmp.string(), o, device);
  copy_tokenizer_files(r.model.tokenizer, tmp.string());
  coded["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const nlohmann::json report = {{"packed_sparsity", 0.0}, {"packed_remaining", 1.0}, {"one_shot", coded}};
  io::write_file_atomic((tmp / "pruning.json").string(), report.dump(2) + "\n");
  fs::rename(tmp, best);
  const auto& a = coded["achieved"];
  LOG_INFO("[prune] kmeans at {} bits: {} in {:.1f}s ({} tensors coded, {:.1f} MB -> {:.1f} MB, relative error {:.4f})", o.bits,
           best.string(), coded["seconds"].get<double>(), coded["tensors_coded"].get<int64_t>(), a["bytes_before"].get<double>() / 1e6,
           a["bytes_after"].get<double>() / 1e6, a["relative_error"].get<double>());
}

// The recipe's unit pruning: method, target, allocation and statistic.
compress::PruneOneShotOptions unit_options(const recipe::PruneSection& p) {
  compress::PruneOneShotOptions o;
  o.method = p.method;
  o.target = p.target;
  o.allocation = {p.granularity, p.scope};
  o.statistic = p.statistic;
  return o;
}

// A seeded sample of SIZE train indices (the run's seed), what the scores or the principal
// components read.
std::vector<size_t> sample_indices(size_t size, const recipe::Recipe& r) {
  std::vector<size_t> order(size);
  std::iota(order.begin(), order.end(), 0);
  data::shuffle_indices(order, static_cast<uint64_t>(r.run.seed));
  order.resize(std::min(order.size(), static_cast<size_t>(r.prune.sample_examples)));
  return order;
}

// best/ from the compressed model: its weights, the tokenizer and pruning.json (the sizes as the
// learned-mask runs write them, plus the method's report), renamed into place at once so that a
// killed run leaves no half-written best/.
void write_best(const recipe::Recipe& r, const std::function<void(const std::string&)>& save, nlohmann::json report,
                std::chrono::steady_clock::time_point t0) {
  const fs::path run_dir = r.run_dir(), best = run_dir / "best", tmp = run_dir / "best.tmp";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  save(tmp.string());
  copy_tokenizer_files(r.model.tokenizer, tmp.string());
  report["one_shot"]["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  io::write_file_atomic((tmp / "pruning.json").string(), report.dump(2) + "\n");
  fs::rename(tmp, best);
  LOG_INFO("[prune] {} at {}: {} in {:.1f}s (pruned {:.4f}, remaining {:.4f})", r.prune.method, r.prune.target, best.string(),
           report["one_shot"]["seconds"].get<double>(), report["packed_sparsity"].get<double>(), report["packed_remaining"].get<double>());
}

// OPT or T5 (compress/one_shot_decoder.h), from the task's teacher: the sample is single unpadded
// train examples as the task reads them (OPT: its labelled rows or causal-LM windows; T5: its
// text-to-text pairs, so Taylor scores read the task loss). Sizes are shares of the attention and
// FFN maps, as the decoder SP3 runs report them.
template <class Model, class Save>
void run_decoder(const recipe::Recipe& r, Model& model, const std::vector<models::Batch>& examples, const Save& save,
                 std::chrono::steady_clock::time_point t0) {
  const auto& p = r.prune;
  compress::DecoderCompressed<Model> out;
  if (p.method == "slice") {
    out = compress::slice_stream(model, examples, p.target, p.round_to);
  } else {
    out = compress::prune_units(model, examples, unit_options(p));
  }
  const double remaining = out.report["achieved"]["map_weights_remaining"].template get<double>();
  nlohmann::json report = {{"packed_remaining", remaining}, {"packed_sparsity", 1 - remaining}, {"one_shot", out.report}};
  if (out.report.contains("kept")) report["kept"] = out.report["kept"];
  write_best(r, [&](const std::string& dir) { save(out.model, dir); }, report, t0);
}

void run_decoder_one_shot(const recipe::Recipe& r, const torch::Device& device, std::chrono::steady_clock::time_point t0) {
  std::vector<models::Batch> examples;
  if (r.model.family == "t5") {
    auto model = models::load_t5(r.model.path);
    model->to(device);
    model->eval();
    if (r.prune.method != "magnitude") {
      const T5GlueData data(r, model->config.pad_token_id);
      for (size_t i : sample_indices(data.train_size(), r)) examples.push_back(data.collate_train({i}));
    }
    return run_decoder(r, model, examples, models::save_t5, t0);
  }
  auto model = models::load_opt(r.model.path);
  model->to(device);
  model->eval();
  if (r.prune.method != "magnitude") {
    const auto data = r.data.is_clm() ? open_clm_data(r, model->config.max_positions)
                                      : open_labeled_data(r, /*dev_only=*/false, model->config.max_positions);
    for (size_t i : sample_indices(data->train_size(), r)) examples.push_back(data->collate_train({i}));
  }
  run_decoder(r, model, examples, models::save_opt, t0);
}

}  // namespace

void run_one_shot(const recipe::Recipe& r) {
  const fs::path run_dir = r.run_dir(), best = run_dir / "best";
  if (fs::exists(best / "config.json")) {
    LOG_INFO("[prune] {} holds the {} model already", best.string(), r.prune.method);
    return;
  }
  const torch::Device device = resolve_device(r.run.device);
  SCULPT_CHECK(process_group(device).world_size() == 1, "one-shot compression ({}) runs in one process", r.prune.method);
  fs::create_directories(run_dir);
  io::write_file_atomic((run_dir / "recipe.resolved.yaml").string(), r.resolved_yaml());
  const auto t0 = std::chrono::steady_clock::now();
  const auto& p = r.prune;
  if (r.model.family != "bert") return p.method == "kmeans" ? run_kmeans(r, device, t0) : run_decoder_one_shot(r, device, t0);
  // A pretrained encoder (no classification head: compressed *before* the task fine-tune) gets a
  // new, seeded head for the task, as `sculpt compress --task` gives it; its scores must then
  // need no labels.
  const auto head = models::bert_config_from_json(io::read_json((fs::path(r.model.path) / "config.json").string()), r.model.path).head;
  const bool task_head = head == models::HeadType::sequence_classification;
  SCULPT_CHECK(task_head || p.method != "kmeans",
               "{}: model.path {} has no task head; k-means codes a trained model (Deep Compression quantizes after training): "
               "fine-tune it first, or compress it with magnitude, activation, taylor or slice",
               r.source, r.model.path);
  SCULPT_CHECK(task_head || p.method != "taylor" || head == models::HeadType::masked_lm,
               "{}: prune.method taylor on model.path {}, which has neither a task head (task-loss scores) nor a masked-LM head "
               "(zero-shot scores on its own pre-training loss); magnitude, activation and slice need no head",
               r.source, r.model.path);
  if (p.method == "kmeans") return run_kmeans(r, device, t0);
  GlueData data(r);
  torch::manual_seed(static_cast<uint64_t>(r.run.seed));  // a new head is drawn from the run's seed
  auto teacher = build_bert_classifier(r, data.task);
  teacher->to(device);
  teacher->eval();
  for (auto& param : teacher->parameters()) param.set_requires_grad(false);
  const auto order = p.method == "magnitude" ? std::vector<size_t>{} : sample_indices(data.train.size(), r);
  std::vector<models::Batch> batches;
  std::optional<compress::StructureScores> zero_shot;
  if (!task_head && p.method == "taylor") {
    // Zero-shot structured pruning: Taylor scores on the masked LM's own loss over the sample's
    // inputs (their labels unread), as `sculpt compress --method taylor` on a masked LM.
    std::vector<data::Example> sample;
    for (size_t i : order) sample.push_back(data.train[i]);
    auto mlm = models::load_bert(r.model.path, /*strict=*/true).model;
    mlm->to(device);
    zero_shot = compress::taylor_mlm_scores(mlm, data::mask_each_example(sample, *data.tokenizer, static_cast<uint64_t>(r.run.seed)));
  } else {
    const size_t per_batch = p.method == "slice" ? 1 : static_cast<size_t>(r.data.batch_size);  // slice: unpadded examples
    for (size_t i = 0; i < order.size(); i += per_batch)
      batches.push_back(data.collate_train({order.begin() + static_cast<std::ptrdiff_t>(i),
                                            order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), i + per_batch))}));
  }
  compress::Compressed out;
  if (p.method == "slice") {
    out = compress::slice_hidden(teacher, batches, {p.target, p.round_to, {}});
  } else {
    auto o = unit_options(p);
    o.scores = zero_shot;
    out = compress::prune_one_shot(teacher, batches, o);
  }
  // pruning.json as a learned-mask run writes it (the sizes and what is kept), plus the method.
  nlohmann::json report = out.report["achieved"];
  report["kept"] = out.report["kept"];
  report["one_shot"] = out.report;
  write_best(r, [&](const std::string& dir) { models::save_packed_bert(out.model, dir); }, report, t0);
}

}  // namespace sculpt::train
