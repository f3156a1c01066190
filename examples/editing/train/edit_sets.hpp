// editlab::train — edit sets for training editors: what one training step shows an editor.
//
//   train::EditSets step = train::draw_edit_sets(train_cases, rng, {.edit_sets = 16, .examples_per_step = 64});
//   auto shards = train::split_edit_sets(step, threads);      // for train::backward_sharded
//   train::EditBatch batch = train::draw_edit_batch(train_cases, 8, rng);   // MEND's and ENN's
//
// A step holds several independent edit sets. Each set's inputs are scored against that set's
// edits only, so one step teaches many different new labels even while an editor's selection
// is still blurry (SEPROG with a single set per step saw one label at a time and barely
// learned). The options beyond uniform draws (sibling_share, relabel, word_dropout,
// swap_negatives, hard_negatives) are SEPROG's and documented with SeprogOptions.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tensortape/core/rng.hpp"
#include "train/data_parallel.hpp"
#include "common/cases.hpp"
#include "world/corpus.hpp"

namespace editlab::train {

namespace tt = tensortape;

struct EditSets {
  std::vector<Example> edits, in_scope, out_scope;
  std::vector<int> edit_set, in_set, out_set;  // the edit set of each edit / example
  std::vector<std::string> in_edit;             // the input of the edit each in-scope example belongs to
};

struct EditSetOptions {
  int edit_sets = 1;             // independent edit sets per step
  int examples_per_step = 64;    // in-scope examples per step, spread over the sets (and as many out-scope)
  int max_edits = 32;            // each set has 1..max_edits edits
  double sibling_share = 0.0;    // share of a set's later edits drawn from subjects it already edits
  double relabel = 0.0;          // share of cases given another case's new label
  double word_dropout = 0.0;     // share of in-scope inputs with one word dropped
  double swap_negatives = 0.0;   // share of out-scope inputs made from in-scope ones about another subject
  double hard_negatives = 0.0;   // share of out-scope inputs that are the set's subjects' other facts
};

// text with the first occurrence of `from` replaced by `to`; nothing when `from` is absent.
inline std::optional<std::string> replace_subject(const std::string& text, const std::string& from, const std::string& to) {
  const auto at = from.empty() ? std::string::npos : text.find(from);
  if (at == std::string::npos) return std::nullopt;
  return text.substr(0, at) + to + text.substr(at + from.size());
}

// Gives the case another new label, when its in-scope examples carry the edit's own label.
inline void swap_label(Case& c, const std::string& label) {
  if (label == c.edit.target || label == c.old_target) return;
  for (const auto& e : c.in_scope)
    if (e.target != c.edit.target) return;
  c.edit.target = label;
  for (auto& e : c.in_scope) e.target = label;
}

// Appends the edit set pool[chosen] to d, with `examples` in-scope and out-scope examples.
inline void append_edit_set(EditSets& d, const std::vector<Case>& pool, const std::vector<std::size_t>& chosen, int examples,
                            tt::Rng& rng, const EditSetOptions& o) {
  const int set = d.edit_set.empty() ? 0 : d.edit_set.back() + 1;
  std::vector<std::string> subjects;
  std::vector<Example> in_pool, out_pool;
  std::vector<std::string> in_pool_edit, in_pool_subject;  // the edit input and subject of each in_pool example
  for (auto i : chosen) {
    Case c = pool[i];
    if (o.relabel > 0 && rng.uniform() < o.relabel) swap_label(c, pool[rng.below(pool.size())].edit.target);
    d.edits.push_back(c.edit);
    d.edit_set.push_back(set);
    subjects.push_back(c.subject);
    in_pool.push_back(c.edit);
    in_pool.insert(in_pool.end(), c.in_scope.begin(), c.in_scope.end());
    in_pool_edit.resize(in_pool.size(), c.edit.input);
    in_pool_subject.resize(in_pool.size(), c.subject);
  }
  auto edited = [&](const std::string& s) { return std::find(subjects.begin(), subjects.end(), s) != subjects.end(); };
  for (auto i : chosen)
    for (const auto& e : pool[i].out_scope)
      if (!edited(e.subject)) out_pool.push_back(e);
  // The set's subjects' other facts (Case::hard_out_scope), but none that an edit of the set changes.
  std::vector<Example> hard_pool;
  if (o.hard_negatives > 0) {
    std::vector<std::string> changed;
    for (auto i : chosen) changed.insert(changed.end(), pool[i].changes.begin(), pool[i].changes.end());
    for (auto i : chosen)
      for (const auto& e : pool[i].hard_out_scope)
        if (std::find(changed.begin(), changed.end(), e.fact) == changed.end()) hard_pool.push_back(e);
  }
  for (int tries = 0; tries < 4 * examples; ++tries) {
    const auto& other = pool[rng.below(pool.size())];
    if (!edited(other.subject)) out_pool.push_back({other.edit.input, other.old_target, other.subject});
    if (static_cast<int>(out_pool.size()) >= 2 * examples) break;
  }
  for (int i = 0; i < examples; ++i) {
    const auto pick = rng.below(in_pool.size());
    d.in_scope.push_back(in_pool[pick]);
    if (o.word_dropout > 0 && rng.uniform() < o.word_dropout)
      d.in_scope.back().input = world::drop_a_word(d.in_scope.back().input, in_pool_subject[pick], rng);
    d.in_edit.push_back(in_pool_edit[pick]);
    d.in_set.push_back(set);
    if (!out_pool.empty()) {
      d.out_scope.push_back(out_pool[rng.below(out_pool.size())]);
      d.out_set.push_back(set);
      if (o.swap_negatives > 0 && rng.uniform() < o.swap_negatives) {
        const auto from = rng.below(in_pool.size());
        const auto& other = pool[rng.below(pool.size())];
        if (!edited(other.subject))
          if (auto swapped = replace_subject(in_pool[from].input, in_pool_subject[from], other.subject))
            d.out_scope.back() = {*swapped, in_pool[from].target, other.subject};  // the label is unused: out-scope inputs train e(x) only
      }
      if (!hard_pool.empty() && rng.uniform() < o.hard_negatives) d.out_scope.back() = hard_pool[rng.below(hard_pool.size())];
    }
  }
}

// One step's training data: o.edit_sets edit sets of 1..max_edits cases each, with
// in-scope examples (their rephrasings and the descriptors themselves, with the new labels)
// and as many out-scope inputs (the cases' out-scope examples and other cases' descriptors).
inline EditSets draw_edit_sets(const std::vector<Case>& pool, tt::Rng& rng, const EditSetOptions& o) {
  EditSets d;
  const int sets = std::max(1, o.edit_sets);
  const int per_set = std::max(1, o.examples_per_step / sets);
  std::map<std::string, std::vector<std::size_t>> cases_of;  // subject -> its cases in pool, for sibling draws
  if (o.sibling_share > 0)
    for (std::size_t i = 0; i < pool.size(); ++i) cases_of[pool[i].subject].push_back(i);
  for (int set = 0; set < sets; ++set) {
    // K = 1 + floor(max_edits u^3): small sets are common (a third are single edits), which
    // teaches the prompt decoder while the selection is still learning; large ones teach it.
    const double u = rng.uniform();
    const int k = std::min(1 + static_cast<int>(o.max_edits * u * u * u), static_cast<int>(std::min<std::size_t>(o.max_edits, pool.size())));
    std::vector<std::size_t> chosen;
    auto unchosen = [&](std::size_t i) { return std::find(chosen.begin(), chosen.end(), i) == chosen.end(); };
    while (static_cast<int>(chosen.size()) < k) {
      std::vector<std::size_t> siblings;  // unchosen edits of the set's subjects
      if (!chosen.empty() && o.sibling_share > 0 && rng.uniform() < o.sibling_share)
        for (auto c : chosen)
          for (auto i : cases_of[pool[c].subject])
            if (unchosen(i) && std::find(siblings.begin(), siblings.end(), i) == siblings.end()) siblings.push_back(i);
      const std::size_t i = siblings.empty() ? rng.below(pool.size()) : siblings[rng.below(siblings.size())];
      if (unchosen(i)) chosen.push_back(i);
    }
    append_edit_set(d, pool, chosen, per_set, rng, o);
  }
  return d;
}

// One edit set: all of `edits`, with `examples` in-scope and out-scope examples.
inline EditSets one_edit_set(const std::vector<Case>& edits, tt::Rng& rng, int examples, double swap_negatives) {
  EditSets d;
  std::vector<std::size_t> all(edits.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
  append_edit_set(d, edits, all, examples, rng, {.swap_negatives = swap_negatives});
  return d;
}

// The step dealt into `count` shards: whole edit sets round-robin when there are enough of
// them, else the examples, with every shard holding all the edits. A shard's loss weighs by
// its share of the examples.
inline std::vector<Shard<EditSets>> split_edit_sets(const EditSets& data, int count) {
  count = std::max(1, std::min<int>(count, static_cast<int>(std::min(data.in_scope.size(), data.out_scope.size()))));
  std::vector<Shard<EditSets>> shards(static_cast<std::size_t>(count));
  const int sets = data.edit_set.empty() ? 0 : data.edit_set.back() + 1;
  const bool by_set = sets >= count;
  auto shard_of = [&](std::size_t index, int set) { return static_cast<std::size_t>(by_set ? set % count : static_cast<int>(index % count)); };
  for (std::size_t i = 0; i < data.edits.size(); ++i)
    for (std::size_t s = 0; s < shards.size(); ++s)
      if (!by_set || shard_of(i, data.edit_set[i]) == s) {
        shards[s].data.edits.push_back(data.edits[i]);
        shards[s].data.edit_set.push_back(data.edit_set[i]);
      }
  for (std::size_t i = 0; i < data.in_scope.size(); ++i) {
    auto& shard = shards[shard_of(i, data.in_set[i])].data;
    shard.in_scope.push_back(data.in_scope[i]);
    shard.in_set.push_back(data.in_set[i]);
    shard.in_edit.push_back(data.in_edit[i]);
  }
  for (std::size_t i = 0; i < data.out_scope.size(); ++i) {
    auto& shard = shards[shard_of(i, data.out_set[i])].data;
    shard.out_scope.push_back(data.out_scope[i]);
    shard.out_set.push_back(data.out_set[i]);
  }
  const double total = static_cast<double>(data.in_scope.size() + data.out_scope.size());
  for (auto& shard : shards) shard.weight = static_cast<double>(shard.data.in_scope.size() + shard.data.out_scope.size()) / total;
  return shards;
}

// One edit batch for the weight editors' training (MEND, ENN, SLAG, SERAC): k distinct cases,
// one in-scope example of each (its descriptor when it has none) and one out-scope example per
// edit, drawn from the out-scope examples of randomly drawn cases outside the batch, none about
// a subject the batch edits (no out-scope examples when there are none).
struct EditBatch {
  std::vector<Example> edits, in_scope, out_scope;
};

inline EditBatch draw_edit_batch(const std::vector<Case>& pool, int edits, tt::Rng& rng) {
  EditBatch d;
  const auto k = std::min<std::size_t>(static_cast<std::size_t>(edits), pool.size());
  std::vector<std::size_t> order(pool.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  // The whole order shuffled: the batch is its first k cases and the out-scope examples come
  // from the cases after them, which must be a random draw too, not the pool's own order.
  for (std::size_t i = 0; i + 1 < order.size(); ++i) std::swap(order[i], order[i + rng.next_u64() % (order.size() - i)]);
  std::vector<std::string> subjects;  // edited by the batch
  for (std::size_t i = 0; i < k; ++i) subjects.push_back(pool[order[i]].subject);
  const auto edited = [&](const std::string& s) { return std::find(subjects.begin(), subjects.end(), s) != subjects.end(); };
  std::vector<Example> unrelated;
  for (std::size_t i = k; i < order.size() && unrelated.size() < k; ++i)
    for (const auto& e : pool[order[i]].out_scope)
      if (!edited(e.subject)) unrelated.push_back(e);
  for (std::size_t i = 0; i < k; ++i) {
    const auto& c = pool[order[i]];
    d.edits.push_back(c.edit);
    d.in_scope.push_back(c.in_scope.empty() ? c.edit : c.in_scope[rng.next_u64() % c.in_scope.size()]);
    if (!unrelated.empty()) d.out_scope.push_back(unrelated[rng.next_u64() % unrelated.size()]);
  }
  return d;
}

// These cases as one edit batch, each with its first in-scope and first out-scope example
// (the cost table's fixed training step).
inline EditBatch edit_batch_of(const std::vector<Case>& cases) {
  EditBatch d;
  for (const auto& c : cases) {
    d.edits.push_back(c.edit);
    d.in_scope.push_back(c.in_scope.empty() ? c.edit : c.in_scope.front());
    if (!c.out_scope.empty()) d.out_scope.push_back(c.out_scope.front());
  }
  return d;
}

}  // namespace editlab::train
