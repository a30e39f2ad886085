// BatchNorm2d . ReLU, optionally followed by MaxPool2d(2, 2), on channels-last CPU maps: in training forward and
// backward, each in a few passes over the map; in inference (running statistics, bn_relu_eval) one pass.
//
// torch runs these as three or four ops, each a pass over the full-size map that writes a full-size result (the
// normalised map, the ReLU, the pool's int64 indices, a zero-filled gradient to scatter into). Here the forward
// writes only its output (a quarter of the map when pooled) and the backward recomputes the ReLU mask and the pool's
// winners from the saved input, so the map is read a few times and written once. Each pixel's C channels are one
// contiguous row; the inner loops run over them with C a compile-time constant (16, 32 or 64; any other C takes
// the generic loop), so the compiler vectorises them (-march=native, ops.py). bfloat16 is read and rounded
// (to nearest even) with integer shifts, which vectorise where c10::BFloat16's conversions do not.
//
// Same function as torch's ops: the statistics are the batch mean and biased variance over N, H, W; the pool's
// first-of-equal winner is chosen on the values torch would compare (the ReLU output in the map's dtype); the
// gradient goes to the winner when its value is positive. Sums are float per fixed chunk of rows and double across
// chunks, in order, so every result is the same for any thread count.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <initializer_list>
#include <cstring>
#include <vector>

#include "common.h"

namespace {

using shiftlab::Io;
using shiftlab::chunked_sums;
using shiftlab::dispatch;

constexpr int64_t kChunk = 256;   // pixels per partial sum

// The per-channel constants of one pass: x -> x * scale + shift is the normalised, affine map before the ReLU.
struct Affine {
  std::vector<float> mean, variance, invstd, scale, shift;

  explicit Affine(int64_t C) : mean(C), variance(C), invstd(C), scale(C), shift(C) {}

