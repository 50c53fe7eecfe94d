#include "sculpt/models/any_bert.h"

#include <torch/torch.h>

#include <filesystem>

#include "sculpt/models/int8_linear.h"

namespace fs = std::filesystem;

namespace sculpt::models {

AnyBert load_any_bert(const std::string& dir, io::WeightFormat prefer) {
  AnyBert out;
  if (is_packed_bert(io::read_json((fs::path(dir) / "config.json").string()))) {
    auto m = load_packed_bert(dir);
    out.module = m.ptr();
    out.forward = [m](const Batch& b, const ForwardOptions& o) mutable { return m->forward(b, o); };
    out.save = [m](const std::string& to) mutable { save_packed_bert(m, to); };
    out.config = m->config.base;
    out.keys = packed_bert_key_map(m->config);
    out.packed = true;
  } else {
    auto m = load_bert(dir, /*strict=*/true, prefer).model;
    out.module = m.ptr();
    out.forward = [m](const Batch& b, const ForwardOptions& o) mutable { return m->forward(b, o); };
    out.save = [m](const std::string& to) mutable { save_bert(m, to); };
    out.config = m->config;
    out.keys = bert_key_map(m->config);
  }
  out.dir = dir;
  out.int8_layers = install_int8_kernels(*out.module, out.keys, dir);
  return out;
}

void AnyBert::to(const torch::Device& device) {
  module->to(device);
  if (int8_layers > 0 && !device.is_cpu()) install_int8_kernels(*module, keys, dir);  // the kernels hold their own copies
}

}  // namespace sculpt::models
