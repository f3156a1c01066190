// editlab::data — readers for the real editing data sets, returning plain structs.
//
//   auto zsre = editlab::data::read_zsre("../shared/data/zsre/zsre_mend_train-1k.json");
//   for (const auto& r : zsre.records) use(r.src, r.alt, r.rephrase, r.loc, r.loc_ans);
//
//   editlab::data::ReadOptions opt;
//   opt.skip_bad_records = true;            // otherwise the first bad record throws
//   auto lot = editlab::data::read_leapofthought(path, opt);
//   lot.skipped, lot.skip_reasons           // how many were dropped, and why (the first few)
//
// Formats (the field lists below are the ones each reader relies on; other keys are ignored):
//
//  * zsRE, MEND / EasyEdit edit format: ONE JSON array of objects (the 1k real file uses CRLF
//    line ends and 4-space indentation; neither matters). Each object:
//      subject   string           the entity the question is about
//      src       string           the question (the edit input)
//      pred      string, optional a model's answer before editing
//      rephrase  string           a paraphrase of src (in-scope example)
//      alt       string           the new answer to edit in (may be "" in the real data)
//      answers   [string]         gold answers (at least one)
//      loc       string           an unrelated NQ question, prefixed "nq question: " (out-scope)
//      loc_ans   string           its answer
//      cond      string, optional "pred >> alt || src"
//    Errors name the record by its 0-based index in the array.
//
//  * LeapOfThought, SLAG format: JSON lines, one object per line:
//      id        string
//      phrase    string   the statement as text ("A wine is a sequence of sounds.")
//      context   string   the rules joined by spaces
//      answer    0 / 1    (true / false are accepted too)
//      metadata  object:
//        statement      triple {subject, predicate, object, validity}
//        property       triple {subject, predicate, object, source, validity}
//        implicit_rule  triple, optional (about half the records lack it)
//        rules          [string]
//        split          string, optional
//        distractors    object, optional: {implicit_rule?, property?, statement?}, each a list
//                       of triples; a list may be null in the data and reads as empty.
//    A triple's "source" is optional everywhere.
//
//  * FEVER, MEND "augmented KILT" format (KILT fever-{train,dev}-kilt.jsonl records with the
//    fields MEND / KnowledgeEditor add). JSON lines, one object per line:
//      id                  string or integer, optional
//      input               string   the claim
//      output              [ {answer: "SUPPORTS" | "REFUTES", provenance?: [...]} , ... ]
//                          at least one element; KILT's FEVER has no NOT ENOUGH INFO class
//      prediction          string, optional   a model's label before editing
//      alternatives        [string], optional the flipped label(s) to edit in
//      filtered_rephrases  [string], optional paraphrases of the claim
//    No real file is shipped; the tests use fixtures written to this schema.
//
//  * Wikidata5m, SLAG format (data/Wikidata5m/filtered_wikidata5m_transductive_*.jsonl):
//    JSON lines, one triple per line, each part given as its list of aliases, first = canonical:
//      entity1   [string]  subject aliases (non-empty)
//      relation  [string]  relation name and its paraphrases (non-empty)
//      entity2   [string]  all acceptable objects for (entity1, relation) (non-empty)
//    No real file is shipped; the tests use fixtures written to this schema.
//
// Every malformed record raises tensortape::Error naming the reader, the file, where in it
// (line N, 1-based, for JSON lines; record index N, 0-based, for a JSON array) and the field:
//   "editlab::data::read_zsre: f.json: record 3: field 'answers': expected array, got string"
//   "editlab::data::read_leapofthought: f.jsonl: line 7: field 'metadata.statement': missing"
//   "editlab::data::read_fever: f.jsonl: line 2: invalid JSON: ..."
// JSON is read by tensortape::io::parse_json, under the rules of every reader of the library: a
// NUL byte, nesting deeper than 64 levels or a duplicate key in an object is invalid too.
// With ReadOptions::skip_bad_records the record is dropped instead and counted. A file that
// cannot be opened, or a zsRE file that is not one valid JSON array, always throws.
#pragma once

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tensortape/core/error.hpp"
#include "tensortape/io/json_text.hpp"

namespace editlab::data {

struct ReadOptions {
  bool skip_bad_records = false;    // drop malformed records instead of throwing
  std::size_t max_skip_reasons = 5;  // how many skip messages to keep in ReadResult
};

template <class Record>
struct ReadResult {
  std::vector<Record> records;
  std::size_t skipped = 0;                // malformed records dropped (skip_bad_records only)
  std::vector<std::string> skip_reasons;  // the first max_skip_reasons of them, as error text
};

// ---- zsRE ----------------------------------------------------------------------------------

struct ZsreRecord {
  std::string subject;
  std::string src;       // question
  std::string pred;      // "" when absent
  std::string rephrase;  // in-scope paraphrase of src
  std::string alt;       // new answer
  std::vector<std::string> answers;
  std::string loc;  // out-scope question, with its "nq question: " prefix as in the file
  std::string loc_ans;
  std::string cond;  // "" when absent

