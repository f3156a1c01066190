// editlab::data readers: the real zsRE and LeapOfThought files in ../shared/data (skipped when
// that folder is absent), FEVER / Wikidata5m fixtures written to the published schema, and
// malformed fixtures for the error messages and the skip mode.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "data/readers.hpp"

namespace fs = std::filesystem;
namespace ed = editlab::data;

namespace editlab_readers_test {

const fs::path kShared = EDITLAB_SHARED_DATA_DIR;
const fs::path kFixtures = EDITLAB_FIXTURES_DIR;

fs::path zsre_path() { return kShared / "zsre" / "zsre_mend_train-1k.json"; }
fs::path lot_path() {
  return kShared / "leapofthought" / "taxonomic_reasonings_training_mix_dev.jsonl";
}

#define REQUIRE_SHARED(path)                                                               \
  do {                                                                                     \
    if (!fs::exists(path))                                                                 \
      GTEST_SKIP() << "real data not found at " << (path).string()                         \
                   << " (expected ../shared/data beside the repository; not shipped in it)"; \
  } while (0)

// Counts non-blank lines, independently of the reader.
std::size_t count_nonblank_lines(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::string line;
  std::size_t n = 0;
  while (std::getline(in, line))
    if (line.find_first_not_of(" \t\r") != std::string::npos) ++n;
  return n;
}

std::string first_line(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::string line;
  std::getline(in, line);
  return line;
}

// Expects read(path) to throw tensortape::Error whose message holds every one of `parts`.
template <class Read>
void expect_error(Read read, const fs::path& path, std::initializer_list<std::string> parts) {
  try {
    read(path, ed::ReadOptions{});
    ADD_FAILURE() << "no error for " << path;
  } catch (const tensortape::Error& e) {
    const std::string msg = e.what();
    for (const auto& part : parts)
      EXPECT_NE(msg.find(part), std::string::npos) << "missing '" << part << "' in: " << msg;
  }
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}


// ---- zsRE, real file ---------------------------------------------------------------------

TEST(ZsreReal, CountsAndFirstRecordMatchTheFile) {
  REQUIRE_SHARED(zsre_path());
  std::ifstream in(zsre_path(), std::ios::binary);
  const nlohmann::json raw = nlohmann::json::parse(in);
  ASSERT_TRUE(raw.is_array());

  const auto result = ed::read_zsre(zsre_path());
  EXPECT_EQ(result.skipped, 0u);
  ASSERT_EQ(result.records.size(), raw.size());
  EXPECT_EQ(result.records.size(), 1000u);  // the README's count

  // First record against the file as parsed independently, and against literal values.
  const auto& r = result.records.front();
  const auto& j = raw.front();
  EXPECT_EQ(r.subject, j.at("subject").get<std::string>());
  EXPECT_EQ(r.src, j.at("src").get<std::string>());
  EXPECT_EQ(r.pred, j.at("pred").get<std::string>());
  EXPECT_EQ(r.rephrase, j.at("rephrase").get<std::string>());
  EXPECT_EQ(r.alt, j.at("alt").get<std::string>());
  EXPECT_EQ(r.answers, j.at("answers").get<std::vector<std::string>>());
  EXPECT_EQ(r.loc, j.at("loc").get<std::string>());
  EXPECT_EQ(r.loc_ans, j.at("loc_ans").get<std::string>());
  EXPECT_EQ(r.cond, j.at("cond").get<std::string>());
  EXPECT_EQ(r.subject, "UniFirst");
  EXPECT_EQ(r.src, "What is the product made by UniFirst?");
  EXPECT_EQ(r.alt, "unmanned aircraft");
  EXPECT_EQ(r.loc_question(), "john goodman's character in the big lebowski");

  // Last record too, so an off-by-one in the loop would show.
  EXPECT_EQ(result.records.back().src, raw.back().at("src").get<std::string>());
  EXPECT_EQ(result.records.back().loc_ans, raw.back().at("loc_ans").get<std::string>());
}

TEST(ZsreReal, FieldsArePopulated) {
  REQUIRE_SHARED(zsre_path());
  const auto result = ed::read_zsre(zsre_path());
  std::size_t empty_alt = 0;
  for (const auto& r : result.records) {
    EXPECT_FALSE(r.subject.empty());
    EXPECT_FALSE(r.src.empty());
    EXPECT_FALSE(r.rephrase.empty());
    EXPECT_FALSE(r.pred.empty());
    EXPECT_FALSE(r.loc.empty());
    EXPECT_FALSE(r.loc_ans.empty());
    EXPECT_FALSE(r.answers.empty());
    EXPECT_TRUE(contains(r.loc, "nq question: ")) << r.loc;
    // cond is "pred >> alt || src"
    EXPECT_EQ(r.cond, r.pred + " >> " + r.alt + " || " + r.src);
    if (r.alt.empty()) ++empty_alt;
  }
  EXPECT_LE(empty_alt, 5u);  // the real file has a couple of empty alts; not many
}

// ---- LeapOfThought, real file ------------------------------------------------------------

TEST(LotReal, CountsAndFirstRecordMatchTheFile) {
  REQUIRE_SHARED(lot_path());
  const auto result = ed::read_leapofthought(lot_path());
  EXPECT_EQ(result.skipped, 0u);
  EXPECT_EQ(result.records.size(), count_nonblank_lines(lot_path()));
  EXPECT_EQ(result.records.size(), 1289u);  // the README's count

  const nlohmann::json j = nlohmann::json::parse(first_line(lot_path()));
  const auto& r = result.records.front();
  const auto& meta = j.at("metadata");
  EXPECT_EQ(r.id, j.at("id").get<std::string>());
  EXPECT_EQ(r.phrase, j.at("phrase").get<std::string>());
  EXPECT_EQ(r.context, j.at("context").get<std::string>());
  EXPECT_EQ(r.answer, j.at("answer").get<int>() == 1);
  EXPECT_EQ(r.statement.subject, meta.at("statement").at("subject").get<std::string>());
  EXPECT_EQ(r.statement.predicate, meta.at("statement").at("predicate").get<std::string>());
  EXPECT_EQ(r.statement.object, meta.at("statement").at("object").get<std::string>());
  EXPECT_EQ(r.statement.validity, meta.at("statement").at("validity").get<std::string>());
  EXPECT_EQ(r.property.object, meta.at("property").at("object").get<std::string>());
  EXPECT_EQ(r.property.source, meta.at("property").at("source").get<std::string>());
  EXPECT_EQ(r.rules, meta.at("rules").get<std::vector<std::string>>());
  EXPECT_EQ(r.split, meta.at("split").get<std::string>());
  ASSERT_EQ(r.implicit_rule.has_value(), meta.contains("implicit_rule"));
  EXPECT_EQ(r.distractors.has_value(), meta.contains("distractors"));
  // literal values of the first line
  EXPECT_EQ(r.phrase, "A wine is a sequence of sounds.");
  EXPECT_FALSE(r.answer);
  ASSERT_TRUE(r.implicit_rule);
  EXPECT_EQ(r.implicit_rule->subject, "wine");
  EXPECT_EQ(r.implicit_rule->predicate, "hypernym");
  EXPECT_EQ(r.implicit_rule->object, "alcohol");
}

TEST(LotReal, StructureHolds) {
  REQUIRE_SHARED(lot_path());
  const auto result = ed::read_leapofthought(lot_path());
  std::size_t with_rule = 0, with_distractors = 0, true_answers = 0;
  for (const auto& r : result.records) {
    EXPECT_FALSE(r.id.empty());
    EXPECT_FALSE(r.phrase.empty());
    EXPECT_FALSE(r.context.empty());
    EXPECT_FALSE(r.rules.empty());
    EXPECT_FALSE(r.statement.subject.empty());
    EXPECT_FALSE(r.property.subject.empty());
    EXPECT_EQ(r.split, "dev");
    // answer agrees with the statement's validity
    EXPECT_EQ(r.answer, r.statement.validity == "always true") << r.id;
    if (r.implicit_rule) {
      ++with_rule;
      // implicit rule: statement subject -hypernym-> property subject
      EXPECT_EQ(r.implicit_rule->predicate, "hypernym");
      EXPECT_EQ(r.implicit_rule->subject, r.statement.subject);
    }
    if (r.distractors) ++with_distractors;
    if (r.answer) ++true_answers;
  }
  // Both kinds occur: records with an implicit rule and records with distractors only.
  EXPECT_GT(with_rule, 0u);
  EXPECT_LT(with_rule, result.records.size());
  EXPECT_GT(with_distractors, 0u);
  EXPECT_GT(true_answers, 0u);
  EXPECT_LT(true_answers, result.records.size());
}

// ---- FEVER / Wikidata5m fixtures ---------------------------------------------------------

TEST(FeverFixture, ReadsTheKiltSchema) {
  const auto result = ed::read_fever(kFixtures / "fever_kilt_sample.jsonl");
  EXPECT_EQ(result.skipped, 0u);
  ASSERT_EQ(result.records.size(), 4u);  // 5 lines, one blank
  const auto& a = result.records[0];
  EXPECT_EQ(a.id, "75397");
  EXPECT_EQ(a.input, "Nikolaj Coster-Waldau worked with the Fox Broadcasting Company.");
  EXPECT_EQ(a.answers, std::vector<std::string>{"SUPPORTS"});
  EXPECT_TRUE(a.supports());
  EXPECT_EQ(a.prediction, "SUPPORTS");
  EXPECT_EQ(a.alternatives, std::vector<std::string>{"REFUTES"});
  ASSERT_EQ(a.filtered_rephrases.size(), 2u);
  EXPECT_EQ(a.filtered_rephrases[1], "Fox Broadcasting Company employed Nikolaj Coster-Waldau.");
  EXPECT_EQ(result.records[1].id, "150448");  // integer id
  EXPECT_EQ(result.records[1].answers.size(), 2u);
  EXPECT_FALSE(result.records[2].supports());
  EXPECT_TRUE(result.records[2].filtered_rephrases.empty());
  const auto& d = result.records[3];  // only the KILT fields
  EXPECT_TRUE(d.id.empty());
  EXPECT_TRUE(d.prediction.empty());
  EXPECT_TRUE(d.alternatives.empty());
}

TEST(Wikidata5mFixture, ReadsTheSlagSchema) {
  const auto result = ed::read_wikidata5m(kFixtures / "wikidata5m_sample.jsonl");
  EXPECT_EQ(result.skipped, 0u);
  ASSERT_EQ(result.records.size(), 4u);
  const auto& a = result.records[0];
  EXPECT_EQ(a.subject(), "Ada Lovelace");
  EXPECT_EQ(a.relation_name(), "place of birth");
  EXPECT_EQ(a.object(), "London");
  EXPECT_EQ(a.entity1.size(), 3u);
  EXPECT_EQ(a.relation.size(), 3u);
  EXPECT_EQ(a.entity2.size(), 2u);
  EXPECT_EQ(result.records[1].entity2[1], "writer");
  EXPECT_EQ(result.records[3].object(), "Asia");  // CRLF line
}

// ---- malformed records -------------------------------------------------------------------

TEST(Malformed, LotErrorsNameFileLineField) {
  const fs::path p = kFixtures / "lot_bad.jsonl";
  expect_error(ed::read_leapofthought, p, {"lot_bad.jsonl", "line 2", "invalid JSON"});

  ed::ReadOptions skip;
  skip.skip_bad_records = true;
  const auto result = ed::read_leapofthought(p, skip);
  ASSERT_EQ(result.records.size(), 2u);
  EXPECT_EQ(result.records[0].id, "good1");
  EXPECT_TRUE(result.records[0].answer);
  EXPECT_EQ(result.records[1].id, "good2");
  EXPECT_TRUE(result.records[1].answer);  // true accepted
  ASSERT_TRUE(result.records[1].distractors);
  EXPECT_TRUE(result.records[1].distractors->implicit_rule.empty());  // null list
  EXPECT_EQ(result.records[1].distractors->property.size(), 1u);
  EXPECT_FALSE(result.records[1].implicit_rule);
  EXPECT_EQ(result.skipped, 4u);
  ASSERT_EQ(result.skip_reasons.size(), 4u);
  const auto& why = result.skip_reasons;
  for (const auto& w : why) EXPECT_TRUE(contains(w, "lot_bad.jsonl")) << w;
  EXPECT_TRUE(contains(why[0], "line 2") && contains(why[0], "invalid JSON")) << why[0];
  EXPECT_TRUE(contains(why[1], "line 3") && contains(why[1], "field 'metadata.statement'") &&
              contains(why[1], "missing")) << why[1];
  EXPECT_TRUE(contains(why[2], "line 4") && contains(why[2], "field 'answer'")) << why[2];
  EXPECT_TRUE(contains(why[3], "line 5") && contains(why[3], "field 'metadata.statement.object'") &&
              contains(why[3], "expected string")) << why[3];
}

TEST(Malformed, ZsreErrorsNameFileRecordField) {
  const fs::path p = kFixtures / "zsre_bad.json";
  expect_error(ed::read_zsre, p, {"zsre_bad.json", "record 1", "field 'src'", "missing"});

  ed::ReadOptions skip;
  skip.skip_bad_records = true;
  skip.max_skip_reasons = 2;
  const auto result = ed::read_zsre(p, skip);
  ASSERT_EQ(result.records.size(), 2u);
  EXPECT_EQ(result.records[0].subject, "Kepler");
  EXPECT_EQ(result.records[1].subject, "Halley");
  EXPECT_TRUE(result.records[1].pred.empty());  // optional
  EXPECT_EQ(result.skipped, 3u);
  ASSERT_EQ(result.skip_reasons.size(), 2u);  // capped
  EXPECT_TRUE(contains(result.skip_reasons[1], "record 2") &&
              contains(result.skip_reasons[1], "field 'answers'") &&
              contains(result.skip_reasons[1], "expected array")) << result.skip_reasons[1];
}

TEST(Malformed, ZsreWholeFileErrors) {
  expect_error(ed::read_zsre, kFixtures / "wikidata5m_sample.jsonl",
               {"wikidata5m_sample.jsonl", "invalid JSON"});
  expect_error(ed::read_zsre, kFixtures / "does_not_exist.json",
               {"does_not_exist.json", "cannot open"});
}

// Issue "Hostile files and crashes", items 4 and 5: a number out of double's range escaped as
// nlohmann's out_of_range (not a tensortape::Error, and skip mode aborted the whole read), and
// whatever followed a NUL byte was silently ignored.
TEST(Malformed, HugeNumbersAndNulBytesAreBadRecords) {
  const std::string good = first_line(kFixtures / "lot_bad.jsonl");  // a valid record
  const fs::path p = fs::temp_directory_path() / "editlab_readers_hostile.jsonl";
  {
    std::ofstream out(p, std::ios::binary);
    out << good << "\n"
        << R"({"id": "huge", "answer": 1e400})" << "\n"
        << good << std::string(1, '\0') << R"({"id": "hidden"})" << "\n"
        << good << "\n";
  }
  expect_error(ed::read_leapofthought, p, {"editlab_readers_hostile.jsonl", "line 2", "invalid JSON"});
  ed::ReadOptions skip;
  skip.skip_bad_records = true;
  const auto result = ed::read_leapofthought(p, skip);
  EXPECT_EQ(result.records.size(), 2u);
  EXPECT_EQ(result.skipped, 2u);
  ASSERT_EQ(result.skip_reasons.size(), 2u);
  EXPECT_TRUE(contains(result.skip_reasons[0], "line 2") &&
              (contains(result.skip_reasons[0], "out of range") || contains(result.skip_reasons[0], "overflow")))
      << result.skip_reasons[0];
  EXPECT_TRUE(contains(result.skip_reasons[1], "line 3") && contains(result.skip_reasons[1], "NUL byte at column")) << result.skip_reasons[1];

  const fs::path z = fs::temp_directory_path() / "editlab_readers_hostile.json";
  {
    std::ofstream out(z, std::ios::binary);
    out << R"([{"subject": "a", "src": "q", "answers": ["x"], "rephrase": "r", "loc": "l", "loc_ans": "y", "alt": "z"}])"
        << std::string(1, '\0') << "garbage";
  }
  expect_error(ed::read_zsre, z, {"editlab_readers_hostile.json", "NUL byte"});
  {
    std::ofstream out(z, std::ios::binary);
    out << R"([{"subject": "a", "src": 1e400}])";
  }
  expect_error(ed::read_zsre, z, {"editlab_readers_hostile.json", "invalid JSON"});
  fs::remove(p);
  fs::remove(z);
}

// Issue "Hostile files and crashes", one rule for every reader: the dataset readers parse with
// io::parse_json, so a value nested 100000 deep or an object with a key twice is a bad record
// named as such (nlohmann alone builds both, silently keeping one of the two keys).
TEST(Malformed, DeepNestingAndDuplicateKeysAreBadRecords) {
  const std::string good = first_line(kFixtures / "lot_bad.jsonl");  // a valid record: {"id": ...}
  ASSERT_EQ(good.front(), '{');
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const fs::path p = fs::temp_directory_path() / "editlab_readers_nested.jsonl";
  {
    std::ofstream out(p, std::ios::binary);
    out << good << "\n"
        << R"({"extra": )" << deep << ", " << good.substr(1) << "\n"  // too deep
        << R"({"answer": 0, )" << good.substr(1) << "\n"               // 'answer' twice
        << good << "\n";
  }
  expect_error(ed::read_leapofthought, p, {"editlab_readers_nested.jsonl", "line 2", "nests deeper than 64 levels"});
  ed::ReadOptions skip;
  skip.skip_bad_records = true;
  const auto result = ed::read_leapofthought(p, skip);
  EXPECT_EQ(result.records.size(), 2u);
  ASSERT_EQ(result.skip_reasons.size(), 2u);
  EXPECT_TRUE(contains(result.skip_reasons[1], "line 3") && contains(result.skip_reasons[1], "a duplicate key 'answer'"))
      << result.skip_reasons[1];
  {
    std::ofstream out(p, std::ios::binary);
    out << R"({"input": "Paris is in France.", "input": "Paris is in Spain.", "output": [{"answer": "SUPPORTS"}]})" << "\n";
  }
  expect_error(ed::read_fever, p, {"line 1", "a duplicate key 'input'"});
  {
    std::ofstream out(p, std::ios::binary);
    out << R"({"entity1": ["a"], "relation": )" << deep << R"(, "entity2": ["b"]})" << "\n";
  }
  expect_error(ed::read_wikidata5m, p, {"line 1", "nests deeper than 64 levels"});

  const fs::path z = fs::temp_directory_path() / "editlab_readers_nested.json";
  const std::string record = R"({"subject": "a", "src": "q", "answers": ["x"], "rephrase": "r", "loc": "l", "loc_ans": "y", "alt": "z")";
  {
    std::ofstream out(z, std::ios::binary);
    out << "[" << record << R"(, "alt": "w"}])";
  }
  expect_error(ed::read_zsre, z, {"editlab_readers_nested.json", "a duplicate key 'alt'"});
  {
    std::ofstream out(z, std::ios::binary);
    out << "[" << record << "}, " << deep << "]";
  }
  expect_error(ed::read_zsre, z, {"editlab_readers_nested.json", "nests deeper than 64 levels"});
  fs::remove(p);
  fs::remove(z);
}

TEST(Malformed, FeverErrorsNameFileLineField) {
  const fs::path p = kFixtures / "fever_bad.jsonl";
  expect_error(ed::read_fever, p, {"fever_bad.jsonl", "line 2", "field 'output[0].answer'"});
  ed::ReadOptions skip;
  skip.skip_bad_records = true;
  const auto result = ed::read_fever(p, skip);
  ASSERT_EQ(result.records.size(), 1u);
  EXPECT_EQ(result.records[0].filtered_rephrases, std::vector<std::string>{"France contains Paris."});
  EXPECT_EQ(result.skipped, 4u);
  ASSERT_EQ(result.skip_reasons.size(), 4u);
  EXPECT_TRUE(contains(result.skip_reasons[1], "line 3") &&
              contains(result.skip_reasons[1], "field 'input'")) << result.skip_reasons[1];
  EXPECT_TRUE(contains(result.skip_reasons[2], "line 4") &&
              contains(result.skip_reasons[2], "field 'filtered_rephrases'")) << result.skip_reasons[2];
  EXPECT_TRUE(contains(result.skip_reasons[3], "line 5") &&
              contains(result.skip_reasons[3], "invalid JSON")) << result.skip_reasons[3];
}

TEST(Malformed, Wikidata5mErrorsNameFileLineField) {
  const fs::path p = kFixtures / "wikidata5m_bad.jsonl";
  expect_error(ed::read_wikidata5m, p, {"wikidata5m_bad.jsonl", "line 2", "field 'entity1'", "empty"});
  ed::ReadOptions skip;
  skip.skip_bad_records = true;
  const auto result = ed::read_wikidata5m(p, skip);
  ASSERT_EQ(result.records.size(), 1u);
  EXPECT_EQ(result.records[0].object(), "Peru");
  EXPECT_EQ(result.skipped, 4u);
  ASSERT_EQ(result.skip_reasons.size(), 4u);
  EXPECT_TRUE(contains(result.skip_reasons[1], "line 3") &&
              contains(result.skip_reasons[1], "field 'relation'") &&
              contains(result.skip_reasons[1], "expected array")) << result.skip_reasons[1];
  EXPECT_TRUE(contains(result.skip_reasons[2], "line 4") &&
              contains(result.skip_reasons[2], "expected a JSON object")) << result.skip_reasons[2];
  EXPECT_TRUE(contains(result.skip_reasons[3], "line 5") &&
              contains(result.skip_reasons[3], "field 'entity2[1]'")) << result.skip_reasons[3];
}

}  // namespace editlab_readers_test
