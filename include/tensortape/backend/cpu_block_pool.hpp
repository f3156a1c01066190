// Large host blocks carved out of a few big mappings that stay mapped: the CPU storage's
// blocks of kPooledBlockBytes and more come from here (backend::cpu::CachingAllocator), the rest
// from operator new.
//
// Why: glibc's malloc serves a training step's activations (blocks of 0.25-4 MiB, freed in the
// backward pass in about the reverse order they were made) from its heap, between the small
// objects every op makes, and the process's peak grows by the gaps they leave (TS-1: tensors
// at most 104 MiB, the process +150 MiB). A mapping of its own for each block closes the gaps but
// zero-fills its pages again each step (a page-fault storm; steps 1.2-2x as long). The pool
// keeps its mappings, so a page is faulted in once, and places each block best-fit (the smallest
// free range that holds it, the lowest address among equals), splitting a range and joining it
// with its free neighbours again on release. In loops of steady shapes the pages it touches stay
// close to the most its blocks held at once; where shapes change from step to step (editlab's
// pretraining) they grow over a long run, faster than malloc's heap, since the pool never gives
// pages back while their mapping holds a block. docs/benchmarks.md, "Large tensor blocks from a
// pool of their own".
//
// Not thread-safe: its owner locks around it. Recording a released range takes a small node
// from the heap; if that fails, release() (noexcept) ends the process. Under AddressSanitizer
// the pages of free ranges are poisoned, so that reading a freed block is still reported.
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <new>
#include <set>
#include <utility>

#if defined(__SANITIZE_ADDRESS__)
#define TENSORTAPE_POOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TENSORTAPE_POOL_ASAN 1
#endif
#endif
#if defined(TENSORTAPE_POOL_ASAN)
#include <sanitizer/asan_interface.h>
#define TENSORTAPE_POOL_POISON(start, bytes) ASAN_POISON_MEMORY_REGION(start, bytes)
#define TENSORTAPE_POOL_UNPOISON(start, bytes) ASAN_UNPOISON_MEMORY_REGION(start, bytes)
#else
#define TENSORTAPE_POOL_POISON(start, bytes) ((void)(start), (void)(bytes))
#define TENSORTAPE_POOL_UNPOISON(start, bytes) ((void)(start), (void)(bytes))
#endif

namespace tensortape::backend::cpu {

class BlockPool {
 public:
  static constexpr std::size_t kGranule = 4096;                      // every block is page-aligned and a whole number of pages
  static constexpr std::size_t kSegmentBytes = std::size_t{64} << 20;  // one mapping's least size (untouched pages cost nothing)

  BlockPool() = default;
  ~BlockPool() {
    for (auto [base, bytes] : segments_) unmap(base, bytes);
  }
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  // A page-aligned block of at least `bytes` (> 0) bytes; throws std::bad_alloc when the OS
  // gives no mapping.
  void* allocate(std::size_t bytes) {
    const std::size_t size = rounded(bytes);
    auto fit = free_by_size_.lower_bound({size, nullptr});  // best fit, lowest address among equals
    if (fit == free_by_size_.end()) {
      add_segment(size);
      fit = free_by_size_.lower_bound({size, nullptr});
    }
    const auto [length, start] = *fit;
    take(start, length);
    if (length > size) give(start + size, length - size);
    used_bytes_ += size;
    TENSORTAPE_POOL_UNPOISON(start, size);
    return start;
  }

  // Takes back a block allocate(bytes) returned, with the same `bytes`, and joins it with the
  // free ranges on either side within its mapping.
  void release(void* block, std::size_t bytes) noexcept {
    auto* start = static_cast<char*>(block);
    std::size_t length = rounded(bytes);
    used_bytes_ -= length;
    TENSORTAPE_POOL_POISON(start, length);
    auto* const segment = segment_of(start);
    if (auto next = free_by_address_.find(start + length); next != free_by_address_.end() && segment_of(next->first) == segment) {
      const auto next_length = next->second;
      take(next->first, next_length);
      length += next_length;
    }
    if (auto after = free_by_address_.lower_bound(start); after != free_by_address_.begin()) {
      const auto before = std::prev(after);
      if (before->first + before->second == start && segment_of(before->first) == segment) {
        auto* const before_start = before->first;
        const auto before_length = before->second;
        take(before_start, before_length);
        start = before_start;
        length += before_length;
      }
    }
    give(start, length);
  }

  // Unmaps every mapping none of whose blocks is in use.
  void release_free_segments() noexcept {
    for (auto it = segments_.begin(); it != segments_.end();) {
      auto [base, bytes] = *it;
      if (auto range = free_by_address_.find(base); range != free_by_address_.end() && range->second == bytes) {
        take(base, bytes);
        unmap(base, bytes);
        mapped_bytes_ -= bytes;
        it = segments_.erase(it);
      } else {
        ++it;
      }
    }
  }

  std::size_t used_bytes() const { return used_bytes_; }      // in blocks handed out
  std::size_t mapped_bytes() const { return mapped_bytes_; }  // in mappings (touched or not)
  std::size_t segments() const { return segments_.size(); }

 private:
  static std::size_t rounded(std::size_t bytes) { return (std::max<std::size_t>(bytes, 1) + kGranule - 1) / kGranule * kGranule; }

  void add_segment(std::size_t least) {
    const std::size_t bytes = std::max(kSegmentBytes, (least + kSegmentBytes - 1) / kSegmentBytes * kSegmentBytes);
    void* base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) throw std::bad_alloc();
    segments_.emplace(static_cast<char*>(base), bytes);
    mapped_bytes_ += bytes;
    TENSORTAPE_POOL_POISON(base, bytes);
    give(static_cast<char*>(base), bytes);
  }

  // The shadow of unmapped pages must not stay poisoned: a later mapping may reuse them.
  static void unmap(char* base, std::size_t bytes) noexcept {
    TENSORTAPE_POOL_UNPOISON(base, bytes);
    munmap(base, bytes);
  }

  // The mapping that holds `address` (its base).
  char* segment_of(char* address) const { return std::prev(segments_.upper_bound(address))->first; }

  void give(char* start, std::size_t length) {
    free_by_address_.emplace(start, length);
    free_by_size_.emplace(length, start);
  }
  void take(char* start, std::size_t length) {
    free_by_address_.erase(start);
    free_by_size_.erase({length, start});
  }

  std::map<char*, std::size_t> segments_;                // base -> bytes
  std::map<char*, std::size_t> free_by_address_;         // free range's start -> length
  std::set<std::pair<std::size_t, char*>> free_by_size_;  // (length, start) of the same ranges
  std::size_t used_bytes_ = 0;
  std::size_t mapped_bytes_ = 0;
};

}  // namespace tensortape::backend::cpu
