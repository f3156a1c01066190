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
//   auto qa = editlab::world::make_benchmark(world, "qa");
//   for (const Case& c : qa.split(Split::test)) use(c.edit, c.in_scope, c.out_scope);
//
// Splits (60 / 10 / 30 % of subjects): a subject — entity, species or passage — belongs to one
// split only, so no test-split edit or subject is seen while training an editor. In-scope
// examples use training phrasings in the train split and held-out phrasings (never seen in
// pretraining) in validation and test.
//
// Out-scope examples are always about train-split subjects (other than the case's own): an
// evaluation batch draws its edits from one split, and a harness drops out-scope examples whose
// subject the batch edits, so out-scope drawn from the test split itself would run out at the
// batch sizes we measure (64, 128). Train-split subjects are never edited in a test batch.
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

enum class Split { train, validation, test };
inline constexpr std::array<Split, 3> kSplits = {Split::train, Split::validation, Split::test};

inline const char* split_name(Split s) {
  return s == Split::train ? "train" : s == Split::validation ? "validation" : "test";
}
inline Split parse_split(std::string_view name) {
  for (Split s : kSplits)
    if (name == split_name(s)) return s;
  tt::fail("editlab", "unknown split '", std::string(name), "' (train, validation, test)");
}

// One edit descriptor with its evaluation examples.
struct Case {
  std::string subject;                  // what the edit is about; edits in one batch should differ
  Example edit;                         // input -> the new label
  std::string old_target;               // the label before the edit (the world's truth)
  std::vector<Example> in_scope;        // inputs the edit should change, with the new label
  std::vector<Example> out_scope;       // inputs it must not change, with their (gold) label
  std::vector<Example> hard_out_scope;  // relations: same subject, unrelated relation
};

struct Benchmark {
  std::string name;
  std::vector<std::string> labels;  // {"true", "false"} for claim tasks; empty for generation
  std::array<std::vector<Case>, 3> splits;
  const std::vector<Case>& split(Split s) const { return splits[static_cast<int>(s)]; }
  std::vector<Case>& split(Split s) { return splits[static_cast<int>(s)]; }
};

inline const std::vector<std::string>& benchmark_names() {
  static const std::vector<std::string> names = {"qa", "factcheck", "textgen", "entail", "relations"};
  return names;
}

// Draws an alternate continuation for a "continue: ..." prompt (textgen's new labels); editlab
// passes one that samples from the base model.
using ContinuationSampler = std::function<std::string(const std::string& prompt, tt::Rng& rng)>;

// Split of the i-th of n shuffled subjects: the first 60 % train, the next 10 % validation.
inline Split split_of_rank(std::size_t rank, std::size_t n) {
  if (rank * 10 < n * 6) return Split::train;
  if (rank * 10 < n * 7) return Split::validation;
  return Split::test;
}

// Assigns each of `n` subjects a split, shuffled with a seed derived from the world's.
inline std::vector<Split> assign_splits(std::size_t n, std::uint64_t seed) {
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  tt::Rng rng(seed);
  detail::shuffle(order, rng);
  std::vector<Split> out(n);
  for (std::size_t rank = 0; rank < n; ++rank) out[order[rank]] = split_of_rank(rank, n);
  return out;
}

