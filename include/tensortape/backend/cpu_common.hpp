// Pieces shared by the CPU backends: host allocation (cpu_allocator.hpp) and a strided multi-index walker
// that visits every element of up to four same-shaped strided views.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "tensortape/backend/cpu_allocator.hpp"
#include "tensortape/backend/kinds.hpp"

namespace tensortape::backend::cpu {

template <class T>
void copy(const T* src, std::int64_t n, T* dst) {
  if (n > 0) std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(T));
}

// Calls visit(offsets) for every index of `shape`, where offsets[v] is the element offset of
// that index in view v (given by strides[v]). The last dim is the inner loop.
template <std::size_t N, class Visit>
void for_each_offset(const Shape& shape, const std::array<const Shape*, N>& strides, Visit&& visit) {
  const std::size_t rank = shape.size();
  for (auto d : shape) if (d == 0) return;
  std::array<std::int64_t, N> offsets{};
  if (rank == 0) {
    visit(offsets);
    return;
  }
  Shape index(rank, 0);
  const std::int64_t inner = shape[rank - 1];
  for (;;) {
    std::array<std::int64_t, N> row = offsets;
    for (std::int64_t i = 0; i < inner; ++i) {
      visit(row);
      for (std::size_t v = 0; v < N; ++v) row[v] += (*strides[v])[rank - 1];
    }
    // Advance the outer multi-index (odometer), updating offsets incrementally.
    std::size_t d = rank - 1;
    for (;;) {
      if (d == 0) return;
      --d;
      if (++index[d] < shape[d]) {
        for (std::size_t v = 0; v < N; ++v) offsets[v] += (*strides[v])[d];
        break;
      }
      for (std::size_t v = 0; v < N; ++v) offsets[v] -= (*strides[v])[d] * (shape[d] - 1);
      index[d] = 0;
    }
  }
}

}  // namespace tensortape::backend::cpu
