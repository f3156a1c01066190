// backend::cpu::CachingAllocator (the CPU backends' storage) and the size classes it shares
// with the CUDA allocator: blocks come back to the request they fit, the limit holds, the books
// balance under two threads, and tensors freed and made again reuse blocks. Its BlockPool for
// large blocks: best fit, freed neighbours joined (never across mappings), and random blocks that
// never overlap, checked against a plain list of the blocks in use.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "tensortape/backend/cpu_allocator.hpp"
#include "tensortape/backend/eigen.hpp"
#include "tensortape/core/tensor.hpp"

namespace host_allocator_test {

namespace tt = tensortape;
using tt::backend::cpu::BlockPool;
using tt::backend::cpu::CachingAllocator;
using tt::backend::cpu::kAlignment;
using tt::backend::cpu::kPooledBlockBytes;

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
      const std::size_t bytes = 64 + static_cast<std::size_t>((i * 7919 + seed * 104729) % 600000);  // the pool's too
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

constexpr std::size_t kPage = BlockPool::kGranule;

char* at(void* block) { return static_cast<char*>(block); }

TEST(BlockPool, PlacesABlockInTheSmallestFreeRangeThatHoldsIt) {
  BlockPool pool;
  // Blocks are cut from the start of the one mapping, one after another; the 1-page blocks keep
  // the freed ones below apart.
  void* four = pool.allocate(4 * kPage);
  void* gap1 = pool.allocate(kPage);
  void* eight = pool.allocate(8 * kPage);
  void* gap2 = pool.allocate(kPage);
  void* two = pool.allocate(2 * kPage);
  void* gap3 = pool.allocate(kPage);
  ASSERT_EQ(pool.segments(), 1u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(four) % kPage, 0u);
  EXPECT_EQ(at(gap1), at(four) + 4 * kPage);
  EXPECT_EQ(at(two), at(four) + 14 * kPage);
  pool.release(four, 4 * kPage);
  pool.release(eight, 8 * kPage);
  pool.release(two, 2 * kPage);
  EXPECT_EQ(pool.allocate(3 * kPage), four) << "4 pages is the smallest range that holds 3";
  EXPECT_EQ(pool.allocate(5 * kPage), eight);
  EXPECT_EQ(pool.allocate(2 * kPage - 100), two) << "a request is rounded up to whole pages";
  EXPECT_EQ(pool.used_bytes(), 13 * kPage);
  EXPECT_EQ(pool.segments(), 1u);
  (void)gap2;
  (void)gap3;
}

TEST(BlockPool, JoinsAReleasedBlockWithItsFreeNeighbours) {
  BlockPool pool;
  void* a = pool.allocate(2 * kPage);
  void* b = pool.allocate(2 * kPage);
  void* c = pool.allocate(2 * kPage);
  void* fence = pool.allocate(kPage);
  pool.release(a, 2 * kPage);
  pool.release(c, 2 * kPage);
  pool.release(b, 2 * kPage);  // joins a (before) and c (after)
  EXPECT_EQ(pool.allocate(6 * kPage), a);
  EXPECT_EQ(pool.segments(), 1u);
  pool.release(fence, kPage);
  pool.release(a, 6 * kPage);
  EXPECT_EQ(pool.used_bytes(), 0u);
  pool.release_free_segments();  // the whole mapping is one free range again
  EXPECT_EQ(pool.segments(), 0u);
  EXPECT_EQ(pool.mapped_bytes(), 0u);
}

TEST(BlockPool, NeverJoinsRangesOfTwoMappings) {
  BlockPool pool;
  void* first = pool.allocate(BlockPool::kSegmentBytes);  // fills a mapping
  void* second = pool.allocate(BlockPool::kSegmentBytes);
  ASSERT_EQ(pool.segments(), 2u);
  pool.release(first, BlockPool::kSegmentBytes);
  pool.release(second, BlockPool::kSegmentBytes);
  // Mappings next to each other in the address space still stay apart: twice the size needs a third.
  void* both = pool.allocate(2 * BlockPool::kSegmentBytes);
  EXPECT_EQ(pool.segments(), 3u);
  std::memset(both, 1, 2 * BlockPool::kSegmentBytes);
  pool.release_free_segments();
  EXPECT_EQ(pool.segments(), 1u) << "the two free mappings go; the one in use stays";
  EXPECT_EQ(pool.mapped_bytes(), 2 * BlockPool::kSegmentBytes);
  pool.release(both, 2 * BlockPool::kSegmentBytes);
}

TEST(BlockPool, RandomBlocksNeverOverlapAndKeepTheirContents) {
  BlockPool pool;
  std::mt19937 rng(7);
  std::map<char*, std::pair<std::size_t, unsigned char>> live;  // start -> (bytes asked, fill byte)
  auto check_and_release = [&](std::map<char*, std::pair<std::size_t, unsigned char>>::iterator it) {
    const auto [bytes, fill] = it->second;
    for (std::size_t i = 0; i < bytes; i += 997) ASSERT_EQ(static_cast<unsigned char>(it->first[i]), fill);  // as written below
    ASSERT_EQ(static_cast<unsigned char>(it->first[bytes - 1]), fill);
    pool.release(it->first, bytes);
    live.erase(it);
  };
  std::size_t most_used = 0;
  for (int step = 0; step < 3000; ++step) {
    if (!live.empty() && (live.size() >= 40 || rng() % 3 == 0)) {
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      check_and_release(it);
      ASSERT_FALSE(testing::Test::HasFatalFailure());
      continue;
    }
    const std::size_t bytes = 1 + rng() % (3u << 20);
    char* block = at(pool.allocate(bytes));
    ASSERT_EQ(reinterpret_cast<std::uintptr_t>(block) % kAlignment, 0u);
    // No block in use overlaps it: neither the one starting before it nor the one after.
    const auto after = live.lower_bound(block);
    if (after != live.end()) {
      ASSERT_GE(after->first, block + bytes);
    }
    if (after != live.begin()) {
      const auto before = std::prev(after);
      ASSERT_LE(before->first + before->second.first, block);
    }
    const auto fill = static_cast<unsigned char>(step);
    for (std::size_t i = 0; i < bytes; i += 997) block[i] = static_cast<char>(fill);
    block[bytes - 1] = static_cast<char>(fill);
    live.emplace(block, std::make_pair(bytes, fill));
    most_used = std::max(most_used, pool.used_bytes());
  }
  while (!live.empty()) {
    check_and_release(live.begin());
    ASSERT_FALSE(testing::Test::HasFatalFailure());
  }
  EXPECT_EQ(pool.used_bytes(), 0u);
  // Best fit with joining keeps the mappings within two segments of the most in use at once.
  EXPECT_LE(pool.mapped_bytes(), most_used + 2 * BlockPool::kSegmentBytes);
  pool.release_free_segments();
  EXPECT_EQ(pool.mapped_bytes(), 0u);
}

#if defined(TENSORTAPE_POOL_ASAN)
TEST(BlockPoolDeathTest, ReadingAReleasedBlockIsReportedUnderAddressSanitizer) {
  BlockPool pool;
  auto* block = static_cast<char*>(pool.allocate(kPage));
  block[10] = 1;
  pool.release(block, kPage);
  EXPECT_DEATH((void)*static_cast<volatile char*>(block + 10), "use-after-poison");
}
#endif

TEST(HostCachingAllocator, LargeBlocksComeFromThePoolAndItsMappingsGoBackToTheOS) {
  CachingAllocator allocator;  // the cache off
  void* small = allocator.allocate(kPooledBlockBytes / 2);
  EXPECT_EQ(allocator.stats().bytes_mapped, 0) << "below the pool's size: operator new";
  void* large = allocator.allocate(kPooledBlockBytes);
  EXPECT_EQ(allocator.stats().bytes_mapped, static_cast<std::int64_t>(BlockPool::kSegmentBytes));
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(large) % BlockPool::kGranule, 0u);
  std::memset(large, 1, kPooledBlockBytes);
  allocator.release(large, kPooledBlockBytes);
  void* again = allocator.allocate(kPooledBlockBytes + 1000);  // another class, the same pages
  EXPECT_EQ(again, large);
  allocator.release(again, kPooledBlockBytes + 1000);
  allocator.release(small, kPooledBlockBytes / 2);
  EXPECT_EQ(allocator.stats().bytes_mapped, static_cast<std::int64_t>(BlockPool::kSegmentBytes)) << "kept for the next step";
  allocator.release_cached();
  EXPECT_EQ(allocator.stats().bytes_mapped, 0);
  EXPECT_EQ(allocator.stats().system_frees, allocator.stats().system_allocations);
}

}  // namespace host_allocator_test
