// Image decoding and a bit-exact port of Pillow's resampling, so that
// preprocessing matches timm/torchvision on PIL images byte for byte.
//
// JPEG: with VITINT_HAVE_LIBJPEG (the build links libjpeg-turbo) JPEGs are
// decoded by libjpeg with its defaults (ISLOW IDCT, fancy upsampling), which
// is what PIL does: the pixels are identical to PIL's. stb_image's JPEG
// decoder differs from it in ~5% of the bytes by +-1..3, which moves timm's
// FP32 logits by up to ~0.5 and flips 0.3-0.5% of top-1 decisions. Other
// formats, and JPEGs when libjpeg is absent, go through stb_image.
#include "vitint/image.h"

#include <stb/stb_image.h>

#ifdef VITINT_HAVE_LIBJPEG
#include <csetjmp>
#include <cstdio>
// jpeglib.h needs size_t and FILE declared first.
#include <jpeglib.h>
#include <jerror.h>
#endif

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstring>
#include <memory>

#include "engine/src/read_file.h"
#include "vitint/error.h"

namespace vitint {

namespace {

// Bigger than any photograph worth classifying; protects against decoding
// bombs (a tiny file declaring a gigapixel image).
constexpr int kMaxImageSide = 1 << 15;
constexpr long long kMaxImagePixels = 1LL << 27;

// Pillow: 8 bits for the result, 2 bits of headroom for negative lobes and
// sums above 1, in a 32-bit int.
constexpr int kPrecisionBits = 32 - 8 - 2;

struct Filter {
  double (*fn)(double);
  double support;
};

double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return 1.0 - x;
  return 0.0;
}

double bicubic_filter(double x) {
  // Keys' cubic convolution with a = -0.5, written in Pillow's operation
  // order so the doubles round identically.
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

Filter filter_for(Interpolation interp) {
  switch (interp) {
    case Interpolation::kBilinear:
      return {bilinear_filter, 1.0};
    case Interpolation::kBicubic:
      return {bicubic_filter, 2.0};
  }
  VITINT_ASSERT(false);
  return {bicubic_filter, 2.0};
}

// One output position's source window [start, start + count) and its
// fixed-point weights (Pillow's precompute_coeffs + normalize_coeffs_8bpc),
// zero past count up to ksize. Where ksize <= in_size, a window that would
// end past the input starts earlier, its weights moved right behind zeros
// (the sums are Pillow's), so every [start, start + ksize) lies inside the
// input: the horizontal pass reads ksize taps for every output pixel.
struct Coeffs {
  int ksize = 0;
  std::vector<int> start;
  std::vector<int> count;
  std::vector<int32_t> weights;  // out_size * ksize
};

Coeffs precompute_coeffs(int in_size, int out_size, const Filter& filter) {
  // Full-image box: in0 = 0, in1 = in_size (floats in Pillow; exact here).
  const float in0 = 0.0f;
  const float in1 = static_cast<float>(in_size);
  const double scale = static_cast<double>(in1 - in0) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = filter.support * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.start.resize(static_cast<size_t>(out_size));
  c.count.resize(static_cast<size_t>(out_size));
  c.weights.assign(static_cast<size_t>(out_size) * static_cast<size_t>(c.ksize), 0);
  std::vector<double> k(static_cast<size_t>(c.ksize));
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    // Pillow rounds with (int)(v + 0.5), i.e. truncation toward zero.
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = filter.fn((x + xmin - center + 0.5) * ss);
      k[static_cast<size_t>(x)] = w;
      ww += w;
    }
    int32_t* out = &c.weights[static_cast<size_t>(xx) * static_cast<size_t>(c.ksize)];
    for (int x = 0; x < xmax; ++x) {
      double v = k[static_cast<size_t>(x)];
      if (ww != 0.0) v /= ww;
      const double scaled = v * (1 << kPrecisionBits);
      out[x] = static_cast<int32_t>(v < 0 ? -0.5 + scaled : 0.5 + scaled);
    }
    const int shift = c.ksize <= in_size ? std::max(0, xmin + c.ksize - in_size) : 0;
    if (shift > 0) {
      std::copy_backward(out, out + xmax, out + xmax + shift);
      std::fill(out, out + shift, 0);
    }
    c.start[static_cast<size_t>(xx)] = xmin - shift;
    c.count[static_cast<size_t>(xx)] = xmax + shift;
  }
  return c;
}

