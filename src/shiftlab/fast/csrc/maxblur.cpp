// MaxBlurPool, Subsample_s . Blur_m . Max_{2,1}, as one op per image: forward and backward, on channels-last CPU
// maps, with the layer's two borders: circular (both wrap around), or the dense max's replicate padding and the
// blur's reflect padding (layers.MaxBlurPool with pad_mode "reflect", in every network not padded circularly).
//
// The layer (layers.MaxBlurPool) otherwise runs five ops, each a pass over the full-size map: a float32 copy of the
// input, the circular pad, the dense max, the blur convolution and, in the backward, their gradients. Here one image
// at a time is read once, its dense max, the blur's horizontal and vertical passes (separable: the 2-D binomial
// filter is a a^T) stay in per-thread buffers that fit in the cache, and only the output (a quarter of the map, in
// float32) and, when a backward will follow, one byte per pixel (which of the four window pixels won the max) are
// written. The backward gathers each input pixel's gradient from the (up to four) windows it won, as
// csrc/dense_max.cpp does.
//
// Index conventions: M[p, q] = max of x at rows p, p+1 and columns q, q+1 (mod H, W; replicate: row H is row H-1,
// column W column W-1), the first of equal values winning (NaN wins), code 0..3 = top-left, top-right, bottom-left,
// bottom-right (a code naming a replicated pixel is stored as the pixel it copies); y[i, j] = sum_a sum_b a_a a_b
// M[s i + a - lo, s j + b - lo] (mod H, W; reflect: index -i is i, H-1+i is H-1-i), lo = (m - 1) / 2. The same
// function as the unfused layer; the blur's sums run in another order (tested within float rounding).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "common.h"

