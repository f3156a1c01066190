// backend::Eigen — the default CPU backend. Elementwise kernels, reductions, softmax and
// gather/scatter are Eigen array expressions over Eigen::Map (vectorised), split over OpenMP
// threads when built with them (cpu_parallel.hpp). GEMM goes to BLAS (OpenBLAS) per matrix when
// EIGEN_USE_BLAS is defined, as the tensortape CMake target does; without it, to Eigen's own
// product (correct, ~0.4-0.75x as fast). With TENSORTAPE_HAS_ONEDNN (the CMake target defines it
// where oneDNN is found) float products of at least 2^20 multiply-adds go to oneDNN's sgemm
// instead; smaller ones and double ones still to BLAS.
// Strided copies go by rows (cpu::copy_rows); the other memory primitives are Reference's.
//
//   using Cpu = tt::backend::Eigen;
//   float* c = Cpu::allocate<float>(64 * 10);                             // (64, 10)
//   Cpu::gemm<float>({.m = 64, .n = 10, .k = 256, .lda = 256, .ldb = 10, .ldc = 10}, a, b, c);
//   Cpu::softmax<float>(c, 64, 10, c, /*log=*/false);                     // row-wise, in place
#pragma once

#include <Eigen/Core>
#include <unsupported/Eigen/SpecialFunctions>  // Array::erf()

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <type_traits>

#if defined(TENSORTAPE_HAS_ONEDNN)
#include <dnnl.h>
#include <stdexcept>
#include <string>
#endif

#include "tensortape/backend/compiled_kernels.hpp"
#include "tensortape/backend/cpu_rows.hpp"
#include "tensortape/backend/reference.hpp"

namespace tensortape::backend {

struct Eigen : Reference {
  static constexpr const char* name = "Eigen";
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

  template <class T>
  static void adam_step(const AdamArgs& a, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, std::int64_t n);

 private:
  template <class T>
  using ArrayX = ::Eigen::Array<T, ::Eigen::Dynamic, 1>;
  template <class T>
  using RowMap = ::Eigen::Map<ArrayX<T>>;
  template <class T>
  using ConstRowMap = ::Eigen::Map<const ArrayX<T>>;
  template <class T>
  using RowMajorMatrix = ::Eigen::Matrix<T, ::Eigen::Dynamic, ::Eigen::Dynamic, ::Eigen::RowMajor>;
  template <class T>
  using MatrixMap = ::Eigen::Map<RowMajorMatrix<T>, 0, ::Eigen::OuterStride<>>;
  template <class T>
  using ConstMatrixMap = ::Eigen::Map<const RowMajorMatrix<T>, 0, ::Eigen::OuterStride<>>;

  // Below this, a per-row Map and op dispatch cost more than the plain strided loop.
  static constexpr std::int64_t kMinRowLength = 16;

  template <std::size_t N>
  static bool row_kernels_pay(const cpu::Rows<N>& rows) {
    return rows.unit_or_broadcast() && rows.length >= kMinRowLength;
  }

#if defined(TENSORTAPE_HAS_ONEDNN)
  static constexpr std::int64_t kOneDnnMinMacs = std::int64_t{1} << 20;
#endif

