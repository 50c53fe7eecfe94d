#include "sculpt/train/t5_glue_data.h"

#include <torch/torch.h>

#include <numeric>

#include "sculpt/core/log.h"
#include "sculpt/data/batching.h"
#include "sculpt/metrics/glue_metrics.h"
#include "sculpt/train/distributed.h"
#include "sculpt/train/token_data.h"

namespace sculpt::train {

T5GlueData::T5GlueData(const recipe::Recipe& r, int64_t pad_id, bool dev_only) : task_(data::glue_task(r.data.task)), pad_id_(pad_id) {
  tokenizer_ = tokenizers::SentencePieceTokenizer::from_dir(r.model.tokenizer);
  const TokenSource source{*tokenizer_, r.model.tokenizer, r.logging.progress_bar};
  if (!dev_only) train_ = load_text_pairs(source, task_, r.data.root, "train", r.data.max_seq_len, r.data.max_train_examples, true);
  for (const auto& split : task_.dev_splits)
    dev_.emplace_back(split, load_text_pairs(source, task_, r.data.root, split, r.data.max_seq_len, r.data.max_eval_examples, true));
  for (const auto& p : train_) lengths_.push_back(static_cast<int64_t>(p.source.size()));
  LOG_INFO("[data] {} as text-to-text: {} train, {} dev examples", task_.name, train_.size(), dev_.front().second.size());
}

models::Batch T5GlueData::collate_train(const std::vector<size_t>& idx) const { return batch_of(train_, idx); }

models::Batch T5GlueData::batch_of(const std::vector<data::TextPair>& rows, const std::vector<size_t>& idx) const {
  models::Batch b;
  std::tie(b.input_ids, b.attention_mask) = pad_rows(rows, idx, pad_id_, true);
  std::tie(b.labels, b.decoder_attention_mask) = pad_rows(rows, idx, -100, false);
  return b;
}

std::map<std::string, double> T5GlueData::evaluate(const GenerateFn& generate, const LogitsFn& logits, int64_t batch_size,
                                                   const torch::Device& device) const {
  std::map<std::string, double> all;
  // Each prediction is set on one rank and 0 on the others, so one all-reduce sum gathers them exactly.
  Distributed& group = process_group(device);
  const size_t world = static_cast<size_t>(group.world_size()), rank = static_cast<size_t>(group.rank());
  for (size_t s = 0; s < dev_.size(); ++s) {
    const auto& ex = dev_[s].second;
    std::vector<double> pred(ex.size(), 0.0), gold(ex.size()), unknown(ex.size(), 0.0);
    auto loss = torch::zeros({2}, torch::TensorOptions().dtype(torch::kDouble).device(device));  // summed token loss, tokens
    size_t batch_no = 0;
    for (const auto& idx : data::consecutive_batches(ex.size(), static_cast<size_t>(batch_size))) {
      if (batch_no++ % world != rank) continue;
      const auto b = batch_of(ex, idx).to(device);
      const auto l = logits(b).to(torch::kFloat);
      loss[0] += torch::nn::functional::cross_entropy(l.reshape({-1, l.size(-1)}), b.labels.reshape(-1),
                                                      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                     .to(torch::kDouble);
      loss[1] += b.decoder_attention_mask.sum().to(torch::kDouble);
      auto generated = generate(b.input_ids, b.attention_mask).to(torch::kCPU).contiguous();
      for (size_t i = 0; i < idx.size(); ++i) {
        auto row = generated[static_cast<int64_t>(i)];
        std::vector<int64_t> out(row.data_ptr<int64_t>() + 1, row.data_ptr<int64_t>() + row.numel());
        auto label = data::t5_glue_parse(task_, tokenizer_->decode(out));
        unknown[idx[i]] = label ? 0.0 : 1.0;
        // An output that is no label word counts as wrong: a class no gold label has.
        pred[idx[i]] = label ? *label : (task_.is_regression() ? 0.0 : -1.0);
      }
    }
    if (world > 1) {
      loss = group.all_reduce_sum(loss);
      const int64_t n = static_cast<int64_t>(ex.size());
      auto both = torch::cat({torch::tensor(pred, torch::kDouble), torch::tensor(unknown, torch::kDouble)});
      auto summed = group.all_reduce_sum(both).to(torch::kCPU).contiguous();
      std::copy(summed.data_ptr<double>(), summed.data_ptr<double>() + n, pred.begin());
      std::copy(summed.data_ptr<double>() + n, summed.data_ptr<double>() + 2 * n, unknown.begin());
    }
    for (size_t i = 0; i < ex.size(); ++i) gold[i] = ex[i].label;
    const double unknown_count = std::accumulate(unknown.begin(), unknown.end(), 0.0);
    for (const auto& [k, v] : metrics::glue_metrics(task_.name, pred, gold)) all[s == 0 ? k : "mm_" + k] = v;
    all[s == 0 ? "unknown_outputs" : "mm_unknown_outputs"] = unknown_count;
    const auto host = loss.to(torch::kCPU);
    all[s == 0 ? "loss" : "mm_loss"] = host[0].item<double>() / host[1].item<double>();
  }
  return all;
}

std::string T5GlueData::main_metric(const recipe::Recipe& r) const {
  return r.eval.metric.empty() ? metrics::glue_main_metric(task_.name) : r.eval.metric;
}

std::pair<torch::Tensor, torch::Tensor> T5GlueData::pad_rows(const std::vector<data::TextPair>& rows, const std::vector<size_t>& idx,
                                                             int64_t fill, bool source) const {
  int64_t T = 1;
  for (size_t i : idx) T = std::max<int64_t>(T, static_cast<int64_t>((source ? rows[i].source : rows[i].target).size()));
  auto ids = torch::full({static_cast<int64_t>(idx.size()), T}, fill, torch::kLong);
  auto mask = torch::zeros_like(ids);
  auto a = ids.accessor<int64_t, 2>();
  auto m = mask.accessor<int64_t, 2>();
  for (size_t b = 0; b < idx.size(); ++b) {
    const auto& seq = source ? rows[idx[b]].source : rows[idx[b]].target;
    for (size_t t = 0; t < seq.size(); ++t) a[static_cast<int64_t>(b)][static_cast<int64_t>(t)] = seq[t], m[static_cast<int64_t>(b)][static_cast<int64_t>(t)] = 1;
  }
  return {ids, mask};
}

}  // namespace sculpt::train
