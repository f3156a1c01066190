// editlab::eval metrics — edit success (ES), drawdown (DD) and the accuracy drop, as defined in
// ../shared/design/EDITORS.md, and the evaluation sets of one edit batch:
//
//   const auto in  = in_scope_of(batch);        // every case's in-scope examples
//   const auto out = out_scope_of(batch);       // out-scope, minus what an edit of the batch reaches
//   double es = edit_success(editor.predict(inputs_of(in)), in);
//   double dd = drawdown(editor.predict(inputs_of(out)), base_predictions);   // vs the BASE model
//   double drop = accuracy(base_predictions, out) - accuracy(edited_predictions, out);
//   MeanSe es_over_draws = mean_and_se({0.91, 0.94, 0.93});   // {0.9267, 0.0088}
//   MeanSe es = cluster_bootstrap(per_edit_hits);               // pooled rate, SE over edits
//
// Every comparison is an exact string match: the greedy-decoded answer, or for claim tasks the
// label ("true" / "false").
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tensortape/core/error.hpp"
#include "tensortape/core/rng.hpp"
#include "world/benchmarks.hpp"

namespace editlab::eval {

namespace tt = tensortape;

using world::Case;
using world::Example;

namespace detail {
inline void check_same_size(std::size_t predictions, std::size_t reference, const char* what) {
  tt::check(predictions == reference, "editlab::eval", what, ": ", predictions, " predictions for ", reference,
            " examples");
}
}  // namespace detail

inline std::vector<std::string> inputs_of(const std::vector<Example>& examples) {
  std::vector<std::string> out;
  out.reserve(examples.size());
  for (const auto& e : examples) out.push_back(e.input);
  return out;
}

// Share of predictions equal to their example's target. An empty set has no accuracy: NaN, so
// that a caller cannot mistake "nothing measured" for 0 or 1.
inline double accuracy(const std::vector<std::string>& predictions, const std::vector<Example>& examples) {
  detail::check_same_size(predictions.size(), examples.size(), "accuracy");
  if (examples.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::size_t hits = 0;
  for (std::size_t i = 0; i < examples.size(); ++i) hits += predictions[i] == examples[i].target;
  return static_cast<double>(hits) / static_cast<double>(examples.size());
}

// ES: share of in-scope examples whose prediction is the new label (their target).
inline double edit_success(const std::vector<std::string>& predictions, const std::vector<Example>& in_scope) {
  detail::check_same_size(predictions.size(), in_scope.size(), "edit_success");
  return accuracy(predictions, in_scope);
}

// DD: share of out-scope inputs whose prediction under the edits differs from the base model's
// own prediction for it — not from the gold label, so a base model's existing mistakes do not
// count against an editor. NaN for an empty set.
inline double drawdown(const std::vector<std::string>& edited, const std::vector<std::string>& base) {
  detail::check_same_size(edited.size(), base.size(), "drawdown");
  if (base.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::size_t changed = 0;
  for (std::size_t i = 0; i < base.size(); ++i) changed += edited[i] != base[i];
  return static_cast<double>(changed) / static_cast<double>(base.size());
}

// Base accuracy on out-scope against gold minus edited accuracy: what the edits cost in
// correctness (DD also counts changes among answers the base already got wrong).
inline double accuracy_drop(const std::vector<std::string>& base, const std::vector<std::string>& edited,
                            const std::vector<Example>& out_scope) {
  return accuracy(base, out_scope) - accuracy(edited, out_scope);
}

struct MeanSe {
  double mean = std::numeric_limits<double>::quiet_NaN();
  double se = std::numeric_limits<double>::quiet_NaN();
  int n = 0;  // values that went in (NaN values are left out)
};

// Mean and standard error (sample standard deviation / sqrt(n)) over draws; the standard error of
// a single draw is 0. NaN values (a draw with an empty set) are skipped; with none left, both are
// NaN and n is 0.
inline MeanSe mean_and_se(const std::vector<double>& values) {
  std::vector<double> kept;
  for (double v : values)
    if (!std::isnan(v)) kept.push_back(v);
  MeanSe out;
  out.n = static_cast<int>(kept.size());
  if (kept.empty()) return out;
  double sum = 0;
  for (double v : kept) sum += v;
  out.mean = sum / static_cast<double>(kept.size());
  if (kept.size() == 1) {
    out.se = 0;
    return out;
  }
  double squares = 0;
  for (double v : kept) squares += (v - out.mean) * (v - out.mean);
  const double sample_sd = std::sqrt(squares / static_cast<double>(kept.size() - 1));
  out.se = sample_sd / std::sqrt(static_cast<double>(kept.size()));
  return out;
}

// ---- Standard errors that respect repeated draws --------------------------------------------

// Hits and trials of one cluster: all outcomes that share an edit (in-scope) or an out-scope
// subject, pooled over every draw it appeared in.
struct Cluster {
  double hits = 0;
  double trials = 0;
};

// The pooled rate sum(hits) / sum(trials) and its standard error by a cluster bootstrap:
// `resamples` times, draw as many clusters as there are, with replacement, and take the pooled
// rate; the SE is the standard deviation of those rates. Draws of one K overlap (a test split of
// 184 edits at K = 128), so one edit's outcomes in several draws are not independent; resampling
// whole clusters counts each edit's evidence once. Fixed seed: the same input gives the same SE.
// resamples = 0 gives the rate alone (SE NaN).
inline MeanSe cluster_bootstrap(const std::vector<Cluster>& clusters, int resamples = 1000, std::uint64_t seed = 1) {
  MeanSe out;
  double hits = 0, trials = 0;
  for (const auto& c : clusters) {
    hits += c.hits;
    trials += c.trials;
  }
  if (trials <= 0) return out;
  out.n = static_cast<int>(clusters.size());
  out.mean = hits / trials;
  if (resamples <= 0) return out;  // the rate alone
  tt::Rng rng(seed);
  std::vector<double> rates;
  rates.reserve(static_cast<std::size_t>(resamples));
  for (int r = 0; r < resamples; ++r) {
    double h = 0, t = 0;
    for (std::size_t i = 0; i < clusters.size(); ++i) {
      const Cluster& c = clusters[rng.below(clusters.size())];
      h += c.hits;
      t += c.trials;
    }
    if (t > 0) rates.push_back(h / t);
  }
  double mean = 0;
  for (double v : rates) mean += v;
  mean /= static_cast<double>(rates.size());
  double squares = 0;
  for (double v : rates) squares += (v - mean) * (v - mean);
  out.se = rates.size() > 1 ? std::sqrt(squares / static_cast<double>(rates.size() - 1)) : 0.0;
  return out;
}

// ---- The evaluation sets of one batch --------------------------------------------------------

// The edit descriptors of a batch: all an editor is given (input -> new label).
inline std::vector<Example> descriptors_of(const std::vector<Case>& batch) {
  std::vector<Example> out;
  out.reserve(batch.size());
  for (const auto& c : batch) out.push_back(c.edit);
  return out;
}

// What the edits of a batch legitimately change: the inputs they edit (descriptors and
// in-scope examples), the facts they change and the subjects they are about. An out-scope
// example that touches any of these is not out of scope for this batch.
struct BatchReach {
  std::set<std::string> inputs, facts, subjects;
  explicit BatchReach(const std::vector<Case>& batch) {
    for (const auto& c : batch) {
      inputs.insert(c.edit.input);
      for (const auto& e : c.in_scope) inputs.insert(e.input);
      facts.insert(c.changes.begin(), c.changes.end());
      subjects.insert(c.subject);
    }
  }
  bool changes(const Example& e) const { return inputs.count(e.input) || (!e.fact.empty() && facts.count(e.fact)); }
  bool about_edited_subject(const Example& e) const { return !e.subject.empty() && subjects.count(e.subject); }
};

inline std::vector<Example> in_scope_of(const std::vector<Case>& batch) {
  std::vector<Example> out;
  for (const auto& c : batch) out.insert(out.end(), c.in_scope.begin(), c.in_scope.end());
  return out;
}

namespace detail {
// The union of one out-scope set over the batch's cases (each input once), without the examples
// the batch reaches; `keep_subject`: hard examples are about an edited subject by design.
template <class Member>
std::vector<Example> union_out_of_reach(const std::vector<Case>& batch, Member member, bool keep_subject) {
  const BatchReach reach(batch);
  std::set<std::string> seen;
  std::vector<Example> out;
  for (const auto& c : batch)
    for (const auto& e : c.*member) {
      if (reach.changes(e) || (!keep_subject && reach.about_edited_subject(e))) continue;
      if (seen.insert(e.input).second) out.push_back(e);
    }
  return out;
}
}  // namespace detail

// The union of the cases' out-scope examples (each input once), minus those about a subject that
// some case of the batch edits (editing Truthosous's birthplace may rightly change what the model
// says about Truthosous elsewhere) and those whose fact or input an edit of the batch changes.
inline std::vector<Example> out_scope_of(const std::vector<Case>& batch) {
  return detail::union_out_of_reach(batch, &Case::out_scope, false);
}

// The same for the out-scope examples the editor trained on (validation and test cases only).
inline std::vector<Example> seen_out_scope_of(const std::vector<Case>& batch) {
  return detail::union_out_of_reach(batch, &Case::seen_out_scope, false);
}

// The union of the cases' hard out-scope examples (same subject, a fact the edit does not
// touch): no subject filter, since sharing the edited subject is what makes them hard, but an
// example whose fact another edit of the batch changes is dropped (at K = 128 a subject's other
// relations are often edited too).
inline std::vector<Example> hard_out_scope_of(const std::vector<Case>& batch) {
  return detail::union_out_of_reach(batch, &Case::hard_out_scope, true);
}

}  // namespace editlab::eval
