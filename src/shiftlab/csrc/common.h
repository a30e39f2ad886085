// Helpers shared by the kernels: bfloat16 read and rounded with integer shifts (they vectorise where c10::BFloat16's
// conversions do not), and a dispatch on dtype and channel count (16, 32, 64 as compile-time constants, so the
// loops over a pixel's channels vectorise; 0 = any other count).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <cstring>

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
