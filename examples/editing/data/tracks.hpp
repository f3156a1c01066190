// editlab::data — the two real-data tracks, built from the shared files (never copied in):
//
//   zsre1k  zsre/zsre_mend_train-1k.json: the base model learns each src question's gold answer
//           and each loc question's answer; the edits are src -> alt, in-scope rephrase -> alt,
//           out-scope loc -> loc_ans. Records with an empty alt are left out.
//   lot     leapofthought/taxonomic_reasonings_training_mix_dev.jsonl: the edits are the records
//           with an implicit rule ("A sake is a alcohol." -> true); in-scope is the record's
//           statement with its label (entailed through the rule); out-scope are other records'
//           statements. The base model learns every rule sentence of the file except the edits'
//           implicit rules, and the statements of the records that are not edits.
//
//   auto track = editlab::data::load_track("zsre1k", "../shared/data");
//   track.knowledge      // pretraining examples (input -> target)
//   track.benchmark      // splits of edit cases, as the world's benchmarks
//
// Splits: 60 / 10 / 30 % of the edit records, shuffled with a fixed seed.
#pragma once

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "data/readers.hpp"
#include "world/benchmarks.hpp"

namespace editlab::data {

using world::Benchmark;
using world::Case;
using world::Example;
using world::Split;

struct Track {
  std::string name;
  std::vector<Example> knowledge;  // what the base model is pretrained on
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

// `count` examples drawn from `pool`, skipping the case's own index.
inline std::vector<Example> others(const std::vector<Example>& pool, std::size_t self, int count, tensortape::Rng& rng) {
  std::vector<Example> out;
  for (int attempt = 0; static_cast<int>(out.size()) < count && attempt < 100 && pool.size() > 1; ++attempt) {
    const std::size_t i = rng.below(pool.size());
    if (i != self) out.push_back(pool[i]);
  }
  return out;
}

inline Track zsre1k(const std::filesystem::path& file) {
  const auto records = read_zsre(file).records;
  Track track{"zsre1k", {}, {"zsre1k", {}, {}}};
  std::vector<const ZsreRecord*> edits;
  std::vector<Example> loc_examples;
  for (const auto& r : records) {
    track.knowledge.push_back({"question: " + r.src, r.answers.front(), r.subject});
    track.knowledge.push_back({"question: " + r.loc_question(), r.loc_ans});
    if (!r.alt.empty() && r.alt != r.answers.front()) edits.push_back(&r);
  }
  const auto splits = world::assign_splits(edits.size(), 0x2d5e);
  for (std::size_t i = 0; i < edits.size(); ++i) {
    const ZsreRecord& r = *edits[i];
    Case c;
    c.subject = r.subject;
    c.edit = {"question: " + r.src, r.alt};
    c.old_target = r.answers.front();
    c.in_scope = {{"question: " + r.rephrase, r.alt}};
    c.out_scope = {{"question: " + r.loc_question(), r.loc_ans}};
    track.benchmark.split(splits[i]).push_back(std::move(c));
  }
  return track;
}

inline std::string truth_of(bool value) { return value ? "true" : "false"; }

inline Track lot(const std::filesystem::path& file) {
  const auto records = read_leapofthought(file).records;
  Track track{"lot", {}, {"lot", {"true", "false"}, {}}};
  auto rule_text = [](const LotTriple& t) { return "A " + t.subject + " is a " + t.object + "."; };
  std::set<std::string> edit_rules;
  std::vector<const LotRecord*> edits;
  std::vector<Example> statements;  // of the records that are not edits: out-scope pool
  for (const auto& r : records) {
    if (r.implicit_rule) {
      edit_rules.insert(rule_text(*r.implicit_rule));
      edits.push_back(&r);
    } else {
      statements.push_back({"claim: " + r.phrase, truth_of(r.answer), r.statement.subject});
    }
  }
  std::set<std::string> known;
  for (const auto& r : records)
    for (const auto& rule : r.rules)
      if (!edit_rules.count(rule) && known.insert(rule).second) track.knowledge.push_back({"claim: " + rule, "true"});
  track.knowledge.insert(track.knowledge.end(), statements.begin(), statements.end());

  tensortape::Rng rng(0x107);
  const auto splits = world::assign_splits(edits.size(), 0x1e7);
  for (std::size_t i = 0; i < edits.size(); ++i) {
    const LotRecord& r = *edits[i];
    Case c;
    c.subject = r.implicit_rule->subject;
    c.edit = {"claim: " + rule_text(*r.implicit_rule), "true"};
    c.old_target = "false";
    c.in_scope = {{"claim: " + r.phrase, truth_of(r.answer)}};
    for (const auto& e : others(statements, statements.size(), 2, rng))
      if (e.subject != c.subject) c.out_scope.push_back(e);
    track.benchmark.split(splits[i]).push_back(std::move(c));
  }
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
