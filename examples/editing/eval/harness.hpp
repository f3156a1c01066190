// editlab::eval harness — measures an Editor on a benchmark split at several edit batch sizes,
// against the untouched base model, which the harness holds itself:
//
//   EvalOptions options;                                        // K = 1, 4, 10, 20, 64, 128; >= 300 examples
//   auto rows = editlab::eval::evaluate(editor, base_predictor, qa, Split::test, options);
//   for (const ResultRow& r : rows) std::cout << r.batch_size << " ES " << r.es << " (ES0 " << r.es0 << ")";
//
// For each batch size K, batches of K distinct cases are drawn from the split (distinct subjects
// first) until the cell rests on at least `min_examples` distinct in-scope examples that need
// the edit and as many distinct out-scope examples (at least `min_draws` draws; no more than it
// takes to see each case about four times, nor `max_draws`). Per draw: the editor is reset and
// given the batch's descriptors (nothing else), and the in-scope, out-scope, seen out-scope and
// hard out-scope inputs are predicted under the edits. The base model's answers come from the
// harness's own BasePredictor (cached per input).
//
//   ES        headline: share of in-scope examples answered with the new label, among those the
//             base model does not already answer so ("edit needed"); ES0 there is 0 by design
//   ES(all)   the same over every in-scope example; ES0: the base model's ES on those same inputs
//   DD        share of unseen out-scope inputs (reserved subjects, held-out wordings) whose answer
//             differs from the base model's; DD(seen) on the out-scope subjects editors train on
//   hard DD   the same on the edited subjects' untouched facts
//   ES(known) generation benchmarks: ES on the edit-needed in-scope examples the base model answers
//             with the edit's old label, i.e. it knows the fact in that wording (a scope decision
//             on the others rests on a wording the base model does not understand)
// Rates pool every outcome of the cell; standard errors come from a bootstrap over edits (ES)
// and over out-scope subjects (DD), since draws overlap (metrics.hpp, cluster_bootstrap).
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <iomanip>
#include <map>
#include <limits>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/editor.hpp"
#include "eval/metrics.hpp"
#include "tensortape/core/error.hpp"
#include "tensortape/core/rng.hpp"
#include "world/benchmarks.hpp"

