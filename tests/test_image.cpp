#include <doctest/doctest.h>

// stb_image_write crafts the PNG, BMP and TGA fixtures; static, as nothing
// else in the test binary has it.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#include <stb/stb_image_write.h>

#include <fstream>
#include <iterator>
#include <string>
#include <utility>

#include "shared_data.h"
#include "temp_files.h"
#include "vitint/error.h"
#include "vitint/image.h"

using vitint::Image;
using vitint::Interpolation;

namespace {

Image make_image(int w, int h) {
  Image img;
  img.width = w;
  img.height = h;
  img.rgb.assign(static_cast<size_t>(w) * static_cast<size_t>(h) * 3, 0);
  return img;
}

uint8_t& px(Image& img, int x, int y, int c) {
  return img.rgb[(static_cast<size_t>(y) * static_cast<size_t>(img.width) + static_cast<size_t>(x)) * 3 +
                 static_cast<size_t>(c)];
}
uint8_t px(const Image& img, int x, int y, int c) {
  return img.rgb[(static_cast<size_t>(y) * static_cast<size_t>(img.width) + static_cast<size_t>(x)) * 3 +
                 static_cast<size_t>(c)];
}

// Deterministic, non-smooth content.
Image pattern_image(int w, int h) {
  Image img = make_image(w, h);
  uint32_t s = 12345;
  for (auto& b : img.rgb) {
    s = s * 1664525u + 1013904223u;
    b = static_cast<uint8_t>(s >> 24);
  }
  return img;
}

using vitint::test::fnv1a;

using Bytes = std::vector<uint8_t>;

// w x h pixels of `comp` channels, in runs of three equal pixels (which TGA's
// RLE packs).
Bytes blocky_pixels(int w, int h, int comp) {
  Bytes out;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < comp; ++c)
        out.push_back(static_cast<uint8_t>((static_cast<uint32_t>((y * 1000 + x / 3) * 4 + c) * 2654435761u) >> 24));
  return out;
}

// What decoding `comp`-channel pixels gives: grey replicated, alpha dropped.
Bytes to_rgb(const Bytes& pixels, int comp) {
  Bytes out;
  for (size_t i = 0; i < pixels.size(); i += static_cast<size_t>(comp))
    for (size_t c = 0; c < 3; ++c) out.push_back(pixels[i + (comp == 1 ? 0 : c)]);
  return out;
}

void append_bytes(void* context, void* data, int size) {
  const auto* p = static_cast<const uint8_t*>(data);
  static_cast<Bytes*>(context)->insert(static_cast<Bytes*>(context)->end(), p, p + size);
}

void put_be32(Bytes& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

// A PNG of these chunks, each with its CRC (stb_image_write's).
Bytes png_file(const std::vector<std::pair<std::string, Bytes>>& chunks) {
  Bytes out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  for (const auto& [type, data] : chunks) {
    Bytes body(type.begin(), type.end());
    body.insert(body.end(), data.begin(), data.end());
    put_be32(out, static_cast<uint32_t>(data.size()));
    out.insert(out.end(), body.begin(), body.end());
    put_be32(out, stbiw__crc32(body.data(), static_cast<int>(body.size())));
  }
  return out;
}

Bytes png_ihdr(uint32_t w, uint32_t h, uint8_t depth, uint8_t colour_type) {
  Bytes out;
  put_be32(out, w);
  put_be32(out, h);
  out.insert(out.end(), {depth, colour_type, 0, 0, 0});
  return out;
}

// IDAT's data: rows of row_bytes from `samples`, each after filter type 0, deflated.
Bytes png_idat(const Bytes& samples, size_t row_bytes) {
  Bytes raw;
  for (size_t at = 0; at < samples.size(); at += row_bytes) {
    raw.push_back(0);
    raw.insert(raw.end(), samples.begin() + static_cast<std::ptrdiff_t>(at),
               samples.begin() + static_cast<std::ptrdiff_t>(at + row_bytes));
  }
  int len = 0;
  unsigned char* z = stbi_zlib_compress(raw.data(), static_cast<int>(raw.size()), &len, 8);
  Bytes out(z, z + len);
  STBIW_FREE(z);
  return out;
}

// A GIF of w x h pixels of a 4-colour palette: LZW with 3-bit codes, a clear
// code before every two pixels so that the code table never grows.
Bytes gif_file(int w, int h, const Bytes& palette, const Bytes& index) {
  const auto le16 = [](int v) { return Bytes{static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8)}; };
  Bytes out = {'G', 'I', 'F', '8', '9', 'a'};
  for (const Bytes& part : {le16(w), le16(h), Bytes{0x81, 0, 0}, palette, Bytes{0x2C}, le16(0), le16(0), le16(w),
                            le16(h), Bytes{0, 2}})
    out.insert(out.end(), part.begin(), part.end());
  Bytes lzw;
  uint32_t bits = 0, nbits = 0;
  const auto code = [&](uint32_t c) {
    bits |= c << nbits;
    for (nbits += 3; nbits >= 8; nbits -= 8, bits >>= 8) lzw.push_back(static_cast<uint8_t>(bits));
  };
  for (size_t i = 0; i < index.size(); ++i) {
    if (i % 2 == 0) code(4);  // clear
    code(index[i]);
  }
  code(5);  // end of information
  if (nbits > 0) lzw.push_back(static_cast<uint8_t>(bits));
  for (size_t at = 0; at < lzw.size(); at += 255) {
    const size_t n = std::min<size_t>(255, lzw.size() - at);
    out.push_back(static_cast<uint8_t>(n));
    out.insert(out.end(), lzw.begin() + static_cast<std::ptrdiff_t>(at),
               lzw.begin() + static_cast<std::ptrdiff_t>(at + n));
  }
  out.insert(out.end(), {0, ';'});  // block terminator, trailer
  return out;
}

