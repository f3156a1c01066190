// Work splitting for the CPU backends' non-GEMM kernels: a range of independent items is cut
// into one contiguous slice per OpenMP thread, when the work is large enough to pay for the
// hand-over. Built without OpenMP (no -fopenmp), or inside a parallel region, or with one
// thread (OMP_NUM_THREADS=1, omp_set_num_threads(1) or ScopedKernelThreads(1) in the calling
// thread), it runs inline. GEMMs are OpenBLAS's or oneDNN's: the build links OpenBLAS's OpenMP
// variant and a oneDNN on the same runtime, so that all share one OpenMP thread team
// (cmake/TensortapeDependencies.cmake).
//
//   cpu::parallel_ranges(rows, cols, [&](std::int64_t begin, std::int64_t end) {
//     for (auto r = begin; r < end; ++r) softmax_row(r);   // rows [begin, end) on this thread
//   });
//
// Every item is computed by the same code whatever the slicing (cuts inside an array fall on
// aligned addresses: parallel_aligned_ranges), so results are bitwise the same for any thread
// count (tests compare 1 and 2 threads exactly).
#pragma once

#include <algorithm>
#include <cstdint>

#include "tensortape/backend/cpu_common.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace tensortape::backend::cpu {

// Caps the kernels and GEMMs called from this thread at `threads` threads while it lives, for
// callers that already run one task per core (editlab's data-parallel shards), so that tasks
// and kernel threads do not oversubscribe the cores. It sets this thread's OpenMP team size
// (omp_set_num_threads acts on the calling thread only): the kernels split by it, and so do
// oneDNN and OpenBLAS's OpenMP build, which size every call's team by omp_get_max_threads()
// (so that overrides openblas_set_num_threads). A thread started by std::thread begins with the
// process's default team size, whatever the thread that started it had set.
class ScopedKernelThreads {
 public:
  explicit ScopedKernelThreads(int threads) {
#if defined(_OPENMP)
    previous_ = omp_get_max_threads();
    if (threads > 0) omp_set_num_threads(std::min(threads, previous_));
#else
    (void)threads;
#endif
  }
  ~ScopedKernelThreads() {
#if defined(_OPENMP)
    omp_set_num_threads(previous_);
#endif
  }
  ScopedKernelThreads(const ScopedKernelThreads&) = delete;
  ScopedKernelThreads& operator=(const ScopedKernelThreads&) = delete;

 private:
  int previous_ = 1;
};

// Below this many elements of work, waking a second thread costs about what it saves.
inline constexpr std::int64_t kMinParallelElements = std::int64_t{1} << 14;

// How many threads a kernel of `work` elements would be split over here.
inline int parallel_threads(std::int64_t work) {
#if defined(_OPENMP)
  if (work < kMinParallelElements || omp_in_parallel()) return 1;
  return std::max(1, omp_get_max_threads());
#else
  (void)work;
  return 1;
#endif
}

// Calls f(begin, end) on disjoint slices covering [0, count), each item costing about
// `elements_per_item` elements of work. f must not throw.
template <class F>
void parallel_ranges(std::int64_t count, std::int64_t elements_per_item, F&& f) {
  if (count <= 0) return;
  const int threads = static_cast<int>(std::min<std::int64_t>(parallel_threads(count * elements_per_item), count));
  if (threads <= 1) return f(std::int64_t{0}, count);
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads)
  {
    const std::int64_t team = omp_get_num_threads(), me = omp_get_thread_num();
    const std::int64_t begin = count * me / team, end = count * (me + 1) / team;
    if (begin < end) f(begin, end);
  }
#endif
}

// parallel_ranges over the elements [0, count) of an array at `data`, cut only where an element
// starts a kAlignment-byte block. Vectorised kernels (Eigen's) compute an unaligned head with
// scalar code, whose exp, log, ... may round differently from the vector code; cut at
// aligned addresses, every element takes the same path whatever the thread count.
template <class T, class F>
void parallel_aligned_ranges(const T* data, std::int64_t count, F&& f) {
  constexpr auto grain = static_cast<std::int64_t>(kAlignment / sizeof(T));
  const auto past_boundary = static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(data) % kAlignment / sizeof(T));
  const std::int64_t head = std::min(count, (grain - past_boundary) % grain);  // elements before the first boundary
  const std::int64_t blocks = (count - head + grain - 1) / grain;                // the head joins the first block
  if (blocks == 0) return f(std::int64_t{0}, count);
  parallel_ranges(blocks, grain, [&](std::int64_t begin, std::int64_t end) {
    f(begin == 0 ? 0 : head + begin * grain, std::min(count, head + end * grain));
  });
}

// One product's work of a GEMM batch, in the elements parallel_threads() counts: 8 multiply-adds
// count as one element.
inline std::int64_t product_work(const GemmArgs& g) { return g.m * g.n * std::max<std::int64_t>(g.k, 1) / 8; }

// Calls product(i) for each product i of a GEMM batch, whole products to each thread. BLAS runs
// a small product on one thread, so a batch of them is split here instead; and BLAS divides rows
// and columns among its threads, never the sum over k, so every product keeps the bits of a
// call of its own (oneDNN did the same in the shapes checked: docs/benchmarks.md).
template <class F>
void for_each_product(const GemmArgs& g, F&& product) {
  parallel_ranges(g.batch, product_work(g), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) product(i);
  });
}

}  // namespace tensortape::backend::cpu