inline uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> kPrecisionBits;  // arithmetic shift, as in Pillow
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Source rows [row0, row0 + out_h) of width src_w -> out_w pixels from
// windows start[xx], count[xx] with weights k[xx * ksize ..]. K > 0: every
// window read as K = ksize taps (Coeffs keeps them inside the row, zero
// weights past count), so the 3 x K products of a pixel are straight-line
// code; K = 0: count[xx] taps.
template <int K>
void horizontal_rows(const uint8_t* src, int src_w, int row0, int out_h, int out_w, const int* start,
                     const int* count, const int32_t* k, int ksize, uint8_t* dst) {
  for (int yy = 0; yy < out_h; ++yy) {
    const uint8_t* in_row = src + static_cast<size_t>(yy + row0) * static_cast<size_t>(src_w) * 3;
    uint8_t* out_row = dst + static_cast<size_t>(yy) * static_cast<size_t>(out_w) * 3;
    for (int xx = 0; xx < out_w; ++xx) {
      const int n = K > 0 ? K : count[xx];
      const int32_t* kx = k + static_cast<size_t>(xx) * static_cast<size_t>(ksize);
      const uint8_t* p = in_row + static_cast<size_t>(start[xx]) * 3;
      int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
      for (int x = 0; x < n; ++x) {
        s0 += p[3 * x + 0] * kx[x];
        s1 += p[3 * x + 1] * kx[x];
        s2 += p[3 * x + 2] * kx[x];
      }
      out_row[3 * xx + 0] = clip8(s0);
      out_row[3 * xx + 1] = clip8(s1);
      out_row[3 * xx + 2] = clip8(s2);
    }
  }
}

// Source rows [row0, row0 + out_h) of width src_w -> the output columns
// [col0, col0 + out_w) of the resized width (coefficients c), out_w wide.
// The usual tap counts (3: bilinear, 5: bicubic when enlarging) run a
// fixed-size inner loop.
void resample_horizontal(const uint8_t* src, int src_w, int row0, int out_h, int col0, int out_w,
                         const Coeffs& c, uint8_t* dst) {
  const auto at = static_cast<size_t>(col0);
  const int* start = c.start.data() + at;
  const int* count = c.count.data() + at;
  const int32_t* k = c.weights.data() + at * static_cast<size_t>(c.ksize);
  if (c.ksize <= src_w) {
    switch (c.ksize) {
      case 3:
        return horizontal_rows<3>(src, src_w, row0, out_h, out_w, start, count, k, c.ksize, dst);
      case 5:
        return horizontal_rows<5>(src, src_w, row0, out_h, out_w, start, count, k, c.ksize, dst);
      default:
        break;
    }
  }
  horizontal_rows<0>(src, src_w, row0, out_h, out_w, start, count, k, c.ksize, dst);
}

