// backend::cpu::CachingAllocator (the CPU backends' storage) and the size classes it shares
// with the CUDA allocator: blocks come back to the request they fit, the limit holds, the books
// balance under two threads, and tensors freed and made again reuse blocks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "tensortape/backend/cpu_allocator.hpp"
#include "tensortape/backend/eigen.hpp"
#include "tensortape/core/tensor.hpp"

namespace host_allocator_test {

namespace tt = tensortape;
using tt::backend::cpu::CachingAllocator;
using tt::backend::cpu::kAlignment;

TEST(SizeClass, RoundsUpByAtMostAQuarterInMultiplesOf512) {
  EXPECT_EQ(tt::backend::size_class(1), 512u);
  EXPECT_EQ(tt::backend::size_class(512), 512u);
  EXPECT_EQ(tt::backend::size_class(513), 1024u);
  EXPECT_EQ(tt::backend::size_class(1025), 1536u);
  EXPECT_EQ(tt::backend::size_class(5000), 5120u);
  EXPECT_EQ(tt::backend::size_class(std::size_t(1) << 20), std::size_t(1) << 20);
  std::size_t previous = 0;
  for (std::size_t bytes = 1; bytes < (std::size_t(1) << 26); bytes = bytes * 5 / 4 + 7) {
    const std::size_t size = tt::backend::size_class(bytes);
    ASSERT_GE(size, bytes);
    ASSERT_EQ(size % 512, 0u) << bytes;
    ASSERT_GE(size, previous) << "classes must grow with the request";
    if (bytes > 512) {
      ASSERT_LE(size, bytes + bytes / 4 + 512) << bytes;
    }
    previous = size;
  }
}

// The cache is off by default: each test turns it on.
constexpr std::size_t kLimit = std::size_t(1) << 30;

TEST(HostCachingAllocator, ReusesAReleasedBlockForARequestOfTheSameClass) {
  CachingAllocator cache;
  cache.set_cache_limit(kLimit);
  void* a = cache.allocate(5000);  // class 5120
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a) % kAlignment, 0u);
  std::memset(a, 1, 5000);  // writable to the end of the request
  cache.release(a, 5000);
  EXPECT_EQ(cache.stats().bytes_cached, 5120);
  EXPECT_EQ(cache.stats().bytes_in_use, 0);

  void* b = cache.allocate(4900);  // same class: the same block, no new memory
  EXPECT_EQ(b, a);
  EXPECT_EQ(cache.stats().cache_hits, 1);
  EXPECT_EQ(cache.stats().system_allocations, 1);
  void* c = cache.allocate(6000);  // another class: new memory
  EXPECT_NE(c, a);
  EXPECT_EQ(cache.stats().system_allocations, 2);
  EXPECT_EQ(cache.stats().bytes_in_use, 5120 + 6144);
  EXPECT_EQ(cache.stats().peak_bytes_in_use, 5120 + 6144);
  cache.release(b, 4900);
  cache.release(c, 6000);
  EXPECT_EQ(cache.allocate(0), nullptr);

  cache.release_cached();
  EXPECT_EQ(cache.stats().bytes_cached, 0);
  EXPECT_EQ(cache.stats().system_frees, 2);
}

TEST(HostCachingAllocator, HoldsNoMoreThanItsLimit) {
  CachingAllocator cache;
  cache.set_cache_limit(8192);
  void* a = cache.allocate(4096);
  void* b = cache.allocate(4096);
  void* c = cache.allocate(4096);
  cache.release(a, 4096);
  cache.release(b, 4096);
  cache.release(c, 4096);  // would make 12 KiB: freed instead
  EXPECT_EQ(cache.stats().bytes_cached, 8192);
  EXPECT_EQ(cache.stats().system_frees, 1);

  cache.set_cache_limit(0);  // lowering it empties the cache; nothing is kept after
  EXPECT_EQ(cache.stats().bytes_cached, 0);
  void* d = cache.allocate(4096);
  cache.release(d, 4096);
  EXPECT_EQ(cache.stats().bytes_cached, 0);
  EXPECT_EQ(cache.stats().system_frees, 4);
  EXPECT_EQ(cache.stats().peak_bytes_reserved, 3 * 4096);
}

