// Adaptive polyphase sampling with the l2 norm (layers.ApsPool), forward and backward, on channels-last CPU maps.
//
// In torch's ops the choice takes five passes over the map (a float32 copy, the squares, two sums, the gather) and
// the backward a zero-filled map and an index_put. Here one pass per image sums each pixel's squared channels into
// its phase's norm and a second copies the winning phase out; the backward writes every pixel once.
//
// The choice of layers._phase_norms within rounding: each pixel's squared channels are summed in float32 in a fixed
// order (so a circular shift of the map permutes these per-pixel values exactly), the pixels of a phase in float64,
// then the square root; the first phase (row-major i * s + j) of equal norms wins, a NaN norm winning as in argmax.
// The orders of the sums differ from torch's, so norms that tie to the last bit may resolve differently.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <vector>

#include "common.h"

namespace {

using shiftlab::dispatch;
using shiftlab::F16;
using shiftlab::Io;

// sum_c v[c]^2 over one pixel's channels in float32, in a fixed order: sixteen lanes (c mod 16), then the lanes in turn
template <typename T, int64_t CC>
inline float squares(const typename Io<T>::S* v, int64_t C_) {
  float sum = 0.f;
  if constexpr (CC > 0 && CC % 16 == 0) {
    F16 acc = {};
    for (int64_t c = 0; c < CC; c += 16) {
      F16 x;
      for (int l = 0; l < 16; ++l) x[l] = Io<T>::load(v[c + l]);
      acc += x * x;
    }
    for (int l = 0; l < 16; ++l) sum += acc[l];
  } else {
    for (int64_t c = 0; c < C_; ++c) sum += Io<T>::load(v[c]) * Io<T>::load(v[c]);
  }
  return sum;
}

template <typename T, int64_t CC>
struct Choose {
  static void run(const at::Tensor& zs, int64_t stride, at::Tensor& y, at::Tensor& phase) {
    using S = typename Io<T>::S;
    const int64_t N = zs.size(0), H = zs.size(2), W = zs.size(3), C = CC > 0 ? CC : zs.size(1);
    const int64_t Ho = H / stride, Wo = W / stride;
    const S* src = reinterpret_cast<const S*>(zs.const_data_ptr());
    S* dst = reinterpret_cast<S*>(y.data_ptr());
    int64_t* chosen = phase.data_ptr<int64_t>();
    at::parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
      std::vector<double> norms(stride * stride);
      for (int64_t n = n0; n < n1; ++n) {
        const S* z = src + n * H * W * C;
        std::fill(norms.begin(), norms.end(), 0.0);
        for (int64_t p = 0; p < H; ++p)
          for (int64_t q = 0; q < W; ++q) {
            norms[(p % stride) * stride + q % stride] += squares<T, CC>(z + (p * W + q) * C, C);
          }
        int64_t best = 0;
        for (int64_t k = 1; k < stride * stride; ++k)
          if (std::sqrt(norms[k]) > std::sqrt(norms[best]) || (std::isnan(norms[k]) && !std::isnan(norms[best])))
            best = k;
        chosen[n] = best;
        const int64_t pi = best / stride, pj = best % stride;
        S* out = dst + n * Ho * Wo * C;
        for (int64_t i = 0; i < Ho; ++i)
          for (int64_t j = 0; j < Wo; ++j)
            std::copy_n(z + ((stride * i + pi) * W + stride * j + pj) * C, C, out + (i * Wo + j) * C);
      }
    });
  }
};

template <typename T, int64_t CC>
struct Place {
  static void run(const at::Tensor& gs, const at::Tensor& phase, int64_t stride, at::Tensor& gx) {
    using S = typename Io<T>::S;
    const int64_t N = gx.size(0), H = gx.size(1), W = gx.size(2), C = CC > 0 ? CC : gx.size(3);
    const int64_t Ho = H / stride, Wo = W / stride;
    const S* grad = reinterpret_cast<const S*>(gs.const_data_ptr());
    S* dst = reinterpret_cast<S*>(gx.data_ptr());
    const int64_t* chosen = phase.const_data_ptr<int64_t>();
    at::parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n) {
        const int64_t pi = chosen[n] / stride, pj = chosen[n] % stride;
        const S* g = grad + n * Ho * Wo * C;
        S* out = dst + n * H * W * C;
        for (int64_t p = 0; p < H; ++p)
          for (int64_t q = 0; q < W; ++q) {
            S* pixel = out + (p * W + q) * C;
            if (p % stride == pi && q % stride == pj)
              std::copy_n(g + ((p / stride) * Wo + q / stride) * C, C, pixel);
            else
              std::fill_n(pixel, C, S(0));
          }
      }
    });
  }
};

void check_divisible(int64_t H, int64_t W, int64_t stride) {
  TORCH_CHECK(stride >= 1 && H % stride == 0 && W % stride == 0, "aps: a ", H, "x", W,
              " map has no ", stride, "x", stride, " polyphase decomposition");
}

// z (N, C, H, W) -> its l2-largest polyphase component (N, C, H/s, W/s), channels-last in z's dtype, and the phase.
std::tuple<at::Tensor, at::Tensor> aps_forward(const at::Tensor& z, int64_t stride) {
  TORCH_CHECK(z.dim() == 4 && z.numel() > 0, "aps_forward: expected a non-empty (N, C, H, W) map, got ", z.sizes());
  const int64_t N = z.size(0), C = z.size(1), H = z.size(2), W = z.size(3);
  check_divisible(H, W, stride);
  const auto zs = z.contiguous(at::MemoryFormat::ChannelsLast);
  auto y = at::empty({N, C, H / stride, W / stride}, z.options().memory_format(at::MemoryFormat::ChannelsLast));
  auto phase = at::empty({N}, z.options().dtype(at::kLong));
  dispatch<Choose>(z.scalar_type(), C, zs, stride, y, phase);
  return {y, phase};
}

// The gradient with respect to z: grad at each image's chosen phase, zero elsewhere, channels-last in grad's dtype.
at::Tensor aps_backward(const at::Tensor& grad, const at::Tensor& phase, int64_t H, int64_t W, int64_t stride) {
  check_divisible(H, W, stride);
  TORCH_CHECK(grad.dim() == 4 && grad.size(2) == H / stride && grad.size(3) == W / stride &&
                  phase.numel() == grad.size(0),
              "aps_backward: the gradient ", grad.sizes(), " does not match a ", H, "x", W, " map at stride ", stride);
  const int64_t N = grad.size(0), C = grad.size(1);
  const auto gs = grad.contiguous(at::MemoryFormat::ChannelsLast);
  auto gx = at::empty({N, H, W, C}, grad.options());
  dispatch<Place>(grad.scalar_type(), C, gs, phase.contiguous(), stride, gx);
  return gx.permute({0, 3, 1, 2});
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(shiftlab_kernels, m) {
  m.def("aps_forward(Tensor z, int stride) -> (Tensor, Tensor)");
  m.def("aps_backward(Tensor grad, Tensor phase, int H, int W, int stride) -> Tensor");
}

TORCH_LIBRARY_IMPL(shiftlab_kernels, CPU, m) {
  m.impl("aps_forward", &aps_forward);
  m.impl("aps_backward", &aps_backward);
}
