// Losses: cross-entropy over class logits (with an ignore index), KL divergence, and binary
// cross-entropy on logits.
//
//   auto loss = tt::cross_entropy(logits, labels);       // logits (N, C), labels (N) int64
//   auto per_token = tt::cross_entropy(logits, labels, -100, tt::Reduction::None);  // (N)
//   auto kl = tt::kl_div(log_q, p, tt::Reduction::BatchMean);
#pragma once

#include <limits>

#include "tensortape/ops/elementwise.hpp"
#include "tensortape/ops/index.hpp"
#include "tensortape/ops/nn.hpp"
#include "tensortape/ops/reduce.hpp"

namespace tensortape {

enum class Reduction {
  None,       // per-element losses
  Sum,
  Mean,       // mean over elements (cross_entropy: over non-ignored targets)
  BatchMean,  // sum divided by the first dim (kl_div's mathematically correct mean)
};

namespace detail {
template <class T, class B>
Tensor<T, B> reduce_loss(const Tensor<T, B>& losses, Reduction reduction) {
  switch (reduction) {
    case Reduction::None: return losses;
    case Reduction::Sum: return sum(losses);
    case Reduction::Mean: return mean(losses);
    case Reduction::BatchMean:
      return sum(losses) * (1.0 / static_cast<double>(losses.dim() > 0 ? losses.shape()[0] : 1));
  }
  return losses;
}
}  // namespace detail

// logits (..., C), labels (...) int64 in [0, C) or equal to ignore_index. Mean is over the
// non-ignored labels (NaN if all are ignored, as in PyTorch, with a zero gradient).
template <class T, class B>
Tensor<T, B> cross_entropy(const Tensor<T, B>& logits, const Tensor<std::int64_t, B>& labels,
                           std::int64_t ignore_index = -100, Reduction reduction = Reduction::Mean) {
  check(logits.dim() >= 1, "cross_entropy", "logits need a class axis, got ", logits.shape());
  const std::int64_t classes = logits.shape().back();
  const Shape label_shape(logits.shape().begin(), logits.shape().end() - 1);
  check(labels.shape() == label_shape, "cross_entropy", "labels ", labels.shape(), " do not match logits ",
        logits.shape(), " (expected ", label_shape, ")");
  check(reduction != Reduction::BatchMean, "cross_entropy", "BatchMean is for kl_div; use Mean");
  const std::int64_t rows = numel_of(label_shape);

  // Pick log p[row, label[row]] as one gather over the flattened (rows * C) log-probs.
  std::vector<std::int64_t> flat_index(static_cast<std::size_t>(rows));
  std::vector<T> weight(static_cast<std::size_t>(rows));
  std::int64_t counted = 0;
  const auto host_labels = labels.to_vector();
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t label = host_labels[r];
    if (label == ignore_index) continue;
    check(label >= 0 && label < classes, "cross_entropy", "label ", label, " at position ", r, " out of range [0, ",
          classes, ") (ignore_index is ", ignore_index, ")");
    flat_index[r] = r * classes + label;
    weight[r] = T(1);
    ++counted;
  }
  const auto index = from_vector<std::int64_t, B>({rows}, flat_index);
  const auto row_weight = from_vector<T, B>({rows}, weight);
  const auto flat_logits = logits.reshape({rows, classes});
  Tensor<T, B> losses;  // (rows)
  {
    NoGradGuard forward_only;
    losses = -(index_select(log_softmax(flat_logits).reshape({rows * classes}), 0, index) * row_weight);
  }
  // One node instead of log_softmax, index_select and the product: its rule makes the
  // (rows, C) gradient in one buffer, where the composed rules made four.
  if (auto node = record<Op::CrossEntropy>("cross_entropy", losses, {&flat_logits})) {
    node->save(flat_logits);
    node->save(row_weight);
    node->save_index(index);
  }
  switch (reduction) {
    case Reduction::None: return losses.reshape(label_shape);
    case Reduction::Sum: return sum(losses);
    default:
      if (counted == 0)  // NaN, as in PyTorch, but with a zero gradient (1/0 would make it 0 * inf = NaN)
        return sum(losses) * 0.0 + std::numeric_limits<double>::quiet_NaN();
      return sum(losses) * (1.0 / static_cast<double>(counted));
  }
}

