// safetensors.cpp: see safetensors.h.
#include "safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>

#include "common/atomic_file.h"
#include "common/utf8.h"
#include "common/huge_alloc.h"

namespace cnnc::rt {

namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeader = 100000000;  // the reference loader's limit
constexpr size_t kAlign = 64;
constexpr int kMaxDepth = 64;  // a valid header nests 3 deep

struct DTypeInfo { DType t; const char* name; size_t size; };
constexpr DTypeInfo kDTypes[] = {
    {DType::F32, "F32", 4}, {DType::I64, "I64", 8},  {DType::F64, "F64", 8},   {DType::I32, "I32", 4},
    {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2}, {DType::U8, "U8", 1},    {DType::I8, "I8", 1},
    {DType::I16, "I16", 2}, {DType::U16, "U16", 2},  {DType::BOOL, "BOOL", 1}, {DType::U32, "U32", 4},
    {DType::U64, "U64", 8},
};

const DTypeInfo* info(DType t) {
  for (const auto& d : kDTypes)
    if (d.t == t) return &d;
  return nullptr;
}

std::string shapeStr(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
  return r + "]";
}

std::string offStr(uint64_t b, uint64_t e) { return "[" + std::to_string(b) + ", " + std::to_string(e) + "]"; }

// A name as it appears in messages: JSON-escaped so that control characters or odd bytes cannot
// garble the output.
std::string q(const std::string& s) {
  std::string r = "'";
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\x%02x", c);
      r += buf;
    } else {
      r += (char)c;
    }
  }
  return r + "'";
}

uint64_t readLE64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

struct Entry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
  size_t slot;  // offset in the aligned arena
};

using ArenaPtr = std::unique_ptr<uint8_t, void (*)(void*)>;

// Builds a json DOM from SAX events, rejecting duplicate keys and deep nesting, and recording the
// top-level keys in the order they appear.
struct HeaderSax {
  json root;
  std::vector<std::string> order;  // top-level keys, in header order
  std::string problem;             // why parsing stopped
  struct Level { json* v; std::string key; std::set<std::string> keys; };
  std::vector<Level> stack;

  bool put(json&& v, bool container) {
    json* slot;
    if (stack.empty()) {
      root = std::move(v);
      slot = &root;
    } else if (stack.back().v->is_array()) {
      stack.back().v->push_back(std::move(v));
      slot = &stack.back().v->back();
    } else {
      slot = &(*stack.back().v)[stack.back().key];
      *slot = std::move(v);
    }
    if (container) {
      if (stack.size() >= (size_t)kMaxDepth) {
        problem = "header JSON nests deeper than " + std::to_string(kMaxDepth) + " levels";
        return false;
      }
      stack.push_back({slot, {}, {}});
    }
    return true;
  }
  bool null() { return put(nullptr, false); }
  bool boolean(bool b) { return put(b, false); }
  bool number_integer(json::number_integer_t x) { return put(x, false); }
  bool number_unsigned(json::number_unsigned_t x) { return put(x, false); }
  bool number_float(json::number_float_t x, const json::string_t&) { return put(x, false); }
  bool string(json::string_t& s) { return put(std::move(s), false); }
  bool binary(json::binary_t&) { problem = "header is not valid JSON"; return false; }
  bool start_object(std::size_t) { return put(json::object(), true); }
  bool start_array(std::size_t) { return put(json::array(), true); }
  bool end_object() { stack.pop_back(); return true; }
  bool end_array() { stack.pop_back(); return true; }
  bool key(json::string_t& k) {
    Level& l = stack.back();
    if (!l.keys.insert(k).second) {
      // Top level: tensor names; one level down: a tensor's fields or the metadata keys.
      if (!root.is_object()) problem = "header JSON has duplicate key " + q(k);
      else if (stack.size() == 1 && k == "__metadata__") problem = "header has more than one __metadata__ entry";
      else if (stack.size() == 1) problem = "duplicate tensor name " + q(k);
      else if (stack.size() == 2 && stack[0].key == "__metadata__") problem = "__metadata__ has duplicate key " + q(k);
      else if (stack.size() == 2) problem = "tensor " + q(stack[0].key) + ": duplicate key " + q(k);
      else problem = "header JSON has duplicate key " + q(k);
      return false;
    }
    if (stack.size() == 1 && root.is_object()) order.push_back(k);
    l.key = std::move(k);
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
    std::string w = e.what();
    if (w.size() > 2 && w[0] == '[') {
      size_t c = w.find("] ");
      if (c != std::string::npos) w = w.substr(c + 2);
    }
    problem = "header is not valid JSON: " + w;
    return false;
  }
};

