// The .vti container: writer and validating, memory-mapping reader.
// docs/model-format.md is the specification this file implements.
#include "format.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <new>
#include <utility>

#include "engine/src/output_files.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "libvitint maps little-endian tensor data in place; big-endian hosts are not supported"
#endif

namespace vitint::format {
namespace {

// from_bytes() storage alignment: a page, like an mmap base, so any alignment a
// 1.x file may declare (<= kMaxAlignment) holds for the data pointers.
constexpr size_t kStorageAlignment = 4096;
constexpr uint32_t kMaxAlignment = 4096;
constexpr uint32_t kMaxHeaderSize = 65536;
constexpr int kMaxJsonDepth = 128;

// ---- little-endian encoding -------------------------------------------------

uint16_t get_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t get_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t get_u64(const uint8_t* p) {
  return static_cast<uint64_t>(get_u32(p)) | (static_cast<uint64_t>(get_u32(p + 4)) << 32);
}
void put_u16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
void put_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// ---- overflow-checked arithmetic on untrusted 64-bit values -----------------

bool add_ok(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_add_overflow(a, b, out); }
bool mul_ok(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_mul_overflow(a, b, out); }
// alignment is a power of two.
bool align_up_ok(uint64_t v, uint64_t alignment, uint64_t* out) {
  uint64_t t;
  if (!add_ok(v, alignment - 1, &t)) return false;
  *out = t & ~(alignment - 1);
  return true;
}
uint64_t align_up(uint64_t v, uint64_t alignment) {
  uint64_t out = 0;
  VITINT_ASSERT(align_up_ok(v, alignment, &out));
  return out;
}

// Element count of a shape, or false when a dim is negative or the product
// does not fit in int64.
bool checked_numel(const int64_t* dims, size_t ndim, uint64_t* out) {
  uint64_t n = 1;
  for (size_t i = 0; i < ndim; ++i) {
    if (dims[i] < 0) return false;
    if (!mul_ok(n, static_cast<uint64_t>(dims[i]), &n)) return false;
  }
  if (n > static_cast<uint64_t>(INT64_MAX)) return false;
  *out = n;
  return true;
}

// Visible ASCII only: names appear in error messages and tools' output.
bool valid_name_char(uint8_t c) { return c > 0x20 && c < 0x7f; }

std::string hex_bytes(const uint8_t* p, uint64_t n) {
  std::string s;
  for (uint64_t i = 0; i < n; ++i) {
    if (i) s += ' ';
    s += "0123456789abcdef"[p[i] >> 4];
    s += "0123456789abcdef"[p[i] & 15];
  }
  return s;
}

std::string name_problem(const uint8_t* name, size_t len) {
  if (len == 0) return "the name is empty";
  if (len > kMaxNameLength)
    return "the name is " + std::to_string(len) + " bytes long (at most " +
           std::to_string(kMaxNameLength) + ")";
  for (size_t i = 0; i < len; ++i)
    if (!valid_name_char(name[i]))
      return "the name has byte 0x" + hex_bytes(name + i, 1) + " at position " + std::to_string(i) +
             " (only visible ASCII characters are allowed)";
  return {};
}

std::string errno_text(int err) { return std::strerror(err); }

// ---- header -----------------------------------------------------------------

struct Header {
  uint16_t major = 0;
  uint16_t minor = 0;
  uint32_t header_size = 0;
  uint64_t file_size = 0;
  uint64_t metadata_offset = 0;
  uint64_t metadata_size = 0;
  uint64_t table_offset = 0;
  uint64_t table_size = 0;
  uint64_t tensor_count = 0;
  uint64_t data_offset = 0;
  uint64_t data_size = 0;
  uint32_t alignment = 0;
  uint32_t metadata_crc = 0;
  uint32_t table_crc = 0;
  uint32_t flags = 0;
};

std::array<uint8_t, kHeaderSize> encode_header(const Header& h) {
  namespace o = header_offset;
  std::array<uint8_t, kHeaderSize> b{};
  std::memcpy(b.data() + o::kMagic, kMagic, sizeof(kMagic));
  put_u16(b.data() + o::kMajor, h.major);
  put_u16(b.data() + o::kMinor, h.minor);
  put_u32(b.data() + o::kHeaderSize, h.header_size);
  put_u64(b.data() + o::kFileSize, h.file_size);
  put_u64(b.data() + o::kMetadataOffset, h.metadata_offset);
  put_u64(b.data() + o::kMetadataSize, h.metadata_size);
  put_u64(b.data() + o::kTableOffset, h.table_offset);
  put_u64(b.data() + o::kTableSize, h.table_size);
  put_u64(b.data() + o::kTensorCount, h.tensor_count);
  put_u64(b.data() + o::kDataOffset, h.data_offset);
  put_u64(b.data() + o::kDataSize, h.data_size);
  put_u32(b.data() + o::kAlignment, h.alignment);
  put_u32(b.data() + o::kMetadataCrc, h.metadata_crc);
  put_u32(b.data() + o::kTableCrc, h.table_crc);
  put_u32(b.data() + o::kFlags, h.flags);
  put_u32(b.data() + o::kHeaderCrc, compute_crc32(b.data(), o::kHeaderCrc));
  return b;
}

Header decode_header(const uint8_t* b) {
  namespace o = header_offset;
  Header h;
  h.major = get_u16(b + o::kMajor);
  h.minor = get_u16(b + o::kMinor);
  h.header_size = get_u32(b + o::kHeaderSize);
  h.file_size = get_u64(b + o::kFileSize);
  h.metadata_offset = get_u64(b + o::kMetadataOffset);
  h.metadata_size = get_u64(b + o::kMetadataSize);
  h.table_offset = get_u64(b + o::kTableOffset);
  h.table_size = get_u64(b + o::kTableSize);
  h.tensor_count = get_u64(b + o::kTensorCount);
  h.data_offset = get_u64(b + o::kDataOffset);
  h.data_size = get_u64(b + o::kDataSize);
  h.alignment = get_u32(b + o::kAlignment);
  h.metadata_crc = get_u32(b + o::kMetadataCrc);
  h.table_crc = get_u32(b + o::kTableCrc);
  h.flags = get_u32(b + o::kFlags);
  return h;
}

// Extra hint when the bytes look like a format people commonly confuse with ours.
std::string guess_other_format(const uint8_t* p, uint64_t n) {
  if (n >= 4 && std::memcmp(p, "PK\x03\x04", 4) == 0)
    return " (it looks like a zip archive, e.g. a PyTorch checkpoint: convert it with "
           "vitint-convert)";
  if (n >= 4 && std::memcmp(p, "GGUF", 4) == 0) return " (it looks like a GGUF file)";
  if (n >= 9 && p[8] == '{') return " (it looks like a safetensors file: convert it with vitint-convert)";
  if (n >= 1 && p[0] == 0x80) return " (it looks like a Python pickle)";
  return "";
}

struct Interval {
  uint64_t begin;
  uint64_t end;
};

bool overlap(const Interval& a, const Interval& b) {
  return a.begin < a.end && b.begin < b.end && a.begin < b.end && b.begin < a.end;
}

bool path_exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace

// ---- dtypes and small helpers -----------------------------------------------

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kU8:
    case DType::kS8: return 1;
    case DType::kS16: return 2;
    case DType::kS32:
    case DType::kF32: return 4;
    case DType::kS64: return 8;
  }
  return 0;
}