  // channel c from its mean m and variance var: invstd = 1 / sqrt(var + eps), scale = w invstd, shift = b - m scale
  void set(int64_t c, float m, double var, float w, float b, double eps) {
    mean[c] = m;
    variance[c] = static_cast<float>(var);
    invstd[c] = static_cast<float>(1.0 / std::sqrt(var + eps));
    scale[c] = w * invstd[c];
    shift[c] = b - m * scale[c];
  }
};

// ---- statistics: sum of (x - x0) and of its square, x0 the first pixel (a shift against cancellation) ----
template <typename T, int64_t CC>
void moments_rows(const typename Io<T>::S* __restrict__ x, int64_t r0, int64_t r1, int64_t C_,
                  const float* __restrict__ x0, float* __restrict__ acc) {
  const int64_t C = CC > 0 ? CC : C_;
  for (int64_t r = r0; r < r1; ++r) {
    const auto* __restrict__ p = x + r * C;
#pragma GCC ivdep
    for (int64_t c = 0; c < C; ++c) {
      const float d = Io<T>::load(p[c]) - x0[c];
      acc[c] += d;
      acc[C + c] += d * d;
    }
  }
}

// the batch's affine map from s = (sum (x - x0), sum (x - x0)^2) per channel over `rows` values
Affine affine_from_moments(const std::vector<double>& s, const std::vector<float>& x0, int64_t rows, const float* w,
                           const float* b, double eps) {
  const int64_t C = x0.size();
  Affine a(C);
  for (int64_t c = 0; c < C; ++c) {
    const double m1 = s[c] / rows;
    // the variance as the op returns it (float), so the backward's given_affine rebuilds exactly this map
    const float var = static_cast<float>(std::max(s[C + c] / rows - m1 * m1, 0.0));
    a.set(c, static_cast<float>(x0[c] + m1), var, w[c], b[c], eps);
  }
  return a;
}

template <typename T, int64_t CC>
Affine batch_affine(const typename Io<T>::S* x, int64_t rows, int64_t C, const float* w, const float* b, double eps) {
  std::vector<float> x0(C);
  for (int64_t c = 0; c < C; ++c) x0[c] = Io<T>::load(x[c]);
  const int64_t chunks = (rows + kChunk - 1) / kChunk;
  const auto s = chunked_sums(chunks, 2 * C, [&](int64_t k, float* acc) {
    moments_rows<T, CC>(x, k * kChunk, std::min(rows, (k + 1) * kChunk), C, x0.data(), acc);
  });
  return affine_from_moments(s, x0, rows, w, b, eps);
}

Affine given_affine(const float* mean, const float* var, const float* w, const float* b, int64_t C, double eps) {
  Affine a(C);
  for (int64_t c = 0; c < C; ++c) a.set(c, mean[c], var[c], w[c], b[c], eps);
  return a;
}

// ReLU(x * scale + shift) as the map's dtype would hold it (rounded for bfloat16), in float
template <typename T>
inline float relu_as_stored(float x, float scale, float shift) {
  const float z = x * scale + shift;
  return Io<T>::load(Io<T>::store(z > 0.f ? z : 0.f));
}

// ---- forward ----
template <typename T, int64_t CC>
void normalise_rows(const typename Io<T>::S* __restrict__ x, typename Io<T>::S* __restrict__ y, int64_t r0, int64_t r1,
                    int64_t C_, const float* __restrict__ scale, const float* __restrict__ shift) {
  const int64_t C = CC > 0 ? CC : C_;
  for (int64_t r = r0; r < r1; ++r) {
#pragma GCC ivdep
    for (int64_t c = 0; c < C; ++c) {
      const float z = Io<T>::load(x[r * C + c]) * scale[c] + shift[c];
      y[r * C + c] = Io<T>::store(z > 0.f ? z : 0.f);
    }
  }
}

// one output row (n, i) of the pooled map: y[n, i, j] = max over the 2x2 window at (2i, 2j)
template <typename T, int64_t CC>
void normalise_pool_row(const typename Io<T>::S* __restrict__ top, const typename Io<T>::S* __restrict__ bottom,
                        typename Io<T>::S* __restrict__ y, int64_t Wo, int64_t C_, const float* __restrict__ scale,
                        const float* __restrict__ shift) {
  const int64_t C = CC > 0 ? CC : C_;
  for (int64_t j = 0; j < Wo; ++j) {
    const auto* __restrict__ t = top + 2 * j * C;
    const auto* __restrict__ u = bottom + 2 * j * C;
#pragma GCC ivdep
    for (int64_t c = 0; c < C; ++c) {   // the max of the ReLUs is the ReLU of the max
      const float a = Io<T>::load(t[c]) * scale[c] + shift[c], b = Io<T>::load(t[C + c]) * scale[c] + shift[c];
      const float d = Io<T>::load(u[c]) * scale[c] + shift[c], e = Io<T>::load(u[C + c]) * scale[c] + shift[c];
      const float z = std::max(std::max(a, b), std::max(d, e));
      y[j * C + c] = Io<T>::store(z > 0.f ? z : 0.f);
    }
  }
}

// ---- backward: the gradient at each pixel before the ReLU, g = gy where the pixel's ReLU output is positive (and,
// pooled, where it won its window), else 0; then dx = a * g + b * x + c per channel ----
template <typename T>
inline float relu_grad(float x, float scale, float shift, typename Io<T>::S gy) {
  return x * scale + shift > 0.f ? Io<T>::load(gy) : 0.f;
}

template <typename T, int64_t CC>
void grad_moments_rows(const typename Io<T>::S* __restrict__ x, const typename Io<T>::S* __restrict__ gy, int64_t r0,
                       int64_t r1, int64_t C_, const float* __restrict__ scale, const float* __restrict__ shift,
                       const float* __restrict__ mean, float* __restrict__ acc) {
  const int64_t C = CC > 0 ? CC : C_;
  for (int64_t r = r0; r < r1; ++r) {
#pragma GCC ivdep
    for (int64_t c = 0; c < C; ++c) {
      const float xv = Io<T>::load(x[r * C + c]), g = relu_grad<T>(xv, scale[c], shift[c], gy[r * C + c]);
      acc[c] += g;
      acc[C + c] += g * (xv - mean[c]);
    }
  }
}

template <typename T, int64_t CC>
void grad_input_rows(const typename Io<T>::S* __restrict__ x, const typename Io<T>::S* __restrict__ gy,
                     typename Io<T>::S* __restrict__ dx, int64_t r0, int64_t r1, int64_t C_,
                     const float* __restrict__ scale, const float* __restrict__ shift, const float* __restrict__ ka,
                     const float* __restrict__ kb, const float* __restrict__ kc) {
  const int64_t C = CC > 0 ? CC : C_;
  for (int64_t r = r0; r < r1; ++r) {
#pragma GCC ivdep
    for (int64_t c = 0; c < C; ++c) {
      const float xv = Io<T>::load(x[r * C + c]), g = relu_grad<T>(xv, scale[c], shift[c], gy[r * C + c]);
      dx[r * C + c] = Io<T>::store(ka[c] * g + kb[c] * xv + kc[c]);
    }
  }
}

// the four window pixels' gradients g0..g3 (top-left, top-right, bottom-left, bottom-right): gy to the first of
// the largest ReLU outputs when it is positive
template <typename T>
inline void window_grads(float x0, float x1, float x2, float x3, float scale, float shift, float gy, float& g0,
                         float& g1, float& g2, float& g3) {
  const float v0 = relu_as_stored<T>(x0, scale, shift), v1 = relu_as_stored<T>(x1, scale, shift);
  const float v2 = relu_as_stored<T>(x2, scale, shift), v3 = relu_as_stored<T>(x3, scale, shift);
  const float m = std::max(std::max(v0, v1), std::max(v2, v3));
  const float g = m > 0.f ? gy : 0.f;
  // bitwise, not short-circuit: no branch, so the callers' loops over channels vectorise
  const bool w0 = v0 == m, w1 = !w0 & (v1 == m), w2 = !(w0 | w1) & (v2 == m), w3 = !(w0 | w1 | w2);
  g0 = w0 ? g : 0.f;
  g1 = w1 ? g : 0.f;
  g2 = w2 ? g : 0.f;
  g3 = w3 ? g : 0.f;
}

template <typename T, int64_t CC>
void pool_grad_moments_row(const typename Io<T>::S* __restrict__ top, const typename Io<T>::S* __restrict__ bottom,
                           const typename Io<T>::S* __restrict__ gy, int64_t Wo, int64_t C_,
                           const float* __restrict__ scale, const float* __restrict__ shift,
                           const float* __restrict__ mean, float* __restrict__ acc) {
  const int64_t C = CC > 0 ? CC : C_;
  for (int64_t j = 0; j < Wo; ++j) {
    const auto* __restrict__ t = top + 2 * j * C;
    const auto* __restrict__ u = bottom + 2 * j * C;
#pragma GCC ivdep
    for (int64_t c = 0; c < C; ++c) {
      const float x0 = Io<T>::load(t[c]), x1 = Io<T>::load(t[C + c]);
      const float x2 = Io<T>::load(u[c]), x3 = Io<T>::load(u[C + c]);
      float g0, g1, g2, g3;
      window_grads<T>(x0, x1, x2, x3, scale[c], shift[c], Io<T>::load(gy[j * C + c]), g0, g1, g2, g3);
      acc[c] += (g0 + g1) + (g2 + g3);
      acc[C + c] += (g0 * (x0 - mean[c]) + g1 * (x1 - mean[c])) + (g2 * (x2 - mean[c]) + g3 * (x3 - mean[c]));
    }
  }
}

template <typename T, int64_t CC>
void pool_grad_input_row(const typename Io<T>::S* __restrict__ top, const typename Io<T>::S* __restrict__ bottom,
                         const typename Io<T>::S* __restrict__ gy, typename Io<T>::S* __restrict__ dtop,
                         typename Io<T>::S* __restrict__ dbottom, int64_t Wo, int64_t C_,
                         const float* __restrict__ scale, const float* __restrict__ shift,
                         const float* __restrict__ ka, const float* __restrict__ kb, const float* __restrict__ kc) {
  const int64_t C = CC > 0 ? CC : C_;
  for (int64_t j = 0; j < Wo; ++j) {
    const int64_t o = 2 * j * C;
#pragma GCC ivdep
    for (int64_t c = 0; c < C; ++c) {
      const float x0 = Io<T>::load(top[o + c]), x1 = Io<T>::load(top[o + C + c]);
      const float x2 = Io<T>::load(bottom[o + c]), x3 = Io<T>::load(bottom[o + C + c]);
      float g0, g1, g2, g3;
      window_grads<T>(x0, x1, x2, x3, scale[c], shift[c], Io<T>::load(gy[j * C + c]), g0, g1, g2, g3);
      dtop[o + c] = Io<T>::store(ka[c] * g0 + kb[c] * x0 + kc[c]);
      dtop[o + C + c] = Io<T>::store(ka[c] * g1 + kb[c] * x1 + kc[c]);
      dbottom[o + c] = Io<T>::store(ka[c] * g2 + kb[c] * x2 + kc[c]);
      dbottom[o + C + c] = Io<T>::store(ka[c] * g3 + kb[c] * x3 + kc[c]);
    }
  }
}

// x a non-empty (N, C, H, W) map (even H and W when pooled) and every per-channel parameter C values; batch
// statistics also need more than one value per channel
void check_input(const at::Tensor& x, std::initializer_list<const at::Tensor*> params, bool pool, bool batch_statistics) {
  TORCH_CHECK(x.dim() == 4 && x.numel() > 0, "bn_relu: expected a non-empty (N, C, H, W) map, got ", x.sizes());
  for (const auto* t : params)
    TORCH_CHECK(t->numel() == x.size(1), "bn_relu: ", x.size(1), " channels but a parameter of ", t->numel(), " values");
  TORCH_CHECK(!pool || (x.size(2) % 2 == 0 && x.size(3) % 2 == 0), "bn_relu: the pooled form needs an even height "
              "and width, got ", x.sizes());
  TORCH_CHECK(!batch_statistics || x.size(0) * x.size(2) * x.size(3) > 1,
              "bn_relu: batch statistics need more than one value per channel");
}

at::Tensor floats(const at::Tensor& t) { return t.to(at::kFloat).contiguous(); }

at::Tensor from_vector(const std::vector<float>& v, const at::Tensor& like) {
  auto t = at::empty({static_cast<int64_t>(v.size())}, like.options().dtype(at::kFloat));
  std::memcpy(t.data_ptr<float>(), v.data(), v.size() * sizeof(float));
  return t;
}

// x (N, H, W, C) -> y = ReLU(x * scale + shift) per channel, pooled: MaxPool2d(2, 2) of it
template <typename T, int64_t CC>
void normalise(const at::Tensor& xs, const Affine& a, bool pool, at::Tensor& y) {
  using S = typename Io<T>::S;
  const int64_t N = xs.size(0), C = xs.size(1), H = xs.size(2), W = xs.size(3), rows = N * H * W;
  const S* src = reinterpret_cast<const S*>(xs.const_data_ptr());
  S* dst = reinterpret_cast<S*>(y.data_ptr());
  if (!pool) {
    at::parallel_for(0, rows, kChunk, [&](int64_t r0, int64_t r1) {
      normalise_rows<T, CC>(src, dst, r0, r1, C, a.scale.data(), a.shift.data());
    });
    return;
  }
  const int64_t Wo = W / 2;
  at::parallel_for(0, N * (H / 2), 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      const S* top = src + 2 * k * W * C;
      normalise_pool_row<T, CC>(top, top + W * C, dst + k * Wo * C, Wo, C, a.scale.data(), a.shift.data());
    }
  });
}