// The output rows [row0, row0 + out_h) of the resized height (coefficients
// c) from rows of `bytes` bytes, `stride` apart in src, whose row 0 is source
// row row_shift. Row by row of the source, so that the inner loop runs over
// contiguous bytes with one weight (the compiler vectorizes it); each sum
// adds the same terms in the same order as Pillow's.
__attribute__((target_clones("avx2", "default")))
void resample_vertical(const uint8_t* src, size_t stride, size_t bytes, int row0, int out_h, const Coeffs& c,
                       int row_shift, uint8_t* dst) {
  std::vector<int32_t> acc(bytes);
  for (int yy = 0; yy < out_h; ++yy) {
    const auto at = static_cast<size_t>(yy + row0);
    const int ymin = c.start[at] - row_shift;
    const int n = c.count[at];
    const int32_t* k = &c.weights[at * static_cast<size_t>(c.ksize)];
    std::fill(acc.begin(), acc.end(), int32_t{1} << (kPrecisionBits - 1));
    for (int y = 0; y < n; ++y) {
      const uint8_t* in_row = src + static_cast<size_t>(ymin + y) * stride;
      const int32_t w = k[y];
      for (size_t i = 0; i < bytes; ++i) acc[i] += in_row[i] * w;
    }
    uint8_t* out_row = dst + static_cast<size_t>(yy) * bytes;
    for (size_t i = 0; i < bytes; ++i) out_row[i] = clip8(acc[i]);
  }
}

// torchvision CenterCrop's offset for `diff` spare pixels:
// int(round(diff / 2.0)), Python rounding halves to even.
int crop_offset(int diff) {
  const int half = diff / 2;
  return (diff % 2 == 0 || half % 2 == 0) ? half : half + 1;
}

// The pixels [x0, x0 + w) x [y0, y0 + h) of src.
Image copy_window(const Image& src, int x0, int y0, int w, int h) {
  Image out;
  out.width = w;
  out.height = h;
  out.rgb.resize(static_cast<size_t>(w) * static_cast<size_t>(h) * 3);
  const size_t row_bytes = static_cast<size_t>(w) * 3;
  for (int y = 0; y < h; ++y)
    std::memcpy(out.rgb.data() + static_cast<size_t>(y) * row_bytes,
                src.rgb.data() + (static_cast<size_t>(y0 + y) * static_cast<size_t>(src.width) + static_cast<size_t>(x0)) * 3,
                row_bytes);
  return out;
}

// The columns [x0, x0 + w) and rows [y0, y0 + h) of resize(src, width,
// height, interp): the same bytes, computing only those outputs.
Image resize_window(const Image& src, int width, int height, Interpolation interp, int x0, int y0, int w, int h) {
  const Filter filter = filter_for(interp);
  // Pillow's ImagingResampleInner for box = (0, 0, W, H): each pass runs only
  // when that dimension changes; the horizontal pass covers just the source
  // rows that the vertical pass will read.
  const bool need_h = width != src.width;
  const bool need_v = height != src.height;
  if (!need_h && !need_v) return copy_window(src, x0, y0, w, h);
  const size_t src_stride = static_cast<size_t>(src.width) * 3;
  Image out;
  out.width = w;
  out.height = h;
  out.rgb.resize(static_cast<size_t>(w) * static_cast<size_t>(h) * 3);
  const size_t out_bytes = static_cast<size_t>(w) * 3;
  if (!need_v) {
    const Coeffs horiz = precompute_coeffs(src.width, width, filter);
    resample_horizontal(src.rgb.data(), src.width, y0, h, x0, w, horiz, out.rgb.data());
    return out;
  }
  const Coeffs vert = precompute_coeffs(src.height, height, filter);
  if (!need_h) {
    resample_vertical(src.rgb.data() + static_cast<size_t>(x0) * 3, src_stride, out_bytes, y0, h, vert, 0,
                      out.rgb.data());
    return out;
  }
  // The source rows that output rows [y0, y0 + h) read: windows move down
  // monotonically.
  const int ybox_first = vert.start[static_cast<size_t>(y0)];
  const int ybox_last = vert.start[static_cast<size_t>(y0 + h - 1)] + vert.count[static_cast<size_t>(y0 + h - 1)];
  const Coeffs horiz = precompute_coeffs(src.width, width, filter);
  std::vector<uint8_t> tmp(static_cast<size_t>(ybox_last - ybox_first) * out_bytes);
  resample_horizontal(src.rgb.data(), src.width, ybox_first, ybox_last - ybox_first, x0, w, horiz, tmp.data());
  resample_vertical(tmp.data(), out_bytes, out_bytes, y0, h, vert, ybox_first, out.rgb.data());
  return out;
}