  // BLAS rejects a leading dimension below the row length even for a single row, where it is
  // never used to step; GemmArgs may legitimately carry any value there.
  static std::int64_t leading_stride(std::int64_t ld, std::int64_t rows, std::int64_t cols) {
    return rows <= 1 ? std::max<std::int64_t>({ld, cols, 1}) : ld;
  }

#if defined(EIGEN_USE_BLAS) && !defined(EIGEN_USE_MKL)
  // One matrix through the Fortran BLAS entry point that Eigen declares under EIGEN_USE_BLAS:
  // the call Eigen's product would make, minus the C.setZero() pass and blocking setup Eigen
  // puts around it, which cost ~15% on attention-sized batches (256 x 8x64x16).
  template <class T>
  static void gemm_one(const GemmArgs& g, const T* a, const T* b, T* c) {
    // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands, keep
    // each one's transpose flag.
    const char trans_a = g.trans_a ? 'T' : 'N', trans_b = g.trans_b ? 'T' : 'N';
    const int m = int(g.n), n = int(g.m), k = int(g.k);
    const int lda = int(leading_stride(g.lda, g.trans_a ? g.k : g.m, g.trans_a ? g.m : g.k));
    const int ldb = int(leading_stride(g.ldb, g.trans_b ? g.n : g.k, g.trans_b ? g.k : g.n));
    const int ldc = int(leading_stride(g.ldc, g.m, g.n));
    const T alpha = T(g.alpha), beta = T(g.beta);  // BLAS never reads C when beta == 0
    if constexpr (std::is_same_v<T, float>) {
#if defined(TENSORTAPE_HAS_ONEDNN)
      // A product under kOneDnnMinMacs multiply-adds (attention's per-head ones) stays with BLAS:
      // there oneDNN's cost per call outweighs its faster kernels (docs/benchmarks.md).
      if (g.m * g.n * g.k >= kOneDnnMinMacs) {  // row-major, as GemmArgs: no operand swap
        const auto status = dnnl_sgemm(trans_a, trans_b, g.m, g.n, g.k, alpha, a, lda, b, ldb, beta, c, ldc);
        if (status != dnnl_success)
          throw std::runtime_error("tensortape: oneDNN's sgemm refused a product (status " + std::to_string(int(status)) + ")");
        return;
      }
#endif
      sgemm_(&trans_b, &trans_a, &m, &n, &k, &alpha, b, &ldb, a, &lda, &beta, c, &ldc);
    } else {
      dgemm_(&trans_b, &trans_a, &m, &n, &k, &alpha, b, &ldb, a, &lda, &beta, c, &ldc);
    }
  }
#else
  // Without BLAS: Eigen's own product kernel on Maps.
  template <class T>
  static void gemm_one(const GemmArgs& g, const T* a, const T* b, T* c) {
    const T alpha = T(g.alpha), beta = T(g.beta);
    const std::int64_t a_rows = g.trans_a ? g.k : g.m, a_cols = g.trans_a ? g.m : g.k;  // as stored
    const std::int64_t b_rows = g.trans_b ? g.n : g.k, b_cols = g.trans_b ? g.k : g.n;
    MatrixMap<T> C(c, g.m, g.n, ::Eigen::OuterStride<>(g.ldc));
    ConstMatrixMap<T> A(a, a_rows, a_cols, ::Eigen::OuterStride<>(leading_stride(g.lda, a_rows, a_cols)));
    ConstMatrixMap<T> B(b, b_rows, b_cols, ::Eigen::OuterStride<>(leading_stride(g.ldb, b_rows, b_cols)));
    const auto accumulate = [&](const auto& op_a, const auto& op_b) {
      if (beta == T(0)) {
        C.noalias() = alpha * op_a * op_b;  // overwrites: garbage (even NaN) in C is never read
      } else {
        if (beta != T(1)) C *= beta;
        C.noalias() += alpha * op_a * op_b;
      }
    };
    if (!g.trans_a && !g.trans_b) accumulate(A, B);
    else if (g.trans_a && !g.trans_b) accumulate(A.transpose(), B);
    else if (!g.trans_a) accumulate(A, B.transpose());
    else accumulate(A.transpose(), B.transpose());
  }
#endif

  // Hands f one row of an operand as an Eigen expression: a Map over a contiguous run, or a
  // constant when the operand is broadcast along the row (step 0).
  template <class T, class F>
  static void with_row(const T* start, std::int64_t step, std::int64_t length, F&& f) {
    if (step == 1) f(ConstRowMap<T>(start, length));
    else f(ArrayX<T>::Constant(length, *start));
  }

  // 1 where the comparison holds, else 0. A select() over constants vectorises; casting the
  // comparison's bools to T runs element by element.
  template <class T, class Condition>
  static auto indicator(const Condition& condition) {
    return condition.select(ArrayX<T>::Constant(condition.size(), T(1)), ArrayX<T>::Zero(condition.size()));
  }

  // Must match scalar::unary; comparisons are written as select() so NaN behaves the same.
  template <class T, class X>
  static void unary_row(const UnaryArgs& args, const X& x, RowMap<T> out) {
    const T a = T(args.a), b = T(args.b), zero(0), half(0.5), one(1);
    switch (args.op) {
      case Unary::Affine: out = a * x + b; break;
      case Unary::Exp: out = x.exp(); break;
      case Unary::Log: out = x.log(); break;
      case Unary::Sqrt: out = x.sqrt(); break;
      case Unary::Rsqrt: out = one / x.sqrt(); break;
      case Unary::Abs: out = x.abs(); break;
      case Unary::Sign: out = indicator<T>(x > zero) - indicator<T>(x < zero); break;
      case Unary::Tanh: out = x.tanh(); break;
      // Not Eigen's logistic(): for float it is a fit accurate only in absolute terms in the tails.
      case Unary::Sigmoid: out = one / (one + (-x).exp()); break;
      case Unary::Relu: out = (x > zero).select(x, zero); break;
      case Unary::Erf: out = x.erf(); break;
      case Unary::GeluErf: out = half * x * (one + (x * T(std::numbers::sqrt2 / 2)).erf()); break;
      case Unary::GeluTanh: {
        const T scale = T(std::sqrt(2.0 / std::numbers::pi));
        out = half * x * (one + (scale * (x + T(0.044715) * x * x * x)).tanh());
        break;
      }
      case Unary::Pow: out = x.pow(a); break;
      case Unary::Clamp: {
        const auto at_least_a = (x < a).select(a, x);
        out = (at_least_a > b).select(b, at_least_a);
        break;
      }
      case Unary::InRange: out = (x >= a).select(indicator<T>(x <= b), zero); break;
      case Unary::Step: out = indicator<T>(x > zero); break;
    }
  }