// training: the batch's statistics; writes the batch mean and biased variance
template <typename T, int64_t CC>
struct Forward {
  static void run(const at::Tensor& xs, const at::Tensor& w, const at::Tensor& b, double eps, bool pool, at::Tensor& y,
                  std::vector<float>& mean, std::vector<float>& var) {
    using S = typename Io<T>::S;
    const int64_t rows = xs.size(0) * xs.size(2) * xs.size(3);
    const Affine a = batch_affine<T, CC>(reinterpret_cast<const S*>(xs.const_data_ptr()), rows, xs.size(1),
                                         w.const_data_ptr<float>(), b.const_data_ptr<float>(), eps);
    mean = a.mean;
    var = a.variance;
    normalise<T, CC>(xs, a, pool, y);
  }
};

// evaluation: the given (running) statistics
template <typename T, int64_t CC>
struct Inference {
  static void run(const at::Tensor& xs, const Affine& a, bool pool, at::Tensor& y) { normalise<T, CC>(xs, a, pool, y); }
};

// From s = (sum g, sum g (x - mean)) per channel over `rows` values: dbias = sum g, dweight = sum g * xhat, and
// dx = w * invstd * (g - dbias / M - xhat * dweight / M) = ka g + kb x + kc
void input_grad_coefficients(const std::vector<double>& s, const Affine& a, const float* w, int64_t rows,
                             std::vector<float>& ka, std::vector<float>& kb, std::vector<float>& kc,
                             std::vector<float>& dw, std::vector<float>& db) {
  const int64_t C = a.mean.size();
  for (auto* v : {&ka, &kb, &kc, &dw, &db}) v->resize(C);
  for (int64_t c = 0; c < C; ++c) {
    const double invstd = a.invstd[c], k = w[c] * invstd;
    db[c] = static_cast<float>(s[c]);
    dw[c] = static_cast<float>(s[C + c] * invstd);
    ka[c] = static_cast<float>(k);
    kb[c] = static_cast<float>(-k * invstd * invstd * s[C + c] / rows);
    kc[c] = static_cast<float>(-k * s[c] / rows + k * invstd * invstd * s[C + c] / rows * a.mean[c]);
  }
}