std::string dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kU8: return "u8";
    case DType::kS8: return "s8";
    case DType::kS16: return "s16";
    case DType::kS32: return "s32";
    case DType::kF32: return "f32";
    case DType::kS64: return "s64";
  }
  return "unknown(" + std::to_string(static_cast<uint32_t>(dtype)) + ")";
}

bool is_known_dtype(uint32_t value) { return dtype_size(static_cast<DType>(value)) != 0; }

uint32_t compute_crc32(const void* data, uint64_t nbytes, uint32_t crc) {
  const auto* p = static_cast<const Bytef*>(data);
  uLong c = crc;
  while (nbytes > 0) {  // zlib's length is a uInt: feed it in chunks
    const uInt chunk = static_cast<uInt>(std::min<uint64_t>(nbytes, uint64_t{1} << 30));
    c = ::crc32(c, p, chunk);
    p += chunk;
    nbytes -= chunk;
  }
  return static_cast<uint32_t>(c);
}

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

void TensorView::throw_dtype_mismatch(DType requested) const {
  throw Error("tensor '" + name + "' has dtype " + dtype_name(dtype) + " but was read as " +
              dtype_name(requested));
}

// ---- Writer -----------------------------------------------------------------

struct Writer::Layout {
  std::string metadata;
  std::vector<uint8_t> table;
  std::vector<uint64_t> tensor_offsets;
  std::array<uint8_t, kHeaderSize> header{};
  uint64_t metadata_offset = 0;
  uint64_t table_offset = 0;
  uint64_t data_offset = 0;
  uint64_t file_size = 0;
};

