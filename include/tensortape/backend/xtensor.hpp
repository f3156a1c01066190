// backend::Xtensor — a CPU backend on xtensor and xtensor-blas, kept beside backend::Eigen to
// compare libraries. Kernels are xtensor expressions over xt::adapt views of raw storage;
// GEMM is xt::blas::gemm per matrix, because xtensor-blas's N-d products fall back to one dot
// per output element. Elementwise kernels split over OpenMP threads like backend::Eigen's;
// strided copies go by rows (cpu::copy_rows), the other memory primitives are Reference's.
// Needs xtensor and xtensor-blas: the CMake target defines TENSORTAPE_HAS_XTENSOR=1 when it
// found them. xtensor-blas declares the CBLAS interface itself, so a file including this
// header must not also include <cblas.h>.
//
//   #if defined(TENSORTAPE_HAS_XTENSOR)
//   using Cpu = tt::backend::Xtensor;
//   Cpu::gemm<float>({.m = 64, .n = 10, .k = 256, .lda = 256, .ldb = 10, .ldc = 10}, a, b, c);
//   #endif
#pragma once

#include <xtensor-blas/xblas.hpp>
#include <xtensor/xadapt.hpp>
#include <xtensor/xbroadcast.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xoperation.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numbers>

#include "tensortape/backend/compiled_kernels.hpp"
#include "tensortape/backend/cpu_rows.hpp"
#include "tensortape/backend/reference.hpp"

namespace tensortape::backend {

struct Xtensor : Reference {
  static constexpr const char* name = "Xtensor";
  static constexpr bool runs_on_cpu_team = true;  // backend::runs_on_cpu_team

  template <class T>
  static void copy_strided(ConstView<T> src, StridedView<T> dst);

  template <class T>
  static void unary(UnaryArgs args, ConstView<T> src, T* dst);

  // Fast for same-shape contiguous inputs, a scalar on either side, and row or column
  // broadcasts (bias (N) against (M, N)): all collapse to rows of stride 0 or 1.
  template <class T>
  static void binary(Binary op, ConstView<T> a, ConstView<T> b, T* dst);

  template <class T>
  static void where(ConstView<T> condition, ConstView<T> a, ConstView<T> b, T* dst);

  // src (outer, n, inner) -> dst (outer, inner)
  template <class T>
  static void reduce(Reduce op, const T* src, std::int64_t outer, std::int64_t n, std::int64_t inner, T* dst);

  // Row-wise softmax (or log-softmax) of src (rows, cols), max-subtracted for stability.
  template <class T>
  static void softmax(const T* src, std::int64_t rows, std::int64_t cols, T* dst, bool log);

  template <class T>
  static void gemm(const GemmArgs& g, const T* a, const T* b, T* c);

  // src (outer, dim, inner), idx (count) -> dst (outer, count, inner)
  template <class T>
  static void index_select(const T* src, std::int64_t outer, std::int64_t dim, std::int64_t inner,
                           const std::int64_t* idx, std::int64_t count, T* dst);

  // dst (outer, dim, inner) += scatter of src (outer, count, inner) at rows idx (count)
  template <class T>
  static void index_add(const T* src, std::int64_t outer, std::int64_t count, std::int64_t inner,
                        const std::int64_t* idx, std::int64_t dim, T* dst);

 private:
  // Below this, a per-row adaptor and op dispatch cost more than the plain strided loop.
  static constexpr std::int64_t kMinRowLength = 16;

  template <std::size_t N>
  static bool row_kernels_pay(const cpu::Rows<N>& rows) {
    return rows.unit_or_broadcast() && rows.length >= kMinRowLength;
  }

  // A 1-d view of `length` contiguous elements (const T gives a read-only one).
  template <class T>
  static auto row(T* start, std::int64_t length) {
    return xt::adapt(start, static_cast<std::size_t>(length), xt::no_ownership());
  }

  // A packed row-major (rows, cols) view; its static layout is what xt::blas::gemm requires.
  template <class T>
  static auto matrix(T* start, std::int64_t rows, std::int64_t cols) {
    const std::array<std::size_t, 2> shape{static_cast<std::size_t>(rows), static_cast<std::size_t>(cols)};
    return xt::adapt(start, static_cast<std::size_t>(rows * cols), xt::no_ownership(), shape);
  }

