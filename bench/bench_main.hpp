// The end of a benchmark program's main(): Google Benchmark runs what was registered, with the
// command-line arguments the program's own flags left over (argv[0] first), on OpenBLAS kernels
// this CPU runs (backend/cpu_blas_kernels.hpp; OPENBLAS_CORETYPE=Prescott measures the fallback),
// named in the JSON's context as openblas_kernels.
#pragma once

#include <benchmark/benchmark.h>

#include <utility>
#include <vector>

#include "tensortape/backend/cpu_blas_kernels.hpp"

// A program that runs products before its benchmarks (t5_step_bench's checks, memory children
// and profiles) fits the kernels at the start of main instead and passes the choice here.
inline int run_registered_benchmarks(std::vector<char*> rest, const tensortape::backend::cpu::BlasKernelChoice& blas) {
  if (!blas.after.empty()) benchmark::AddCustomContext("openblas_kernels", blas.after + (blas.changed ? " (fitted; OpenBLAS picked " + blas.before + ")" : ""));
  int argc = static_cast<int>(rest.size());
  rest.push_back(nullptr);
  benchmark::Initialize(&argc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(argc, rest.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

inline int run_registered_benchmarks(std::vector<char*> rest) {
  return run_registered_benchmarks(std::move(rest), tensortape::backend::cpu::fit_blas_kernels());
}