// Parses and validates the header against a data section of `dataSize` bytes. Messages lack the
// "<file>: " prefix, which the caller adds.
bool parseHeader(const uint8_t* h, size_t n, uint64_t dataSize, std::vector<Entry>& out,
                 std::map<std::string, std::string>& meta, std::string& err) {
  size_t bad = firstBadUtf8(h, n);
  if (bad != n) {
    err = "header is not valid UTF-8 (bad byte 0x";
    char buf[8];
    snprintf(buf, sizeof buf, "%02x", h[bad]);
    err += std::string(buf) + " at header offset " + std::to_string(bad) + ")";
    return false;
  }

  // The JSON parser takes a NUL byte for the end of its input; JSON allows none anywhere.
  if (const void* z = std::memchr(h, 0, n)) {
    err = "header is not valid JSON: it contains a NUL byte at header offset " + std::to_string((const uint8_t*)z - h);
    return false;
  }

  // Parsed with a SAX handler that builds the DOM itself, so that duplicate keys (which JSON parsers
  // silently merge) and absurd nesting are caught, and the header order of the tensors is kept
  // (json objects sort their keys; ordered_json and nlohmann's callback parser are quadratic).
  HeaderSax sax;
  bool parsed;
  try {
    parsed = json::sax_parse(h, h + n, &sax);
  } catch (const std::bad_alloc&) {
    err = "out of memory parsing the header (" + std::to_string(n) + " bytes)";
    return false;
  } catch (const json::exception& e) {
    sax.problem = std::string("header is not valid JSON: ") + e.what();
    parsed = false;
  }
  if (!parsed) {
    err = sax.problem.empty() ? "header is not valid JSON" : sax.problem;
    return false;
  }
  const json& j = sax.root;
  const std::vector<std::string>& order = sax.order;
  if (!j.is_object()) {
    err = std::string("header is not a JSON object (it is ") + (j.is_array() ? "an array" : j.type_name()) + ")";
    return false;
  }

  out.clear();
  meta.clear();
  for (const std::string& name : order) {
    auto it = j.find(name);
    if (it == j.end()) continue;  // cannot happen: every top-level key was recorded once
    const json& v = *it;
    if (name == "__metadata__") {
      if (v.is_null()) continue;  // the reference loader reads it as an optional map
      if (!v.is_object()) {
        err = std::string("__metadata__ must be a JSON object mapping strings to strings, not ") + v.type_name();
        return false;
      }
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) {
          err = "__metadata__ value of " + q(m.key()) + " must be a string, not " + m.value().type_name();
          return false;
        }
        meta[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    std::string t = "tensor " + q(name) + ": ";
    if (!v.is_object()) {
      err = t + "entry must be a JSON object with dtype, shape and data_offsets, not " + v.type_name();
      return false;
    }
    Entry e;
    e.name = name;
    auto dt = v.find("dtype");
    if (dt == v.end()) { err = t + "missing \"dtype\""; return false; }
    if (!dt->is_string()) { err = t + "\"dtype\" must be a string, not " + std::string(dt->type_name()); return false; }
    if (!dtypeFromName(dt->get<std::string>(), e.dtype)) {
      err = t + "unknown dtype " + q(dt->get<std::string>()) +
            " (known: F32, F64, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL)";
      return false;
    }
    auto sh = v.find("shape");
    if (sh == v.end()) { err = t + "missing \"shape\""; return false; }
    if (!sh->is_array()) { err = t + "\"shape\" must be an array of integers, not " + std::string(sh->type_name()); return false; }
    bool overflow = false;
    for (const auto& d : *sh) {
      if (!d.is_number_integer()) {
        err = t + "\"shape\" must be an array of integers, but it holds " + d.dump();
        return false;
      }
      if (d.is_number_unsigned()) {
        uint64_t u = d.get<uint64_t>();
        if (u > (uint64_t)INT64_MAX) { overflow = true; e.shape.push_back(-1); continue; }
        e.shape.push_back((int64_t)u);
      } else {
        int64_t s = d.get<int64_t>();
        if (s < 0) { err = t + "negative dimension " + std::to_string(s) + " in shape " + sh->dump(); return false; }
        e.shape.push_back(s);
      }
    }
    auto of = v.find("data_offsets");
    if (of == v.end()) { err = t + "missing \"data_offsets\""; return false; }
    if (!of->is_array() || of->size() != 2 || !(*of)[0].is_number_unsigned() || !(*of)[1].is_number_unsigned()) {
      err = t + "\"data_offsets\" must be two non-negative integers [begin, end], not " + of->dump();
      return false;
    }
    e.begin = (*of)[0].get<uint64_t>();
    e.end = (*of)[1].get<uint64_t>();
    if (e.begin > e.end) {
      err = t + "data_offsets " + offStr(e.begin, e.end) + " begin after they end";
      return false;
    }
    // Element count x dtype size, multiplied in order as the reference loader does.
    int64_t bytes = 1;
    for (int64_t d : e.shape)
      if (overflow || __builtin_mul_overflow(bytes, d, &bytes)) { overflow = true; break; }
    if (!overflow && __builtin_mul_overflow(bytes, (int64_t)dtypeSize(e.dtype), &bytes)) overflow = true;
    if (overflow) {
      err = t + "shape " + sh->dump() + " of " + dtypeName(e.dtype) + " is too large: its size in bytes overflows a 64-bit integer";
      return false;
    }
    if ((uint64_t)bytes != e.end - e.begin) {
      err = t + "data_offsets " + offStr(e.begin, e.end) + " hold " + std::to_string(e.end - e.begin) + " bytes but shape " +
            shapeStr(e.shape) + " of " + dtypeName(e.dtype) + " needs " + std::to_string(bytes);
      return false;
    }
    out.push_back(std::move(e));
  }

  // The tensors must tile the data section exactly: sorted by begin, each starts where the last ended.
  std::vector<const Entry*> sorted;
  for (const auto& e : out) sorted.push_back(&e);
  std::stable_sort(sorted.begin(), sorted.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t pos = 0;
  const Entry* prev = nullptr;
  for (const Entry* e : sorted) {
    std::string t = "tensor " + q(e->name) + ": data_offsets " + offStr(e->begin, e->end);
    if (e->begin < pos) {
      err = t + " overlap tensor " + q(prev->name) + " at " + offStr(prev->begin, prev->end);
      return false;
    }
    if (e->begin > pos) {
      err = t + " leave a gap: bytes [" + std::to_string(pos) + ", " + std::to_string(e->begin) + ") of the data belong to no tensor";
      return false;
    }
    if (e->end > dataSize) {
      err = t + " reach past the end of the file (its data section has " + std::to_string(dataSize) + " bytes)";
      return false;
    }
    pos = e->end;
    prev = e;
  }
  if (pos != dataSize) {
    err = "the tensors' data ends at byte " + std::to_string(pos) + " of the data section, but the file has " +
          std::to_string(dataSize - pos) + " more bytes after it (data must end exactly at end of file)";
    return false;
  }
  return true;
}

// Lays the tensors out 64-byte aligned in header order; returns the arena size.
size_t layout(std::vector<Entry>& es) {
  size_t off = 0;
  for (auto& e : es) {
    e.slot = off;
    size_t b = (size_t)(e.end - e.begin);
    off += (b + kAlign - 1) / kAlign * kAlign;
  }
  return off;
}

std::vector<TensorView> views(const uint8_t* arena, std::vector<Entry>& es) {
  std::vector<TensorView> v;
  v.reserve(es.size());
  for (auto& e : es) v.push_back({std::move(e.name), e.dtype, std::move(e.shape), arena + e.slot, (size_t)(e.end - e.begin)});
  return v;
}

uint8_t* allocArena(size_t size) {
  if (size >= kBigBlock) return static_cast<uint8_t*>(allocHuge(size));
  size_t s = std::max<size_t>(kAlign, (size + kAlign - 1) / kAlign * kAlign);
  return static_cast<uint8_t*>(std::aligned_alloc(kAlign, s));
}

}  // namespace

const char* dtypeName(DType t) {
  const DTypeInfo* d = info(t);
  return d ? d->name : "?";
}

size_t dtypeSize(DType t) {
  const DTypeInfo* d = info(t);
  return d ? d->size : 0;
}

bool dtypeFromName(const std::string& name, DType& out) {
  for (const auto& d : kDTypes)
    if (name == d.name) { out = d.t; return true; }
  return false;
}

void SafeTensors::adopt(Arena arena, std::vector<TensorView> views, std::map<std::string, std::string> meta) {
  arena_ = std::move(arena);
  tensors_ = std::move(views);
  metadata_ = std::move(meta);
  for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

void SafeTensors::clear() {
  arena_.reset();
  tensors_.clear();
  index_.clear();
  metadata_.clear();
}

const TensorView* SafeTensors::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

// Shared by parse() and load(): header checks, then `fill` copies each tensor's bytes (visited in
// file order) into its slot.
namespace {
template <class Fill>
bool build(const uint8_t* header, size_t n, uint64_t dataSize, const std::string& dn, std::string& err,
           ArenaPtr& arenaOut, std::vector<Entry>& es,
           std::map<std::string, std::string>& meta, Fill fill) {
  if (!parseHeader(header, n, dataSize, es, meta, err)) {
    err = dn + ": " + err;
    return false;
  }
  size_t total = layout(es);
  ArenaPtr arena(allocArena(total), std::free);
  if (!arena) {
    err = dn + ": out of memory allocating " + std::to_string(total) + " bytes for the tensors";
    return false;
  }
  std::vector<Entry*> order;
  for (auto& e : es) order.push_back(&e);
  std::stable_sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) { return a->begin < b->begin; });
  for (Entry* e : order)
    if (!fill(*e, arena.get() + e->slot)) return false;
  arenaOut = std::move(arena);
  return true;
}
}  // namespace