// the output gradient gy and x -> dx (N, H, W, C), dweight and dbias
template <typename T, int64_t CC>
struct Backward {
  static void run(const at::Tensor& gs, const at::Tensor& xs, const at::Tensor& m, const at::Tensor& v,
                  const at::Tensor& w, const at::Tensor& b, double eps, bool pool, at::Tensor& dx,
                  std::vector<float>& dw, std::vector<float>& db) {
    using S = typename Io<T>::S;
    const int64_t N = xs.size(0), C = xs.size(1), H = xs.size(2), W = xs.size(3), rows = N * H * W, Wo = W / 2;
    const S* src = reinterpret_cast<const S*>(xs.const_data_ptr());
    const S* gy = reinterpret_cast<const S*>(gs.const_data_ptr());
    S* dst = reinterpret_cast<S*>(dx.data_ptr());
    const Affine a = given_affine(m.const_data_ptr<float>(), v.const_data_ptr<float>(), w.const_data_ptr<float>(),
                                  b.const_data_ptr<float>(), C, eps);
    const float *sc = a.scale.data(), *sh = a.shift.data(), *mu = a.mean.data();
    const std::vector<double> s = pool
        ? chunked_sums(N * (H / 2), 2 * C, [&](int64_t k, float* acc) {
            const S* top = src + 2 * k * W * C;
            pool_grad_moments_row<T, CC>(top, top + W * C, gy + k * Wo * C, Wo, C, sc, sh, mu, acc);
          })
        : chunked_sums((rows + kChunk - 1) / kChunk, 2 * C, [&](int64_t k, float* acc) {
            grad_moments_rows<T, CC>(src, gy, k * kChunk, std::min(rows, (k + 1) * kChunk), C, sc, sh, mu, acc);
          });
    std::vector<float> ka, kb, kc;
    input_grad_coefficients(s, a, w.const_data_ptr<float>(), rows, ka, kb, kc, dw, db);
    if (!pool) {
      at::parallel_for(0, rows, kChunk, [&](int64_t r0, int64_t r1) {
        grad_input_rows<T, CC>(src, gy, dst, r0, r1, C, sc, sh, ka.data(), kb.data(), kc.data());
      });
      return;
    }
    at::parallel_for(0, N * (H / 2), 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        const int64_t top = 2 * k * W * C;
        pool_grad_input_row<T, CC>(src + top, src + top + W * C, gy + k * Wo * C, dst + top, dst + top + W * C, Wo,
                                   C, sc, sh, ka.data(), kb.data(), kc.data());
      }
    });
  }
};

