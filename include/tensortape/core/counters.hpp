// Kernel call counters, so tests can prove work was skipped (e.g. no weight-gradient GEMM
// runs for a frozen layer) without timing anything; and the bytes held by tensor storage, so a
// benchmark can report the peak memory of one step.
//
//   auto before = tt::counters().gemm_calls.load();
//   tt::backward(loss);
//   auto gemms = tt::counters().gemm_calls.load() - before;
//
//   tt::counters().reset_peak_storage();
//   step();
//   auto peak = tt::counters().peak_storage_bytes.load();   // most bytes held at once during step()
#pragma once

#include <atomic>
#include <cstdint>

namespace tensortape {

struct KernelCounters {
  std::atomic<std::int64_t> gemm_calls{0};  // one per matrix product (a batched matmul counts once)
  // Tensor storage of every backend (host and device together), counted when a Storage is
  // made and freed: weights, activations saved for backward, gradients, optimizer state.
  std::atomic<std::int64_t> storage_bytes{0};
  std::atomic<std::int64_t> peak_storage_bytes{0};

  void storage_allocated(std::int64_t bytes) {
    const std::int64_t now = storage_bytes.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    std::int64_t peak = peak_storage_bytes.load(std::memory_order_relaxed);
    while (now > peak && !peak_storage_bytes.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
  }
  void storage_freed(std::int64_t bytes) { storage_bytes.fetch_sub(bytes, std::memory_order_relaxed); }
  // Starts a new peak measurement from what is held now.
  void reset_peak_storage() { peak_storage_bytes.store(storage_bytes.load(std::memory_order_relaxed), std::memory_order_relaxed); }
};

inline KernelCounters& counters() {
  static KernelCounters instance;
  return instance;
}

}  // namespace tensortape