struct Fixture {
  std::string name;
  Bytes file;
  Bytes rgb;  // its pixels
};

// Well-formed w x h files of every format that stb_image decodes for us.
std::vector<Fixture> stb_fixtures(int w, int h) {
  std::vector<Fixture> out;
  const Bytes rgb = blocky_pixels(w, h, 3);
  for (int comp : {1, 3, 4}) {
    const Bytes pixels = blocky_pixels(w, h, comp);
    int len = 0;
    unsigned char* png = stbi_write_png_to_mem(pixels.data(), w * comp, w, h, comp, &len);
    out.push_back({"PNG " + std::to_string(comp) + " channels", Bytes(png, png + len), to_rgb(pixels, comp)});
    STBIW_FREE(png);
    for (int rle : {0, 1}) {
      stbi_write_tga_with_rle = rle;
      Bytes tga;
      stbi_write_tga_to_func(append_bytes, &tga, w, h, comp, pixels.data());
      out.push_back(
          {"TGA " + std::to_string(comp) + " channels, RLE " + std::to_string(rle), tga, to_rgb(pixels, comp)});
    }
    if (comp == 1) continue;
    Bytes bmp;
    stbi_write_bmp_to_func(append_bytes, &bmp, w, h, comp, pixels.data());
    out.push_back({"BMP " + std::to_string(comp * 8) + "-bit", bmp, to_rgb(pixels, comp)});
  }
  const std::string size = std::to_string(w) + " " + std::to_string(h);
  const std::string ppm = "P6\n" + size + "\n255\n";
  Bytes file(ppm.begin(), ppm.end());
  file.insert(file.end(), rgb.begin(), rgb.end());
  out.push_back({"PPM", file, rgb});
  const std::string pgm = "P5\n# a comment\n" + size + "\n255\n";
  const Bytes grey = blocky_pixels(w, h, 1);
  file.assign(pgm.begin(), pgm.end());
  file.insert(file.end(), grey.begin(), grey.end());
  out.push_back({"PGM", file, to_rgb(grey, 1)});
  // 16-bit RGB: stb keeps the high bytes.
  Bytes wide;
  for (uint8_t v : rgb) wide.insert(wide.end(), {v, static_cast<uint8_t>(v ^ 0x5A)});
  out.push_back({"PNG 16-bit",
                 png_file({{"IHDR", png_ihdr(static_cast<uint32_t>(w), static_cast<uint32_t>(h), 16, 2)},
                           {"IDAT", png_idat(wide, static_cast<size_t>(w) * 6)},
                           {"IEND", {}}}),
                 rgb});
  const Bytes palette = {200, 10, 20, 30, 220, 40, 50, 60, 240, 250, 250, 250};
  Bytes index, indexed_rgb;
  for (uint8_t v : grey) {
    index.push_back(v % 4);
    indexed_rgb.insert(indexed_rgb.end(), &palette[v % 4 * 3], &palette[v % 4 * 3] + 3);
  }
  out.push_back({"PNG palette",
                 png_file({{"IHDR", png_ihdr(static_cast<uint32_t>(w), static_cast<uint32_t>(h), 8, 3)},
                           {"PLTE", palette},
                           {"IDAT", png_idat(index, static_cast<size_t>(w))},
                           {"IEND", {}}}),
                 indexed_rgb});
  out.push_back({"GIF", gif_file(w, h, palette, index), indexed_rgb});
  return out;
}

