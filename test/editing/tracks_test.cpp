// The real-data tracks (data/tracks.hpp) on the shared zsRE and LeapOfThought files: their
// splits never share a subject, a descriptor or (lot) an implicit rule; lot teaches no edit's fact
// in either wording, no fact both ways, and every edit's premise; zsre1k's pretraining never pairs an edit's question with
// its new answer, yet holds every piece of every label as text, and its loc questions carry no
// subject; validation and test out-scope inputs are ones no editor trains on. Skipped when
// ../shared/data is absent.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "data/tracks.hpp"
#include "world/corpus.hpp"

namespace editlab_tracks_test {

namespace fs = std::filesystem;
using editlab::data::Track;
using editlab::world::Case;
using editlab::world::Example;
using editlab::world::Split;
using editlab::world::kSplits;

const fs::path kShared = EDITLAB_SHARED_DATA_DIR;

#define LOAD_TRACK(track, name)                                                                        \
  if (!fs::exists(editlab::data::track_file(name, kShared)))                                            \
    GTEST_SKIP() << "real data not found under " << kShared.string() << " (expected ../shared/data beside the repository)"; \
  const Track track = editlab::data::load_track(name, kShared)

// What the train and validation edits hold: subjects, descriptors, and lot's implicit rules.
std::set<std::string> edited_in(const Track& t, std::initializer_list<Split> splits, bool subjects) {
  std::set<std::string> out;
  for (Split s : splits)
    for (const Case& c : t.benchmark.split(s)) out.insert(subjects ? c.subject : c.edit.input);
  return out;
}

void expect_disjoint_splits(const Track& t) {
  for (Split s : kSplits) EXPECT_FALSE(t.benchmark.split(s).empty()) << editlab::world::split_name(s);
  const auto subjects = edited_in(t, {Split::train, Split::validation}, true);
  const auto descriptors = edited_in(t, {Split::train, Split::validation}, false);
  const auto train_subjects = edited_in(t, {Split::train}, true);
  for (const Case& c : t.benchmark.split(Split::test)) {
    EXPECT_EQ(subjects.count(c.subject), 0u) << t.name << ": test subject " << c.subject << " is edited in train or validation";
    EXPECT_EQ(descriptors.count(c.edit.input), 0u) << t.name << ": " << c.edit.input;
  }
  for (const Case& c : t.benchmark.split(Split::validation)) EXPECT_EQ(train_subjects.count(c.subject), 0u) << c.subject;
  // Out-scope: train cases' is what editors train on; validation and test cases' never is.
  std::set<std::string> trained;
  for (const Case& c : t.benchmark.split(Split::train))
    for (const auto& e : c.out_scope) trained.insert(e.input);
  std::size_t unseen = 0;
  for (Split s : {Split::validation, Split::test})
    for (const Case& c : t.benchmark.split(s)) {
      for (const auto& e : c.out_scope) {
        EXPECT_EQ(trained.count(e.input), 0u) << t.name << ": " << e.input << " is out-scope in training";
        EXPECT_EQ(train_subjects.count(e.subject), 0u) << e.input;
        EXPECT_NE(e.subject, c.subject) << e.input;
        ++unseen;
      }
      for (const auto& e : c.seen_out_scope) {
        if (t.name == "zsre1k") continue;  // its loc questions have no subject (their own test)
        EXPECT_EQ(train_subjects.count(e.subject), 1u) << e.input;
      }
    }
  EXPECT_GT(unseen, t.benchmark.split(Split::test).size());
}

TEST(Tracks, LotSplitsByImplicitRuleAndSubject) {
  LOAD_TRACK(lot, "lot");
  expect_disjoint_splits(lot);
  // Each implicit rule (the descriptor) belongs to one split: it has one subject.
  std::map<std::string, Split> split_of_rule;
  for (Split s : kSplits)
    for (const Case& c : lot.benchmark.split(s)) {
      const auto [it, fresh] = split_of_rule.emplace(c.edit.input, s);
      EXPECT_EQ(it->second, s) << c.edit.input << " is an edit in two splits";
    }
  EXPECT_GT(split_of_rule.size(), 200u);
}

// A lot sentence's fact and the value the sentence gives it, read word by word (another way than
// the track's lot_fact): "not" dropped, "does not have/desire" -> "has/desires", and "is the
// opposite of" (Antonym phrases) read as "is not a", as the file's rules write those triples.
std::pair<std::string, bool> fact_of(const std::string& sentence, bool says = true) {
  const auto words = editlab::world::detail::split_words(sentence);
  std::vector<std::string> out;
  bool holds = true;
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (words[i] == "not") {
      holds = false;
    } else if (words[i] == "does" && i + 2 < words.size() && words[i + 1] == "not") {
      out.push_back(words[i + 2] == "have" ? "has" : words[i + 2] + "s");
      holds = false;
      i += 2;
    } else if (words[i] == "opposite" && out.size() >= 2 && out.back() == "the" && out[out.size() - 2] == "is") {
      out.back() = "a";
      holds = false;
      ++i;  // "of"
    } else {
      out.push_back(words[i]);
    }
  }
  return {editlab::world::detail::join_words(out), holds == says};
}

