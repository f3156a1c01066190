// Neural-network building blocks: softmax and log-softmax (max-subtracted), RMS and layer
// norm, seeded dropout.
//
//   auto attn = tt::softmax(scores);                         // over the last axis
//   auto h = tt::rms_norm(x, weight, 1e-6);                  // T5LayerNorm
//   auto d = tt::dropout(h, 0.1, rng, /*training=*/true);
#pragma once

#include "tensortape/ops/elementwise.hpp"
#include "tensortape/ops/reduce.hpp"

namespace tensortape {

namespace detail {

template <Op K, class T, class B>
Tensor<T, B> softmax_last(const Tensor<T, B>& x, bool log, const char* name) {
  check(x.defined() && x.dim() >= 1, name, "needs a tensor of rank >= 1");
  const auto source = x.is_contiguous() ? x.detach() : x.contiguous_copy();
  auto out = empty<T, B>(x.shape());
  const std::int64_t cols = x.shape().back();
  if (out.numel() > 0) B::softmax(source.data(), out.numel() / cols, cols, out.data(), log);
  if (auto node = record<K>(name, out, {&x})) node->save_output(out);
  return out;
}

// Applies a last-axis op along `axis` by moving that axis last and back.
template <class F, class T, class B>
Tensor<T, B> along_axis(const Tensor<T, B>& x, std::int64_t axis, F&& last_axis_op) {
  const std::size_t ax = wrap_axis(axis, x.shape().size(), "softmax");
  const auto last = static_cast<std::int64_t>(x.shape().size()) - 1;
  if (static_cast<std::int64_t>(ax) == last) return last_axis_op(x);
  return last_axis_op(x.transpose(static_cast<std::int64_t>(ax), last)).transpose(static_cast<std::int64_t>(ax), last);
}

}  // namespace detail

template <class T, class B>
Tensor<T, B> softmax(const Tensor<T, B>& x, std::int64_t axis = -1) {
  return detail::along_axis(x, axis, [](const Tensor<T, B>& v) { return detail::softmax_last<Op::Softmax>(v, false, "softmax"); });
}

template <class T, class B>
Tensor<T, B> log_softmax(const Tensor<T, B>& x, std::int64_t axis = -1) {
  return detail::along_axis(x, axis, [](const Tensor<T, B>& v) { return detail::softmax_last<Op::LogSoftmax>(v, true, "log_softmax"); });
}

namespace detail {
// rsqrt(mean(x^2) + eps) over the last axis, kept: (..., 1).
template <class T, class B>
Tensor<T, B> inverse_rms(const Tensor<T, B>& x, double eps) {
  return rsqrt(mean(x * x, {-1}, true) + eps);
}
}  // namespace detail

// x * rsqrt(mean(x^2) + eps) * weight over the last axis (T5LayerNorm: no mean subtraction, no
// bias). One node, which keeps x and the (..., 1) inverse RMS for backward; the composed ops
// also kept x * inverse, a copy of x's size. x is the node's input three times over: the rule
// returns the three terms of x's gradient that the composed ops' rules made, and the engine
// adds them in the same order, so gradients are bit-identical to the composed ops'.
template <class T, class B>
Tensor<T, B> rms_norm(const Tensor<T, B>& x, const Tensor<T, B>& weight, double eps) {
  check(!weight.defined() || (weight.dim() == 1 && weight.shape()[0] == x.shape().back()), "rms_norm", "weight ",
        weight.defined() ? weight.shape() : Shape{}, " does not match the last axis of ", x.shape());
  Tensor<T, B> inverse, out;
  {
    NoGradGuard forward_only;
    inverse = detail::inverse_rms(x, eps);
    out = x * inverse;
    if (weight.defined()) out = out * weight;
  }
  const auto node = weight.defined() ? record<Op::RmsNorm>("rms_norm", out, {&x, &x, &x, &weight})
                                     : record<Op::RmsNorm>("rms_norm", out, {&x, &x, &x});
  if (node) {
    node->save(x);
    node->save(inverse);
    if (weight.defined()) node->save(weight);
    node->reals = {eps};
  }
  return out;
}

// (x - mean) / sqrt(var + eps) * weight + bias over the last axis (biased variance).
template <class T, class B>
Tensor<T, B> layer_norm(const Tensor<T, B>& x, const Tensor<T, B>& weight, const Tensor<T, B>& bias, double eps) {
  for (const auto* p : {&weight, &bias}) {
    check(!p->defined() || (p->dim() == 1 && p->shape()[0] == x.shape().back()), "layer_norm", "parameter ",
          p->defined() ? p->shape() : Shape{}, " does not match the last axis of ", x.shape());
  }
  auto centered = x - mean(x, {-1}, true);
  auto normalized = centered * rsqrt(mean(centered * centered, {-1}, true) + eps);
  if (weight.defined()) normalized = normalized * weight;
  return bias.defined() ? normalized + bias : normalized;
}

// Zeroes each element with probability p and scales the rest by 1/(1-p). The mask comes from
// `rng` on the host, so every backend drops the same elements for the same seed.
template <class T, class B>
Tensor<T, B> dropout(const Tensor<T, B>& x, double p, Rng& rng, bool training = true) {
  check(p >= 0.0 && p < 1.0, "dropout", "probability ", p, " outside [0, 1)");
  if (!training || p == 0.0) return x;
  std::vector<T> mask(static_cast<std::size_t>(x.numel()));
  const T kept = T(1.0 / (1.0 - p));
  for (auto& m : mask) m = rng.uniform() < p ? T(0) : kept;
  return x * from_vector<T, B>(x.shape(), mask);
}

}  // namespace tensortape
