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

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/cases.hpp"
#include "tensortape/core/rng.hpp"
#include "world/world.hpp"

namespace editlab::world {

using editlab::Example;

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
    const std::string capitalized = detail::capitalized(word);
    for (const auto& e : world.entities)
      for (std::string_view part : detail::words_of(e.name)) taken = taken || part == capitalized;
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

namespace detail {
inline std::vector<std::string> split_words(std::string_view text) {  // words_of, as strings to edit
  const auto words = words_of(text);
  return {words.begin(), words.end()};
}
inline std::string join_words(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}
// A word other than the first (the task prefix) and holding no part of `keep` (the subject's
// name: one word, or the stress world's two to four); -1 when there is none.
inline int pick_a_word(const std::vector<std::string>& words, const std::string& keep, tt::Rng& rng) {
  const auto kept = words_of(keep);
  auto holds_the_name = [&](const std::string& word) {
    return kept.empty() || std::any_of(kept.begin(), kept.end(), [&](std::string_view part) { return word.find(part) != std::string::npos; });
  };
  std::vector<int> candidates;
  for (std::size_t i = 1; i < words.size(); ++i)
    if (!holds_the_name(words[i])) candidates.push_back(static_cast<int>(i));
  return candidates.empty() ? -1 : candidates[rng.below(candidates.size())];
}
}  // namespace detail

// Drops one word other than the first (the task prefix) and any word holding a part of `keep`
// (the subject's name): a model trained on such inputs learns to read a question's content words
// rather than its exact template (paraphrase robustness). Pretraining and SEPROG use it.
inline std::string drop_a_word(const std::string& text, const std::string& keep, tt::Rng& rng) {
  auto words = detail::split_words(text);
  const int drop = detail::pick_a_word(words, keep, rng);
  if (drop < 0) return text;
  words.erase(words.begin() + drop);
  return detail::join_words(words);
}

// T5-style span corruption, the denoising task that lets a track's base model emit every piece
// of its text: one span of one to three consecutive words replaced by a blank, the span the
// target: "What is the product made by UniFirst?" -> {"fill: What is the _ made by UniFirst?",
// "product"}. A text of one word gives {"fill: _", the word}. Deterministic in `seed`; over
// seeds, every word of a text is a target.
inline Example span_corruption(const std::string& text, std::uint64_t seed) {
  tt::Rng rng(seed);
  auto words = detail::split_words(text);
  if (words.empty()) return {"fill: _", text};
  const std::size_t length = 1 + rng.below(std::min<std::size_t>(3, words.size()));
  const std::size_t start = rng.below(words.size() - length + 1);
  const std::vector<std::string> span(words.begin() + static_cast<std::ptrdiff_t>(start),
                                      words.begin() + static_cast<std::ptrdiff_t>(start + length));
  words.erase(words.begin() + static_cast<std::ptrdiff_t>(start), words.begin() + static_cast<std::ptrdiff_t>(start + length));
  words.insert(words.begin() + static_cast<std::ptrdiff_t>(start), "_");
  return {"fill: " + detail::join_words(words), detail::join_words(span)};
}

// Replaces one such word by `stranger` (keeping its trailing punctuation): a held-out phrasing
// holds words no training phrasing has ("Name the ...", "graduated"), and a model that met
// unknown words in its training questions learns to read past them.
inline std::string replace_a_word(const std::string& text, const std::string& keep, const std::string& stranger,
                                  tt::Rng& rng) {
  auto words = detail::split_words(text);
  const int at = detail::pick_a_word(words, keep, rng);
  if (at < 0) return text;
  std::string& word = words[static_cast<std::size_t>(at)];
  const char last = word.back();
  word = stranger + ((last == '?' || last == '.' || last == ',') ? std::string(1, last) : std::string());
  return detail::join_words(words);
}

// Moves each word other than the first (the task prefix) by at most `max_shift` places (a word
// at i is sorted by i + u, u uniform in [0, max_shift + 1)), the word-order noise of denoising
// pretraining: a model trained on such inputs reads which content words a question holds more
// than where its template puts them.
inline std::string shuffle_words_locally(const std::string& text, double max_shift, tt::Rng& rng) {
  auto words = detail::split_words(text);
  if (words.size() < 3) return text;
  std::vector<std::pair<double, std::size_t>> keys;  // (sort key, word index), prefix excluded
  for (std::size_t i = 1; i < words.size(); ++i) keys.emplace_back(static_cast<double>(i) + rng.uniform() * (max_shift + 1), i);
  std::stable_sort(keys.begin(), keys.end());
  std::vector<std::string> out = {words[0]};
  for (const auto& [key, i] : keys) out.push_back(words[i]);
  return detail::join_words(out);
}

// What the pretraining mix draws: each task's share per 100 examples, and how questions are
// perturbed. The defaults are the recipe of docs/editing.md; `editlab pretrain --mix` sets them.
struct MixOptions {
  enum Task { question, fact_claim, relation, membership, class_fact, member_property, context, continuation, num_tasks };
  static constexpr std::array<const char*, num_tasks> task_names = {
      "question", "fact_claim", "relation", "membership", "class_fact", "member_property", "context", "continuation"};
  // Questions, relation prompts and continuations are learned first and fast; the true/false
  // claims (one bit per example, and a look-up before a comparison) need more.
  std::array<int, num_tasks> weights = {20, 20, 8, 8, 6, 14, 18, 6};
  int question_drop_percent = 30;     // questions that lose one word (drop_a_word)
  int question_shuffle_percent = 0;   // questions whose words move locally (shuffle_words_locally)
  int question_replace_percent = 0;   // questions with one word replaced by a made-up one (replace_a_word)
  // 1: the true/false tasks come as contrastive pairs, two claims that differ in one part and in
  // their label (the same subject and phrasing with the true and a wrong object; the same species
  // with a property its classes have and one they lack), in the same batch. Each task keeps its
  // share of the examples. The pair's gradient is about the part that differs, not what the two
  // share; the claims learn faster (docs/editing.md, the 3400-step screens).
  int paired_claims = 1;

