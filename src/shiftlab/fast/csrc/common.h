// Helpers shared by the kernels: bfloat16 read and rounded with integer shifts (they vectorise where c10::BFloat16's
// conversions do not), and a dispatch on dtype and channel count (16, 32, 64 as compile-time constants, so the
// loops over a pixel's channels vectorise; 0 = any other count).
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace shiftlab {

template <typename T> struct Io;
template <> struct Io<float> {
  using S = float;
  static float load(float v) { return v; }
  static float store(float f) { return f; }
};
template <> struct Io<c10::BFloat16> {
  using S = uint16_t;
  static float load(uint16_t h) {
    const uint32_t u = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  static uint16_t store(float f) {   // round to nearest even (finite values, as in training)
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
  }
};

// 16 floats: one AVX-512 register (two AVX2 ones), for a pixel's 16 channels (the first convolution's forward, APS's
// sums of squares); 8 floats: one AVX2 register, for sums that must stay in registers on a
// CPU with sixteen of them (the first convolution's weight gradient)
typedef float F16 __attribute__((vector_size(64)));
typedef float F8 __attribute__((vector_size(32)));

template <typename V>
inline V load(const void* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}

// ---- the 2x2 max at stride 1 and its gradient, pixel by pixel (branch-free selects, so callers' loops vectorise) ----

// The max of a window v0 top-left, v1 top-right, v2 bottom-left, v3 bottom-right, and which of them won (0..3): the
// first of equal values, NaN winning, as max_pool2d picks.
template <typename A>
inline A window_max(A v0, A v1, A v2, A v3, uint8_t& winner) {
  A best = v0;
  uint8_t w = 0;
  const bool b1 = (v1 > best) | (v1 != v1);
  best = b1 ? v1 : best;
  w = b1 ? 1 : w;
  const bool b2 = (v2 > best) | (v2 != v2);
  best = b2 ? v2 : best;
  w = b2 ? 2 : w;
  const bool b3 = (v3 > best) | (v3 != v3);
  best = b3 ? v3 : best;
  w = b3 ? 3 : w;
  winner = w;
  return best;
}

// g where c holds, else +0: a select on the bits (a ternary on a byte's comparison is a branch GCC does not vectorise)
template <typename A>
inline A keep_if(bool c, A g) {
  using U = std::conditional_t<sizeof(A) == 8, uint64_t, uint32_t>;
  return __builtin_bit_cast(A, __builtin_bit_cast(U, g) & (U(0) - U(c)));
}

// One pixel's gradient from the four windows holding it as their pixel 3, 2, 1, 0 (the windows at (p-1, q-1),
// (p-1, q), (p, q-1), (p, q)): the gradient g of each window whose winner code k names the pixel, summed in that order.
template <typename A>
inline A won_gradient(A g3, uint8_t k3, A g2, uint8_t k2, A g1, uint8_t k1, A g0, uint8_t k0) {
  A acc = 0;
  acc += keep_if(k3 == 3, g3);
  acc += keep_if(k2 == 2, g2);
  acc += keep_if(k1 == 1, g1);
  acc += keep_if(k0 == 0, g0);
  return acc;
}

// Sums over chunks of rows: f(chunk, acc) adds into acc[0 .. width); each chunk sums in float, the chunks are summed
// in order in double, so the result is the same for any thread count.
template <typename F>
std::vector<double> chunked_sums(int64_t chunks, int64_t width, F f) {
  std::vector<float> part(chunks * width, 0.f);
  at::parallel_for(0, chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) f(k, part.data() + k * width);
  });
  std::vector<double> total(width, 0.0);
  for (int64_t k = 0; k < chunks; ++k)
    for (int64_t i = 0; i < width; ++i) total[i] += part[k * width + i];
  return total;
}

// ---- dispatch: K<T, CC>::run(args...) for the map's dtype and channel count ----
template <template <typename, int64_t> class K, typename T, typename... A>
void on_channels(int64_t C, A&&... args) {
  if (C == 16) return K<T, 16>::run(args...);
  if (C == 32) return K<T, 32>::run(args...);
  if (C == 64) return K<T, 64>::run(args...);
  return K<T, 0>::run(args...);
}

template <template <typename, int64_t> class K, typename... A>
void dispatch(at::ScalarType dtype, int64_t C, A&&... args) {
  if (dtype == at::kFloat) return on_channels<K, float>(C, args...);
  if (dtype == at::kBFloat16) return on_channels<K, c10::BFloat16>(C, args...);
  TORCH_CHECK(false, "float32 or bfloat16 maps only, got ", dtype);
}

}  // namespace shiftlab