Image decode(const Bytes& file, const std::string& what = "test image") {
  return vitint::decode_image(file.data(), file.size(), what);
}

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("parse_interpolation") {
  CHECK(vitint::parse_interpolation("bicubic") == Interpolation::kBicubic);
  CHECK(vitint::parse_interpolation("bilinear") == Interpolation::kBilinear);
  CHECK(std::string(vitint::interpolation_name(Interpolation::kBicubic)) == "bicubic");
  CHECK_THROWS_AS(vitint::parse_interpolation("lanczos"), vitint::Error);
}

TEST_CASE("resize: same size is the identity") {
  const Image img = pattern_image(13, 7);
  for (auto interp : {Interpolation::kBicubic, Interpolation::kBilinear}) {
    const Image out = vitint::resize(img, 13, 7, interp);
    CHECK(out.width == 13);
    CHECK(out.height == 7);
    CHECK(out.rgb == img.rgb);
  }
}

TEST_CASE("resize: a constant image stays constant") {
  Image img = make_image(9, 6);
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 9; ++x) {
      px(img, x, y, 0) = 3;
      px(img, x, y, 1) = 128;
      px(img, x, y, 2) = 255;
    }
  const int sizes[][2] = {{20, 6}, {9, 17}, {4, 3}, {2, 11}, {31, 2}, {1, 1}};
  for (auto interp : {Interpolation::kBicubic, Interpolation::kBilinear})
    for (const auto& s : sizes) {
      const Image out = vitint::resize(img, s[0], s[1], interp);
      REQUIRE(out.width == s[0]);
      REQUIRE(out.height == s[1]);
      REQUIRE(out.rgb.size() == static_cast<size_t>(s[0] * s[1] * 3));
      for (int y = 0; y < s[1]; ++y)
        for (int x = 0; x < s[0]; ++x) {
          CHECK(px(out, x, y, 0) == 3);
          CHECK(px(out, x, y, 1) == 128);
          CHECK(px(out, x, y, 2) == 255);
        }
    }
}

// Bicubic (a = -0.5) upscaling 2 -> 4 pixels, computed by hand:
// scale 0.5, support 2; output 0 has center 0.25 and taps x = 0, 1 at
// distances 0.25 and 1.25: k(0.25) = 0.8671875, k(1.25) = -0.0703125,
// normalized 1.0882353 / -0.0882353 -> 22-bit fixed point 4564442 / -370085.
// [100, 200] gives (100*4564442 - 200*370085 + 2^21) >> 22 = 91.
// Output 1 (center 0.75): k(0.25), k(0.75) = 0.8671875, 0.2265625 ->
// 0.7928571 / 0.2071429 -> 121; outputs 2 and 3 mirror them: 179, 209.
TEST_CASE("resize: bicubic 2 -> 4 by hand, both passes") {
  Image row = make_image(2, 1);
  Image col = make_image(1, 2);
  for (int c = 0; c < 3; ++c) {
    const uint8_t a = c == 1 ? 200 : 100, b = c == 1 ? 100 : 200;
    px(row, 0, 0, c) = a;
    px(row, 1, 0, c) = b;
    px(col, 0, 0, c) = a;
    px(col, 0, 1, c) = b;
  }
  const uint8_t expect[4] = {91, 121, 179, 209};
  const Image h = vitint::resize(row, 4, 1, Interpolation::kBicubic);
  const Image v = vitint::resize(col, 1, 4, Interpolation::kBicubic);
  REQUIRE(h.width == 4);
  REQUIRE(v.height == 4);
  for (int i = 0; i < 4; ++i) {
    CHECK(px(h, i, 0, 0) == expect[i]);
    CHECK(px(h, i, 0, 2) == expect[i]);
    CHECK(px(h, i, 0, 1) == expect[3 - i]);
    CHECK(px(v, 0, i, 0) == expect[i]);
    CHECK(px(v, 0, i, 1) == expect[3 - i]);
  }
  // Both passes at once: a 2x2 image whose rows are equal behaves like a row.
  Image sq = make_image(2, 2);
  for (int y = 0; y < 2; ++y)
    for (int c = 0; c < 3; ++c) {
      px(sq, 0, y, c) = 100;
      px(sq, 1, y, c) = 200;
    }
  const Image hv = vitint::resize(sq, 4, 3, Interpolation::kBicubic);
  for (int y = 0; y < 3; ++y)
    for (int i = 0; i < 4; ++i) CHECK(px(hv, i, y, 0) == expect[i]);
}

