// editlab::eval — what an editor costs (the paper's Table 3): wall time and peak tensor memory of
// one training step, of applying K edits, and of one inference batch under them.
//
//   auto rows = eval::measure_cost(editor, bench, /*k=*/64, /*repeats=*/5);
//   std::puts(eval::cost_markdown(rows).c_str());
//
// Times are medians over `repeats` runs after one untimed warm-up run (which also creates the
// optimizer state). Memory is the most bytes held by tensor storage at once during a run
// (tt::counters(): weights, activations, gradients, optimizer state), so it does not depend on
// what the allocator keeps cached; the process's peak resident set is reported beside it.
#pragma once

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/editor.hpp"
#include "eval/metrics.hpp"
#include "tensortape/core/counters.hpp"

namespace editlab::eval {

struct CostRow {
  std::string method, benchmark, phase;
  int k = 0;              // edits in the edit set
  int inputs = 0;         // inputs predicted (inference) or examples per step (training)
  double median_ms = 0;
  double min_ms = 0;
  double peak_tensor_mb = 0;
  double process_peak_rss_mb = 0;
  int repeats = 0;

  nlohmann::json to_json() const {
    return {{"method", method}, {"benchmark", benchmark}, {"phase", phase}, {"k", k}, {"inputs", inputs},
            {"median_ms", median_ms}, {"min_ms", min_ms}, {"peak_tensor_mb", peak_tensor_mb},
            {"process_peak_rss_mb", process_peak_rss_mb}, {"repeats", repeats}};
  }
};

namespace detail {

inline double process_peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports kilobytes
}

// Runs f once untimed, then `repeats` times; fills the time and memory fields of row.
template <class F>
void time_runs(CostRow& row, int repeats, F&& f) {
  f();
  std::vector<double> ms;
  std::int64_t peak = 0;
  for (int r = 0; r < repeats; ++r) {
    tensortape::counters().reset_peak_storage();
    const auto start = std::chrono::steady_clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    peak = std::max(peak, tensortape::counters().peak_storage_bytes.load());
  }
  std::sort(ms.begin(), ms.end());
  row.repeats = repeats;
  row.median_ms = ms.size() % 2 ? ms[ms.size() / 2] : 0.5 * (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]);
  row.min_ms = ms.front();
  row.peak_tensor_mb = static_cast<double>(peak) / (1024.0 * 1024.0);
  row.process_peak_rss_mb = process_peak_rss_mb();
}

}  // namespace detail

// Training step on k train-split edits (for an editor that trains); applying k test-split
// edits; predicting one input per edit (its first in-scope example) under them. The training
// step changes the editor's weights: measure on a loaded copy, never on a run about to be
// evaluated.
inline std::vector<CostRow> measure_cost(Editor& editor, const Benchmark& bench, int k, int repeats, bool trains = true) {
  const auto& train_cases = bench.split(world::Split::train);
  const auto& test_cases = bench.split(world::Split::test);
  tensortape::check(k > 0 && repeats > 0, "editlab cost", "k and repeats must be positive");
  tensortape::check(static_cast<std::size_t>(k) <= std::min(train_cases.size(), test_cases.size()), "editlab cost", "K = ", k,
                    " is more than the benchmark's train (", train_cases.size(), ") or test (", test_cases.size(), ") edits");
  const std::vector<Case> train_edits(train_cases.begin(), train_cases.begin() + k);
  const std::vector<Case> test_edits(test_cases.begin(), test_cases.begin() + k);
  std::vector<std::string> inputs;
  for (const auto& c : test_edits) inputs.push_back(c.in_scope.empty() ? c.edit.input : c.in_scope.front().input);

  std::vector<CostRow> rows;
  auto row = [&](const char* phase, int count) {
    rows.push_back({editor.name(), bench.name, phase, k, count});
    return &rows.back();
  };
  if (trains) {
    detail::time_runs(*row("training step", 0), repeats, [&] { editor.train_step(train_edits); });
    editor.reset();
  }
  detail::time_runs(*row("apply edits", k), repeats, [&] {
    editor.reset();
    editor.apply(descriptors_of(test_edits));
  });
  detail::time_runs(*row("inference", static_cast<int>(inputs.size())), repeats, [&] { editor.predict(inputs); });
  editor.reset();
  return rows;
}

inline std::string cost_markdown(const std::vector<CostRow>& rows) {
  std::string out = "| method | benchmark | phase | K | inputs | median ms | min ms | peak tensor MB | process peak RSS MB |\n"
                    "|---|---|---|---:|---:|---:|---:|---:|---:|\n";
  char line[512];
  for (const auto& r : rows) {
    std::snprintf(line, sizeof line, "| %s | %s | %s | %d | %s | %.1f | %.1f | %.1f | %.0f |\n", r.method.c_str(),
                  r.benchmark.c_str(), r.phase.c_str(), r.k, r.inputs > 0 ? std::to_string(r.inputs).c_str() : "-",
                  r.median_ms, r.min_ms, r.peak_tensor_mb, r.process_peak_rss_mb);
    out += line;
  }
  return out;
}

}  // namespace editlab::eval
