// backend::Reference — every primitive as a plain loop. It is the oracle the other backends
// are tested against (llm.c keeps matmul_forward_naive beside the fast one for the same
// reason), so keep it obvious rather than fast.
//
//   using Ref = tt::backend::Reference;
//   auto x = tt::randn<double, Ref>({3, 4}, rng);
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>

#include "tensortape/backend/concept.hpp"
#include "tensortape/backend/cpu_common.hpp"
#include "tensortape/core/scalar_math.hpp"

namespace tensortape::backend {

struct Reference {
  static constexpr const char* name = "Reference";

  template <class T>
  static T* allocate(std::int64_t n) { return cpu::allocate<T>(n); }
  template <class T>
  static void deallocate(T* p, std::int64_t n) { cpu::deallocate(p, n); }
  // The host storage's caching allocator (cpu_allocator.hpp), shared by every CPU backend; the
  // same calls as backend::Cuda's.
  static cpu::HostAllocatorStats memory_stats() { return cpu::CachingAllocator::instance().stats(); }
  static void reset_peak_memory_stats() { cpu::CachingAllocator::instance().reset_peaks(); }
  static void release_cached_memory() { cpu::CachingAllocator::instance().release_cached(); }
  template <class T>
  static void copy_to_host(const T* src, std::int64_t n, T* host) { cpu::copy(src, n, host); }
  template <class T>
  static void copy_from_host(const T* host, std::int64_t n, T* dst) { cpu::copy(host, n, dst); }

  template <class T>
  static void copy_strided(ConstView<T> src, StridedView<T> dst) {
    cpu::for_each_offset<2>(src.shape, {&src.strides, &dst.strides},
                            [&](const auto& o) { dst.data[o[1]] = src.data[o[0]]; });
  }

  template <class T>
  static void fill(T* dst, std::int64_t n, T value) {
    for (std::int64_t i = 0; i < n; ++i) dst[i] = value;
  }

  template <class T>
  static void unary(UnaryArgs args, ConstView<T> src, T* dst) {
    std::int64_t i = 0;
    cpu::for_each_offset<1>(src.shape, {&src.strides},
                            [&](const auto& o) { dst[i++] = scalar::unary(args, src.data[o[0]]); });
  }

  template <class T>
  static void binary(Binary op, ConstView<T> a, ConstView<T> b, T* dst) {
    std::int64_t i = 0;
    cpu::for_each_offset<2>(a.shape, {&a.strides, &b.strides}, [&](const auto& o) {
      dst[i++] = scalar::binary(op, a.data[o[0]], b.data[o[1]]);
    });
  }

  template <class T>
  static void where(ConstView<T> condition, ConstView<T> a, ConstView<T> b, T* dst) {
    std::int64_t i = 0;
    cpu::for_each_offset<3>(a.shape, {&condition.strides, &a.strides, &b.strides}, [&](const auto& o) {
      dst[i++] = condition.data[o[0]] != T(0) ? a.data[o[1]] : b.data[o[2]];
    });
  }

  // src (outer, n, inner) -> dst (outer, inner)
  template <class T>
  static void reduce(Reduce op, const T* src, std::int64_t outer, std::int64_t n, std::int64_t inner, T* dst) {
    for (std::int64_t o = 0; o < outer; ++o) {
      for (std::int64_t i = 0; i < inner; ++i) {
        T acc = op == Reduce::Sum ? T(0) : -std::numeric_limits<T>::infinity();
        for (std::int64_t j = 0; j < n; ++j) {
          const T v = src[(o * n + j) * inner + i];
          acc = op == Reduce::Sum ? acc + v : std::max(acc, v);
        }
        dst[o * inner + i] = acc;
      }
    }
  }

