// View and shape ops. reshape, transpose, permute, narrow, expand, unsqueeze and squeeze share
// storage with their input whenever the layout allows (reshape of a non-contiguous tensor may
// copy); concat and stack copy. All are differentiable.
//
//   auto heads = x.reshape({B, S, H, Dh}).transpose(1, 2);   // (B, H, S, Dh), no copy
//   auto first = x.narrow(1, 0, 1);                          // (B, 1, D) view
//   auto both = tt::concat({prefix, inputs}, 1);             // (B, P + S, D)
#pragma once

#include <numeric>

#include "tensortape/autograd/node.hpp"
#include "tensortape/core/tensor.hpp"

namespace tensortape {

namespace detail {
template <class T, class B>
Tensor<T, B> with_layout(const Tensor<T, B>& x, Layout layout) {
  return Tensor<T, B>(x.storage(), std::move(layout));
}
}  // namespace detail

template <class T, class B>
Tensor<T, B> Tensor<T, B>::reshape(Shape target) const {
  // Resolve one -1 from the element count.
  std::int64_t known = 1, inferred_axis = -1;
  for (std::size_t i = 0; i < target.size(); ++i) {
    if (target[i] == -1) {
      check(inferred_axis < 0, "reshape", "only one -1 allowed in ", target);
      inferred_axis = static_cast<std::int64_t>(i);
    } else {
      check(target[i] >= 0, "reshape", "negative dimension in ", target);
      known *= target[i];
    }
  }
  if (inferred_axis >= 0) {
    check(known != 0 && numel() % known == 0, "reshape", "cannot infer -1 in ", target, " from shape ", shape());
    target[inferred_axis] = numel() / known;
  }
  check(numel_of(target) == numel(), "reshape", "shape ", shape(), " (", numel(), " elements) cannot become ", target);

  Layout viewed;
  Tensor out = layout().try_reshape(target, viewed) ? detail::with_layout(*this, viewed)
                                                     : detail::with_layout(contiguous_copy(), Layout::contiguous(target));
  if (requires_grad()) record<Op::Reshape>("reshape", out, {this});
  return out;
}

template <class T, class B>
Tensor<T, B> Tensor<T, B>::permute(std::vector<std::int64_t> order) const {
  check(order.size() == layout().rank(), "permute", "order has ", order.size(), " axes for shape ", shape());
  std::vector<std::size_t> axes(order.size());
  std::vector<bool> seen(order.size(), false);
  for (std::size_t i = 0; i < order.size(); ++i) {
    axes[i] = wrap_axis(order[i], order.size(), "permute");
    check(!seen[axes[i]], "permute", "axis ", order[i], " repeated in the order");
    seen[axes[i]] = true;
  }
  Tensor out = detail::with_layout(*this, layout().permuted(axes));
  if (auto node = record<Op::Permute>("permute", out, {this})) {
    node->ints.assign(axes.begin(), axes.end());
  }
  return out;
}

template <class T, class B>
Tensor<T, B> Tensor<T, B>::transpose(std::int64_t a, std::int64_t b) const {
  const std::size_t rank = layout().rank();
  std::vector<std::int64_t> order(rank);
  std::iota(order.begin(), order.end(), 0);
  std::swap(order[wrap_axis(a, rank, "transpose")], order[wrap_axis(b, rank, "transpose")]);
  return permute(order);
}

template <class T, class B>
Tensor<T, B> Tensor<T, B>::narrow(std::int64_t axis, std::int64_t start, std::int64_t length) const {
  const std::size_t ax = wrap_axis(axis, layout().rank(), "narrow");
  check(start >= 0 && length >= 0 && start + length <= shape()[ax], "narrow", "range [", start, ", ",
        start + length, ") out of bounds for axis ", axis, " of shape ", shape());
  Tensor out = detail::with_layout(*this, layout().narrowed(ax, start, length));
  if (auto node = record<Op::Narrow>("narrow", out, {this})) {
    node->ints = {static_cast<std::int64_t>(ax), start};
  }
  return out;
}

template <class T, class B>
Tensor<T, B> Tensor<T, B>::expand(Shape target) const {
  check(target.size() >= layout().rank(), "expand", "cannot expand shape ", shape(), " to fewer dims ", target);
  const Shape broadcast = broadcast_shapes(shape(), target, "expand");
  check(broadcast == target, "expand", "shape ", shape(), " cannot expand to ", target);
  Tensor out = detail::with_layout(*this, layout().expanded(target));
  record<Op::Expand>("expand", out, {this});
  return out;
}

template <class T, class B>
Tensor<T, B> Tensor<T, B>::unsqueeze(std::int64_t axis) const {
  Shape target = shape();
  const std::size_t ax = wrap_axis(axis, target.size() + 1, "unsqueeze");
  target.insert(target.begin() + static_cast<std::ptrdiff_t>(ax), 1);
  return reshape(target);
}

template <class T, class B>
Tensor<T, B> Tensor<T, B>::squeeze(std::int64_t axis) const {
  Shape target = shape();
  const std::size_t ax = wrap_axis(axis, target.size(), "squeeze");
  check(target[ax] == 1, "squeeze", "axis ", axis, " of shape ", shape(), " is not 1");
  target.erase(target.begin() + static_cast<std::ptrdiff_t>(ax));
  return reshape(target);
}

template <class T, class B>
Tensor<T, B> Tensor<T, B>::contiguous() const {
  if (is_contiguous()) return *this;
  Tensor out = contiguous_copy();
  record<Op::Contiguous>("contiguous", out, {this});
  return out;
}

// zeros of `shape` with `source` written into [start, start + len) of `axis`: narrow's adjoint.
template <class T, class B>
Tensor<T, B> narrow_scatter(const Tensor<T, B>& source, const Shape& shape, std::int64_t axis, std::int64_t start) {
  auto out = zeros<T, B>(shape);
  const std::size_t ax = wrap_axis(axis, shape.size(), "narrow_scatter");
  const Layout window = out.layout().narrowed(ax, start, source.shape()[ax]);
  check(window.shape == source.shape(), "narrow_scatter", "source ", source.shape(), " does not fit ", shape);
  if (source.numel() > 0) B::copy_strided(source.view(), {out.data() + window.offset, window.shape, window.strides});
  if (auto node = record<Op::NarrowScatter>("narrow_scatter", out, {&source})) {
    node->ints = {static_cast<std::int64_t>(ax), start};
  }
  return out;
}

template <class T, class B>
Tensor<T, B> concat(const std::vector<Tensor<T, B>>& parts, std::int64_t axis) {
  check(!parts.empty(), "concat", "needs at least one tensor");
  const Shape& first = parts[0].shape();
  const std::size_t ax = wrap_axis(axis, first.size(), "concat");
  Shape shape = first;
  shape[ax] = 0;
  for (const auto& part : parts) {
    check(part.dim() == static_cast<std::int64_t>(first.size()), "concat", "rank mismatch: ", first, " vs ", part.shape());
    for (std::size_t d = 0; d < first.size(); ++d) {
      check(d == ax || part.shape()[d] == first[d], "concat", "shapes ", first, " and ", part.shape(),
            " differ outside axis ", axis);
    }
    shape[ax] += part.shape()[ax];
  }
  auto out = empty<T, B>(shape);
  std::int64_t offset = 0;
  std::vector<const Tensor<T, B>*> inputs;
  for (const auto& part : parts) {
    const Layout window = out.layout().narrowed(ax, offset, part.shape()[ax]);
    if (part.numel() > 0) B::copy_strided(part.view(), {out.data() + window.offset, window.shape, window.strides});
    offset += part.shape()[ax];
    inputs.push_back(&part);
  }
  if (auto node = record<Op::Concat>("concat", out, inputs)) {
    node->ints = {static_cast<std::int64_t>(ax)};
    for (const auto& part : parts) node->ints.push_back(part.shape()[ax]);
  }
  return out;
}

template <class T, class B>
Tensor<T, B> stack(const std::vector<Tensor<T, B>>& parts, std::int64_t axis) {
  check(!parts.empty(), "stack", "needs at least one tensor");
  std::vector<Tensor<T, B>> expanded;
  for (const auto& part : parts) {
    check(part.shape() == parts[0].shape(), "stack", "shapes ", parts[0].shape(), " and ", part.shape(), " differ");
    expanded.push_back(part.unsqueeze(axis));
  }
  return concat(expanded, axis);
}

}  // namespace tensortape
