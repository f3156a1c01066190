// The end of a benchmark program's main(): Google Benchmark runs what was registered, with the
// command-line arguments the program's own flags left over (argv[0] first).
#pragma once

#include <benchmark/benchmark.h>

#include <vector>

inline int run_registered_benchmarks(std::vector<char*> rest) {
  int argc = static_cast<int>(rest.size());
  rest.push_back(nullptr);
  benchmark::Initialize(&argc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(argc, rest.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
