// Helpers of the one-channel first convolution (stem_conv.cpp): the weights as rows of output channels, input rows
// in float, sixteen output channels per vector register.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "common.h"

namespace shiftlab {

typedef uint16_t U16 __attribute__((vector_size(32)));   // 16 bfloat16 values
typedef uint32_t U32 __attribute__((vector_size(64)));

// the weights (C, 1, kh, kw) as taps (kh * kw, C): tap k's row of C weights is contiguous
inline std::vector<float> taps_by_position(const at::Tensor& w) {
  const int64_t C = w.size(0), K = w.size(2) * w.size(3);
  const auto wf = w.to(at::kFloat).contiguous();
  const float* src = wf.const_data_ptr<float>();
  std::vector<float> taps(K * C);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t k = 0; k < K; ++k) taps[k * C + c] = src[c * K + k];
  return taps;
}

// the taps' sums (kh * kw, C) back as float32 weights (C, 1, kh, kw)
inline at::Tensor weights_from_taps(const std::vector<double>& total, int64_t C, int64_t kh, int64_t kw,
                                    const at::Tensor& like) {
  const int64_t K = kh * kw;
  auto w = at::empty({C, 1, kh, kw}, like.options().dtype(at::kFloat));
  float* out = w.data_ptr<float>();
  for (int64_t c = 0; c < C; ++c)
    for (int64_t k = 0; k < K; ++k) out[c * K + k] = static_cast<float>(total[k * C + c]);
  return w;
}

// rows[0 .. count Wp) = count input rows from top, in float
template <typename T>
void rows_as_float(const typename Io<T>::S* top, int64_t Wp, int64_t count, float* rows) {
  for (int64_t k = 0; k < count * Wp; ++k) rows[k] = Io<T>::load(top[k]);
}

// 16 floats stored in the map's dtype (bfloat16 rounded to nearest even in integer lanes, as Io::store)
inline void store16(F16 v, float* out) { std::memcpy(out, &v, sizeof(v)); }
inline void store16(F16 v, uint16_t* out) {
  U32 u;
  std::memcpy(&u, &v, sizeof(u));
  const U16 h = __builtin_convertvector((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16, U16);
  std::memcpy(out, &h, sizeof(h));
}

// z[l] = sum_{a, b} taps[(a * 3 + b) * L + l] x[a * Wp + b] (x: rows in float), the taps in row-major order
template <int64_t L>
inline void conv3x3(const float* x, int64_t Wp, const F16* taps, F16* z) {
  for (int64_t l = 0; l < L; ++l) z[l] = F16{};
  for (int64_t a = 0; a < 3; ++a)
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t l = 0; l < L; ++l) z[l] += taps[(a * 3 + b) * L + l] * x[a * Wp + b];
}

// the taps (9 C floats) as 9 C / 16 vectors
inline std::vector<F16> as_vectors(const std::vector<float>& taps) {
  std::vector<F16> v(taps.size() / 16);
  std::memcpy(v.data(), taps.data(), v.size() * sizeof(F16));
  return v;
}

}  // namespace shiftlab
