#include "sculpt/io/safetensors.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include "sculpt/core/error.h"
#include "sculpt/io/files.h"

namespace sculpt::io {
namespace {

// As the reference implementation: headers over 100 MB are refused.
constexpr uint64_t kMaxHeaderSize = 100'000'000;

struct DtypeInfo {
  const char* name;
  torch::ScalarType type;
  size_t bytes;
};

const DtypeInfo kDtypes[] = {
    {"F64", torch::kFloat64, 8}, {"F32", torch::kFloat32, 4}, {"F16", torch::kFloat16, 2},
    {"BF16", torch::kBFloat16, 2}, {"I64", torch::kInt64, 8}, {"I32", torch::kInt32, 4},
    {"I16", torch::kInt16, 2},   {"I8", torch::kInt8, 1},     {"U8", torch::kUInt8, 1},
    {"BOOL", torch::kBool, 1},
};

const DtypeInfo& info_by_name(const std::string& name, const std::string& context) {
  for (const auto& d : kDtypes)
    if (name == d.name) return d;
  fail("{}: unsupported dtype '{}'", context, name);
}

}  // namespace

std::string dtype_name(torch::ScalarType type) {
  for (const auto& d : kDtypes)
    if (d.type == type) return d.name;
  fail("safetensors: cannot store dtype {}", c10::toString(type));
}

torch::ScalarType dtype_from_name(const std::string& name, const std::string& context) {
  return info_by_name(name, context).type;
}

namespace {

struct Entry {
  std::string key;
  const DtypeInfo* dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

struct Parsed {
  std::vector<Entry> entries;  // sorted by offset
  Metadata metadata;
  uint64_t body_offset = 0;
};

// Validate the header against the file size as the reference implementation does; reads only
// the first 8 + header bytes of `data`.
Parsed parse_header(const std::string& name, const char* data, uint64_t size) {
  SCULPT_CHECK(size >= 8, "{}: not a safetensors file: {} bytes, shorter than the 8-byte header length",
               name, size);
  uint64_t header_len = 0;
  std::memcpy(&header_len, data, 8);  // little-endian on every supported host
  SCULPT_CHECK(header_len <= kMaxHeaderSize, "{}: header length {} exceeds the {} byte limit", name,
               header_len, kMaxHeaderSize);
  SCULPT_CHECK(header_len <= size - 8, "{}: header length {} runs past the end of the file ({} bytes)",
               name, header_len, size);
  const uint64_t body_size = size - 8 - header_len;

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(data + 8, data + 8 + header_len);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: header is not valid JSON ({})", name, e.what());
  }
  SCULPT_CHECK(header.is_object(), "{}: header must be a JSON object", name);

  Parsed out;
  out.body_offset = 8 + header_len;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& key = it.key();
    if (key == "__metadata__") {
      SCULPT_CHECK(it->is_object(), "{}: __metadata__ must be an object of strings", name);
      for (auto m = it->begin(); m != it->end(); ++m) {
        SCULPT_CHECK(m->is_string(), "{}: __metadata__['{}'] must be a string", name, m.key());
        out.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    const std::string where = fmt::format("{}: tensor '{}'", name, key);
    const auto& v = *it;
    SCULPT_CHECK(v.is_object() && v.contains("dtype") && v.contains("shape") && v.contains("data_offsets"),
                 "{}: entry needs dtype, shape and data_offsets", where);
    SCULPT_CHECK(v["dtype"].is_string(), "{}: dtype must be a string", where);
    Entry e{key, &info_by_name(v["dtype"].get<std::string>(), where), {}, 0, 0};
    SCULPT_CHECK(v["shape"].is_array(), "{}: shape must be an array", where);
    for (const auto& d : v["shape"]) {
      SCULPT_CHECK(d.is_number_unsigned() && d.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX),
                   "{}: shape entries must be non-negative integers", where);
      e.shape.push_back(d.get<int64_t>());
    }
    const auto& off = v["data_offsets"];
    SCULPT_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
                 "{}: data_offsets must be two non-negative integers", where);
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    out.entries.push_back(std::move(e));
  }

