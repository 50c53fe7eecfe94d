#include "sculpt/io/codebook_weights.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <limits>

#include "sculpt/core/error.h"

namespace sculpt::io {
namespace {

constexpr const char* kMetaKey = "sculpt_codebook";
constexpr int64_t kChunk = int64_t{1} << 20;  // entries per step: a whole number of bytes at any width

void check_bits(int bits) { SCULPT_CHECK(bits >= 1 && bits <= 8, "codebook indices of {} bits: 1 to 8", bits); }

int64_t packed_bytes(int64_t n, int bits) { return (n * bits + 7) / 8; }

torch::Tensor powers_of_two(int64_t n) { return torch::pow(2, torch::arange(n, torch::kLong)); }

nlohmann::json parse_meta(const Metadata& metadata, const std::string& path) {
  auto it = metadata.find(kMetaKey);
  SCULPT_CHECK(it != metadata.end(), "{}: no '{}' metadata, so not a codebook weights file", path, kMetaKey);
  try {
    auto j = nlohmann::json::parse(it->second);
    SCULPT_CHECK(j.is_object(), "{}: metadata '{}' is not a JSON object", path, kMetaKey);
    return j;
  } catch (const nlohmann::json::exception& e) {
    fail("{}: metadata '{}' is not valid JSON ({})", path, kMetaKey, e.what());
  }
}

// One coded tensor's metadata: bits in 1..8, a shape whose element count fits in int64, and a
// dtype name (F32 when absent).
struct Entry {
  int bits = 8;
  std::vector<int64_t> shape;
  int64_t numel = 1;
  std::string dtype = "F32";
};

Entry parse_entry(const nlohmann::json& entry, const std::string& path, const std::string& name) {
  SCULPT_CHECK(entry.is_object() && entry.contains("shape") && entry["shape"].is_array() && entry.contains("bits") &&
                   entry["bits"].is_number_integer() && (!entry.contains("dtype") || entry["dtype"].is_string()),
               "{}: codebook entry '{}' needs integer 'bits', a 'shape' array and a string 'dtype'", path, name);
  Entry e;
  const auto bits = entry["bits"].get<int64_t>();
  SCULPT_CHECK(bits >= 1 && bits <= 8, "{}: codebook entry '{}' has {} bits (1 to 8)", path, name, entry["bits"].dump());
  e.bits = static_cast<int>(bits);
  for (const auto& d : entry["shape"]) {
    SCULPT_CHECK(d.is_number_integer() && d.get<int64_t>() >= 0, "{}: codebook entry '{}' has a bad shape {}", path, name,
                 entry["shape"].dump());
    const int64_t v = d.get<int64_t>();
    SCULPT_CHECK(v == 0 || e.numel <= std::numeric_limits<int64_t>::max() / 8 / v, "{}: codebook entry '{}' has a shape too large {}",
                 path, name, entry["shape"].dump());
    e.numel *= v;
    e.shape.push_back(v);
  }
  if (entry.contains("dtype")) e.dtype = entry["dtype"].get<std::string>();
  return e;
}

}  // namespace

torch::Tensor pack_bits(const torch::Tensor& indices, int bits) {
  check_bits(bits);
  auto idx = indices.reshape(-1).to(torch::kCPU, torch::kLong);
  const int64_t n = idx.numel();
  if (n > 0)
    SCULPT_CHECK(idx.min().item<int64_t>() >= 0 && idx.max().item<int64_t>() < (int64_t{1} << bits),
                 "pack_bits: an index is outside [0, 2^{})", bits);
  auto out = torch::zeros({packed_bytes(n, bits)}, torch::kUInt8);
  const auto shifts = torch::arange(bits, torch::kLong), byte_weights = powers_of_two(8);
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t m = std::min(kChunk, n - start);
    auto stream = idx.narrow(0, start, m).unsqueeze(1).bitwise_right_shift(shifts).bitwise_and(1).reshape(-1);  // LSB first
    const int64_t pad = (8 - stream.numel() % 8) % 8;
    if (pad) stream = torch::cat({stream, torch::zeros({pad}, torch::kLong)});
    auto bytes = (stream.view({-1, 8}) * byte_weights).sum(1).to(torch::kUInt8);
    out.narrow(0, start * bits / 8, bytes.numel()).copy_(bytes);
  }
  return out;
}

