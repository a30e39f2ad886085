// The first convolution of every network here: one input channel (a grey image), stride 1, no bias, on an input
// already padded; forward and the weight's gradient, on CPU maps, the output channels-last.
//
// oneDNN runs a one-channel convolution as a general one. Here each output pixel is a sum of kh * kw input pixels
// times a row of C weights, the loop over C innermost (C a compile-time constant 16, 32 or 64, so it vectorises;
// any other C takes the generic loop); the weight's gradient sums the same products over the batch in float per
// fixed chunk of rows and in double across chunks, in order, so every result is the same for any thread count. The
// input's gradient is not computed: the layer calls this only on an input that needs none (a batch of images; the
// spatial transformer's resampled input takes torch's path, ops.stem_conv_applies).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "common.h"
#include "stem.h"

namespace {

using shiftlab::as_vectors;
using shiftlab::chunked_sums;
using shiftlab::conv3x3;
using shiftlab::dispatch;
using shiftlab::F16;
using shiftlab::F8;
using shiftlab::Io;
using shiftlab::load;
using shiftlab::rows_as_float;
using shiftlab::store16;
using shiftlab::taps_by_position;

constexpr int64_t kChunkPixels = 256;   // output pixels (whole rows) per partial sum of the weight's gradient

template <int64_t CC>
constexpr bool kVector = CC > 0 && CC % 16 == 0;

// y (N, H, W, C): y[n, i, j, c] = sum_{a, b} w[c, a, b] x[n, i + a, j + b], the taps in row-major order
template <typename T, int64_t CC>
struct Forward {
  static void run(const at::Tensor& xs, const std::vector<float>& taps, int64_t kh, int64_t kw, int64_t C_,
                  at::Tensor& y) {
    using S = typename Io<T>::S;
    const int64_t C = CC > 0 ? CC : C_;
    const int64_t Hp = xs.size(2), Wp = xs.size(3), H = Hp - kh + 1, W = Wp - kw + 1;
    const S* src = reinterpret_cast<const S*>(xs.const_data_ptr());
    S* dst = reinterpret_cast<S*>(y.data_ptr());
    const bool vec = kVector<CC> && kh == 3 && kw == 3;
    const std::vector<F16> vtaps = vec ? as_vectors(taps) : std::vector<F16>();
    at::parallel_for(0, xs.size(0) * H, 1, [&](int64_t r0, int64_t r1) {
      std::vector<float> acc(C), rows(3 * Wp);
      for (int64_t r = r0; r < r1; ++r) {
        const S* top = src + (r / H) * Hp * Wp + (r % H) * Wp;
        S* out = dst + r * W * C;
        if constexpr (kVector<CC>) {
          if (vec) {
            rows_as_float<T>(top, Wp, 3, rows.data());
            for (int64_t j = 0; j < W; ++j) {
              F16 z[CC / 16];
              conv3x3<CC / 16>(rows.data() + j, Wp, vtaps.data(), z);
              for (int64_t l = 0; l < CC / 16; ++l) store16(z[l], out + j * C + l * 16);
            }
            continue;
          }
        }
        for (int64_t j = 0; j < W; ++j) {
          std::fill(acc.begin(), acc.end(), 0.f);
          for (int64_t p = 0; p < kh; ++p)
            for (int64_t q = 0; q < kw; ++q) {
              const float v = Io<T>::load(top[p * Wp + j + q]);
              const float* wk = taps.data() + (p * kw + q) * C;
              for (int64_t c = 0; c < C; ++c) acc[c] += wk[c] * v;
            }
          for (int64_t c = 0; c < C; ++c) out[j * C + c] = Io<T>::store(acc[c]);
        }
      }
    });
  }
};

// dw[c, a, b] = sum_{n, i, j} g[n, i, j, c] x[n, i + a, j + b]
template <typename T, int64_t CC>
struct WeightGrad {
  static void run(const at::Tensor& gs, const at::Tensor& xs, int64_t kh, int64_t kw, std::vector<double>& total) {
    using S = typename Io<T>::S;
    const int64_t N = gs.size(0), C = CC > 0 ? CC : gs.size(1), H = gs.size(2), W = gs.size(3);
    const int64_t Hp = xs.size(2), Wp = xs.size(3), K = kh * kw;
    const int64_t rows_per_chunk = std::max<int64_t>(1, kChunkPixels / W);
    const int64_t chunks = (N * H + rows_per_chunk - 1) / rows_per_chunk;
    const S* src = reinterpret_cast<const S*>(xs.const_data_ptr());
    const S* gy = reinterpret_cast<const S*>(gs.const_data_ptr());
    const bool vec = kVector<CC> && kh == 3 && kw == 3;
    total = chunked_sums(chunks, K * C, [&](int64_t k, float* acc) {
      const int64_t r0 = k * rows_per_chunk, r1 = std::min(N * H, (k + 1) * rows_per_chunk);
      if constexpr (kVector<CC>) {
        if (vec) {
          std::vector<float> rows(3 * Wp), grow(W * CC);
          for (int64_t r = r0; r < r1; ++r) {
            rows_as_float<T>(src + (r / H) * Hp * Wp + (r % H) * Wp, Wp, 3, rows.data());
            rows_as_float<T>(gy + r * W * CC, W * CC, 1, grow.data());
            // one input row a and 32 channels at a time: its three taps' sums over the row, at most 12 vectors of
            // 8 floats, stay in registers (nine taps' sums of 16 channels would not fit in an AVX2 CPU's sixteen)
            constexpr int64_t B = CC < 32 ? CC : 32, V = B / 8;
            for (int64_t a = 0; a < 3; ++a)
              for (int64_t c0 = 0; c0 < CC; c0 += B) {
                const float* x = rows.data() + a * Wp;
                F8 s0[V] = {}, s1[V] = {}, s2[V] = {};
                for (int64_t j = 0; j < W; ++j) {
#pragma GCC unroll 4
                  for (int64_t l = 0; l < V; ++l) {
                    const F8 g = load<F8>(grow.data() + j * CC + c0 + l * 8);
                    s0[l] += g * x[j];
                    s1[l] += g * x[j + 1];
                    s2[l] += g * x[j + 2];
                  }
                }
                for (int64_t l = 0; l < V; ++l)
                  for (int64_t i = 0; i < 8; ++i) {
                    const int64_t c = c0 + l * 8 + i;
                    acc[(a * 3) * CC + c] += s0[l][i];
                    acc[(a * 3 + 1) * CC + c] += s1[l][i];
                    acc[(a * 3 + 2) * CC + c] += s2[l][i];
                  }
              }
          }
          return;
        }
      }
      for (int64_t r = r0; r < r1; ++r) {
        const S* top = src + (r / H) * Hp * Wp + (r % H) * Wp;
        for (int64_t j = 0; j < W; ++j)
          for (int64_t p = 0; p < kh; ++p)
            for (int64_t q = 0; q < kw; ++q) {
              const float v = Io<T>::load(top[p * Wp + j + q]);
              float* ak = acc + (p * kw + q) * C;
              for (int64_t c = 0; c < C; ++c) ak[c] += Io<T>::load(gy[(r * W + j) * C + c]) * v;
            }
      }
    });
  }
};

void check_input(const at::Tensor& x, const at::Tensor& w) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 1 && x.numel() > 0, "stem_conv: expected a non-empty (N, 1, H, W) input, "
              "got ", x.sizes());
  TORCH_CHECK(w.dim() == 4 && w.size(1) == 1 && w.size(0) > 0 && w.size(2) <= x.size(2) && w.size(3) <= x.size(3),
              "stem_conv: expected (C, 1, kh, kw) weights no larger than the input ", x.sizes(), ", got ", w.sizes());
}

