// editlab::eval — what an editor costs (the paper's Table 3): wall time and peak tensor memory of
// one training step, of applying K edits, and of one inference batch under them.
//
//   auto rows = eval::measure_cost(editor, bench, /*k=*/64, /*repeats=*/5);
//   std::puts(eval::cost_markdown(rows).c_str());
//
// Times are medians over `repeats` runs after one untimed warm-up run (which also creates the
// optimizer state). Memory is the most bytes held by tensor storage at once during a run
// (tt::counters(): weights, activations, gradients, optimizer state), so it does not depend on
// what the allocator keeps cached; the process's peak resident set is reported beside it. Each
// row names the machine it was measured on (machine_description()), as every time must.
#pragma once

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include <nlohmann/json.hpp>

#include "eval/editor.hpp"
#include "eval/metrics.hpp"
#include "tensortape/backend/cpu_blas_kernels.hpp"
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
  std::string machine;  // machine_description() where it was measured

  nlohmann::json to_json() const {
    return {{"method", method}, {"benchmark", benchmark}, {"phase", phase}, {"k", k}, {"inputs", inputs},
            {"median_ms", median_ms}, {"min_ms", min_ms}, {"peak_tensor_mb", peak_tensor_mb},
            {"process_peak_rss_mb", process_peak_rss_mb}, {"repeats", repeats}, {"machine", machine}};
  }
  // A row to_json() wrote; rows from before the machine was recorded have none ("").
  static CostRow from_json(const nlohmann::json& j) {
    return {.method = j.at("method").get<std::string>(), .benchmark = j.at("benchmark").get<std::string>(),
            .phase = j.at("phase").get<std::string>(), .k = j.at("k").get<int>(), .inputs = j.at("inputs").get<int>(),
            .median_ms = j.at("median_ms").get<double>(), .min_ms = j.at("min_ms").get<double>(),
            .peak_tensor_mb = j.at("peak_tensor_mb").get<double>(), .process_peak_rss_mb = j.at("process_peak_rss_mb").get<double>(),
            .repeats = j.at("repeats").get<int>(), .machine = j.value("machine", std::string())};
  }
};

// The CPU by /proc/cpuinfo's name, family and model (one name covers several kinds: "Intel(R)
// Xeon(R) Processor" is an Emerald Rapids as model 207, a Rocket Lake as model 167), the
// threads the kernels use, and OpenBLAS's kernels: "Intel(R) Xeon(R) Processor (family 6,
// model 207), 2 threads, OpenBLAS SkylakeX kernels". Fields a system does not report are left out.
inline std::string machine_description() {
  std::string name, family, model;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line) && line.find_first_not_of(" \t") != std::string::npos;) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    auto key = line.substr(0, colon);
    key.erase(key.find_last_not_of(" \t") + 1);
    auto value = colon + 2 <= line.size() ? line.substr(colon + 2) : std::string();
    if (key == "model name") name = value;
    if (key == "cpu family") family = value;
    if (key == "model") model = value;
  }  // the first processor's block only: it ends at the first blank line
  std::string out = name.empty() ? "unknown CPU" : name;
  if (!family.empty() && !model.empty()) out += " (family " + family + ", model " + model + ")";
#if defined(_OPENMP)
  out += ", " + std::to_string(omp_get_max_threads()) + " threads";
#else
  out += ", 1 thread";
#endif
  if (const auto blas = tensortape::backend::cpu::detail::DynamicOpenBlas{}.core(); !blas.empty()) out += ", OpenBLAS " + blas + " kernels";
  return out;
}

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

  const auto machine = machine_description();
  std::vector<CostRow> rows;
  auto row = [&](const char* phase, int count) {
    rows.push_back({.method = editor.name(), .benchmark = bench.name, .phase = phase, .k = k, .inputs = count, .machine = machine});
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

// The rows as a markdown table, after a line naming the machines they were measured on (each
// once, in the rows' order; none for rows that name no machine).
inline std::string cost_markdown(const std::vector<CostRow>& rows) {
  std::vector<std::string> machines;
  for (const auto& r : rows)
    if (!r.machine.empty() && std::find(machines.begin(), machines.end(), r.machine) == machines.end()) machines.push_back(r.machine);
  std::string out;
  for (std::size_t i = 0; i < machines.size(); ++i) out += (i == 0 ? "Measured on " : "; ") + machines[i];
  if (!machines.empty()) out += ".\n\n";
  out += "| method | benchmark | phase | K | inputs | median ms | min ms | peak tensor MB | process peak RSS MB |\n"
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
