// The CUDA kernels of backend::Cuda and the host launchers declared in kernels.hpp. Needs
// nvcc. Each kernel mirrors backend::Reference's loop (same comparisons, same formulas, same
// -inf and NaN behaviour); only summation order differs, as on the vectorised CPU backends.
//
// Strided views are first reduced to as few dims as possible with the CPU backends' row
// splitter (size-1 dims dropped, evenly walked neighbours merged), then each thread maps its
// row-major position to an offset in every view.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "tensortape/backend/cpu_rows.hpp"
#include "tensortape/backend/cuda/device.hpp"
#include "tensortape/backend/cuda/kernels.hpp"

namespace tensortape::backend::cuda {

namespace kernel {

inline constexpr int kMaxDims = 8;
inline constexpr int kThreads = 256;  // per block; a power of two (block_reduce relies on it)

// The merged dims of N same-shaped strided views, passed to a kernel by value.
template <std::size_t N>
struct Geometry {
  int rank = 0;
  std::int64_t sizes[kMaxDims] = {};
  std::int64_t strides[N][kMaxDims] = {};

  // offsets[v] = where view v holds the element at row-major position `linear`.
  __device__ void offsets(std::int64_t linear, std::int64_t (&out)[N]) const {
    for (std::size_t v = 0; v < N; ++v) out[v] = 0;
    for (int d = rank - 1; d >= 0; --d) {
      const std::int64_t index = linear % sizes[d];
      linear /= sizes[d];
      for (std::size_t v = 0; v < N; ++v) out[v] += index * strides[v][d];
    }
  }
};

template <std::size_t N>
Geometry<N> merged_geometry(const Shape& shape, const std::array<const Shape*, N>& strides, const char* op) {
  const auto rows = cpu::split_rows<N>(shape, strides);
  Geometry<N> g;
  g.rank = static_cast<int>(rows.outer_shape.size()) + 1;
  check(g.rank <= kMaxDims, op, "Cuda kernels take at most ", kMaxDims, " dims that do not merge; shape ", shape,
        " leaves ", g.rank);
  for (int d = 0; d + 1 < g.rank; ++d) {
    g.sizes[d] = rows.outer_shape[d];
    for (std::size_t v = 0; v < N; ++v) g.strides[v][d] = rows.outer_strides[v][d];
  }
  g.sizes[g.rank - 1] = rows.length;
  for (std::size_t v = 0; v < N; ++v) g.strides[v][g.rank - 1] = rows.step[v];
  return g;
}

// Enough blocks for one element per thread, capped; the kernels' grid-stride loops cover the rest.
inline unsigned blocks_for(std::int64_t count) {
  return static_cast<unsigned>(std::clamp<std::int64_t>((count + kThreads - 1) / kThreads, 1, std::int64_t(1) << 20));
}

// A launch error (bad configuration) shows at once; an error inside a kernel shows at the next
// synchronising call unless TENSORTAPE_CUDA_SYNC_EACH_LAUNCH is defined (for debugging).
template <class... Args>
void check_launch(const char* kernel, const Args&... args) {
  check_cuda(cudaGetLastError(), kernel, args...);
#if defined(TENSORTAPE_CUDA_SYNC_EACH_LAUNCH)
  check_cuda(cudaStreamSynchronize(Device::get().stream()), kernel, args...);
#endif
}

inline cudaStream_t stream() { return Device::get().stream(); }

#define TENSORTAPE_CUDA_GRID_STRIDE(i, count)                                                \
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (count); \
       i += std::int64_t(gridDim.x) * blockDim.x)

// ---- device math: the float or double function, as std:: picks on the host ----
template <class T>
__device__ T exp_of(T x) { if constexpr (std::is_same_v<T, float>) return expf(x); else return exp(x); }
template <class T>
__device__ T log_of(T x) { if constexpr (std::is_same_v<T, float>) return logf(x); else return log(x); }
template <class T>
__device__ T sqrt_of(T x) { if constexpr (std::is_same_v<T, float>) return sqrtf(x); else return sqrt(x); }
template <class T>
__device__ T tanh_of(T x) { if constexpr (std::is_same_v<T, float>) return tanhf(x); else return tanh(x); }
template <class T>
__device__ T erf_of(T x) { if constexpr (std::is_same_v<T, float>) return erff(x); else return erf(x); }
template <class T>
__device__ T pow_of(T x, T y) { if constexpr (std::is_same_v<T, float>) return powf(x, y); else return pow(x, y); }
template <class T>
__device__ T abs_of(T x) { if constexpr (std::is_same_v<T, float>) return fabsf(x); else return fabs(x); }

// std::max / std::min exactly: the first argument wins ties and comparisons with NaN.
template <class T>
__device__ T max_of(T x, T y) { return x < y ? y : x; }
template <class T>
__device__ T min_of(T x, T y) { return y < x ? y : x; }

// scalar::unary (core/scalar_math.hpp) on the device.
template <class T>
__device__ T apply_unary(const UnaryArgs& args, T x) {
  const T a = T(args.a), b = T(args.b), zero(0), one(1), half(0.5);
  switch (args.op) {
    case Unary::Affine: return a * x + b;
    case Unary::Exp: return exp_of(x);
    case Unary::Log: return log_of(x);
    case Unary::Sqrt: return sqrt_of(x);
    case Unary::Rsqrt: return one / sqrt_of(x);
    case Unary::Abs: return abs_of(x);
    case Unary::Sign: return T((x > zero) - (x < zero));
    case Unary::Tanh: return tanh_of(x);
    case Unary::Sigmoid: {  // split by sign so exp never overflows, as scalar::sigmoid
      if (x >= zero) return one / (one + exp_of(-x));
      const T e = exp_of(x);
      return e / (one + e);
    }
    case Unary::Relu: return x > zero ? x : zero;
    case Unary::Erf: return erf_of(x);
    case Unary::GeluErf: return half * x * (one + erf_of(x * T(0.70710678118654752440)));  // sqrt(2) / 2
    case Unary::GeluTanh: {
      const T inner = T(0.79788456080286535588) * (x + T(0.044715) * x * x * x);  // sqrt(2 / pi)
      return half * x * (one + tanh_of(inner));
    }
    case Unary::Pow: return pow_of(x, a);
    case Unary::Clamp: return min_of(max_of(x, a), b);
    case Unary::InRange: return T(x >= a && x <= b);
    case Unary::Step: return T(x > zero);
  }
  return x;
}

// scalar::binary on the device.
template <class T>
__device__ T apply_binary(Binary op, T x, T y) {
  switch (op) {
    case Binary::Add: return x + y;
    case Binary::Sub: return x - y;
    case Binary::Mul: return x * y;
    case Binary::Div: return x / y;
    case Binary::Maximum: return max_of(x, y);
    case Binary::Minimum: return min_of(x, y);
    case Binary::Equal: return T(x == y);
    case Binary::Greater: return T(x > y);
    case Binary::Less: return T(x < y);
  }
  return x;
}

// One step of Reference's reduction loop. Max keeps the accumulator on a NaN (acc < NaN is
// false), so NaN is skipped exactly as std::max(acc, v) skips it there.
template <class T>
__device__ T accumulate(Reduce op, T acc, T v) { return op == Reduce::Sum ? acc + v : max_of(acc, v); }

// Combines one value per thread of the block; every thread gets the result. scratch holds
// blockDim.x values, and blockDim.x is a power of two.
template <class T>
__device__ T block_reduce(Reduce op, T value, T* scratch) {
  scratch[threadIdx.x] = value;
  __syncthreads();
  for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) scratch[threadIdx.x] = accumulate(op, scratch[threadIdx.x], scratch[threadIdx.x + half]);
    __syncthreads();
  }
  const T result = scratch[0];
  __syncthreads();  // before anyone writes scratch again
  return result;
}

