// Isa dispatch of the elementwise kernels (the paths live in ref/ and x86/).
#include "vitint/kernels/quant_dispatch.h"

#include <stdexcept>
#include <string>

#include "cpu_internal.h"
#include "quant_internal.h"

namespace vitint::kernels {
using detail::require_isa;

namespace {

// The elementwise kernels of a path (checked by require_isa first): AVX-VNNI
// runs the AVX2 kernels and AMX the AVX-512 ones; only the GEMMs differ.
template <class F>
F* path(Isa isa, F* ref, F* avx2, F* avx512) {
  switch (isa) {
    case Isa::kRef:
      return ref;
    case Isa::kAvx2:
    case Isa::kAvxVnni:
      return avx2;
    case Isa::kAvx512Vnni:
    case Isa::kAmx:
      break;
  }
  return avx512;
}

}  // namespace

void requant_u8(Isa isa, int m, int n, const int32_t* acc, int ld_acc, const RequantU8Params& p,
                uint8_t* out, int ld_out) {
  require_isa("requant_u8", isa);
  path(isa, requant_u8_ref, detail::avx2_requant_u8, detail::avx512_requant_u8)(m, n, acc, ld_acc, p, out, ld_out);
}

void gelu_u8(Isa isa, int m, int n, const int32_t* acc, int ld_acc, const GeluU8Params& p, uint8_t* out,
             int ld_out) {
  require_isa("gelu_u8", isa);
  if (p.spline == nullptr)
    throw std::invalid_argument("vitint::kernels::gelu_u8: GeluU8Params::spline is missing (make it with gelu_spline(table))");
  path(isa, gelu_u8_ref, detail::avx2_gelu_u8, detail::avx512_gelu_u8)(m, n, acc, ld_acc, p, out, ld_out);
}

void residual_add(Isa isa, int m, int n, const int32_t* acc, int ld_acc, const ResidualParams& p,
                  int16_t* stream, int ld_stream) {
  require_isa("residual_add", isa);
  path(isa, residual_add_ref, detail::avx2_residual_add, detail::avx512_residual_add)
      (m, n, acc, ld_acc, p, stream, ld_stream);
}

void residual_add16(Isa isa, int m, int n, const int32_t* acc, int ld_acc, const Residual16Params& p,
                    int16_t* stream, int ld_stream) {
  require_isa("residual_add16", isa);
  path(isa, residual_add16_ref, detail::avx2_residual_add16, detail::avx512_residual_add16)
      (m, n, acc, ld_acc, p, stream, ld_stream);
}

namespace {
void check_prepared(const char* kernel, Isa isa, const LayerNormParams& p) {
  require_isa(kernel, isa);
  if (isa != Isa::kRef && (p.prepared == nullptr || p.prepared->channels != p.channels))
    throw std::invalid_argument(std::string("vitint::kernels::") + kernel +
                                ": LayerNormParams::prepared is missing or for other parameters (make it with "
                                "layernorm_prepare)");
}
}  // namespace

void layernorm(Isa isa, int rows, const int16_t* in, int ld_in, const LayerNormParams& p,
               uint8_t* out, int ld_out) {
  check_prepared("layernorm", isa, p);
  path(isa, layernorm_ref, detail::avx2_layernorm, detail::avx512_layernorm)(rows, in, ld_in, p, out, ld_out);
}

void layernorm_stream(Isa isa, int rows, const int16_t* in, int ld_in, const LayerNormParams& p, int32_t qmin,
                      int32_t qmax, int16_t* out, int ld_out) {
  check_prepared("layernorm_stream", isa, p);
  if (qmin < -32768 || qmax > 32767 || qmin > qmax)
    throw std::invalid_argument("vitint::kernels::layernorm_stream: [qmin, qmax] is not an int16 range");
  path(isa, layernorm_stream_ref, detail::avx2_layernorm_stream, detail::avx512_layernorm_stream)
      (rows, in, ld_in, p, qmin, qmax, out, ld_out);
}

void softmax_u8(Isa isa, const int32_t* acc, int ld_acc, const SoftmaxParams& p, uint8_t* probs,
                int ld_probs, int32_t* rowsum_p) {
  require_isa("softmax_u8", isa);
  path(isa, softmax_u8_ref, detail::avx2_softmax_u8, detail::avx512_softmax_u8)
      (acc, ld_acc, p, probs, ld_probs, rowsum_p);
}

void softmax_lis(Isa isa, const int32_t* acc, int ld_acc, const SoftmaxParams& p, int16_t* weights,
                 int ld_w, int32_t* rowsum_w) {
  require_isa("softmax_lis", isa);
  path(isa, softmax_lis_ref, detail::avx2_softmax_lis, detail::avx512_softmax_lis)
      (acc, ld_acc, p, weights, ld_w, rowsum_w);
}

void attn_lis_rescale(Isa isa, int m, int n, int32_t* acc, int ld_acc, int32_t zv, const int32_t* rowsum) {
  require_isa("attn_lis_rescale", isa);
  path(isa, attn_lis_rescale_ref, detail::avx2_attn_lis_rescale, detail::avx512_attn_lis_rescale)
      (m, n, acc, ld_acc, zv, rowsum);
}

void attn_kv_s8(Isa isa, int tokens, int n, const uint8_t* k, const uint8_t* v, int ld, int8_t* k_s8, int8_t* v_s8,
                int32_t* colsum_k) {
  require_isa("attn_kv_s8", isa);
  path(isa, attn_kv_s8_ref, detail::avx2_attn_kv_s8, detail::avx512_attn_kv_s8)
      (tokens, n, k, v, ld, k_s8, v_s8, colsum_k);
}

}  // namespace vitint::kernels
