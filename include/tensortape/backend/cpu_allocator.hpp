// A caching host allocator for the CPU backends' storage, as backend::cuda::CachingAllocator
// is for the device: a freed block goes to a free list keyed by its size class and serves the
// next request of that class. Off unless a program turns it on: it spares a loop that makes
// tensors of the same shapes every step the allocator's work, and costs resident memory where
// shapes vary from step to step (docs/benchmarks.md, "A caching allocator for CPU storage";
// it was made when large tensors were still fresh pages from the OS each time, before the pool
// below).
//
//   auto& cache = tt::backend::cpu::CachingAllocator::instance();
//   cache.set_cache_limit(std::size_t(1) << 30);  // keep up to 1 GiB of freed blocks
//   cache.stats();                 // bytes in use / cached, peaks, OS calls, cache hits
//   cache.release_cached();        // give every cached block back, and the pool's free mappings to the OS
//   cache.set_cache_limit(0);      // cache nothing from now on (the default)
//
// Thread-safe (the data-parallel shards allocate at once). The cache never makes the storage
// held exceed the most that was ever in use at once (allocate evicts to keep it so), and holds
// at most cache_limit() bytes; a block released beyond that goes back to where it came from.
// The statistics are kept with the cache off too.
//
// Where blocks come from, cache or no cache: those of kPooledBlockBytes and more from a
// BlockPool (cpu_block_pool.hpp: a few mappings kept for the process, blocks placed best-fit and
// joined again on release), smaller ones from operator new. A training step's activations are
// such large blocks; from malloc's heap they left gaps that raised TS-1's peak resident memory
// by about a fifth (docs/benchmarks.md, "Large tensor blocks from a pool of their own").
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include "tensortape/backend/cpu_block_pool.hpp"
#include "tensortape/backend/size_class.hpp"

namespace tensortape::backend::cpu {

inline constexpr std::size_t kAlignment = 64;  // a cache line; enough for AVX-512 loads
inline constexpr std::size_t kPooledBlockBytes = std::size_t{256} << 10;  // from here up, blocks come from the pool

struct HostAllocatorStats {
  std::int64_t bytes_in_use = 0;         // handed out and not yet released (size classes)
  std::int64_t bytes_cached = 0;         // released, held in the free lists
  std::int64_t peak_bytes_in_use = 0;
  std::int64_t peak_bytes_reserved = 0;  // in use + cached: what the process holds for tensors
  std::int64_t system_allocations = 0;   // blocks not served by the cache (operator new, or the pool)
  std::int64_t system_frees = 0;         // blocks given back there
  std::int64_t bytes_mapped = 0;         // the pool's mappings (resident once touched; kept until release_cached)
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
  ~CachingAllocator() { release_cached(); }  // unmaps the pool: only the backends' instance() outlives its blocks
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
    for (auto [block, block_size] : evicted) free_block(block, block_size);
    void* block = new_block(size);  // throws std::bad_alloc
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
    free_block(block, size);
  }

  // Gives every cached block back, and unmaps the pool's mappings that hold no block in use.
  void release_cached() noexcept {
    std::lock_guard lock(mutex_);
    release_cached_locked();
    std::lock_guard pool_lock(pool_mutex_);
    pool_.release_free_segments();
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
    auto stats = stats_;
    std::lock_guard pool_lock(pool_mutex_);
    stats.bytes_mapped = static_cast<std::int64_t>(pool_.mapped_bytes());
    return stats;
  }

 private:
  // Locks: mutex_ before pool_mutex_ where both are held.
  void* new_block(std::size_t size) {
    if (size < kPooledBlockBytes) return ::operator new(size, std::align_val_t{kAlignment});
    std::lock_guard lock(pool_mutex_);
    return pool_.allocate(size);
  }
  void free_block(void* block, std::size_t size) noexcept {
    if (size < kPooledBlockBytes) {
      ::operator delete(block, std::align_val_t{kAlignment});
      return;
    }
    std::lock_guard lock(pool_mutex_);
    pool_.release(block, size);
  }

  void release_cached_locked() noexcept {
    for (auto& [size, blocks] : free_) {
      for (void* block : blocks) free_block(block, size);
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
  mutable std::mutex pool_mutex_;  // the pool's own, so that blocks come and go outside mutex_
  BlockPool pool_;
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