void Writer::set_metadata(nlohmann::json metadata) {
  if (!metadata.is_object())
    throw Error(std::string("model metadata must be a JSON object, got ") + metadata.type_name());
  try {
    metadata_text_ = metadata.dump();  // throws on strings that are not valid UTF-8
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("model metadata cannot be stored as JSON: ") + e.what());
  }
}

nlohmann::json Writer::metadata() const { return nlohmann::json::parse(metadata_text_); }

void Writer::add_tensor(const std::string& name, DType dtype, std::vector<int64_t> shape,
                        const void* data, size_t nbytes) {
  const std::string where = "cannot add tensor '" + name + "' to the model file: ";
  const std::string bad_name =
      name_problem(reinterpret_cast<const uint8_t*>(name.data()), name.size());
  if (!bad_name.empty()) throw Error(where + bad_name);
  if (index_.count(name)) throw Error(where + "a tensor with that name was already added");
  if (dtype_size(dtype) == 0) throw Error(where + "unknown dtype " + dtype_name(dtype));
  if (shape.size() > kMaxDims)
    throw Error(where + "it has " + std::to_string(shape.size()) + " dims (at most " +
                std::to_string(kMaxDims) + ")");
  uint64_t numel = 0, expected = 0;
  if (!checked_numel(shape.data(), shape.size(), &numel) ||
      !mul_ok(numel, dtype_size(dtype), &expected))
    throw Error(where + "invalid shape " + shape_to_string(shape) +
                " (negative dim or too many elements)");
  if (expected != nbytes)
    throw Error(where + "shape " + shape_to_string(shape) + " of " + dtype_name(dtype) +
                " needs " + std::to_string(expected) + " bytes, got " + std::to_string(nbytes));
  if (nbytes > 0 && data == nullptr) throw Error(where + "data is null");

  Tensor t;
  t.name = name;
  t.dtype = dtype;
  t.shape = std::move(shape);
  if (nbytes > 0) {
    const auto* p = static_cast<const uint8_t*>(data);
    t.bytes.assign(p, p + nbytes);
  }
  t.crc = compute_crc32(t.bytes.data(), t.bytes.size());
  index_.emplace(name, tensors_.size());
  tensors_.push_back(std::move(t));
}

Writer::Layout Writer::plan() const {
  Layout l;
  l.metadata = metadata_text_;

  for (const Tensor& t : tensors_) {
    const size_t fixed = kTableEntryFixedSize + 8 * t.shape.size();
    const size_t entry_size = static_cast<size_t>(align_up(fixed + t.name.size(), 8));
    const size_t at = l.table.size();
    l.table.resize(at + entry_size, 0);
    uint8_t* e = l.table.data() + at;
    put_u32(e + 0, static_cast<uint32_t>(entry_size));
    put_u32(e + 4, static_cast<uint32_t>(t.dtype));
    put_u32(e + 8, static_cast<uint32_t>(t.shape.size()));
    put_u32(e + 12, static_cast<uint32_t>(t.name.size()));
    // data offset (16) is filled in below, once the table size is known.
    put_u64(e + 24, t.bytes.size());
    put_u32(e + 32, t.crc);
    put_u32(e + 36, 0);  // reserved
    for (size_t i = 0; i < t.shape.size(); ++i)
      put_u64(e + kTableEntryFixedSize + 8 * i, static_cast<uint64_t>(t.shape[i]));
    std::memcpy(e + fixed, t.name.data(), t.name.size());
  }

  l.metadata_offset = kHeaderSize;
  l.table_offset = align_up(l.metadata_offset + l.metadata.size(), kAlignment);
  l.data_offset = align_up(l.table_offset + l.table.size(), kAlignment);
  uint64_t cursor = l.data_offset;
  size_t at = 0;
  for (const Tensor& t : tensors_) {
    const uint64_t offset = align_up(cursor, kAlignment);
    l.tensor_offsets.push_back(offset);
    put_u64(l.table.data() + at + 16, offset);
    at += get_u32(l.table.data() + at);
    cursor = offset + t.bytes.size();
  }
  l.file_size = cursor;

  Header h;
  h.major = kMajorVersion;
  h.minor = kMinorVersion;
  h.header_size = kHeaderSize;
  h.file_size = l.file_size;
  h.metadata_offset = l.metadata_offset;
  h.metadata_size = l.metadata.size();
  h.table_offset = l.table_offset;
  h.table_size = l.table.size();
  h.tensor_count = tensors_.size();
  h.data_offset = l.data_offset;
  h.data_size = l.file_size - l.data_offset;
  h.alignment = kAlignment;
  h.metadata_crc = compute_crc32(l.metadata.data(), l.metadata.size());
  h.table_crc = compute_crc32(l.table.data(), l.table.size());
  l.header = encode_header(h);
  return l;
}

