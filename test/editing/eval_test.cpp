// The evaluation harness of issue 5: ES / DD / accuracy drop on hand-made predictions, the
// out-scope filter, batch drawing, evaluate() driving a fake editor with exactly computable
// scores, the JSON-lines results file and the Markdown tables.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "eval/editor.hpp"
#include "eval/harness.hpp"
#include "eval/metrics.hpp"
#include "eval/report.hpp"
#include "scratch.hpp"

namespace {

using namespace editlab::eval;
using editlab::world::Split;
namespace fs = std::filesystem;

// "s7" (written so, not as "s" + std::to_string(7), which trips GCC 12's -Wrestrict false positive).
std::string numbered(const std::string& prefix, std::size_t i) { return prefix + std::to_string(i); }

Example ex(const std::string& input, const std::string& target, const std::string& subject = "") {
  return Example{input, target, subject};
}

// ---- Metrics ---------------------------------------------------------------------------------

TEST(Metrics, EditSuccessIsExactMatchWithTheNewLabel) {
  const std::vector<Example> in = {ex("q1", "Paris"), ex("q2", "Rome"), ex("q3", "Oslo"), ex("q4", "true")};
  // "paris" and "Rome " differ from the label: exact string match only.
  EXPECT_DOUBLE_EQ(edit_success({"Paris", "Rome ", "Oslo", "true"}, in), 0.75);
  EXPECT_DOUBLE_EQ(edit_success({"paris", "Rome", "Oslo", "false"}, in), 0.5);
  EXPECT_THROW(edit_success({"Paris"}, in), tensortape::Error);
  EXPECT_TRUE(std::isnan(edit_success({}, {})));
}

TEST(Metrics, DrawdownComparesWithTheBaseModelNotTheGoldLabel) {
  const std::vector<Example> out = {ex("a", "gold-a"), ex("b", "gold-b"), ex("c", "gold-c"), ex("d", "gold-d"),
                                    ex("e", "gold-e")};
  // The base gets a and b right, c, d and e wrong.
  const std::vector<std::string> base = {"gold-a", "gold-b", "wrong-c", "wrong-d", "wrong-e"};
  // Under the edit: a unchanged, b changed, c unchanged (still wrong), d changed to the gold label,
  // e changed to another wrong answer.
  const std::vector<std::string> edited = {"gold-a", "other-b", "wrong-c", "gold-d", "wrong-e2"};
  // Changed vs base: b, d, e -> 3/5. Against gold it would be a, c... (4/5 wrong answers... ) — not it.
  EXPECT_DOUBLE_EQ(drawdown(edited, base), 0.6);
  // Base accuracy 2/5, edited accuracy 2/5 (a and d): no accuracy drop, though DD is 0.6.
  EXPECT_DOUBLE_EQ(accuracy(base, out), 0.4);
  EXPECT_DOUBLE_EQ(accuracy(edited, out), 0.4);
  EXPECT_DOUBLE_EQ(accuracy_drop(base, edited, out), 0.0);
  const std::vector<std::string> worse = {"x", "gold-b", "wrong-c", "wrong-d", "wrong-e"};
  EXPECT_DOUBLE_EQ(accuracy_drop(base, worse, out), 0.2);
  EXPECT_DOUBLE_EQ(drawdown(worse, base), 0.2);
  EXPECT_DOUBLE_EQ(drawdown(base, base), 0.0);
  EXPECT_THROW(drawdown({"x"}, base), tensortape::Error);
}

TEST(Metrics, MeanAndStandardErrorAsComputedByHand) {
  // mean 0.7; deviations -0.2, 0, 0.2; sample variance 0.08 / 2 = 0.04; sd 0.2; se 0.2 / sqrt(3).
  const MeanSe a = mean_and_se({0.5, 0.7, 0.9});
  EXPECT_NEAR(a.mean, 0.7, 1e-12);
  EXPECT_NEAR(a.se, 0.2 / std::sqrt(3.0), 1e-12);
  EXPECT_NEAR(a.se, 0.11547005383792516, 1e-12);
  EXPECT_EQ(a.n, 3);
  // Two draws 0 and 1: sd = sqrt(0.5), se = sqrt(0.5) / sqrt(2) = 0.5.
  EXPECT_NEAR(mean_and_se({0.0, 1.0}).se, 0.5, 1e-12);
  // One draw: standard error 0.
  const MeanSe one = mean_and_se({0.42});
  EXPECT_DOUBLE_EQ(one.mean, 0.42);
  EXPECT_DOUBLE_EQ(one.se, 0.0);
  // NaN draws (nothing measured) are left out; none left: NaN.
  const MeanSe some = mean_and_se({0.5, std::nan(""), 0.9});
  EXPECT_NEAR(some.mean, 0.7, 1e-12);
  EXPECT_NEAR(some.se, 0.2, 1e-12);  // sd sqrt(0.08) / sqrt(2)
  EXPECT_EQ(some.n, 2);
  EXPECT_TRUE(std::isnan(mean_and_se({}).mean));
  EXPECT_EQ(mean_and_se({std::nan("")}).n, 0);
}

Case make_case(const std::string& subject, std::vector<Example> out_scope, std::vector<Example> hard = {}) {
  Case c;
  c.subject = subject;
  c.edit = ex("edit " + subject, "new " + subject);
  c.old_target = "old " + subject;
  c.in_scope = {ex("rephrase " + subject, "new " + subject)};
  c.out_scope = std::move(out_scope);
  c.hard_out_scope = std::move(hard);
  return c;
}

TEST(Metrics, OutScopeDropsExamplesAboutAnEditedSubject) {
  const std::vector<Case> batch = {
      make_case("Ann", {ex("where is Bob", "X", "Bob"), ex("where is Cid", "Y", "Cid")}),
      make_case("Bob", {ex("where is Ann", "Z", "Ann"), ex("where is Dan", "W", "Dan"),
                        ex("where is Cid", "Y", "Cid")}),  // a repeat of Ann's: counted once
  };
  const auto out = out_scope_of(batch);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].input, "where is Cid");
  EXPECT_EQ(out[1].input, "where is Dan");
  // Alone, Ann's case keeps its example about Bob.
  EXPECT_EQ(out_scope_of({batch[0]}).size(), 2u);
  // An out-scope input that another case edits (its descriptor or an in-scope input) is dropped.
  const auto clash = make_case("Eve", {ex("rephrase Ann", "old", "Fay"), ex("edit Ann", "old", "Fay"),
                                       ex("fine", "ok", "Fay")});
  const auto out2 = out_scope_of({batch[0], clash});
  ASSERT_EQ(out2.size(), 3u);  // Bob, Cid, fine
  EXPECT_EQ(out2[2].input, "fine");
  EXPECT_EQ(in_scope_of(batch).size(), 2u);
}