namespace detail {

// A fixed string hash (std::hash may differ between standard libraries).
inline std::uint64_t fnv1a(std::string_view text) {
  std::uint64_t h = 14695981039346656037ULL;
  for (unsigned char ch : text) h = (h ^ ch) * 1099511628211ULL;
  return h;
}

// Split per entity id, 60 / 10 / 30 within each kind (so every split has its share of people,
// cities and organisations). The same for every benchmark.
inline std::vector<Split> entity_splits(const World& w) {
  std::vector<Split> out(w.entities.size(), Split::train);
  for (Kind kind : {Kind::person, Kind::city, Kind::country, Kind::organisation, Kind::university, Kind::language}) {
    const auto members = w.entities_of(kind);
    const auto splits = assign_splits(members.size(), w.options.seed * 31 + 1 + static_cast<std::uint64_t>(kind));
    for (std::size_t i = 0; i < members.size(); ++i) out[members[i]] = splits[i];
  }
  return out;
}

inline int other_object(const World& w, const Fact& f, tt::Rng& rng) {
  const auto candidates = w.entities_of(w.relations[f.relation].object_kind);
  for (;;)
    if (const int o = candidates[rng.below(candidates.size())]; o != f.object) return o;
}

// Phrasing indices for in-scope examples: the other training ones in train, held-out otherwise.
inline std::vector<int> scope_phrasings(Split split, int train_count, int total, int edit_phrasing) {
  std::vector<int> out;
  if (split == Split::train) {
    for (int i = 0; i < train_count; ++i)
      if (i != edit_phrasing) out.push_back(i);
  } else {
    for (int i = train_count; i < total; ++i) out.push_back(i);
  }
  return out;
}

// `count` facts of the same split about other subjects, each as an out-scope example.
template <class MakeExample>
std::vector<Example> other_facts(const World& w, const std::vector<const Fact*>& pool, const Fact& self, int count,
                                 tt::Rng& rng, MakeExample make) {
  std::vector<Example> out;
  for (int attempt = 0; static_cast<int>(out.size()) < count && attempt < 100; ++attempt) {
    const Fact& other = *pool[rng.below(pool.size())];
    if (other.subject == self.subject) continue;
    Example e = make(other);
    e.subject = w.name(other.subject);
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace detail

inline Benchmark make_benchmark(const World& w, std::string_view name, const ContinuationSampler& sampler = {}) {
  Benchmark bench{std::string(name), {}, {}};
  const Forms forms(w);
  tt::Rng rng(w.options.seed * 977 + detail::fnv1a(name));
  constexpr int kOutScope = 2;
  constexpr std::size_t kEditsPerSpecies = 5;

  if (name == "qa" || name == "factcheck" || name == "relations") {
    const auto splits = detail::entity_splits(w);
    std::array<std::vector<const Fact*>, 3> pools;
    for (const Fact& f : w.facts) pools[static_cast<int>(splits[f.subject])].push_back(&f);
    if (name == "factcheck") bench.labels = {"true", "false"};
    for (Split split : kSplits)
      for (const Fact* fp : pools[static_cast<int>(split)]) {
        const Fact& f = *fp;
        const Relation& r = w.relations[f.relation];
        const auto& pool = pools[static_cast<int>(Split::train)];  // out-scope: see the header
        Case c;
        c.subject = w.name(f.subject);
        if (name == "qa") {
          const int phrasing = static_cast<int>(rng.below(Relation::num_train_questions));
          const int new_answer = detail::other_object(w, f, rng);
          c.edit = forms.question_with_answer(f, phrasing, new_answer);
          c.old_target = w.answer(f);
          for (int p : detail::scope_phrasings(split, Relation::num_train_questions, static_cast<int>(r.questions.size()), phrasing))
            c.in_scope.push_back(forms.question_with_answer(f, p, new_answer));
          c.out_scope = detail::other_facts(w, pool, f, kOutScope, rng, [&](const Fact& o) {
            return forms.question(o, static_cast<int>(rng.below(Relation::num_train_questions)));
          });
        } else if (name == "factcheck") {
          const int phrasing = static_cast<int>(rng.below(Relation::num_train_statements));
          const int object = rng.below(2) ? f.object : detail::other_object(w, f, rng);
          const Example claim = forms.fact_claim(f, phrasing, object);
          const std::string flipped = truth(claim.target != "true");
          c.edit = {claim.input, flipped};
          c.old_target = claim.target;
          for (int p : detail::scope_phrasings(split, Relation::num_train_statements, static_cast<int>(r.statements.size()), phrasing))
            c.in_scope.push_back({forms.fact_claim(f, p, object).input, flipped});
          c.out_scope = detail::other_facts(w, pool, f, kOutScope, rng, [&](const Fact& o) {
            const int o_object = rng.below(2) ? o.object : detail::other_object(w, o, rng);
            return forms.fact_claim(o, static_cast<int>(rng.below(Relation::num_train_statements)), o_object);
          });
        } else {  // relations
          const int relation_name = static_cast<int>(rng.below(Relation::num_train_names));
          const int new_object = detail::other_object(w, f, rng);
          c.edit = {forms.relation_prompt(f, relation_name), w.name(new_object)};
          c.old_target = w.answer(f);
          for (int n : detail::scope_phrasings(split, Relation::num_train_names, static_cast<int>(r.names.size()), relation_name))
            c.in_scope.push_back({forms.relation_prompt(f, n), w.name(new_object)});
          c.out_scope = detail::other_facts(w, pool, f, kOutScope, rng, [&](const Fact& o) {
            return forms.relation(o, static_cast<int>(rng.below(Relation::num_train_names)));
          });
          for (const Fact& same : w.facts)
            if (same.subject == f.subject && same.relation != f.relation)
              c.hard_out_scope.push_back(forms.relation(same, static_cast<int>(rng.below(Relation::num_train_names))));
        }
        bench.split(split).push_back(std::move(c));
      }
    return bench;
  }

  if (name == "entail") {
    bench.labels = {"true", "false"};
    const auto splits = assign_splits(w.species.size(), w.options.seed * 31 + 2);
    std::array<std::vector<int>, 3> pools;
    for (std::size_t s = 0; s < w.species.size(); ++s) pools[static_cast<int>(splits[s])].push_back(static_cast<int>(s));
    const auto& out_pool = pools[static_cast<int>(Split::train)];  // out-scope: see the header
    for (Split split : kSplits) {
      for (int s : pools[static_cast<int>(split)]) {
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
            ++found;
          }
          for (int k = 0; k < 3 && out_pool.size() > 1; ++k) {
            int o;
            do o = out_pool[rng.below(out_pool.size())];
            while (o == s);
            const Species& other = w.species[o];
            c.out_scope.push_back(forms.member_property(other.name, {other.class_id},
                                                        static_cast<int>(rng.below(w.properties.size())), rng.below(4) == 0));
            c.out_scope.back().subject = other.name;
          }
          bench.split(split).push_back(std::move(c));
        }
      }
    }
    return bench;
  }

  if (name == "textgen") {
    tt::check(static_cast<bool>(sampler), "editlab::world::make_benchmark",
              "textgen samples its new continuations from the base model: pass a sampler");
    const auto splits = detail::entity_splits(w);
    std::array<std::vector<const Passage*>, 3> pools;
    for (const Passage& p : w.passages) pools[static_cast<int>(splits[p.subject])].push_back(&p);
    const auto& out_pool = pools[static_cast<int>(Split::train)];  // out-scope: see the header
    for (Split split : kSplits) {
      const auto& pool = pools[static_cast<int>(split)];
      // One edit per cut of each passage: after its first sentence, after its second, ...
      for (const Passage* p : pool)
        for (int cut = 1; cut < static_cast<int>(p->sentences.size()); ++cut) {
        const Example original = forms.continuation(*p, cut);
        std::string alternate;
        for (int attempt = 0; attempt < 8 && (alternate.empty() || alternate == original.target); ++attempt)
          alternate = sampler(original.input, rng);
        Case c;
        c.subject = w.name(p->subject);
        c.edit = {original.input, alternate};
        c.old_target = original.target;
        c.in_scope = {c.edit};
        for (int k = 0; k < kOutScope && out_pool.size() > 1; ++k) {
          const Passage* other;
          do other = out_pool[rng.below(out_pool.size())];
          while (other == p);
          c.out_scope.push_back(forms.continuation(*other, 1 + static_cast<int>(rng.below(other->sentences.size() - 1))));
          c.out_scope.back().subject = w.name(other->subject);
        }
        bench.split(split).push_back(std::move(c));
        }
    }
    return bench;
  }

  tt::fail("editlab", "unknown benchmark '", std::string(name), "' (qa, factcheck, textgen, entail, relations)");
}

}  // namespace editlab::world
