// Elementwise ops with NumPy broadcasting, each recorded for autograd.
//
//   auto y = tt::gelu(x * 2.0 + bias);      // bias (D) broadcasts over x (B, D)
//   auto m = tt::where(x > 0.0, x, tt::zeros_like(x));
//   auto z = tt::clamp(tt::exp(y), 0.0, 10.0);
#pragma once

#include "tensortape/autograd/node.hpp"
#include "tensortape/core/tensor.hpp"

namespace tensortape {

namespace detail {

template <class T, class B>
Tensor<T, B> unary_kernel(backend::UnaryArgs args, const Tensor<T, B>& x) {
  auto out = empty<T, B>(x.shape());
  if (out.numel() > 0) B::unary(args, x.view(), out.data());
  return out;
}

template <class T, class B>
Tensor<T, B> binary_kernel(backend::Binary op, const Tensor<T, B>& a, const Tensor<T, B>& b, const char* name) {
  check(a.defined() && b.defined(), name, "undefined tensor argument");
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  auto out = empty<T, B>(shape);
  if (out.numel() > 0) B::binary(op, a.view_as(shape), b.view_as(shape), out.data());
  return out;
}

// A binary op; its rule gets both inputs when save_inputs.
template <Op K, class T, class B>
Tensor<T, B> binary_op(const char* name, backend::Binary kind, const Tensor<T, B>& a, const Tensor<T, B>& b, bool save_inputs) {
  auto out = binary_kernel(kind, a, b, name);
  if (auto node = record<K>(name, out, {&a, &b}); node && save_inputs) {
    node->save(a);
    node->save(b);
  }
  return out;
}

// A unary op whose rule needs its input, its output, or nothing.
template <Op K, class T, class B>
Tensor<T, B> unary_op(const char* name, backend::UnaryArgs args, const Tensor<T, B>& x, bool save_input, bool save_output) {
  check(x.defined(), name, "undefined tensor argument");
  auto out = unary_kernel(args, x);
  if (auto node = record<K>(name, out, {&x})) {
    if (save_input) node->save(x);
    if (save_output) node->save_output(out);
    node->reals = {args.a, args.b};
  }
  return out;
}

}  // namespace detail

// ---- binary, broadcasting ----

template <class T, class B>
Tensor<T, B> add(const Tensor<T, B>& a, const Tensor<T, B>& b) {
  return detail::binary_op<Op::Add>("add", backend::Binary::Add, a, b, false);
}

template <class T, class B>
Tensor<T, B> sub(const Tensor<T, B>& a, const Tensor<T, B>& b) {
  return detail::binary_op<Op::Sub>("sub", backend::Binary::Sub, a, b, false);
}

template <class T, class B>
Tensor<T, B> mul(const Tensor<T, B>& a, const Tensor<T, B>& b) {
  return detail::binary_op<Op::Mul>("mul", backend::Binary::Mul, a, b, true);
}

template <class T, class B>
Tensor<T, B> div(const Tensor<T, B>& a, const Tensor<T, B>& b) {
  return detail::binary_op<Op::Div>("div", backend::Binary::Div, a, b, true);
}

// Elementwise max/min; the gradient goes to the larger (smaller) input, split evenly on ties.
template <class T, class B>
Tensor<T, B> maximum(const Tensor<T, B>& a, const Tensor<T, B>& b) {
  return detail::binary_op<Op::Maximum>("maximum", backend::Binary::Maximum, a, b, true);
}

template <class T, class B>
Tensor<T, B> minimum(const Tensor<T, B>& a, const Tensor<T, B>& b) {
  return detail::binary_op<Op::Minimum>("minimum", backend::Binary::Minimum, a, b, true);
}

// Comparisons give 0/1 masks of the broadcast shape; they carry no gradient.
template <class T, class B>
Tensor<T, B> equal(const Tensor<T, B>& a, const Tensor<T, B>& b) {
  return detail::binary_kernel(backend::Binary::Equal, a, b, "equal");
}
template <class T, class B>
Tensor<T, B> greater(const Tensor<T, B>& a, const Tensor<T, B>& b) {
  return detail::binary_kernel(backend::Binary::Greater, a, b, "greater");
}
template <class T, class B>
Tensor<T, B> less(const Tensor<T, B>& a, const Tensor<T, B>& b) {
  return detail::binary_kernel(backend::Binary::Less, a, b, "less");
}

// where(condition, a, b): a where condition is nonzero, else b; all three broadcast.
template <class T, class B>
Tensor<T, B> where(const Tensor<T, B>& condition, const Tensor<T, B>& a, const Tensor<T, B>& b) {
  check(condition.defined() && a.defined() && b.defined(), "where", "undefined tensor argument");
  const Shape shape = broadcast_shapes(broadcast_shapes(condition.shape(), a.shape(), "where"), b.shape(), "where");
  auto out = empty<T, B>(shape);
  if (out.numel() > 0) B::where(condition.view_as(shape), a.view_as(shape), b.view_as(shape), out.data());
  if (auto node = record<Op::Where>("where", out, {&a, &b})) node->save(condition.detach());
  return out;
}

// x with `value` wherever mask is nonzero (attention masks use -inf).
template <class T, class B>
Tensor<T, B> masked_fill(const Tensor<T, B>& x, const Tensor<T, B>& mask, T value) {
  return where(mask, scalar_tensor<T, B>(value), x);
}

// ---- unary ----

// a * x + b: scaling, shifting and negation in one kernel.
template <class T, class B>
Tensor<T, B> affine(const Tensor<T, B>& x, double scale, double shift) {
  return detail::unary_op<Op::Affine>("affine", {backend::Unary::Affine, scale, shift}, x, false, false);
}
template <class T, class B>
Tensor<T, B> neg(const Tensor<T, B>& x) { return affine(x, -1.0, 0.0); }

template <class T, class B>
Tensor<T, B> exp(const Tensor<T, B>& x) {
  return detail::unary_op<Op::Exp>("exp", {backend::Unary::Exp}, x, false, true);
}
template <class T, class B>
Tensor<T, B> log(const Tensor<T, B>& x) {
  return detail::unary_op<Op::Log>("log", {backend::Unary::Log}, x, true, false);
}
template <class T, class B>
Tensor<T, B> sqrt(const Tensor<T, B>& x) {
  return detail::unary_op<Op::Sqrt>("sqrt", {backend::Unary::Sqrt}, x, false, true);
}
template <class T, class B>
Tensor<T, B> rsqrt(const Tensor<T, B>& x) {
  return detail::unary_op<Op::Rsqrt>("rsqrt", {backend::Unary::Rsqrt}, x, false, true);
}
template <class T, class B>
Tensor<T, B> pow(const Tensor<T, B>& x, double exponent) {
  return detail::unary_op<Op::Pow>("pow", {backend::Unary::Pow, exponent}, x, true, false);
}
template <class T, class B>
Tensor<T, B> square(const Tensor<T, B>& x) { return mul(x, x); }
template <class T, class B>
Tensor<T, B> abs(const Tensor<T, B>& x) {
  return detail::unary_op<Op::Abs>("abs", {backend::Unary::Abs}, x, true, false);
}
template <class T, class B>
Tensor<T, B> clamp(const Tensor<T, B>& x, double low, double high) {
  check(low <= high, "clamp", "low ", low, " exceeds high ", high);
  return detail::unary_op<Op::Clamp>("clamp", {backend::Unary::Clamp, low, high}, x, true, false);
}
template <class T, class B>
Tensor<T, B> tanh(const Tensor<T, B>& x) {
  return detail::unary_op<Op::Tanh>("tanh", {backend::Unary::Tanh}, x, false, true);
}
template <class T, class B>
Tensor<T, B> sigmoid(const Tensor<T, B>& x) {
  return detail::unary_op<Op::Sigmoid>("sigmoid", {backend::Unary::Sigmoid}, x, false, true);
}
template <class T, class B>
Tensor<T, B> relu(const Tensor<T, B>& x) {
  // Saves its output, not its input: step(relu(x)) == step(x), and the output is usually kept
  // anyway (by the next matmul), so the input can be freed.
  return detail::unary_op<Op::Relu>("relu", {backend::Unary::Relu}, x, false, true);
}
template <class T, class B>
Tensor<T, B> erf(const Tensor<T, B>& x) {
  return detail::unary_op<Op::Erf>("erf", {backend::Unary::Erf}, x, true, false);
}

enum class GeluForm { Erf, Tanh };

// GELU: x * Phi(x) (erf form, T5 v1.1 / BERT) or its tanh approximation (GPT-2 "gelu_new").
template <class T, class B>
Tensor<T, B> gelu(const Tensor<T, B>& x, GeluForm form = GeluForm::Erf) {
  if (form == GeluForm::Erf) return detail::unary_op<Op::GeluErf>("gelu", {backend::Unary::GeluErf}, x, true, false);
  return detail::unary_op<Op::GeluTanh>("gelu_tanh", {backend::Unary::GeluTanh}, x, true, false);
}

// Masks with no gradient: 1 where x > 0; 1 where low <= x <= high; sign(x).
template <class T, class B>
Tensor<T, B> step(const Tensor<T, B>& x) { return detail::unary_kernel({backend::Unary::Step}, x); }
template <class T, class B>
Tensor<T, B> in_range(const Tensor<T, B>& x, double low, double high) {
  return detail::unary_kernel({backend::Unary::InRange, low, high}, x);
}
template <class T, class B>
Tensor<T, B> sign(const Tensor<T, B>& x) { return detail::unary_kernel({backend::Unary::Sign}, x); }

// ---- operators ----

template <class T, class B> Tensor<T, B> operator+(const Tensor<T, B>& a, const Tensor<T, B>& b) { return add(a, b); }
template <class T, class B> Tensor<T, B> operator-(const Tensor<T, B>& a, const Tensor<T, B>& b) { return sub(a, b); }
template <class T, class B> Tensor<T, B> operator*(const Tensor<T, B>& a, const Tensor<T, B>& b) { return mul(a, b); }
template <class T, class B> Tensor<T, B> operator/(const Tensor<T, B>& a, const Tensor<T, B>& b) { return div(a, b); }
template <class T, class B> Tensor<T, B> operator-(const Tensor<T, B>& x) { return neg(x); }

template <class T, class B> Tensor<T, B> operator+(const Tensor<T, B>& x, double s) { return affine(x, 1.0, s); }
template <class T, class B> Tensor<T, B> operator+(double s, const Tensor<T, B>& x) { return affine(x, 1.0, s); }
template <class T, class B> Tensor<T, B> operator-(const Tensor<T, B>& x, double s) { return affine(x, 1.0, -s); }
template <class T, class B> Tensor<T, B> operator-(double s, const Tensor<T, B>& x) { return affine(x, -1.0, s); }
template <class T, class B> Tensor<T, B> operator*(const Tensor<T, B>& x, double s) { return affine(x, s, 0.0); }
template <class T, class B> Tensor<T, B> operator*(double s, const Tensor<T, B>& x) { return affine(x, s, 0.0); }
template <class T, class B> Tensor<T, B> operator/(const Tensor<T, B>& x, double s) { return affine(x, 1.0 / s, 0.0); }
template <class T, class B> Tensor<T, B> operator/(double s, const Tensor<T, B>& x) { return mul(scalar_tensor<T, B>(T(s)), pow(x, -1.0)); }

template <class T, class B> Tensor<T, B> operator>(const Tensor<T, B>& x, double s) { return greater(x, scalar_tensor<T, B>(T(s))); }
template <class T, class B> Tensor<T, B> operator<(const Tensor<T, B>& x, double s) { return less(x, scalar_tensor<T, B>(T(s))); }

}  // namespace tensortape