bool SafeTensors::parse(std::vector<uint8_t> bytes, const std::string& dn, std::string& err) {
  clear();
  if (bytes.size() < 8) {
    err = dn + ": file is " + std::to_string(bytes.size()) + " bytes long, too short for the 8-byte header length";
    return false;
  }
  uint64_t n = readLE64(bytes.data());
  if (n > kMaxHeader) {
    err = dn + ": header length " + std::to_string(n) + " is larger than the limit of 100000000 bytes";
    return false;
  }
  if (n > bytes.size() - 8) {
    err = dn + ": header length " + std::to_string(n) + " reaches past the end of the file (" + std::to_string(bytes.size()) +
          " bytes)";
    return false;
  }
  const uint8_t* data = bytes.data() + 8 + n;
  Arena arena(nullptr, std::free);
  std::vector<Entry> es;
  std::map<std::string, std::string> meta;
  bool ok = build(bytes.data() + 8, (size_t)n, bytes.size() - 8 - n, dn, err, arena, es, meta, [&](const Entry& e, uint8_t* dst) {
    if (e.end > e.begin) std::memcpy(dst, data + e.begin, (size_t)(e.end - e.begin));
    return true;
  });
  if (!ok) return false;
  std::vector<TensorView> v = views(arena.get(), es);
  adopt(std::move(arena), std::move(v), std::move(meta));
  return true;
}

