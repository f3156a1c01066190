// editlab::world — the five editing benchmarks of the knowledge world (docs/editing.md):
//
//   qa         question -> new answer;        in-scope: rephrasings;        out-scope: other questions
//   factcheck  claim -> flipped true/false;   in-scope: rephrased claims;   out-scope: other claims
//   textgen    passage prefix -> alternate continuation sampled from the base model;
//              in-scope: the descriptor itself; out-scope: other passages
//   entail     "A X is a Y." -> true;         in-scope: properties X gains from Y; out-scope: other species;
//              hard out-scope: X with properties neither its classes nor Y give it (still false)
//   relations  "E has relation 'r' to" -> new object; in-scope: other relation names;
//              out-scope: other subjects; hard out-scope: same E, unrelated relation
//
// In the stress variant of the world (WorldOptions::stress) qa's, factcheck's and relations'
// out-scope examples are about the edit's neighbours: subjects sharing a part of its subject's
// name, or facts whose object is the edit's old or new answer.
//
//   auto qa = editlab::world::make_benchmark(world, "qa");
//   for (const Case& c : qa.split(Split::test)) use(c.edit, c.in_scope, c.out_scope);
//
// Subjects (entities, species, passages' people) are dealt out once per world: 50 % train,
// 10 % reserved, 10 % validation, 30 % test. A subject belongs to one split only, so no
// test-split edit or subject is seen while training an editor. In-scope examples use training
// phrasings in the train split and held-out phrasings (never seen in pretraining) in validation
// and test.
//
// Out-scope examples (what DD is measured on):
//   train split         other train-split subjects, training phrasings (what an editor trains on)
//   validation, test    out_scope: held-out phrasings about subjects no editor trains on: half
//                       about other subjects of the case's own split (the harness drops those a
//                       batch edits, so at K = 64-128 few are left), half about reserved subjects,
//                       which no split edits and which stay whatever the batch. The reserve is
//                       halved, one half for validation and one for test, so choosing defaults
//                       on validation never reads the test half.
//                       seen_out_scope: train-split subjects in training phrasings, reported
//                       beside (DD where the editor trained).
// Every example carries the fact it asks about, and every case the facts its edit changes
// (Case::changes): the harness drops an out-scope or hard example whose fact some edit of the
// batch changes, so a batch never counts a legitimate consequence of one edit as drawdown.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "world/corpus.hpp"

