// A caching device allocator: freed blocks go to a free list keyed by size class and are
// handed out again, so steady-state training does no cudaMalloc/cudaFree per op (cudaFree
// also synchronises the device, which would serialise the stream).
//
//   CachingAllocator& alloc = Device::get().allocator();
//   void* p = alloc.allocate(1000);      // a 1024-byte block (size class), cudaMalloc once
//   alloc.release(p);                    // back to the cache; no CUDA call
//   void* q = alloc.allocate(900);       // the same block again: a cache hit
//   alloc.release_all();                 // cudaFree every cached block
//
// One stream means stream order protects reuse: a block released while kernels that read it
// are still queued is only handed to work queued after them on the same stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "tensortape/backend/cuda/check.hpp"
#include "tensortape/backend/size_class.hpp"

namespace tensortape::backend::cuda {

struct AllocatorStats {
  std::int64_t bytes_in_use = 0;       // handed out and not yet released
  std::int64_t bytes_cached = 0;       // released, held in the free lists
  std::int64_t peak_bytes_in_use = 0;
  std::int64_t peak_bytes_reserved = 0;  // in use + cached: what the device actually gave us
  std::int64_t device_allocations = 0;   // cudaMalloc calls
  std::int64_t device_frees = 0;         // cudaFree calls
  std::int64_t cache_hits = 0;           // allocations served from a free list
};

class CachingAllocator {
 public:
  CachingAllocator() = default;
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // nullptr for 0 bytes. On out-of-memory, frees the cache (after `stream` drains) and retries once.
  void* allocate(std::size_t bytes, cudaStream_t stream) {
    if (bytes == 0) return nullptr;
    const std::size_t size = backend::size_class(bytes);
    std::lock_guard lock(mutex_);
    void* block = nullptr;
    if (auto it = free_.find(size); it != free_.end() && !it->second.empty()) {
      block = it->second.back();
      it->second.pop_back();
      stats_.bytes_cached -= static_cast<std::int64_t>(size);
      ++stats_.cache_hits;
    } else {
      cudaError_t status = cudaMalloc(&block, size);
      if (status == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();  // clear it; the retry decides
        release_cached_locked(stream);
        status = cudaMalloc(&block, size);
      }
      check_cuda(status, "cudaMalloc", "bytes=", size, " for a request of ", bytes, " bytes; ", stats_.bytes_in_use,
                 " bytes in use");
      ++stats_.device_allocations;
    }
    live_[block] = size;
    stats_.bytes_in_use += static_cast<std::int64_t>(size);
    stats_.peak_bytes_in_use = std::max(stats_.peak_bytes_in_use, stats_.bytes_in_use);
    stats_.peak_bytes_reserved = std::max(stats_.peak_bytes_reserved, stats_.bytes_in_use + stats_.bytes_cached);
    return block;
  }

  // Back to the free list. Makes no CUDA call, so it is safe in destructors.
  void release(void* block) noexcept {
    if (!block) return;
    std::lock_guard lock(mutex_);
    const auto it = live_.find(block);
    if (it == live_.end()) return;  // not ours: ignore rather than corrupt the cache
    const std::size_t size = it->second;
    live_.erase(it);
    free_[size].push_back(block);
    stats_.bytes_in_use -= static_cast<std::int64_t>(size);
    stats_.bytes_cached += static_cast<std::int64_t>(size);
  }

  // cudaFree every cached block, once `stream` has finished the work that may still use them.
  void release_all(cudaStream_t stream) {
    std::lock_guard lock(mutex_);
    release_cached_locked(stream);
  }

  // Starts the peaks again from what is held now (as torch.cuda.reset_peak_memory_stats), so a
  // program can measure the peak of one phase.
  void reset_peaks() {
    std::lock_guard lock(mutex_);
    stats_.peak_bytes_in_use = stats_.bytes_in_use;
    stats_.peak_bytes_reserved = stats_.bytes_in_use + stats_.bytes_cached;
  }

  AllocatorStats stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }

  bool owns(const void* block) const {
    std::lock_guard lock(mutex_);
    return live_.count(const_cast<void*>(block)) != 0;
  }

 private:
  void release_cached_locked(cudaStream_t stream) {
    if (stats_.bytes_cached == 0) return;
    check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize", "before freeing ", stats_.bytes_cached,
               " cached bytes");
    for (auto& [size, blocks] : free_) {
      while (!blocks.empty()) {  // pop as we go, so a failed cudaFree leaves the books right
        check_cuda(cudaFree(blocks.back()), "cudaFree", "ptr=", blocks.back(), ", bytes=", size);
        blocks.pop_back();
        ++stats_.device_frees;
        stats_.bytes_cached -= static_cast<std::int64_t>(size);
      }
    }
  }

  mutable std::mutex mutex_;
  std::map<std::size_t, std::vector<void*>> free_;  // size class -> released blocks
  std::unordered_map<void*, std::size_t> live_;     // handed-out block -> its size class
  AllocatorStats stats_;
};

}  // namespace tensortape::backend::cuda
