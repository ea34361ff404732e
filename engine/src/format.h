// The .vti model file container: a fixed little-endian header, a JSON metadata
// section, a tensor table and a 64-byte aligned data region that is memory-mapped
// and used in place. docs/model-format.md is the normative description; keep the
// two in sync (a layout change needs a format version bump, see that file).
//
// Internal header (not installed). The converter includes it as
// "engine/src/format.h".
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "vitint/error.h"

// glibc's <sys/sysmacros.h> defines function-like macros major()/minor() that
// would mangle Reader::major()/minor() for anyone who included it first.
#ifdef major
#undef major
#endif
#ifdef minor
#undef minor
#endif

namespace vitint {
class OutputFiles;
}

namespace vitint::format {

constexpr uint16_t kMajorVersion = 1;
constexpr uint16_t kMinorVersion = 0;

constexpr char kMagic[8] = {'V', 'I', 'T', 'I', 'N', 'T', 'M', '\x1a'};
constexpr uint32_t kHeaderSize = 128;     // bytes written by this version
constexpr uint32_t kAlignment = 64;       // data offsets are multiples of this
constexpr size_t kMaxNameLength = 256;    // bytes
constexpr size_t kMaxDims = 8;
constexpr uint32_t kTableEntryFixedSize = 40;  // bytes before dims[] in an entry

// Byte offsets of the v1 header fields (see docs/model-format.md). Exposed so
// tests and tools can inspect or patch a header without duplicating numbers.
namespace header_offset {
constexpr size_t kMagic = 0;
constexpr size_t kMajor = 8;
constexpr size_t kMinor = 10;
constexpr size_t kHeaderSize = 12;
constexpr size_t kFileSize = 16;
constexpr size_t kMetadataOffset = 24;
constexpr size_t kMetadataSize = 32;
constexpr size_t kTableOffset = 40;
constexpr size_t kTableSize = 48;
constexpr size_t kTensorCount = 56;
constexpr size_t kDataOffset = 64;
constexpr size_t kDataSize = 72;
constexpr size_t kAlignment = 80;
constexpr size_t kMetadataCrc = 84;
constexpr size_t kTableCrc = 88;
constexpr size_t kFlags = 92;
constexpr size_t kHeaderCrc = 124;  // = header_size - 4; covers bytes [0, 124)
}  // namespace header_offset

enum class DType : uint32_t { kU8 = 1, kS8 = 2, kS16 = 3, kS32 = 4, kF32 = 5, kS64 = 6 };

// Size in bytes of one element; 0 for a value that is not a known DType.
size_t dtype_size(DType dtype);
// "u8", "s8", "s16", "s32", "f32", "s64"; "unknown(N)" otherwise.
std::string dtype_name(DType dtype);
bool is_known_dtype(uint32_t value);

template <class T>
struct DTypeOf;  // only the element types below can be stored
template <> struct DTypeOf<uint8_t> { static constexpr DType value = DType::kU8; };
template <> struct DTypeOf<int8_t> { static constexpr DType value = DType::kS8; };
template <> struct DTypeOf<int16_t> { static constexpr DType value = DType::kS16; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::kS32; };
template <> struct DTypeOf<float> { static constexpr DType value = DType::kF32; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::kS64; };

// zlib crc32 (the checksum used everywhere in the format), for any length.
uint32_t compute_crc32(const void* data, uint64_t nbytes, uint32_t crc = 0);

// "[768, 3, 16, 16]"
std::string shape_to_string(const std::vector<int64_t>& shape);

struct TensorView {
  std::string name;
  DType dtype = DType::kU8;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // into the Reader's mapping; aligned to 64 bytes
  uint64_t offset = 0;         // byte offset of the data from the start of the file
  uint64_t nbytes = 0;

  int64_t numel() const;  // 1 for a scalar (empty shape)

  template <class T>
  const T* as() const {
    if (dtype != DTypeOf<T>::value) throw_dtype_mismatch(DTypeOf<T>::value);
    return static_cast<const T*>(data);
  }

 private:
  [[noreturn]] void throw_dtype_mismatch(DType requested) const;
};

// Collects metadata and tensors, then writes a complete file atomically.
class Writer {
 public:
  // Must be a JSON object; its content is the caller's (architecture,
  // hyper-parameters, preprocessing, class names, calibration, converter version).
  void set_metadata(nlohmann::json metadata);
  // What set_metadata() stored (an empty object before).
  nlohmann::json metadata() const;

  // Copies the data. Throws Error for an invalid or duplicate name, an unknown
  // dtype, more than kMaxDims dims, a negative dim, or nbytes != numel * size.
  void add_tensor(const std::string& name, DType dtype, std::vector<int64_t> shape,
                  const void* data, size_t nbytes);

  // Writes to a temporary file in the same directory, fsyncs, then renames it
  // into place. If path exists and overwrite is false, throws Error (the
  // existing file is untouched). On any failure no partial file is left.
  void write(const std::string& path, bool overwrite) const;

  // The exact bytes write() would store.
  std::vector<uint8_t> to_bytes() const;
  // Adds the file to `out` (OutputFiles::add), written piece by piece as
  // write() does, to be committed with the tool's other outputs.
  void add_to(OutputFiles& out, const std::string& path, const std::string& what) const;

  size_t tensor_count() const { return tensors_.size(); }

 private:
  struct Tensor {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
    uint32_t crc;
  };
  struct Layout;
  Layout plan() const;
  template <class Sink>
  void emit(const Layout& layout, Sink&& sink) const;

  std::string metadata_text_ = "{}";  // validated, serialized JSON object
  std::vector<Tensor> tensors_;
  std::unordered_map<std::string, size_t> index_;
};

// A validated, read-only model file. open() memory-maps the file; tensor data
// pointers stay valid while the Reader lives. Every check in
// docs/model-format.md ("Validation") runs before open()/from_bytes() return.
class Reader {
 public:
  static std::shared_ptr<const Reader> open(const std::string& path);
  // For embedded or in-memory models; the bytes are moved into 64-byte aligned
  // storage. display_name stands in for the path in error messages.
  static std::shared_ptr<const Reader> from_bytes(std::vector<uint8_t> bytes,
                                                  std::string display_name);

  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  const std::string& path() const { return path_; }
  uint16_t major() const { return major_; }
  uint16_t minor() const { return minor_; }
  uint64_t file_size() const { return size_; }
  const nlohmann::json& metadata() const { return metadata_; }
  const std::vector<TensorView>& tensors() const { return tensors_; }

  // nullptr when absent.
  const TensorView* find(const std::string& name) const;
  // Error "model file X: tensor 'name' is missing" when absent.
  const TensorView& tensor(const std::string& name) const;
  // Also checks dtype and shape; the Error names the tensor, expected and actual.
  const TensorView& tensor(const std::string& name, DType dtype,
                           const std::vector<int64_t>& shape) const;

 private:
  Reader() = default;
  void parse();  // validates base_[0, size_) and fills the fields below

  std::string path_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  void* map_ = nullptr;  // mmap'ed region (open) ...
  size_t map_len_ = 0;
  void* owned_ = nullptr;  // ... or aligned heap copy (from_bytes)

  uint16_t major_ = 0;
  uint16_t minor_ = 0;
  nlohmann::json metadata_;
  std::vector<TensorView> tensors_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace vitint::format
