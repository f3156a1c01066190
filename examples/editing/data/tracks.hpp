// editlab::data — the two real-data tracks, built from the shared files (never copied in):
//
//   zsre1k  zsre/zsre_mend_train-1k.json: the base model learns each src question's gold answer
//           and each loc question's answer, and every piece of the file's text through span
//           corruption (track.texts: questions, rephrasings, answers and new answers, each on its
//           own, so that it can emit every label, without ever seeing an edit's question paired
//           with its new answer). The edits are src -> alt, in-scope rephrase -> alt, out-scope
//           loc -> loc_ans (with no subject: the loc questions are about other things). Records
//           with an empty alt, or an alt equal to the answer, are left out.
//           Labels are single-spaced, as the model emits them (as_emitted).
//   lot     leapofthought/taxonomic_reasonings_training_mix_dev.jsonl: the edits are the records
//           with an implicit rule ("A sake is a alcohol." -> true); in-scope is the record's
//           statement with its label (entailed through the rule and the record's property); out-
//           scope are statements of the records that are not edits. The base model learns the
//           file's rule sentences and the statements of the records that are not edits, fact by
//           fact (a sentence and its negation state one fact): never the fact of an edit's
//           implicit rule or in-scope statement, either way, and, where the file states a fact
//           both ways, the value most of its records give (neither on a tie). An edit is kept
//           only if its property was taught with the value its answer needs, and once.
//
//   auto track = editlab::data::load_track("zsre1k", "../shared/data");
//   track.knowledge      // pretraining examples (input -> target)
//   track.texts          // pretraining text for span corruption (zsre1k)
//   track.benchmark      // splits of edit cases, as the world's benchmarks
//
// Splits: 60 / 10 / 30 % of the edits' subjects, shuffled with a fixed seed, so no test subject,
// descriptor or (lot) implicit rule occurs among train or validation edits. Out-scope of train
// cases: the train split's own out-scope inputs (what an editor trains on). Of validation and test
// cases: out-scope inputs of their own split (zsre1k: its records' loc questions; lot: statements
// about its subjects and about subjects no record edits, halved between validation and test), so
// no editor has trained on them; seen_out_scope holds train-split ones, reported beside.
#pragma once

#include <algorithm>
#include <array>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "data/readers.hpp"
#include "world/benchmarks.hpp"
#include "world/corpus.hpp"

