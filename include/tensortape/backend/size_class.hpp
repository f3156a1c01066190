// The size classes both caching allocators (host and CUDA) round requests up to, so blocks
// freed by one tensor serve the next tensor of a nearby size.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>

namespace tensortape::backend {

// Bytes in the class that serves a request: at least 512, then steps of a quarter of the
// request's power of two (1024, 1280, 1536, 1792, 2048, 2560, ...), so a block is at most
// 25% larger than asked and nearby sizes share blocks.
constexpr std::size_t size_class(std::size_t bytes) {
  constexpr std::size_t kMinimum = 512;
  if (bytes <= kMinimum) return kMinimum;
  const std::size_t step = std::max(kMinimum, std::bit_floor(bytes) / 4);
  return (bytes + step - 1) / step * step;
}

}  // namespace tensortape::backend