namespace editlab::world {

using editlab::Benchmark;
using editlab::Case;
using editlab::kSplits;
using editlab::parse_split;
using editlab::Split;
using editlab::split_name;

inline const std::vector<std::string>& benchmark_names() {
  static const std::vector<std::string> names = {"qa", "factcheck", "textgen", "entail", "relations"};
  return names;
}

// Draws an alternate continuation for a "continue: ..." prompt, other than `original` (the
// passage's own): textgen's new labels. editlab passes one that samples from the base model.
using ContinuationSampler = std::function<std::string(const std::string& prompt, const std::string& original, tt::Rng& rng)>;

// Split of the i-th of n shuffled subjects: the first 60 % train, the next 10 % validation.
inline Split split_of_rank(std::size_t rank, std::size_t n) {
  if (rank * 10 < n * 6) return Split::train;
  if (rank * 10 < n * 7) return Split::validation;
  return Split::test;
}

namespace detail {
// The ranks 0 .. n-1 in an order shuffled by `seed`: order[i] is the subject of rank i.
inline std::vector<std::size_t> shuffled_ranks(std::size_t n, std::uint64_t seed) {
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  tt::Rng rng(seed);
  shuffle(order, rng);
  return order;
}
}  // namespace detail

// Assigns each of `n` subjects a split (60 / 10 / 30 %), shuffled with a seed derived from the
// world's. The real-data tracks split their records so.
inline std::vector<Split> assign_splits(std::size_t n, std::uint64_t seed) {
  const auto order = detail::shuffled_ranks(n, seed);
  std::vector<Split> out(n);
  for (std::size_t rank = 0; rank < n; ++rank) out[order[rank]] = split_of_rank(rank, n);
  return out;
}

// A world subject's part in a benchmark (see the header): the split whose cases it gets, or,
// when reserved, the split whose unseen out-scope examples it supplies.
struct SubjectRole {
  Split split = Split::train;
  bool reserved = false;
};

// Ranks [0, 50 %) train, [50, 60 %) reserved (alternately for validation and test), [60, 70 %)
// validation, [70, 100 %) test: validation and test keep the subjects a 60 / 10 / 30 split gave them.
inline std::vector<SubjectRole> assign_roles(std::size_t n, std::uint64_t seed) {
  const auto order = detail::shuffled_ranks(n, seed);
  std::vector<SubjectRole> out(n);
  for (std::size_t rank = 0; rank < n; ++rank) {
    SubjectRole& role = out[order[rank]];
    if (rank * 10 < n * 5) role = {Split::train, false};
    else if (rank * 10 < n * 6) role = {rank % 2 ? Split::test : Split::validation, true};
    else role = {split_of_rank(rank, n), false};
  }
  return out;
}

namespace detail {

// A fixed string hash (std::hash may differ between standard libraries).
inline std::uint64_t fnv1a(std::string_view text) {
  std::uint64_t h = 14695981039346656037ULL;
  for (unsigned char ch : text) h = (h ^ ch) * 1099511628211ULL;
  return h;
}

// Role per entity id, dealt within each kind (so every split has its share of people, cities
// and organisations). The same for every benchmark.
inline std::vector<SubjectRole> entity_roles(const World& w) {
  std::vector<SubjectRole> out(w.entities.size());
  for (Kind kind : {Kind::person, Kind::city, Kind::country, Kind::organisation, Kind::university, Kind::language}) {
    const auto members = w.entities_of(kind);
    const auto roles = assign_roles(members.size(), w.options.seed * 31 + 1 + static_cast<std::uint64_t>(kind));
    for (std::size_t i = 0; i < members.size(); ++i) out[members[i]] = roles[i];
  }
  return out;
}

// The pools of one benchmark: the subjects (or facts, passages) whose cases each split gets,
// and those reserved as each split's unseen out-scope.
template <class T>
struct Pools {
  std::array<std::vector<T>, 3> cases, reserve;
  void add(const SubjectRole& role, T item) {
    (role.reserved ? reserve : cases)[static_cast<int>(role.split)].push_back(std::move(item));
  }
  // Where a split's unseen out-scope examples come from besides its own cases: the reserve.
  const std::vector<T>& reserved_for(Split split) const { return reserve[static_cast<int>(split)]; }
  const std::vector<T>& cases_of(Split split) const { return cases[static_cast<int>(split)]; }
};

inline std::string fact_key(const World& w, const Fact& f) { return w.name(f.subject) + "|" + w.relations[f.relation].id; }
inline std::string property_key(const std::string& member, const World& w, int property) {
  return member + "|" + w.properties[static_cast<std::size_t>(property)].positive;
}

inline int other_object(const World& w, const Fact& f, tt::Rng& rng) {
  const auto candidates = w.entities_of(w.relations[f.relation].object_kind);
  for (;;)
    if (const int o = candidates[rng.below(candidates.size())]; o != f.object) return o;
}

// Phrasing indices for in-scope and unseen out-scope examples: the training ones (but the
// edit's own) in train, the held-out ones otherwise.
inline std::vector<int> scope_phrasings(Split split, int train_count, int total, int edit_phrasing = -1) {
  std::vector<int> out;
  if (split == Split::train) {
    for (int i = 0; i < train_count; ++i)
      if (i != edit_phrasing) out.push_back(i);
  } else {
    for (int i = train_count; i < total; ++i) out.push_back(i);
  }
  return out;
}

// A phrasing drawn from those scope_phrasings gives.
inline int draw_phrasing(Split split, int train_count, int total, tt::Rng& rng) {
  const auto choices = scope_phrasings(split, train_count, total);
  return choices[rng.below(choices.size())];
}

// `count` facts of `pool` about subjects other than self's, each as an out-scope example
// (subject and fact set).
template <class MakeExample>
std::vector<Example> other_facts(const World& w, const std::vector<const Fact*>& pool, const Fact& self, int count,
                                 tt::Rng& rng, MakeExample make) {
  std::vector<Example> out;
  for (int attempt = 0; static_cast<int>(out.size()) < count && attempt < 100 && !pool.empty(); ++attempt) {
    const Fact& other = *pool[rng.below(pool.size())];
    if (other.subject == self.subject) continue;
    Example e = make(other);
    e.subject = w.name(other.subject);
    e.fact = fact_key(w, other);
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace detail

inline Benchmark make_benchmark(const World& w, std::string_view name, const ContinuationSampler& sampler = {}) {
  Benchmark bench{std::string(name), {}, {}};
  const Forms forms(w);
  tt::Rng rng(w.options.seed * 977 + detail::fnv1a(name));
  constexpr int kSeenOutScope = 2;   // per case: train-split subjects, as editors train on
  constexpr int kUnseenHalf = 2;     // per validation / test case: its split's subjects, and as many reserved ones
  constexpr std::size_t kEditsPerSpecies = 5;
  // The out-scope set of a case of `split` (see the header): `draw(pool, count)` draws `count`
  // examples about subjects of `pool` other than the case's own.
  auto out_scope = [&](Split split, const auto& pools, auto draw) {
    if (split == Split::train) return draw(pools.cases_of(Split::train), kSeenOutScope);
    auto out = draw(pools.cases_of(split), kUnseenHalf);
    for (auto& e : draw(pools.reserved_for(split), kUnseenHalf)) out.push_back(std::move(e));
    return out;
  };

  if (name == "qa" || name == "factcheck" || name == "relations") {
    const auto roles = detail::entity_roles(w);
    detail::Pools<const Fact*> pools;
    for (const Fact& f : w.facts) pools.add(roles[f.subject], &f);
    if (name == "factcheck") bench.labels = {"true", "false"};
    // An out-scope question, claim or relation prompt about fact o, worded as `split` words its
    // examples (training phrasings in train, held-out ones otherwise).
    auto out_example = [&](const Fact& o, Split split) -> Example {
      const Relation& r = w.relations[o.relation];
      if (name == "qa")
        return forms.question(o, detail::draw_phrasing(split, Relation::num_train_questions, static_cast<int>(r.questions.size()), rng));
      if (name == "factcheck") {
        const int object = rng.below(2) ? o.object : detail::other_object(w, o, rng);
        return forms.fact_claim(o, detail::draw_phrasing(split, Relation::num_train_statements, static_cast<int>(r.statements.size()), rng), object);
      }
      return forms.relation(o, detail::draw_phrasing(split, Relation::num_train_names, static_cast<int>(r.names.size()), rng));
    };
    for (Split split : kSplits)
      for (const Fact* fp : pools.cases[static_cast<int>(split)]) {
        const Fact& f = *fp;
        const Relation& r = w.relations[f.relation];
        Case c;
        c.subject = w.name(f.subject);
        c.changes = {detail::fact_key(w, f)};
        int new_object = -1;  // qa's and relations' new answer
        if (name == "qa") {
          const int phrasing = static_cast<int>(rng.below(Relation::num_train_questions));
          const int new_answer = new_object = detail::other_object(w, f, rng);
          c.edit = forms.question_with_answer(f, phrasing, new_answer);
          c.old_target = w.answer(f);
          for (int p : detail::scope_phrasings(split, Relation::num_train_questions, static_cast<int>(r.questions.size()), phrasing))
            c.in_scope.push_back(forms.question_with_answer(f, p, new_answer));
        } else if (name == "factcheck") {
          const int phrasing = static_cast<int>(rng.below(Relation::num_train_statements));
          const int object = rng.below(2) ? f.object : detail::other_object(w, f, rng);
          const Example claim = forms.fact_claim(f, phrasing, object);
          const std::string flipped = truth(claim.target != "true");
          c.edit = {claim.input, flipped};
          c.old_target = claim.target;
          for (int p : detail::scope_phrasings(split, Relation::num_train_statements, static_cast<int>(r.statements.size()), phrasing))
            c.in_scope.push_back({forms.fact_claim(f, p, object).input, flipped});
        } else {  // relations
          const int relation_name = static_cast<int>(rng.below(Relation::num_train_names));
          new_object = detail::other_object(w, f, rng);
          c.edit = {forms.relation_prompt(f, relation_name), w.name(new_object)};
          c.old_target = w.answer(f);
          for (int n : detail::scope_phrasings(split, Relation::num_train_names, static_cast<int>(r.names.size()), relation_name))
            c.in_scope.push_back({forms.relation_prompt(f, n), w.name(new_object)});
          for (const Fact& same : w.facts)
            if (same.subject == f.subject && same.relation != f.relation) {
              const Relation& sr = w.relations[same.relation];
              c.hard_out_scope.push_back(forms.relation(same, detail::draw_phrasing(split, Relation::num_train_names, static_cast<int>(sr.names.size()), rng)));
              c.hard_out_scope.back().subject = c.subject;
              c.hard_out_scope.back().fact = detail::fact_key(w, same);
            }
        }
        // The stress variant draws out-scope facts about the edit's neighbours: subjects that
        // share a part of its subject's name, and facts whose object is its old or new answer
        // (the whole pool where it holds none).
        auto neighbours = [&](const std::vector<const Fact*>& pool) {
          if (!w.options.stress) return pool;
          std::vector<const Fact*> near;
          for (const Fact* o : pool)
            if (o->subject != f.subject && (detail::share_a_name_part(w.name(o->subject), c.subject) || o->object == f.object || o->object == new_object))
              near.push_back(o);
          return near.empty() ? pool : near;
        };
        auto facts_of = [&](Split wording) {
          return [&, wording](const std::vector<const Fact*>& pool, int count) {
            return detail::other_facts(w, neighbours(pool), f, count, rng, [&](const Fact& o) { return out_example(o, wording); });
          };
        };
        c.out_scope = out_scope(split, pools, facts_of(split));
        if (split != Split::train) c.seen_out_scope = facts_of(Split::train)(pools.cases_of(Split::train), kSeenOutScope);
        bench.split(split).push_back(std::move(c));
      }
    return bench;
  }

  if (name == "entail") {
    bench.labels = {"true", "false"};
    const auto roles = assign_roles(w.species.size(), w.options.seed * 31 + 2);
    detail::Pools<int> pools;
    for (std::size_t s = 0; s < w.species.size(); ++s) pools.add(roles[s], static_cast<int>(s));
    // A claim about another species' own property, its fact set: untouched by any edit of s.
    auto other_species = [&](const std::vector<int>& pool, int s, int count) {
      std::vector<Example> out;
      for (int k = 0; k < count && !pool.empty() && (pool.size() > 1 || pool[0] != s); ++k) {
        int o;
        do o = pool[rng.below(pool.size())];
        while (o == s);
        const Species& other = w.species[o];
        const int property = static_cast<int>(rng.below(w.properties.size()));
        out.push_back(forms.member_property(other.name, {other.class_id}, property, rng.below(4) == 0));
        out.back().subject = other.name;
        out.back().fact = detail::property_key(other.name, w, property);
      }
      return out;
    };
    for (Split split : kSplits) {
      for (int s : pools.cases[static_cast<int>(split)]) {
        const Species& x = w.species[s];
        const auto lineage = w.lineage(x.class_id);
        // kEditsPerSpecies new memberships per species, each a different class outside its lineage.
        std::vector<int> targets;
        for (int y = 0; y < static_cast<int>(w.classes.size()); ++y)
          if (std::find(lineage.begin(), lineage.end(), y) == lineage.end()) targets.push_back(y);
        detail::shuffle(targets, rng);
        targets.resize(std::min<std::size_t>(targets.size(), kEditsPerSpecies));
        for (int y : targets) {
          Case c;
          c.subject = x.name;
          c.edit = {"claim: " + World::is_a(x.name, w.classes[y].name), "true"};
          c.old_target = "false";
          for (int p : w.properties_of_class(y)) {
            if (w.class_has(x.class_id, p)) continue;  // already true: the edit does not change it
            c.changes.push_back(detail::property_key(x.name, w, p));
            c.in_scope.push_back(forms.member_property(x.name, {x.class_id, y}, p, false));
            if (c.in_scope.size() % 3 == 0) c.in_scope.push_back(forms.member_property(x.name, {x.class_id, y}, p, true));
          }
          // Hard out-scope: the same X with properties the edit does not entail. They stay
          // false (and their negations true), so an editor that makes every claim about X true
          // loses here what it gains in-scope. Chosen without the rng: the other draws stay put.
          const int property_count = static_cast<int>(w.properties.size());
          for (int i = 0, found = 0; i < property_count && found < 2; ++i) {
            const int p = (s * 7 + y * 13 + i) % property_count;
            if (w.class_has(x.class_id, p) || w.class_has(y, p)) continue;
            c.hard_out_scope.push_back(forms.member_property(x.name, {x.class_id, y}, p, found == 1));
            c.hard_out_scope.back().subject = x.name;
            c.hard_out_scope.back().fact = detail::property_key(x.name, w, p);
            ++found;
          }
          auto species_of = [&](const std::vector<int>& pool, int count) { return other_species(pool, s, count); };
          c.out_scope = split == Split::train ? other_species(pools.cases_of(Split::train), s, 3) : out_scope(split, pools, species_of);
          if (split != Split::train) c.seen_out_scope = other_species(pools.cases_of(Split::train), s, kSeenOutScope);
          bench.split(split).push_back(std::move(c));
        }
      }
    }
    return bench;
  }

  if (name == "textgen") {
    tt::check(static_cast<bool>(sampler), "editlab::world::make_benchmark",
              "textgen samples its new continuations from the base model: pass a sampler");
    const auto roles = detail::entity_roles(w);
    detail::Pools<const Passage*> pools;
    for (const Passage& p : w.passages) pools.add(roles[p.subject], &p);
    auto other_passages = [&](const std::vector<const Passage*>& pool, const Passage* self, int count) {
      std::vector<Example> out;
      for (int k = 0; k < count && !pool.empty() && (pool.size() > 1 || pool[0] != self); ++k) {
        const Passage* other;
        do other = pool[rng.below(pool.size())];
        while (other == self);
        const int cut = 1 + static_cast<int>(rng.below(other->sentences.size() - 1));
        out.push_back(forms.continuation(*other, cut));
        out.back().subject = w.name(other->subject);
        out.back().fact = out.back().input;
      }
      return out;
    };
    for (Split split : kSplits) {
      // One edit per cut of each passage: after its first sentence, after its second, ...
      for (const Passage* p : pools.cases[static_cast<int>(split)])
        for (int cut = 1; cut < static_cast<int>(p->sentences.size()); ++cut) {
          const Example original = forms.continuation(*p, cut);
          std::string alternate;
          for (int attempt = 0; attempt < 8 && (alternate.empty() || alternate == original.target); ++attempt)
            alternate = sampler(original.input, original.target, rng);
          if (alternate.empty() || alternate == original.target) continue;  // no other continuation: nothing to edit
          Case c;
          c.subject = w.name(p->subject);
          c.edit = {original.input, alternate};
          c.old_target = original.target;
          c.in_scope = {c.edit};
          c.changes = {original.input};
          c.out_scope = out_scope(split, pools, [&](const std::vector<const Passage*>& pool, int count) { return other_passages(pool, p, count); });
          if (split != Split::train) c.seen_out_scope = other_passages(pools.cases_of(Split::train), p, kSeenOutScope);
          bench.split(split).push_back(std::move(c));
        }
    }
    return bench;
  }

  tt::fail("editlab", "unknown benchmark '", std::string(name), "' (qa, factcheck, textgen, entail, relations)");
}

}  // namespace editlab::world