TEST(Metrics, HardOutScopeKeepsTheEditedSubject) {
  const std::vector<Case> batch = {
      make_case("Ann", {}, {ex("Ann employer", "Acme", "Ann"), ex("Ann speaks", "Latin", "Ann")}),
      make_case("Bob", {}, {ex("Bob employer", "Initech", "Bob"), ex("Ann speaks", "Latin", "Ann")}),
  };
  const auto hard = hard_out_scope_of(batch);
  ASSERT_EQ(hard.size(), 3u);  // no subject filter; the repeated input once
  EXPECT_EQ(hard[0].input, "Ann employer");
  EXPECT_EQ(hard[2].input, "Bob employer");
}

// ---- Drawing batches ------------------------------------------------------------------------

std::vector<Case> pool_with_subjects(const std::vector<std::string>& subjects) {
  std::vector<Case> pool;
  for (std::size_t i = 0; i < subjects.size(); ++i) {
    Case c = make_case(subjects[i], {});
    c.edit.input += numbered(" #", i);  // tell apart cases of one subject
    pool.push_back(c);
  }
  return pool;
}

TEST(Draw, DistinctCasesDeterministicPerSeed) {
  std::vector<std::string> subjects;
  for (int i = 0; i < 50; ++i) subjects.push_back(numbered("s", static_cast<std::size_t>(i)));
  const auto pool = pool_with_subjects(subjects);
  tensortape::Rng a(7), b(7), c(8);
  const auto first = draw_batch(pool, 20, a);
  EXPECT_EQ(first, draw_batch(pool, 20, b));
  EXPECT_NE(first, draw_batch(pool, 20, c));
  EXPECT_EQ(std::set<std::size_t>(first.begin(), first.end()).size(), 20u);
  for (std::size_t i : first) EXPECT_LT(i, pool.size());
  // The whole pool: a permutation.
  tensortape::Rng d(3);
  const auto all = draw_batch(pool, 50, d);
  EXPECT_EQ(std::set<std::size_t>(all.begin(), all.end()).size(), 50u);
  // draw_cases is deterministic in (seed, K, draw) and differs between draws.
  const auto x = draw_cases(pool, 5, 11, 0), y = draw_cases(pool, 5, 11, 0), z = draw_cases(pool, 5, 11, 1);
  ASSERT_EQ(x.size(), 5u);
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_EQ(x[i].edit.input, y[i].edit.input);
  bool differs = false;
  for (std::size_t i = 0; i < x.size(); ++i) differs = differs || x[i].edit.input != z[i].edit.input;
  EXPECT_TRUE(differs);
}