  static bool is_claim_task(int task) { return task != question && task != relation && task != continuation; }

  int total_weight() const {
    int total = 0;
    for (int w : weights) total += w;
    return total;
  }
  nlohmann::json to_json() const {
    nlohmann::json j = nlohmann::json::object();
    for (int t = 0; t < num_tasks; ++t) j[task_names[t]] = weights[t];
    j["question_drop_percent"] = question_drop_percent;
    j["question_shuffle_percent"] = question_shuffle_percent;
    j["question_replace_percent"] = question_replace_percent;
    j["paired_claims"] = paired_claims;
    return j;
  }
  // "question=14,fact_claim=26": sets the named weights and percentages, keeps the others.
  void set(const std::string& spec) {
    std::size_t begin = 0;
    while (begin < spec.size()) {
      const std::size_t end = std::min(spec.find(',', begin), spec.size());
      const std::string item = spec.substr(begin, end - begin);
      const std::size_t eq = item.find('=');
      tt::check(eq != std::string::npos, "editlab pretrain --mix", "'", item, "' is not name=value");
      const std::string name = item.substr(0, eq);
      int value = 0;
      try {
        std::size_t used = 0;
        value = std::stoi(item.substr(eq + 1), &used);
        tt::check(used == item.size() - eq - 1, "editlab pretrain --mix", "'", item, "': the value is not an integer");
      } catch (const std::logic_error&) {
        tt::fail("editlab pretrain --mix: '" + item + "': the value is not an integer");
      }
      tt::check(value >= 0, "editlab pretrain --mix", "'", item, "': values cannot be negative");
      int* target = nullptr;
      for (int t = 0; t < num_tasks; ++t)
        if (name == task_names[t]) target = &weights[t];
      if (name == "question_drop_percent") target = &question_drop_percent;
      if (name == "question_shuffle_percent") target = &question_shuffle_percent;
      if (name == "question_replace_percent") target = &question_replace_percent;
      if (name == "paired_claims") target = &paired_claims;
      tt::check(target != nullptr, "editlab pretrain --mix", "unknown name '", name, "' (tasks: question, fact_claim, "
                "relation, membership, class_fact, member_property, context, continuation; or question_drop_percent, "
                "question_shuffle_percent, question_replace_percent, paired_claims)");
      *target = value;
      begin = end + 1;
    }
    tt::check(total_weight() > 0, "editlab pretrain --mix", "every task weight is zero");
    tt::check(paired_claims <= 1, "editlab pretrain --mix", "paired_claims is 0 or 1");
    tt::check(question_drop_percent + question_shuffle_percent + question_replace_percent <= 100, "editlab pretrain --mix",
              "the question perturbations' percentages add up to over 100");
  }
};

// The pretraining mix: draws examples of every task with the weights of MixOptions, training
// forms only.
class PretrainingMix {
 public:
  using Task = MixOptions::Task;
  static constexpr int num_tasks = MixOptions::num_tasks;

