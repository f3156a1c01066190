// The argument types of the backend primitives: which elementwise function, which reduction,
// and the shape of a (batched) GEMM. Shared by every backend and by ops/.
#pragma once

#include <cstdint>

#include "tensortape/core/shape.hpp"

namespace tensortape::backend {

enum class Unary {
  Affine,    // a * x + b   (scale, shift, negate)
  Exp, Log, Sqrt, Rsqrt, Abs, Sign, Tanh, Sigmoid, Relu, Erf, GeluErf, GeluTanh,
  Pow,       // x ^ a
  Clamp,     // min(max(x, a), b)
  InRange,   // 1 where a <= x <= b, else 0 (clamp's derivative mask)
  Step,      // 1 where x > 0, else 0 (relu's derivative mask)
};

struct UnaryArgs {
  Unary op;
  double a = 0.0;
  double b = 0.0;
};

enum class Binary { Add, Sub, Mul, Div, Maximum, Minimum, Equal, Greater, Less };

enum class Reduce { Sum, Max };

// A strided view handed to a kernel: `data` points at element [0, ..., 0].
template <class T>
struct StridedView {
  T* data;
  Shape shape;
  Shape strides;
};
template <class T>
using ConstView = StridedView<const T>;

// Row-major C = alpha * op(A) @ op(B) + beta * C, repeated `batch` times with the given
// element strides between consecutive matrices (a stride of 0 reuses one matrix).
// op(A) is (m, k): stored (m, k) with row stride lda, or (k, m) when trans_a.
// op(B) is (k, n): stored (k, n) with row stride ldb, or (n, k) when trans_b.
struct GemmArgs {
  bool trans_a = false;
  bool trans_b = false;
  std::int64_t m = 0, n = 0, k = 0;
  std::int64_t lda = 0, ldb = 0, ldc = 0;
  std::int64_t stride_a = 0, stride_b = 0, stride_c = 0;
  std::int64_t batch = 1;
  double alpha = 1.0;
  double beta = 0.0;
};

// One Adam / AdamW update of a parameter, its gradient and its two moment buffers (all
// contiguous, n elements), in one pass (optim/adam.hpp):
//   g = grad (+ weight_decay * p, Adam);  p *= 1 - lr * weight_decay (AdamW)
//   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
//   p += -lr / correction1 * m / (sqrt(v) / correction2_sqrt + eps)
// with correction1 = 1 - beta1^t and correction2_sqrt = sqrt(1 - beta2^t) at step t.
struct AdamArgs {
  double lr = 0.0, beta1 = 0.0, beta2 = 0.0, eps = 0.0, weight_decay = 0.0;
  bool decoupled = false;  // AdamW's decay of the parameter rather than Adam's L2 term
  double correction1 = 1.0, correction2_sqrt = 1.0;
};

}  // namespace tensortape::backend