  // loc without the "nq question: " prefix (unchanged when there is none).
  std::string loc_question() const {
    static constexpr std::string_view prefix = "nq question: ";
    if (loc.compare(0, prefix.size(), prefix) == 0) return loc.substr(prefix.size());
    return loc;
  }
};

// ---- LeapOfThought -------------------------------------------------------------------------

struct LotTriple {
  std::string subject;
  std::string predicate;  // "/r/IsA", "hypernym", "meronym", ...
  std::string object;
  std::string validity;  // "always true" / "never true"
  std::string source;    // "" when absent
};

struct LotDistractors {
  std::vector<LotTriple> implicit_rule;
  std::vector<LotTriple> property;
  std::vector<LotTriple> statement;
};

struct LotRecord {
  std::string id;
  std::string phrase;
  std::string context;
  bool answer = false;
  LotTriple statement;
  LotTriple property;
  std::optional<LotTriple> implicit_rule;
  std::vector<std::string> rules;
  std::string split;                         // "" when absent
  std::optional<LotDistractors> distractors;  // absent when the record has none
};

// ---- FEVER ---------------------------------------------------------------------------------

struct FeverRecord {
  std::string id;     // "" when absent; an integer id is written in decimal
  std::string input;  // the claim
  std::vector<std::string> answers;  // output[].answer, "SUPPORTS" / "REFUTES"
  std::string prediction;            // "" when absent
  std::vector<std::string> alternatives;
  std::vector<std::string> filtered_rephrases;

  bool supports() const { return answers.front() == "SUPPORTS"; }  // the gold label as a bool
};

// ---- Wikidata5m ----------------------------------------------------------------------------

struct Wikidata5mRecord {
  std::vector<std::string> entity1;   // aliases, [0] canonical
  std::vector<std::string> relation;  // names, [0] canonical
  std::vector<std::string> entity2;   // acceptable objects, [0] canonical

  const std::string& subject() const { return entity1.front(); }
  const std::string& relation_name() const { return relation.front(); }
  const std::string& object() const { return entity2.front(); }
};

namespace detail {

// Thrown while parsing one record; the driver adds reader, file and position.
struct BadField {
  std::string field;  // dotted path, "" for the record as a whole
  std::string problem;
};

inline const char* type_name(const nlohmann::json& j) { return j.type_name(); }

inline const nlohmann::json& require(const nlohmann::json& obj, const std::string& key,
                                     const std::string& path) {
  if (!obj.is_object()) throw BadField{path.empty() ? "(record)" : path, std::string("expected object, got ") + type_name(obj)};
  auto it = obj.find(key);
  const std::string full = path.empty() ? key : path + "." + key;
  if (it == obj.end()) throw BadField{full, "missing"};
  return *it;
}

inline std::string join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

inline std::string as_string(const nlohmann::json& v, const std::string& field) {
  if (!v.is_string()) throw BadField{field, std::string("expected string, got ") + type_name(v)};
  return v.get<std::string>();
}

inline std::string req_string(const nlohmann::json& obj, const std::string& key,
                              const std::string& path = "") {
  return as_string(require(obj, key, path), join(path, key));
}

inline std::string opt_string(const nlohmann::json& obj, const std::string& key,
                              const std::string& path = "") {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return {};
  return as_string(*it, join(path, key));
}

inline std::vector<std::string> as_string_list(const nlohmann::json& v, const std::string& field,
                                               bool non_empty) {
  if (!v.is_array()) throw BadField{field, std::string("expected array, got ") + type_name(v)};
  if (non_empty && v.empty()) throw BadField{field, "empty array"};
  std::vector<std::string> out;
  out.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i)
    out.push_back(as_string(v[i], field + "[" + std::to_string(i) + "]"));
  return out;
}

inline std::vector<std::string> req_string_list(const nlohmann::json& obj, const std::string& key,
                                                bool non_empty, const std::string& path = "") {
  return as_string_list(require(obj, key, path), join(path, key), non_empty);
}

inline std::vector<std::string> opt_string_list(const nlohmann::json& obj, const std::string& key,
                                                const std::string& path = "") {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return {};
  return as_string_list(*it, join(path, key), false);
}

inline void require_object(const nlohmann::json& v, const std::string& field) {
  if (!v.is_object()) throw BadField{field, std::string("expected object, got ") + type_name(v)};
}

inline std::string format(const char* reader, const std::filesystem::path& file,
                          const std::string& where, const std::string& field,
                          const std::string& problem) {
  std::ostringstream out;
  out << reader << ": " << file.string() << ": " << where << ": ";
  if (!field.empty()) out << "field '" << field << "': ";
  out << problem;
  return out.str();
}

// Records one bad record: throws, or counts it when skipping.
template <class Record>
void bad_record(const ReadOptions& opt, ReadResult<Record>& result, std::string message) {
  if (!opt.skip_bad_records) throw tensortape::Error(message);
  ++result.skipped;
  if (result.skip_reasons.size() < opt.max_skip_reasons)
    result.skip_reasons.push_back(std::move(message));
}

inline std::ifstream open_or_throw(const char* reader, const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw tensortape::Error(std::string(reader) + ": " + file.string() + ": cannot open file");
  return in;
}

// JSON lines: one object per non-blank line; '\r' before '\n' and a leading UTF-8 BOM are
// tolerated. parse(json) -> Record, throwing BadField.
template <class Record, class Parse>
ReadResult<Record> read_jsonl(const char* reader, const std::filesystem::path& file,
                              const ReadOptions& opt, Parse parse) {
  std::ifstream in = open_or_throw(reader, file);
  ReadResult<Record> result;
  std::string line;
  std::size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_no == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = "line " + std::to_string(line_no);
    if (const auto nul = line.find('\0'); nul != std::string::npos) {  // nothing after it may pass unread
      bad_record(opt, result, format(reader, file, where, "", "a NUL byte at column " + std::to_string(nul + 1)));
      continue;
    }
    nlohmann::json j;
    try {
      j = tensortape::io::parse_json(line, "");
    } catch (const tensortape::Error& e) {  // invalid JSON, nested too deep, or a duplicate key
      bad_record(opt, result, format(reader, file, where, "", e.what()));
      continue;
    }
    try {
      if (!j.is_object()) throw BadField{"", std::string("expected a JSON object, got ") + type_name(j)};
      result.records.push_back(parse(j));
    } catch (const BadField& b) {
      bad_record(opt, result, format(reader, file, where, b.field, b.problem));
    }
  }
  return result;
}