namespace detail {
// The gradient of cross_entropy's per-row losses with respect to its (rows, C) logits, given
// row_scale = -g * w (rows) from the losses' gradient g and the rows' weights w: softmax(logits)
// * (-row_scale) per row, plus row_scale at each row's label, made in one buffer (log-softmax,
// exp, the scale and the label terms in place). Element for element the same operations as the
// rules of log_softmax, index_select and the product would run, so the result is bit-identical
// to theirs. Not differentiable: for gradients of gradients the rule composes differentiable
// ops instead.
template <class T, class B>
Tensor<T, B> cross_entropy_logits_grad(const Tensor<T, B>& logits, const Tensor<T, B>& row_scale,
                                       const Tensor<std::int64_t, B>& flat_index) {
  const std::int64_t rows = logits.shape()[0], classes = logits.shape()[1];
  const auto source = logits.is_contiguous() ? logits.detach() : logits.contiguous_copy();
  const auto negated_scale = (-row_scale).reshape({rows, 1}).expand({rows, classes});
  auto grad = empty<T, B>({rows, classes});
  if (grad.numel() == 0) return grad;
  B::softmax(source.data(), rows, classes, grad.data(), /*log=*/true);
  B::unary({backend::Unary::Exp}, grad.view(), grad.data());
  B::binary(backend::Binary::Mul, grad.view(), negated_scale.view(), grad.data());
  B::index_add(row_scale.data(), 1, rows, 1, flat_index.data(), rows * classes, grad.data());
  return grad;
}
}  // namespace detail

// KL(target || input) with `input` as log-probabilities (PyTorch's kl_div convention):
// target * (log target - input), taking 0 * log 0 = 0. With log_target, target holds log-probs.
template <class T, class B>
Tensor<T, B> kl_div(const Tensor<T, B>& input, const Tensor<T, B>& target, Reduction reduction = Reduction::Mean,
                    bool log_target = false) {
  check(input.shape() == target.shape(), "kl_div", "input ", input.shape(), " and target ", target.shape(), " differ");
  Tensor<T, B> pointwise;
  if (log_target) {
    pointwise = exp(target) * (target - input);
  } else {
    // log(where(t > 0, t, 1)) keeps the unused branch finite, so no NaN reaches the gradient.
    auto positive = target > 0.0;
    auto safe_log = log(where(positive, target, ones_like(target)));
    pointwise = target * (safe_log - input);
  }
  return detail::reduce_loss(pointwise, reduction);
}

// Binary cross-entropy on logits x with targets z in [0, 1], in the stable form
// max(x, 0) - x z + log(1 + exp(-|x|)); its own rule gives sigmoid(x) - z exactly, also at 0.
template <class T, class B>
Tensor<T, B> binary_cross_entropy_with_logits(const Tensor<T, B>& logits, const Tensor<T, B>& targets,
                                              Reduction reduction = Reduction::Mean) {
  check(logits.shape() == targets.shape(), "binary_cross_entropy_with_logits", "logits ", logits.shape(),
        " and targets ", targets.shape(), " differ");
  Tensor<T, B> losses;
  {
    NoGradGuard forward_only;
    losses = relu(logits) - logits * targets + log(exp(-abs(logits)) + 1.0);
  }
  if (auto node = record<Op::BinaryCrossEntropyWithLogits>("binary_cross_entropy_with_logits", losses, {&logits, &targets})) {
    node->save(logits);
    node->save(targets);
  }
  return detail::reduce_loss(losses, reduction);
}

}  // namespace tensortape