template <class Sink>
void Writer::emit(const Layout& l, Sink&& sink) const {
  static const uint8_t kZeros[kAlignment] = {};
  uint64_t pos = 0;
  auto put = [&](const void* p, uint64_t n) {
    if (n > 0) sink(p, static_cast<size_t>(n));
    pos += n;
  };
  auto pad_to = [&](uint64_t target) {
    VITINT_ASSERT(target >= pos && target - pos < kAlignment);
    put(kZeros, target - pos);
  };
  put(l.header.data(), l.header.size());
  put(l.metadata.data(), l.metadata.size());
  pad_to(l.table_offset);
  put(l.table.data(), l.table.size());
  pad_to(l.data_offset);
  for (size_t i = 0; i < tensors_.size(); ++i) {
    pad_to(l.tensor_offsets[i]);
    put(tensors_[i].bytes.data(), tensors_[i].bytes.size());
  }
  VITINT_ASSERT(pos == l.file_size);
}

std::vector<uint8_t> Writer::to_bytes() const {
  const Layout l = plan();
  std::vector<uint8_t> out;
  out.reserve(static_cast<size_t>(l.file_size));
  emit(l, [&](const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  });
  return out;
}

void Writer::write(const std::string& path, bool overwrite) const {
  // Refused before the file is written; commit() checks again.
  if (!overwrite && path_exists(path)) throw_exists(path, "model file");
  OutputFiles out;
  add_to(out, path, "model file");
  out.commit(overwrite);
}

void Writer::add_to(OutputFiles& out, const std::string& path, const std::string& what) const {
  const Layout l = plan();
  out.add(path, what, [&](const OutputFiles::Sink& sink) { emit(l, sink); });
}

// ---- Reader -----------------------------------------------------------------

Reader::~Reader() {
  if (map_ != nullptr) ::munmap(map_, map_len_);
  if (owned_ != nullptr) ::operator delete(owned_, std::align_val_t(kStorageAlignment));
}

std::shared_ptr<const Reader> Reader::open(const std::string& path) {
  std::shared_ptr<Reader> r(new Reader());
  r->path_ = path;
  // O_NONBLOCK: opening a FIFO must not hang; it has no effect on regular files.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) throw Error("model file " + path + " does not exist");
    throw Error("cannot open model file " + path + ": " + errno_text(err));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error("cannot open model file " + path + ": " + errno_text(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error("model file " + path + " is not a regular file");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > SIZE_MAX) {
    ::close(fd);
    throw Error("model file " + path + " is too large to map on this platform");
  }
  if (size > 0) {
    void* m = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw Error("cannot memory-map model file " + path + ": " + errno_text(err));
    }
    r->map_ = m;
    r->map_len_ = static_cast<size_t>(size);
    r->base_ = static_cast<const uint8_t*>(m);
  }
  ::close(fd);  // the mapping keeps the file contents reachable
  r->size_ = size;
  r->parse();
  return r;
}

std::shared_ptr<const Reader> Reader::from_bytes(std::vector<uint8_t> bytes,
                                                 std::string display_name) {
  std::shared_ptr<Reader> r(new Reader());
  r->path_ = std::move(display_name);
  if (!bytes.empty()) {
    r->owned_ = ::operator new(bytes.size(), std::align_val_t(kStorageAlignment));
    std::memcpy(r->owned_, bytes.data(), bytes.size());
    r->base_ = static_cast<const uint8_t*>(r->owned_);
  }
  r->size_ = bytes.size();
  bytes = std::vector<uint8_t>();  // release the unaligned copy before validation
  r->parse();
  return r;
}

const TensorView* Reader::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorView& Reader::tensor(const std::string& name) const {
  const TensorView* t = find(name);
  if (t == nullptr) throw Error("model file " + path_ + ": tensor '" + name + "' is missing");
  return *t;
}