inline ZsreRecord parse_zsre(const nlohmann::json& j) {
  ZsreRecord r;
  r.subject = req_string(j, "subject");
  r.src = req_string(j, "src");
  r.pred = opt_string(j, "pred");
  r.rephrase = req_string(j, "rephrase");
  r.alt = req_string(j, "alt");
  r.answers = req_string_list(j, "answers", /*non_empty=*/true);
  r.loc = req_string(j, "loc");
  r.loc_ans = req_string(j, "loc_ans");
  r.cond = opt_string(j, "cond");
  return r;
}

inline LotTriple as_triple(const nlohmann::json& v, const std::string& field) {
  require_object(v, field);
  LotTriple t;
  t.subject = req_string(v, "subject", field);
  t.predicate = req_string(v, "predicate", field);
  t.object = req_string(v, "object", field);
  t.validity = req_string(v, "validity", field);
  t.source = opt_string(v, "source", field);
  return t;
}

inline std::vector<LotTriple> opt_triple_list(const nlohmann::json& obj, const std::string& key,
                                              const std::string& path) {
  auto it = obj.find(key);
  const std::string field = join(path, key);
  if (it == obj.end() || it->is_null()) return {};
  if (!it->is_array()) throw BadField{field, std::string("expected array, got ") + type_name(*it)};
  std::vector<LotTriple> out;
  for (std::size_t i = 0; i < it->size(); ++i)
    out.push_back(as_triple((*it)[i], field + "[" + std::to_string(i) + "]"));
  return out;
}

inline LotRecord parse_lot(const nlohmann::json& j) {
  LotRecord r;
  r.id = req_string(j, "id");
  r.phrase = req_string(j, "phrase");
  r.context = req_string(j, "context");
  const nlohmann::json& answer = require(j, "answer", "");
  if (answer.is_boolean()) {
    r.answer = answer.get<bool>();
  } else if (answer.is_number_integer() && (answer.get<long long>() == 0 || answer.get<long long>() == 1)) {
    r.answer = answer.get<long long>() == 1;
  } else {
    throw BadField{"answer", std::string("expected 0 or 1, got ") +
                                 (answer.is_number_integer() ? answer.dump() : type_name(answer))};
  }
  const nlohmann::json& meta = require(j, "metadata", "");
  require_object(meta, "metadata");
  r.statement = as_triple(require(meta, "statement", "metadata"), "metadata.statement");
  r.property = as_triple(require(meta, "property", "metadata"), "metadata.property");
  if (auto it = meta.find("implicit_rule"); it != meta.end() && !it->is_null())
    r.implicit_rule = as_triple(*it, "metadata.implicit_rule");
  r.rules = req_string_list(meta, "rules", /*non_empty=*/false, "metadata");
  r.split = opt_string(meta, "split", "metadata");
  if (auto it = meta.find("distractors"); it != meta.end() && !it->is_null()) {
    require_object(*it, "metadata.distractors");
    LotDistractors d;
    d.implicit_rule = opt_triple_list(*it, "implicit_rule", "metadata.distractors");
    d.property = opt_triple_list(*it, "property", "metadata.distractors");
    d.statement = opt_triple_list(*it, "statement", "metadata.distractors");
    r.distractors = std::move(d);
  }
  return r;
}

