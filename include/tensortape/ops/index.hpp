// Gathers and scatters along one axis with int64 indices: index_select, its adjoint
// index_add, and embedding lookup (gather forward, scatter-add backward).
//
//   auto ids = tt::from_vector<std::int64_t, Cpu>({2, 3}, {5, 1, 0, 2, 2, 9});
//   auto vectors = tt::embedding(table, ids);          // table (V, D) -> (2, 3, D)
//   auto picked = tt::index_select(x, 1, columns);     // x (N, C), columns (K) -> (N, K)
#pragma once

#include "tensortape/autograd/node.hpp"
#include "tensortape/ops/views.hpp"

namespace tensortape {

namespace detail {

// (outer, dim, inner) sizes of x around `axis`.
inline void split_around_axis(const Shape& shape, std::size_t axis, std::int64_t& outer, std::int64_t& inner) {
  outer = 1;
  inner = 1;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (d < axis) outer *= shape[d];
    if (d > axis) inner *= shape[d];
  }
}

// Checks that every index is in [0, bound); the indices come to the host once for this.
template <class B>
void check_indices(const Tensor<std::int64_t, B>& index, std::int64_t bound, const char* op) {
  check(index.defined() && index.dim() == 1, op, "index must be 1-D, got ", index.shape());
  for (auto i : index.to_vector()) {
    check(i >= 0 && i < bound, op, "index ", i, " out of range [0, ", bound, ")");
  }
}

}  // namespace detail

template <class T, class B>
Tensor<T, B> index_select(const Tensor<T, B>& x, std::int64_t axis, const Tensor<std::int64_t, B>& index) {
  check(x.defined(), "index_select", "undefined tensor argument");
  const std::size_t ax = wrap_axis(axis, x.shape().size(), "index_select");
  detail::check_indices(index, x.shape()[ax], "index_select");
  const auto packed_index = index.is_contiguous() ? index : index.contiguous_copy();
  const auto source = x.is_contiguous() ? x.detach() : x.contiguous_copy();
  std::int64_t outer, inner;
  detail::split_around_axis(x.shape(), ax, outer, inner);
  Shape shape = x.shape();
  shape[ax] = index.numel();
  auto out = empty<T, B>(shape);
  if (out.numel() > 0) {
    B::index_select(source.data(), outer, x.shape()[ax], inner, packed_index.data(), index.numel(), out.data());
  }
  if (auto node = record<Op::IndexSelect>("index_select", out, {&x})) {
    node->ints = {static_cast<std::int64_t>(ax)};
    node->save_index(packed_index);
  }
  return out;
}

// zeros of `shape` plus source's slices added at positions `index` along `axis`
// (repeated indices accumulate): the adjoint of index_select.
template <class T, class B>
Tensor<T, B> index_add(const Tensor<T, B>& source, std::int64_t axis, const Tensor<std::int64_t, B>& index, const Shape& shape) {
  const std::size_t ax = wrap_axis(axis, shape.size(), "index_add");
  detail::check_indices(index, shape[ax], "index_add");
  Shape expected = shape;
  expected[ax] = index.numel();
  check(source.shape() == expected, "index_add", "source ", source.shape(), " should be ", expected, " for ",
        index.numel(), " indices into ", shape);
  const auto packed_index = index.is_contiguous() ? index : index.contiguous_copy();
  const auto packed_source = source.is_contiguous() ? source.detach() : source.contiguous_copy();
  std::int64_t outer, inner;
  detail::split_around_axis(shape, ax, outer, inner);
  auto out = zeros<T, B>(shape);
  if (source.numel() > 0) {
    B::index_add(packed_source.data(), outer, index.numel(), inner, packed_index.data(), shape[ax], out.data());
  }
  if (auto node = record<Op::IndexAdd>("index_add", out, {&source})) {
    node->ints = {static_cast<std::int64_t>(ax)};
    node->save_index(packed_index);
  }
  return out;
}

// table (V, D), ids of any shape -> (ids..., D)
template <class T, class B>
Tensor<T, B> embedding(const Tensor<T, B>& table, const Tensor<std::int64_t, B>& ids) {
  check(table.dim() == 2, "embedding", "table must be (V, D), got ", table.shape());
  Shape shape = ids.shape();
  shape.push_back(table.shape()[1]);
  return index_select(table, 0, ids.reshape({ids.numel()})).reshape(shape);
}

}  // namespace tensortape
