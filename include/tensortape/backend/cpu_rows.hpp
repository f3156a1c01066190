// Splits same-shaped strided views into rows, so that a vectorising CPU backend can run one
// contiguous kernel per row instead of one scalar step per element.
//
//   // a (4, 5, 6) contiguous, bias (6) expanded to (4, 5, 6) with strides (0, 0, 1)
//   auto rows = cpu::split_rows<2>(a.shape, {&a.strides, &bias.strides});
//   // rows.outer_shape == {20}, rows.length == 6, rows.step == {1, 1}
//   cpu::for_each_row(rows, a.data, [&](const auto& offsets, std::int64_t length) {
//     /* `length` elements of a row at offsets[0], of bias at offsets[1] */
//   });
#pragma once

#include <array>
#include <cstdint>

#include "tensortape/backend/cpu_common.hpp"
#include "tensortape/backend/cpu_parallel.hpp"
#include "tensortape/core/scalar_math.hpp"

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

// Calls visit(offsets) for `count` consecutive rows starting at row `first` (rows numbered in
// row-major order of outer_shape), offsets[v] being where view v's row starts.
template <std::size_t N, class Visit>
void walk_rows(const Rows<N>& rows, std::int64_t first, std::int64_t count, Visit&& visit) {
  const Shape& shape = rows.outer_shape;
  const std::size_t rank = shape.size();
  Shape index(rank, 0);
  std::array<std::int64_t, N> offsets{};
  for (std::size_t d = rank; d-- > 0;) {
    index[d] = first % shape[d];
    first /= shape[d];
    for (std::size_t v = 0; v < N; ++v) offsets[v] += index[d] * rows.outer_strides[v][d];
  }
  for (std::int64_t i = 0; i < count; ++i) {
    visit(offsets);
    for (std::size_t d = rank; d-- > 0;) {  // odometer, updating offsets incrementally
      if (++index[d] < shape[d]) {
        for (std::size_t v = 0; v < N; ++v) offsets[v] += rows.outer_strides[v][d];
        break;
      }
      for (std::size_t v = 0; v < N; ++v) offsets[v] -= rows.outer_strides[v][d] * (shape[d] - 1);
      index[d] = 0;
    }
  }
}

// Calls visit(offsets, length) for pieces covering every row, in parallel (cpu_parallel.hpp):
// whole rows when there are at least as many rows as threads, else each row cut into pieces at
// aligned addresses of view 0 (whose data is `view0`), so one long contiguous row still spreads
// over the threads. offsets[v] is where view v's piece starts; a piece spans `length` elements.
template <std::size_t N, class T, class Visit>
void for_each_row(const Rows<N>& rows, const T* view0, Visit&& visit) {
  std::int64_t row_count = 1;
  for (auto d : rows.outer_shape) row_count *= d;
  if (row_count == 0 || rows.length == 0) return;
  if (row_count >= parallel_threads(row_count * rows.length) || rows.step[0] != 1) {
    parallel_ranges(row_count, rows.length, [&](std::int64_t begin, std::int64_t end) {
      walk_rows(rows, begin, end - begin, [&](const auto& offsets) { visit(offsets, rows.length); });
    });
    return;
  }
  walk_rows(rows, 0, row_count, [&](const auto& row) {
    parallel_aligned_ranges(view0 + row[0], rows.length, [&](std::int64_t lo, std::int64_t hi) {
      auto offsets = row;
      for (std::size_t v = 0; v < N; ++v) offsets[v] += lo * rows.step[v];
      visit(offsets, hi - lo);
    });
  });
}

// A binary op over rows too short or too strided for a vector kernel per row to pay: a scalar
// loop along each row, compiled once per op, the rows spread over the threads as for_each_row
// does. rows: split_rows<3> of (dst, a, b), dst contiguous.
template <class T>
void binary_rows_scalar(Binary op, const Rows<3>& rows, const T* a, const T* b, T* dst) {
  const std::int64_t a_step = rows.step[1], b_step = rows.step[2];  // dst's is 1: it is contiguous
  const bool unit = a_step == 1 && b_step == 1;
  scalar::with_binary_op(op, [&](auto op_constant) {
    constexpr auto f = [](T x, T y) { return scalar::binary_of<decltype(op_constant)::value>(x, y); };
    for_each_row(rows, dst, [&](const auto& offset, std::int64_t length) {
      const T* x = a + offset[1];
      const T* y = b + offset[2];
      T* out = dst + offset[0];
      if (unit) {  // short contiguous rows (a key mask added to scores): a loop the compiler vectorises
        for (std::int64_t i = 0; i < length; ++i) out[i] = f(x[i], y[i]);
      } else {
        for (std::int64_t i = 0; i < length; ++i) out[i] = f(x[i * a_step], y[i * b_step]);
      }
    });
  });
}

// Strided copy by rows, split over threads: whole contiguous rows move with memcpy (head
// splits, narrowed windows, concat), others element by element along the row (transposes).
template <class T>
void copy_rows(ConstView<T> src, StridedView<T> dst) {
  if (numel_of(src.shape) == 0) return;
  const auto rows = split_rows<2>(src.shape, {&dst.strides, &src.strides});
  const std::int64_t to_step = rows.step[0], from_step = rows.step[1];
  for_each_row(rows, dst.data, [&](const auto& offset, std::int64_t length) {
    T* to = dst.data + offset[0];
    const T* from = src.data + offset[1];
    if (from_step == 1 && to_step == 1) return copy(from, length, to);
    for (std::int64_t i = 0; i < length; ++i) to[i * to_step] = from[i * from_step];
  });
}

}  // namespace tensortape::backend::cpu
