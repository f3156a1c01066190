// Interleaved timing for benchmarks that compare contenders on this noisy VM: every iteration
// runs each contender once, in an order that rotates, so drifts in machine speed hit them all
// alike (see docs/benchmarks.md, "How it is measured").
#pragma once

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstddef>
#include <vector>

// Calls run_one(who) for who in [0, contenders) once per iteration, and returns each
// contender's total wall time in seconds over the whole benchmark.
template <class RunOne>
std::vector<double> time_interleaved(benchmark::State& state, std::size_t contenders, RunOne&& run_one) {
  std::vector<double> seconds(contenders, 0.0);
  std::size_t first = 0;
  for (auto _ : state) {
    for (std::size_t j = 0; j < contenders; ++j) {
      const std::size_t who = (first + j) % contenders;
      const auto start = std::chrono::steady_clock::now();
      run_one(who);
      seconds[who] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    first = (first + 1) % contenders;  // nobody always runs right after the same one
  }
  return seconds;
}
