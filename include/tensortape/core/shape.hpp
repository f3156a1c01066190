// Shapes and layouts. A Layout is the view of a buffer: dims, strides and an offset, all in
// elements (CuTe / ggml ne-nb style). Every view op (reshape, transpose, narrow, expand) only
// builds a new Layout; storage is never touched.
//
//   Layout l = Layout::contiguous({2, 3});     // strides [3, 1]
//   Layout t = l.transposed(0, 1);             // shape [3, 2], strides [1, 3], no copy
//   bool c = t.is_contiguous();                // false
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "tensortape/core/error.hpp"

namespace tensortape {

using Shape = std::vector<std::int64_t>;

// The number of elements; throws on a negative dim or a product past int64 (a wrapped count
// would size a buffer smaller than the shape that indexes it).
inline std::int64_t numel_of(const Shape& shape) {
  std::int64_t n = 1;
  for (std::int64_t d : shape) {
    check(d >= 0, "shape", "negative dimension ", d, " in ", shape);
    check(!__builtin_mul_overflow(n, d, &n), "shape", shape, " has more elements than int64 can count");
  }
  return n;
}

inline Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  std::int64_t running = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    strides[i] = running;
    check(shape[i] >= 0, "shape", "negative dimension ", shape[i], " in ", shape);
    check(!__builtin_mul_overflow(running, shape[i], &running), "shape", shape, " has more elements than int64 can count");
  }
  return strides;
}

// Wraps a possibly negative axis (-1 = last) into [0, rank); throws naming the op otherwise.
inline std::size_t wrap_axis(std::int64_t axis, std::size_t rank, const char* op) {
  const auto r = static_cast<std::int64_t>(rank);
  check(axis >= -r && axis < r, op, "axis ", axis, " out of range for a tensor of rank ", rank);
  return static_cast<std::size_t>(axis < 0 ? axis + r : axis);
}

// NumPy broadcasting: align trailing dims; each pair must match or one must be 1.
inline Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const std::size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    const std::int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const std::int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1) {
      fail(op, "shapes ", a, " and ", b, " do not broadcast (dim ", i, ": ", da, " vs ", db, ")");
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

struct Layout {
  Shape shape;
  Shape strides;
  std::int64_t offset = 0;

  static Layout contiguous(Shape shape) {
    Layout layout;
    layout.strides = contiguous_strides(shape);
    layout.shape = std::move(shape);
    return layout;
  }

  std::size_t rank() const { return shape.size(); }
  std::int64_t numel() const { return numel_of(shape); }

  bool is_contiguous() const {
    std::int64_t expected = 1;
    for (std::size_t i = shape.size(); i-- > 0;) {
      if (shape[i] != 1 && strides[i] != expected) return false;
      expected *= shape[i];
    }
    return true;
  }

  Layout transposed(std::size_t a, std::size_t b) const {
    Layout out = *this;
    std::swap(out.shape[a], out.shape[b]);
    std::swap(out.strides[a], out.strides[b]);
    return out;
  }

  Layout permuted(const std::vector<std::size_t>& order) const {
    Layout out = *this;
    for (std::size_t i = 0; i < order.size(); ++i) {
      out.shape[i] = shape[order[i]];
      out.strides[i] = strides[order[i]];
    }
    return out;
  }

  Layout narrowed(std::size_t axis, std::int64_t start, std::int64_t length) const {
    Layout out = *this;
    out.offset += start * strides[axis];
    out.shape[axis] = length;
    return out;
  }

  // The same elements seen with `target` dims (broadcast dims get stride 0). `target` must be
  // a broadcast of this shape; callers check with broadcast_shapes first.
  Layout expanded(const Shape& target) const {
    Layout out;
    out.shape = target;
    out.strides.assign(target.size(), 0);
    out.offset = offset;
    const std::size_t lead = target.size() - shape.size();
    for (std::size_t i = 0; i < shape.size(); ++i) {
      out.strides[lead + i] = shape[i] == target[lead + i] ? strides[i] : 0;
    }
    return out;
  }

  // Reshape without copying when every group of old dims being merged or split is laid out
  // as one evenly strided run (PyTorch's view rule); returns false when a copy is needed.
  bool try_reshape(const Shape& target, Layout& out) const {
    out.shape = target;
    out.offset = offset;
    out.strides.assign(target.size(), 1);
    if (is_contiguous() || numel() == 0) {
      out.strides = contiguous_strides(target);
      return true;
    }
    auto view_d = static_cast<std::int64_t>(target.size()) - 1;
    std::int64_t chunk_stride = strides.back();
    std::int64_t old_numel = 1, view_numel = 1;
    for (auto d = static_cast<std::int64_t>(shape.size()) - 1; d >= 0; --d) {
      old_numel *= shape[d];
      const bool chunk_ends = d == 0 || (shape[d - 1] != 1 && strides[d - 1] != old_numel * chunk_stride);
      if (!chunk_ends) continue;
      while (view_d >= 0 && (view_numel < old_numel || target[view_d] == 1)) {
        out.strides[view_d] = view_numel * chunk_stride;
        view_numel *= target[view_d];
        --view_d;
      }
      if (view_numel != old_numel) return false;
      if (d > 0) {
        chunk_stride = strides[d - 1];
        old_numel = 1;
        view_numel = 1;
      }
    }
    return view_d == -1;
  }
};

}  // namespace tensortape