// Returns y = conv2d(x, w) (no padding, stride 1) in x's dtype, channels-last; sums in float.
at::Tensor stem_conv_forward(const at::Tensor& x, const at::Tensor& w) {
  check_input(x, w);
  const int64_t N = x.size(0), C = w.size(0), kh = w.size(2), kw = w.size(3);
  const auto xs = x.contiguous();
  auto y = at::empty({N, x.size(2) - kh + 1, x.size(3) - kw + 1, C}, x.options());
  dispatch<Forward>(x.scalar_type(), C, xs, taps_by_position(w), kh, kw, C, y);
  return y.permute({0, 3, 1, 2});
}

// Returns the gradient (C, 1, kh, kw), float32, of sum(grad * stem_conv_forward(x, w)) with respect to w.
at::Tensor stem_conv_weight_grad(const at::Tensor& grad, const at::Tensor& x, int64_t kh, int64_t kw) {
  TORCH_CHECK(grad.dim() == 4 && x.dim() == 4 && x.size(1) == 1 && grad.size(0) == x.size(0) &&
              grad.size(2) == x.size(2) - kh + 1 && grad.size(3) == x.size(3) - kw + 1 &&
              grad.scalar_type() == x.scalar_type(), "stem_conv_weight_grad: the gradient ", grad.sizes(), " ",
              grad.scalar_type(), " does not match the input ", x.sizes(), " ", x.scalar_type(), " and a ", kh, "x", kw,
              " kernel");
  const int64_t C = grad.size(1);
  const auto gs = grad.contiguous(at::MemoryFormat::ChannelsLast), xs = x.contiguous();
  std::vector<double> total;
  dispatch<WeightGrad>(grad.scalar_type(), C, gs, xs, kh, kw, total);
  return shiftlab::weights_from_taps(total, C, kh, kw, grad);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(shiftlab_kernels, m) {
  m.def("stem_conv_forward(Tensor x, Tensor w) -> Tensor");
  m.def("stem_conv_weight_grad(Tensor grad, Tensor x, int kh, int kw) -> Tensor");
}

TORCH_LIBRARY_IMPL(shiftlab_kernels, CPU, m) {
  m.impl("stem_conv_forward", &stem_conv_forward);
  m.impl("stem_conv_weight_grad", &stem_conv_weight_grad);
}