template <class T>
__global__ void fill_kernel(T* dst, std::int64_t n, T value) {
  TENSORTAPE_CUDA_GRID_STRIDE(i, n) dst[i] = value;
}

template <class T>
__global__ void copy_strided_kernel(std::int64_t count, Geometry<2> g, const T* src, T* dst) {
  TENSORTAPE_CUDA_GRID_STRIDE(i, count) {
    std::int64_t o[2];
    g.offsets(i, o);
    dst[o[1]] = src[o[0]];
  }
}

// dst is contiguous in the views' row-major order, so it is indexed by position directly.
template <class T>
__global__ void unary_kernel(std::int64_t count, Geometry<1> g, UnaryArgs args, const T* src, T* dst) {
  TENSORTAPE_CUDA_GRID_STRIDE(i, count) {
    std::int64_t o[1];
    g.offsets(i, o);
    dst[i] = apply_unary(args, src[o[0]]);
  }
}

template <class T>
__global__ void binary_kernel(std::int64_t count, Geometry<2> g, Binary op, const T* a, const T* b, T* dst) {
  TENSORTAPE_CUDA_GRID_STRIDE(i, count) {
    std::int64_t o[2];
    g.offsets(i, o);
    dst[i] = apply_binary(op, a[o[0]], b[o[1]]);
  }
}