// Returns y = ReLU(BN(x)) (pooled: MaxPool2d(2, 2) of it), channels-last, and the batch mean and biased variance.
std::tuple<at::Tensor, at::Tensor, at::Tensor> bn_relu_forward(const at::Tensor& x, const at::Tensor& weight,
                                                               const at::Tensor& bias, double eps, bool pool) {
  check_input(x, {&weight, &bias}, pool, true);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const auto xs = x.contiguous(at::MemoryFormat::ChannelsLast);
  auto y = at::empty({N, pool ? H / 2 : H, pool ? W / 2 : W, C}, x.options());
  std::vector<float> mean, var;
  dispatch<Forward>(x.scalar_type(), C, xs, floats(weight), floats(bias), eps, pool, y, mean, var);
  return {y.permute({0, 3, 1, 2}), from_vector(mean, x), from_vector(var, x)};
}

// Returns y = ReLU(BN(x)) with the given mean and variance (evaluation mode; pooled: MaxPool2d(2, 2) of it),
// channels-last.
at::Tensor bn_relu_eval(const at::Tensor& x, const at::Tensor& mean, const at::Tensor& var, const at::Tensor& weight,
                        const at::Tensor& bias, double eps, bool pool) {
  check_input(x, {&mean, &var, &weight, &bias}, pool, false);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const auto m = floats(mean), v = floats(var), w = floats(weight), b = floats(bias);
  const Affine a = given_affine(m.const_data_ptr<float>(), v.const_data_ptr<float>(), w.const_data_ptr<float>(),
                                b.const_data_ptr<float>(), C, eps);
  const auto xs = x.contiguous(at::MemoryFormat::ChannelsLast);
  auto y = at::empty({N, pool ? H / 2 : H, pool ? W / 2 : W, C}, x.options());
  dispatch<Inference>(x.scalar_type(), C, xs, a, pool, y);
  return y.permute({0, 3, 1, 2});
}