// Bilinear downscaling 4 -> 2 (antialiased): support 1 * scale 2 = 2;
// output 0 has center 1 and taps 0..2 with triangle weights 0.75, 0.75, 0.25
// (/1.75): (10*3 + 20*3 + 30) / 7 = 17.14 -> 17; output 1 (center 3) taps
// 1..3 with 0.25, 0.75, 0.75: (20 + 30*3 + 40*3) / 7 = 32.86 -> 33.
TEST_CASE("resize: bilinear 4 -> 2 by hand") {
  Image img = make_image(4, 1);
  const uint8_t vals[4] = {10, 20, 30, 40};
  for (int x = 0; x < 4; ++x)
    for (int c = 0; c < 3; ++c) px(img, x, 0, c) = vals[x];
  const Image out = vitint::resize(img, 2, 1, Interpolation::kBilinear);
  REQUIRE(out.width == 2);
  CHECK(px(out, 0, 0, 0) == 17);
  CHECK(px(out, 1, 0, 0) == 33);
}

// Hashes of PIL.Image.resize outputs (Pillow 9.4) on pattern_image(300, 200)
// and (227, 227), computed offline: the port must be byte-identical.
TEST_CASE("resize: byte-identical to PIL") {
  const Image a = pattern_image(300, 200);
  CHECK(fnv1a(vitint::resize(a, 384, 256, Interpolation::kBicubic).rgb) == 0xa1b67c3707268e30ull);
  CHECK(fnv1a(vitint::resize(a, 173, 97, Interpolation::kBilinear).rgb) == 0xbcba34af2b2fa256ull);
  CHECK(fnv1a(vitint::resize(a, 300, 77, Interpolation::kBicubic).rgb) == 0x15078d0c27c0170cull);
  CHECK(fnv1a(vitint::resize(a, 451, 200, Interpolation::kBilinear).rgb) == 0xe651ebd4f64de7f4ull);
  const Image b = pattern_image(227, 227);
  CHECK(fnv1a(vitint::resize(b, 256, 256, Interpolation::kBicubic).rgb) == 0xcd92c10c82130ec8ull);
  CHECK(fnv1a(vitint::resize(b, 248, 248, Interpolation::kBicubic).rgb) == 0x63c6d6fbbf61ddccull);
}

TEST_CASE("resize: rejects bad sizes") {
  const Image img = pattern_image(5, 5);
  CHECK_THROWS_AS(vitint::resize(img, 0, 5, Interpolation::kBicubic), vitint::Error);
  CHECK_THROWS_AS(vitint::resize(img, 5, -1, Interpolation::kBicubic), vitint::Error);
  Image bad = img;
  bad.rgb.pop_back();
  CHECK_THROWS_AS(vitint::resize(bad, 4, 4, Interpolation::kBicubic), vitint::Error);
}

TEST_CASE("center_crop: torchvision offsets (round half to even)") {
  Image img = make_image(10, 9);
  for (int y = 0; y < 9; ++y)
    for (int x = 0; x < 10; ++x) {
      px(img, x, y, 0) = static_cast<uint8_t>(x);
      px(img, x, y, 1) = static_cast<uint8_t>(y);
    }
  struct Case {
    int w, h, left, top;
  };
  // left = round((10 - w) / 2), top = round((9 - h) / 2)
  const Case cases[] = {{10, 9, 0, 0}, {6, 5, 2, 2},  // 2.0, 2.0
                        {5, 4, 2, 2},                 // 2.5 -> 2, 2.5 -> 2
                        {7, 6, 2, 2},                 // 1.5 -> 2, 1.5 -> 2
                        {9, 8, 0, 0},                 // 0.5 -> 0
                        {1, 2, 4, 4},                 // 4.5 -> 4, 3.5 -> 4
                        {3, 1, 4, 4}};                // 3.5 -> 4, 4.0
  for (const auto& c : cases) {
    CAPTURE(c.w);
    CAPTURE(c.h);
    const Image out = vitint::center_crop(img, c.w, c.h);
    REQUIRE(out.width == c.w);
    REQUIRE(out.height == c.h);
    CHECK(px(out, 0, 0, 0) == c.left);
    CHECK(px(out, 0, 0, 1) == c.top);
    CHECK(px(out, c.w - 1, c.h - 1, 0) == c.left + c.w - 1);
    CHECK(px(out, c.w - 1, c.h - 1, 1) == c.top + c.h - 1);
  }
  CHECK_THROWS_AS(vitint::center_crop(img, 11, 9), vitint::Error);
  CHECK_THROWS_AS(vitint::center_crop(img, 10, 10), vitint::Error);
}