std::pair<std::string, bool> fact_of_claim(const Example& e) { return fact_of(e.input.substr(std::string("claim: ").size()), e.target == "true"); }

// What the base model is taught states no edit's implicit rule or in-scope statement, in either
// wording (the file repeats 225 of the 645 in-scope statements as other records' rules, and
// writes the negations of others); it never teaches a fact both ways (the file states 43 facts
// both ways); and every edit's in-scope answer follows from its rule and a property the model was
// taught with the value that answer needs.
TEST(Tracks, LotTeachesEachFactOneWayAndNoEditsFactAndEveryEditsPremise) {
  LOAD_TRACK(lot, "lot");
  std::map<std::string, bool> taught;
  for (const auto& e : lot.knowledge) {
    const auto [fact, value] = fact_of_claim(e);
    const auto [it, fresh] = taught.emplace(fact, value);
    EXPECT_EQ(it->second, value) << fact << " is taught both ways";
  }
  std::size_t in_scope = 0;
  std::set<std::pair<std::string, std::string>> cases;
  for (Split s : kSplits)
    for (const Case& c : lot.benchmark.split(s)) {
      ASSERT_EQ(c.in_scope.size(), 1u);
      const auto& statement = c.in_scope.front();
      EXPECT_TRUE(cases.insert({c.edit.input, statement.input}).second) << c.edit.input << " with " << statement.input << " twice";
      EXPECT_EQ(taught.count(fact_of_claim(c.edit).first), 0u) << "descriptor " << c.edit.input << " is pretrained";
      EXPECT_EQ(taught.count(fact_of_claim(statement).first), 0u) << "in-scope " << statement.input << " is pretrained";
      ++in_scope;
      // "claim: A wine is a alcohol." and "claim: A wine is a sequence of sounds." -> premise "A alcohol is a sequence of sounds."
      const std::string rule_head = "claim: A " + c.subject + " is a ", statement_head = "claim: A " + c.subject + " ";
      ASSERT_EQ(c.edit.input.rfind(rule_head, 0), 0u) << c.edit.input;
      ASSERT_EQ(statement.input.rfind(statement_head, 0), 0u) << statement.input;
      const std::string object = c.edit.input.substr(rule_head.size(), c.edit.input.size() - rule_head.size() - 1);
      const auto premise = fact_of("A " + object + " " + statement.input.substr(statement_head.size()), statement.target == "true");
      const auto it = taught.find(premise.first);
      EXPECT_TRUE(it != taught.end() && it->second == premise.second)
          << statement.input << " (" << statement.target << ") needs " << premise.first << " " << premise.second << ", taught "
          << (it == taught.end() ? "not at all" : it->second ? "true" : "false");
    }
  EXPECT_GT(in_scope, 600u);  // of the file's 645 records with an implicit rule
  EXPECT_GT(lot.knowledge.size(), 1000u);
  EXPECT_TRUE(lot.texts.empty());
}

TEST(Tracks, Zsre1kSplitsBySubjectAndNeverPretrainsANewAnswer) {
  LOAD_TRACK(zsre, "zsre1k");
  expect_disjoint_splits(zsre);
  // No pretraining example pairs an edited question (or its rephrasing) with its new answer.
  std::set<std::pair<std::string, std::string>> pretrained;
  for (const auto& e : zsre.knowledge) pretrained.insert({e.input, e.target});
  std::size_t edits = 0;
  for (Split s : kSplits)
    for (const Case& c : zsre.benchmark.split(s)) {
      ++edits;
      EXPECT_EQ(pretrained.count({c.edit.input, c.edit.target}), 0u) << c.edit.input;
      for (const auto& e : c.in_scope) EXPECT_EQ(pretrained.count({e.input, e.target}), 0u) << e.input;
    }
  EXPECT_GT(edits, 900u);
}

// The out-scope loc questions are about none of the file's subjects, so they carry no subject
// (tagged with their record's, the harness dropped them whenever that record's subject was
// edited and clustered them by it); they still come from their own split's records (the train
// split's for seen_out_scope).
TEST(Tracks, Zsre1kLocQuestionsCarryNoSubjectAndComeFromTheirSplitsRecords) {
  LOAD_TRACK(zsre, "zsre1k");
  std::map<std::string, Split> split_of_subject;
  for (Split s : kSplits)
    for (const Case& c : zsre.benchmark.split(s)) split_of_subject[c.subject] = s;
  std::map<std::string, std::set<Split>> splits_of_loc;  // loc question -> the splits of the edited records that hold it
  for (const auto& r : editlab::data::read_zsre(editlab::data::track_file("zsre1k", kShared)).records)
    if (const auto it = split_of_subject.find(r.subject); it != split_of_subject.end())
      splits_of_loc["question: " + r.loc_question()].insert(it->second);
  std::size_t checked = 0;
  for (Split s : kSplits)
    for (const Case& c : zsre.benchmark.split(s)) {
      for (const auto& e : c.out_scope) {
        EXPECT_EQ(e.subject, "") << e.input;
        EXPECT_EQ(splits_of_loc[e.input].count(s), 1u) << e.input << " is not a loc question of its split's records";
        ++checked;
      }
      for (const auto& e : c.seen_out_scope) {
        EXPECT_EQ(e.subject, "") << e.input;
        EXPECT_EQ(splits_of_loc[e.input].count(Split::train), 1u) << e.input << " is not a train record's loc question";
        ++checked;
      }
    }
  EXPECT_GT(checked, 3000u);
}