TEST(Draw, PrefersDistinctSubjects) {
  const auto pool = pool_with_subjects({"a", "a", "a", "a", "b", "b", "b", "c", "c", "d"});
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    tensortape::Rng rng(seed);
    std::set<std::string> subjects;
    for (std::size_t i : draw_batch(pool, 4, rng)) subjects.insert(pool[i].subject);
    EXPECT_EQ(subjects.size(), 4u) << "seed " << seed;
    tensortape::Rng rng6(seed);
    const auto six = draw_batch(pool, 6, rng6);  // only 4 subjects: 2 repeats, all cases distinct
    std::set<std::string> six_subjects;
    for (std::size_t i : six) six_subjects.insert(pool[i].subject);
    EXPECT_EQ(six_subjects.size(), 4u);
    EXPECT_EQ(std::set<std::size_t>(six.begin(), six.end()).size(), 6u);
  }
}

TEST(Draw, BatchLargerThanThePoolIsAClearError) {
  const auto pool = pool_with_subjects({"a", "b", "c"});
  tensortape::Rng rng(1);
  try {
    draw_batch(pool, 4, rng);
    FAIL() << "expected an error";
  } catch (const tensortape::Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("edit batch size 4"), std::string::npos) << message;
    EXPECT_NE(message.find("3 cases"), std::string::npos) << message;
  }
  EXPECT_THROW(draw_batch(pool, 0, rng), tensortape::Error);
  EXPECT_EQ(draw_batch(pool, 3, rng).size(), 3u);
}

// ---- evaluate() with a fake editor -----------------------------------------------------------

// Answers an edit's own input with its new label after apply; inputs starting with "fragile"
// change to "changed" while any edit is applied; everything else gets the fixed answer "base".
// So: ES = share of in-scope inputs that are edit descriptors, DD = share of "fragile" out-scope.
class MemorisingEditor : public Editor {
 public:
  std::string name() const override { return "memo"; }
  void apply(const std::vector<Case>& batch) override {
    EXPECT_TRUE(memory_.empty()) << "apply without reset";
    for (const auto& c : batch) memory_[c.edit.input] = c.edit.target;
    ++applies;
    batch_sizes.push_back(static_cast<int>(batch.size()));
  }
  std::vector<std::string> predict(const std::vector<std::string>& inputs) override {
    std::vector<std::string> out;
    for (const auto& x : inputs) {
      if (memory_.empty()) ++base_calls[x];
      if (auto it = memory_.find(x); it != memory_.end()) out.push_back(it->second);
      else if (!memory_.empty() && x.rfind("fragile", 0) == 0) out.push_back("changed");
      else out.push_back("base");
    }
    return out;
  }
  void reset() override {
    memory_.clear();
    ++resets;
  }

  std::map<std::string, int> base_calls;  // unedited predictions per input
  std::vector<int> batch_sizes;
  int applies = 0, resets = 0;

 private:
  std::map<std::string, std::string> memory_;
};

// Case i (subject s<i>): in-scope = its descriptor (answered) and a rephrasing (not) -> ES 0.5.
// Out-scope: "fragile o<i>" (gold "base": the base is right, the edit breaks it), "stable o<i>"
// (gold "gold": base wrong, unchanged), and "fragile about s<i+1>" — about another case's
// subject, so dropped whenever case i+1 is in the batch. Hard out-scope: one fragile, one stable.
Benchmark synthetic(int n, bool with_hard) {
  Benchmark b;
  b.name = "synthetic";
  for (int i = 0; i < n; ++i) {
    const std::string s = numbered("s", i), next = numbered("s", (i + 1) % n);
    Case c;
    c.subject = s;
    c.edit = ex("edit " + s, "new " + s);
    c.in_scope = {c.edit, ex("rephrase " + s, "new " + s)};
    c.out_scope = {ex(numbered("fragile o", i), "base", numbered("o", i)),
                   ex(numbered("stable o", i), "gold", numbered("o", i)),
                   ex("fragile about " + next, "base", next)};
    if (with_hard) c.hard_out_scope = {ex("fragile hard " + s, "base", s), ex("stable hard " + s, "base", s)};
    b.split(Split::test).push_back(c);
  }
  return b;
}

