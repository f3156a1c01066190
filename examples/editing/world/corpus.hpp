// editlab::world — the text-to-text forms of the world's knowledge, and the pretraining mix.
//
//   editlab::world::Forms forms(world);
//   forms.question(fact, phrasing)      // {"question: Where was Talimo born?", "Brisvo"}
//   forms.fact_claim(fact, phrasing, object)   // {"claim: Talimo was born in Brisvo.", "true"}
//   editlab::world::PretrainingMix mix(world, seed);
//   Example e = mix.sample();           // one training example, training phrasings only
//
// Task prefixes tell the model which kind of answer is wanted (as T5's "question:" etc.):
//   question: <question>                       -> entity name
//   claim: <statement>                         -> "true" / "false"
//   relation: <subject> has relation '<name>' to -> entity name
//   context: A X is a Y. claim: A X <property>. -> "true" / "false"   (reads its context)
//   continue: <passage prefix>                 -> the passage's next sentence
// Held-out phrasings, statements and relation names never come out of PretrainingMix; they
// are kept for the benchmarks' test-time in-scope examples.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tensortape/core/rng.hpp"
#include "world/world.hpp"

namespace editlab::world {

struct Example {
  std::string input;
  std::string target;
  std::string subject = {};  // who or what it is about, where a benchmark needs to know (out-scope)
};

inline const char* truth(bool value) { return value ? "true" : "false"; }

// The surface forms of each kind of knowledge, shared by pretraining and the benchmarks.
class Forms {
 public:
  explicit Forms(const World& world) : world_(&world) {}

  Example question(const Fact& f, int phrasing) const {
    return {"question: " + world_->question(f, phrasing), world_->answer(f)};
  }
  Example question_with_answer(const Fact& f, int phrasing, int answer) const {
    return {"question: " + world_->question(f, phrasing), world_->name(answer)};
  }
  // "claim: Talimo was born in Brisvo." -> "true" when object is the fact's object.
  Example fact_claim(const Fact& f, int phrasing, int object) const {
    return {"claim: " + world_->statement(f, phrasing, object), truth(object == f.object)};
  }
  std::string relation_prompt(const Fact& f, int name) const {
    return "relation: " + world_->name(f.subject) + " has relation '" +
           world_->relations[f.relation].names.at(name) + "' to";
  }
  Example relation(const Fact& f, int name) const { return {relation_prompt(f, name), world_->answer(f)}; }

  // Taxonomy claims. A species' membership: true for its class and that class's ancestors.
  Example membership(int species, int class_id) const {
    const auto lineage = world_->lineage(world_->species[species].class_id);
    const bool member = std::find(lineage.begin(), lineage.end(), class_id) != lineage.end();
    return {"claim: " + World::is_a(world_->species[species].name, world_->classes[class_id].name), truth(member)};
  }
  Example class_parent(int class_id, int other) const {
    const auto lineage = world_->lineage(class_id);
    const bool is_ancestor = other != class_id && std::find(lineage.begin(), lineage.end(), other) != lineage.end();
    return {"claim: " + World::is_a(world_->classes[class_id].name, world_->classes[other].name), truth(is_ancestor)};
  }
  Example class_property(int class_id, int property, bool negated) const {
    const bool has = world_->class_has(class_id, property);
    return {"claim: " + world_->property_claim(world_->classes[class_id].name, property, negated), truth(has != negated)};
  }
  // A member's property, given that it belongs to the classes listed (its own class, plus any
  // class an edit or a context adds).
  Example member_property(std::string_view member, const std::vector<int>& member_classes, int property,
                          bool negated) const {
    bool has = false;
    for (int c : member_classes) has = has || world_->class_has(c, property);
    return {"claim: " + world_->property_claim(member, property, negated), truth(has != negated)};
  }
  // "context: A X is a Y. claim: A X has fur." — X may be a species (keeping its own class)
  // or a new name (classes empty).
  Example context_property(std::string_view member, std::vector<int> member_classes, int stated_class, int property,
                           bool negated) const {
    member_classes.push_back(stated_class);
    Example claim = member_property(member, member_classes, property, negated);
    return {"context: " + World::is_a(member, world_->classes[stated_class].name) + " " + claim.input, claim.target};
  }
  // The passage of one person cut after `sentences` sentences: input the prefix, target the
  // next sentence.
  Example continuation(const Passage& passage, int sentences) const {
    std::string prefix;
    for (int i = 0; i < sentences; ++i) prefix += (i ? " " : "") + passage.sentences.at(i);
    return {"continue: " + prefix, passage.sentences.at(sentences)};
  }

  const World& world() const { return *world_; }

