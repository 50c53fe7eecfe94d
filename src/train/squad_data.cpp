#include "sculpt/train/squad_data.h"

#include <torch/torch.h>

#include "sculpt/core/log.h"
#include "sculpt/train/token_data.h"

namespace sculpt::train {

SquadData::SquadData(const recipe::Recipe& r, int64_t max_positions, Splits splits)
    : v2(r.data.task == "squad_v2"), max_answer_length(r.data.max_answer_length) {
  tokenizer = tokenizers::WordPieceTokenizer::from_dir(r.model.tokenizer);
  options.max_length = std::min(r.data.max_seq_len, max_positions);
  options.doc_stride = r.data.doc_stride;
  options.max_query_length = r.data.max_query_length;
  const TokenSource source{*tokenizer, r.model.tokenizer, r.logging.progress_bar};
  if (splits == Splits::train_and_dev) {
    train_examples = first_rows(data::read_squad(r.data.train_file), r.data.max_train_examples);
    train = load_squad_features(source, *tokenizer, r.data.train_file, train_examples, options);
  }
  dev_examples = first_rows(data::read_squad(r.data.dev_file), r.data.max_eval_examples);
  dev = load_squad_features(source, *tokenizer, r.data.dev_file, dev_examples, options);
  for (const auto& f : train) lengths.push_back(static_cast<int64_t>(f.ids.size()));
  LOG_INFO("[data] SQuAD {}: {} train features, {} dev questions ({} features)", v2 ? "v2.0" : "v1.1", train.size(),
           dev_examples.size(), dev.size());
}

models::Batch SquadData::collate_train(const std::vector<size_t>& indices) const {
  return data::collate_squad(train, indices, tokenizer->pad_id(), true);
}

std::map<std::string, double> SquadData::evaluate(const OutputsFn& outputs_of, int64_t batch_size, const torch::Device& device,
                                                  Distributed* shard) const {
  data::SquadPostprocessOptions po;
  po.v2 = v2;
  po.max_answer_length = max_answer_length;
  return evaluate_squad(outputs_of, dev_examples, dev, batch_size, tokenizer->pad_id(), device, po, nullptr, shard);
}

}  // namespace sculpt::train
