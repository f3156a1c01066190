// editlab::eval harness — measures an Editor on a benchmark split at several edit batch sizes:
//
//   SeprogEditor editor(...);                                   // any editlab::eval::Editor
//   auto rows = editlab::eval::evaluate(editor, qa, Split::test, {1, 4, 10, 20, 64, 128},
//                                       /*draws=*/5, /*seed=*/1);
//   for (const ResultRow& r : rows) std::cout << r.batch_size << " ES " << r.es << " DD " << r.dd;
//
// For each batch size K and each draw: K distinct cases are drawn from the split (distinct
// subjects first), the editor is reset, the base model's answers to the batch's out-scope
// inputs are taken (cached per input across draws, so the base runs once per input), the batch
// is applied, and in-scope, out-scope and hard out-scope inputs are predicted under the edits.
// A row per K holds the mean and standard error over draws (see metrics.hpp, report.hpp).
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iomanip>
#include <limits>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "eval/editor.hpp"
#include "eval/metrics.hpp"
#include "tensortape/core/error.hpp"
#include "tensortape/core/rng.hpp"
#include "world/benchmarks.hpp"

namespace editlab::eval {

using world::Split;

// One line of results: an editor on a benchmark at one edit batch size, over `draws` batches.
// NaN in es / dd means no draw had an example to measure it on (written as null in JSON).
struct ResultRow {
  std::string method;
  std::string benchmark;
  int batch_size = 0;
  int draws = 0;
  double es = 0, es_se = 0;
  double dd = 0, dd_se = 0;
  double acc_drop = 0;                // base accuracy on out-scope (gold) minus edited accuracy
  std::optional<double> hard_dd;      // benchmarks with hard out-scope examples only
  std::optional<double> hard_dd_se;
  std::optional<double> edit_ms;      // mean wall time of apply + predict per draw
};

// ---- Drawing edit batches ------------------------------------------------------------------

// The seed of one draw, from the run's seed, K and the draw's index: a row for K = 64 does not
// depend on which other batch sizes were asked for in the same run.
inline std::uint64_t draw_seed(std::uint64_t seed, int batch_size, int draw) {
  std::uint64_t h = seed ^ 0x9e3779b97f4a7c15ULL;
  for (std::uint64_t part : {static_cast<std::uint64_t>(batch_size), static_cast<std::uint64_t>(draw)}) {
    h ^= part + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    h *= 0xbf58476d1ce4e5b9ULL;
  }
  return h;
}

// Indices of `k` distinct cases of `pool`, sampled without replacement. Cases with a subject not
// yet in the batch come first, so a batch repeats a subject only when the pool has fewer
// distinct subjects than k (two edits of one subject in a batch shrink its out-scope set and
// can contradict each other).
inline std::vector<std::size_t> draw_batch(const std::vector<Case>& pool, int k, tt::Rng& rng) {
  tt::check(k > 0, "editlab::eval::draw_batch", "edit batch size must be positive, got ", k);
  tt::check(static_cast<std::size_t>(k) <= pool.size(), "editlab::eval::draw_batch", "edit batch size ", k,
            " is larger than the split's ", pool.size(), " cases (sampling is without replacement)");
  std::vector<std::size_t> order(pool.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);  // Fisher-Yates
  std::vector<std::size_t> picked;
  std::vector<bool> taken(pool.size(), false);
  std::set<std::string> subjects;
  for (std::size_t i : order) {
    if (picked.size() == static_cast<std::size_t>(k)) break;
    if (subjects.insert(pool[i].subject).second) {
      picked.push_back(i);
      taken[i] = true;
    }
  }
  for (std::size_t i : order) {  // fewer distinct subjects than k: fill with the rest, in shuffled order
    if (picked.size() == static_cast<std::size_t>(k)) break;
    if (!taken[i]) picked.push_back(i);
  }
  return picked;
}

// The batch drawn for (seed, K, draw) — the same one evaluate() uses.
inline std::vector<Case> draw_cases(const std::vector<Case>& pool, int k, std::uint64_t seed, int draw) {
  tt::Rng rng(draw_seed(seed, k, draw));
  std::vector<Case> batch;
  for (std::size_t i : draw_batch(pool, k, rng)) batch.push_back(pool[i]);
  return batch;
}

// ---- Evaluation ----------------------------------------------------------------------------

namespace detail {

inline std::vector<std::string> predict_checked(Editor& editor, const std::vector<std::string>& inputs) {
  if (inputs.empty()) return {};
  auto out = editor.predict(inputs);
  tt::check(out.size() == inputs.size(), "editlab::eval", editor.name(), ".predict returned ", out.size(),
            " answers for ", inputs.size(), " inputs");
  return out;
}

inline std::string two(double v) {
  if (std::isnan(v)) return "-";
  std::ostringstream s;
  s << std::fixed << std::setprecision(2) << v;
  return s.str();
}

}  // namespace detail

// Runs the protocol above; see ResultRow. `progress` gets one line per batch size (redrawn per
// draw on a terminal); pass nullptr for silence.
inline std::vector<ResultRow> evaluate(Editor& editor, const Benchmark& benchmark, Split split,
                                       std::vector<int> batch_sizes, int draws, std::uint64_t seed,
                                       std::ostream* progress = &std::cerr) {
  const auto& pool = benchmark.split(split);
  tt::check(draws > 0, "editlab::eval::evaluate", "draws must be positive, got ", draws);
  tt::check(!batch_sizes.empty(), "editlab::eval::evaluate", "no edit batch sizes given");
  for (int k : batch_sizes)  // fail before any work, not after an hour of smaller batches
    tt::check(k > 0 && static_cast<std::size_t>(k) <= pool.size(), "editlab::eval::evaluate", "edit batch size ", k,
              " does not fit the ", pool.size(), " cases of ", benchmark.name, "/", world::split_name(split),
              " (1 ... ", pool.size(), ")");
  const bool has_hard = std::any_of(pool.begin(), pool.end(), [](const Case& c) { return !c.hard_out_scope.empty(); });
  const bool redraw = progress == &std::cerr && isatty(fileno(stderr));
  const std::string label = editor.name() + " " + benchmark.name + "/" + world::split_name(split);

  std::unordered_map<std::string, std::string> base_answers;  // input -> the unedited model's answer
  std::vector<ResultRow> rows;
  for (int k : batch_sizes) {
    std::vector<double> es, dd, drop, hard_dd, edit_ms;
    const auto started = std::chrono::steady_clock::now();
    for (int d = 0; d < draws; ++d) {
      const auto batch = draw_cases(pool, k, seed, d);
      const auto in = in_scope_of(batch);
      const auto out = out_scope_of(batch);
      const auto hard = hard_out_scope_of(batch);

      // Base answers, with the editor reset: only inputs not seen in an earlier draw.
      editor.reset();
      std::vector<std::string> unseen;
      for (const auto* set : {&out, &hard})
        for (const auto& e : *set)
          if (!base_answers.count(e.input)) {
            base_answers.emplace(e.input, std::string());
            unseen.push_back(e.input);
          }
      const auto fresh = unseen.empty() ? std::vector<std::string>() : editor.reference_predict(unseen);
      tt::check(fresh.size() == unseen.size(), "editlab::eval", editor.name(), ".reference_predict returned ", fresh.size(),
                " answers for ", unseen.size(), " inputs");
      for (std::size_t i = 0; i < unseen.size(); ++i) base_answers[unseen[i]] = fresh[i];

      // One predict call for all three sets, so an editor can batch them.
      std::vector<std::string> inputs = inputs_of(in);
      for (const auto* set : {&out, &hard})
        for (const auto& e : *set) inputs.push_back(e.input);
      const auto t0 = std::chrono::steady_clock::now();
      editor.apply(batch);
      const auto answers = detail::predict_checked(editor, inputs);
      edit_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      editor.reset();

      auto slice = [&](std::size_t from, std::size_t n) {
        return std::vector<std::string>(answers.begin() + static_cast<std::ptrdiff_t>(from),
                                        answers.begin() + static_cast<std::ptrdiff_t>(from + n));
      };
      auto base_of = [&](const std::vector<Example>& set) {
        std::vector<std::string> b;
        for (const auto& e : set) b.push_back(base_answers.at(e.input));
        return b;
      };
      const auto in_answers = slice(0, in.size());
      const auto out_answers = slice(in.size(), out.size());
      const auto hard_answers = slice(in.size() + out.size(), hard.size());
      const auto out_base = base_of(out);
      es.push_back(edit_success(in_answers, in));
      dd.push_back(drawdown(out_answers, out_base));
      drop.push_back(accuracy_drop(out_base, out_answers, out));
      if (has_hard) hard_dd.push_back(drawdown(hard_answers, base_of(hard)));

      if (redraw)
        *progress << "\r" << label << "  K=" << k << "  " << d + 1 << "/" << draws << " draws" << std::flush;
    }

    ResultRow row;
    row.method = editor.name();
    row.benchmark = benchmark.name;
    row.batch_size = k;
    row.draws = draws;
    const MeanSe e = mean_and_se(es), o = mean_and_se(dd);
    row.es = e.mean;
    row.es_se = e.se;
    row.dd = o.mean;
    row.dd_se = o.se;
    row.acc_drop = mean_and_se(drop).mean;
    if (has_hard) {
      const MeanSe h = mean_and_se(hard_dd);
      row.hard_dd = h.mean;
      row.hard_dd_se = h.se;
    }
    row.edit_ms = mean_and_se(edit_ms).mean;
    rows.push_back(row);

    if (progress) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      *progress << (redraw ? "\r" : "") << label << "  K=" << k << "  " << draws << "/" << draws << " draws"
                << "  ES " << detail::two(row.es) << " ± " << detail::two(row.es_se) << "  DD " << detail::two(row.dd)
                << " ± " << detail::two(row.dd_se);
      if (row.hard_dd) *progress << "  hard DD " << detail::two(*row.hard_dd);
      if (o.n < draws) *progress << "  (DD from " << o.n << " draws: the others had no out-scope example left)";
      char timing[64];
      std::snprintf(timing, sizeof timing, "  %.1f ms per draw (apply + predict)  %.1f s", *row.edit_ms, seconds);
      *progress << timing << "\n" << std::flush;
    }
  }
  return rows;
}

}  // namespace editlab::eval