namespace editlab::data {

using world::Benchmark;
using world::Case;
using world::Example;
using world::Split;

struct Track {
  std::string name;
  std::vector<Example> knowledge;  // what the base model is pretrained on
  std::vector<std::string> texts;  // text it also learns by span corruption (every label's pieces)
  Benchmark benchmark;
};

inline const std::vector<std::string>& track_names() {
  static const std::vector<std::string> names = {"lot", "zsre1k"};
  return names;
}

inline std::filesystem::path track_file(const std::string& name, const std::filesystem::path& data_dir) {
  if (name == "zsre1k") return data_dir / "zsre" / "zsre_mend_train-1k.json";
  if (name == "lot") return data_dir / "leapofthought" / "taxonomic_reasonings_training_mix_dev.jsonl";
  tensortape::fail("editlab", "unknown track '", name, "' (lot, zsre1k)");
}

namespace detail {

constexpr int kSeenOutScope = 2;    // per validation / test case: train-split out-scope
constexpr int kOutScope = 4;        // per case: its split's out-scope

// Split of each subject: the distinct names, sorted (the file's order does not matter), dealt
// 60 / 10 / 30 by a fixed seed.
inline std::map<std::string, Split> split_subjects(const std::set<std::string>& subjects, std::uint64_t seed) {
  const std::vector<std::string> names(subjects.begin(), subjects.end());
  const auto splits = world::assign_splits(names.size(), seed);
  std::map<std::string, Split> out;
  for (std::size_t i = 0; i < names.size(); ++i) out[names[i]] = splits[i];
  return out;
}

// Up to `count` examples drawn from `pool`, none about `subject` (an empty subject excludes
// nothing) and none repeated.
inline std::vector<Example> others(const std::vector<Example>& pool, const std::string& subject, int count, tensortape::Rng& rng) {
  std::vector<Example> out;
  for (int attempt = 0; static_cast<int>(out.size()) < count && attempt < 100 && !pool.empty(); ++attempt) {
    const Example& e = pool[rng.below(pool.size())];
    if (!subject.empty() && e.subject == subject) continue;
    if (std::none_of(out.begin(), out.end(), [&](const Example& o) { return o.input == e.input; })) out.push_back(e);
  }
  return out;
}

// Fills the out-scope sets of every case from per-split pools (see the header).
inline void add_out_scope(Benchmark& bench, const std::array<std::vector<Example>, 3>& pools, tensortape::Rng& rng) {
  for (Split s : world::kSplits)
    for (Case& c : bench.split(s)) {
      c.out_scope = others(pools[static_cast<int>(s)], c.subject, s == Split::train ? kSeenOutScope : kOutScope, rng);
      if (s != Split::train) c.seen_out_scope = others(pools[static_cast<int>(Split::train)], c.subject, kSeenOutScope, rng);
    }
}

// A label as the model can emit it: one space between words, none at either end. A decoded
// answer never holds more (the tokenizer drops extra spaces, remove_extra_whitespaces), so a
// label such as " Dickens", as 10 of the zsRE file's new answers are written, could never count
// as answered.
inline std::string as_emitted(const std::string& label) { return world::detail::join_words(world::detail::split_words(label)); }

inline Track zsre1k(const std::filesystem::path& file) {
  auto records = read_zsre(file).records;
  for (auto& r : records) {
    r.alt = as_emitted(r.alt);
    for (auto& answer : r.answers) answer = as_emitted(answer);
    r.loc_ans = as_emitted(r.loc_ans);
  }
  Track track{"zsre1k", {}, {}, {"zsre1k", {}, {}}};
  std::vector<const ZsreRecord*> edits;
  std::set<std::string> subjects;
  for (const auto& r : records) {
    track.knowledge.push_back({"question: " + r.src, r.answers.front(), r.subject});
    track.knowledge.push_back({"question: " + r.loc_question(), r.loc_ans});
    for (const std::string* text : {&r.src, &r.rephrase, &r.alt, &r.loc_ans})
      if (!text->empty()) track.texts.push_back(*text);
    track.texts.push_back(r.loc_question());
    track.texts.insert(track.texts.end(), r.answers.begin(), r.answers.end());
    if (!r.alt.empty() && r.alt != r.answers.front()) {
      edits.push_back(&r);
      subjects.insert(r.subject);
    }
  }
  const auto split_of = split_subjects(subjects, 0x2d5e);
  std::array<std::vector<Example>, 3> out_pools;  // each split's records' loc questions
  for (const ZsreRecord* r : edits) {
    const Split split = split_of.at(r->subject);
    Case c;
    c.subject = r->subject;
    c.edit = {"question: " + r->src, r->alt};
    c.old_target = r->answers.front();
    c.in_scope = {{"question: " + r->rephrase, r->alt}};
    c.changes = {c.edit.input};
    // A loc question is about none of the file's subjects: it carries none, so the harness never
    // drops it for an edit of its record's subject and clusters it on its own.
    out_pools[static_cast<int>(split)].push_back({"question: " + r->loc_question(), r->loc_ans});
    track.benchmark.split(split).push_back(std::move(c));
  }
  tensortape::Rng rng(0x2d5f);
  add_out_scope(track.benchmark, out_pools, rng);
  return track;
}

inline std::string truth_of(bool value) { return value ? "true" : "false"; }

// A lot sentence's fact: its affirmative wording and whether the sentence says it holds. Every
// sentence of the file is "A <subject> <verb> <object>." with a verb of five relations, negated
// as below; Antonym statements occur only as phrases ("A laurel is the opposite of  animal."),
// and the file's rules write the same triples as a negated IsA ("A laurel is not a animal."), so
// they are read as that.
struct LotFact {
  std::string affirmative;
  bool holds = true;
};

inline LotFact lot_fact(const std::string& sentence) {
  static const std::array<std::pair<std::string_view, std::string_view>, 5> negations = {{
      {" is not a ", " is a "}, {" does not have a ", " has a "}, {" is not capable of ", " is capable of "},
      {" is not part of ", " is part of "}, {" does not desire ", " desires "}}};
  for (const auto& [negated, affirmative] : negations)
    if (const auto at = sentence.find(negated); at != std::string::npos)
      return {sentence.substr(0, at) + std::string(affirmative) + sentence.substr(at + negated.size()), false};
  constexpr std::string_view opposite = " is the opposite of ";
  if (const auto at = sentence.find(opposite); at != std::string::npos) {
    const auto object = sentence.find_first_not_of(' ', at + opposite.size());
    return {sentence.substr(0, at) + " is a " + sentence.substr(object), false};
  }
  return {sentence, true};
}

// The fact a record's phrase states with its answer: (affirmative wording, value).
inline std::pair<std::string, bool> lot_phrase_fact(const std::string& phrase, bool answer) {
  const auto f = lot_fact(phrase);
  return {f.affirmative, f.holds == answer};
}

inline Track lot(const std::filesystem::path& file) {
  const auto records = read_leapofthought(file).records;
  Track track{"lot", {}, {}, {"lot", {"true", "false"}, {}}};
  auto rule_text = [](const LotTriple& t) { return "A " + t.subject + " is a " + t.object + "."; };
  std::set<std::string> edit_facts;  // affirmative wordings no pretraining example may state, either way
  for (const auto& r : records)
    if (r.implicit_rule) {
      edit_facts.insert(lot_fact(rule_text(*r.implicit_rule)).affirmative);
      edit_facts.insert(lot_fact(r.phrase).affirmative);
    }
  // The file contradicts itself on a few facts ("A plant has a cell." in one record's rules, "A
  // plant does not have a cell." in another's): each record that states a fact (in its rules or
  // its phrase with the answer) votes for a value; the majority is taught, a tie neither way.
  std::map<std::string, std::array<std::set<const LotRecord*>, 2>> votes;  // fact -> records saying false, true
  for (const auto& r : records) {
    for (const auto& rule : r.rules) {
      const auto f = lot_fact(rule);
      votes[f.affirmative][f.holds].insert(&r);
    }
    const auto [fact, value] = lot_phrase_fact(r.phrase, r.answer);
    votes[fact][value].insert(&r);
  }
  auto teachable = [&](const std::string& fact, bool value) {
    if (edit_facts.count(fact)) return false;
    const auto& v = votes.at(fact);
    return v[value].size() > v[!value].size();
  };
  std::map<std::string, bool> taught;  // fact -> value, of every knowledge example
  std::set<std::string> known;         // their texts: a fact may be taught in both its wordings
  for (const auto& r : records)
    for (const auto& rule : r.rules) {
      const auto f = lot_fact(rule);
      if (!teachable(f.affirmative, f.holds) || !known.insert(rule).second) continue;
      taught.emplace(f.affirmative, f.holds);
      track.knowledge.push_back({"claim: " + rule, "true"});
    }
  std::vector<const LotRecord*> statements;  // the records that are not edits and teach their phrase
  for (const auto& r : records) {
    if (r.implicit_rule) continue;
    const auto [fact, value] = lot_phrase_fact(r.phrase, r.answer);
    if (!teachable(fact, value)) continue;
    statements.push_back(&r);
    taught.emplace(fact, value);
    if (known.insert(r.phrase).second) track.knowledge.push_back({"claim: " + r.phrase, truth_of(r.answer), r.statement.subject});
  }

  // An edit's in-scope answer follows from its implicit rule and its property, the phrase's
  // relation and object said of the rule's object ("A wine is a alcohol." and "A alcohol is not a
  // sequence of sounds." -> "A wine is a sequence of sounds." false): an edit is kept only if the
  // base model was taught that property with the value the answer needs. The file repeats a few
  // edits word for word; each is kept once.
  std::vector<const LotRecord*> edits;
  std::set<std::string> edit_subjects;
  std::set<std::pair<std::string, std::string>> kept;
  for (const auto& r : records) {
    if (!r.implicit_rule) continue;
    const std::string subject_part = "A " + r.statement.subject + " ";
    tensortape::check(r.phrase.rfind(subject_part, 0) == 0, "editlab", "lot: record ", r.id, "'s phrase '", r.phrase,
                      "' is not about its statement's subject '", r.statement.subject, "'");
    const auto [property, value] = lot_phrase_fact("A " + r.implicit_rule->object + " " + r.phrase.substr(subject_part.size()), r.answer);
    if (const auto it = taught.find(property); it == taught.end() || it->second != value) continue;
    if (!kept.insert({rule_text(*r.implicit_rule), r.phrase}).second) continue;
    edits.push_back(&r);
    edit_subjects.insert(r.implicit_rule->subject);
  }

  // Splits: the edits' subjects 60 / 10 / 30; subjects only non-edit records are about are
  // reserved, halved between validation and test.
  const auto split_of = split_subjects(edit_subjects, 0x1e7);
  std::set<std::string> reserved;
  for (const LotRecord* r : statements)
    if (!edit_subjects.count(r->statement.subject)) reserved.insert(r->statement.subject);
  std::map<std::string, Split> reserve_split;
  {
    const std::vector<std::string> names(reserved.begin(), reserved.end());
    const auto order = world::detail::shuffled_ranks(names.size(), 0x1e8);
    for (std::size_t rank = 0; rank < names.size(); ++rank) reserve_split[names[order[rank]]] = rank % 2 ? Split::test : Split::validation;
  }
  std::array<std::vector<Example>, 3> out_pools;
  std::set<std::string> pooled;
  for (const LotRecord* r : statements) {
    const Example statement{"claim: " + r->phrase, truth_of(r->answer), r->statement.subject};
    const auto edited = split_of.find(r->statement.subject);
    const Split split = edited != split_of.end() ? edited->second : reserve_split.at(r->statement.subject);
    if (pooled.insert(statement.input).second) out_pools[static_cast<int>(split)].push_back(statement);
  }
  for (const LotRecord* r : edits) {
    Case c;
    c.subject = r->implicit_rule->subject;
    c.edit = {"claim: " + rule_text(*r->implicit_rule), "true"};
    c.old_target = "false";
    c.in_scope = {{"claim: " + r->phrase, truth_of(r->answer)}};
    track.benchmark.split(split_of.at(c.subject)).push_back(std::move(c));
  }
  tensortape::Rng rng(0x107);
  add_out_scope(track.benchmark, out_pools, rng);
  return track;
}

}  // namespace detail

// Reads the track's file from `data_dir` (the shared data folder).
inline Track load_track(const std::string& name, const std::filesystem::path& data_dir) {
  const auto file = track_file(name, data_dir);
  tensortape::check(std::filesystem::exists(file), "editlab", "track '", name, "' needs '", file.string(),
                    "' (the shared data folder; pass --data-dir)");
  return name == "zsre1k" ? detail::zsre1k(file) : detail::lot(file);
}

}  // namespace editlab::data
