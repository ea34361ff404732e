#include "converter/npy.h"

#include <cctype>
#include <cstring>
#include <limits>

#include "engine/src/read_file.h"
#include "vitint/error.h"

namespace vitint::convert {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& why) {
  throw Error("cannot read .npy file " + path + ": " + why);
}

size_t skip_space(const std::string& s, size_t pos) {
  while (pos < s.size() && std::isspace(static_cast<unsigned char>(s[pos]))) ++pos;
  return pos;
}

// Finds 'key': in the header dict and returns the position after the colon.
size_t find_key(const std::string& header, const std::string& key, const std::string& path) {
  const std::string quoted[2] = {"'" + key + "'", "\"" + key + "\""};
  for (const auto& q : quoted) {
    size_t pos = header.find(q);
    if (pos == std::string::npos) continue;
    pos = skip_space(header, pos + q.size());
    if (pos >= header.size() || header[pos] != ':') fail(path, "malformed header: " + header);
    return pos + 1;
  }
  fail(path, "header lacks '" + key + "': " + header);
}

}  // namespace

int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

NpyArray read_npy_f32(const std::string& path) {
  const std::vector<char> bytes = read_file(path, ".npy file");

  static const char kMagic[] = "\x93NUMPY";
  if (bytes.size() < 10 || std::memcmp(bytes.data(), kMagic, 6) != 0)
    fail(path, "not a .npy file (bad magic)");
  const auto u8 = [&](size_t i) { return static_cast<uint8_t>(bytes[i]); };
  const int major = u8(6);
  size_t header_len = 0;
  size_t header_start = 0;
  if (major == 1) {
    header_len = u8(8) | (static_cast<size_t>(u8(9)) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail(path, "truncated header");
    header_len = u8(8) | (static_cast<size_t>(u8(9)) << 8) | (static_cast<size_t>(u8(10)) << 16) |
                 (static_cast<size_t>(u8(11)) << 24);
    header_start = 12;
  } else {
    fail(path, "unsupported format version " + std::to_string(major));
  }
  if (header_len > bytes.size() - header_start)
    fail(path, "header length " + std::to_string(header_len) + " runs past the end of the file");
  const std::string header(bytes.data() + header_start, header_len);
  const size_t data_start = header_start + header_len;

  // descr
  size_t pos = skip_space(header, find_key(header, "descr", path));
  if (pos >= header.size() || (header[pos] != '\'' && header[pos] != '"'))
    fail(path, "malformed descr in header: " + header);
  const char quote = header[pos];
  const size_t end = header.find(quote, pos + 1);
  if (end == std::string::npos) fail(path, "malformed descr in header: " + header);
  const std::string descr = header.substr(pos + 1, end - pos - 1);
  if (descr != "<f4")
    fail(path, "dtype '" + descr + "' is not supported (only little-endian float32, '<f4')");

  // fortran_order
  pos = skip_space(header, find_key(header, "fortran_order", path));
  if (header.compare(pos, 5, "False") != 0)
    fail(path, "Fortran-order arrays are not supported (save a C-contiguous array)");

  // shape: (d0, d1, ...) with an optional trailing comma
  pos = skip_space(header, find_key(header, "shape", path));
  if (pos >= header.size() || header[pos] != '(') fail(path, "malformed shape in header: " + header);
  ++pos;
  NpyArray arr;
  for (;;) {
    pos = skip_space(header, pos);
    if (pos >= header.size()) fail(path, "malformed shape in header: " + header);
    if (header[pos] == ')') break;
    if (!std::isdigit(static_cast<unsigned char>(header[pos])))
      fail(path, "malformed shape in header: " + header);
    int64_t d = 0;
    while (pos < header.size() && std::isdigit(static_cast<unsigned char>(header[pos]))) {
      if (d > (std::numeric_limits<int64_t>::max() - 9) / 10) fail(path, "absurd dimension");
      d = d * 10 + (header[pos] - '0');
      ++pos;
    }
    arr.shape.push_back(d);
    pos = skip_space(header, pos);
    if (pos < header.size() && header[pos] == ',') ++pos;
  }

  const size_t available = (bytes.size() - data_start) / sizeof(float);
  int64_t numel = 1;
  for (int64_t d : arr.shape) {
    if (d != 0 && numel > static_cast<int64_t>(available) / d)
      fail(path, "shape needs more data than the file holds");
    numel *= d;
  }
  const size_t expected = static_cast<size_t>(numel) * sizeof(float);
  if (bytes.size() - data_start != expected)
    fail(path, "data is " + std::to_string(bytes.size() - data_start) + " bytes, but the shape " +
                   "needs " + std::to_string(expected) + " (truncated or corrupt file)");
  arr.data.resize(static_cast<size_t>(numel));
  // The host is little-endian (x86-64, AArch64), like '<f4'.
  if (numel > 0) std::memcpy(arr.data.data(), bytes.data() + data_start, expected);
  return arr;
}

}  // namespace vitint::convert
