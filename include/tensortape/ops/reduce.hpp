// Reductions over any set of axes (all axes when none are given), with keepdim.
//
//   auto total = tt::sum(x);                    // scalar
//   auto rows = tt::mean(x, {-1}, true);        // (B, 1)
//   auto peak = tt::max(x, {0});                // (D)
#pragma once

#include <algorithm>

#include "tensortape/autograd/node.hpp"
#include "tensortape/ops/views.hpp"

namespace tensortape {

namespace detail {

// Sorted unique axes; empty input means every axis.
inline std::vector<std::size_t> normalize_axes(const std::vector<std::int64_t>& axes, std::size_t rank, const char* op) {
  std::vector<std::size_t> out;
  if (axes.empty()) {
    for (std::size_t i = 0; i < rank; ++i) out.push_back(i);
    return out;
  }
  for (auto axis : axes) out.push_back(wrap_axis(axis, rank, op));
  std::sort(out.begin(), out.end());
  check(std::adjacent_find(out.begin(), out.end()) == out.end(), op, "repeated axis");
  return out;
}

inline Shape keepdim_shape(const Shape& shape, const std::vector<std::size_t>& axes) {
  Shape out = shape;
  for (auto axis : axes) out[axis] = 1;
  return out;
}

inline Shape dropped_shape(const Shape& shape, const std::vector<std::size_t>& axes) {
  Shape out;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (!std::binary_search(axes.begin(), axes.end(), i)) out.push_back(shape[i]);
  }
  return out;
}

// Reduces `axes` of x into a new contiguous tensor (reduced axes kept as 1 when keepdim, else
// dropped). Runs of adjacent axes are merged so that, e.g., a full sum is a single pass.
template <class T, class B>
Tensor<T, B> reduce_kernel(backend::Reduce op, const Tensor<T, B>& x, const std::vector<std::size_t>& axes, bool keepdim) {
  // With no axis to reduce (a scalar input) the result must still be a fresh buffer.
  Tensor<T, B> current = x.is_contiguous() && !axes.empty() ? x.detach() : x.contiguous_copy();
  Shape shape = x.shape();
  for (std::size_t run_end = axes.size(); run_end > 0;) {
    // Find the run [first, last] of consecutive axes ending at axes[run_end - 1].
    std::size_t run_begin = run_end - 1;
    while (run_begin > 0 && axes[run_begin - 1] + 1 == axes[run_begin]) --run_begin;
    const std::size_t first = axes[run_begin], last = axes[run_end - 1];
    std::int64_t outer = 1, n = 1, inner = 1;
    for (std::size_t d = 0; d < shape.size(); ++d) {
      if (d < first) outer *= shape[d];
      else if (d <= last) n *= shape[d];
      else inner *= shape[d];
    }
    for (std::size_t d = first; d <= last; ++d) shape[d] = 1;
    auto reduced = empty<T, B>(shape);
    if (reduced.numel() > 0) {
      if (n == 0) {
        // An empty reduction: sum is 0, max has no value.
        check(op == backend::Reduce::Sum, "max", "reduction over an empty axis of shape ", x.shape());
        B::fill(reduced.data(), reduced.numel(), T(0));
      } else {
        B::reduce(op, current.data(), outer, n, inner, reduced.data());
      }
    }
    current = reduced;
    run_end = run_begin;
  }
  return Tensor<T, B>(current.storage(), Layout::contiguous(keepdim ? shape : dropped_shape(x.shape(), axes)));
}

}  // namespace detail

template <class T, class B>
Tensor<T, B> sum(const Tensor<T, B>& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false) {
  check(x.defined(), "sum", "undefined tensor argument");
  const auto reduced_axes = detail::normalize_axes(axes, x.shape().size(), "sum");
  auto out = detail::reduce_kernel(backend::Reduce::Sum, x, reduced_axes, keepdim);
  if (auto node = record<Op::Sum>("sum", out, {&x})) node->ints.assign(reduced_axes.begin(), reduced_axes.end());
  return out;
}

template <class T, class B>
Tensor<T, B> mean(const Tensor<T, B>& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false) {
  const auto reduced_axes = detail::normalize_axes(axes, x.shape().size(), "mean");
  std::int64_t count = 1;
  for (auto axis : reduced_axes) count *= x.shape()[axis];
  return sum(x, axes, keepdim) * (1.0 / static_cast<double>(count));
}

// Max over axes. Its gradient is shared evenly between tied maxima (like torch.amax).
template <class T, class B>
Tensor<T, B> max(const Tensor<T, B>& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false) {
  check(x.defined(), "max", "undefined tensor argument");
  const auto reduced_axes = detail::normalize_axes(axes, x.shape().size(), "max");
  auto out = detail::reduce_kernel(backend::Reduce::Max, x, reduced_axes, keepdim);
  if (auto node = record<Op::Max>("max", out, {&x})) {
    node->ints.assign(reduced_axes.begin(), reduced_axes.end());
    node->save(x);
    node->save_output(out);
  }
  return out;
}

// Sums `grad` down to `shape` over the axes that broadcasting expanded: the one place where
// broadcast reduction happens for every rule (tinygrad / PyTorch sum_to).
template <class T, class B>
Tensor<T, B> sum_to(const Tensor<T, B>& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  const std::size_t lead = grad.shape().size() - shape.size();
  std::vector<std::int64_t> axes;
  for (std::size_t i = 0; i < grad.shape().size(); ++i) {
    if (i < lead || (shape[i - lead] == 1 && grad.shape()[i] != 1)) axes.push_back(static_cast<std::int64_t>(i));
  }
  auto reduced = axes.empty() ? grad : sum(grad, axes, true);
  return reduced.reshape(shape);
}

}  // namespace tensortape
