// Max_{2,1} (a 2x2 max at stride 1) on channels-last CPU maps, forward and backward.
//
// torch's max_pool2d(x, 2, 1) writes an int64 index per output and scatters its gradient through them; here
// the forward keeps one byte per output (which of the four window pixels won) and the backward gathers, for
// every input pixel, the gradients of the (up to four) windows it won: both loops are branch-free selects, which
// the compiler vectorises (built with -march=native, ops.py). Values and the float32 gradient equal max_pool2d's bit
// for bit: the first of equal values wins (NaN wins), and each input pixel sums its gradients in the outputs'
// row-major order.
#include <ATen/ATen.h>
#include <algorithm>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "common.h"

namespace {

constexpr uint8_t kNoWinner = 255;   // the code of the border around each code map

template <typename T>
void forward_row(const T* __restrict__ top, const T* __restrict__ bottom, T* __restrict__ out,
                 uint8_t* __restrict__ which, int64_t len, int64_t channels) {
  using acc_t = at::opmath_type<T>;
  for (int64_t i = 0; i < len; ++i) {
    out[i] = static_cast<T>(shiftlab::window_max(static_cast<acc_t>(top[i]), static_cast<acc_t>(top[i + channels]),
                                                 static_cast<acc_t>(bottom[i]),
                                                 static_cast<acc_t>(bottom[i + channels]), which[i]));
  }
}

template <typename T>
void backward_row(const T* __restrict__ g_up, const T* __restrict__ g_down, const uint8_t* __restrict__ k_up,
                  const uint8_t* __restrict__ k_down, T* __restrict__ out, int64_t len, int64_t channels) {
  using acc_t = at::opmath_type<T>;
  for (int64_t i = 0; i < len; ++i) {
    out[i] = static_cast<T>(shiftlab::won_gradient(
        static_cast<acc_t>(g_up[i]), k_up[i], static_cast<acc_t>(g_up[i + channels]), k_up[i + channels],
        static_cast<acc_t>(g_down[i]), k_down[i], static_cast<acc_t>(g_down[i + channels]), k_down[i + channels]));
  }
}

// sets the one-pixel border of an (N, H+2, W+2, C) map to value (only the border: the inside is written after)
void fill_border(at::Tensor& map, const at::Scalar& value) {
  const int64_t H = map.size(1) - 2, W = map.size(2) - 2;
  map.select(1, 0).fill_(value);
  map.select(1, H + 1).fill_(value);
  map.narrow(1, 1, H).select(2, 0).fill_(value);
  map.narrow(1, 1, H).select(2, W + 1).fill_(value);
}

// x: (N, C, H+1, W+1). Returns y = max_pool2d(x, 2, 1), (N, C, H, W) channels-last, and the winners
// (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) as (N, H+2, W+2, C) bytes with a border of kNoWinner.
std::tuple<at::Tensor, at::Tensor> dense_max_forward(const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(2) >= 2 && x.size(3) >= 2,
              "dense_max_forward: expected a (N, C, H+1, W+1) map with H, W >= 1, got ", x.sizes());
  const auto src_map = x.contiguous(at::MemoryFormat::ChannelsLast);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2) - 1, W = x.size(3) - 1;
  auto y = at::empty({N, H, W, C}, x.options());
  auto code = at::empty({N, H + 2, W + 2, C}, x.options().dtype(at::kByte));
  fill_border(code, kNoWinner);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "dense_max_forward", [&] {
    const scalar_t* src = src_map.const_data_ptr<scalar_t>();
    scalar_t* dst = y.data_ptr<scalar_t>();
    uint8_t* won = code.data_ptr<uint8_t>();
    const int64_t row = (W + 1) * C;
    at::parallel_for(0, N * H, 16, [&](int64_t begin, int64_t end) {
      for (int64_t nh = begin; nh < end; ++nh) {
        const int64_t n = nh / H, h = nh % H;
        const scalar_t* top = src + (n * (H + 1) + h) * row;
        forward_row(top, top + row, dst + nh * W * C, won + ((n * (H + 2) + h + 1) * (W + 2) + 1) * C, W * C, C);
      }
    });
  });
  return {y.permute({0, 3, 1, 2}), code};
}

// The gradient of dense_max_forward with respect to x, from the output gradient and the winners.
at::Tensor dense_max_backward(const at::Tensor& grad, const at::Tensor& code) {
  TORCH_CHECK(grad.dim() == 4 && code.dim() == 4 && code.size(0) == grad.size(0) && code.size(1) == grad.size(2) + 2 &&
              code.size(2) == grad.size(3) + 2 && code.size(3) == grad.size(1),
              "dense_max_backward: the gradient ", grad.sizes(), " does not match the winners ", code.sizes());
  const int64_t N = grad.size(0), C = grad.size(1), H = grad.size(2), W = grad.size(3);
  // the gradient with a zero border, (N, H+2, W+2, C), aligned with the winners
  auto g = at::empty({N, H + 2, W + 2, C}, grad.options());
  fill_border(g, 0);
  g.narrow(1, 1, H).narrow(2, 1, W).copy_(grad.permute({0, 2, 3, 1}));
  const auto won_map = code.contiguous();
  auto gx = at::empty({N, H + 1, W + 1, C}, grad.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, grad.scalar_type(), "dense_max_backward", [&] {
    const scalar_t* gs = g.const_data_ptr<scalar_t>();
    const uint8_t* won = won_map.const_data_ptr<uint8_t>();
    scalar_t* dst = gx.data_ptr<scalar_t>();
    const int64_t padded_row = (W + 2) * C, len = (W + 1) * C;
    at::parallel_for(0, N * (H + 1), 16, [&](int64_t begin, int64_t end) {
      for (int64_t np = begin; np < end; ++np) {
        const int64_t n = np / (H + 1), p = np % (H + 1);
        const int64_t up = (n * (H + 2) + p) * padded_row, down = up + padded_row;   // window rows p-1 and p
        backward_row(gs + up, gs + down, won + up, won + down, dst + np * len, len, C);
      }
    });
  });
  return gx.permute({0, 3, 1, 2});
}

// How many distinct threads at::parallel_for runs n items of work on, as the kernels split theirs (grain 1): 1 when
// the extension was built without OpenMP, whatever torch's thread count.
int64_t parallel_threads(int64_t n) {
  std::vector<uint8_t> seen(std::max(at::get_num_threads(), 1), 0);
  at::parallel_for(0, n, 1, [&](int64_t, int64_t) { seen[at::get_thread_num()] = 1; });
  int64_t count = 0;
  for (uint8_t s : seen) count += s;
  return count;
}

}  // namespace

TORCH_LIBRARY(shiftlab_kernels, m) {
  m.def("dense_max_forward(Tensor x) -> (Tensor, Tensor)");
  m.def("dense_max_backward(Tensor grad, Tensor code) -> Tensor");
  m.def("parallel_threads(int n) -> int", &parallel_threads);
}

TORCH_LIBRARY_IMPL(shiftlab_kernels, CPU, m) {
  m.impl("dense_max_forward", &dense_max_forward);
  m.impl("dense_max_backward", &dense_max_backward);
}