namespace editlab::eval {

using world::Split;

// One line of results: an editor on a benchmark split at one edit batch size.
// NaN means nothing was measured (written as null in JSON).
struct ResultRow {
  std::string method;
  std::string benchmark;
  std::string split = "test";
  int batch_size = 0;
  int draws = 0;
  std::optional<std::uint64_t> seed;  // the editor's training seed, where the run records it
  double es = 0, es_se = 0;           // edit-needed in-scope examples (the headline)
  double es_all = 0, es0 = 0;         // every in-scope example, edited and unedited
  std::optional<double> es_descriptors;  // the descriptors themselves answered with their new labels
  std::optional<double> es_known;        // generation benchmarks: ES where the base answers the old label
  std::optional<int> known_examples;     // the distinct edit-needed examples behind es_known
  double dd = 0, dd_se = 0;           // unseen out-scope
  double acc_drop = 0;                // base accuracy on unseen out-scope (gold) minus edited accuracy
  std::optional<double> dd_seen, dd_seen_se;    // validation / test splits only
  std::optional<double> hard_dd, hard_dd_se;    // benchmarks with hard out-scope examples only
  int in_examples = 0, needed_examples = 0, out_examples = 0;  // distinct examples behind the cell
  int target_examples = 0;            // what the cell was to rest on (EvalOptions::min_examples)
  std::optional<double> edit_ms;      // mean wall time of apply + predict per draw
  std::optional<double> seconds;      // wall time of the whole cell (draws, base answers, bootstrap)
  nlohmann::json editor_options;      // the editor's options as evaluated (an eval override included); null where not recorded
};

// Receives each row as soon as its cell is finished, so a long evaluation keeps what it measured.
using RowSink = std::function<void(const ResultRow&)>;

// How many batches and examples each cell rests on.
struct EvalOptions {
  std::vector<int> batch_sizes = {1, 4, 10, 20, 64, 128};
  int min_draws = 3;
  int max_draws = 400;
  int min_examples = 300;  // distinct edit-needed in-scope and distinct out-scope examples per cell
  std::uint64_t seed = 1;  // of the batch draws
  int bootstrap = 1000;    // resamples for the standard errors
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

// The indices of the batch drawn for (seed, K, draw) — the same one evaluate() uses.
inline std::vector<std::size_t> draw_indices(const std::vector<Case>& pool, int k, std::uint64_t seed, int draw) {
  tt::Rng rng(draw_seed(seed, k, draw));
  return draw_batch(pool, k, rng);
}

inline std::vector<Case> draw_cases(const std::vector<Case>& pool, int k, std::uint64_t seed, int draw) {
  std::vector<Case> batch;
  for (std::size_t i : draw_indices(pool, k, seed, draw)) batch.push_back(pool[i]);
  return batch;
}

// Draws of one K that see each case about four times (then nearly every case has been drawn),
// within [min_draws, max_draws]: more draws would only repeat what the cell already holds.
inline int draw_limit(std::size_t pool_size, int k, const EvalOptions& options) {
  const auto enough = static_cast<int>((4 * pool_size + static_cast<std::size_t>(k) - 1) / static_cast<std::size_t>(k));
  return std::max(options.min_draws, std::min(options.max_draws, enough));
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

// The base model's answers, each input asked once per evaluation.
class BaseAnswers {
 public:
  explicit BaseAnswers(const BasePredictor& predict) : predict_(predict) {}
  void fetch(const std::vector<const std::vector<Example>*>& sets) {
    std::vector<std::string> unseen;
    for (const auto* set : sets)
      for (const auto& e : *set)
        if (answers_.emplace(e.input, std::string()).second) unseen.push_back(e.input);
    if (unseen.empty()) return;
    const auto fresh = predict_(unseen);
    tt::check(fresh.size() == unseen.size(), "editlab::eval", "the base predictor returned ", fresh.size(), " answers for ",
              unseen.size(), " inputs");
    for (std::size_t i = 0; i < unseen.size(); ++i) answers_[unseen[i]] = fresh[i];
  }
  const std::string& at(const std::string& input) const { return answers_.at(input); }

 private:
  const BasePredictor& predict_;
  std::unordered_map<std::string, std::string> answers_;
};

// Outcomes of one cell, gathered per cluster (an edit's index, or an out-scope subject).
struct Tally {
  std::map<std::string, Cluster> clusters;
  std::set<std::string> distinct;  // distinct examples behind it
  void add(const std::string& cluster, const std::string& example, bool hit) {
    Cluster& c = clusters[cluster];
    c.hits += hit ? 1 : 0;
    c.trials += 1;
    distinct.insert(example);
  }
  MeanSe rate(int resamples, std::uint64_t seed) const {
    std::vector<Cluster> all;
    for (const auto& [name, c] : clusters) all.push_back(c);
    return cluster_bootstrap(all, resamples, seed);
  }
};

inline std::string cluster_of(const Example& e) { return e.subject.empty() ? e.input : e.subject; }

}  // namespace detail

// Runs the protocol above; see ResultRow. `progress` gets one line per batch size (redrawn per
// draw on a terminal); pass nullptr for silence. `on_row` (if given) gets each row when its
// batch size is done.
inline std::vector<ResultRow> evaluate(Editor& editor, const BasePredictor& base, const Benchmark& benchmark, Split split,
                                       const EvalOptions& options, std::ostream* progress = &std::cerr,
                                       const RowSink& on_row = {}) {
  const auto& pool = benchmark.split(split);
  tt::check(options.min_draws > 0 && options.max_draws >= options.min_draws, "editlab::eval::evaluate",
            "draws must satisfy 0 < min_draws <= max_draws, got ", options.min_draws, " and ", options.max_draws);
  tt::check(!options.batch_sizes.empty(), "editlab::eval::evaluate", "no edit batch sizes given");
  for (int k : options.batch_sizes)  // fail before any work, not after an hour of smaller batches
    tt::check(k > 0 && static_cast<std::size_t>(k) <= pool.size(), "editlab::eval::evaluate", "edit batch size ", k,
              " does not fit the ", pool.size(), " cases of ", benchmark.name, "/", world::split_name(split),
              " (1 ... ", pool.size(), ")");
  const bool has_hard = std::any_of(pool.begin(), pool.end(), [](const Case& c) { return !c.hard_out_scope.empty(); });
  const bool has_seen = std::any_of(pool.begin(), pool.end(), [](const Case& c) { return !c.seen_out_scope.empty(); });
  const bool has_known = benchmark.labels.empty() &&  // a claim's old label is just the other one
                         std::any_of(pool.begin(), pool.end(), [](const Case& c) { return !c.old_target.empty(); });
  const bool redraw = progress == &std::cerr && isatty(fileno(stderr));
  const std::string label = editor.name() + " " + benchmark.name + "/" + world::split_name(split);

  detail::BaseAnswers base_answers(base);
  std::vector<ResultRow> rows;
  for (int k : options.batch_sizes) {
    detail::Tally needed, known, all_in, base_in, out, seen, hard, described;
    double base_right = 0, edited_right = 0, out_trials = 0;  // gold accuracy on unseen out-scope
    std::vector<double> edit_ms;
    const auto started = std::chrono::steady_clock::now();
    const int limit = draw_limit(pool.size(), k, options);
    int d = 0;
    for (; d < limit; ++d) {
      if (d >= options.min_draws && static_cast<int>(needed.distinct.size()) >= options.min_examples &&
          static_cast<int>(out.distinct.size()) >= options.min_examples)
        break;
      const auto indices = draw_indices(pool, k, options.seed, d);
      std::vector<Case> batch;
      for (std::size_t i : indices) batch.push_back(pool[i]);
      const auto out_set = out_scope_of(batch);
      const auto seen_set = seen_out_scope_of(batch);
      const auto hard_set = hard_out_scope_of(batch);
      std::vector<Example> in_set;
      std::vector<std::string> in_edit;  // the edit (its index in the split) each in-scope example belongs to
      std::vector<const std::string*> in_old;  // and that edit's old label
      for (std::size_t b = 0; b < batch.size(); ++b)
        for (const auto& e : batch[b].in_scope) {
          in_set.push_back(e);
          in_edit.push_back(std::to_string(indices[b]));
          in_old.push_back(&batch[b].old_target);
        }
      base_answers.fetch({&in_set, &out_set, &seen_set, &hard_set});

      // One predict call for all five sets, so an editor can batch them.
      const auto descriptors = descriptors_of(batch);
      std::vector<std::string> inputs = inputs_of(in_set);
      for (const auto* set : {&out_set, &seen_set, &hard_set, &descriptors})
        for (const auto& e : *set) inputs.push_back(e.input);
      editor.reset();
      const auto t0 = std::chrono::steady_clock::now();
      editor.apply(descriptors);
      const auto answers = detail::predict_checked(editor, inputs);
      edit_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      editor.reset();

      std::size_t at = 0;
      for (std::size_t i = 0; i < in_set.size(); ++i, ++at) {
        const Example& e = in_set[i];
        const std::string example = in_edit[i] + "\t" + e.input;
        const std::string& before = base_answers.at(e.input);
        const bool base_hit = before == e.target, hit = answers[at] == e.target;
        all_in.add(in_edit[i], example, hit);
        base_in.add(in_edit[i], example, base_hit);
        if (!base_hit) needed.add(in_edit[i], example, hit);
        if (!base_hit && has_known && !in_old[i]->empty() && before == *in_old[i]) known.add(in_edit[i], example, hit);
      }
      for (const auto& e : out_set) {
        const std::string& before = base_answers.at(e.input);
        out.add(detail::cluster_of(e), e.input, answers[at] != before);
        base_right += before == e.target;
        edited_right += answers[at++] == e.target;
        out_trials += 1;
      }
      for (const auto& e : seen_set) seen.add(detail::cluster_of(e), e.input, answers[at++] != base_answers.at(e.input));
      for (const auto& e : hard_set) hard.add(detail::cluster_of(e), e.input, answers[at++] != base_answers.at(e.input));
      for (std::size_t b = 0; b < descriptors.size(); ++b, ++at)
        described.add(std::to_string(indices[b]), std::to_string(indices[b]), answers[at] == descriptors[b].target);

      if (redraw)
        *progress << "\r" << label << "  K=" << k << "  draw " << d + 1 << "/" << limit << "  " << needed.distinct.size()
                  << " in-scope, " << out.distinct.size() << " out-scope examples" << std::flush;
    }

    ResultRow row;
    row.method = editor.name();
    row.benchmark = benchmark.name;
    row.split = world::split_name(split);
    row.batch_size = k;
    row.draws = d;
    const auto seed_of = [&](int which) { return draw_seed(options.seed, k, 1000000 + which); };
    const MeanSe es = needed.rate(options.bootstrap, seed_of(0)), dd = out.rate(options.bootstrap, seed_of(1));
    row.es = es.mean;
    row.es_se = es.se;
    row.es_all = all_in.rate(0, 0).mean;
    row.es0 = base_in.rate(0, 0).mean;
    row.es_descriptors = described.rate(0, 0).mean;
    if (has_known) {
      row.es_known = known.clusters.empty() ? std::numeric_limits<double>::quiet_NaN() : known.rate(0, 0).mean;
      row.known_examples = static_cast<int>(known.distinct.size());
    }
    row.dd = dd.mean;
    row.dd_se = dd.se;
    row.acc_drop = out_trials > 0 ? (base_right - edited_right) / out_trials : std::numeric_limits<double>::quiet_NaN();
    if (has_seen) {
      const MeanSe s = seen.rate(options.bootstrap, seed_of(2));
      row.dd_seen = s.mean;
      row.dd_seen_se = s.se;
    }
    if (has_hard) {
      const MeanSe h = hard.rate(options.bootstrap, seed_of(3));
      row.hard_dd = h.mean;
      row.hard_dd_se = h.se;
    }
    row.target_examples = options.min_examples;
    row.in_examples = static_cast<int>(all_in.distinct.size());
    row.needed_examples = static_cast<int>(needed.distinct.size());
    row.out_examples = static_cast<int>(out.distinct.size());
    row.edit_ms = mean_and_se(edit_ms).mean;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    row.seconds = seconds;
    rows.push_back(row);
    if (on_row) on_row(row);

    if (progress) {
      *progress << (redraw ? "\r" : "") << label << "  K=" << k << "  " << d << " draws  ES " << detail::two(row.es) << " ± "
                << detail::two(row.es_se) << " (ES0 " << detail::two(row.es0) << ", all " << detail::two(row.es_all)
                << ")  DD " << detail::two(row.dd) << " ± " << detail::two(row.dd_se);
      if (row.dd_seen) *progress << "  seen DD " << detail::two(*row.dd_seen);
      if (row.hard_dd) *progress << "  hard DD " << detail::two(*row.hard_dd);
      if (row.es_known) *progress << "  ES known " << detail::two(*row.es_known) << " [" << *row.known_examples << "]";
      *progress << "  [" << row.needed_examples << " in, " << row.out_examples << " out]";
      if (row.needed_examples < options.min_examples || row.out_examples < options.min_examples)
        *progress << "  (the split holds fewer than " << options.min_examples << ")";
      char timing[64];
      std::snprintf(timing, sizeof timing, "  %.1f ms per draw  %.1f s", *row.edit_ms, seconds);
      *progress << timing << "\n" << std::flush;
    }
  }
  return rows;
}

}  // namespace editlab::eval