  // Reference's max: std::max from -inf. xt::amax starts from lowest() (and an initial() option
  // is only merged in afterwards), so an all -inf column would come out finite.
  template <class T>
  static auto max_from_minus_infinity() {
    return xt::make_xreducer_functor([](T acc, T v) { return std::max(acc, v); },
                                     xt::const_value<T>(-std::numeric_limits<T>::infinity()));
  }

  // A single row is packed whatever its leading dimension says.
  static bool is_packed(std::int64_t ld, std::int64_t rows, std::int64_t cols) { return rows <= 1 || ld == cols; }

  // BLAS rejects a leading dimension below the row length even for a single row.
  static std::int64_t leading_stride(std::int64_t ld, std::int64_t rows, std::int64_t cols) {
    return rows <= 1 ? std::max<std::int64_t>({ld, cols, 1}) : ld;
  }

  // Hands f one row of an operand as an xtensor expression: an adaptor over a contiguous run,
  // or a broadcast scalar when the operand does not move along the row (step 0).
  template <class T, class F>
  static void with_row(const T* start, std::int64_t step, std::int64_t length, F&& f) {
    if (step == 1) f(row(start, length));
    else f(xt::broadcast(*start, std::array<std::size_t, 1>{static_cast<std::size_t>(length)}));
  }

  // Must match scalar::unary; comparisons are written as where() so NaN behaves the same.
  template <class T, class X, class Out>
  static void unary_row(const UnaryArgs& args, const X& x, Out& out) {
    const T a = T(args.a), b = T(args.b), zero(0), half(0.5), one(1);
    switch (args.op) {
      case Unary::Affine: out = a * x + b; break;
      case Unary::Exp: out = xt::exp(x); break;
      case Unary::Log: out = xt::log(x); break;
      case Unary::Sqrt: out = xt::sqrt(x); break;
      case Unary::Rsqrt: out = one / xt::sqrt(x); break;
      case Unary::Abs: out = xt::abs(x); break;
      case Unary::Sign: out = xt::cast<T>(x > zero) - xt::cast<T>(x < zero); break;
      case Unary::Tanh: out = xt::tanh(x); break;
      case Unary::Sigmoid: out = one / (one + xt::exp(-x)); break;
      case Unary::Relu: out = xt::where(x > zero, x, zero); break;
      case Unary::Erf: out = xt::erf(x); break;
      case Unary::GeluErf: out = half * x * (one + xt::erf(x * T(std::numbers::sqrt2 / 2))); break;
      case Unary::GeluTanh: {
        const T scale = T(std::sqrt(2.0 / std::numbers::pi));
        out = half * x * (one + xt::tanh(scale * (x + T(0.044715) * x * x * x)));
        break;
      }
      case Unary::Pow: out = xt::pow(x, a); break;
      case Unary::Clamp: {
        const auto at_least_a = xt::where(x < a, a, x);
        out = xt::where(at_least_a > b, b, at_least_a);
        break;
      }
      case Unary::InRange: out = xt::cast<T>(x >= a && x <= b); break;
      case Unary::Step: out = xt::cast<T>(x > zero); break;
    }
  }

