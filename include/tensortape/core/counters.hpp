// Kernel call counters, so tests can prove work was skipped (e.g. no weight-gradient GEMM
// runs for a frozen layer) without timing anything.
//
//   auto before = tt::counters().gemm_calls.load();
//   tt::backward(loss);
//   auto gemms = tt::counters().gemm_calls.load() - before;
#pragma once

#include <atomic>
#include <cstdint>

namespace tensortape {

struct KernelCounters {
  std::atomic<std::int64_t> gemm_calls{0};  // one per matrix product (a batched matmul counts once)
};

inline KernelCounters& counters() {
  static KernelCounters instance;
  return instance;
}

}  // namespace tensortape