  // Row-wise softmax (or log-softmax) of src (rows, cols), max-subtracted for stability.
  template <class T>
  static void softmax(const T* src, std::int64_t rows, std::int64_t cols, T* dst, bool log) {
    for (std::int64_t r = 0; r < rows; ++r) {
      const T* x = src + r * cols;
      T* y = dst + r * cols;
      T max = -std::numeric_limits<T>::infinity();
      for (std::int64_t c = 0; c < cols; ++c) max = std::max(max, x[c]);
      T total = 0;
      for (std::int64_t c = 0; c < cols; ++c) total += std::exp(x[c] - max);
      const T log_total = std::log(total);
      for (std::int64_t c = 0; c < cols; ++c) y[c] = log ? x[c] - max - log_total : std::exp(x[c] - max) / total;
    }
  }

  template <class T>
  static void gemm(const GemmArgs& g, const T* a, const T* b, T* c) {
    for (std::int64_t batch = 0; batch < g.batch; ++batch) {
      const T* A = a + batch * g.stride_a;
      const T* B = b + batch * g.stride_b;
      T* C = c + batch * g.stride_c;
      for (std::int64_t i = 0; i < g.m; ++i) {
        for (std::int64_t j = 0; j < g.n; ++j) {
          T acc = 0;
          for (std::int64_t p = 0; p < g.k; ++p) {
            const T av = g.trans_a ? A[p * g.lda + i] : A[i * g.lda + p];
            const T bv = g.trans_b ? B[j * g.ldb + p] : B[p * g.ldb + j];
            acc += av * bv;
          }
          T& out = C[i * g.ldc + j];
          out = T(g.alpha) * acc + (g.beta == 0.0 ? T(0) : T(g.beta) * out);
        }
      }
    }
  }

  // src (outer, dim, inner), idx (count) -> dst (outer, count, inner)
  template <class T>
  static void index_select(const T* src, std::int64_t outer, std::int64_t dim, std::int64_t inner,
                           const std::int64_t* idx, std::int64_t count, T* dst) {
    for (std::int64_t o = 0; o < outer; ++o)
      for (std::int64_t j = 0; j < count; ++j)
        for (std::int64_t i = 0; i < inner; ++i)
          dst[(o * count + j) * inner + i] = src[(o * dim + idx[j]) * inner + i];
  }

  // The fused optimizer update (AdamArgs in kinds.hpp), element by element in T.
  template <class T>
  static void adam_step(const AdamArgs& a, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, std::int64_t n) {
    const T beta1 = T(a.beta1), beta2 = T(a.beta2), shrink = T(1.0 - a.lr * a.weight_decay), l2 = T(a.weight_decay);
    const T inverse_correction2 = T(1.0 / a.correction2_sqrt), eps = T(a.eps), step = T(-a.lr / a.correction1);
    const T one_minus_beta1 = T(1.0 - a.beta1), one_minus_beta2 = T(1.0 - a.beta2);
    for (std::int64_t i = 0; i < n; ++i) {
      T g = grad[i];
      if (a.weight_decay != 0.0) {
        if (a.decoupled) param[i] *= shrink;
        else g += l2 * param[i];
      }
      exp_avg[i] = beta1 * exp_avg[i] + one_minus_beta1 * g;
      exp_avg_sq[i] = beta2 * exp_avg_sq[i] + one_minus_beta2 * (g * g);
      param[i] += step * (exp_avg[i] / (std::sqrt(exp_avg_sq[i]) * inverse_correction2 + eps));
    }
  }

  // dst (outer, dim, inner) += scatter of src (outer, count, inner) at rows idx (count)
  template <class T>
  static void index_add(const T* src, std::int64_t outer, std::int64_t count, std::int64_t inner,
                        const std::int64_t* idx, std::int64_t dim, T* dst) {
    for (std::int64_t o = 0; o < outer; ++o)
      for (std::int64_t j = 0; j < count; ++j)
        for (std::int64_t i = 0; i < inner; ++i)
          dst[(o * dim + idx[j]) * inner + i] += src[(o * count + j) * inner + i];
  }
};

static_assert(Backend<Reference>);

}  // namespace tensortape::backend