void check_image(const Image& img, const char* what) {
  if (img.width <= 0 || img.height <= 0 ||
      img.rgb.size() != static_cast<size_t>(img.width) * static_cast<size_t>(img.height) * 3)
    throw Error(std::string(what) + ": invalid image (" + std::to_string(img.width) + "x" +
                std::to_string(img.height) + " with " + std::to_string(img.rgb.size()) +
                " bytes; expected width*height*3 interleaved RGB bytes)");
}

void check_dimensions(long long w, long long h, const std::string& what) {
  if (w <= 0 || h <= 0)  // e.g. a PPM header cut after its width
    throw Error("cannot decode image " + what + ": its header gives the size " + std::to_string(w) + "x" +
                std::to_string(h) + " (a truncated or corrupt header?)");
  if (w > kMaxImageSide || h > kMaxImageSide || w * h > kMaxImagePixels)
    throw Error("cannot decode image " + what + ": its size " + std::to_string(w) + "x" +
                std::to_string(h) + " is absurd (at most " + std::to_string(kMaxImageSide) +
                " pixels a side and " + std::to_string(kMaxImagePixels) + " pixels)");
}

constexpr const char* kTruncated = "the file ends early (truncated?)";

// stb_image ignores the CRCs of a PNG's chunks (decoding a corrupted file
// into wrong pixels), and refuses a huge IHDR as "unknown image type". Each
// chunk must fit in the file and match its CRC, up to IEND.
void check_png(const uint8_t* bytes, size_t size, const std::string& what) {
  constexpr uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (size < 8 || std::memcmp(bytes, kSignature, 8) != 0) return;
  const auto be32 = [](const uint8_t* p) {
    return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
  };
  const std::string fail = "cannot decode image " + what + ": ";
  for (size_t at = 8;; ) {
    const size_t left = size - at;
    if (left == 0) throw Error(fail + kTruncated + ": the PNG has no IEND chunk");
    const uint8_t* type = bytes + at + 4;
    const auto chunk = [&] {  // "chunk IDAT at byte 33", for a message
      std::string name = left < 8 ? "" : std::string(type, type + 4) + " ";
      for (char& c : name)
        if (c != ' ' && !std::isalpha(static_cast<unsigned char>(c))) c = '?';
      return "chunk " + name + "at byte " + std::to_string(at);
    };
    const uint32_t length = left < 8 ? 0 : be32(bytes + at);
    if (left < 12 || length > left - 12)
      throw Error(fail + kTruncated + ": PNG " + chunk() + " runs past the end of the file");
    const uint8_t* data = bytes + at + 8;
    if (crc32(0, data - 4, length + 4) != be32(data + length))
      throw Error(fail + "corrupt PNG: " + chunk() + " has a bad CRC");
    if (std::memcmp(type, "IHDR", 4) == 0 && length >= 8) check_dimensions(be32(data), be32(data + 4), what);
    if (std::memcmp(type, "IEND", 4) == 0) return;
    at += 12 + size_t{length};
  }
}

// stb_image reads the other formats through these callbacks, which note when
// it wants bytes past the end: stb pads a truncated file with zeros and
// succeeds. Its first read fills its own 128-byte buffer, and so does every
// read into that address later; such a read gets whatever is left, and only
// one that gets nothing is truncation. Any other read (stbi__getn: PPM/PGM
// data, TGA rows, PNG IDAT) needs every byte it asks for, and so does a skip
// (BMP row padding, GIF blocks).
struct StbReader {
  const uint8_t* bytes;
  size_t size;
  size_t pos = 0;
  const char* stb_buffer = nullptr;
  bool past_end = false;
};

