// safetensors.h: reading and writing the safetensors format
// (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N, N bytes of
// UTF-8 JSON, then the raw little-endian row-major tensor data. Each header entry is
// "name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]} (offsets relative to the data
// start), plus an optional "__metadata__" string -> string map.
//
// The reader validates everything the reference loader checks (and a little more) and never reads
// past its input, whatever the bytes: a bad file gives false and a message naming the file and,
// where relevant, the tensor.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace cnnc::rt {

// As spelled in safetensors headers: "F32", "I64", ...
enum class DType { F32, I64, F64, I32, F16, BF16, U8, I8, I16, U16, BOOL, U32, U64 };

const char* dtypeName(DType);
size_t dtypeSize(DType);
// Parses a header spelling ("F32", ...); false for anything else (case-sensitive).
bool dtypeFromName(const std::string& name, DType& out);

struct TensorView {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const uint8_t* data;  // 64-byte aligned, owned by the SafeTensors object; never null
  size_t bytes;         // = product(shape) * dtypeSize(dtype)
};

class SafeTensors {
 public:
  SafeTensors() = default;
  SafeTensors(const SafeTensors&) = delete;
  SafeTensors& operator=(const SafeTensors&) = delete;
  SafeTensors(SafeTensors&&) = default;  // views stay valid: the data buffer moves with them
  SafeTensors& operator=(SafeTensors&&) = default;

  // Reads and validates the whole file (its data is held in memory, each tensor 64-byte aligned).
  // On any problem returns false, sets `err` to a message that starts with `path` and leaves this
  // object empty.
  bool load(const std::string& path, std::string& err);
  // The same checks on a file's bytes already in memory; `displayName` starts the messages.
  bool parse(std::vector<uint8_t> bytes, const std::string& displayName, std::string& err);

  const TensorView* find(const std::string& name) const;
  const std::vector<TensorView>& tensors() const { return tensors_; }  // in header order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  using Arena = std::unique_ptr<uint8_t, void (*)(void*)>;  // aligned_alloc'ed, released with free
  Arena arena_{nullptr, std::free};
  std::vector<TensorView> tensors_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  void clear();
  void adopt(Arena arena, std::vector<TensorView> views, std::map<std::string, std::string> meta);
};

struct TensorOut {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
  size_t bytes;  // must equal product(shape) * dtypeSize(dtype)
};

// Writes `tensors` (data in the given order, header in the given order, "__metadata__" first when
// non-empty; the header padded with spaces to a multiple of 8 bytes) atomically: a temporary file in
// the same folder is written, flushed and fsync'ed, renamed over `path`, and the folder is fsync'ed.
// On failure (bad arguments, missing folder, `path` is a folder, ENOSPC, ...) the temporary file is
// removed, any previous file at `path` is untouched, and `err` says why, e.g.
// "cannot write 'x': No space left on device".
bool writeSafeTensors(const std::string& path, const std::vector<TensorOut>& tensors,
                      const std::map<std::string, std::string>& metadata, std::string& err);

}  // namespace cnnc::rt