namespace {

using shiftlab::dispatch;
using shiftlab::Io;

// One axis of the blur: output k reads taps[t] at input index idx[k * m + t]; input p is read by the (output, tap)
// pairs from[start[p] .. start[p + 1]) (for the backward, which gathers instead of scattering).
struct Axis {
  std::vector<int64_t> idx, start, from_out;
  std::vector<float> from_tap;
};

// index i of a map of n pixels padded circularly or by reflection (|i| < n, i < 2 n - 1)
inline int64_t border(int64_t i, int64_t n, bool circular) {
  if (circular) return (i % n + n) % n;
  return i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i;
}

Axis axis(int64_t n_in, int64_t n_out, int64_t stride, const std::vector<float>& taps, bool circular) {
  const int64_t m = taps.size(), lo = (m - 1) / 2;
  TORCH_CHECK(circular || m / 2 < n_in, "maxblur: reflect padding of ", m / 2, " on a map of ", n_in,
              " pixels (it must be smaller than the map)");
  Axis ax;
  for (int64_t k = 0; k < n_out; ++k)
    for (int64_t t = 0; t < m; ++t) ax.idx.push_back(border(stride * k + t - lo, n_in, circular));
  ax.start.assign(n_in + 1, 0);
  for (int64_t p = 0; p < n_in; ++p) {
    for (int64_t k = 0; k < n_out; ++k)
      for (int64_t t = 0; t < m; ++t)
        if (ax.idx[k * m + t] == p) {
          ax.from_out.push_back(k);
          ax.from_tap.push_back(taps[t]);
        }
    ax.start[p + 1] = ax.from_out.size();
  }
  return ax;
}


struct Geometry {
  int64_t N, C, H, W, Ho, Wo, m;
  bool circular;
  std::vector<float> taps;
  Axis rows, cols;
};

Geometry geometry(int64_t N, int64_t C, int64_t H, int64_t W, const at::Tensor& taps, int64_t stride, bool circular) {
  TORCH_CHECK(taps.dim() == 1 && taps.numel() >= 1, "maxblur: the taps must be a 1-D tensor, got ", taps.sizes());
  TORCH_CHECK(stride >= 1 && H >= 1 && W >= 1, "maxblur: stride ", stride, " on a ", H, "x", W, " map");
  const auto t = taps.to(at::kFloat).contiguous();
  std::vector<float> a(t.const_data_ptr<float>(), t.const_data_ptr<float>() + t.numel());
  const int64_t Ho = (H + stride - 1) / stride, Wo = (W + stride - 1) / stride;
  return {N, C, H, W, Ho, Wo, t.numel(), circular, a, axis(H, Ho, stride, a, circular), axis(W, Wo, stride, a, circular)};
}

// out[c] = sum_k w[k] in[step * at[k] + c] over a pixel's channels, in tap order (loops the compiler vectorises at
// this CPU's width)
template <int64_t CC>
inline void gather(float* __restrict__ out, const float* __restrict__ in, const int64_t* at, const float* w, int64_t n,
                   int64_t step, int64_t C_) {
  const int64_t C = CC > 0 ? CC : C_;
  if (n == 0) {   // a pixel no output reads (a blur shorter than the stride)
    std::fill(out, out + C, 0.f);
    return;
  }
  const float* __restrict__ first = in + step * at[0];
#pragma GCC ivdep
  for (int64_t c = 0; c < C; ++c) out[c] = 0.f + w[0] * first[c];
  for (int64_t k = 1; k < n; ++k) {
    const float* __restrict__ p = in + step * at[k];
    const float wk = w[k];
#pragma GCC ivdep
    for (int64_t c = 0; c < C; ++c) out[c] += wk * p[c];
  }
}

// One window's gradients and winner codes over a pixel's channels.
struct Window {
  const float* g;
  const uint8_t* k;
};

// one pixel's gradient: the sum of the gradients of the windows w3, w2, w1, w0 whose winner code is 3, 2, 1, 0 (the
// pixel is their bottom-right, bottom-left, top-right, top-left)
template <int64_t CC>
inline void pixel_gradient(float* __restrict__ out, Window w3, Window w2, Window w1, Window w0, int64_t C_) {
  const int64_t C = CC > 0 ? CC : C_;
#pragma GCC ivdep
  for (int64_t c = 0; c < C; ++c)
    out[c] = shiftlab::won_gradient(w3.g[c], w3.k[c], w2.g[c], w2.k[c], w1.g[c], w1.k[c], w0.g[c], w0.k[c]);
}

template <typename T, int64_t CC>
struct Forward {
  static void run(const at::Tensor& xs, const Geometry& g, at::Tensor& y, at::Tensor& code) {
    using S = typename Io<T>::S;
    const int64_t H = g.H, W = g.W, C = CC > 0 ? CC : g.C, Ho = g.Ho, Wo = g.Wo, m = g.m;
    const S* src = reinterpret_cast<const S*>(xs.const_data_ptr());
    float* dst = y.data_ptr<float>();
    uint8_t* won = code.numel() ? code.data_ptr<uint8_t>() : nullptr;   // none: inference
    at::parallel_for(0, g.N, 1, [&](int64_t n0, int64_t n1) {
      auto buffers = at::empty({H * W * C + H * Wo * C}, y.options());   // the dense max, its horizontal blur
      float* M = buffers.data_ptr<float>();
      float* across = M + H * W * C;
      for (int64_t n = n0; n < n1; ++n) {
        const S* x = src + n * H * W * C;
        uint8_t* k = won ? won + n * H * W * C : nullptr;
        for (int64_t p = 0; p < H; ++p) {
          const bool last_row = p + 1 == H;
          const S* top = x + p * W * C;
          const S* bottom = x + (last_row ? (g.circular ? 0 : p) : p + 1) * W * C;
          for (int64_t q = 0; q < W; ++q) {
            const bool last_col = q + 1 == W;
            const int64_t q0 = q * C, q1 = (last_col ? (g.circular ? 0 : q) : q + 1) * C, o = (p * W + q) * C;
            // replicate: a winner in the copied row or column is the pixel it copies (bit 1 = bottom, bit 0 = right)
            const uint8_t keep = (g.circular || !last_row ? 2 : 0) | (g.circular || !last_col ? 1 : 0);
            // inference: the max alone, in its own loop, which the compiler vectorises (it does not vectorise one
            // loop holding the winner's store behind `if (k)`)
            if (!k) {
#pragma GCC ivdep
              for (int64_t c = 0; c < C; ++c) {
                uint8_t unused;
                M[o + c] = shiftlab::window_max(Io<T>::load(top[q0 + c]), Io<T>::load(top[q1 + c]),
                                                Io<T>::load(bottom[q0 + c]), Io<T>::load(bottom[q1 + c]), unused);
              }
              continue;
            }
#pragma GCC ivdep
            for (int64_t c = 0; c < C; ++c) {
              const float v0 = Io<T>::load(top[q0 + c]), v1 = Io<T>::load(top[q1 + c]);
              const float v2 = Io<T>::load(bottom[q0 + c]), v3 = Io<T>::load(bottom[q1 + c]);
              uint8_t won_at;
              M[o + c] = shiftlab::window_max(v0, v1, v2, v3, won_at);
              k[o + c] = won_at & keep;
            }
          }
        }
        for (int64_t p = 0; p < H; ++p)
          for (int64_t j = 0; j < Wo; ++j)
            gather<CC>(across + (p * Wo + j) * C, M + p * W * C, &g.cols.idx[j * m], g.taps.data(), m, C, C);
        float* out = dst + n * Ho * Wo * C;
        for (int64_t i = 0; i < Ho; ++i)
          for (int64_t j = 0; j < Wo; ++j)
            gather<CC>(out + (i * Wo + j) * C, across + j * C, &g.rows.idx[i * m], g.taps.data(), m, Wo * C, C);
      }
    });
  }
};

template <typename T, int64_t CC>
struct Backward {
  static void run(const at::Tensor& gs, const at::Tensor& code, const Geometry& g, at::Tensor& gx) {
    using S = typename Io<T>::S;
    const int64_t H = g.H, W = g.W, C = CC > 0 ? CC : g.C, Ho = g.Ho, Wo = g.Wo;
    const float* grad = gs.const_data_ptr<float>();
    const uint8_t* won = code.const_data_ptr<uint8_t>();
    S* dst = reinterpret_cast<S*>(gx.data_ptr());
    const Axis &rows = g.rows, &cols = g.cols;
    at::parallel_for(0, g.N, 1, [&](int64_t n0, int64_t n1) {
      // the gradients of the two blur passes, of one pixel, and of a window outside a replicate-padded map (none)
      auto buffers = at::empty({H * Wo * C + H * W * C + 2 * C}, gs.options());
      float* gT = buffers.data_ptr<float>();
      float* gM = gT + H * Wo * C;
      float* pixel = gM + H * W * C;
      std::fill(pixel + C, pixel + 2 * C, 0.f);
      const std::vector<uint8_t> no_winner(C, 255);
      const Window none{pixel + C, no_winner.data()};
      for (int64_t n = n0; n < n1; ++n) {
        const float* gy = grad + n * Ho * Wo * C;
        for (int64_t p = 0; p < H; ++p) {
          const int64_t r = rows.start[p], len = rows.start[p + 1] - r;
          for (int64_t j = 0; j < Wo; ++j)
            gather<CC>(gT + (p * Wo + j) * C, gy + j * C, &rows.from_out[r], &rows.from_tap[r], len, Wo * C, C);
        }
        for (int64_t p = 0; p < H; ++p)
          for (int64_t q = 0; q < W; ++q) {
            const int64_t r = cols.start[q], len = cols.start[q + 1] - r;
            gather<CC>(gM + (p * W + q) * C, gT + p * Wo * C, &cols.from_out[r], &cols.from_tap[r], len, C, C);
          }
        // pixel (p, q) is pixel 3, 2, 1, 0 of the windows at (p-1, q-1), (p-1, q), (p, q-1), (p, q) (mod H, W; with
        // replicate padding there are none above the first row or left of the first column)
        const uint8_t* k = won + n * H * W * C;
        S* out = dst + n * H * W * C;
        auto window = [&](bool exists, int64_t at) { return exists ? Window{gM + at, k + at} : none; };
        for (int64_t p = 0; p < H; ++p) {
          const int64_t up = (p == 0 ? H - 1 : p - 1) * W;
          const bool has_up = g.circular || p > 0;
          for (int64_t q = 0; q < W; ++q) {
            const int64_t left = q == 0 ? W - 1 : q - 1;
            const bool has_left = g.circular || q > 0;
            const int64_t w0 = (p * W + q) * C;
            pixel_gradient<CC>(pixel, window(has_up && has_left, (up + left) * C), window(has_up, (up + q) * C),
                               window(has_left, (p * W + left) * C), window(true, w0), C);
#pragma GCC ivdep
            for (int64_t c = 0; c < C; ++c) out[w0 + c] = Io<T>::store(pixel[c]);
          }
        }
      }
    });
  }
};

// x (N, C, H, W) -> y (N, C, ceil(H / s), ceil(W / s)) float32 channels-last, and the winners (N, H, W, C) bytes
// (an empty tensor when not `winners`: inference, no backward).
std::tuple<at::Tensor, at::Tensor> maxblur_forward(const at::Tensor& x, const at::Tensor& taps, int64_t stride,
                                                   bool circular, bool winners) {
  TORCH_CHECK(x.dim() == 4 && x.numel() > 0, "maxblur_forward: expected a non-empty (N, C, H, W) map, got ", x.sizes());
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const Geometry g = geometry(N, C, H, W, taps, stride, circular);
  const auto xs = x.contiguous(at::MemoryFormat::ChannelsLast);
  auto y = at::empty({N, g.Ho, g.Wo, C}, x.options().dtype(at::kFloat));
  auto code = winners ? at::empty({N, H, W, C}, x.options().dtype(at::kByte)) : at::empty({0}, x.options().dtype(at::kByte));
  dispatch<Forward>(x.scalar_type(), C, xs, g, y, code);
  return {y.permute({0, 3, 1, 2}), code};
}

// The gradient with respect to x (in dtype) from the output's float32 gradient and the winners.
at::Tensor maxblur_backward(const at::Tensor& grad, const at::Tensor& code, const at::Tensor& taps, int64_t stride,
                            bool circular, at::ScalarType dtype) {
  TORCH_CHECK(code.dim() == 4 && grad.dim() == 4 && grad.size(0) == code.size(0) && grad.size(1) == code.size(3),
              "maxblur_backward: the gradient ", grad.sizes(), " does not match the winners ", code.sizes());
  const int64_t N = code.size(0), H = code.size(1), W = code.size(2), C = code.size(3);
  const Geometry g = geometry(N, C, H, W, taps, stride, circular);
  TORCH_CHECK(grad.size(2) == g.Ho && grad.size(3) == g.Wo, "maxblur_backward: the gradient ", grad.sizes(),
              " does not match the winners ", code.sizes());
  const auto gs = grad.to(at::kFloat).contiguous(at::MemoryFormat::ChannelsLast);
  auto gx = at::empty({N, H, W, C}, code.options().dtype(dtype));
  dispatch<Backward>(dtype, C, gs, code.contiguous(), g, gx);
  return gx.permute({0, 3, 1, 2});
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(shiftlab_kernels, m) {
  m.def("maxblur_forward(Tensor x, Tensor taps, int stride, bool circular, bool winners) -> (Tensor, Tensor)");
  m.def("maxblur_backward(Tensor grad, Tensor code, Tensor taps, int stride, bool circular, ScalarType dtype) -> Tensor");
}

TORCH_LIBRARY_IMPL(shiftlab_kernels, CPU, m) {
  m.impl("maxblur_forward", &maxblur_forward);
  m.impl("maxblur_backward", &maxblur_backward);
}
