#include "sculpt/train/clm_data.h"

#include <torch/torch.h>

#include <cmath>

#include "sculpt/core/error.h"
#include "sculpt/core/log.h"
#include "sculpt/train/corpus_split.h"
#include "sculpt/train/distributed.h"

namespace sculpt::train {
namespace {

namespace F = torch::nn::functional;

class ClmData : public LabeledData {
 public:
  ClmData(const recipe::Recipe& r, int64_t max_positions)
      : tokenizer_(tokenizers::load_tokenizer(r.model.tokenizer)) {
    const TokenSource source{*tokenizer_, r.model.tokenizer, r.logging.progress_bar};
    corpus_ = load_corpus_split(r, source, max_positions);
    lengths_.assign(corpus_.train.size(), corpus_.block);
    LOG_INFO("[data] causal LM: {} train and {} eval blocks of {} tokens ({})", corpus_.train.size(), corpus_.dev.size(),
             corpus_.block,
             r.data.dev_file.empty() ? fmt::format("eval = first {}% of the text", r.data.validation_percent) : "eval from dev_file");
  }
  std::string task() const override { return "clm"; }
  size_t train_size() const override { return corpus_.train.size(); }
  const std::vector<int64_t>& train_lengths() const override { return lengths_; }
  models::Batch collate_train(const std::vector<size_t>& idx) const override { return batch_of(corpus_.train, idx); }

  std::map<std::string, double> evaluate(const OutputsFn& outputs_of, int64_t batch_size, const torch::Device& device,
                                         Distributed* shard) const override {
    torch::NoGradGuard no_grad;
    const size_t world = shard ? static_cast<size_t>(shard->world_size()) : 1, rank = shard ? static_cast<size_t>(shard->rank()) : 0;
    auto sums = torch::zeros({3}, torch::TensorOptions().dtype(torch::kDouble).device(device));  // loss sum, tokens, correct
    size_t batch_no = 0;
    for (const auto& idx : data::consecutive_batches(corpus_.dev.size(), static_cast<size_t>(batch_size))) {
      if (batch_no++ % world != rank) continue;
      const auto b = batch_of(corpus_.dev, idx).to(device);
      const auto logits = outputs_of(b).logits;
      const int64_t T = logits.size(1);
      sums[0] += next_token_loss_sum(logits, b.input_ids);
      sums[1] += static_cast<double>(b.input_ids.size(0) * (T - 1));
      sums[2] += logits.narrow(1, 0, T - 1).argmax(-1).eq(b.input_ids.narrow(1, 1, T - 1)).sum().to(torch::kDouble);
    }
    if (world > 1) sums = shard->all_reduce_sum(sums);
    const auto host = sums.to(torch::kCPU);
    const double mean = host[0].item<double>() / host[1].item<double>();
    return {{"loss", mean}, {"perplexity", std::exp(mean)}, {"accuracy", host[2].item<double>() / host[1].item<double>()},
            {"tokens", host[1].item<double>()}};
  }
  std::string main_metric(const recipe::Recipe& r) const override { return r.eval.metric.empty() ? "perplexity" : r.eval.metric; }

 private:
  models::Batch batch_of(const std::vector<const int32_t*>& rows, const std::vector<size_t>& idx) const {
    auto ids = torch::empty({static_cast<int64_t>(idx.size()), corpus_.block}, torch::kLong);
    for (size_t i = 0; i < idx.size(); ++i)
      ids[static_cast<int64_t>(i)].copy_(torch::from_blob(const_cast<int32_t*>(rows[idx[i]]), {corpus_.block}, torch::kInt));
    models::Batch b;
    b.input_ids = ids;
    b.attention_mask = torch::ones_like(ids);
    b.labels = ids;
    return b;
  }

  std::unique_ptr<tokenizers::Tokenizer> tokenizer_;
  CorpusSplit corpus_;
  std::vector<int64_t> lengths_;
};

}  // namespace

torch::Tensor next_token_loss_sum(const torch::Tensor& logits, const torch::Tensor& ids) {
  const int64_t T = logits.size(1), V = logits.size(2);
  return F::cross_entropy(logits.narrow(1, 0, T - 1).reshape({-1, V}).to(torch::kFloat), ids.narrow(1, 1, T - 1).reshape(-1),
                          F::CrossEntropyFuncOptions().reduction(torch::kSum))
      .to(torch::kDouble);
}

std::unique_ptr<LabeledData> open_clm_data(const recipe::Recipe& r, int64_t max_positions) {
  return std::make_unique<ClmData>(r, max_positions);
}

}  // namespace sculpt::train