TEST_CASE("preprocess: torchvision Resize(int) then CenterCrop") {
  // Landscape 300x200, crop_pct 0.875: shorter side -> 256, longer int(256*300/200) = 384.
  const Image wide = pattern_image(300, 200);
  Image out = vitint::preprocess(wide, 224, 0.875, Interpolation::kBicubic);
  CHECK(out.width == 224);
  CHECK(out.height == 224);
  CHECK(out.rgb == vitint::center_crop(vitint::resize(wide, 384, 256, Interpolation::kBicubic), 224, 224).rgb);
  // Portrait 200x333, crop_pct 0.9: floor(224/0.9) = 248, longer int(248*333/200) = 412.
  const Image tall = pattern_image(200, 333);
  out = vitint::preprocess(tall, 224, 0.9, Interpolation::kBilinear);
  CHECK(out.width == 224);
  CHECK(out.height == 224);
  CHECK(out.rgb == vitint::center_crop(vitint::resize(tall, 248, 412, Interpolation::kBilinear), 224, 224).rgb);
  // crop_pct 1: the shorter side becomes exactly the input size.
  const Image sq = pattern_image(227, 227);
  out = vitint::preprocess(sq, 224, 1.0, Interpolation::kBicubic);
  CHECK(out.rgb == vitint::resize(sq, 224, 224, Interpolation::kBicubic).rgb);
  CHECK_THROWS_AS(vitint::preprocess(sq, 224, 0.0, Interpolation::kBicubic), vitint::Error);
}

// preprocess computes only the crop's pixels of the resized image: the same
// bytes as resizing all of it and cropping, for each way the passes run
// (none, both; 3, 5 and more taps per output pixel; odd crop offsets).
TEST_CASE("preprocess: the crop's pixels alone equal resize then crop") {
  struct Case {
    int w, h, size;
    double crop_pct;
    Interpolation interp;
    int new_w, new_h;
  };
  for (const Case& c : {Case{256, 301, 224, 0.875, Interpolation::kBicubic, 256, 301},  // no resampling
                        Case{640, 481, 224, 0.875, Interpolation::kBicubic, 340, 256},  // shrinking: 9 taps
                        Case{121, 100, 224, 0.9, Interpolation::kBilinear, 300, 248},   // enlarging: 3 taps
                        Case{97, 150, 64, 0.8, Interpolation::kBicubic, 80, 123}}) {    // enlarging: 5 taps
    CAPTURE(c.w);
    CAPTURE(c.h);
    const Image src = pattern_image(c.w, c.h);
    const Image out = vitint::preprocess(src, c.size, c.crop_pct, c.interp);
    CHECK(out.rgb == vitint::center_crop(vitint::resize(src, c.new_w, c.new_h, c.interp), c.size, c.size).rgb);
  }
}

TEST_CASE("load_image: errors name the file") {
  const vitint::test::TempDir dir;
  const std::string missing = dir.file("does_not_exist.jpg");
  try {
    vitint::load_image(missing);
    FAIL("no exception");
  } catch (const vitint::Error& e) {
    CHECK(std::string(e.what()).find(missing) != std::string::npos);
  }
  const std::string garbage = dir.file("garbage.jpg");
  {
    std::ofstream f(garbage, std::ios::binary);
    for (int i = 0; i < 1000; ++i) f.put(static_cast<char>((i * 7919) & 0xff));
  }
  try {
    vitint::load_image(garbage);
    FAIL("no exception");
  } catch (const vitint::Error& e) {
    CHECK(std::string(e.what()).find(garbage) != std::string::npos);
  }
  CHECK_THROWS_WITH_AS(vitint::load_image(dir.path), doctest::Contains((dir.path + ": it is a directory").c_str()), vitint::Error);
  // A device never ends: refused before reading, not read until memory runs out.
  CHECK_THROWS_WITH_AS(vitint::load_image("/dev/zero"), doctest::Contains("/dev/zero: it is a device or socket, not a file"),
                       vitint::Error);
  // A truncated JPEG: the first 300 bytes of a real one.
  const std::string real = vitint::test::val_dir() + "/ILSVRC2012_val_00000347.JPEG";
  std::ifstream in(real, std::ios::binary);
  REQUIRE(in.good());
  std::string head(300, '\0');
  in.read(head.data(), 300);
  const std::string truncated = dir.file("truncated.jpg");
  std::ofstream(truncated, std::ios::binary) << head;
  CHECK_THROWS_AS(vitint::load_image(truncated), vitint::Error);
}