bool SafeTensors::load(const std::string& path, std::string& err) {
  clear();
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    err = path + ": cannot open: " + std::strerror(errno);
    return false;
  }
  struct Closer { FILE* f; ~Closer() { std::fclose(f); } } closer{f};
  struct stat st;
  if (fstat(fileno(f), &st) != 0) {
    err = path + ": cannot stat: " + std::strerror(errno);
    return false;
  }
  if (S_ISDIR(st.st_mode)) {
    err = path + ": is a directory, not a safetensors file";
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    // A pipe or device: read it all, then parse from memory.
    std::vector<uint8_t> all;
    uint8_t buf[1 << 16];
    size_t got;
    while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) all.insert(all.end(), buf, buf + got);
    if (std::ferror(f)) {
      err = path + ": read error: " + std::strerror(errno);
      return false;
    }
    return parse(std::move(all), path, err);
  }

  // A regular file: read the header, check it against the file size, then read each tensor straight
  // into its aligned slot (the file's data is in memory only once).
  uint64_t size = (uint64_t)st.st_size;
  auto readExact = [&](void* dst, size_t len, const std::string& what) {
    if (len == 0) return true;
    size_t got = std::fread(dst, 1, len, f);
    if (got == len) return true;
    if (std::ferror(f)) err = path + ": read error in " + what + ": " + std::strerror(errno);
    else err = path + ": file ended early while reading " + what + " (did it change while being read?)";
    return false;
  };
  if (size < 8) {
    err = path + ": file is " + std::to_string(size) + " bytes long, too short for the 8-byte header length";
    return false;
  }
  uint8_t lenBytes[8];
  if (!readExact(lenBytes, 8, "the header length")) return false;
  uint64_t n = readLE64(lenBytes);
  if (n > kMaxHeader) {
    err = path + ": header length " + std::to_string(n) + " is larger than the limit of 100000000 bytes";
    return false;
  }
  if (n > size - 8) {
    err = path + ": header length " + std::to_string(n) + " reaches past the end of the file (" + std::to_string(size) + " bytes)";
    return false;
  }
  std::vector<uint8_t> header((size_t)n);
  if (!readExact(header.data(), header.size(), "the header")) return false;
  Arena arena(nullptr, std::free);
  std::vector<Entry> es;
  std::map<std::string, std::string> meta;
  bool ok = build(header.data(), header.size(), size - 8 - n, path, err, arena, es, meta, [&](const Entry& e, uint8_t* dst) {
    return readExact(dst, (size_t)(e.end - e.begin), "tensor " + q(e.name));
  });
  if (!ok) return false;
  std::vector<TensorView> v = views(arena.get(), es);
  adopt(std::move(arena), std::move(v), std::move(meta));
  return true;
}