 private:
  const World* world_;
};

// Names for context examples that are no entity of the world ("a pair it never saw").
inline std::string fresh_name(const World& world, tt::Rng& rng) {
  for (;;) {
    std::string word = detail::make_word(rng);
    bool taken = false;
    for (const auto& e : world.entities) taken = taken || e.name == detail::capitalized(word);
    for (const auto& c : world.classes) taken = taken || c.name == word;
    for (const auto& s : world.species) taken = taken || s.name == word;
    if (!taken) return word;
  }
}

// The tokenizer's training text: every surface form of the world (held-out phrasings too — a
// tokenizer learns spellings, not facts) and the task prefixes.
inline std::vector<std::string> tokenizer_corpus(const World& world) {
  std::vector<std::string> lines;
  Forms forms(world);
  for (const Fact& f : world.facts) {
    const Relation& r = world.relations[f.relation];
    for (int q = 0; q < static_cast<int>(r.questions.size()); ++q) lines.push_back(forms.question(f, q).input + " " + world.answer(f));
    for (int s = 0; s < static_cast<int>(r.statements.size()); ++s) lines.push_back(forms.fact_claim(f, s, f.object).input + " true false");
    for (int n = 0; n < static_cast<int>(r.names.size()); ++n) lines.push_back(forms.relation_prompt(f, n));
  }
  for (int c = 0; c < static_cast<int>(world.classes.size()); ++c)
    for (int p = 0; p < static_cast<int>(world.properties.size()); ++p) {
      lines.push_back(forms.class_property(c, p, false).input);
      lines.push_back(forms.class_property(c, p, true).input);
    }
  for (int s = 0; s < static_cast<int>(world.species.size()); ++s)
    for (int c = 0; c < static_cast<int>(world.classes.size()); ++c)
      lines.push_back("context: " + forms.membership(s, c).input);
  for (const Passage& p : world.passages) lines.push_back("continue: " + p.text());
  return lines;
}

// Drops one word other than the first (the task prefix) and any word holding `keep` (the
// subject's name): a model trained on such inputs learns to read a question's content words
// rather than its exact template (paraphrase robustness). Pretraining and SEPROG use it.
inline std::string drop_a_word(const std::string& text, const std::string& keep, tt::Rng& rng) {
  std::vector<std::string> words;
  std::string word;
  for (char c : text + " ") {
    if (c != ' ') word += c;
    else if (!word.empty()) words.push_back(std::exchange(word, {}));
  }
  std::vector<std::size_t> droppable;
  for (std::size_t i = 1; i < words.size(); ++i)
    if (words[i].find(keep) == std::string::npos) droppable.push_back(i);
  if (droppable.empty()) return text;
  const std::size_t drop = droppable[rng.below(droppable.size())];
  std::string out;
  for (std::size_t i = 0; i < words.size(); ++i)
    if (i != drop) out += (out.empty() ? "" : " ") + words[i];
  return out;
}

// The pretraining mix: draws examples of every task with fixed weights, training forms only.
class PretrainingMix {
 public:
  enum Task { question, fact_claim, relation, membership, class_fact, member_property, context, continuation, num_tasks };
  // Per 100 examples. Questions, relation prompts and continuations are learned first and fast;
  // the true/false claims (one bit per example, and a look-up before a comparison) need more.
  static constexpr std::array<int, num_tasks> weights = {20, 20, 8, 8, 6, 14, 18, 6};

  PretrainingMix(const World& world, std::uint64_t seed) : forms_(world), rng_(seed) {}

  // Restarts the draws; pretraining reseeds per step so that a resumed run draws the same batches.
  void reseed(std::uint64_t seed) { rng_.reseed(seed); }

  Example sample() { return sample(pick_task()); }

  Example sample(Task task) {
    const World& w = forms_.world();
    switch (task) {
      case question: {
        const Fact& f = random_fact();
        Example e = forms_.question(f, below(Relation::num_train_questions));
        if (below(10) < 3) e.input = drop_a_word(e.input, w.name(f.subject), rng_);
        return e;
      }
      case fact_claim: {
        const Fact& f = random_fact();
        const int object = rng_.below(2) ? f.object : other_object(f);
        return forms_.fact_claim(f, below(Relation::num_train_statements), object);
      }
      case relation: return forms_.relation(random_fact(), below(Relation::num_train_names));
      case membership: {
        const int s = below(w.species.size());
        // Half the draws ask about a class in its lineage (true), half about any class.
        const auto lineage = w.lineage(w.species[s].class_id);
        const int c = rng_.below(2) ? lineage[below(lineage.size())] : below(w.classes.size());
        return forms_.membership(s, c);
      }
      case class_fact: {
        const int c = below(w.classes.size());
        if (rng_.below(3) == 0) return forms_.class_parent(c, below(w.classes.size()));
        return forms_.class_property(c, property_for({c}), rng_.below(4) == 0);
      }
      case member_property: {
        const Species& s = w.species[below(w.species.size())];
        return forms_.member_property(s.name, {s.class_id}, property_for({s.class_id}), rng_.below(4) == 0);
      }
      case context: {
        const int stated = below(w.classes.size());
        // A new name half the time; otherwise a species told it also belongs to another class.
        if (rng_.below(2)) {
          return forms_.context_property(fresh_name(w, rng_), {}, stated, property_for({stated}), rng_.below(4) == 0);
        }
        const Species& s = w.species[below(w.species.size())];
        return forms_.context_property(s.name, {s.class_id}, stated, property_for({stated, s.class_id}),
                                       rng_.below(4) == 0);
      }
      case continuation: {
        const Passage& p = w.passages[below(w.passages.size())];
        return forms_.continuation(p, 1 + below(p.sentences.size() - 1));
      }
      case num_tasks: break;
    }
    tt::fail("editlab::world::PretrainingMix::sample: unknown task");
  }

 private:
  int below(std::size_t n) { return static_cast<int>(rng_.below(n)); }
  Task pick_task() {
    int roll = below(100);
    for (int t = 0; t < num_tasks; ++t) {
      if (roll < weights[t]) return static_cast<Task>(t);
      roll -= weights[t];
    }
    return question;
  }
  const Fact& random_fact() { return forms_.world().facts[below(forms_.world().facts.size())]; }
  int other_object(const Fact& f) {
    const World& w = forms_.world();
    const auto candidates = w.entities_of(w.relations[f.relation].object_kind);
    for (;;) {
      const int o = candidates[below(candidates.size())];
      if (o != f.object) return o;
    }
  }
  // Half the time a property the classes have (true claims), otherwise any property.
  int property_for(const std::vector<int>& classes) {
    const World& w = forms_.world();
    if (rng_.below(2)) {
      const auto props = w.properties_of_class(classes[below(classes.size())]);
      return props[below(props.size())];
    }
    return below(w.properties.size());
  }

  Forms forms_;
  tt::Rng rng_;
};

}  // namespace editlab::world