const TensorView& Reader::tensor(const std::string& name, DType dtype,
                                 const std::vector<int64_t>& shape) const {
  const TensorView& t = tensor(name);
  const bool dtype_ok = t.dtype == dtype;
  const bool shape_ok = t.shape == shape;
  if (dtype_ok && shape_ok) return t;
  std::string msg = "model file " + path_ + ": tensor '" + name + "' has ";
  if (!dtype_ok && !shape_ok)
    msg += "dtype " + dtype_name(t.dtype) + " and shape " + shape_to_string(t.shape) +
           ", expected dtype " + dtype_name(dtype) + " and shape " + shape_to_string(shape);
  else if (!dtype_ok)
    msg += "dtype " + dtype_name(t.dtype) + ", expected " + dtype_name(dtype);
  else
    msg += "shape " + shape_to_string(t.shape) + ", expected " + shape_to_string(shape);
  throw Error(msg + " (the file does not match this libvitint's model definition)");
}

void Reader::parse() {
  const uint8_t* const b = base_;
  const uint64_t n = size_;
  const std::string file = "model file " + path_;
  auto fail = [&](const std::string& what) { return Error(file + ": " + what); };
  auto truncated = [&](uint64_t expected, bool at_least) {
    return Error(file + " is truncated: expected " + (at_least ? "at least " : "") +
                 std::to_string(expected) + " bytes, got " + std::to_string(n) +
                 " (incomplete download or copy?)");
  };
  auto corrupted = [&](const std::string& what) {
    return Error(file + ": " + what + " (file corrupted)");
  };

  // -- magic and version: before anything else, so foreign and newer files get
  //    a message about what they are rather than about checksums.
  if (n < sizeof(kMagic)) {
    if (n == 0 || std::memcmp(b, kMagic, static_cast<size_t>(n)) == 0)
      throw truncated(kHeaderSize, true);
  }
  if (n < sizeof(kMagic) || std::memcmp(b, kMagic, sizeof(kMagic)) != 0) {
    const uint64_t shown = std::min<uint64_t>(n, sizeof(kMagic));
    throw Error(file + " is not a libvitint model: it starts with bytes '" + hex_bytes(b, shown) +
                "', a .vti file starts with 'VITINTM\\x1a'" + guess_other_format(b, n) +
                "; create .vti files with vitint-convert");
  }
  if (n < header_offset::kMinor + 2) throw truncated(kHeaderSize, true);
  const uint16_t major = get_u16(b + header_offset::kMajor);
  const uint16_t minor = get_u16(b + header_offset::kMinor);
  if (major == 0) throw corrupted("invalid format version 0." + std::to_string(minor));
  if (major > kMajorVersion)
    throw Error(file + " was written by a newer libvitint (format " + std::to_string(major) +
                ".x); this build reads " + std::to_string(kMajorVersion) +
                ".x: upgrade libvitint");

  // -- header bounds and checksum.
  if (n < kHeaderSize) {
    const uint64_t recorded = n >= header_offset::kFileSize + 8
                                  ? get_u64(b + header_offset::kFileSize)
                                  : 0;
    if (recorded > kHeaderSize) throw truncated(recorded, false);
    throw truncated(kHeaderSize, true);
  }
  const uint32_t header_size = get_u32(b + header_offset::kHeaderSize);
  const uint64_t recorded_size = get_u64(b + header_offset::kFileSize);
  if (header_size < kHeaderSize || header_size > kMaxHeaderSize || header_size % 8 != 0)
    throw corrupted("invalid header size " + std::to_string(header_size));
  if (header_size > n) {
    if (recorded_size > n) throw truncated(recorded_size, false);
    throw corrupted("header size " + std::to_string(header_size) + " exceeds the file size " +
                    std::to_string(n));
  }
  if (compute_crc32(b, header_size - 4) != get_u32(b + header_size - 4))
    throw corrupted("header checksum mismatch");
  const Header h = decode_header(b);

  if (h.file_size != n) {
    if (n < h.file_size) throw truncated(h.file_size, false);
    throw fail("has " + std::to_string(n) + " bytes but its header records " +
               std::to_string(h.file_size) + " (trailing data appended after the model?)");
  }
  if (h.alignment < kAlignment || h.alignment > kMaxAlignment ||
      (h.alignment & (h.alignment - 1)) != 0)
    throw corrupted("invalid alignment " + std::to_string(h.alignment));

  // -- sections: inside the file and disjoint.
  struct Section {
    const char* name;
    Interval range;
  };
  auto section = [&](const char* name, uint64_t offset, uint64_t size) {
    uint64_t end = 0;
    if (!add_ok(offset, size, &end) || end > n)
      throw fail(std::string("the ") + name + " section (byte offset " + std::to_string(offset) +
                 ", " + std::to_string(size) + " bytes) extends past the end of the file (" +
                 std::to_string(n) + " bytes) (file corrupted)");
    return Section{name, Interval{offset, end}};
  };
  const Section sections[] = {
      Section{"header", Interval{0, header_size}},
      section("metadata", h.metadata_offset, h.metadata_size),
      section("tensor table", h.table_offset, h.table_size),
      section("data", h.data_offset, h.data_size),
  };
  for (size_t i = 0; i < 4; ++i)
    for (size_t j = i + 1; j < 4; ++j)
      if (overlap(sections[i].range, sections[j].range))
        throw corrupted(std::string("the ") + sections[i].name + " and " + sections[j].name +
                        " sections overlap");
  if (h.data_offset % h.alignment != 0)
    throw corrupted("data section offset " + std::to_string(h.data_offset) +
                    " is not a multiple of the alignment " + std::to_string(h.alignment));
  if (h.metadata_size < 2) throw corrupted("the metadata section is too small to be a JSON object");

  // -- checksums of metadata and table before interpreting either.
  const uint8_t* meta = b + h.metadata_offset;
  const uint8_t* table = b + h.table_offset;
  if (compute_crc32(meta, h.metadata_size) != h.metadata_crc)
    throw corrupted("metadata at byte offset " + std::to_string(h.metadata_offset) +
                    ": checksum mismatch");
  if (compute_crc32(table, h.table_size) != h.table_crc)
    throw corrupted("tensor table at byte offset " + std::to_string(h.table_offset) +
                    ": checksum mismatch");

  // -- metadata: a JSON object. Depth is capped so hostile nesting cannot
  //    exhaust memory or time.
  try {
    const auto depth_guard = [](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
      if (depth > kMaxJsonDepth) throw std::length_error("nesting too deep");
      return true;
    };
    metadata_ = nlohmann::json::parse(meta, meta + h.metadata_size, depth_guard);
  } catch (const std::exception& e) {
    throw fail("metadata at byte offset " + std::to_string(h.metadata_offset) +
               " is not valid JSON: " + e.what());
  }
  if (!metadata_.is_object())
    throw fail(std::string("metadata at byte offset ") + std::to_string(h.metadata_offset) +
               " must be a JSON object, found " + metadata_.type_name());

  // -- tensor table.
  if (h.tensor_count > h.table_size / kTableEntryFixedSize)
    throw corrupted("tensor count " + std::to_string(h.tensor_count) +
                    " does not fit in a tensor table of " + std::to_string(h.table_size) +
                    " bytes");
  tensors_.clear();
  tensors_.reserve(static_cast<size_t>(h.tensor_count));
  index_.clear();
  std::vector<uint32_t> data_crcs;
  data_crcs.reserve(static_cast<size_t>(h.tensor_count));
  const uint64_t data_end = h.data_offset + h.data_size;  // checked by section()
  uint64_t pos = 0;
  for (uint64_t i = 0; i < h.tensor_count; ++i) {
    const uint64_t entry_at = h.table_offset + pos;
    const std::string entry = "tensor table entry " + std::to_string(i) + " at byte offset " +
                              std::to_string(entry_at);
    const uint64_t left = h.table_size - pos;
    if (left < kTableEntryFixedSize) throw corrupted(entry + ": the table ends inside the entry");
    const uint8_t* e = table + pos;
    const uint32_t entry_size = get_u32(e + 0);
    const uint32_t dtype = get_u32(e + 4);
    const uint32_t ndim = get_u32(e + 8);
    const uint32_t name_len = get_u32(e + 12);
    if (entry_size < kTableEntryFixedSize || entry_size % 8 != 0 || entry_size > left)
      throw corrupted(entry + ": invalid entry size " + std::to_string(entry_size));
    if (ndim > kMaxDims)
      throw corrupted(entry + ": " + std::to_string(ndim) + " dims (at most " +
                      std::to_string(kMaxDims) + ")");
    const uint64_t name_at = kTableEntryFixedSize + 8ull * ndim;
    if (name_len > kMaxNameLength || name_at + name_len > entry_size)
      throw corrupted(entry + ": invalid name length " + std::to_string(name_len));
    const std::string bad_name = name_problem(e + name_at, name_len);
    if (!bad_name.empty()) throw corrupted(entry + ": " + bad_name);

    TensorView t;
    t.name.assign(reinterpret_cast<const char*>(e + name_at), name_len);
    const std::string where = "tensor '" + t.name + "' (" + entry + ")";
    if (index_.count(t.name)) throw corrupted(where + ": duplicate tensor name");
    if (!is_known_dtype(dtype))
      throw fail(where + ": unknown dtype " + std::to_string(dtype) +
                 " (written by a newer libvitint, or the file is corrupted)");
    t.dtype = static_cast<DType>(dtype);
    t.shape.resize(ndim);
    for (uint32_t d = 0; d < ndim; ++d)
      t.shape[d] = static_cast<int64_t>(get_u64(e + kTableEntryFixedSize + 8 * d));
    t.offset = get_u64(e + 16);
    t.nbytes = get_u64(e + 24);
    uint64_t numel = 0, expected = 0;
    if (!checked_numel(t.shape.data(), t.shape.size(), &numel) ||
        !mul_ok(numel, dtype_size(t.dtype), &expected))
      throw corrupted(where + ": invalid shape " + shape_to_string(t.shape));
    if (expected != t.nbytes)
      throw corrupted(where + ": shape " + shape_to_string(t.shape) + " of " +
                      dtype_name(t.dtype) + " needs " + std::to_string(expected) +
                      " bytes but the entry records " + std::to_string(t.nbytes));
    uint64_t end = 0;
    if (t.offset % h.alignment != 0 || t.offset < h.data_offset || !add_ok(t.offset, t.nbytes, &end) ||
        end > data_end)
      throw corrupted(where + ": data at byte offset " + std::to_string(t.offset) + " (" +
                      std::to_string(t.nbytes) + " bytes) is not an aligned range inside the "
                      "data section [" + std::to_string(h.data_offset) + ", " +
                      std::to_string(data_end) + ")");
    t.data = b + t.offset;
    data_crcs.push_back(get_u32(e + 32));
    index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
    pos += entry_size;
  }
  if (pos != h.table_size)
    throw corrupted("the tensor table has " + std::to_string(h.table_size - pos) +
                    " bytes after its last entry");

  // -- tensors must not overlap; every byte outside header, metadata, table and
  //    tensor data is zero padding (so no byte of the file escapes a check).
  std::vector<std::pair<Interval, const TensorView*>> used;
  used.reserve(tensors_.size() + 3);
  for (size_t i = 0; i < 3; ++i) used.push_back({sections[i].range, nullptr});
  for (const TensorView& t : tensors_)
    if (t.nbytes > 0) used.push_back({Interval{t.offset, t.offset + t.nbytes}, &t});
  // Stable: ties keep table order, so overlap messages are deterministic.
  std::stable_sort(used.begin(), used.end(), [](const auto& x, const auto& y) {
    return x.first.begin < y.first.begin;
  });
  uint64_t covered = 0;
  const TensorView* previous = nullptr;
  for (const auto& [range, t] : used) {
    if (range.begin < covered) {
      if (t != nullptr && previous != nullptr)
        throw corrupted("tensor '" + t->name + "' at byte offset " + std::to_string(range.begin) +
                        " overlaps tensor '" + previous->name + "'");
      throw corrupted("tensor data at byte offset " + std::to_string(range.begin) +
                      " overlaps another section");
    }
    for (uint64_t p = covered; p < range.begin; ++p)
      if (b[p] != 0)
        throw corrupted("non-zero padding byte at byte offset " + std::to_string(p));
    if (range.end > covered) {
      covered = range.end;
      previous = t;
    }
  }
  for (uint64_t p = covered; p < n; ++p)
    if (b[p] != 0) throw corrupted("non-zero padding byte at byte offset " + std::to_string(p));

  // -- tensor data checksums, last: they are the expensive check.
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const TensorView& t = tensors_[i];
    if (compute_crc32(t.data, t.nbytes) != data_crcs[i])
      throw corrupted("tensor '" + t.name + "' at byte offset " + std::to_string(t.offset) +
                      ": checksum mismatch");
  }

  major_ = major;
  minor_ = minor;
}

}  // namespace vitint::format