bool writeSafeTensors(const std::string& path, const std::vector<TensorOut>& tensors,
                      const std::map<std::string, std::string>& metadata, std::string& err) {
  const std::string pre = "cannot write '" + path + "': ";

  // Check the arguments and build the header (by hand, to keep the given order).
  std::string hs = "{";
  auto str = [](const std::string& x) { return json(x).dump(); };  // quoted and escaped; throws on bad UTF-8
  try {
    if (!metadata.empty()) {
      hs += "\"__metadata__\":{";
      bool first = true;
      for (const auto& [k, v] : metadata) {
        hs += (first ? "" : ",") + str(k) + ":" + str(v);
        first = false;
      }
      hs += "}";
    }
  } catch (const json::exception&) {
    err = pre + "a metadata string is not valid UTF-8";
    return false;
  }
  std::set<std::string> seen;
  uint64_t off = 0;
  for (const auto& t : tensors) {
    std::string tn = "tensor " + q(t.name) + ": ";
    if (t.name == "__metadata__") { err = pre + "a tensor may not be named __metadata__"; return false; }
    if (!seen.insert(t.name).second) { err = pre + "duplicate tensor name " + q(t.name); return false; }
    if (!info(t.dtype)) { err = pre + tn + "invalid dtype"; return false; }
    int64_t bytes = 1;
    bool overflow = false;
    for (int64_t d : t.shape) {
      if (d < 0) { err = pre + tn + "negative dimension in shape " + shapeStr(t.shape); return false; }
      if (__builtin_mul_overflow(bytes, d, &bytes)) overflow = true;
    }
    if (overflow || __builtin_mul_overflow(bytes, (int64_t)dtypeSize(t.dtype), &bytes)) {
      err = pre + tn + "shape " + shapeStr(t.shape) + " is too large";
      return false;
    }
    if ((uint64_t)bytes != t.bytes) {
      err = pre + tn + "shape " + shapeStr(t.shape) + " of " + dtypeName(t.dtype) + " needs " + std::to_string(bytes) +
            " bytes but " + std::to_string(t.bytes) + " were given";
      return false;
    }
    if (t.bytes && !t.data) { err = pre + tn + "no data"; return false; }
    std::string name;
    try {
      name = str(t.name);
    } catch (const json::exception&) {
      err = pre + "tensor name " + q(t.name) + " is not valid UTF-8";
      return false;
    }
    hs += (hs.size() > 1 ? "," : "") + name + ":{\"dtype\":\"" + dtypeName(t.dtype) + "\",\"shape\":" + shapeStr(t.shape) +
          ",\"data_offsets\":[" + std::to_string(off) + "," + std::to_string(off + t.bytes) + "]}";
    off += t.bytes;
  }
  hs += "}";
  while (hs.size() % 8) hs += ' ';
  uint8_t lenBytes[8];
  for (int i = 0; i < 8; ++i) lenBytes[i] = (uint8_t)((uint64_t)hs.size() >> (8 * i));

  // Through a temporary file in the folder of `path`, synced and renamed over it; then the folder is
  // synced, so the rename itself is durable.
  AtomicWrite w = writeFileAtomically(path, [&](std::FILE* f) {
    if (std::fwrite(lenBytes, 1, 8, f) != 8) return false;
    if (std::fwrite(hs.data(), 1, hs.size(), f) != hs.size()) return false;
    for (const auto& t : tensors)
      if (t.bytes && std::fwrite(t.data, 1, t.bytes, f) != t.bytes) return false;
    return true;
  }, /*syncFolder=*/true);
  if (w.folderSyncFailed) { err = pre + "the file was written but syncing its folder failed: " + std::strerror(w.error); return false; }
  if (!w) { err = pre + std::strerror(w.error); return false; }
  return true;
}

}  // namespace cnnc::rt