  PretrainingMix(const World& world, std::uint64_t seed, MixOptions options = {})
      : forms_(world), rng_(seed), options_(options) {}

  // Restarts the draws; pretraining reseeds per step so that a resumed run draws the same batches.
  void reseed(std::uint64_t seed) {
    rng_.reseed(seed);
    pending_.reset();
  }

  Example sample() {
    if (pending_) return *std::exchange(pending_, std::nullopt);
    return sample(pick_task());
  }

  // One example of `task`; with paired claims, a claim task's draw is the first of a pair and
  // the next sample() returns the second.
  Example sample(Task task) {
    if (options_.paired_claims && MixOptions::is_claim_task(task)) {
      auto [first, second] = claim_pair(task);
      pending_ = std::move(second);
      return first;
    }
    return single(task);
  }

 private:
  Example single(Task task) {
    const World& w = forms_.world();
    switch (task) {
      case MixOptions::question: {
        const Fact& f = random_fact();
        Example e = forms_.question(f, below(Relation::num_train_questions));
        const int roll = below(100);
        if (roll < options_.question_drop_percent) e.input = drop_a_word(e.input, w.name(f.subject), rng_);
        else if (roll < options_.question_drop_percent + options_.question_shuffle_percent)
          e.input = shuffle_words_locally(e.input, 3, rng_);
        else if (roll < options_.question_drop_percent + options_.question_shuffle_percent + options_.question_replace_percent)
          e.input = replace_a_word(e.input, w.name(f.subject), fresh_name(w, rng_), rng_);
        return e;
      }
      case MixOptions::fact_claim: {
        const Fact& f = random_fact();
        const int object = rng_.below(2) ? f.object : other_object(f);
        return forms_.fact_claim(f, below(Relation::num_train_statements), object);
      }
      case MixOptions::relation: return forms_.relation(random_fact(), below(Relation::num_train_names));
      case MixOptions::membership: {
        const int s = below(w.species.size());
        // Half the draws ask about a class in its lineage (true), half about any class.
        const auto lineage = w.lineage(w.species[s].class_id);
        const int c = rng_.below(2) ? lineage[below(lineage.size())] : below(w.classes.size());
        return forms_.membership(s, c);
      }
      case MixOptions::class_fact: {
        const int c = below(w.classes.size());
        if (rng_.below(3) == 0) return forms_.class_parent(c, below(w.classes.size()));
        return forms_.class_property(c, property_for({c}), rng_.below(4) == 0);
      }
      case MixOptions::member_property: {
        const Species& s = w.species[below(w.species.size())];
        return forms_.member_property(s.name, {s.class_id}, property_for({s.class_id}), rng_.below(4) == 0);
      }
      case MixOptions::context: {
        const int stated = below(w.classes.size());
        // A new name half the time; otherwise a species told it also belongs to another class.
        if (rng_.below(2)) {
          return forms_.context_property(fresh_name(w, rng_), {}, stated, property_for({stated}), rng_.below(4) == 0);
        }
        const Species& s = w.species[below(w.species.size())];
        return forms_.context_property(s.name, {s.class_id}, stated, property_for({stated, s.class_id}),
                                       rng_.below(4) == 0);
      }
      case MixOptions::continuation: {
        const Passage& p = w.passages[below(w.passages.size())];
        return forms_.continuation(p, 1 + below(p.sentences.size() - 1));
      }
      case MixOptions::num_tasks: break;
    }
    tt::fail("editlab::world::PretrainingMix::sample: unknown task");
  }