extern "C" int vitint_stb_read(void* user, char* data, int n) {
  auto& r = *static_cast<StbReader*>(user);
  if (r.stb_buffer == nullptr) r.stb_buffer = data;
  const size_t count = std::min(static_cast<size_t>(n), r.size - r.pos);
  if (count < static_cast<size_t>(n) && (count == 0 || data != r.stb_buffer)) r.past_end = true;
  std::memcpy(data, r.bytes + r.pos, count);
  r.pos += count;
  return static_cast<int>(count);
}

extern "C" void vitint_stb_skip(void* user, int n) {
  auto& r = *static_cast<StbReader*>(user);
  if (n < 0 || static_cast<size_t>(n) > r.size - r.pos) r.past_end = true;
  r.pos = n < 0 ? r.size : std::min(r.size, r.pos + static_cast<size_t>(n));
}

extern "C" int vitint_stb_eof(void* user) {
  const auto& r = *static_cast<StbReader*>(user);
  return r.pos >= r.size;
}

const stbi_io_callbacks kStbCallbacks = {vitint_stb_read, vitint_stb_skip, vitint_stb_eof};

// stb's reason for its last failure, in words where it is terse about a
// truncated file.
std::string stb_failure() {
  const char* reason = stbi_failure_reason();
  if (reason == nullptr || *reason == '\0') return "stb_image could not decode it";
  for (const char* short_data : {"outofdata", "read past buffer", "not enough pixels"})
    if (std::strcmp(reason, short_data) == 0) return kTruncated;
  return reason;
}

#ifdef VITINT_HAVE_LIBJPEG
struct JpegErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

extern "C" void vitint_jpeg_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// libjpeg warns and goes on where the data is cut short or corrupt, padding
// with grey or decoding garbage; PIL refuses a truncated file ("image file is
// truncated"), and we refuse both. Other warnings are ignored.
extern "C" void vitint_jpeg_emit_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;
  switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:           // premature end of JPEG file
    case JWRN_HIT_MARKER:         // premature end of data segment
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
    case JWRN_MUST_RESYNC:        // a restart marker out of place
    case JWRN_EXTRANEOUS_DATA:    // bytes left over before a marker
    case JWRN_NOT_SEQUENTIAL:
    case JWRN_BOGUS_PROGRESSION:
      vitint_jpeg_error_exit(cinfo);
      break;
    default:
      break;
  }
}

bool is_jpeg(const uint8_t* bytes, size_t size) {
  return size >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF;
}

// Pillow's cmyk2rgb: MULDIV255 rounding, Adobe CMYK stored inverted.
inline uint8_t cmyk_channel(int v, int nk) {
  const int t = v * nk + 128;
  return static_cast<uint8_t>(nk - (((t >> 8) + t) >> 8));
}

// libjpeg reports errors by longjmp. Each stage below runs between its own
// setjmp and return with nothing but C objects alive, so no C++ destructor
// is ever skipped; the caller owns every buffer.
struct JpegDecoder {
  jpeg_decompress_struct cinfo;
  JpegErrorManager err;
};

bool jpeg_read_header_stage(JpegDecoder* d, const uint8_t* bytes, size_t size) {
  if (setjmp(d->err.jump)) return false;
  jpeg_create_decompress(&d->cinfo);
  jpeg_mem_src(&d->cinfo, bytes, static_cast<unsigned long>(size));
  jpeg_read_header(&d->cinfo, TRUE);
  return true;
}

bool jpeg_decode_stage(JpegDecoder* d, J_COLOR_SPACE out_space, uint8_t* dst, size_t stride) {
  if (setjmp(d->err.jump)) return false;
  d->cinfo.out_color_space = out_space;
  jpeg_start_decompress(&d->cinfo);
  while (d->cinfo.output_scanline < d->cinfo.output_height) {
    JSAMPROW row = dst + static_cast<size_t>(d->cinfo.output_scanline) * stride;
    jpeg_read_scanlines(&d->cinfo, &row, 1);
  }
  jpeg_finish_decompress(&d->cinfo);
  return true;
}

