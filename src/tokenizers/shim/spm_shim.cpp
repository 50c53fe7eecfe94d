// A plain-C face over libsentencepiece, built as its own shared library and loaded with
// dlopen(RTLD_LOCAL | RTLD_DEEPBIND): Debian's libsentencepiece carries its own protobuf,
// which aborts when it shares a symbol namespace with libtorch's protobuf.
#include <sentencepiece_processor.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

// Minimal protobuf wire-format edit: set NormalizerSpec.add_dummy_prefix (ModelProto field 3,
// NormalizerSpec field 3) by appending the field; for scalars the last occurrence wins.
bool read_varint(const std::string& s, size_t& pos, uint64_t& v) {
  v = 0;
  for (int shift = 0; pos < s.size() && shift < 64; shift += 7) {
    uint8_t b = static_cast<uint8_t>(s[pos++]);
    v |= static_cast<uint64_t>(b & 0x7F) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

void write_varint(std::string& out, uint64_t v) {
  do {
    uint8_t b = v & 0x7F;
    v >>= 7;
    out.push_back(static_cast<char>(v ? b | 0x80 : b));
  } while (v);
}

bool set_add_dummy_prefix(std::string& model, bool value) {
  std::string out;
  size_t pos = 0;
  bool done = false;
  while (pos < model.size()) {
    size_t start = pos;
    uint64_t key;
    if (!read_varint(model, pos, key)) return false;
    const uint64_t field = key >> 3, wire = key & 7;
    if (wire == 0) {
      uint64_t v;
      if (!read_varint(model, pos, v)) return false;
    } else if (wire == 1) {
      pos += 8;
    } else if (wire == 5) {
      pos += 4;
    } else if (wire == 2) {
      uint64_t len;
      if (!read_varint(model, pos, len) || pos + len > model.size()) return false;
      if (field == 3) {
        std::string spec = model.substr(pos, len);
        spec.push_back(static_cast<char>((3 << 3) | 0));  // field 3, varint
        spec.push_back(static_cast<char>(value ? 1 : 0));
        write_varint(out, key);
        write_varint(out, spec.size());
        out += spec;
        pos += len;
        done = true;
        continue;
      }
      pos += len;
    } else {
      return false;
    }
    out.append(model, start, pos - start);
  }
  if (!done) return false;
  model.swap(out);
  return true;
}

}  // namespace

extern "C" {

// add_dummy_prefix: -1 keeps the model's setting, 0/1 overrides it (HF's non-legacy T5 uses 0).
void* sculpt_spm_load(const char* path, int add_dummy_prefix, char* err, int errlen) {
  std::ifstream in(path, std::ios::binary);
  if (!in.good()) {
    std::snprintf(err, static_cast<size_t>(errlen), "cannot open %s", path);
    return nullptr;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string model = buffer.str();
  if (add_dummy_prefix >= 0 && !set_add_dummy_prefix(model, add_dummy_prefix != 0)) {
    std::snprintf(err, static_cast<size_t>(errlen), "%s: not a SentencePiece model (no normalizer spec)", path);
    return nullptr;
  }
  auto* sp = new sentencepiece::SentencePieceProcessor();
  auto status = sp->LoadFromSerializedProto(model);
  if (!status.ok()) {
    std::snprintf(err, static_cast<size_t>(errlen), "%s: %s", path, status.ToString().c_str());
    delete sp;
    return nullptr;
  }
  return sp;
}

void sculpt_spm_free(void* h) { delete static_cast<sentencepiece::SentencePieceProcessor*>(h); }

int sculpt_spm_size(void* h) { return static_cast<sentencepiece::SentencePieceProcessor*>(h)->GetPieceSize(); }

// Writes up to cap ids; returns how many there are (call again with a bigger buffer if more).
int sculpt_spm_encode(void* h, const char* text, int len, int* out, int cap) {
  std::vector<int> ids;
  static_cast<sentencepiece::SentencePieceProcessor*>(h)->Encode(std::string(text, static_cast<size_t>(len)), &ids);
  for (int i = 0; i < cap && i < static_cast<int>(ids.size()); ++i) out[i] = ids[static_cast<size_t>(i)];
  return static_cast<int>(ids.size());
}

int sculpt_spm_id_to_piece(void* h, int id, char* out, int cap) {
  const std::string& p = static_cast<sentencepiece::SentencePieceProcessor*>(h)->IdToPiece(id);
  std::strncpy(out, p.c_str(), static_cast<size_t>(cap));
  return static_cast<int>(p.size());
}

int sculpt_spm_piece_to_id(void* h, const char* piece) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(h)->PieceToId(piece);
}

int sculpt_spm_unk_id(void* h) { return static_cast<sentencepiece::SentencePieceProcessor*>(h)->unk_id(); }

}  // extern "C"