  // Offsets must tile the data section exactly: sorted, contiguous, non-overlapping, and
  // each entry's byte size must equal dtype size × number of elements.
  std::sort(out.entries.begin(), out.entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  for (const auto& e : out.entries) {
    SCULPT_CHECK(e.begin == cursor && e.end >= e.begin,
                 "{}: tensor '{}' has invalid data_offsets [{}, {}] (expected to start at {}: "
                 "offsets must be contiguous and non-overlapping)",
                 name, e.key, e.begin, e.end, cursor);
    uint64_t numel = 1;
    for (int64_t d : e.shape) {
      SCULPT_CHECK(d == 0 || numel <= UINT64_MAX / static_cast<uint64_t>(d), "{}: tensor '{}' shape overflows", name, e.key);
      numel *= static_cast<uint64_t>(d);
    }
    SCULPT_CHECK(numel <= UINT64_MAX / e.dtype->bytes && numel * e.dtype->bytes == e.end - e.begin,
                 "{}: tensor '{}' byte size {} does not match dtype {} x shape ({} bytes expected)", name,
                 e.key, e.end - e.begin, e.dtype->name, numel * e.dtype->bytes);
    cursor = e.end;
  }
  SCULPT_CHECK(cursor == body_size, "{}: data section is {} bytes but the tensors cover {} (truncated or padded file)",
               name, body_size, cursor);
  return out;
}

// A read-only file mapped copy-on-write (MAP_PRIVATE): tensors wrap its pages without a copy,
// writing to one (training) copies only the touched pages and never reaches the file. A file
// replaced by rename (every writer here does that) keeps the mapped inode alive; one rewritten in
// place under a running process is the usual mmap hazard, as in safetensors' own loader.
struct Mapping {
  void* base = MAP_FAILED;
  size_t size = 0;
  ~Mapping() {
    if (base != MAP_FAILED) ::munmap(base, size);
  }
};

std::shared_ptr<Mapping> map_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  SCULPT_CHECK(fd >= 0, "{}: cannot open ({})", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("{}: not a regular file", path);
  }
  auto m = std::make_shared<Mapping>();
  m->size = static_cast<size_t>(st.st_size);
  if (m->size > 0) m->base = ::mmap(nullptr, m->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);
  SCULPT_CHECK(m->size == 0 || m->base != MAP_FAILED, "{}: cannot map ({})", path, std::strerror(err));
  return m;
}

}  // namespace

SafetensorsContent parse_safetensors(const std::string& name, const char* data, size_t size) {
  Parsed parsed = parse_header(name, data, size);
  SafetensorsContent out;
  out.metadata = std::move(parsed.metadata);
  const char* body = data + parsed.body_offset;
  for (const auto& e : parsed.entries) {
    torch::Tensor t = torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype->type));
    if (e.end > e.begin) std::memcpy(t.data_ptr(), body + e.begin, e.end - e.begin);
    out.tensors[e.key] = t;
  }
  return out;
}

SafetensorsContent read_safetensors(const std::string& path) {
  auto mapping = map_file(path);
  const char* data = static_cast<const char*>(mapping->base);
  Parsed parsed = parse_header(path, data, mapping->size);
  SafetensorsContent out;
  out.metadata = std::move(parsed.metadata);
  char* body = static_cast<char*>(mapping->base) + parsed.body_offset;
  for (const auto& e : parsed.entries) {
    char* at = body + e.begin;
    const auto options = torch::TensorOptions().dtype(e.dtype->type);
    if (e.end == e.begin || reinterpret_cast<uintptr_t>(at) % e.dtype->bytes != 0) {  // empty, or unaligned: copy
      torch::Tensor t = torch::empty(e.shape, options);
      if (e.end > e.begin) std::memcpy(t.data_ptr(), at, e.end - e.begin);
      out.tensors[e.key] = t;
    } else {
      out.tensors[e.key] = torch::from_blob(at, e.shape, [mapping](void*) {}, options);
    }
  }
  return out;
}

TensorShapes read_safetensors_shapes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SCULPT_CHECK(in.good(), "{}: cannot open ({})", path, std::strerror(errno));
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  SCULPT_CHECK(!ec, "{}: cannot stat ({})", path, ec.message());
  std::string head(8, '\0');
  in.read(head.data(), 8);
  uint64_t header_len = 0;
  if (in.gcount() == 8) std::memcpy(&header_len, head.data(), 8);
  if (size >= 8 && header_len <= kMaxHeaderSize && header_len <= size - 8) {
    head.resize(8 + header_len);
    in.read(head.data() + 8, static_cast<std::streamsize>(header_len));
  }
  // parse_header reads only these bytes, and checks the offsets against the real size.
  Parsed parsed = parse_header(path, head.data(), size);
  TensorShapes out;
  for (auto& e : parsed.entries) out[e.key] = std::move(e.shape);
  return out;
}

std::string serialize_safetensors(const TensorMap& tensors, const Metadata& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> ordered;
  uint64_t offset = 0;
  for (const auto& [key, value] : tensors) {
    torch::Tensor t = value.detach().to(torch::kCPU).contiguous();
    uint64_t bytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    header[key] = {{"dtype", dtype_name(t.scalar_type())},
                   {"shape", t.sizes().vec()},
                   {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    ordered.push_back(t);
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // align the data section to 8 bytes
  std::string out(8, '\0');
  uint64_t n = json.size();
  std::memcpy(out.data(), &n, 8);
  out += json;
  out.reserve(out.size() + offset);
  for (const auto& t : ordered) out.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  return out;
}

void write_safetensors(const std::string& path, const TensorMap& tensors, const Metadata& metadata) {
  write_file_atomic(path, serialize_safetensors(tensors, metadata));
}

}  // namespace sculpt::io