Image decode_jpeg(const uint8_t* bytes, size_t size, const std::string& what) {
  JpegDecoder d{};
  d.cinfo.err = jpeg_std_error(&d.err.pub);
  d.err.pub.error_exit = vitint_jpeg_error_exit;
  d.err.pub.emit_message = vitint_jpeg_emit_message;
  d.err.message[0] = '\0';
  struct Destroy {
    jpeg_decompress_struct* c;
    ~Destroy() { jpeg_destroy_decompress(c); }
  } destroy{&d.cinfo};
  auto fail = [&]() {
    return Error("cannot decode image " + what + ": " + d.err.message + " (corrupt or truncated JPEG)");
  };
  if (!jpeg_read_header_stage(&d, bytes, size)) throw fail();
  check_dimensions(static_cast<long long>(d.cinfo.image_width),
                   static_cast<long long>(d.cinfo.image_height), what);
  Image img;
  img.width = static_cast<int>(d.cinfo.image_width);
  img.height = static_cast<int>(d.cinfo.image_height);
  const size_t pixels = static_cast<size_t>(img.width) * static_cast<size_t>(img.height);
  const bool cmyk = d.cinfo.jpeg_color_space == JCS_CMYK || d.cinfo.jpeg_color_space == JCS_YCCK;
  if (!cmyk) {
    // Grey JPEGs come out replicated to RGB, like PIL's convert("RGB").
    img.rgb.resize(pixels * 3);
    if (!jpeg_decode_stage(&d, JCS_RGB, img.rgb.data(), static_cast<size_t>(img.width) * 3))
      throw fail();
    return img;
  }
  std::vector<uint8_t> raw(pixels * 4);
  if (!jpeg_decode_stage(&d, JCS_CMYK, raw.data(), static_cast<size_t>(img.width) * 4)) throw fail();
  // Adobe writes CMYK inverted; PIL reads it as "CMYK;I".
  const int flip = d.cinfo.saw_Adobe_marker ? 255 : 0;
  img.rgb.resize(pixels * 3);
  for (size_t i = 0; i < pixels; ++i) {
    const uint8_t* p = &raw[4 * i];
    const int nk = 255 - (p[3] ^ flip);
    for (int ch = 0; ch < 3; ++ch) img.rgb[3 * i + static_cast<size_t>(ch)] = cmyk_channel(p[ch] ^ flip, nk);
  }
  return img;
}
#endif

}  // namespace

Interpolation parse_interpolation(const std::string& name) {
  for (Interpolation i : {Interpolation::kBicubic, Interpolation::kBilinear})
    if (name == interpolation_name(i)) return i;
  throw Error("unsupported interpolation '" + name +
              "' (pretrained_cfg.interpolation must be \"bicubic\" or \"bilinear\")");
}

const char* interpolation_name(Interpolation interp) {
  switch (interp) {
    case Interpolation::kBilinear:
      return "bilinear";
    case Interpolation::kBicubic:
      return "bicubic";
  }
  return "unknown";
}

