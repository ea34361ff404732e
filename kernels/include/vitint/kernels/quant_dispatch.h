// Isa-dispatched versions of the elementwise kernels of quant.h. Every path
// is bit-exact with the *_ref function of the same name (the reference is
// normative); the arguments and their meaning are those of the reference.
// kAmx runs the AVX-512 code (AMX has no elementwise instructions).
#pragma once
#include <cstdint>

#include "vitint/kernels/cpu.h"
#include "vitint/kernels/quant.h"

namespace vitint::kernels {

void requant_u8(Isa isa, int m, int n, const int32_t* acc, int ld_acc, const RequantU8Params& p,
                uint8_t* out, int ld_out);
void gelu_u8(Isa isa, int m, int n, const int32_t* acc, int ld_acc, const GeluU8Params& p, uint8_t* out,
             int ld_out);
void residual_add(Isa isa, int m, int n, const int32_t* acc, int ld_acc, const ResidualParams& p,
                  int16_t* stream, int ld_stream);
void residual_add16(Isa isa, int m, int n, const int32_t* acc, int ld_acc, const Residual16Params& p,
                    int16_t* stream, int ld_stream);
void layernorm(Isa isa, int rows, const int16_t* in, int ld_in, const LayerNormParams& p,
               uint8_t* out, int ld_out);
void layernorm_stream(Isa isa, int rows, const int16_t* in, int ld_in, const LayerNormParams& p, int32_t qmin,
                      int32_t qmax, int16_t* out, int ld_out);
void softmax_u8(Isa isa, const int32_t* acc, int ld_acc, const SoftmaxParams& p, uint8_t* probs,
                int ld_probs, int32_t* rowsum_p);
void softmax_lis(Isa isa, const int32_t* acc, int ld_acc, const SoftmaxParams& p, int16_t* weights,
                 int ld_w, int32_t* rowsum_w);

void attn_lis_rescale(Isa isa, int m, int n, int32_t* acc, int ld_acc, int32_t zv, const int32_t* rowsum);
void attn_kv_s8(Isa isa, int tokens, int n, const uint8_t* k, const uint8_t* v, int ld, int8_t* k_s8, int8_t* v_s8,
                int32_t* colsum_k);
}  // namespace vitint::kernels
