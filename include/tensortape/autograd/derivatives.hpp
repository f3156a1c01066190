// Every derivative rule, in one table (PyTorch derivatives.yaml / tinygrad gradient.py).
//
// A rule maps the gradient w.r.t. an op's output to gradients w.r.t. its inputs, computed only
// for the inputs the engine marks as wanted (frozen inputs cost nothing). Rules are written in
// differentiable ops: with create_graph they are recorded, which gives gradients of gradients.
// Rules may return gradients in the broadcast (output) shape; the engine sums them down to each
// input's shape in one place (sum_to).
#pragma once

#include <cmath>
#include <numbers>

#include "tensortape/ops/elementwise.hpp"
#include "tensortape/ops/index.hpp"
#include "tensortape/ops/linalg.hpp"
#include "tensortape/ops/loss.hpp"
#include "tensortape/ops/nn.hpp"
#include "tensortape/ops/reduce.hpp"
#include "tensortape/ops/views.hpp"

namespace tensortape {

#define TENSORTAPE_RULE(OP)                                                                 \
  template <>                                                                               \
  struct Derivative<Op::OP> {                                                               \
    template <class T, class B>                                                             \
    static std::vector<Tensor<T, B>> backward(const Node<T, B>& node, const Tensor<T, B>& g); \
  };                                                                                        \
  template <class T, class B>                                                               \
  std::vector<Tensor<T, B>> Derivative<Op::OP>::backward([[maybe_unused]] const Node<T, B>& node, \
                                                         [[maybe_unused]] const Tensor<T, B>& g)

// Gradient for input i only when the engine wants it.
#define TENSORTAPE_IF_NEEDED(I, EXPR) (node.needs(I) ? (EXPR) : Tensor<T, B>())

// ---- arithmetic ----

TENSORTAPE_RULE(Add) { return {g, g}; }
TENSORTAPE_RULE(Sub) { return {g, TENSORTAPE_IF_NEEDED(1, -g)}; }
TENSORTAPE_RULE(Mul) {
  const auto a = node.saved_tensor(0), b = node.saved_tensor(1);
  return {TENSORTAPE_IF_NEEDED(0, g * b), TENSORTAPE_IF_NEEDED(1, g * a)};
}
TENSORTAPE_RULE(Div) {
  const auto a = node.saved_tensor(0), b = node.saved_tensor(1);
  return {TENSORTAPE_IF_NEEDED(0, g / b), TENSORTAPE_IF_NEEDED(1, -(g * a) / (b * b))};
}
TENSORTAPE_RULE(Maximum) {
  // Ties split the gradient evenly between both inputs.
  const auto a = node.saved_tensor(0).detach(), b = node.saved_tensor(1).detach();
  const auto share_a = greater(a, b) + equal(a, b) * 0.5;
  return {TENSORTAPE_IF_NEEDED(0, g * share_a), TENSORTAPE_IF_NEEDED(1, g * (1.0 - share_a))};
}
TENSORTAPE_RULE(Minimum) {
  const auto a = node.saved_tensor(0).detach(), b = node.saved_tensor(1).detach();
  const auto share_a = less(a, b) + equal(a, b) * 0.5;
  return {TENSORTAPE_IF_NEEDED(0, g * share_a), TENSORTAPE_IF_NEEDED(1, g * (1.0 - share_a))};
}
TENSORTAPE_RULE(Where) {
  const auto condition = node.saved_tensor(0);
  const auto zero = scalar_tensor<T, B>(T(0));
  return {TENSORTAPE_IF_NEEDED(0, where(condition, g, zero)), TENSORTAPE_IF_NEEDED(1, where(condition, zero, g))};
}
TENSORTAPE_RULE(Affine) { return {g * node.reals[0]}; }
TENSORTAPE_RULE(Pow) {
  const double p = node.reals[0];
  if (p == 0.0) return {zeros_like(g)};  // x^0 is constant; p * x^-1 would be 0 * inf = NaN at x = 0
  return {g * pow(node.saved_tensor(0), p - 1.0) * p};
}

// ---- elementwise functions (y = f(x); rules use y where it is cheaper) ----

TENSORTAPE_RULE(Exp) { return {g * node.saved_tensor(0)}; }
TENSORTAPE_RULE(Log) { return {g / node.saved_tensor(0)}; }
TENSORTAPE_RULE(Sqrt) { return {g / node.saved_tensor(0) * 0.5}; }
TENSORTAPE_RULE(Rsqrt) {
  const auto y = node.saved_tensor(0);
  return {g * y * y * y * -0.5};
}

namespace detail {
// g * mask(x) for a mask that a unary kernel makes from a saved tensor (step, sign, in_range; it
// carries no gradient). With create_graph the product is recorded; otherwise the mask is
// written into the product's buffer and the product over it: one tensor of x's shape, not two.
template <class T, class B>
Tensor<T, B> times_mask(const Tensor<T, B>& g, backend::UnaryArgs mask, const Tensor<T, B>& saved) {
  const auto x = saved.detach();
  if (GradMode::enabled()) return g * unary_kernel(mask, x);
  auto out = unary_kernel(mask, x);
  if (out.numel() > 0) B::binary(backend::Binary::Mul, g.view_as(x.shape()), out.view(), out.data());
  return out;
}
}  // namespace detail

TENSORTAPE_RULE(Abs) { return {detail::times_mask(g, {backend::Unary::Sign}, node.saved_tensor(0))}; }
TENSORTAPE_RULE(Clamp) {
  return {detail::times_mask(g, {backend::Unary::InRange, node.reals[0], node.reals[1]}, node.saved_tensor(0))};
}
TENSORTAPE_RULE(Tanh) {
  const auto y = node.saved_tensor(0);
  return {g * (1.0 - y * y)};
}
TENSORTAPE_RULE(Sigmoid) {
  const auto y = node.saved_tensor(0);
  return {g * y * (1.0 - y)};
}
TENSORTAPE_RULE(Relu) { return {detail::times_mask(g, {backend::Unary::Step}, node.saved_tensor(0))}; }  // step(y) = step(x)
TENSORTAPE_RULE(Erf) {
  const auto x = node.saved_tensor(0);
  return {g * exp(-(x * x)) * (2.0 / std::sqrt(std::numbers::pi))};
}
TENSORTAPE_RULE(GeluErf) {
  // d/dx x Phi(x) = Phi(x) + x phi(x)
  const auto x = node.saved_tensor(0);
  const auto cdf = (erf(x * (1.0 / std::numbers::sqrt2)) + 1.0) * 0.5;
  const auto pdf = exp(x * x * -0.5) * (1.0 / std::sqrt(2.0 * std::numbers::pi));
  return {g * (cdf + x * pdf)};
}
TENSORTAPE_RULE(GeluTanh) {
  // y = 0.5 x (1 + tanh u), u = c (x + 0.044715 x^3)
  const double c = std::sqrt(2.0 / std::numbers::pi);
  const auto x = node.saved_tensor(0);
  const auto x2 = x * x;
  const auto t = tanh((x + x2 * x * 0.044715) * c);
  const auto du = (x2 * (3.0 * 0.044715) + 1.0) * c;
  return {g * ((t + 1.0) * 0.5 + x * 0.5 * (1.0 - t * t) * du)};
}

// ---- linear algebra ----

TENSORTAPE_RULE(Matmul) {
  const auto a = node.saved_tensor(0), b = node.saved_tensor(1);
  Tensor<T, B> grad_a, grad_b;
  if (node.needs(0)) grad_a = matmul(g, b.transpose(-1, -2));
  if (node.needs(1)) {
    const std::int64_t k = a.shape().back(), n = g.shape().back();
    if (b.dim() == 2 && a.dim() > 2) {
      // A weight shared across the batch: one (k, rows) @ (rows, n) GEMM, no batched sum.
      grad_b = matmul(a.reshape({-1, k}).transpose(0, 1), g.reshape({-1, n}));
    } else {
      grad_b = matmul(a.transpose(-1, -2), g);
    }
  }
  return {grad_a, grad_b};
}

// ---- reductions ----

TENSORTAPE_RULE(Sum) {
  const auto& input_shape = node.inputs[0].shape;
  std::vector<std::size_t> axes(node.ints.begin(), node.ints.end());
  return {g.reshape(detail::keepdim_shape(input_shape, axes)).expand(input_shape)};
}
TENSORTAPE_RULE(Max) {
  const auto x = node.saved_tensor(0).detach();
  const auto& input_shape = node.inputs[0].shape;
  const std::vector<std::size_t> axes(node.ints.begin(), node.ints.end());
  const Shape kept = detail::keepdim_shape(input_shape, axes);
  const auto y = node.saved_tensor(1).detach().reshape(kept);
  const std::vector<std::int64_t> reduced(node.ints.begin(), node.ints.end());
  // Each reduced entry's gradient over its ties is computed at the reduced shape, so that x's
  // shape is passed over once for the indicator and once for the product.
  if (GradMode::enabled()) {
    const auto is_max = equal(x, y);
    return {is_max * (g.reshape(kept) / sum(is_max, reduced, true))};
  }
  // The same operations, the product into the indicator's buffer.
  auto grad = equal(x, y);
  const auto share = g.reshape(kept) / sum(grad, reduced, true);
  if (grad.numel() > 0) B::binary(backend::Binary::Mul, grad.view(), share.view_as(grad.shape()), grad.data());
  return {grad};
}
TENSORTAPE_RULE(RmsNorm) {
  // y = x * r * w with r = rsqrt(mean(x^2) + eps) per row. The terms, in the composed ops' order:
  // through x * r directly (input 0), then twice through x * x inside r (inputs 1 and 2).
  const auto x = node.saved_tensor(0);  // (..., D)
  const bool weighted = node.inputs.size() == 4;
  // create_graph: r again from x with recorded ops, so the terms are differentiable through it.
  const auto r = GradMode::enabled() ? detail::inverse_rms(x, node.reals[0]) : node.saved_tensor(1);  // (..., 1)
  const auto g_normalized = weighted ? g * node.saved_tensor(2) : g;
  Tensor<T, B> direct, through_r, grad_weight;
  if (node.needs(0)) {
    direct = g_normalized * r;
    const auto g_r = sum_to(g_normalized * x, r.shape());
    const auto g_mean = g_r * r * r * r * -0.5 * (1.0 / static_cast<double>(x.shape().back()));
    through_r = g_mean.expand(x.shape()) * x;
  }
  if (weighted && node.needs(3)) grad_weight = g * (x * r);
  return {direct, through_r, through_r, grad_weight};
}
// Without create_graph the softmax rules run the same operations in one (rows, cols) buffer,
// each step written over the last, where the expressions make three such tensors.
TENSORTAPE_RULE(Softmax) {
  const auto y = node.saved_tensor(0);
  if (GradMode::enabled()) return {y * (g - sum(g * y, {-1}, true))};
  auto grad = g * y;
  const auto row_sums = sum(grad, {-1}, true);
  if (grad.numel() > 0) {
    B::binary(backend::Binary::Sub, g.view_as(y.shape()), row_sums.view_as(y.shape()), grad.data());
    B::binary(backend::Binary::Mul, y.view(), grad.view(), grad.data());
  }
  return {grad};
}
TENSORTAPE_RULE(LogSoftmax) {
  const auto y = node.saved_tensor(0);
  if (GradMode::enabled()) return {g - exp(y) * sum(g, {-1}, true)};
  const auto row_sums = sum(g, {-1}, true);
  auto grad = exp(y);
  if (grad.numel() > 0) {
    B::binary(backend::Binary::Mul, grad.view(), row_sums.view_as(y.shape()), grad.data());
    B::binary(backend::Binary::Sub, g.view_as(y.shape()), grad.view(), grad.data());
  }
  return {grad};
}

// ---- indexing ----

TENSORTAPE_RULE(IndexSelect) { return {index_add(g, node.ints[0], node.saved_index(0), node.inputs[0].shape)}; }
TENSORTAPE_RULE(IndexAdd) { return {index_select(g, node.ints[0], node.saved_index(0))}; }

// ---- views ----

TENSORTAPE_RULE(Reshape) { return {g.reshape(node.inputs[0].shape)}; }
TENSORTAPE_RULE(Permute) {
  std::vector<std::int64_t> inverse(node.ints.size());
  for (std::size_t i = 0; i < node.ints.size(); ++i) inverse[static_cast<std::size_t>(node.ints[i])] = static_cast<std::int64_t>(i);
  return {g.permute(inverse)};
}
TENSORTAPE_RULE(Expand) { return {g}; }  // the engine's sum_to folds the expanded axes
TENSORTAPE_RULE(Contiguous) { return {g}; }
TENSORTAPE_RULE(Narrow) { return {narrow_scatter(g, node.inputs[0].shape, node.ints[0], node.ints[1])}; }
TENSORTAPE_RULE(NarrowScatter) {
  const auto axis = node.ints[0];
  return {g.narrow(axis, node.ints[1], node.inputs[0].shape[static_cast<std::size_t>(axis)])};
}
TENSORTAPE_RULE(Concat) {
  std::vector<Tensor<T, B>> grads;
  std::int64_t offset = 0;
  for (std::size_t i = 0; i < node.inputs.size(); ++i) {
    const std::int64_t length = node.ints[i + 1];
    grads.push_back(TENSORTAPE_IF_NEEDED(i, g.narrow(node.ints[0], offset, length)));
    offset += length;
  }
  return grads;
}

// ---- losses with their own rule ----

TENSORTAPE_RULE(CrossEntropy) {
  // g (rows): the gradient of each row's loss -w * log_softmax(logits)[label]. Per row,
  // d/dlogits = (softmax - one_hot(label)) * g * w, built from the same factors in the same order
  // as the composed ops' rules (-(g) * w first), so gradients match theirs bit for bit.
  const auto logits = node.saved_tensor(0);  // (rows, C)
  const auto& index = node.saved_index(0);   // (rows) flat positions row * C + label
  const auto row_scale = -g * node.saved_tensor(1);
  if (!GradMode::enabled()) return {detail::cross_entropy_logits_grad(logits, row_scale, index)};
  // create_graph: the same terms from differentiable ops (four (rows, C) tensors at once).
  const std::int64_t rows = logits.shape()[0], classes = logits.shape()[1];
  return {exp(log_softmax(logits)) * (-row_scale).reshape({rows, 1}) +
          index_add(row_scale, 0, index, {rows * classes}).reshape({rows, classes})};
}
TENSORTAPE_RULE(BinaryCrossEntropyWithLogits) {
  const auto x = node.saved_tensor(0), z = node.saved_tensor(1);
  return {TENSORTAPE_IF_NEEDED(0, g * (sigmoid(x) - z)), TENSORTAPE_IF_NEEDED(1, -(g * x))};
}

#undef TENSORTAPE_IF_NEEDED
#undef TENSORTAPE_RULE

}  // namespace tensortape