Image decode_image(const uint8_t* bytes, size_t size, const std::string& what) {
  if (bytes == nullptr || size == 0) throw Error("cannot decode image " + what + ": it is empty");
  if (size > static_cast<size_t>(INT_MAX))
    throw Error("cannot decode image " + what + ": " + std::to_string(size) +
                " bytes is more than the decoder accepts (2 GiB)");
#ifdef VITINT_HAVE_LIBJPEG
  if (is_jpeg(bytes, size)) return decode_jpeg(bytes, size, what);
#endif
  check_png(bytes, size, what);
  const std::string fail = "cannot decode image " + what + ": ";
  const std::string truncated =
      fail + kTruncated + ": its " + std::to_string(size) + " bytes stop before the image does";
  int w = 0, h = 0, channels = 0;
  StbReader info_reader{bytes, size};
  const int known = stbi_info_from_callbacks(&kStbCallbacks, &info_reader, &w, &h, &channels);
  // Where no format took the file, a read past its end may be another
  // format's probe on a short file (stb does not always rewind after one).
  if (!known)
    throw Error(fail + stb_failure() + (info_reader.past_end ? std::string(", or ") + kTruncated : "") +
                " (supported formats: JPEG, PNG, BMP, PPM/PGM, TGA, GIF)");
  if (info_reader.past_end) throw Error(truncated);
  check_dimensions(w, h, what);
  // Forcing 3 channels replicates grey and drops alpha, as PIL's convert("RGB").
  StbReader reader{bytes, size};
  const std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_callbacks(&kStbCallbacks, &reader, &w, &h, &channels, 3), stbi_image_free);
  if (reader.past_end) throw Error(truncated);
  if (pixels == nullptr) throw Error(fail + stb_failure());
  Image img;
  img.width = w;
  img.height = h;
  img.rgb.assign(pixels.get(), pixels.get() + static_cast<size_t>(w) * static_cast<size_t>(h) * 3);
  return img;
}

Image load_image(const std::string& path) {
  const std::vector<char> bytes = read_file(path, "image");
  return decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
}

Image resize(const Image& src, int width, int height, Interpolation interp) {
  check_image(src, "resize");
  if (width <= 0 || height <= 0 || width > kMaxImageSide || height > kMaxImageSide)
    throw Error("resize: invalid output size " + std::to_string(width) + "x" +
                std::to_string(height));
  return resize_window(src, width, height, interp, 0, 0, width, height);
}

Image center_crop(const Image& src, int width, int height) {
  check_image(src, "center_crop");
  if (width <= 0 || height <= 0 || width > src.width || height > src.height)
    throw Error("center_crop: a " + std::to_string(width) + "x" + std::to_string(height) +
                " crop does not fit in a " + std::to_string(src.width) + "x" +
                std::to_string(src.height) + " image");
  return copy_window(src, crop_offset(src.width - width), crop_offset(src.height - height), width, height);
}

Image preprocess(const Image& src, int input_size, double crop_pct, Interpolation interp) {
  check_image(src, "preprocess");
  if (input_size <= 0 || !(crop_pct > 0.0) || crop_pct > 1.0)
    throw Error("preprocess: invalid input_size " + std::to_string(input_size) + " / crop_pct " +
                std::to_string(crop_pct) + " (need input_size > 0 and 0 < crop_pct <= 1)");
  // timm: math.floor(img_size / crop_pct), evaluated in double like Python.
  const double scaled = std::floor(static_cast<double>(input_size) / crop_pct);
  if (scaled > kMaxImageSide) throw Error("preprocess: resize target too large");
  const int size = static_cast<int>(scaled);
  // torchvision Resize(int): the shorter side becomes `size`, the longer side
  // int(size * long / short) (true division in double, then truncation).
  const bool wide = src.width > src.height;
  const int short_side = wide ? src.height : src.width;
  const int long_side = wide ? src.width : src.height;
  const double long_d =
      static_cast<double>(static_cast<long long>(size) * long_side) / short_side;
  if (long_d > kMaxImageSide)
    throw Error("preprocess: a " + std::to_string(src.width) + "x" + std::to_string(src.height) +
                " image has an absurd aspect ratio");
  const int new_long = static_cast<int>(long_d);
  const int new_w = wide ? new_long : size;
  const int new_h = wide ? size : new_long;
  // Only the crop's pixels of the resized image are computed.
  return resize_window(src, new_w, new_h, interp, crop_offset(new_w - input_size), crop_offset(new_h - input_size),
                       input_size, input_size);
}

}  // namespace vitint
