#include "sculpt/data/token_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <torch/torch.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "sculpt/core/error.h"
#include "sculpt/core/log.h"
#include "sculpt/io/safetensors.h"

namespace fs = std::filesystem;

namespace sculpt::data {
namespace {

constexpr const char* kFormat = "sculpt-tokens-1";

uint64_t mix(uint64_t h, uint64_t word, uint64_t k) {
  h ^= word * k;
  h = (h << 31) | (h >> 33);
  return h * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
}

// An exclusive flock on PATH for this object's lifetime (released by the kernel if we die).
class FileLock {
 public:
  explicit FileLock(const std::string& path) : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)) {
    SCULPT_CHECK(fd_ >= 0, "{}: cannot create the token cache lock ({})", path, std::strerror(errno));
    while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
    }
  }
  ~FileLock() { ::close(fd_); }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_;
};

}  // namespace

std::string token_cache_dir() {
  const char* env = std::getenv("SCULPT_CACHE");
  if (env && std::string(env) == "off") return "";
  if (env && *env) return (fs::path(env) / "tokens").string();
  const char* home = std::getenv("HOME");
  return (fs::path(home && *home ? home : "/tmp") / ".cache" / "sculpt" / "tokens").string();
}

Digest& Digest::add_bytes(const void* data, size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    a_ = mix(a_, w, 0xFF51AFD7ED558CCDULL);
    b_ = mix(b_, w, 0xC4CEB9FE1A85EC53ULL);
  }
  uint64_t tail = 0;
  std::memcpy(&tail, p + i, size - i);
  a_ = mix(a_, tail ^ (static_cast<uint64_t>(size - i) << 56), 0xFF51AFD7ED558CCDULL);
  b_ = mix(b_, tail ^ (static_cast<uint64_t>(size - i) << 56), 0xC4CEB9FE1A85EC53ULL);
  return *this;
}

Digest& Digest::add(const std::string& s) {
  const uint64_t n = s.size();
  add_bytes(&n, sizeof(n));
  return add_bytes(s.data(), s.size());
}

Digest& Digest::add_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SCULPT_CHECK(in.good(), "{}: cannot open ({})", path, std::strerror(errno));
  std::vector<char> block(1 << 20);
  uint64_t total = 0;
  while (in) {
    in.read(block.data(), static_cast<std::streamsize>(block.size()));
    const auto got = static_cast<size_t>(in.gcount());
    add_bytes(block.data(), got);
    total += got;
  }
  return add_bytes(&total, sizeof(total));
}

std::string Digest::hex() const { return fmt::format("{:016x}{:016x}", a_, b_); }

void write_token_file(const std::string& path, const std::string& key, const std::string& description,
                      const std::vector<Example>& examples) {
  size_t total = 0;
  for (const auto& e : examples) total += e.ids.size();
  auto ids = torch::empty({static_cast<int64_t>(total)}, torch::kInt32);
  auto types = torch::empty({static_cast<int64_t>(total)}, torch::kUInt8);
  auto offsets = torch::empty({static_cast<int64_t>(examples.size()) + 1}, torch::kInt64);
  auto labels = torch::empty({static_cast<int64_t>(examples.size())}, torch::kFloat32);
  int32_t* ip = ids.data_ptr<int32_t>();
  uint8_t* tp = types.data_ptr<uint8_t>();
  int64_t* op = offsets.data_ptr<int64_t>();
  float* lp = labels.data_ptr<float>();
  size_t at = 0;
  op[0] = 0;
  for (size_t i = 0; i < examples.size(); ++i) {
    const auto& e = examples[i];
    SCULPT_CHECK(e.types.size() == e.ids.size(), "token cache: example {} has {} ids and {} types", i, e.ids.size(), e.types.size());
    std::copy(e.ids.begin(), e.ids.end(), ip + at);
    std::copy(e.types.begin(), e.types.end(), tp + at);
    at += e.ids.size();
    op[i + 1] = static_cast<int64_t>(at);
    lp[i] = e.label;
  }
  io::write_safetensors(path, {{"ids", ids}, {"types", types}, {"offsets", offsets}, {"labels", labels}},
                        {{"format", kFormat}, {"key", key}, {"description", description}});
}

std::vector<Example> read_token_file(const std::string& path, const std::string& key, size_t vocab_size) {
  const auto content = io::read_safetensors(path);
  auto meta = [&](const char* k) {
    auto it = content.metadata.find(k);
    return it == content.metadata.end() ? std::string() : it->second;
  };
  SCULPT_CHECK(meta("format") == kFormat, "{}: format '{}', expected '{}'", path, meta("format"), kFormat);
  SCULPT_CHECK(meta("key") == key, "{}: filed under key {}, expected {}", path, meta("key"), key);
  auto tensor = [&](const char* name, torch::ScalarType type) {
    auto it = content.tensors.find(name);
    SCULPT_CHECK(it != content.tensors.end() && it->second.dim() == 1 && it->second.scalar_type() == type,
                 "{}: no 1-d {} tensor '{}'", path, c10::toString(type), name);
    return it->second;
  };
  const auto ids = tensor("ids", torch::kInt32), types = tensor("types", torch::kUInt8);
  const auto offsets = tensor("offsets", torch::kInt64), labels = tensor("labels", torch::kFloat32);
  const int64_t n = labels.numel(), total = ids.numel();
  SCULPT_CHECK(types.numel() == total && offsets.numel() == n + 1, "{}: {} ids, {} types, {} offsets for {} examples", path,
               total, types.numel(), offsets.numel(), n);
  const int32_t* ip = ids.data_ptr<int32_t>();
  const uint8_t* tp = types.data_ptr<uint8_t>();
  const int64_t* op = offsets.data_ptr<int64_t>();
  const float* lp = labels.data_ptr<float>();
  SCULPT_CHECK(op[0] == 0 && op[n] == total, "{}: offsets run from {} to {}, expected 0 to {}", path, op[0], op[n], total);
  for (int64_t i = 0; i < total; ++i)
    SCULPT_CHECK(ip[i] >= 0 && static_cast<size_t>(ip[i]) < vocab_size, "{}: id {} at {} outside the vocabulary of {}", path,
                 ip[i], i, vocab_size);
  std::vector<Example> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    SCULPT_CHECK(op[i + 1] >= op[i], "{}: offsets decrease at example {}", path, i);
    auto& e = out[static_cast<size_t>(i)];
    e.ids.assign(ip + op[i], ip + op[i + 1]);
    e.types.assign(tp + op[i], tp + op[i + 1]);
    e.label = lp[i];
  }
  return out;
}

CachedExamples cached_examples(const std::string& dir, const std::string& key, const std::string& description,
                               size_t vocab_size, const std::function<std::vector<Example>()>& build) {
  if (dir.empty()) return {build(), false};
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    LOG_WARN("[data] token cache {}: cannot create ({}); tokenizing without a cache", dir, ec.message());
    return {build(), false};
  }
  const std::string path = (fs::path(dir) / (key + ".safetensors")).string();
  FileLock lock(path + ".lock");  // one writer; the others wait here and then read its file
  if (fs::exists(path)) {
    try {
      return {read_token_file(path, key, vocab_size), true};
    } catch (const Error& e) {
      LOG_WARN("[data] token cache refused, rebuilding it: {}", e.what());
      fs::remove(path, ec);
    }
  }
  CachedExamples out{build(), false};
  try {
    write_token_file(path, key, description, out.examples);
  } catch (const Error& e) {
    LOG_WARN("[data] token cache not written: {}", e.what());
  }
  return out;
}

}  // namespace sculpt::data