torch::Tensor unpack_bits(const torch::Tensor& packed, int bits, int64_t n) {
  check_bits(bits);
  SCULPT_CHECK(packed.scalar_type() == torch::kUInt8 && packed.dim() == 1 && packed.numel() == packed_bytes(n, bits),
               "unpack_bits: {} indices of {} bits need {} bytes, got {}", n, bits, packed_bytes(n, bits), packed.numel());
  auto bytes = packed.to(torch::kLong);
  auto out = torch::empty({n}, torch::kLong);
  const auto bit_shifts = torch::arange(8, torch::kLong), index_weights = powers_of_two(bits);
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t m = std::min(kChunk, n - start);
    auto part = bytes.narrow(0, start * bits / 8, packed_bytes(m, bits));
    auto stream = part.unsqueeze(1).bitwise_right_shift(bit_shifts).bitwise_and(1).reshape(-1).narrow(0, 0, m * bits);
    out.narrow(0, start, m).copy_((stream.view({m, bits}) * index_weights).sum(1));
  }
  return out;
}

void write_codebook_weights(const std::string& path, const TensorMap& plain, const std::map<std::string, CodedTensor>& coded,
                            const Metadata& metadata) {
  TensorMap all = plain;
  nlohmann::json meta = nlohmann::json::object();
  for (const auto& [name, c] : coded) {
    SCULPT_CHECK(!plain.count(name), "codebook weights: '{}' is both coded and plain", name);
    SCULPT_CHECK(c.codebook.numel() <= (int64_t{1} << c.bits), "codebook weights: '{}' has {} centroids for {}-bit indices", name,
                 c.codebook.numel(), c.bits);
    all[name + "::codebook"] = c.codebook.reshape(-1).to(torch::kCPU, torch::kFloat32).contiguous();
    all[name + "::indices"] = pack_bits(c.indices, c.bits);
    meta[name] = {{"bits", c.bits}, {"shape", c.shape}, {"dtype", dtype_name(c.dtype)}};
  }
  Metadata m = metadata;
  m[kMetaKey] = meta.dump();
  write_safetensors(path, all, m);
}

CodebookContents read_codebook_contents(const std::string& path) {
  auto content = read_safetensors(path);
  const auto meta = parse_meta(content.metadata, path);
  CodebookContents out;
  for (const auto& [name, t] : content.tensors)
    if (name.find("::") == std::string::npos) out.plain[name] = t;
  for (const auto& [name, entry] : meta.items()) {
    const auto e = parse_entry(entry, path, name);
    const int bits = e.bits;
    const int64_t numel = e.numel;
    auto cb = content.tensors.find(name + "::codebook"), ix = content.tensors.find(name + "::indices");
    SCULPT_CHECK(cb != content.tensors.end() && ix != content.tensors.end(), "{}: coded tensor '{}' lacks its {}", path, name,
                 cb == content.tensors.end() ? "::codebook" : "::indices");
    const auto& codebook = cb->second;
    SCULPT_CHECK(codebook.dim() == 1 && codebook.scalar_type() == torch::kFloat32 && codebook.numel() >= 1 &&
                     codebook.numel() <= (int64_t{1} << bits),
                 "{}: '{}::codebook' must be 1 to 2^{} float32 values, is {} {}", path, name, bits, dtype_name(codebook.scalar_type()),
                 c10::str(codebook.sizes()));
    SCULPT_CHECK(ix->second.scalar_type() == torch::kUInt8 && ix->second.dim() == 1 && ix->second.numel() == packed_bytes(numel, bits),
                 "{}: '{}::indices' must be {} bytes of U8 ({} indices of {} bits), is {} {}", path, name, packed_bytes(numel, bits),
                 numel, bits, dtype_name(ix->second.scalar_type()), c10::str(ix->second.sizes()));
    auto idx = unpack_bits(ix->second, bits, numel);
    SCULPT_CHECK(numel == 0 || idx.max().item<int64_t>() < codebook.numel(), "{}: '{}' has an index past its {} centroids", path, name,
                 codebook.numel());
    out.coded[name] = {codebook, idx, bits, e.shape, dtype_from_name(e.dtype, path + ": " + name)};
  }
  for (const auto& [name, t] : content.tensors)
    if (name.find("::") != std::string::npos)
      SCULPT_CHECK(meta.contains(name.substr(0, name.find("::"))), "{}: '{}' belongs to no coded tensor in the metadata", path, name);
  return out;
}

TensorMap read_codebook_weights(const std::string& path) {
  auto contents = read_codebook_contents(path);
  TensorMap out = std::move(contents.plain);
  for (const auto& [name, c] : contents.coded) out[name] = c.codebook.index_select(0, c.indices).view(c.shape).to(c.dtype);
  return out;
}

TensorShapes read_codebook_shapes(const std::string& path) {
  auto content = read_safetensors(path);
  const auto meta = parse_meta(content.metadata, path);
  TensorShapes out;
  for (const auto& [name, t] : content.tensors)
    if (name.find("::") == std::string::npos) out[name] = t.sizes().vec();
  for (const auto& [name, entry] : meta.items()) out[name] = parse_entry(entry, path, name).shape;
  return out;
}

}  // namespace sculpt::io