TEST(Evaluate, ExactScoresFromAFakeEditor) {
  const Benchmark bench = synthetic(8, /*with_hard=*/true);
  MemorisingEditor editor;
  std::ostringstream progress;
  const auto rows = evaluate(editor, bench, Split::test, {1, 8}, /*draws=*/3, /*seed=*/5, &progress);
  ASSERT_EQ(rows.size(), 2u);

  const ResultRow& one = rows[0];
  EXPECT_EQ(one.method, "memo");
  EXPECT_EQ(one.benchmark, "synthetic");
  EXPECT_EQ(one.batch_size, 1);
  EXPECT_EQ(one.draws, 3);
  EXPECT_DOUBLE_EQ(one.es, 0.5);
  EXPECT_DOUBLE_EQ(one.es_se, 0.0);
  // K = 1: all three out-scope examples count; the two fragile ones change -> 2/3.
  EXPECT_DOUBLE_EQ(one.dd, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(one.dd_se, 0.0);
  // Base accuracy 2/3 (both fragile answers "base" are right), edited 0 -> drop 2/3.
  EXPECT_DOUBLE_EQ(one.acc_drop, 2.0 / 3.0);
  ASSERT_TRUE(one.hard_dd.has_value());
  EXPECT_DOUBLE_EQ(*one.hard_dd, 0.5);
  EXPECT_DOUBLE_EQ(*one.hard_dd_se, 0.0);
  ASSERT_TRUE(one.edit_ms.has_value());
  EXPECT_GE(*one.edit_ms, 0.0);

  // K = 8: every subject edited, so each "fragile about s<i+1>" is dropped: DD 1/2, drop 1/2.
  const ResultRow& all = rows[1];
  EXPECT_DOUBLE_EQ(all.es, 0.5);
  EXPECT_DOUBLE_EQ(all.dd, 0.5);
  EXPECT_DOUBLE_EQ(all.acc_drop, 0.5);
  EXPECT_DOUBLE_EQ(*all.hard_dd, 0.5);  // hard out-scope shares the subject and is kept

  // The protocol: one apply per draw, batch sizes as asked, reset before base answers and after.
  EXPECT_EQ(editor.applies, 6);
  EXPECT_EQ(editor.batch_sizes, (std::vector<int>{1, 1, 1, 8, 8, 8}));
  EXPECT_EQ(editor.resets, 12);
  // Base answers are cached: every out-scope / hard input went through the unedited model once.
  for (const auto& [input, calls] : editor.base_calls) EXPECT_EQ(calls, 1) << input;
  EXPECT_EQ(editor.base_calls.count("stable o3"), 1u);  // K = 8 touches every case
  EXPECT_EQ(editor.base_calls.count("edit s3"), 0u);    // in-scope inputs need no base answer

  // Progress: one line per batch size.
  const std::string p = progress.str();
  EXPECT_NE(p.find("memo synthetic/test  K=1  3/3 draws  ES 0.50 ± 0.00  DD 0.67 ± 0.00  hard DD 0.50"),
            std::string::npos)
      << p;
  EXPECT_NE(p.find("K=8  3/3 draws"), std::string::npos) << p;
  EXPECT_EQ(std::count(p.begin(), p.end(), '\n'), 2);
}

TEST(Evaluate, StandardErrorOverDrawsMatchesTheDrawnBatches) {
  // ES differs per case: even cases have only their descriptor in scope (ES 1), odd ones only a
  // rephrasing (ES 0). With K = 1, each draw's ES is 0 or 1 by the parity of the drawn case.
  Benchmark bench = synthetic(10, /*with_hard=*/false);
  for (std::size_t i = 0; i < bench.split(Split::test).size(); ++i) {
    Case& c = bench.split(Split::test)[i];
    c.in_scope = {i % 2 == 0 ? c.edit : ex("rephrase " + c.subject, c.edit.target)};
  }
  MemorisingEditor editor;
  const int draws = 6;
  const auto rows = evaluate(editor, bench, Split::test, {1}, draws, /*seed=*/3, nullptr);
  ASSERT_EQ(rows.size(), 1u);
  std::vector<double> expected;
  for (int d = 0; d < draws; ++d) {
    const auto batch = draw_cases(bench.split(Split::test), 1, 3, d);
    const int index = std::stoi(batch[0].subject.substr(1));
    expected.push_back(index % 2 == 0 ? 1.0 : 0.0);
  }
  int ones = 0;
  for (double v : expected) ones += v == 1.0;
  ASSERT_GT(ones, 0) << "pick another seed: every draw has the same ES";
  ASSERT_LT(ones, draws) << "pick another seed: every draw has the same ES";
  // By hand: p = ones / n; sample variance = n p (1 - p) / (n - 1); se = sqrt(that / n).
  const double p = static_cast<double>(ones) / draws;
  EXPECT_NEAR(rows[0].es, p, 1e-12);
  EXPECT_NEAR(rows[0].es_se, std::sqrt(draws * p * (1 - p) / (draws - 1) / draws), 1e-12);
  EXPECT_FALSE(rows[0].hard_dd.has_value());  // no hard out-scope in this benchmark
}

TEST(Evaluate, BadArgumentsFailBeforeAnyWork) {
  const Benchmark bench = synthetic(4, false);
  MemorisingEditor editor;
  try {
    evaluate(editor, bench, Split::test, {1, 5}, 2, 1, nullptr);
    FAIL() << "expected an error";
  } catch (const tensortape::Error& e) {
    EXPECT_NE(std::string(e.what()).find("edit batch size 5 does not fit the 4 cases of synthetic/test"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(editor.applies, 0);
  EXPECT_THROW(evaluate(editor, bench, Split::test, {1}, 0, 1, nullptr), tensortape::Error);
  EXPECT_THROW(evaluate(editor, bench, Split::validation, {1}, 1, 1, nullptr), tensortape::Error);  // empty split
}

class WrongCountEditor : public MemorisingEditor {
 public:
  std::vector<std::string> predict(const std::vector<std::string>&) override { return {"only one"}; }
};

TEST(Evaluate, AnEditorReturningTheWrongNumberOfAnswersIsAnError) {
  const Benchmark bench = synthetic(4, false);
  WrongCountEditor editor;
  EXPECT_THROW(evaluate(editor, bench, Split::test, {2}, 1, 1, nullptr), tensortape::Error);
}

// ---- Results file and tables -----------------------------------------------------------------

ResultRow row(const std::string& method, const std::string& benchmark, int k, double es, double es_se, double dd,
              double dd_se) {
  ResultRow r;
  r.method = method;
  r.benchmark = benchmark;
  r.batch_size = k;
  r.draws = 5;
  r.es = es;
  r.es_se = es_se;
  r.dd = dd;
  r.dd_se = dd_se;
  r.acc_drop = dd / 2;
  return r;
}

fs::path scratch(const std::string& name) {
  const fs::path dir = scratch_path("editlab_eval_test");
  fs::create_directories(dir);
  const fs::path path = dir / name;
  fs::remove(path);
  return path;
}

TEST(Report, JsonLinesRoundTrip) {
  ResultRow a = row("seprog", "qa", 64, 0.93, 0.011, 0.02, 0.004);
  a.edit_ms = 812.5;
  ResultRow b = row("seprog", "relations", 64, 0.8, 0.02, 0.03, 0.01);
  b.hard_dd = 0.12;
  b.hard_dd_se = 0.015;
  ResultRow c = row("serac", "qa", 1, 1.0, 0.0, std::nan(""), std::nan(""));  // DD not measured
  const fs::path path = scratch("round_trip.jsonl");
  append_jsonl(path, {a});
  append_jsonl(path, {b, c});  // appends, keeps a

  std::ifstream in(path);
  std::string first;
  std::getline(in, first);
  const auto j = nlohmann::json::parse(first);
  for (const char* field : {"method", "benchmark", "batch_size", "draws", "es", "es_se", "dd", "dd_se", "acc_drop",
                            "edit_ms"})
    EXPECT_TRUE(j.contains(field)) << field;
  EXPECT_FALSE(j.contains("hard_dd"));
  EXPECT_EQ(j["batch_size"], 64);

  const auto back = read_jsonl(path);
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back[0].method, "seprog");
  EXPECT_EQ(back[0].benchmark, "qa");
  EXPECT_EQ(back[0].batch_size, 64);
  EXPECT_EQ(back[0].draws, 5);
  EXPECT_DOUBLE_EQ(back[0].es, 0.93);
  EXPECT_DOUBLE_EQ(back[0].es_se, 0.011);
  EXPECT_DOUBLE_EQ(back[0].dd, 0.02);
  EXPECT_DOUBLE_EQ(back[0].dd_se, 0.004);
  EXPECT_DOUBLE_EQ(back[0].acc_drop, 0.01);
  EXPECT_DOUBLE_EQ(*back[0].edit_ms, 812.5);
  EXPECT_FALSE(back[0].hard_dd.has_value());
  EXPECT_DOUBLE_EQ(*back[1].hard_dd, 0.12);
  EXPECT_DOUBLE_EQ(*back[1].hard_dd_se, 0.015);
  EXPECT_FALSE(back[1].edit_ms.has_value());
  EXPECT_TRUE(std::isnan(back[2].dd));  // null in the file

  write_jsonl(path, {c});  // replaces
  EXPECT_EQ(read_jsonl(path).size(), 1u);
}

TEST(Report, MalformedLinesNameTheFileAndTheLine) {
  const fs::path path = scratch("bad.jsonl");
  auto expect_error = [&](const std::string& content, const std::string& wanted) {
    std::ofstream(path) << content;
    try {
      read_jsonl(path);
      ADD_FAILURE() << "expected an error for: " << content;
    } catch (const tensortape::Error& e) {
      EXPECT_NE(std::string(e.what()).find(wanted), std::string::npos) << e.what();
    }
  };
  const std::string good = to_json(row("m", "qa", 1, 0.5, 0, 0.1, 0)).dump();
  expect_error(good + "\n\n{not json\n", path.string() + ":3: not valid JSON");
  expect_error(good + "\n" + R"({"method":"m","benchmark":"qa","batch_size":1,"draws":5,"es_se":0,"dd":0,"dd_se":0,"acc_drop":0})" + "\n",
               path.string() + ":2: field 'es': missing");
  expect_error(R"({"method":"m","benchmark":"qa","batch_size":"4","draws":5,"es":1,"es_se":0,"dd":0,"dd_se":0,"acc_drop":0})",
               path.string() + ":1: field 'batch_size': must be a positive integer");
  expect_error(R"({"method":"m","benchmark":"qa","batch_size":4,"draws":5,"es":"high","es_se":0,"dd":0,"dd_se":0,"acc_drop":0})",
               ":1: field 'es': must be a number");
  expect_error("[1, 2]\n", ":1: result row: expected a JSON object");
  EXPECT_THROW(read_jsonl(scratch("absent.jsonl")), tensortape::Error);
}

TEST(Report, Table2MeansOverBatchSizesPerBenchmark) {
  const std::vector<ResultRow> rows = {
      row("seprog", "qa", 1, 0.90, 0.03, 0.00, 0.00),
      row("seprog", "qa", 64, 0.96, 0.04, 0.04, 0.00),
      row("seprog", "entail", 1, 0.70, 0.00, 0.10, 0.00),
      row("seprog", "entail", 64, 0.10, 0.00, 0.99, 0.00),
      row("seprog", "entail", 64, 0.80, 0.00, 0.06, 0.00),  // a rerun: replaces the line above
      row("sp-noselect", "qa", 1, 0.50, 0.00, 0.30, 0.00),
      row("sp-noselect", "qa", 64, 0.70, 0.00, 0.50, 0.00),
  };
  const std::string table = table2_markdown(rows);
  std::istringstream lines(table);
  std::string header, rule, seprog, noselect;
  std::getline(lines, header);
  std::getline(lines, rule);
  std::getline(lines, seprog);
  std::getline(lines, noselect);
  EXPECT_EQ(header, "| Method | Avg. ES | Avg. DD | qa ES | qa DD | entail ES | entail DD |");
  EXPECT_EQ(rule, "|---|---|---|---|---|---|---|");
  // qa: ES (0.90 + 0.96) / 2 = 0.93, se sqrt(0.03^2 + 0.04^2) / 2 = 0.025 -> "0.03" (round half
  // up in %.2f of 0.025 is binary-dependent, so the test uses values away from .5 elsewhere);
  // DD 0.02. entail: ES 0.75, DD 0.08. Avg.: ES (0.93 + 0.75) / 2 = 0.84, DD 0.05.
  EXPECT_EQ(seprog.rfind("| seprog | 0.84 ± 0.01 | 0.05 ± 0.00 | ", 0), 0u) << seprog;
  EXPECT_NE(seprog.find("| 0.02 ± 0.00 | 0.75 ± 0.00 | 0.08 ± 0.00 |"), std::string::npos) << seprog;
  EXPECT_NE(seprog.find("| 0.93 ± 0.0"), std::string::npos) << seprog;
  // No entail results: no Avg. (it would average a different set of benchmarks).
  EXPECT_EQ(noselect, "| sp-noselect | – | – | 0.60 ± 0.00 | 0.40 ± 0.00 | – | – |");
  EXPECT_NE(table.find("mean over edit batch sizes {1, 64}"), std::string::npos) << table;
  EXPECT_EQ(table.find('*'), std::string::npos) << table;

  // A cell measured on fewer batch sizes than the table gets a mark and a footnote.
  auto partial = rows;
  partial.push_back(row("sp-noselect", "entail", 1, 0.40, 0.0, 0.2, 0.0));
  const std::string marked = table2_markdown(partial);
  EXPECT_NE(marked.find("| 0.40 ± 0.00* | 0.20 ± 0.00* |"), std::string::npos) << marked;
  EXPECT_NE(marked.find("* mean over fewer batch sizes"), std::string::npos) << marked;
  // Now complete: Avg. over qa and entail, ES (0.60 + 0.40) / 2.
  EXPECT_NE(marked.find("| sp-noselect | 0.50 ± 0.00 | 0.30 ± 0.00 |"), std::string::npos) << marked;

  // DD not measurable at K = 64 (NaN): the DD cell is the K = 1 value, marked; ES is not marked.
  auto unmeasured = rows;
  unmeasured[1].dd = std::nan("");
  unmeasured[1].dd_se = std::nan("");
  const std::string nan_table = table2_markdown(unmeasured);
  EXPECT_NE(nan_table.find("| seprog | 0.84 ± 0.01 | 0.04 ± 0.00 | 0.93 ± 0.0"), std::string::npos) << nan_table;
  EXPECT_NE(nan_table.find(" | 0.00 ± 0.00* | 0.75 ± 0.00 |"), std::string::npos) << nan_table;
}

TEST(Report, BatchSizeTableListsEveryRow) {
  ResultRow a = row("seprog", "relations", 64, 0.812, 0.013, 0.021, 0.004);
  a.hard_dd = 0.118;
  a.hard_dd_se = 0.021;
  a.edit_ms = 812.46;
  ResultRow b = row("seprog", "relations", 1, 0.9, 0.1, 0.0, 0.0);
  ResultRow c = row("seprog", "qa", 4, 0.95, 0.01, 0.01, 0.005);
  const std::string table = batch_size_markdown({a, b, c});
  std::istringstream lines(table);
  std::vector<std::string> all;
  for (std::string line; std::getline(lines, line);) all.push_back(line);
  ASSERT_EQ(all.size(), 5u) << table;
  EXPECT_EQ(all[0], "| Benchmark | Method | K | Draws | ES | DD | Acc. drop | Hard DD | ms per draw |");
  // Sorted by benchmark (first appearance), method, then K.
  EXPECT_EQ(all[2], "| relations | seprog | 1 | 5 | 0.90 ± 0.10 | 0.00 ± 0.00 | 0.00 | – | – |");
  EXPECT_EQ(all[3], "| relations | seprog | 64 | 5 | 0.81 ± 0.01 | 0.02 ± 0.00 | 0.01 | 0.12 ± 0.02 | 812.5 |");
  EXPECT_EQ(all[4].rfind("| qa | seprog | 4 | 5 | 0.95 ± 0.01 |", 0), 0u) << all[4];

  const std::string both = results_markdown({a, b, c});
  EXPECT_NE(both.find(table2_markdown({a, b, c})), std::string::npos);
  EXPECT_NE(both.find(table), std::string::npos);
  EXPECT_LT(both.find("Table 2"), both.find("Per edit batch size"));
}

}  // namespace
