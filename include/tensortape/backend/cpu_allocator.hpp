// A caching host allocator for the CPU backends' storage, as backend::cuda::CachingAllocator
// is for the device: a freed block goes to a free list keyed by its size class and serves the
// next request of that class. Off unless a program turns it on: it spares a loop that makes
// tensors of the same shapes every step most of its page faults (each large tensor otherwise is
// fresh memory from the OS, zero-filled a page at a time on first touch), and costs resident
// memory where shapes vary from step to step (docs/benchmarks.md, "A caching allocator for CPU
// storage").
//
//   auto& cache = tt::backend::cpu::CachingAllocator::instance();
//   cache.set_cache_limit(std::size_t(1) << 30);  // keep up to 1 GiB of freed blocks
//   cache.stats();                 // bytes in use / cached, peaks, OS calls, cache hits
//   cache.release_cached();        // give every cached block back to the OS
//   cache.set_cache_limit(0);      // cache nothing from now on (the default)
//
// Thread-safe (the data-parallel shards allocate at once). The cache never makes the storage
// held exceed the most that was ever in use at once (allocate evicts to keep it so), and holds
// at most cache_limit() bytes; a block released beyond that goes back to the OS. The statistics
// are kept with the cache off too.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include "tensortape/backend/size_class.hpp"

namespace tensortape::backend::cpu {

inline constexpr std::size_t kAlignment = 64;  // a cache line; enough for AVX-512 loads

struct HostAllocatorStats {
  std::int64_t bytes_in_use = 0;         // handed out and not yet released (size classes)
  std::int64_t bytes_cached = 0;         // released, held in the free lists
  std::int64_t peak_bytes_in_use = 0;
  std::int64_t peak_bytes_reserved = 0;  // in use + cached: what the process holds for tensors
  std::int64_t system_allocations = 0;   // blocks taken from the OS (operator new)
  std::int64_t system_frees = 0;         // blocks given back
  std::int64_t cache_hits = 0;           // allocations served from a free list
};

class CachingAllocator {
 public:
  // One per process, never destroyed: tensors in static storage may be freed after main returns.
  static CachingAllocator& instance() {
    static CachingAllocator* const allocator = new CachingAllocator;
    return *allocator;
  }

  CachingAllocator() = default;  // tests make their own; the backends use instance()
  ~CachingAllocator() { release_cached(); }  // blocks still in use are their owners' to free
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // A kAlignment-aligned block of at least `bytes` bytes; nullptr for 0. On a miss, cached
  // blocks of other classes go back to the OS first (largest first) until the cache plus what
  // is in use would not exceed the most ever in use: shapes that vary from step to step then
  // recycle memory through the OS instead of piling up a block per size class.
  void* allocate(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    const std::size_t size = size_class(bytes);
    std::vector<std::pair<void*, std::size_t>> evicted;  // freed after the lock is let go
    {
      std::lock_guard lock(mutex_);
      if (auto it = free_.find(size); it != free_.end() && !it->second.empty()) {
        void* block = it->second.back();
        it->second.pop_back();
        stats_.bytes_cached -= static_cast<std::int64_t>(size);
        ++stats_.cache_hits;
        count_in_use_locked(size);
        return block;
      }
      const std::int64_t in_use_after = stats_.bytes_in_use + static_cast<std::int64_t>(size);
      const std::int64_t room = std::max(high_water_, in_use_after) - in_use_after;  // cache may keep this much
      for (auto it = free_.rbegin(); it != free_.rend() && stats_.bytes_cached > room; ++it) {
        auto& blocks = it->second;
        while (!blocks.empty() && stats_.bytes_cached > room) {
          evicted.emplace_back(blocks.back(), it->first);
          blocks.pop_back();
          stats_.bytes_cached -= static_cast<std::int64_t>(it->first);
          ++stats_.system_frees;
        }
      }
    }
    for (auto [block, block_size] : evicted) ::operator delete(block, std::align_val_t{kAlignment});
    void* block = ::operator new(size, std::align_val_t{kAlignment});  // throws std::bad_alloc
    std::lock_guard lock(mutex_);
    ++stats_.system_allocations;
    count_in_use_locked(size);
    return block;
  }

  // Takes back a block allocate(bytes) returned, with the same `bytes`.
  void release(void* block, std::size_t bytes) noexcept {
    if (!block) return;
    const std::size_t size = size_class(bytes);
    {
      std::lock_guard lock(mutex_);
      stats_.bytes_in_use -= static_cast<std::int64_t>(size);
      if (stats_.bytes_cached + static_cast<std::int64_t>(size) <= static_cast<std::int64_t>(limit_)) {
        try {
          free_[size].push_back(block);
          stats_.bytes_cached += static_cast<std::int64_t>(size);
          return;
        } catch (const std::bad_alloc&) {
          // No room for the list entry: free the block instead.
        }
      }
      ++stats_.system_frees;
    }
    ::operator delete(block, std::align_val_t{kAlignment});
  }

  // Gives every cached block back to the OS.
  void release_cached() noexcept {
    std::lock_guard lock(mutex_);
    release_cached_locked();
  }

  // The most bytes the free lists may hold; lowering it below what they hold frees the cache.
  void set_cache_limit(std::size_t bytes) {
    std::lock_guard lock(mutex_);
    limit_ = bytes;
    if (stats_.bytes_cached > static_cast<std::int64_t>(limit_)) release_cached_locked();
  }
  std::size_t cache_limit() const {
    std::lock_guard lock(mutex_);
    return limit_;
  }

  // Starts the peaks again from what is held now, so a program can measure one phase's peak.
  void reset_peaks() {
    std::lock_guard lock(mutex_);
    stats_.peak_bytes_in_use = stats_.bytes_in_use;
    stats_.peak_bytes_reserved = stats_.bytes_in_use + stats_.bytes_cached;
  }

  HostAllocatorStats stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }

 private:
  void release_cached_locked() noexcept {
    for (auto& [size, blocks] : free_) {
      for (void* block : blocks) ::operator delete(block, std::align_val_t{kAlignment});
      stats_.system_frees += static_cast<std::int64_t>(blocks.size());
      stats_.bytes_cached -= static_cast<std::int64_t>(size * blocks.size());
      blocks.clear();
    }
  }

  void count_in_use_locked(std::size_t size) {
    stats_.bytes_in_use += static_cast<std::int64_t>(size);
    stats_.peak_bytes_in_use = std::max(stats_.peak_bytes_in_use, stats_.bytes_in_use);
    high_water_ = std::max(high_water_, stats_.bytes_in_use);
    stats_.peak_bytes_reserved = std::max(stats_.peak_bytes_reserved, stats_.bytes_in_use + stats_.bytes_cached);
  }

  mutable std::mutex mutex_;
  std::map<std::size_t, std::vector<void*>> free_;  // size class -> released blocks
  std::size_t limit_ = 0;  // off until set_cache_limit
  std::int64_t high_water_ = 0;  // the most bytes ever in use (reset_peaks leaves it)
  HostAllocatorStats stats_;
};

template <class T>
T* allocate(std::int64_t n) {
  if (n <= 0) return nullptr;
  return static_cast<T*>(CachingAllocator::instance().allocate(static_cast<std::size_t>(n) * sizeof(T)));
}

template <class T>
void deallocate(T* p, std::int64_t n) {
  if (p) CachingAllocator::instance().release(p, static_cast<std::size_t>(n) * sizeof(T));
}

}  // namespace tensortape::backend::cpu