template <class T>
__global__ void where_kernel(std::int64_t count, Geometry<3> g, const T* condition, const T* a, const T* b, T* dst) {
  TENSORTAPE_CUDA_GRID_STRIDE(i, count) {
    std::int64_t o[3];
    g.offsets(i, o);
    dst[i] = condition[o[0]] != T(0) ? a[o[1]] : b[o[2]];
  }
}

// src (rows, n) -> dst (rows): one block per row, threads stride along it, then a tree.
template <class T>
__global__ void reduce_rows_kernel(Reduce op, const T* src, std::int64_t rows, std::int64_t n, T identity, T* dst) {
  __shared__ T scratch[kThreads];
  for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    T acc = identity;
    for (std::int64_t j = threadIdx.x; j < n; j += blockDim.x) acc = accumulate(op, acc, src[row * n + j]);
    acc = block_reduce(op, acc, scratch);
    if (threadIdx.x == 0) dst[row] = acc;
  }
}

// src (outer, n, inner) -> dst (outer, inner): a thread per output, walking n; neighbouring
// threads read neighbouring elements.
template <class T>
__global__ void reduce_columns_kernel(Reduce op, const T* src, std::int64_t outer, std::int64_t n, std::int64_t inner,
                                      T identity, T* dst) {
  TENSORTAPE_CUDA_GRID_STRIDE(e, outer * inner) {
    const std::int64_t o = e / inner, i = e % inner;
    T acc = identity;
    for (std::int64_t j = 0; j < n; ++j) acc = accumulate(op, acc, src[(o * n + j) * inner + i]);
    dst[e] = acc;
  }
}

// src (rows, cols) -> dst (rows, cols), one block per row; Reference's formula, in place safe
// (each element is read and written by the same thread after both reductions).
template <class T>
__global__ void softmax_kernel(const T* src, std::int64_t rows, std::int64_t cols, T* dst, bool log,
                               T negative_infinity) {
  __shared__ T scratch[kThreads];
  for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* x = src + row * cols;
    T* y = dst + row * cols;
    T max = negative_infinity;
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) max = max_of(max, x[c]);
    max = block_reduce(Reduce::Max, max, scratch);
    T total = 0;
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) total += exp_of(x[c] - max);
    total = block_reduce(Reduce::Sum, total, scratch);
    const T log_total = log_of(total);
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      y[c] = log ? x[c] - max - log_total : exp_of(x[c] - max) / total;
    }
  }
}

template <class T>
__global__ void index_select_kernel(const T* src, std::int64_t outer, std::int64_t dim, std::int64_t inner,
                                    const std::int64_t* idx, std::int64_t count, T* dst) {
  TENSORTAPE_CUDA_GRID_STRIDE(e, outer * count * inner) {
    const std::int64_t i = e % inner, j = (e / inner) % count, o = e / (inner * count);
    dst[e] = src[(o * dim + idx[j]) * inner + i];
  }
}

