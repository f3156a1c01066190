// Splits same-shaped strided views into rows, so that a vectorising CPU backend can run one
// contiguous kernel per row instead of one scalar step per element.
//
//   // a (4, 5, 6) contiguous, bias (6) expanded to (4, 5, 6) with strides (0, 0, 1)
//   auto rows = cpu::split_rows<2>(a.shape, {&a.strides, &bias.strides});
//   // rows.outer_shape == {20}, rows.length == 6, rows.step == {1, 1}
//   cpu::for_each_row(rows, [&](const auto& offsets) { /* a row at offsets[0], bias at offsets[1] */ });
#pragma once

#include <array>
#include <cstdint>

#include "tensortape/backend/cpu_common.hpp"

namespace tensortape::backend::cpu {

template <std::size_t N>
struct Rows {
  Shape outer_shape;                   // the dims walked row by row
  std::array<Shape, N> outer_strides;  // per view, strides of outer_shape
  std::int64_t length = 1;             // elements per row
  std::array<std::int64_t, N> step{};  // per view, element stride along a row (0 = broadcast)

  // True when every view moves by 0 or 1 along a row: a row is a contiguous run or a scalar.
  bool unit_or_broadcast() const {
    for (auto s : step) if (s != 0 && s != 1) return false;
    return true;
  }
};

// Drops size-1 dims and merges adjacent dims that every view walks evenly (stride of the outer
// dim == stride * size of the inner one), so a contiguous tensor becomes one row and a
// broadcast bias becomes (rows, length) with step 0 for the repeated part.
template <std::size_t N>
Rows<N> split_rows(const Shape& shape, const std::array<const Shape*, N>& strides) {
  Shape dims;
  std::array<Shape, N> dim_strides;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool mergeable = !dims.empty();
    for (std::size_t v = 0; v < N && mergeable; ++v) {
      mergeable = dim_strides[v].back() == (*strides[v])[d] * shape[d];
    }
    if (mergeable) {
      dims.back() *= shape[d];
      for (std::size_t v = 0; v < N; ++v) dim_strides[v].back() = (*strides[v])[d];
    } else {
      dims.push_back(shape[d]);
      for (std::size_t v = 0; v < N; ++v) dim_strides[v].push_back((*strides[v])[d]);
    }
  }
  Rows<N> rows;
  if (dims.empty()) return rows;  // a single element: one row of length 1
  rows.length = dims.back();
  dims.pop_back();
  rows.outer_shape = std::move(dims);
  for (std::size_t v = 0; v < N; ++v) {
    rows.step[v] = dim_strides[v].back();
    dim_strides[v].pop_back();
    rows.outer_strides[v] = std::move(dim_strides[v]);
  }
  return rows;
}

// Calls visit(offsets) once per row, offsets[v] being where view v's row starts.
template <std::size_t N, class Visit>
void for_each_row(const Rows<N>& rows, Visit&& visit) {
  std::array<const Shape*, N> strides;
  for (std::size_t v = 0; v < N; ++v) strides[v] = &rows.outer_strides[v];
  for_each_offset<N>(rows.outer_shape, strides, visit);
}

// Strided copy that moves whole contiguous rows with memcpy (head splits, narrowed windows,
// concat); returns false, copying nothing, when rows are not contiguous on both sides.
template <class T>
bool copy_contiguous_rows(ConstView<T> src, StridedView<T> dst) {
  const auto rows = split_rows<2>(src.shape, {&src.strides, &dst.strides});
  if (rows.step[0] != 1 || rows.step[1] != 1) return false;
  for_each_row(rows, [&](const auto& offset) { copy(src.data + offset[0], rows.length, dst.data + offset[1]); });
  return true;
}

}  // namespace tensortape::backend::cpu
