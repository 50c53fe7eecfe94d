// recipe.codebook (finetune) on any task: Deep Compression's centroid fine-tuning
// (compress/codebook_share.h) of a model read from a k-means directory. The indices come from
// model.path's codebook file at every start (a resumed run reads them again; the centroids ride in
// the checkpointed weights), and every export (best/, final/) is a codebook directory.
#include "sculpt/compress/codebook_share.h"
#include "sculpt/core/log.h"
#include "sculpt/train/wrapped_task.h"

namespace sculpt::train {
namespace {

class CodebookTask : public WrappedTask {
 public:
  CodebookTask(std::unique_ptr<Task> inner, const recipe::Recipe& r) : WrappedTask(std::move(inner)), share_(model(), keys(), r.model.path) {
    int64_t entries = 0;
    for (const auto& m : share_.matrices()) entries += m.weight.numel();
    LOG_INFO("[codebook] centroid fine-tuning of {} shared matrices ({} weights on {}-bit codebooks): gradients summed per cluster",
             share_.matrices().size(), entries, share_.matrices().front().bits);
  }
  std::string describe() const override { return inner_->describe() + ", k-means centroids fine-tuned"; }
  void after_step() override {
    inner_->after_step();
    share_.project();
  }
  void export_to(const std::string& dir) override {
    inner_->export_to(dir);
    share_.write_directory(dir);
  }

 private:
  compress::CodebookShare share_;
};

}  // namespace

std::unique_ptr<Task> with_codebook(std::unique_ptr<Task> task, const recipe::Recipe& r) {
  return std::make_unique<CodebookTask>(std::move(task), r);
}

}  // namespace sculpt::train
