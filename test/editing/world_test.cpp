// The knowledge world, its pretraining mix and its five benchmarks: determinism, the sizes the
// issue asks for, and that nothing of a test split leaks where it must not.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "eval/harness.hpp"
#include "eval/metrics.hpp"
#include "world/benchmarks.hpp"
#include "world/corpus.hpp"
#include "world/world.hpp"

namespace editlab_world_test {

using namespace editlab::world;

const World& default_world() {
  static const World w = generate(WorldOptions{});
  return w;
}

// A stand-in for the base model's sampler: deterministic, never the true continuation.
std::string fake_continuation(const std::string& prompt, const std::string& /*original*/, tensortape::Rng& rng) {
  return "sampled " + std::to_string(prompt.size()) + " " + std::to_string(rng.below(1000));
}

const World& stress_world() {
  static const World w = [] {
    WorldOptions o;
    o.stress = true;
    return generate(o);
  }();
  return w;
}

// "qa" is qa of the default world; "stress:qa" is qa of its stress variant.
Benchmark benchmark(const std::string& name) {
  const std::string stress = "stress:";
  if (name.rfind(stress, 0) == 0) return make_benchmark(stress_world(), name.substr(stress.size()), fake_continuation);
  return make_benchmark(default_world(), name, fake_continuation);
}

std::vector<std::string> stress_benchmark_names() {
  std::vector<std::string> out;
  for (const auto& name : benchmark_names()) out.push_back("stress:" + name);
  return out;
}

std::uint64_t fnv(const std::string& text) { return editlab::world::detail::fnv1a(text); }

TEST(World, SameSeedSameBytesOtherSeedOtherWorld) {
  const std::string a = generate(WorldOptions{}).serialize();
  EXPECT_EQ(a, generate(WorldOptions{}).serialize());
  WorldOptions other;
  other.seed = 2;
  EXPECT_NE(a, generate(other).serialize());
  // Pins the bytes across machines and compilers: the generator uses integer draws only. If a
  // deliberate change to the generator moves this, update it (and say so in the commit).
  EXPECT_EQ(fnv(a), 7912580187754719170ULL) << "serialize() size " << a.size();
}

TEST(World, SizesRelationsAndPhrasingsAsSpecified) {
  const World& w = default_world();
  const WorldOptions o;
  EXPECT_GE(w.relations.size(), 8u);
  for (const auto& r : w.relations) {
    EXPECT_GE(r.questions.size(), 6u) << r.id;
    EXPECT_GT(static_cast<int>(r.questions.size()), Relation::num_train_questions) << r.id << " has no held-out question";
    EXPECT_GT(static_cast<int>(r.statements.size()), Relation::num_train_statements) << r.id;
    EXPECT_GT(static_cast<int>(r.names.size()), Relation::num_train_names) << r.id;
  }
  EXPECT_EQ(w.entities_of(Kind::person).size(), static_cast<std::size_t>(o.people));
  // One fact per (relation, subject of its kind).
  std::size_t expected_facts = 0;
  for (const auto& r : w.relations) expected_facts += w.entities_of(r.subject_kind).size();
  EXPECT_EQ(w.facts.size(), expected_facts);
  for (const auto& f : w.facts) {
    EXPECT_EQ(w.entities[f.subject].kind, w.relations[f.relation].subject_kind);
    EXPECT_EQ(w.entities[f.object].kind, w.relations[f.relation].object_kind);
  }
}

TEST(World, NamesAreUniqueAcrossEverything) {
  const World& w = default_world();
  std::set<std::string> names;
  std::size_t count = 0;
  for (const auto& e : w.entities) names.insert(e.name), ++count;
  for (const auto& c : w.classes) names.insert(c.name), ++count;
  for (const auto& s : w.species) names.insert(s.name), ++count;
  EXPECT_EQ(names.size(), count);
}

TEST(World, TaxonomyHasDepthThreeToFourAndInheritance) {
  const World& w = default_world();
  for (const auto& s : w.species) {
    const auto lineage = w.lineage(s.class_id);
    // Species + its classes: depth 4 with the default three class levels.
    EXPECT_GE(lineage.size() + 1, 3u);
    EXPECT_LE(lineage.size() + 1, 4u);
    // A member has every property of every ancestor, and nothing else.
    std::set<int> expected;
    for (int c : lineage) expected.insert(w.classes[c].properties.begin(), w.classes[c].properties.end());
    const auto got = w.properties_of_class(s.class_id);
    EXPECT_EQ(std::set<int>(got.begin(), got.end()), expected);
  }
  // Claims come stated and negated, with opposite labels.
  Forms forms(w);
  const auto& s = w.species.front();
  const int p = w.classes[s.class_id].properties.front();
  EXPECT_EQ(forms.member_property(s.name, {s.class_id}, p, false).target, "true");
  EXPECT_EQ(forms.member_property(s.name, {s.class_id}, p, true).target, "false");
}

// Every held-out surface form of the world, as the text it is embedded in.
std::set<std::string> heldout_texts(const World& w) {
  std::set<std::string> out;
  Forms forms(w);
  for (const auto& f : w.facts) {
    const auto& r = w.relations[f.relation];
    for (int q = Relation::num_train_questions; q < static_cast<int>(r.questions.size()); ++q)
      out.insert(forms.question(f, q).input);
    for (int n = Relation::num_train_names; n < static_cast<int>(r.names.size()); ++n)
      out.insert(forms.relation_prompt(f, n));
    for (const auto& e : w.entities)
      if (e.kind == r.object_kind)
        for (int s = Relation::num_train_statements; s < static_cast<int>(r.statements.size()); ++s)
          out.insert("claim: " + w.statement(f, s, static_cast<int>(&e - w.entities.data())));
  }
  return out;
}

TEST(PretrainingMix, NeverEmitsAHeldOutForm) {
  const World& w = default_world();
  const auto heldout = heldout_texts(w);
  // Most questions lose, move or replace a word: none may land on a held-out form.
  MixOptions perturbed;
  perturbed.question_drop_percent = 30;
  perturbed.question_shuffle_percent = 30;
  perturbed.question_replace_percent = 30;
  PretrainingMix mix(w, 3, perturbed);
  ASSERT_EQ(perturbed.paired_claims, 1) << "claim pairs are the default";
  for (int i = 0; i < 30000; ++i) {
    const auto task = static_cast<PretrainingMix::Task>(i % PretrainingMix::num_tasks);
    // A claim task's draw is the first of a pair; the next sample() is its second.
    for (const Example& e : {mix.sample(task), mix.sample()}) {
      ASSERT_EQ(heldout.count(e.input), 0u) << "held-out form in pretraining: " << e.input;
      ASSERT_FALSE(e.input.empty());
      ASSERT_FALSE(e.target.empty());
    }
  }
  // Reseeding reproduces the draws (resumed pretraining relies on it), pairs included.
  std::vector<std::string> draws;
  mix.reseed(11);
  for (int i = 0; i < 50; ++i) draws.push_back(mix.sample().input);
  mix.sample(PretrainingMix::Task::fact_claim);  // leaves half a pair behind
  mix.reseed(11);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(mix.sample().input, draws[i]) << i;
}

// The task of an example, read from its input (the claim tasks share "claim:").
std::string task_prefix(const Example& e) { return e.input.substr(0, e.input.find(':')); }

TEST(PretrainingMix, DrawsTasksInProportionToTheirWeights) {
  const World& w = default_world();
  MixOptions options;
  options.set("question=0,fact_claim=0,relation=1,membership=0,class_fact=0,member_property=0,context=0,continuation=3");
  PretrainingMix mix(w, 5, options);
  std::map<std::string, int> counts;
  const int draws = 8000;
  for (int i = 0; i < draws; ++i) ++counts[task_prefix(mix.sample())];
  ASSERT_EQ(counts.size(), 2u) << "only relation prompts and continuations have weight";
  // Binomial(8000, 0.25): standard deviation 39, so +-200 is over 5 of them.
  EXPECT_NEAR(counts["relation"], draws / 4, 200);
  EXPECT_NEAR(counts["continue"], 3 * draws / 4, 200);
}

TEST(PretrainingMix, ShuffledQuestionsKeepTheirWordsNearTheirPlace) {
  tensortape::Rng rng(9);
  const std::string question = "question: In which city was Truthosous born?";
  const std::vector<std::string> words = {"question:", "In", "which", "city", "was", "Truthosous", "born?"};
  int moved = 0;
  for (int trial = 0; trial < 500; ++trial) {
    const std::string shuffled = shuffle_words_locally(question, 3, rng);
    std::vector<std::string> got;
    std::istringstream in(shuffled);
    for (std::string word; in >> word;) got.push_back(word);
    ASSERT_EQ(got.size(), words.size()) << shuffled;
    ASSERT_EQ(got[0], "question:") << "the task prefix stays first: " << shuffled;
    for (std::size_t i = 0; i < words.size(); ++i) {
      const auto at = std::find(got.begin(), got.end(), words[i]);
      ASSERT_NE(at, got.end()) << words[i] << " lost: " << shuffled;
      const auto place = static_cast<std::ptrdiff_t>(at - got.begin());
      EXPECT_LE(std::abs(place - static_cast<std::ptrdiff_t>(i)), 3) << words[i] << " moved too far: " << shuffled;
    }
    moved += shuffled != question;
  }
  EXPECT_GT(moved, 400) << "most draws change the order";
}

TEST(World, StressNamesAreTwoToFourPartsSharedAcrossEntities) {
  const World& w = stress_world();
  WorldOptions stress;
  stress.stress = true;
  EXPECT_EQ(w.serialize(), generate(stress).serialize());
  // Pins the bytes across compilers too (g++ and clang once drew a name part's syllables in
  // different orders): the stress world of docs/results was made from exactly these.
  EXPECT_EQ(fnv(w.serialize()), 4325805742991201792ULL) << "serialize() size " << w.serialize().size();
  std::set<std::string> names, words;
  for (const auto& c : w.classes) words.insert(c.name);
  for (const auto& s : w.species) words.insert(s.name);
  std::map<std::string, int> names_with_part;
  for (const auto& e : w.entities) {
    EXPECT_TRUE(names.insert(e.name).second) << e.name << " twice";
    const auto parts = detail::words_of(e.name);
    EXPECT_GE(parts.size(), 2u) << e.name;
    EXPECT_LE(parts.size(), 4u) << e.name;
    std::set<std::string_view> distinct(parts.begin(), parts.end());
    EXPECT_EQ(distinct.size(), parts.size()) << e.name;
    for (std::string_view part : parts) {
      ++names_with_part[std::string(part)];
      EXPECT_LE(part.size(), 5u) << part << " is more than a syllable";
      std::string lower(part);
      lower[0] = static_cast<char>(lower[0] - 'A' + 'a');
      EXPECT_EQ(words.count(lower), 0u) << part << " is also a class or species";
    }
  }
  // A part tells few subjects apart: nearly every part stands in several names.
  int shared = 0;
  for (const auto& [part, count] : names_with_part) shared += count >= 2;
  EXPECT_GE(shared * 10, static_cast<int>(names_with_part.size()) * 9);
  EXPECT_LE(names_with_part.size() * 2, w.entities.size());
  // The default world's names stay single words.
  for (const auto& e : default_world().entities) EXPECT_EQ(detail::words_of(e.name).size(), 1u) << e.name;
}

TEST(PretrainingMix, DroppedWordsSpareEveryPartOfTheSubjectsName) {
  tensortape::Rng rng(5);
  const std::string question = "question: Where was Talimo Kren Dusa born?";
  std::set<std::string> dropped;
  for (int trial = 0; trial < 200; ++trial) {
    auto kept = detail::split_words(drop_a_word(question, "Talimo Kren Dusa", rng));
    auto all = detail::split_words(question);
    ASSERT_EQ(kept.size() + 1, all.size());
    for (const auto& word : all)
      if (std::find(kept.begin(), kept.end(), word) == kept.end()) dropped.insert(word);
  }
  EXPECT_EQ(dropped, (std::set<std::string>{"Where", "was", "born?"}));
}

TEST(PretrainingMix, ReplacedWordsSpareThePrefixTheSubjectAndThePunctuation) {
  tensortape::Rng rng(4);
  const std::vector<std::string> words = {"question:", "Where", "was", "Truthosous", "born?"};
  std::set<std::size_t> replaced_places;
  for (int trial = 0; trial < 200; ++trial) {
    const std::string out = replace_a_word("question: Where was Truthosous born?", "Truthosous", "blorp", rng);
    std::vector<std::string> got;
    std::istringstream in(out);
    for (std::string word; in >> word;) got.push_back(word);
    ASSERT_EQ(got.size(), words.size()) << out;
    int differ = 0;
    for (std::size_t i = 0; i < words.size(); ++i) {
      if (got[i] == words[i]) continue;
      ++differ;
      replaced_places.insert(i);
      EXPECT_EQ(got[i], i == 4 ? "blorp?" : "blorp") << out;
    }
    EXPECT_EQ(differ, 1) << out;
  }
  EXPECT_EQ(replaced_places, (std::set<std::size_t>{1, 2, 4})) << "any word but the prefix and the subject";
}

TEST(PretrainingMix, PairedClaimsDifferInOnePartAndInTheirLabel) {
  const World& w = default_world();
  MixOptions options;
  options.set("paired_claims=1");
  PretrainingMix mix(w, 8, options);
  for (int task = 0; task < PretrainingMix::num_tasks; ++task) {
    if (!MixOptions::is_claim_task(task)) continue;
    for (int trial = 0; trial < 200; ++trial) {
      const Example first = mix.sample(static_cast<PretrainingMix::Task>(task));
      const Example second = mix.sample();
      ASSERT_NE(first.target, second.target) << first.input << " / " << second.input;
      // The same words around one differing run (the object, the property or the class; a
      // property takes up to five words: "does not live in caves").
      std::vector<std::string> a, b;
      std::istringstream in_a(first.input), in_b(second.input);
      for (std::string word; in_a >> word;) a.push_back(word);
      for (std::string word; in_b >> word;) b.push_back(word);
      std::size_t prefix = 0, suffix = 0;
      while (prefix < std::min(a.size(), b.size()) && a[prefix] == b[prefix]) ++prefix;
      while (suffix < std::min(a.size(), b.size()) - prefix && a[a.size() - 1 - suffix] == b[b.size() - 1 - suffix]) ++suffix;
      ASSERT_GE(prefix, 1u) << "same task prefix";
      EXPECT_GE(prefix + suffix, 2u) << "the prefix and the subject are shared: " << first.input << " / " << second.input;
      EXPECT_LE(a.size() - prefix - suffix, 5u) << first.input << " / " << second.input;
      EXPECT_LE(b.size() - prefix - suffix, 5u) << first.input << " / " << second.input;
    }
  }
}

TEST(PretrainingMix, PairedClaimsKeepEachTasksShare) {
  const World& w = default_world();
  MixOptions options;
  options.set("question=1,fact_claim=1,relation=0,membership=0,class_fact=0,member_property=0,context=0,continuation=0,"
              "paired_claims=1");
  PretrainingMix mix(w, 6, options);
  mix.reseed(6);
  int questions = 0;
  const int draws = 8000;
  for (int i = 0; i < draws; ++i) questions += task_prefix(mix.sample()) == "question";
  // Pairs come two at a time, so the count varies more than a binomial's: sd about 63.
  EXPECT_NEAR(questions, draws / 2, 300);
}

TEST(PretrainingMix, MixSpecificationsAreCheckedWhenParsed) {
  MixOptions options;
  options.set("question=14,question_shuffle_percent=20");
  EXPECT_EQ(options.weights[MixOptions::question], 14);
  EXPECT_EQ(options.weights[MixOptions::fact_claim], 20) << "unnamed weights keep their defaults";
  EXPECT_EQ(options.question_shuffle_percent, 20);
  for (const char* bad : {"questions=3", "question", "question=x", "question=3x", "question=-1",
                          "question_shuffle_percent=40,question_replace_percent=40",
                          "question=0,fact_claim=0,relation=0,membership=0,class_fact=0,member_property=0,context=0,continuation=0"}) {
    MixOptions fresh;
    EXPECT_THROW(fresh.set(bad), std::exception) << bad;
  }
}

TEST(PretrainingMix, ContextClaimsFollowTheStatedClass) {
  const World& w = default_world();
  Forms forms(w);
  const int stated = 0;
  for (int p : w.properties_of_class(stated)) {
    const Example e = forms.context_property("zzblorp", {}, stated, p, false);
    EXPECT_EQ(e.target, "true") << e.input;
    EXPECT_NE(e.input.find("is a " + w.classes[stated].name), std::string::npos) << e.input;
  }
}

std::set<std::string> subjects(const Benchmark& b, Split s) {
  std::set<std::string> out;
  for (const auto& c : b.split(s)) out.insert(c.subject);
  return out;
}

class BenchmarkSplits : public ::testing::TestWithParam<std::string> {};

TEST_P(BenchmarkSplits, TestSubjectsAndEditsNeverAppearInTrainOrValidation) {
  const Benchmark b = benchmark(GetParam());
  for (Split s : kSplits) EXPECT_FALSE(b.split(s).empty()) << split_name(s);
  const auto test = subjects(b, Split::test);
  for (Split other : {Split::train, Split::validation}) {
    for (const auto& name : subjects(b, other)) EXPECT_EQ(test.count(name), 0u) << name << " in test and " << split_name(other);
    for (const auto& c : b.split(other))
      for (const auto& t : b.split(Split::test)) ASSERT_NE(c.edit.input, t.edit.input);
  }
  // Half of each test case's out-scope examples are about subjects no test batch edits (the
  // reserve), so DD stays measurable at any K.
  for (const auto& c : b.split(Split::test)) {
    std::size_t reserved = 0;
    for (const auto& e : c.out_scope) reserved += test.count(e.subject) == 0;
    EXPECT_GE(2 * reserved, c.out_scope.size()) << c.edit.input;
  }
}

// Validation and test out-scope are about subjects no editor trains on: other subjects of the
// case's own split and reserved subjects (never a case's subject in any split), one reserve for
// validation and another for test. seen_out_scope is what editors train on: train-split subjects.
TEST_P(BenchmarkSplits, ValidationAndTestOutScopeIsUnseenByEditors) {
  const Benchmark b = benchmark(GetParam());
  std::set<std::string> case_subjects, trained;
  for (Split s : kSplits)
    for (const auto& c : b.split(s)) case_subjects.insert(c.subject);
  for (const auto& c : b.split(Split::train)) {
    trained.insert(c.subject);
    for (const auto& e : c.out_scope) trained.insert(e.subject);
    EXPECT_TRUE(c.seen_out_scope.empty());
  }
  std::map<Split, std::set<std::string>> reserve;
  for (Split s : {Split::validation, Split::test}) {
    const auto own = subjects(b, s);
    for (const auto& c : b.split(s)) {
      ASSERT_FALSE(c.out_scope.empty()) << c.edit.input;
      ASSERT_FALSE(c.seen_out_scope.empty()) << c.edit.input;
      for (const auto& e : c.out_scope) {
        EXPECT_EQ(trained.count(e.subject), 0u) << e.input << " is about a subject editors train on";
        EXPECT_NE(e.subject, c.subject) << e.input;
        if (own.count(e.subject)) continue;
        EXPECT_EQ(case_subjects.count(e.subject), 0u) << e.input << " is about another split's edited subject";
        reserve[s].insert(e.subject);
      }
      for (const auto& e : c.seen_out_scope) EXPECT_EQ(subjects(b, Split::train).count(e.subject), 1u) << e.input;
    }
  }
  for (const auto& name : reserve[Split::validation]) EXPECT_EQ(reserve[Split::test].count(name), 0u) << name;
  EXPECT_GE(reserve[Split::test].size(), 4u);
  // Batches of 128 test edits need at least 128 of them.
  EXPECT_GE(b.split(Split::test).size(), 128u);
}

TEST_P(BenchmarkSplits, EveryCaseHasScopeSetsAndAChangedLabel) {
  const Benchmark b = benchmark(GetParam());
  for (Split s : kSplits)
    for (const auto& c : b.split(s)) {
      ASSERT_FALSE(c.in_scope.empty()) << c.edit.input;
      ASSERT_FALSE(c.out_scope.empty()) << c.edit.input;
      ASSERT_NE(c.edit.target, c.old_target) << c.edit.input;
      for (const auto& e : c.out_scope) ASSERT_NE(e.subject, c.subject) << e.input;
      if (!b.labels.empty()) {
        for (const auto& e : c.in_scope) ASSERT_TRUE(e.target == "true" || e.target == "false") << e.target;
      }
    }
}

INSTANTIATE_TEST_SUITE_P(All, BenchmarkSplits, ::testing::ValuesIn(benchmark_names()));
INSTANTIATE_TEST_SUITE_P(Stress, BenchmarkSplits, ::testing::ValuesIn(stress_benchmark_names()));

// In the stress world, qa's, factcheck's and relations' out-scope examples are about the edit's
// neighbours (a subject sharing a part of its name, or a fact with its old or new answer); in
// the default world most are not.
TEST(Benchmarks, StressOutScopeIsAboutTheEditsNeighbours) {
  for (const bool stress : {false, true}) {
    const World& w = stress ? stress_world() : default_world();
    std::map<std::string, std::string> object_of;  // "subject|relation" -> the object's name
    for (const auto& f : w.facts) object_of[detail::fact_key(w, f)] = w.answer(f);
    for (const std::string name : {"qa", "factcheck", "relations"}) {
      const Benchmark b = benchmark(stress ? "stress:" + name : name);
      std::size_t near = 0, total = 0;
      for (Split s : kSplits)
        for (const auto& c : b.split(s)) {
          const std::string& old_object = object_of.at(c.changes.at(0));
          for (const auto& e : c.out_scope) {
            const std::string& object = object_of.at(e.fact);
            near += detail::share_a_name_part(e.subject, c.subject) || object == old_object || object == c.edit.target;
            ++total;
          }
        }
      if (stress) {
        EXPECT_GE(near * 100, total * 95) << name << ": " << near << " of " << total;
      } else {
        EXPECT_LE(near * 2, total) << name << ": " << near << " of " << total;
      }
    }
  }
}

TEST(Benchmarks, HeldOutPhrasingsOnlyInValidationAndTestInScope) {
  const auto heldout = heldout_texts(default_world());
  for (const std::string name : {"qa", "relations", "factcheck"}) {
    const Benchmark b = benchmark(name);
    for (Split s : kSplits)
      for (const auto& c : b.split(s)) {
        EXPECT_EQ(heldout.count(c.edit.input), 0u) << name << ": edit descriptor uses a held-out form";
        for (const auto& e : c.in_scope) {
          const bool is_heldout = heldout.count(e.input) > 0;
          EXPECT_EQ(is_heldout, s != Split::train) << name << " " << split_name(s) << ": " << e.input;
        }
      }
  }
}

TEST(Benchmarks, UnseenOutScopeUsesHeldOutPhrasings) {
  const auto heldout = heldout_texts(default_world());
  for (const std::string name : {"qa", "relations", "factcheck"}) {
    const Benchmark b = benchmark(name);
    for (Split s : {Split::validation, Split::test})
      for (const auto& c : b.split(s)) {
        for (const auto& e : c.out_scope) EXPECT_EQ(heldout.count(e.input), 1u) << name << ": " << e.input;
        for (const auto& e : c.hard_out_scope) EXPECT_EQ(heldout.count(e.input), 1u) << name << ": " << e.input;
        for (const auto& e : c.seen_out_scope) EXPECT_EQ(heldout.count(e.input), 0u) << name << ": " << e.input;
      }
  }
}

// Every question, relation prompt and claim of the world (any phrasing, any object), mapped to
// "subject|relation": which fact a text asks about, found from the text alone.
std::map<std::string, std::string> fact_of_text(const World& w) {
  std::map<std::string, std::string> out;
  const Forms forms(w);
  for (const auto& f : w.facts) {
    const auto& r = w.relations[f.relation];
    const std::string key = w.name(f.subject) + "|" + r.id;
    for (int q = 0; q < static_cast<int>(r.questions.size()); ++q) out[forms.question(f, q).input] = key;
    for (int n = 0; n < static_cast<int>(r.names.size()); ++n) out[forms.relation_prompt(f, n)] = key;
    for (int o : w.entities_of(r.object_kind))
      for (int s = 0; s < static_cast<int>(r.statements.size()); ++s) out[forms.fact_claim(f, s, o).input] = key;
  }
  return out;
}

// At the largest batch the harness draws (K = 128, many edits per subject), no out-scope, seen
// or hard example asks a fact that an edit of the batch changes, checked from the texts alone.
TEST(Benchmarks, NoOutScopeExampleAtK128AsksAFactTheBatchChanges) {
  const World& w = default_world();
  for (const std::string name : {"qa", "factcheck", "relations", "stress:qa", "stress:factcheck", "stress:relations"}) {
    const Benchmark b = benchmark(name);
    const auto facts = fact_of_text(name.rfind("stress:", 0) == 0 ? stress_world() : w);
    std::size_t checked = 0, hard_dropped = 0;
    for (int draw = 0; draw < 5; ++draw) {
      const auto batch = editlab::eval::draw_cases(b.split(Split::test), 128, 1, draw);
      std::set<std::string> changed;
      for (const auto& c : batch) changed.insert(facts.at(c.edit.input));
      std::size_t hard_total = 0;
      for (const auto& c : batch) hard_total += c.hard_out_scope.size();
      const auto hard = editlab::eval::hard_out_scope_of(batch);
      hard_dropped += hard_total - hard.size();
      const auto out = editlab::eval::out_scope_of(batch), seen = editlab::eval::seen_out_scope_of(batch);
      for (const auto* set : {&hard, &out, &seen})
        for (const auto& e : *set) {
          ++checked;
          EXPECT_EQ(changed.count(facts.at(e.input)), 0u) << name << ": " << e.input << " asks a fact the batch edits";
        }
    }
    EXPECT_GT(checked, 500u) << name;
    if (name.find("relations") != std::string::npos) {
      EXPECT_GT(hard_dropped, 0u) << "K = 128 edits several relations of a subject";
    }
  }
  // entail: every kept claim's label is still true of the world after all of the batch's edits
  // (each "A X is a Y." adds Y's lineage to X's classes).
  const Benchmark entail = benchmark("entail");
  std::size_t checked = 0;
  for (int draw = 0; draw < 5; ++draw) {
    const auto batch = editlab::eval::draw_cases(entail.split(Split::test), 128, 1, draw);
    std::map<std::string, std::vector<int>> classes;  // species -> its classes after the edits
    for (const auto& s : w.species) classes[s.name] = {s.class_id};
    for (const auto& c : batch)
      for (std::size_t y = 0; y < w.classes.size(); ++y)
        if (c.edit.input == "claim: " + World::is_a(c.subject, w.classes[y].name)) classes[c.subject].push_back(static_cast<int>(y));
    for (const auto& set : {editlab::eval::hard_out_scope_of(batch), editlab::eval::out_scope_of(batch), editlab::eval::seen_out_scope_of(batch)})
      for (const auto& e : set)
        for (const auto& [species, member_of] : classes)
          for (int p = 0; p < static_cast<int>(w.properties.size()); ++p)
            for (bool negated : {false, true})
              if ("claim: " + w.property_claim(species, p, negated) == e.input) {
                bool has = false;
                for (int k : member_of) has = has || w.class_has(k, p);
                EXPECT_EQ(e.target, truth(has != negated)) << e.input << " is changed by the batch";
                ++checked;
              }
  }
  EXPECT_GT(checked, 500u);
}

TEST(Benchmarks, QaInScopeAsksTheSameFactWithTheNewAnswer) {
  const World& w = default_world();
  const Benchmark qa = benchmark("qa");
  for (const auto& c : qa.split(Split::test)) {
    for (const auto& e : c.in_scope) {
      EXPECT_EQ(e.target, c.edit.target);
      EXPECT_NE(e.input.find(c.subject), std::string::npos) << e.input;
    }
    // The old answer is the world's truth for that subject.
    bool found = false;
    for (const auto& f : w.facts)
      if (w.name(f.subject) == c.subject && w.answer(f) == c.old_target) found = true;
    EXPECT_TRUE(found) << c.edit.input;
  }
}

TEST(Benchmarks, RelationsHardOutScopeKeepsTheSubjectAndChangesTheRelation) {
  const Benchmark b = benchmark("relations");
  std::size_t hard = 0;
  for (const auto& c : b.split(Split::test))
    for (const auto& e : c.hard_out_scope) {
      ++hard;
      EXPECT_NE(e.input.find(c.subject + " has relation"), std::string::npos) << e.input;
      EXPECT_NE(e.input, c.edit.input);
    }
  EXPECT_GT(hard, 0u);
}

TEST(Benchmarks, EntailInScopeIsEntailedByTheNewMembership) {
  const World& w = default_world();
  const Benchmark b = benchmark("entail");
  for (const auto& c : b.split(Split::test)) {
    const auto species = std::find_if(w.species.begin(), w.species.end(), [&](const Species& s) { return s.name == c.subject; });
    ASSERT_NE(species, w.species.end());
    for (const auto& e : c.in_scope) {
      // Before the edit the claim had the opposite label: the edit is what makes it hold.
      bool before = false;
      for (int p = 0; p < static_cast<int>(w.properties.size()); ++p)
        for (bool negated : {false, true})
          if (w.property_claim(species->name, p, negated) == e.input.substr(7))
            before = w.class_has(species->class_id, p) != negated;
      EXPECT_NE(truth(before), e.target) << e.input;
    }
  }
}

TEST(Benchmarks, EntailHardOutScopeIsAboutTheSameSpeciesAndKeepsItsLabel) {
  const World& w = default_world();
  const Benchmark b = benchmark("entail");
  std::size_t hard = 0, false_labels = 0;
  for (Split split : kSplits)
    for (const auto& c : b.split(split)) {
      const auto species = std::find_if(w.species.begin(), w.species.end(), [&](const Species& s) { return s.name == c.subject; });
      ASSERT_NE(species, w.species.end());
      const std::string new_class = c.edit.input.substr(c.edit.input.rfind(' ') + 1, std::string::npos);
      const auto y = std::find_if(w.classes.begin(), w.classes.end(), [&](const auto& k) { return k.name + "." == new_class; });
      ASSERT_NE(y, w.classes.end()) << c.edit.input;
      for (const auto& e : c.hard_out_scope) {
        ++hard;
        false_labels += e.target == "false";
        // A property neither the species' classes nor the new one have: the label before the
        // edit and after it are the same.
        bool matched = false;
        for (int p = 0; p < static_cast<int>(w.properties.size()); ++p)
          for (bool negated : {false, true})
            if (w.property_claim(species->name, p, negated) == e.input.substr(7)) {
              matched = true;
              EXPECT_FALSE(w.class_has(species->class_id, p)) << e.input;
              EXPECT_FALSE(w.class_has(static_cast<int>(y - w.classes.begin()), p)) << e.input;
              EXPECT_EQ(e.target, truth(negated)) << e.input;
            }
        EXPECT_TRUE(matched) << e.input;
      }
    }
  EXPECT_GT(hard, b.split(Split::test).size());  // about two per edit
  EXPECT_GT(false_labels, 0u);
  EXPECT_LT(false_labels, hard);
}

TEST(Benchmarks, TextgenNewContinuationComesFromTheSampler) {
  const Benchmark b = benchmark("textgen");
  for (const auto& c : b.split(Split::test)) {
    EXPECT_EQ(c.edit.target.rfind("sampled ", 0), 0u);
    ASSERT_EQ(c.in_scope.size(), 1u);
    EXPECT_EQ(c.in_scope[0].input, c.edit.input);
  }
  EXPECT_THROW(make_benchmark(default_world(), "textgen"), tensortape::Error);
  EXPECT_THROW(make_benchmark(default_world(), "nope", fake_continuation), tensortape::Error);
}

// The sampler is told each passage's own continuation; a cut for which it finds no other one is
// no edit and is left out, so that no case's new label is its old one.
TEST(Benchmarks, TextgenLeavesOutCutsWithNoOtherContinuation) {
  std::map<std::string, std::string> original_of;  // prompt -> the continuation the sampler was told
  std::size_t cuts = 0, stuck = 0;
  const auto sampler = [&](const std::string& prompt, const std::string& original, tensortape::Rng& rng) {
    if (original_of.emplace(prompt, original).second) {
      ++cuts;
      stuck += prompt.size() % 3 == 0;
    }
    // Stuck on the passage's own continuation for one prompt in three (as a base model that
    // knows the passage by heart and was not told what to avoid); the others on the second try.
    if (prompt.size() % 3 == 0 || rng.below(2) == 0) return original;
    return "sampled " + std::to_string(rng.below(1000));
  };
  const Benchmark b = make_benchmark(default_world(), "textgen", sampler);
  std::size_t cases = 0;
  for (Split split : kSplits)
    for (const auto& c : b.split(split)) {
      ++cases;
      EXPECT_NE(c.edit.target, c.old_target) << c.edit.input;
      EXPECT_EQ(original_of.at(c.edit.input), c.old_target) << c.edit.input;
      EXPECT_NE(c.edit.input.size() % 3, 0u) << c.edit.input;
    }
  ASSERT_GT(stuck, 0u);
  EXPECT_EQ(cases, cuts - stuck);
}

}  // namespace editlab_world_test
