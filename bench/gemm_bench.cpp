// fp32 GEMM throughput of every CPU backend against OpenBLAS's cblas_sgemm called directly,
// all on 2 threads. docs/benchmarks.md has the table and the command; tools/gemm_table.py
// turns the JSON into that table.
//
//   gemm_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//              --benchmark_out=gemm.json --benchmark_out_format=json   (one command line)
//   python3 tools/gemm_table.py gemm.json
//
// Workloads: square n x n x n for n = 64 ... 2048 ("square/n:<n>"), and attention-shaped
// batches, 256 x (m x 64) @ (64 x 16) for m = 8, 16 ("batched/m:<m>"). Each iteration calls
// every contender once, in rotating order, on the same buffers, and times each call: on these
// VMs the two-thread speed switches between two levels for seconds at a time (cblas alone at
// n = 256: ~136 or ~190 GFLOP/s, single-threaded a steady 104), so contenders timed in separate
// benchmarks can land in different levels; interleaved calls share them. The counter
// <impl>_GFLOPS is 2mnk per product over that contender's own wall time. The naive Reference
// loop (seconds per call at n = 512) runs in its own "<workload>_naive" benchmarks, n <= 512.
// "subnormal/n:256" times OpenBLAS with A's entries scaled below 2^-126, the subnormal floats a
// training step meets, with and without flush-to-zero (backend/cpu_denormals.hpp), beside the
// same product on normal floats.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench_main.hpp"
#include "interleave.hpp"
#include "tensortape/backend/cpu_denormals.hpp"
#include "tensortape/backend/eigen.hpp"
#include "tensortape/backend/reference.hpp"
#include "tensortape/core/rng.hpp"
#if defined(TENSORTAPE_HAS_XTENSOR)
#include "tensortape/backend/xtensor.hpp"  // also declares cblas_sgemm (xtensor-blas's CBLAS driver)
#else
#include <cblas.h>  // not both: the two headers define the same CBLAS enums
#endif

extern "C" void openblas_set_num_threads(int num_threads);

namespace {

namespace tt = tensortape;
using tt::backend::GemmArgs;

constexpr int kThreads = 2;
constexpr std::int64_t kHeads = 256;     // B * H of the attention-shaped batch
constexpr std::int64_t kHeadDim = 64;    // Dh
constexpr std::int64_t kKeyLength = 16;  // S

// C (batch, m, n) = A (batch, m, k) @ B (batch, k, n), packed row-major.
GemmArgs packed_gemm(std::int64_t batch, std::int64_t m, std::int64_t n, std::int64_t k) {
  return GemmArgs{.m = m, .n = n, .k = k, .lda = k, .ldb = n, .ldc = n,
                  .stride_a = m * k, .stride_b = k * n, .stride_c = m * n, .batch = batch};
}

// Operands in 64-byte aligned buffers, as Backend::allocate gives them.
class Problem {
 public:
  explicit Problem(const GemmArgs& g) : args(g), a_(g.batch * g.m * g.k), b_(g.batch * g.k * g.n), c_(g.batch * g.m * g.n) {
    tt::Rng rng(7);
    for (auto* buffer : {&a_, &b_}) {
      for (std::int64_t i = 0; i < buffer->size; ++i) buffer->data[i] = static_cast<float>(rng.normal());
    }
    std::fill(c_.data, c_.data + c_.size, 0.0f);
  }
  const float* a() const { return a_.data; }
  const float* b() const { return b_.data; }
  float* c() { return c_.data; }
  double flops() const { return 2.0 * double(args.batch) * double(args.m) * double(args.n) * double(args.k); }

  // One problem per shape, so that the naive run reuses the buffers the others timed.
  static Problem& shared(const GemmArgs& g) {
    static std::map<std::array<std::int64_t, 4>, std::unique_ptr<Problem>> problems;
    auto& slot = problems[{g.batch, g.m, g.n, g.k}];
    if (!slot) slot = std::make_unique<Problem>(g);
    return *slot;
  }

  const GemmArgs args;

