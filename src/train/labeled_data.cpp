#include "sculpt/train/labeled_data.h"

#include <torch/torch.h>

#include "sculpt/metrics/glue_metrics.h"
#include "sculpt/train/glue_data.h"
#include "sculpt/train/squad_data.h"

namespace sculpt::train {
namespace {

class GlueLabeledData : public LabeledData {
 public:
  GlueLabeledData(const recipe::Recipe& r, bool dev_only) : data_(r, dev_only ? GlueData::Splits::dev : GlueData::Splits::train_and_dev) {}
  std::string task() const override { return data_.task.name; }
  size_t train_size() const override { return data_.train.size(); }
  const std::vector<int64_t>& train_lengths() const override { return data_.lengths; }
  models::Batch collate_train(const std::vector<size_t>& indices) const override { return data_.collate_train(indices); }
  std::map<std::string, double> evaluate(const OutputsFn& outputs_of, int64_t batch_size, const torch::Device& device,
                                         Distributed* shard) const override {
    return data_.evaluate([&](const models::Batch& b) { return outputs_of(b).logits; }, batch_size, device, shard);
  }
  std::string main_metric(const recipe::Recipe& r) const override {
    return r.eval.metric.empty() ? metrics::glue_main_metric(data_.task.name) : r.eval.metric;
  }

 private:
  GlueData data_;
};

class SquadLabeledData : public LabeledData {
 public:
  SquadLabeledData(const recipe::Recipe& r, bool dev_only, int64_t max_positions)
      : task_(r.data.task), data_(r, max_positions, dev_only ? SquadData::Splits::dev : SquadData::Splits::train_and_dev) {}
  std::string task() const override { return task_; }
  size_t train_size() const override { return data_.train.size(); }
  const std::vector<int64_t>& train_lengths() const override { return data_.lengths; }
  models::Batch collate_train(const std::vector<size_t>& indices) const override { return data_.collate_train(indices); }
  std::map<std::string, double> evaluate(const OutputsFn& outputs_of, int64_t batch_size, const torch::Device& device,
                                         Distributed* shard) const override {
    return data_.evaluate(outputs_of, batch_size, device, shard);
  }
  std::string main_metric(const recipe::Recipe& r) const override { return r.eval.metric.empty() ? "f1" : r.eval.metric; }

 private:
  std::string task_;
  SquadData data_;
};

}  // namespace

std::unique_ptr<LabeledData> open_labeled_data(const recipe::Recipe& r, bool dev_only, int64_t max_positions) {
  if (r.data.is_squad()) return std::make_unique<SquadLabeledData>(r, dev_only, max_positions);
  return std::make_unique<GlueLabeledData>(r, dev_only);
}

}  // namespace sculpt::train