  template <class T, class X, class Y>
  static void binary_row(Binary op, const X& x, const Y& y, RowMap<T> out) {
    switch (op) {
      case Binary::Add: out = x + y; break;
      case Binary::Sub: out = x - y; break;
      case Binary::Mul: out = x * y; break;
      case Binary::Div: out = x / y; break;
      case Binary::Maximum: out = (x < y).select(y, x); break;  // std::max(x, y)
      case Binary::Minimum: out = (y < x).select(y, x); break;  // std::min(x, y)
      case Binary::Equal: out = indicator<T>(x == y); break;
      case Binary::Greater: out = indicator<T>(x > y); break;
      case Binary::Less: out = indicator<T>(x < y); break;
    }
  }
};

template <class T>
void Eigen::copy_strided(ConstView<T> src, StridedView<T> dst) {
  cpu::copy_rows(src, dst);
}

template <class T>
void Eigen::unary(UnaryArgs args, ConstView<T> src, T* dst) {
  const std::int64_t count = numel_of(src.shape);
  if (count == 0) return;
  const Shape dst_strides = contiguous_strides(src.shape);
  const auto rows = cpu::split_rows<2>(src.shape, {&dst_strides, &src.strides});
  if (!row_kernels_pay(rows)) {
    // Gather into dst first, then one vectorised pass over it in place.
    copy_strided(src, StridedView<T>{dst, src.shape, dst_strides});
    cpu::parallel_aligned_ranges(dst, count, [&](std::int64_t begin, std::int64_t end) {
      unary_row<T>(args, ConstRowMap<T>(dst + begin, end - begin), RowMap<T>(dst + begin, end - begin));
    });
    return;
  }
  cpu::for_each_row(rows, dst, [&](const auto& offset, std::int64_t length) {
    with_row(src.data + offset[1], rows.step[1], length,
             [&](const auto& x) { unary_row<T>(args, x, RowMap<T>(dst + offset[0], length)); });
  });
}

template <class T>
void Eigen::binary(Binary op, ConstView<T> a, ConstView<T> b, T* dst) {
  if (numel_of(a.shape) == 0) return;
  const Shape dst_strides = contiguous_strides(a.shape);
  const auto rows = cpu::split_rows<3>(a.shape, {&dst_strides, &a.strides, &b.strides});
  if (!row_kernels_pay(rows)) return cpu::binary_rows_scalar(op, rows, a.data, b.data, dst);
  cpu::for_each_row(rows, dst, [&](const auto& offset, std::int64_t length) {
    with_row(a.data + offset[1], rows.step[1], length, [&](const auto& x) {
      with_row(b.data + offset[2], rows.step[2], length,
               [&](const auto& y) { binary_row<T>(op, x, y, RowMap<T>(dst + offset[0], length)); });
    });
  });
}

template <class T>
void Eigen::where(ConstView<T> condition, ConstView<T> a, ConstView<T> b, T* dst) {
  if (numel_of(a.shape) == 0) return;
  const Shape dst_strides = contiguous_strides(a.shape);
  const auto rows = cpu::split_rows<4>(a.shape, {&dst_strides, &condition.strides, &a.strides, &b.strides});
  if (!row_kernels_pay(rows)) return Reference::where(condition, a, b, dst);
  cpu::for_each_row(rows, dst, [&](const auto& offset, std::int64_t length) {
    with_row(condition.data + offset[1], rows.step[1], length, [&](const auto& c) {
      with_row(a.data + offset[2], rows.step[2], length, [&](const auto& x) {
        with_row(b.data + offset[3], rows.step[3], length, [&](const auto& y) {
          RowMap<T>(dst + offset[0], length) = (c != T(0)).select(x, y);
        });
      });
    });
  });
}

template <class T>
void Eigen::reduce(Reduce op, const T* src, std::int64_t outer, std::int64_t n, std::int64_t inner, T* dst) {
  const T identity = op == Reduce::Sum ? T(0) : -std::numeric_limits<T>::infinity();
  if (n == 0) return Reference::fill(dst, outer * inner, identity);
  if (inner == 1) {
    cpu::parallel_ranges(outer, n, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t o = begin; o < end; ++o) {
        ConstRowMap<T> column(src + o * n, n);
        // PropagateNumbers skips NaN like Reference's std::max accumulation does.
        dst[o] = op == Reduce::Sum ? column.sum() : column.template maxCoeff<::Eigen::PropagateNumbers>();
      }
    });
    return;
  }
  // Accumulate whole rows of each (n, inner) block so the inner loop is contiguous; a slice
  // [begin, end) of the inner dim is one thread's, so one block alone still splits.
  const bool split_inner = outer < cpu::parallel_threads(outer * n * inner);
  const std::int64_t items = split_inner ? inner : outer;
  cpu::parallel_ranges(items, split_inner ? outer * n : n * inner, [&](std::int64_t begin, std::int64_t end) {
    const std::int64_t o_begin = split_inner ? 0 : begin, o_end = split_inner ? outer : end;
    const std::int64_t i_begin = split_inner ? begin : 0, width = split_inner ? end - begin : inner;
    for (std::int64_t o = o_begin; o < o_end; ++o) {
      const T* block = src + o * n * inner + i_begin;  // (n, width) with row stride inner
      RowMap<T> total(dst + o * inner + i_begin, width);
      total = ConstRowMap<T>(block, width);
      for (std::int64_t j = 1; j < n; ++j) {
        ConstRowMap<T> row(block + j * inner, width);
        if (op == Reduce::Sum) {
          total += row;
        } else {
          total = (total < row).select(row, total);
        }
      }
    }
  });
}