 private:
  struct Buffer {
    explicit Buffer(std::int64_t n) : data(tt::backend::cpu::allocate<float>(n)), size(n) {}
    ~Buffer() { tt::backend::cpu::deallocate(data, size); }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    float* data;
    std::int64_t size;
  };
  Buffer a_, b_, c_;
};

// OpenBLAS on its own, one call per matrix: the ceiling the backends are measured against.
void openblas_gemm(const GemmArgs& g, const float* a, const float* b, float* c) {
  for (std::int64_t i = 0; i < g.batch; ++i) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(g.m), int(g.n), int(g.k), float(g.alpha),
                a + i * g.stride_a, int(g.lda), b + i * g.stride_b, int(g.ldb), float(g.beta), c + i * g.stride_c,
                int(g.ldc));
  }
}

using GemmFunction = std::function<void(const GemmArgs&, const float*, const float*, float*)>;

struct Contender {
  std::string name;
  GemmFunction gemm;
};

void run_interleaved(benchmark::State& state, const GemmArgs& args, const std::vector<Contender>& contenders) {
  Problem& p = Problem::shared(args);
  const auto seconds = time_interleaved(state, contenders.size(), [&](std::size_t who) {
    contenders[who].gemm(p.args, p.a(), p.b(), p.c());
    benchmark::DoNotOptimize(p.c());
    benchmark::ClobberMemory();
  });
  for (std::size_t j = 0; j < contenders.size(); ++j) {
    state.counters[contenders[j].name + "_GFLOPS"] = p.flops() * 1e-9 * double(state.iterations()) / seconds[j];
  }
}

void register_workloads(const std::string& suffix, const std::vector<Contender>& contenders, std::int64_t largest_n) {
  for (std::int64_t n : {64, 128, 256, 512, 1024, 2048}) {
    if (n > largest_n) continue;
    benchmark::RegisterBenchmark(("square" + suffix + "/n:" + std::to_string(n)).c_str(),
                                 [=](benchmark::State& s) { run_interleaved(s, packed_gemm(1, n, n, n), contenders); })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  for (std::int64_t m : {8, 16}) {
    benchmark::RegisterBenchmark(("batched" + suffix + "/m:" + std::to_string(m)).c_str(), [=](benchmark::State& s) {
      run_interleaved(s, packed_gemm(kHeads, m, kKeyLength, kHeadDim), contenders);
    })->UseRealTime()->Unit(benchmark::kMicrosecond);
  }
}

// OpenBLAS on normal floats, on an A of subnormal floats, and on that A in flush-to-zero mode
// (set around the call only, so that the other contenders run without it).
void register_subnormal_workload() {
  const std::int64_t n = 256;
  const auto args = packed_gemm(1, n, n, n);
  const Problem& normal = Problem::shared(args);
  auto subnormal_a = std::make_shared<std::vector<float>>(normal.a(), normal.a() + n * n);
  for (auto& v : *subnormal_a) v *= 1e-39f;  // |v| ~ 1e-39, below FLT_MIN (1.18e-38)
  const std::vector<Contender> contenders = {
      {"OpenBLAS", openblas_gemm},
      {"OpenBLAS_subnormal_A", [=](const GemmArgs& g, const float*, const float* b, float* c) { openblas_gemm(g, subnormal_a->data(), b, c); }},
      {"OpenBLAS_subnormal_A_flushed", [=](const GemmArgs& g, const float*, const float* b, float* c) {
         tt::backend::cpu::set_flush_denormal(true);
         openblas_gemm(g, subnormal_a->data(), b, c);
         tt::backend::cpu::set_flush_denormal(false);
       }}};
  benchmark::RegisterBenchmark(("subnormal/n:" + std::to_string(n)).c_str(), [=](benchmark::State& s) { run_interleaved(s, args, contenders); })
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

}  // namespace

int main(int argc, char** argv) {
  // The same two threads for everyone. Eigen's own threads need OpenMP, which this build does
  // not enable, so setNbThreads is a no-op here; Eigen's products run on OpenBLAS's threads.
  openblas_set_num_threads(kThreads);
  Eigen::setNbThreads(kThreads);
  benchmark::AddCustomContext("threads", std::to_string(kThreads));

  std::vector<Contender> fast = {{"Eigen", tt::backend::Eigen::gemm<float>}};
#if defined(TENSORTAPE_HAS_XTENSOR)
  fast.push_back({"Xtensor", tt::backend::Xtensor::gemm<float>});
#endif
  fast.push_back({"OpenBLAS", openblas_gemm});
  register_workloads("", fast, 2048);
  register_workloads("_naive", {{"Reference", tt::backend::Reference::gemm<float>}}, 512);
  register_subnormal_workload();

  return run_registered_benchmarks({argv, argv + argc});
}