// Returns dx, dweight, dbias of bn_relu_forward, from its output gradient, input and batch statistics.
std::tuple<at::Tensor, at::Tensor, at::Tensor> bn_relu_backward(const at::Tensor& grad, const at::Tensor& x,
                                                                const at::Tensor& mean, const at::Tensor& var,
                                                                const at::Tensor& weight, const at::Tensor& bias,
                                                                double eps, bool pool) {
  check_input(x, {&weight, &bias}, pool, true);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  TORCH_CHECK(grad.dim() == 4 && grad.size(0) == N && grad.size(1) == C && grad.size(2) == (pool ? H / 2 : H) &&
              grad.size(3) == (pool ? W / 2 : W) && grad.scalar_type() == x.scalar_type(), "bn_relu_backward: the "
              "gradient ", grad.sizes(), " ", grad.scalar_type(), " does not match the map ", x.sizes(), " ",
              x.scalar_type());
  const auto xs = x.contiguous(at::MemoryFormat::ChannelsLast), gs = grad.contiguous(at::MemoryFormat::ChannelsLast);
  auto dx = at::empty({N, H, W, C}, x.options());
  std::vector<float> dw, db;
  dispatch<Backward>(x.scalar_type(), C, gs, xs, floats(mean), floats(var), floats(weight), floats(bias), eps, pool, dx,
                     dw, db);
  return {dx.permute({0, 3, 1, 2}), from_vector(dw, x), from_vector(db, x)};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(shiftlab_kernels, m) {
  m.def("bn_relu_forward(Tensor x, Tensor weight, Tensor bias, float eps, bool pool) -> (Tensor, Tensor, Tensor)");
  m.def("bn_relu_eval(Tensor x, Tensor mean, Tensor var, Tensor weight, Tensor bias, float eps, bool pool) -> Tensor");
  m.def("bn_relu_backward(Tensor grad, Tensor x, Tensor mean, Tensor var, Tensor weight, Tensor bias, float eps, "
        "bool pool) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(shiftlab_kernels, CPU, m) {
  m.impl("bn_relu_forward", &bn_relu_forward);
  m.impl("bn_relu_eval", &bn_relu_eval);
  m.impl("bn_relu_backward", &bn_relu_backward);
}