// Every label is one the model can emit: a decoded answer has one space between words and none
// at either end, and the file writes some new answers with a leading space (" Dickens").
TEST(Tracks, Zsre1kLabelsAreSingleSpacedAsTheModelEmitsThem) {
  LOAD_TRACK(zsre, "zsre1k");
  const auto records = editlab::data::read_zsre(editlab::data::track_file("zsre1k", kShared)).records;
  std::set<std::string> spaced_in_file;  // new answers the file writes with spaces to spare, as the track holds them
  for (const auto& r : records)
    if (!r.alt.empty() && (r.alt.front() == ' ' || r.alt.back() == ' ' || r.alt.find("  ") != std::string::npos))
      spaced_in_file.insert(editlab::world::detail::join_words(editlab::world::detail::split_words(r.alt)));
  ASSERT_GE(spaced_in_file.size(), 5u) << "the file no longer holds the labels this test is about";
  const auto single_spaced = [](const std::string& label) {
    return !label.empty() && label.front() != ' ' && label.back() != ' ' && label.find("  ") == std::string::npos;
  };
  std::size_t labels = 0, respaced_edits = 0;
  for (Split s : kSplits)
    for (const Case& c : zsre.benchmark.split(s)) {
      std::vector<std::string> targets = {c.edit.target, c.old_target};
      for (const auto* set : {&c.in_scope, &c.out_scope, &c.seen_out_scope})
        for (const auto& e : *set) targets.push_back(e.target);
      for (const auto& target : targets) {
        ++labels;
        EXPECT_TRUE(single_spaced(target)) << "'" << target << "' of " << c.edit.input;
      }
      respaced_edits += spaced_in_file.count(c.edit.target);
    }
  for (const auto& e : zsre.knowledge) EXPECT_TRUE(single_spaced(e.target)) << "'" << e.target << "' of " << e.input;
  EXPECT_GT(labels, 3000u);
  EXPECT_GE(respaced_edits, spaced_in_file.size());  // those records are edits still, with their label respaced
}

// Every word of every label (new answers, out-scope answers) is a word of some text the base
// model learns by span corruption, and span corruption makes each word of a text a target.
TEST(Tracks, Zsre1kPretrainingTextHoldsEveryPieceOfEveryLabel) {
  LOAD_TRACK(zsre, "zsre1k");
  std::set<std::string> words;
  for (const auto& text : zsre.texts)
    for (const auto& w : editlab::world::detail::split_words(text)) words.insert(w);
  std::size_t labels = 0;
  for (Split s : kSplits)
    for (const Case& c : zsre.benchmark.split(s)) {
      std::vector<std::string> targets = {c.edit.target};
      for (const auto* set : {&c.in_scope, &c.out_scope, &c.seen_out_scope})
        for (const auto& e : *set) targets.push_back(e.target);
      for (const auto& target : targets) {
        ++labels;
        for (const auto& w : editlab::world::detail::split_words(target)) EXPECT_EQ(words.count(w), 1u) << w << " of " << target;
      }
    }
  EXPECT_GT(labels, 3000u);
  // A new answer stands alone in the texts, never inside its question.
  const auto& c = zsre.benchmark.split(Split::test).front();
  EXPECT_NE(std::find(zsre.texts.begin(), zsre.texts.end(), c.edit.target), zsre.texts.end());
}

TEST(Tracks, SpanCorruptionBlanksOneToThreeWordsAndCoversEveryWord) {
  const std::string text = "What is the product made by UniFirst?";
  const auto words = editlab::world::detail::split_words(text);
  std::set<std::string> targets_seen;
  for (std::uint64_t seed = 0; seed < 400; ++seed) {
    const Example e = editlab::world::span_corruption(text, seed);
    ASSERT_EQ(e.input.rfind("fill: ", 0), 0u) << e.input;
    const auto span = editlab::world::detail::split_words(e.target);
    ASSERT_GE(span.size(), 1u);
    ASSERT_LE(span.size(), 3u);
    // Putting the span back where the blank is gives the text.
    std::string restored = e.input.substr(6);
    const auto blank = restored.find('_');
    ASSERT_NE(blank, std::string::npos) << e.input;
    restored.replace(blank, 1, e.target);
    EXPECT_EQ(restored, text);
    for (const auto& w : span) targets_seen.insert(w);
    EXPECT_EQ(editlab::world::span_corruption(text, seed).input, e.input) << "deterministic in the seed";
  }
  EXPECT_EQ(targets_seen, std::set<std::string>(words.begin(), words.end()));
  EXPECT_EQ(editlab::world::span_corruption("aircraft", 3).target, "aircraft");
}

}  // namespace editlab_tracks_test