template <class T>
void Eigen::softmax(const T* src, std::int64_t rows, std::int64_t cols, T* dst, bool log) {
  if (cols == 0) return;
  cpu::parallel_ranges(rows, cols, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r) {
      ConstRowMap<T> x(src + r * cols, cols);
      RowMap<T> y(dst + r * cols, cols);
      const T max = x.template maxCoeff<::Eigen::PropagateNumbers>();
      if (log) {
        const T log_total = std::log((x - max).exp().sum());
        y = (x - max) - log_total;
      } else {
        y = (x - max).exp();
        y /= y.sum();
      }
    }
  });
}

template <class T>
void Eigen::gemm(const GemmArgs& g, const T* a, const T* b, T* c) {
  if (g.m <= 0 || g.n <= 0) return;
  cpu::for_each_product(g, [&](std::int64_t i) {
    T* C = c + i * g.stride_c;  // (m, n), row stride ldc
    if (g.k == 0) {             // an empty sum: C = beta * C, and never read C when beta == 0
      MatrixMap<T> out(C, g.m, g.n, ::Eigen::OuterStride<>(g.ldc));
      if (g.beta == 0.0) out.setZero(); else out *= T(g.beta);
      return;
    }
    gemm_one(g, a + i * g.stride_a, b + i * g.stride_b, C);
  });
}

template <class T>
void Eigen::index_select(const T* src, std::int64_t outer, std::int64_t dim, std::int64_t inner,
                         const std::int64_t* idx, std::int64_t count, T* dst) {
  cpu::parallel_ranges(outer * count, inner, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t row = begin; row < end; ++row) {  // row = o * count + j
      const std::int64_t o = row / count, j = row % count;
      RowMap<T>(dst + row * inner, inner) = ConstRowMap<T>(src + (o * dim + idx[j]) * inner, inner);
    }
  });
}

template <class T>
void Eigen::index_add(const T* src, std::int64_t outer, std::int64_t count, std::int64_t inner,
                      const std::int64_t* idx, std::int64_t dim, T* dst) {
  // Repeated indices add into the same row, so threads split the inner dim, never j; each
  // element's sum keeps the order j = 0, 1, ...
  cpu::parallel_ranges(inner, outer * count, [&](std::int64_t begin, std::int64_t end) {
    const std::int64_t width = end - begin;
    for (std::int64_t o = 0; o < outer; ++o)
      for (std::int64_t j = 0; j < count; ++j)
        RowMap<T>(dst + (o * dim + idx[j]) * inner + begin, width) +=
            ConstRowMap<T>(src + (o * count + j) * inner + begin, width);
  });
}

template <class T>
void Eigen::adam_step(const AdamArgs& a, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, std::int64_t n) {
  cpu::parallel_aligned_ranges(param, n, [&](std::int64_t begin, std::int64_t end) {
    Reference::adam_step(a, param + begin, grad + begin, exp_avg + begin, exp_avg_sq + begin, end - begin);
  });
}

static_assert(Backend<Eigen>);

// The kernels' explicit instantiations (compiled_kernels.hpp): declared where the build links
// tensortape::kernels, defined once in cmake/cpu_kernels_eigen.cpp.
#define TENSORTAPE_EIGEN_KERNELS(prefix, T) \
  TENSORTAPE_CPU_KERNELS(prefix, Eigen, T)  \
  prefix template void Eigen::adam_step<T>(const AdamArgs&, T*, const T*, T*, T*, std::int64_t);
#if defined(TENSORTAPE_COMPILED_KERNELS)
TENSORTAPE_EIGEN_KERNELS(extern, float)
TENSORTAPE_EIGEN_KERNELS(extern, double)
#endif

}  // namespace tensortape::backend
