// editlab::eval metrics — edit success (ES), drawdown (DD) and the accuracy drop, as defined in
// ../shared/design/EDITORS.md, and the evaluation sets of one edit batch:
//
//   const auto in  = in_scope_of(batch);        // every case's in-scope examples
//   const auto out = out_scope_of(batch);       // out-scope, minus examples about an edited subject
//   double es = edit_success(editor.predict(inputs_of(in)), in);
//   double dd = drawdown(editor.predict(inputs_of(out)), base_predictions);   // vs the BASE model
//   double drop = accuracy(base_predictions, out) - accuracy(edited_predictions, out);
//   MeanSe es_over_draws = mean_and_se({0.91, 0.94, 0.93});   // {0.9267, 0.0088}
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

// ---- The evaluation sets of one batch --------------------------------------------------------

// Inputs an edit of the batch legitimately changes: its descriptor and its in-scope examples.
// An out-scope example with one of these inputs would ask for two answers at once, so it is
// dropped from every out-scope set (this never happens in the generated benchmarks by design,
// but a real-data track may repeat a question).
inline std::set<std::string> edited_inputs(const std::vector<Case>& batch) {
  std::set<std::string> out;
  for (const auto& c : batch) {
    out.insert(c.edit.input);
    for (const auto& e : c.in_scope) out.insert(e.input);
  }
  return out;
}

inline std::vector<Example> in_scope_of(const std::vector<Case>& batch) {
  std::vector<Example> out;
  for (const auto& c : batch) out.insert(out.end(), c.in_scope.begin(), c.in_scope.end());
  return out;
}

// The union of the cases' out-scope examples (each input once), minus those about a subject that
// some case of the batch edits: editing Truthosous's birthplace may rightly change what the model
// says about Truthosous elsewhere, so that is not drawdown.
inline std::vector<Example> out_scope_of(const std::vector<Case>& batch) {
  std::set<std::string> edited_subjects;
  for (const auto& c : batch) edited_subjects.insert(c.subject);
  const auto edited = edited_inputs(batch);
  std::set<std::string> seen;
  std::vector<Example> out;
  for (const auto& c : batch)
    for (const auto& e : c.out_scope) {
      if (!e.subject.empty() && edited_subjects.count(e.subject)) continue;
      if (edited.count(e.input) || !seen.insert(e.input).second) continue;
      out.push_back(e);
    }
  return out;
}

// The union of the cases' hard out-scope examples (same subject, unrelated relation). No subject
// filter: sharing the edited subject is what makes them hard.
inline std::vector<Example> hard_out_scope_of(const std::vector<Case>& batch) {
  const auto edited = edited_inputs(batch);
  std::set<std::string> seen;
  std::vector<Example> out;
  for (const auto& c : batch)
    for (const auto& e : c.hard_out_scope) {
      if (edited.count(e.input) || !seen.insert(e.input).second) continue;
      out.push_back(e);
    }
  return out;
}

}  // namespace editlab::eval
