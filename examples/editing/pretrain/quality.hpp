// editlab::pretrain — what a pretrained base model knows about its world: the quality bars of
// docs/editing.md, measured on the model, as a JSON report.
//
//   nlohmann::json report = editlab::pretrain::measure_quality(base, world);
//   report["bars"]["facts_training_phrasings"]   // {"value": 0.99, "goal": 0.95, "met": true, "n": 2256}
//   report["all_met"]                             // true when every bar is met
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/seq2seq.hpp"
#include "world/corpus.hpp"

namespace editlab::pretrain {

namespace tt = tensortape;

using model::Seq2Seq;
using world::Example;

// Share of exact-match answers (greedy decoding).
inline double exact_match(Seq2Seq& base, const std::vector<Example>& examples) {
  std::vector<std::string> inputs;
  for (const auto& e : examples) inputs.push_back(e.input);
  const auto answers = base.answer(inputs);
  std::size_t hits = 0;
  for (std::size_t i = 0; i < examples.size(); ++i) hits += answers[i] == examples[i].target;
  return examples.empty() ? 0.0 : static_cast<double>(hits) / static_cast<double>(examples.size());
}

// Share of true/false claims whose more likely label is the right one.
inline double label_accuracy(Seq2Seq& base, const std::vector<Example>& examples) {
  std::vector<std::string> inputs;
  for (const auto& e : examples) inputs.push_back(e.input);
  const auto picks = base.classify(inputs, {"true", "false"});
  std::size_t hits = 0;
  for (std::size_t i = 0; i < examples.size(); ++i) hits += (picks[i] == 0 ? "true" : "false") == examples[i].target;
  return examples.empty() ? 0.0 : static_cast<double>(hits) / static_cast<double>(examples.size());
}

// The evaluation sets, built from the world with a fixed seed (never the pretraining draws').
struct QualitySets {
  std::vector<Example> facts_training, facts_heldout, relations_training, relations_heldout;
  std::vector<Example> factcheck_training, factcheck_heldout, taxonomy_entailed, stated_fact_new_names,
      stated_fact_species, continuations;
};

inline QualitySets quality_sets(const world::World& w, std::uint64_t seed = 7) {
  using world::Relation;
  world::Forms forms(w);
  tt::Rng rng(seed);
  QualitySets sets;
  auto other_object = [&](const world::Fact& f) {
    const auto candidates = w.entities_of(w.relations[f.relation].object_kind);
    for (;;)
      if (const int o = candidates[rng.below(candidates.size())]; o != f.object) return o;
  };
  for (const auto& f : w.facts) {
    const Relation& r = w.relations[f.relation];
    for (int q = 0; q < static_cast<int>(r.questions.size()); ++q)
      (q < Relation::num_train_questions ? sets.facts_training : sets.facts_heldout).push_back(forms.question(f, q));
    for (int n = 0; n < static_cast<int>(r.names.size()); ++n)
      (n < Relation::num_train_names ? sets.relations_training : sets.relations_heldout).push_back(forms.relation(f, n));
    for (int s = 0; s < static_cast<int>(r.statements.size()); ++s) {
      auto& set = s < Relation::num_train_statements ? sets.factcheck_training : sets.factcheck_heldout;
      set.push_back(forms.fact_claim(f, s, f.object));
      set.push_back(forms.fact_claim(f, s, other_object(f)));
    }
  }
  // Every species: each property it inherits, and as many it lacks, stated and negated.
  for (const auto& s : w.species) {
    const auto has = w.properties_of_class(s.class_id);
    for (int p : has) {
      int lacks;
      do lacks = static_cast<int>(rng.below(w.properties.size()));
      while (w.class_has(s.class_id, lacks));
      for (bool negated : {false, true}) {
        sets.taxonomy_entailed.push_back(forms.member_property(s.name, {s.class_id}, p, negated));
        sets.taxonomy_entailed.push_back(forms.member_property(s.name, {s.class_id}, lacks, negated));
      }
    }
  }
  // Stated facts: "A X is a Y." for a new name X, or for a species X and a class Y outside
  // its lineage; half the claims name a property of Y, half one X has from nowhere.
  for (int i = 0; i < 600; ++i) {
    const int stated = static_cast<int>(rng.below(w.classes.size()));
    const auto stated_props = w.properties_of_class(stated);
    const int prop_true = stated_props[rng.below(stated_props.size())];
    const bool negated = rng.below(4) == 0;
    if (i % 2 == 0) {
      const std::string name = world::fresh_name(w, rng);
      int prop = prop_true;
      if (rng.below(2)) do prop = static_cast<int>(rng.below(w.properties.size())); while (w.class_has(stated, prop));
      sets.stated_fact_new_names.push_back(forms.context_property(name, {}, stated, prop, negated));
    } else {
      const auto& s = w.species[rng.below(w.species.size())];
      const auto lineage = w.lineage(s.class_id);
      if (std::find(lineage.begin(), lineage.end(), stated) != lineage.end()) continue;
      int prop = prop_true;
      if (rng.below(2))
        do prop = static_cast<int>(rng.below(w.properties.size()));
        while (w.class_has(stated, prop) || w.class_has(s.class_id, prop));
      sets.stated_fact_species.push_back(forms.context_property(s.name, {s.class_id}, stated, prop, negated));
    }
  }
  for (const auto& p : w.passages)
    for (int k = 1; k < static_cast<int>(p.sentences.size()); ++k) sets.continuations.push_back(forms.continuation(p, k));
  return sets;
}

inline nlohmann::json measure_quality(Seq2Seq& base, const world::World& w) {
  const QualitySets sets = quality_sets(w);
  nlohmann::json bars = nlohmann::json::object(), extra = nlohmann::json::object();
  bool all_met = true;
  auto bar = [&](const char* name, double value, double goal, std::size_t n, const char* what) {
    bars[name] = {{"value", value}, {"goal", goal}, {"met", value >= goal}, {"n", n}, {"measures", what}};
    all_met = all_met && value >= goal;
  };
  auto report = [&](const char* name, double value, std::size_t n, const char* what) {
    extra[name] = {{"value", value}, {"n", n}, {"measures", what}};
  };
  bar("facts_training_phrasings", exact_match(base, sets.facts_training), 0.95, sets.facts_training.size(),
      "exact match, every fact asked with each training phrasing");
  bar("facts_heldout_phrasings", exact_match(base, sets.facts_heldout), 0.80, sets.facts_heldout.size(),
      "exact match, every fact asked with each held-out phrasing (never in pretraining)");
  bar("taxonomy_entailed", label_accuracy(base, sets.taxonomy_entailed), 0.90, sets.taxonomy_entailed.size(),
      "true/false accuracy on each species' inherited properties and as many it lacks, stated and negated");
  bar("stated_fact", label_accuracy(base, sets.stated_fact_new_names), 0.85, sets.stated_fact_new_names.size(),
      "true/false accuracy given 'A X is a Y.' in the input, X a name never seen");
  bar("factcheck", label_accuracy(base, sets.factcheck_training), 0.95, sets.factcheck_training.size(),
      "true/false accuracy on claims of every fact (true object and one wrong one), training phrasings");
  report("stated_fact_species", label_accuracy(base, sets.stated_fact_species), sets.stated_fact_species.size(),
         "as stated_fact, X a known species told it is also in a class outside its lineage");
  report("factcheck_heldout", label_accuracy(base, sets.factcheck_heldout), sets.factcheck_heldout.size(),
         "factcheck with the held-out statement phrasing");
  report("relations_training_names", exact_match(base, sets.relations_training), sets.relations_training.size(),
         "exact match, \"E has relation 'r' to\", training relation names");
  report("relations_heldout_names", exact_match(base, sets.relations_heldout), sets.relations_heldout.size(),
         "exact match, held-out relation names");
  report("continuations", exact_match(base, sets.continuations), sets.continuations.size(),
         "exact match of a passage's next sentence");
  return {{"bars", bars}, {"reported", extra}, {"all_met", all_met}};
}

}  // namespace editlab::pretrain