TEST_CASE("load_image: a real JPEG") {
  const Image img = vitint::load_image(vitint::test::val_dir() + "/" + vitint::test::kPilProbeImage);
  CHECK(img.width == 227);
  CHECK(img.height == 227);
  CHECK(img.rgb.size() == 227u * 227u * 3u);
  const Image p = vitint::preprocess(img, 224, 0.875, Interpolation::kBicubic);
  CHECK(p.width == 224);
  CHECK(p.height == 224);
  // PIL's pixels (libjpeg-turbo, ISLOW IDCT, fancy upsampling) hash to this;
  // only a build with VITINT_HAVE_LIBJPEG reproduces them, stb_image differs
  // by +-1..3 in ~5% of the bytes.
  const bool pil_exact = fnv1a(img.rgb) == vitint::test::kPilProbeHash;
  WARN_MESSAGE(pil_exact, "JPEG decoding is not PIL-exact: this build decodes JPEGs with stb_image");
  if (pil_exact) CHECK(fnv1a(p.rgb) == 0x9d658a3c1959caa3ull);  // PIL resize + crop
}

TEST_CASE("decode_image: well-formed PNG, BMP, PPM/PGM, TGA and GIF files decode exactly") {
  for (const auto& [w, h] : {std::pair{1, 1}, std::pair{37, 11}, std::pair{64, 64}})
    for (const Fixture& f : stb_fixtures(w, h)) {
      CAPTURE(f.name);
      CAPTURE(f.file.size());
      const Image img = decode(f.file);
      CHECK(img.width == w);
      CHECK(img.height == h);
      CHECK(img.rgb == f.rgb);
    }
}

// stb_image pads a truncated file with zeros and succeeds.
TEST_CASE("decode_image: truncated BMP, PPM/PGM, TGA, GIF and PNG files are refused") {
  for (const auto& [w, h] : {std::pair{37, 11}, std::pair{64, 64}})
    for (const Fixture& f : stb_fixtures(w, h)) {
      // stb stops at the GIF's last data block, before the one-byte trailer.
      const bool gif = f.name == "GIF";
      const size_t end = f.file.size() - (gif ? 1 : 0);
      const auto head = [&](size_t n) {
        return Bytes(f.file.begin(), f.file.begin() + static_cast<std::ptrdiff_t>(n));
      };
      if (gif) CHECK(decode(head(end)).rgb == f.rgb);
      for (size_t cut : {size_t{100}, end * 2 / 5, end - 1}) {
        CAPTURE(f.name);
        CAPTURE(cut);
        CHECK_THROWS_WITH_AS(decode(head(cut), "cut.img"),
                             doctest::Contains("cannot decode image cut.img: the file ends early (truncated?)"),
                             vitint::Error);
      }
    }
  // A PPM header cut after its width: stb reads a height of 0 without asking for more bytes.
  const std::string cut_header = "P6\n64 ";
  CHECK_THROWS_WITH_AS(decode(Bytes(cut_header.begin(), cut_header.end()), "cut.ppm"),
                       doctest::Contains("its header gives the size 64x0 (a truncated or corrupt header?)"),
                       vitint::Error);
}