  // Two claims of `task` that differ in one part and in their label.
  std::pair<Example, Example> claim_pair(Task task) {
    const World& w = forms_.world();
    switch (task) {
      case MixOptions::fact_claim: {
        const Fact& f = random_fact();
        const int phrasing = below(Relation::num_train_statements);
        return {forms_.fact_claim(f, phrasing, f.object), forms_.fact_claim(f, phrasing, other_object(f))};
      }
      case MixOptions::membership: {
        const int s = below(w.species.size());
        const auto lineage = w.lineage(w.species[s].class_id);
        return {forms_.membership(s, lineage[below(lineage.size())]), forms_.membership(s, class_outside(lineage))};
      }
      case MixOptions::class_fact: {
        const int c = below(w.classes.size());
        if (rng_.below(3) == 0) {
          auto lineage = w.lineage(c);
          if (lineage.size() > 1) {  // a root class has no ancestor to pair with
            return {forms_.class_parent(c, lineage[1 + below(lineage.size() - 1)]), forms_.class_parent(c, class_outside(lineage))};
          }
        }
        const bool negated = rng_.below(4) == 0;
        return {forms_.class_property(c, property_had({c}), negated), forms_.class_property(c, property_lacked({c}), negated)};
      }
      case MixOptions::member_property: {
        const Species& s = w.species[below(w.species.size())];
        const bool negated = rng_.below(4) == 0;
        return {forms_.member_property(s.name, {s.class_id}, property_had({s.class_id}), negated),
                forms_.member_property(s.name, {s.class_id}, property_lacked({s.class_id}), negated)};
      }
      case MixOptions::context: {
        const int stated = below(w.classes.size());
        const bool negated = rng_.below(4) == 0;
        if (rng_.below(2)) {
          const std::string name = fresh_name(w, rng_);
          return {forms_.context_property(name, {}, stated, property_had({stated}), negated),
                  forms_.context_property(name, {}, stated, property_lacked({stated}), negated)};
        }
        const Species& s = w.species[below(w.species.size())];
        return {forms_.context_property(s.name, {s.class_id}, stated, property_had({stated, s.class_id}), negated),
                forms_.context_property(s.name, {s.class_id}, stated, property_lacked({stated, s.class_id}), negated)};
      }
      default: break;
    }
    tt::fail("editlab::world::PretrainingMix: task ", static_cast<int>(task), " has no claim pairs");
  }

  int below(std::size_t n) { return static_cast<int>(rng_.below(n)); }
  // A paired task's draw yields two examples, so it is drawn half as often (every other weight
  // counts double) and keeps its share of the examples.
  int draw_weight(int task) const {
    const bool paired = options_.paired_claims && MixOptions::is_claim_task(task);
    return options_.weights[task] * (options_.paired_claims && !paired ? 2 : 1);
  }
  Task pick_task() {
    int total = 0;
    for (int t = 0; t < num_tasks; ++t) total += draw_weight(t);
    int roll = below(static_cast<std::size_t>(total));
    for (int t = 0; t < num_tasks; ++t) {
      if (roll < draw_weight(t)) return static_cast<Task>(t);
      roll -= draw_weight(t);
    }
    return MixOptions::question;
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
  // A class outside `lineage`.
  int class_outside(const std::vector<int>& lineage) {
    for (;;)
      if (const int c = below(forms_.world().classes.size()); std::find(lineage.begin(), lineage.end(), c) == lineage.end()) return c;
  }
  // A property some of `classes` have, and one none of them has.
  int property_had(const std::vector<int>& classes) {
    const auto props = forms_.world().properties_of_class(classes[below(classes.size())]);
    return props[below(props.size())];
  }
  int property_lacked(const std::vector<int>& classes) {
    const World& w = forms_.world();
    for (;;) {
      const int p = below(w.properties.size());
      bool had = false;
      for (int c : classes) had = had || w.class_has(c, p);
      if (!had) return p;
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
  MixOptions options_;
  std::optional<Example> pending_;  // the second of a claim pair, returned by the next sample()
};

}  // namespace editlab::world
