#include "sculpt/train/glue_data.h"

#include <torch/torch.h>

#include <filesystem>

#include "sculpt/train/token_data.h"

namespace fs = std::filesystem;

namespace sculpt::train {

GlueData::GlueData(const recipe::Recipe& r, Splits splits) : task(data::glue_task(r.data.task)) {
  tokenizer = tokenizers::load_tokenizer(r.model.tokenizer);
  pad_id = tokenizer->pad_id();
  const TokenSource source{*tokenizer, r.model.tokenizer, r.logging.progress_bar};
  if (splits == Splits::train_and_dev)
    train = load_glue_examples(source, task, r.data.root, "train", r.data.max_seq_len, r.data.max_train_examples);
  for (const auto& split : task.dev_splits)
    dev.emplace_back(split, load_glue_examples(source, task, r.data.root, split, r.data.max_seq_len, r.data.max_eval_examples));
  lengths = data::lengths_of(train);
}

std::map<std::string, double> GlueData::evaluate(const LogitsFn& logits_of, int64_t batch_size, const torch::Device& device,
                                                 Distributed* shard) const {
  std::map<std::string, double> all;
  for (size_t s = 0; s < dev.size(); ++s)
    for (const auto& [k, v] : evaluate_glue(logits_of, task.name, dev[s].second, batch_size, pad_id, device, shard))
      all[s == 0 ? k : "mm_" + k] = v;
  return all;
}

void copy_tokenizer_files(const std::string& from, const std::string& to) {
  for (const auto& name : tokenizer_file_names())
    if (fs::exists(fs::path(from) / name))
      fs::copy_file(fs::path(from) / name, fs::path(to) / name, fs::copy_options::overwrite_existing);
}

}  // namespace sculpt::train
