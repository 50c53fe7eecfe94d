// Encoded examples kept on disk so that a run, its later stages, every cell of a sweep and every
// rank tokenize a split once. A file's name is a digest of everything that decides its ids (the
// tokenizer's files, the data file's bytes, the length and every option), so a changed input or
// option misses; a file that fails its checks is refused with the reason, logged and rebuilt.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "sculpt/data/batching.h"

namespace sculpt::data {

// Part of every key: bump it whenever a tokenizer's output changes (as when longest_first became
// tokenizers' own), so files written by an older sculpt miss instead of serving old ids.
inline constexpr const char* kTokenizationVersion = "2";

// $SCULPT_CACHE/tokens (default ~/.cache/sculpt/tokens); "" (no cache) when SCULPT_CACHE is "off".
std::string token_cache_dir();

// A 128-bit digest of bytes, strings and files' contents, the same on every run and machine
// (a cache key, not a cryptographic hash).
class Digest {
 public:
  Digest& add_bytes(const void* data, size_t size);
  Digest& add(const std::string& s);  // length-prefixed: ("ab","c") != ("a","bc")
  Digest& add_file(const std::string& path);
  std::string hex() const;

 private:
  uint64_t a_ = 0x243F6A8885A308D3ULL, b_ = 0x13198A2E03707344ULL;
};

// The generic part: when DIR/KEY.safetensors is there, read(path) loads it (throwing a
// sculpt::Error refuses it: it is logged, removed and rebuilt); otherwise build() runs and
// write(path) files its result, written to a temporary and renamed, under DIR/KEY.lock, so
// concurrent ranks and sweep cells wait for one writer and then read its file. DIR "" only
// builds. Returns whether it read the file.
bool cache_or_build(const std::string& dir, const std::string& key, const std::function<void(const std::string&)>& read,
                    const std::function<void()>& build, const std::function<void(const std::string&)>& write);

struct CachedExamples {
  std::vector<Example> examples;
  bool hit = false;
};

// The GLUE examples filed under KEY in DIR, or build() run once and its result filed.
// `vocab_size` bounds the ids a file may hold.
CachedExamples cached_examples(const std::string& dir, const std::string& key, const std::string& description,
                               size_t vocab_size, const std::function<std::vector<Example>()>& build);

// The file (data/token_file.h): ids (int32), types (uint8), offsets (int64, n + 1), labels
// (float32). Reading refuses a file whose key, sizes, offsets or ids are wrong.
void write_token_file(const std::string& path, const std::string& key, const std::string& description,
                      const std::vector<Example>& examples);
std::vector<Example> read_token_file(const std::string& path, const std::string& key, size_t vocab_size);

}  // namespace sculpt::data
