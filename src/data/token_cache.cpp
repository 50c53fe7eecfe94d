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
#include "sculpt/data/token_file.h"

namespace fs = std::filesystem;

namespace sculpt::data {
namespace {

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
  for (size_t i = 0; i < examples.size(); ++i)
    SCULPT_CHECK(examples[i].types.size() == examples[i].ids.size(), "token cache: example {} has {} ids and {} types", i,
                 examples[i].ids.size(), examples[i].types.size());
  auto labels = torch::empty({static_cast<int64_t>(examples.size())}, torch::kFloat32);
  for (size_t i = 0; i < examples.size(); ++i) labels.data_ptr<float>()[i] = examples[i].label;
  write_token_columns(path, key, description,
                      {{"ids", flat_column<int32_t>(examples, [](const Example& e) -> auto& { return e.ids; })},
                       {"types", flat_column<uint8_t>(examples, [](const Example& e) -> auto& { return e.types; })},
                       {"offsets", row_offsets(examples, [](const Example& e) -> auto& { return e.ids; })},
                       {"labels", labels}});
}

std::vector<Example> read_token_file(const std::string& path, const std::string& key, size_t vocab_size) {
  const TokenFile file(path, key);
  const int64_t n = file.length("labels", torch::kFloat32), total = file.length("ids", torch::kInt32);
  const auto ids = file.column("ids", torch::kInt32, {total}), types = file.column("types", torch::kUInt8, {total});
  file.check_range("ids", ids, 0, static_cast<int64_t>(vocab_size), fmt::format("the vocabulary of {}", vocab_size));
  const int64_t* op = file.offsets("offsets", n, total);
  const int32_t* ip = ids.data_ptr<int32_t>();
  const uint8_t* tp = types.data_ptr<uint8_t>();
  const float* lp = file.column("labels", torch::kFloat32, {n}).data_ptr<float>();
  std::vector<Example> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    auto& e = out[static_cast<size_t>(i)];
    e.ids.assign(ip + op[i], ip + op[i + 1]);
    e.types.assign(tp + op[i], tp + op[i + 1]);
    e.label = lp[i];
  }
  return out;
}

bool cache_or_build(const std::string& dir, const std::string& key, const std::function<void(const std::string&)>& read,
                    const std::function<void()>& build, const std::function<void(const std::string&)>& write) {
  if (dir.empty()) return build(), false;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    LOG_WARN("[data] token cache {}: cannot create ({}); tokenizing without a cache", dir, ec.message());
    return build(), false;
  }
  const std::string path = (fs::path(dir) / (key + ".safetensors")).string();
  FileLock lock(path + ".lock");  // one writer; the others wait here and then read its file
  if (fs::exists(path)) {
    try {
      read(path);
      return true;
    } catch (const Error& e) {
      LOG_WARN("[data] token cache refused, rebuilding it: {}", e.what());
      fs::remove(path, ec);
    }
  }
  build();
  try {
    write(path);
  } catch (const Error& e) {
    LOG_WARN("[data] token cache not written: {}", e.what());
  }
  return false;
}

CachedExamples cached_examples(const std::string& dir, const std::string& key, const std::string& description,
                               size_t vocab_size, const std::function<std::vector<Example>()>& build) {
  CachedExamples out;
  out.hit = cache_or_build(
      dir, key, [&](const std::string& path) { out.examples = read_token_file(path, key, vocab_size); },
      [&] { out.examples = build(); }, [&](const std::string& path) { write_token_file(path, key, description, out.examples); });
  return out;
}

}  // namespace sculpt::data