TEST_CASE("decode_image: PNG chunks must be whole, match their CRC and end in IEND") {
  const std::vector<Fixture> fixtures = stb_fixtures(37, 11);
  const auto find = [&](const std::string& name) {
    for (const Fixture& f : fixtures)
      if (f.name == name) return f.file;
    FAIL("no fixture " << name);
    return Bytes();
  };
  // stb ignores CRCs: a changed palette entry would give wrong colours.
  Bytes png = find("PNG palette");
  png[33 + 8 + 4] ^= 0x40;  // PLTE follows the 8-byte signature and 25-byte IHDR
  CHECK_THROWS_WITH_AS(decode(png), doctest::Contains("corrupt PNG: chunk PLTE at byte 33 has a bad CRC"),
                       vitint::Error);
  png = find("PNG 3 channels");
  png[png.size() - 13] ^= 1;  // the last byte of IDAT's CRC
  CHECK_THROWS_WITH_AS(decode(png), doctest::Contains("corrupt PNG: chunk IDAT at byte 33 has a bad CRC"),
                       vitint::Error);
  png = find("PNG 3 channels");
  png.resize(png.size() - 12);
  CHECK_THROWS_WITH_AS(decode(png), doctest::Contains("the file ends early (truncated?): the PNG has no IEND chunk"),
                       vitint::Error);
  png.resize(200);
  CHECK_THROWS_WITH_AS(
      decode(png),
      doctest::Contains("the file ends early (truncated?): PNG chunk IDAT at byte 33 runs past the end of the file"),
      vitint::Error);
  // Valid, but too big: stb would call it an "unknown image type".
  const Bytes huge = png_file({{"IHDR", png_ihdr(40000, 40000, 8, 2)}, {"IDAT", png_idat(Bytes(3), 3)}, {"IEND", {}}});
  CHECK_THROWS_WITH_AS(decode(huge), doctest::Contains("its size 40000x40000 is absurd"), vitint::Error);
}

TEST_CASE("decode_image: stb's terse or empty reasons are put in words") {
  // "not enough pixels": the image data inflates short.
  const Bytes half = png_file({{"IHDR", png_ihdr(37, 11, 8, 2)},
                               {"IDAT", png_idat(blocky_pixels(37, 5, 3), 37 * 3)},
                               {"IEND", {}}});
  CHECK_THROWS_WITH_AS(decode(half, "half.png"),
                       doctest::Contains("cannot decode image half.png: the file ends early (truncated?)"),
                       vitint::Error);
  // A GIF with a palette but no image: stb fails with the reason "".
  Bytes gif = gif_file(2, 2, Bytes(12), {0, 1, 2, 3});
  gif.resize(6 + 7 + 12);
  gif.push_back(';');
  CHECK_THROWS_WITH_AS(decode(gif, "empty.gif"),
                       doctest::Contains("cannot decode image empty.gif: stb_image could not decode it"),
                       vitint::Error);
}

// libjpeg only warns about these, and invents pixels where the data is missing
// or wrong.
TEST_CASE("decode_image: corrupt JPEG data is refused") {
  const Bytes jpeg = read_bytes(vitint::test::val_dir() + "/" + vitint::test::kPilProbeImage);
  // A baseline JPEG of 227x227 pixels; its only scan starts at byte 623.
  REQUIRE(jpeg.size() > 20000);
  REQUIRE(jpeg[158] == 0xFF);
  REQUIRE(jpeg[159] == 0xC0);
  REQUIRE(jpeg[609] == 0xFF);
  REQUIRE(jpeg[610] == 0xDA);
  const auto refused = [](const Bytes& file, const std::string& reason) {
    const std::string message = "cannot decode image bad.jpg: Corrupt JPEG data: " + reason;
    CHECK_THROWS_WITH_AS(decode(file, "bad.jpg"), doctest::Contains(message.c_str()), vitint::Error);
  };
  Bytes half(jpeg.begin(), jpeg.begin() + static_cast<std::ptrdiff_t>(jpeg.size() / 2));
  half.insert(half.end(), {0xFF, 0xD9});
  refused(half, "premature end of data segment");
  Bytes taller = jpeg;
  taller[163] = 0x01;  // the height: 227 -> 483
  taller[164] = 0xE3;
  refused(taller, "premature end of data segment");
  // 200 bytes of garbage in the middle of the scan, without 0xFF (a marker,
  // which libjpeg refuses anyway): libjpeg-turbo decodes garbage without a
  // word, and only the bytes left over before EOI give it away.
  Bytes scribbled = jpeg;
  uint32_t s = 7;
  for (size_t i = 0; i < 200; ++i) {
    s = s * 1664525u + 1013904223u;
    scribbled[(623 + jpeg.size()) / 2 + i] = static_cast<uint8_t>((s >> 24) & 0xFE);
  }
  refused(scribbled, "");
}
