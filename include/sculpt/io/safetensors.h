// safetensors reader/writer (https://github.com/huggingface/safetensors format), with the
// reference implementation's validation: a bad file is refused with a sculpt::Error naming
// the file and the problem, never a crash.
#pragma once
#include <torch/types.h>

#include <map>
#include <string>
#include <vector>

namespace sculpt::io {

using TensorMap = std::map<std::string, torch::Tensor>;
using Metadata = std::map<std::string, std::string>;

struct SafetensorsContent {
  TensorMap tensors;
  Metadata metadata;
};

// Parse an in-memory safetensors buffer; `name` is used in error messages.
SafetensorsContent parse_safetensors(const std::string& name, const char* data, size_t size);
// A file is memory-mapped copy-on-write and its tensors wrap the mapping (no copy; the pages
// are read when first touched and stay shared with the page cache until written). A tensor
// whose offset is not aligned to its element size is copied.
SafetensorsContent read_safetensors(const std::string& path);

// The declared name -> shape table of a file, validated, reading only its header: a model's
// config is checked against it before anything is allocated.
using TensorShapes = std::map<std::string, std::vector<int64_t>>;
TensorShapes read_safetensors_shapes(const std::string& path);

// Serialize tensors (made contiguous, CPU) to bytes / to a file. The file is written to a
// temporary beside it, fsync'ed and renamed, so a crash never leaves a half-written file.
std::string serialize_safetensors(const TensorMap& tensors, const Metadata& metadata = {});
void write_safetensors(const std::string& path, const TensorMap& tensors,
                       const Metadata& metadata = {});

// dtype <-> safetensors dtype string ("F32", "BF16", ...).
std::string dtype_name(torch::ScalarType type);
torch::ScalarType dtype_from_name(const std::string& name, const std::string& context);

}  // namespace sculpt::io