inline FeverRecord parse_fever(const nlohmann::json& j) {
  FeverRecord r;
  if (auto it = j.find("id"); it != j.end() && !it->is_null()) {
    if (it->is_string()) r.id = it->get<std::string>();
    else if (it->is_number_integer()) r.id = it->dump();
    else throw BadField{"id", std::string("expected string or integer, got ") + type_name(*it)};
  }
  r.input = req_string(j, "input");
  const nlohmann::json& output = require(j, "output", "");
  if (!output.is_array()) throw BadField{"output", std::string("expected array, got ") + type_name(output)};
  if (output.empty()) throw BadField{"output", "empty array"};
  for (std::size_t i = 0; i < output.size(); ++i) {
    const std::string field = "output[" + std::to_string(i) + "]";
    require_object(output[i], field);
    std::string answer = req_string(output[i], "answer", field);
    if (answer != "SUPPORTS" && answer != "REFUTES")
      throw BadField{field + ".answer", "expected \"SUPPORTS\" or \"REFUTES\", got \"" + answer + "\""};
    r.answers.push_back(std::move(answer));
  }
  r.prediction = opt_string(j, "prediction");
  r.alternatives = opt_string_list(j, "alternatives");
  r.filtered_rephrases = opt_string_list(j, "filtered_rephrases");
  return r;
}

inline Wikidata5mRecord parse_wikidata5m(const nlohmann::json& j) {
  Wikidata5mRecord r;
  r.entity1 = req_string_list(j, "entity1", /*non_empty=*/true);
  r.relation = req_string_list(j, "relation", /*non_empty=*/true);
  r.entity2 = req_string_list(j, "entity2", /*non_empty=*/true);
  return r;
}

}  // namespace detail

// zsRE, MEND/EasyEdit format: one JSON array.
inline ReadResult<ZsreRecord> read_zsre(const std::filesystem::path& file,
                                        const ReadOptions& opt = {}) {
  static constexpr const char* reader = "editlab::data::read_zsre";
  std::ifstream in = detail::open_or_throw(reader, file);
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  const nlohmann::json all = tensortape::io::parse_json(text, std::string(reader) + ": " + file.string() + ": ");
  if (!all.is_array())
    throw tensortape::Error(std::string(reader) + ": " + file.string() +
                            ": expected a JSON array of records, got " + all.type_name());
  ReadResult<ZsreRecord> result;
  result.records.reserve(all.size());
  for (std::size_t i = 0; i < all.size(); ++i) {
    try {
      if (!all[i].is_object()) throw detail::BadField{"", std::string("expected a JSON object, got ") + all[i].type_name()};
      result.records.push_back(detail::parse_zsre(all[i]));
    } catch (const detail::BadField& b) {
      detail::bad_record(opt, result, detail::format(reader, file, "record " + std::to_string(i), b.field, b.problem));
    }
  }
  return result;
}

// LeapOfThought, SLAG format: JSON lines.
inline ReadResult<LotRecord> read_leapofthought(const std::filesystem::path& file,
                                                const ReadOptions& opt = {}) {
  return detail::read_jsonl<LotRecord>("editlab::data::read_leapofthought", file, opt, detail::parse_lot);
}

// FEVER, MEND augmented-KILT format: JSON lines.
inline ReadResult<FeverRecord> read_fever(const std::filesystem::path& file,
                                          const ReadOptions& opt = {}) {
  return detail::read_jsonl<FeverRecord>("editlab::data::read_fever", file, opt, detail::parse_fever);
}

// Wikidata5m, SLAG format: JSON lines.
inline ReadResult<Wikidata5mRecord> read_wikidata5m(const std::filesystem::path& file,
                                                    const ReadOptions& opt = {}) {
  return detail::read_jsonl<Wikidata5mRecord>("editlab::data::read_wikidata5m", file, opt, detail::parse_wikidata5m);
}

}  // namespace editlab::data