  template <class T, class X, class Y, class Out>
  static void binary_row(Binary op, const X& x, const Y& y, Out& out) {
    switch (op) {
      case Binary::Add: out = x + y; break;
      case Binary::Sub: out = x - y; break;
      case Binary::Mul: out = x * y; break;
      case Binary::Div: out = x / y; break;
      case Binary::Maximum: out = xt::where(x < y, y, x); break;  // std::max(x, y)
      case Binary::Minimum: out = xt::where(y < x, y, x); break;  // std::min(x, y)
      case Binary::Equal: out = xt::cast<T>(xt::equal(x, y)); break;
      case Binary::Greater: out = xt::cast<T>(x > y); break;
      case Binary::Less: out = xt::cast<T>(x < y); break;
    }
  }
};

template <class T>
void Xtensor::copy_strided(ConstView<T> src, StridedView<T> dst) {
  cpu::copy_rows(src, dst);
}

template <class T>
void Xtensor::unary(UnaryArgs args, ConstView<T> src, T* dst) {
  const std::int64_t count = numel_of(src.shape);
  if (count == 0) return;
  const Shape dst_strides = contiguous_strides(src.shape);
  const auto rows = cpu::split_rows<2>(src.shape, {&dst_strides, &src.strides});
  if (!row_kernels_pay(rows)) {
    // Gather into dst first, then one pass over it in place.
    copy_strided(src, StridedView<T>{dst, src.shape, dst_strides});
    cpu::parallel_aligned_ranges(dst, count, [&](std::int64_t begin, std::int64_t end) {
      auto part = row(dst + begin, end - begin);
      unary_row<T>(args, row(static_cast<const T*>(dst + begin), end - begin), part);
    });
    return;
  }
  cpu::for_each_row(rows, dst, [&](const auto& offset, std::int64_t length) {
    auto out = row(dst + offset[0], length);
    with_row(src.data + offset[1], rows.step[1], length, [&](const auto& x) { unary_row<T>(args, x, out); });
  });
}

template <class T>
void Xtensor::binary(Binary op, ConstView<T> a, ConstView<T> b, T* dst) {
  if (numel_of(a.shape) == 0) return;
  const Shape dst_strides = contiguous_strides(a.shape);
  const auto rows = cpu::split_rows<3>(a.shape, {&dst_strides, &a.strides, &b.strides});
  if (!row_kernels_pay(rows)) return cpu::binary_rows_scalar(op, rows, a.data, b.data, dst);
  cpu::for_each_row(rows, dst, [&](const auto& offset, std::int64_t length) {
    auto out = row(dst + offset[0], length);
    with_row(a.data + offset[1], rows.step[1], length, [&](const auto& x) {
      with_row(b.data + offset[2], rows.step[2], length, [&](const auto& y) { binary_row<T>(op, x, y, out); });
    });
  });
}

template <class T>
void Xtensor::where(ConstView<T> condition, ConstView<T> a, ConstView<T> b, T* dst) {
  if (numel_of(a.shape) == 0) return;
  const Shape dst_strides = contiguous_strides(a.shape);
  const auto rows = cpu::split_rows<4>(a.shape, {&dst_strides, &condition.strides, &a.strides, &b.strides});
  if (!row_kernels_pay(rows)) return Reference::where(condition, a, b, dst);
  cpu::for_each_row(rows, dst, [&](const auto& offset, std::int64_t length) {
    auto out = row(dst + offset[0], length);
    with_row(condition.data + offset[1], rows.step[1], length, [&](const auto& c) {
      with_row(a.data + offset[2], rows.step[2], length, [&](const auto& x) {
        with_row(b.data + offset[3], rows.step[3], length,
                 [&](const auto& y) { out = xt::where(xt::not_equal(c, T(0)), x, y); });
      });
    });
  });
}

template <class T>
void Xtensor::reduce(Reduce op, const T* src, std::int64_t outer, std::int64_t n, std::int64_t inner, T* dst) {
  const T identity = op == Reduce::Sum ? T(0) : -std::numeric_limits<T>::infinity();
  if (n == 0) return Reference::fill(dst, outer * inner, identity);
  if (outer * inner == 0) return;
  const auto u = [](std::int64_t v) { return static_cast<std::size_t>(v); };
  auto in = xt::adapt(src, u(outer * n * inner), xt::no_ownership(), std::array<std::size_t, 3>{u(outer), u(n), u(inner)});
  auto out = xt::adapt(dst, u(outer * inner), xt::no_ownership(), std::array<std::size_t, 2>{u(outer), u(inner)});
  if (op == Reduce::Sum) {
    out = xt::sum(in, {1}, xt::evaluation_strategy::immediate);
  } else {
    out = xt::reduce(max_from_minus_infinity<T>(), in, {1}, xt::evaluation_strategy::immediate);
  }
}

template <class T>
void Xtensor::softmax(const T* src, std::int64_t rows, std::int64_t cols, T* dst, bool log) {
  if (cols == 0) return;
  for (std::int64_t r = 0; r < rows; ++r) {
    auto x = row(src + r * cols, cols);
    auto y = row(dst + r * cols, cols);
    const T max = xt::reduce(max_from_minus_infinity<T>(), x, xt::evaluation_strategy::immediate)();
    if (log) {
      const T log_total = std::log(xt::sum(xt::exp(x - max), xt::evaluation_strategy::immediate)());
      y = (x - max) - log_total;
    } else {
      y = xt::exp(x - max);
      const T total = xt::sum(y, xt::evaluation_strategy::immediate)();
      y /= total;
    }
  }
}

template <class T>
void Xtensor::gemm(const GemmArgs& g, const T* a, const T* b, T* c) {
  if (g.m <= 0 || g.n <= 0) return;
  const T alpha = T(g.alpha), beta = T(g.beta);
  const std::int64_t a_rows = g.trans_a ? g.k : g.m, a_cols = g.trans_a ? g.m : g.k;  // as stored
  const std::int64_t b_rows = g.trans_b ? g.n : g.k, b_cols = g.trans_b ? g.k : g.n;
  // xt::blas::gemm reads leading dimensions from the adaptors, so it only expresses packed
  // rows; a padded one (a narrowed view) goes to xtensor-blas's cxxblas layer directly.
  const bool packed = g.k > 0 && is_packed(g.lda, a_rows, a_cols) && is_packed(g.ldb, b_rows, b_cols) &&
                      is_packed(g.ldc, g.m, g.n);
  cpu::for_each_product(g, [&](std::int64_t i) {
    const T* A = a + i * g.stride_a;
    const T* B = b + i * g.stride_b;
    T* C = c + i * g.stride_c;
    if (g.k == 0) {  // an empty sum: C = beta * C, and never read C when beta == 0
      for (std::int64_t r = 0; r < g.m; ++r) {
        auto c_row = row(C + r * g.ldc, g.n);
        if (beta == T(0)) c_row.fill(T(0)); else c_row *= beta;
      }
    } else if (packed) {
      auto a_matrix = matrix(A, a_rows, a_cols);
      auto b_matrix = matrix(B, b_rows, b_cols);
      auto c_matrix = matrix(C, g.m, g.n);
      xt::blas::gemm(a_matrix, b_matrix, c_matrix, g.trans_a, g.trans_b, alpha, beta);
    } else {
      const auto op = [](bool trans) { return trans ? cxxblas::Trans : cxxblas::NoTrans; };
      const auto idx = [](std::int64_t v) { return static_cast<xt::blas_index_t>(v); };
      cxxblas::gemm<xt::blas_index_t>(cxxblas::RowMajor, op(g.trans_a), op(g.trans_b), idx(g.m), idx(g.n), idx(g.k),
                                      alpha, A, idx(leading_stride(g.lda, a_rows, a_cols)),
                                      B, idx(leading_stride(g.ldb, b_rows, b_cols)),
                                      beta, C, idx(leading_stride(g.ldc, g.m, g.n)));
    }
  });
}

template <class T>
void Xtensor::index_select(const T* src, std::int64_t outer, std::int64_t dim, std::int64_t inner,
                         const std::int64_t* idx, std::int64_t count, T* dst) {
  for (std::int64_t o = 0; o < outer; ++o) {
    for (std::int64_t j = 0; j < count; ++j) {
      auto out = row(dst + (o * count + j) * inner, inner);
      out = row(src + (o * dim + idx[j]) * inner, inner);
    }
  }
}

template <class T>
void Xtensor::index_add(const T* src, std::int64_t outer, std::int64_t count, std::int64_t inner,
                      const std::int64_t* idx, std::int64_t dim, T* dst) {
  for (std::int64_t o = 0; o < outer; ++o) {
    for (std::int64_t j = 0; j < count; ++j) {
      auto out = row(dst + (o * dim + idx[j]) * inner, inner);
      out += row(src + (o * count + j) * inner, inner);
    }
  }
}

static_assert(Backend<Xtensor>);

// The kernels' explicit instantiations (compiled_kernels.hpp): declared where the build links
// tensortape::kernels, defined once in cmake/cpu_kernels_xtensor.cpp.
#if defined(TENSORTAPE_COMPILED_KERNELS)
TENSORTAPE_CPU_KERNELS(extern, Xtensor, float)
TENSORTAPE_CPU_KERNELS(extern, Xtensor, double)
#endif

}  // namespace tensortape::backend
