// The .vti container (engine/src/format.h): round trips, atomic writes, and
// that every damaged or hostile file is rejected with an Error naming the file.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "engine/src/format.h"
#include "temp_files.h"

namespace fmt = vitint::format;
using fmt::DType;

namespace {

using vitint::test::TempDir;

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

uint32_t get_u32(const std::vector<uint8_t>& b, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | b[at + static_cast<size_t>(i)];
  return v;
}
uint64_t get_u64(const std::vector<uint8_t>& b, size_t at) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[at + static_cast<size_t>(i)];
  return v;
}
void put_u16(std::vector<uint8_t>& b, size_t at, uint16_t v) {
  for (size_t i = 0; i < 2; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_u32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  for (size_t i = 0; i < 4; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_u64(std::vector<uint8_t>& b, size_t at, uint64_t v) {
  for (size_t i = 0; i < 8; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

// Recomputes the metadata, table and header checksums after a test patched
// the structure, so that the semantic checks behind them are exercised.
void reseal(std::vector<uint8_t>& b) {
  namespace o = fmt::header_offset;
  const uint64_t mo = get_u64(b, o::kMetadataOffset), ms = get_u64(b, o::kMetadataSize);
  const uint64_t to = get_u64(b, o::kTableOffset), ts = get_u64(b, o::kTableSize);
  if (mo <= b.size() && ms <= b.size() - mo)
    put_u32(b, o::kMetadataCrc, fmt::compute_crc32(b.data() + mo, ms));
  if (to <= b.size() && ts <= b.size() - to)
    put_u32(b, o::kTableCrc, fmt::compute_crc32(b.data() + to, ts));
  put_u32(b, o::kHeaderCrc, fmt::compute_crc32(b.data(), o::kHeaderCrc));
}

// Error text from opening bytes, or "" when they open fine.
std::string open_error(std::vector<uint8_t> bytes, const std::string& name = "test.vti") {
  try {
    fmt::Reader::from_bytes(std::move(bytes), name);
  } catch (const vitint::Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// Contents shared by the round-trip tests and the committed v1.0 fixture;
// changing it invalidates tests/fixtures/format_v1_0.vti.
const std::vector<uint8_t> kU8 = {0, 1, 2, 254, 255};
const std::vector<int8_t> kS8 = {-128, -1, 0, 1, 127, 5};
const std::vector<int16_t> kS16 = {-32768, -2, 3, 32767};
const std::vector<int32_t> kS32 = {123456789};
const std::vector<float> kF32 = {1.5f, -2.25f, 0.0f, 3.0e-7f, 1.0e20f, -0.5f};
const std::vector<int64_t> kS64 = {INT64_MIN, -1, 0, INT64_MAX};

nlohmann::json fixture_metadata() {
  return {{"architecture", "vit"},
          {"hyper_parameters", {{"depth", 2}, {"dim", 8}, {"eps", 1e-6}}},
          {"class_names", {"cat", "dog", "caf\xc3\xa9"}},
          {"converter_version", "format-fixture"}};
}

fmt::Writer fixture_writer() {
  fmt::Writer w;
  w.set_metadata(fixture_metadata());
  w.add_tensor("a.u8", DType::kU8, {5}, kU8.data(), kU8.size());
  w.add_tensor("blocks.0.s8", DType::kS8, {2, 3}, kS8.data(), kS8.size());
  w.add_tensor("c.s16", DType::kS16, {2, 1, 2}, kS16.data(), kS16.size() * 2);
  w.add_tensor("d.s32.scalar", DType::kS32, {}, kS32.data(), 4);
  w.add_tensor("e.f32", DType::kF32, {3, 2}, kF32.data(), kF32.size() * 4);
  w.add_tensor("f.empty", DType::kS8, {0, 4}, nullptr, 0);
  w.add_tensor("g.s64", DType::kS64, {4}, kS64.data(), kS64.size() * 8);
  return w;
}

template <class T>
void check_data(const fmt::TensorView& t, const std::vector<T>& want) {
  REQUIRE(t.nbytes == want.size() * sizeof(T));
  const T* p = t.as<T>();
  for (size_t i = 0; i < want.size(); ++i) CHECK(p[i] == want[i]);
}

void check_fixture_contents(const fmt::Reader& r) {
  CHECK(r.major() == 1);
  CHECK(r.metadata() == fixture_metadata());
  REQUIRE(r.tensors().size() == 7);
  const char* order[] = {"a.u8", "blocks.0.s8", "c.s16", "d.s32.scalar",
                         "e.f32", "f.empty", "g.s64"};
  for (size_t i = 0; i < 7; ++i) CHECK(r.tensors()[i].name == order[i]);
  check_data(r.tensor("a.u8", DType::kU8, {5}), kU8);
  check_data(r.tensor("blocks.0.s8", DType::kS8, {2, 3}), kS8);
  check_data(r.tensor("c.s16", DType::kS16, {2, 1, 2}), kS16);
  check_data(r.tensor("d.s32.scalar", DType::kS32, {}), kS32);
  check_data(r.tensor("e.f32", DType::kF32, {3, 2}), kF32);
  check_data(r.tensor("g.s64", DType::kS64, {4}), kS64);
  const fmt::TensorView& empty = r.tensor("f.empty", DType::kS8, {0, 4});
  CHECK(empty.nbytes == 0);
  CHECK(empty.numel() == 0);
  CHECK(r.tensor("d.s32.scalar").numel() == 1);
  for (const fmt::TensorView& t : r.tensors()) {
    CHECK(reinterpret_cast<uintptr_t>(t.data) % 64 == 0);
    CHECK(t.offset % 64 == 0);
  }
}

std::string fixture_path() {
#ifdef VITINT_FIXTURES_DIR
  return std::string(VITINT_FIXTURES_DIR) + "/format_v1_0.vti";
#else
  return std::string(__FILE__).substr(0, std::string(__FILE__).rfind('/')) +
         "/fixtures/format_v1_0.vti";
#endif
}

}  // namespace

TEST_CASE("format: dtype helpers") {
  CHECK(fmt::dtype_size(DType::kU8) == 1);
  CHECK(fmt::dtype_size(DType::kS8) == 1);
  CHECK(fmt::dtype_size(DType::kS16) == 2);
  CHECK(fmt::dtype_size(DType::kS32) == 4);
  CHECK(fmt::dtype_size(DType::kF32) == 4);
  CHECK(fmt::dtype_size(DType::kS64) == 8);
  CHECK(fmt::dtype_size(static_cast<DType>(0)) == 0);
  CHECK(fmt::dtype_size(static_cast<DType>(7)) == 0);
  CHECK(fmt::dtype_name(DType::kS16) == "s16");
  CHECK(fmt::dtype_name(DType::kF32) == "f32");
  CHECK(fmt::dtype_name(static_cast<DType>(9)) == "unknown(9)");
  CHECK(fmt::compute_crc32("123456789", 9) == 0xCBF43926u);  // the CRC-32 check value
}

TEST_CASE("format: round trip through a file and through bytes") {
  TempDir dir;
  const fmt::Writer w = fixture_writer();
  const std::string path = dir.file("model.vti");
  w.write(path, false);
  CHECK(dir.files() == std::vector<std::string>{"model.vti"});  // no temporary left

  const auto r = fmt::Reader::open(path);
  check_fixture_contents(*r);
  CHECK(r->path() == path);
  CHECK(r->minor() == fmt::kMinorVersion);
  CHECK(r->find("nope") == nullptr);

  // Byte-identical and deterministic.
  const std::vector<uint8_t> bytes = w.to_bytes();
  CHECK(read_file(path) == bytes);
  CHECK(fixture_writer().to_bytes() == bytes);
  CHECK(r->file_size() == bytes.size());

  const auto rb = fmt::Reader::from_bytes(bytes, "embedded");
  check_fixture_contents(*rb);
}

TEST_CASE("format: a file without tensors and with empty metadata") {
  fmt::Writer w;
  const auto r = fmt::Reader::from_bytes(w.to_bytes(), "empty.vti");
  CHECK(r->tensors().empty());
  CHECK(r->metadata() == nlohmann::json::object());
}

TEST_CASE("format: the data outlives nothing but the Reader") {
  TempDir dir;
  std::vector<int32_t> big(100000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<int32_t>(i * 7919u);
  fmt::Writer w;
  w.add_tensor("big", DType::kS32, {100, 1000}, big.data(), big.size() * 4);
  w.add_tensor("tail", DType::kU8, {1}, "x", 1);
  w.write(dir.file("big.vti"), false);
  const fmt::TensorView* view = nullptr;
  std::shared_ptr<const fmt::Reader> keep;
  {
    keep = fmt::Reader::open(dir.file("big.vti"));
    view = &keep->tensor("big", DType::kS32, {100, 1000});
  }
  ::unlink(dir.file("big.vti").c_str());  // the mapping survives the unlink
  const int32_t* p = view->as<int32_t>();
  CHECK(p[0] == 0);
  CHECK(p[99999] == static_cast<int32_t>(99999u * 7919u));
}

TEST_CASE("format: write refuses to overwrite without overwrite=true") {
  TempDir dir;
  const std::string path = dir.file("model.vti");
  const std::vector<uint8_t> original = {'k', 'e', 'e', 'p'};
  write_file(path, original);

  std::string msg;
  try {
    fixture_writer().write(path, false);
  } catch (const vitint::Error& e) {
    msg = e.what();
  }
  CHECK(contains(msg, path));
  CHECK(contains(msg, "already exists"));
  CHECK(contains(msg, "--force"));
  CHECK(read_file(path) == original);
  CHECK(dir.files() == std::vector<std::string>{"model.vti"});

  fixture_writer().write(path, true);
  check_fixture_contents(*fmt::Reader::open(path));
  CHECK(dir.files() == std::vector<std::string>{"model.vti"});
}

TEST_CASE("format: a failed write leaves nothing behind") {
  TempDir dir;
  CHECK_THROWS_AS(fixture_writer().write(dir.file("missing_dir/model.vti"), false),
                  vitint::Error);
  CHECK(dir.files().empty());
  // Replacing a directory fails after the temporary file was written.
  REQUIRE(::mkdir(dir.file("sub").c_str(), 0755) == 0);
  CHECK_THROWS_AS(fixture_writer().write(dir.file("sub"), true), vitint::Error);
  CHECK(dir.files() == std::vector<std::string>{"sub"});
  ::rmdir(dir.file("sub").c_str());
}

TEST_CASE("format: Writer rejects invalid tensors and metadata") {
  fmt::Writer w;
  const int8_t data[8] = {};
  w.add_tensor("x", DType::kS8, {8}, data, 8);
  CHECK_THROWS_WITH_AS(w.add_tensor("x", DType::kS8, {8}, data, 8),
                       doctest::Contains("already added"), vitint::Error);
  CHECK_THROWS_WITH_AS(w.add_tensor("y", DType::kS8, {2, 3}, data, 8),
                       doctest::Contains("needs 6 bytes, got 8"), vitint::Error);
  CHECK_THROWS_WITH_AS(w.add_tensor("y", DType::kS16, {8}, data, 8),
                       doctest::Contains("needs 16 bytes"), vitint::Error);
  CHECK_THROWS_AS(w.add_tensor("", DType::kS8, {8}, data, 8), vitint::Error);
  CHECK_THROWS_AS(w.add_tensor("has space", DType::kS8, {8}, data, 8), vitint::Error);
  CHECK_THROWS_AS(w.add_tensor("bad\nname", DType::kS8, {8}, data, 8), vitint::Error);
  CHECK_THROWS_AS(w.add_tensor(std::string(257, 'n'), DType::kS8, {8}, data, 8), vitint::Error);
  w.add_tensor(std::string(256, 'n'), DType::kS8, {8}, data, 8);
  CHECK_THROWS_AS(w.add_tensor("y", DType::kS8, {1, 1, 1, 1, 1, 1, 1, 1, 8}, data, 8),
                  vitint::Error);
  CHECK_THROWS_AS(w.add_tensor("y", DType::kS8, {-1, -8}, data, 8), vitint::Error);
  CHECK_THROWS_AS(w.add_tensor("y", DType::kS64, {INT64_MAX, 2}, data, 8), vitint::Error);
  CHECK_THROWS_AS(w.add_tensor("y", static_cast<DType>(0), {8}, data, 8), vitint::Error);
  CHECK_THROWS_AS(w.add_tensor("y", DType::kS8, {8}, nullptr, 8), vitint::Error);
  CHECK_THROWS_AS(w.set_metadata(nlohmann::json::array({1, 2})), vitint::Error);
  CHECK_THROWS_AS(w.set_metadata({{"bad", std::string("\xff\xfe")}}), vitint::Error);
  CHECK(w.tensor_count() == 2);
  CHECK(fmt::Reader::from_bytes(w.to_bytes(), "w")->tensors().size() == 2);
}

TEST_CASE("format: every truncation is an Error that says truncated") {
  const std::vector<uint8_t> full = fixture_writer().to_bytes();
  for (size_t len = 0; len < full.size(); ++len) {
    const std::string msg =
        open_error(std::vector<uint8_t>(full.begin(), full.begin() + static_cast<long>(len)),
                   "cut.vti");
    INFO("length " << len << ": " << msg);
    CHECK(contains(msg, "model file cut.vti"));
    CHECK(contains(msg, "truncated"));
  }
  CHECK(contains(open_error(std::vector<uint8_t>(full.begin(), full.end() - 1)),
                 "expected " + std::to_string(full.size()) + " bytes, got " +
                     std::to_string(full.size() - 1)));
  std::vector<uint8_t> longer = full;
  longer.push_back(0);
  CHECK(contains(open_error(longer), "trailing data"));
}

TEST_CASE("format: every single-bit flip is detected") {
  const std::vector<uint8_t> full = fixture_writer().to_bytes();
  CHECK(open_error(full).empty());
  size_t failures = 0;
  for (size_t at = 0; at < full.size(); ++at) {
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<uint8_t> b = full;
      b[at] = static_cast<uint8_t>(b[at] ^ (1u << bit));
      const std::string msg = open_error(std::move(b), "flip.vti");
      if (msg.rfind("model file flip.vti", 0) != 0) {
        ++failures;
        INFO("byte " << at << " bit " << bit << ": '" << msg << "'");
        CHECK(false);
      }
    }
  }
  CHECK(failures == 0);
}

TEST_CASE("format: a flipped data bit names the tensor and its offset") {
  const std::vector<uint8_t> full = fixture_writer().to_bytes();
  const auto r = fmt::Reader::from_bytes(full, "x");
  const fmt::TensorView& t = r->tensor("e.f32");
  std::vector<uint8_t> b = full;
  b[t.offset + 5] ^= 0x10;
  CHECK(open_error(b, "m.vti") == "model file m.vti: tensor 'e.f32' at byte offset " +
                                      std::to_string(t.offset) +
                                      ": checksum mismatch (file corrupted)");
}

TEST_CASE("format: version rules") {
  const std::vector<uint8_t> full = fixture_writer().to_bytes();
  SUBCASE("a newer major version is rejected") {
    std::vector<uint8_t> b = full;
    put_u16(b, fmt::header_offset::kMajor, 2);
    reseal(b);
    const std::string msg = open_error(b, "new.vti");
    CHECK(msg ==
          "model file new.vti was written by a newer libvitint (format 2.x); this build reads "
          "1.x: upgrade libvitint");
  }
  SUBCASE("a newer minor version is accepted") {
    std::vector<uint8_t> b = full;
    put_u16(b, fmt::header_offset::kMinor, 7);
    reseal(b);
    const auto r = fmt::Reader::from_bytes(b, "minor.vti");
    CHECK(r->major() == 1);
    CHECK(r->minor() == 7);
    check_fixture_contents(*r);
  }
  SUBCASE("a longer header from a future minor version is accepted") {
    // Header grows by 64 bytes: shift everything, fix the offsets.
    std::vector<uint8_t> b(full.begin(), full.begin() + 124);
    b.resize(128 + 64 - 4, 0);
    b.insert(b.end(), {0, 0, 0, 0});  // header CRC slot, at header_size - 4
    b.insert(b.end(), full.begin() + 128, full.end());
    namespace o = fmt::header_offset;
    put_u16(b, o::kMinor, 1);
    put_u32(b, o::kHeaderSize, 192);
    put_u64(b, o::kFileSize, get_u64(b, o::kFileSize) + 64);
    for (size_t f : {o::kMetadataOffset, o::kTableOffset, o::kDataOffset})
      put_u64(b, f, get_u64(b, f) + 64);
    const uint64_t to = get_u64(b, o::kTableOffset);
    uint64_t pos = 0;
    for (uint64_t i = 0; i < get_u64(b, o::kTensorCount); ++i) {
      put_u64(b, to + pos + 16, get_u64(b, to + pos + 16) + 64);
      pos += get_u32(b, to + pos);
    }
    reseal(b);
    put_u32(b, 188, fmt::compute_crc32(b.data(), 188));
    const auto r = fmt::Reader::from_bytes(b, "long-header.vti");
    check_fixture_contents(*r);
  }
  SUBCASE("major version 0 is corruption") {
    std::vector<uint8_t> b = full;
    put_u16(b, fmt::header_offset::kMajor, 0);
    reseal(b);
    CHECK(contains(open_error(b), "corrupted"));
  }
}

TEST_CASE("format: files that are not models") {
  CHECK(contains(open_error({'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '!'}, "a.txt"),
                 "model file a.txt is not a libvitint model"));
  CHECK(contains(open_error({'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0}, "ckpt.pth"), "zip archive"));
  CHECK(contains(open_error({'x'}, "one"), "not a libvitint model"));
  CHECK(contains(open_error({'V', 'I', 'T'}, "three"), "truncated"));
  CHECK(contains(open_error({}, "zero"), "model file zero is truncated"));

  TempDir dir;
  CHECK_THROWS_WITH_AS(fmt::Reader::open(dir.file("absent.vti")),
                       doctest::Contains("does not exist"), vitint::Error);
  CHECK_THROWS_WITH_AS(fmt::Reader::open(dir.path), doctest::Contains("not a regular file"),
                       vitint::Error);
  write_file(dir.file("empty.vti"), {});
  CHECK_THROWS_WITH_AS(fmt::Reader::open(dir.file("empty.vti")),
                       doctest::Contains("truncated"), vitint::Error);
  REQUIRE(::mkfifo(dir.file("fifo").c_str(), 0600) == 0);  // must not block
  CHECK_THROWS_WITH_AS(fmt::Reader::open(dir.file("fifo")), doctest::Contains("not a regular"),
                       vitint::Error);
}

TEST_CASE("format: tensor lookups name the tensor") {
  const auto r = fmt::Reader::from_bytes(fixture_writer().to_bytes(), "m.vti");
  CHECK_THROWS_WITH_AS(r->tensor("blocks.3.qkv.w"),
                       "model file m.vti: tensor 'blocks.3.qkv.w' is missing", vitint::Error);
  CHECK_THROWS_WITH_AS(r->tensor("blocks.0.s8", DType::kS32, {2, 3}),
                       doctest::Contains("tensor 'blocks.0.s8' has dtype s8, expected s32"),
                       vitint::Error);
  CHECK_THROWS_WITH_AS(r->tensor("blocks.0.s8", DType::kS8, {3, 2}),
                       doctest::Contains("tensor 'blocks.0.s8' has shape [2, 3], expected [3, 2]"),
                       vitint::Error);
  CHECK_THROWS_WITH_AS(r->tensor("blocks.0.s8", DType::kU8, {6}),
                       doctest::Contains("model file m.vti: tensor 'blocks.0.s8' has dtype s8 and "
                                         "shape [2, 3], expected dtype u8 and shape [6]"),
                       vitint::Error);
  CHECK_THROWS_WITH_AS(r->tensor("e.f32").as<int32_t>(),
                       doctest::Contains("'e.f32' has dtype f32 but was read as s32"),
                       vitint::Error);
}

TEST_CASE("format: structurally invalid files behind valid checksums") {
  const std::vector<uint8_t> full = fixture_writer().to_bytes();
  namespace o = fmt::header_offset;
  const uint64_t to = get_u64(full, o::kTableOffset);
  // Table entry fields (docs/model-format.md): size 0, dtype 4, ndim 8,
  // name_len 12, offset 16, nbytes 24, crc 32.
  const size_t e0 = to;                         // "a.u8"
  const size_t e1 = to + get_u32(full, to);     // "blocks.0.s8"
  auto patched = [&](auto&& patch) {
    std::vector<uint8_t> b = full;
    patch(b);
    reseal(b);
    return open_error(b, "bad.vti");
  };
  CHECK(contains(patched([&](auto& b) { put_u64(b, o::kMetadataOffset, UINT64_MAX - 8); }),
                 "metadata section"));
  CHECK(contains(patched([&](auto& b) { put_u64(b, o::kTableSize, UINT64_MAX); }),
                 "tensor table section"));
  CHECK(contains(patched([&](auto& b) { put_u64(b, o::kDataSize, 1); }), "data"));
  CHECK(contains(patched([&](auto& b) { put_u64(b, o::kTableOffset, 64); }), "overlap"));
  CHECK(contains(patched([&](auto& b) { put_u32(b, o::kAlignment, 48); }), "alignment"));
  CHECK(contains(patched([&](auto& b) { put_u64(b, o::kTensorCount, UINT64_MAX); }),
                 "tensor count"));
  CHECK(contains(patched([&](auto& b) { put_u64(b, o::kTensorCount, 6); }),
                 "bytes after its last entry"));
  CHECK(contains(patched([&](auto& b) { put_u32(b, e0 + 0, 1u << 31); }), "entry size"));
  CHECK(contains(patched([&](auto& b) { put_u32(b, e0 + 4, 77); }), "unknown dtype 77"));
  CHECK(contains(patched([&](auto& b) { put_u32(b, e0 + 8, 9); }), "9 dims"));
  CHECK(contains(patched([&](auto& b) { put_u32(b, e0 + 12, 0xFFFFFFFFu); }), "name length"));
  CHECK(contains(patched([&](auto& b) { b[e0 + 40 + 8] = ' '; }), "visible ASCII"));
  CHECK(contains(patched([&](auto& b) { std::memcpy(&b[e1 + 40 + 16], "a.u8\0\0\0\0\0\0\0", 11);
                                        put_u32(b, e1 + 12, 4); }),
                 "duplicate"));
  CHECK(contains(patched([&](auto& b) { put_u64(b, e0 + 40, UINT64_MAX); }), "invalid shape"));
  CHECK(contains(patched([&](auto& b) { put_u64(b, e0 + 40, 6); }), "needs 6 bytes"));
  CHECK(contains(patched([&](auto& b) { put_u64(b, e0 + 16, get_u64(b, e0 + 16) + 8); }),
                 "aligned range"));
  CHECK(contains(patched([&](auto& b) { put_u64(b, e0 + 16, UINT64_MAX - 63); }),
                 "aligned range"));
  CHECK(contains(patched([&](auto& b) { put_u64(b, e1 + 16, get_u64(b, e0 + 16)); }),
                 "overlaps tensor 'a.u8'"));
  CHECK(contains(patched([&](auto& b) { b[get_u64(b, e0 + 16) + 5] = 1; }), "padding"));

}

TEST_CASE("format: metadata must be a JSON object of bounded depth") {
  namespace o = fmt::header_offset;
  fmt::Writer w;
  w.set_metadata({{"pad", std::string(400, 'x')}});
  const std::vector<uint8_t> full = w.to_bytes();
  const uint64_t mo = get_u64(full, o::kMetadataOffset);
  const uint64_t ms = get_u64(full, o::kMetadataSize);
  auto with_metadata = [&](std::string text) {
    REQUIRE(text.size() <= ms);
    text.resize(ms, ' ');  // trailing whitespace is valid JSON
    std::vector<uint8_t> b = full;
    std::memcpy(&b[mo], text.data(), text.size());
    reseal(b);
    return open_error(b, "meta.vti");
  };
  CHECK(with_metadata("{\"a\": 1}").empty());
  CHECK(contains(with_metadata("[1, 2, 3]"), "must be a JSON object, found array"));
  CHECK(contains(with_metadata("{\"a\": }"), "is not valid JSON"));
  CHECK(contains(with_metadata("{\"a\": \"\xff\xfe\"}"), "is not valid JSON"));
  CHECK(contains(with_metadata(std::string(150, '[') + std::string(150, ']')),
                 "is not valid JSON"));
  CHECK(with_metadata("{\"a\":" + std::string(60, '[') + std::string(60, ']') + "}").empty());
}

TEST_CASE("format: random corruption never escapes as anything but Error") {
  const std::vector<uint8_t> full = fixture_writer().to_bytes();
  std::mt19937_64 rng(12345);
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> b = full;
    const int edits = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < edits; ++k) b[rng() % b.size()] = static_cast<uint8_t>(rng());
    if (iter % 2 == 0) reseal(b);  // get past the checksums half of the time
    if (iter % 7 == 0) b.resize(rng() % (b.size() + 1));
    try {
      fmt::Reader::from_bytes(std::move(b), "fuzz.vti");
    } catch (const vitint::Error& e) {
      CHECK(std::string(e.what()).rfind("model file fuzz.vti", 0) == 0);
    }
  }
}

// Files written by format 1.0 must stay readable by every later 1.x (and are a
// regression test for the byte layout). To regenerate after an intentional
// change of the fixture contents (never of the layout of an existing version):
//   VITINT_WRITE_FORMAT_FIXTURE=1 build/tests/vitint_tests -tc='format: v1.0 fixture*'
TEST_CASE("format: v1.0 fixture file still reads") {
  if (const char* regen = std::getenv("VITINT_WRITE_FORMAT_FIXTURE"); regen && *regen)
    fixture_writer().write(fixture_path(), true);
  const auto r = fmt::Reader::open(fixture_path());
  CHECK(r->major() == 1);
  CHECK(r->minor() == 0);
  check_fixture_contents(*r);
  if (fmt::kMajorVersion == 1 && fmt::kMinorVersion == 0)
    CHECK(read_file(fixture_path()) == fixture_writer().to_bytes());
}