// Reference::adam_step, a thread per element.
template <class T>
__global__ void adam_step_kernel(AdamArgs a, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, std::int64_t n) {
  const T beta1 = T(a.beta1), beta2 = T(a.beta2), shrink = T(1.0 - a.lr * a.weight_decay), l2 = T(a.weight_decay);
  const T inverse_correction2 = T(1.0 / a.correction2_sqrt), eps = T(a.eps), step = T(-a.lr / a.correction1);
  const T one_minus_beta1 = T(1.0 - a.beta1), one_minus_beta2 = T(1.0 - a.beta2);
  TENSORTAPE_CUDA_GRID_STRIDE(i, n) {
    T g = grad[i], p = param[i];
    if (a.weight_decay != 0.0) {
      if (a.decoupled) p *= shrink;
      else g += l2 * p;
    }
    const T m = beta1 * exp_avg[i] + one_minus_beta1 * g;
    const T v = beta2 * exp_avg_sq[i] + one_minus_beta2 * (g * g);
    exp_avg[i] = m, exp_avg_sq[i] = v;
    param[i] = p + step * (m / (sqrt_of(v) * inverse_correction2 + eps));
  }
}

// Repeated indices add into the same element, so the adds are atomic; their order (and so
// the rounding of a repeated row's sum) is not fixed from run to run.
template <class T>
__global__ void index_add_kernel(const T* src, std::int64_t outer, std::int64_t count, std::int64_t inner,
                                 const std::int64_t* idx, std::int64_t dim, T* dst) {
  TENSORTAPE_CUDA_GRID_STRIDE(e, outer * count * inner) {
    const std::int64_t i = e % inner, j = (e / inner) % count, o = e / (inner * count);
    atomicAdd(dst + (o * dim + idx[j]) * inner + i, src[e]);
  }
}

template <class T>
__global__ void scale_matrix_kernel(T* c, std::int64_t m, std::int64_t n, std::int64_t ldc, T beta) {
  TENSORTAPE_CUDA_GRID_STRIDE(e, m * n) {
    T& out = c[(e / n) * ldc + e % n];
    out = beta == T(0) ? T(0) : beta * out;
  }
}

#undef TENSORTAPE_CUDA_GRID_STRIDE

// The smallest power of two in [32, kThreads] covering n: short rows get small blocks.
inline unsigned threads_for_row(std::int64_t n) {
  unsigned threads = 32;
  while (threads < kThreads && threads < n) threads *= 2;
  return threads;
}

inline unsigned blocks_for_rows(std::int64_t rows) {
  return static_cast<unsigned>(std::clamp<std::int64_t>(rows, 1, std::int64_t(1) << 20));
}

}  // namespace kernel

template <class T>
void launch_fill(T* dst, std::int64_t n, T value) {
  if (n <= 0) return;
  kernel::fill_kernel<T><<<kernel::blocks_for(n), kernel::kThreads, 0, kernel::stream()>>>(dst, n, value);
  kernel::check_launch("fill_kernel", "n=", n);
}

template <class T>
void launch_copy_strided(ConstView<T> src, StridedView<T> dst) {
  const std::int64_t count = numel_of(src.shape);
  if (count == 0) return;
  const auto g = kernel::merged_geometry<2>(src.shape, {&src.strides, &dst.strides}, "copy_strided");
  kernel::copy_strided_kernel<T><<<kernel::blocks_for(count), kernel::kThreads, 0, kernel::stream()>>>(
      count, g, src.data, dst.data);
  kernel::check_launch("copy_strided_kernel", "shape=", src.shape, ", src strides=", src.strides,
                       ", dst strides=", dst.strides);
}

template <class T>
void launch_unary(UnaryArgs args, ConstView<T> src, T* dst) {
  const std::int64_t count = numel_of(src.shape);
  if (count == 0) return;
  const auto g = kernel::merged_geometry<1>(src.shape, {&src.strides}, "unary");
  kernel::unary_kernel<T><<<kernel::blocks_for(count), kernel::kThreads, 0, kernel::stream()>>>(count, g, args,
                                                                                                  src.data, dst);
  kernel::check_launch("unary_kernel", "op=", int(args.op), ", shape=", src.shape, ", strides=", src.strides);
}

template <class T>
void launch_binary(Binary op, ConstView<T> a, ConstView<T> b, T* dst) {
  const std::int64_t count = numel_of(a.shape);
  if (count == 0) return;
  const auto g = kernel::merged_geometry<2>(a.shape, {&a.strides, &b.strides}, "binary");
  kernel::binary_kernel<T><<<kernel::blocks_for(count), kernel::kThreads, 0, kernel::stream()>>>(count, g, op, a.data,
                                                                                                   b.data, dst);
  kernel::check_launch("binary_kernel", "op=", int(op), ", shape=", a.shape, ", strides a=", a.strides,
                       ", b=", b.strides);
}