TEST(HostCachingAllocator, ShapesThatVaryDoNotPileUpABlockPerSizeClass) {
  CachingAllocator cache;
  cache.set_cache_limit(kLimit);
  // Two tensors at a time, of sizes that change every step (as micro-batches of varying
  // length make): what the cache holds plus what is in use never exceeds the most in use.
  std::size_t most_in_use = 0;
  for (std::size_t step = 0; step < 200; ++step) {
    const std::size_t a = 4096 * (1 + step % 37), b = 4096 * (1 + (step * 7) % 53);
    void* x = cache.allocate(a);
    void* y = cache.allocate(b);
    most_in_use = std::max(most_in_use, tt::backend::size_class(a) + tt::backend::size_class(b));
    cache.release(x, a);
    cache.release(y, b);
  }
  const auto stats = cache.stats();
  EXPECT_EQ(stats.peak_bytes_in_use, static_cast<std::int64_t>(most_in_use));
  EXPECT_LE(stats.peak_bytes_reserved, stats.peak_bytes_in_use);
  EXPECT_GT(stats.cache_hits, 0);

  // A fixed pattern, once warm, is served from the cache alone.
  const auto warm = cache.stats();
  for (int step = 0; step < 10; ++step) {
    void* x = cache.allocate(100000);
    void* y = cache.allocate(30000);
    cache.release(x, 100000);
    cache.release(y, 30000);
  }
  EXPECT_LE(cache.stats().system_allocations - warm.system_allocations, 2);
}

TEST(HostCachingAllocator, BooksBalanceWhenTwoThreadsAllocateAtOnce) {
  CachingAllocator cache;
  cache.set_cache_limit(kLimit);
  auto churn = [&](int seed) {
    std::vector<std::pair<void*, std::size_t>> held;
    for (int i = 0; i < 2000; ++i) {
      const std::size_t bytes = 64 + static_cast<std::size_t>((i * 7919 + seed * 104729) % 200000);
      void* p = cache.allocate(bytes);
      static_cast<char*>(p)[bytes - 1] = 1;
      held.emplace_back(p, bytes);
      if (held.size() > 8) {
        cache.release(held.front().first, held.front().second);
        held.erase(held.begin());
      }
    }
    for (auto [p, bytes] : held) cache.release(p, bytes);
  };
  std::thread first(churn, 1), second(churn, 2);
  first.join();
  second.join();
  const auto stats = cache.stats();
  EXPECT_EQ(stats.bytes_in_use, 0);
  EXPECT_EQ(stats.cache_hits + stats.system_allocations, 4000);
  EXPECT_GT(stats.cache_hits, 0);
  cache.release_cached();
  EXPECT_EQ(cache.stats().system_frees, cache.stats().system_allocations);
}

TEST(HostCachingAllocator, ATensorMadeAgainReusesTheFreedOnesStorage) {
  using Cpu = tt::backend::Eigen;
  auto& cache = CachingAllocator::instance();
  const std::size_t limit = cache.cache_limit();
  cache.set_cache_limit(kLimit);
  const auto before = Cpu::memory_stats();
  const float* first_data = nullptr;
  {
    auto x = tt::zeros<float, Cpu>({256, 1000});
    first_data = x.data();
  }
  auto y = tt::zeros<float, Cpu>({250, 1024});  // 1 MB either way: one class
  EXPECT_EQ(y.data(), first_data);
  EXPECT_EQ(Cpu::memory_stats().cache_hits, before.cache_hits + 1);
  EXPECT_EQ(Cpu::memory_stats().bytes_in_use, before.bytes_in_use + (1 << 20));
  Cpu::release_cached_memory();
  EXPECT_EQ(Cpu::memory_stats().bytes_cached, 0);
  cache.set_cache_limit(limit);
  for (float v : y.to_vector()) ASSERT_EQ(v, 0.0f);  // zeros() still fills a reused block
}

}  // namespace host_allocator_test