template <class T>
void launch_where(ConstView<T> condition, ConstView<T> a, ConstView<T> b, T* dst) {
  const std::int64_t count = numel_of(a.shape);
  if (count == 0) return;
  const auto g = kernel::merged_geometry<3>(a.shape, {&condition.strides, &a.strides, &b.strides}, "where");
  kernel::where_kernel<T><<<kernel::blocks_for(count), kernel::kThreads, 0, kernel::stream()>>>(
      count, g, condition.data, a.data, b.data, dst);
  kernel::check_launch("where_kernel", "shape=", a.shape);
}

template <class T>
void launch_reduce(Reduce op, const T* src, std::int64_t outer, std::int64_t n, std::int64_t inner, T* dst) {
  if (outer * inner == 0) return;
  const T identity = op == Reduce::Sum ? T(0) : -std::numeric_limits<T>::infinity();
  if (inner == 1) {
    kernel::reduce_rows_kernel<T><<<kernel::blocks_for_rows(outer), kernel::threads_for_row(n), 0, kernel::stream()>>>(
        op, src, outer, n, identity, dst);
  } else {
    kernel::reduce_columns_kernel<T><<<kernel::blocks_for(outer * inner), kernel::kThreads, 0, kernel::stream()>>>(
        op, src, outer, n, inner, identity, dst);
  }
  kernel::check_launch("reduce", "op=", int(op), ", (outer, n, inner)=", Shape{outer, n, inner});
}

template <class T>
void launch_softmax(const T* src, std::int64_t rows, std::int64_t cols, T* dst, bool log) {
  if (rows == 0 || cols == 0) return;
  kernel::softmax_kernel<T><<<kernel::blocks_for_rows(rows), kernel::threads_for_row(cols), 0, kernel::stream()>>>(
      src, rows, cols, dst, log, -std::numeric_limits<T>::infinity());
  kernel::check_launch("softmax_kernel", "(rows, cols)=", Shape{rows, cols}, ", log=", log);
}

template <class T>
void launch_index_select(const T* src, std::int64_t outer, std::int64_t dim, std::int64_t inner,
                         const std::int64_t* idx, std::int64_t count, T* dst) {
  const std::int64_t total = outer * count * inner;
  if (total == 0) return;
  kernel::index_select_kernel<T><<<kernel::blocks_for(total), kernel::kThreads, 0, kernel::stream()>>>(
      src, outer, dim, inner, idx, count, dst);
  kernel::check_launch("index_select_kernel", "(outer, dim, inner)=", Shape{outer, dim, inner}, ", count=", count);
}

template <class T>
void launch_index_add(const T* src, std::int64_t outer, std::int64_t count, std::int64_t inner,
                      const std::int64_t* idx, std::int64_t dim, T* dst) {
  const std::int64_t total = outer * count * inner;
  if (total == 0) return;
  kernel::index_add_kernel<T><<<kernel::blocks_for(total), kernel::kThreads, 0, kernel::stream()>>>(
      src, outer, count, inner, idx, dim, dst);
  kernel::check_launch("index_add_kernel", "(outer, count, inner)=", Shape{outer, count, inner}, ", dim=", dim);
}

template <class T>
void launch_adam_step(const AdamArgs& args, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, std::int64_t n) {
  if (n <= 0) return;
  kernel::adam_step_kernel<T><<<kernel::blocks_for(n), kernel::kThreads, 0, kernel::stream()>>>(args, param, grad, exp_avg,
                                                                                                 exp_avg_sq, n);
  kernel::check_launch("adam_step_kernel", "n=", n, ", lr=", args.lr);
}

template <class T>
void launch_scale_matrix(T* c, std::int64_t m, std::int64_t n, std::int64_t ldc, double beta) {
  if (m * n == 0) return;
  kernel::scale_matrix_kernel<T><<<kernel::blocks_for(m * n), kernel::kThreads, 0, kernel::stream()>>>(c, m, n, ldc,
                                                                                                        T(beta));
  kernel::check_launch("scale_matrix_kernel", "(m, n)=", Shape{m, n}, ", ldc=", ldc, ", beta=", beta);
}

}  // namespace tensortape::backend::cuda
