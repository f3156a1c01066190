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

namespace editlab_eval_test {

using namespace editlab::eval;
using editlab::Benchmark;
using editlab::Case;
using editlab::Example;
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

TEST(Metrics, NoOutScopeSetKeepsAFactAnEditOfTheBatchChanges) {
  // Ann's edit changes her employer; Bob's case carries a hard example and an out-scope example
  // asking exactly that (under another wording): both must go, whichever case carries them.
  Case ann = make_case("Ann", {});
  ann.changes = {"Ann|works_for"};
  Example employer = ex("Who pays Ann?", "Acme", "Ann");
  employer.fact = "Ann|works_for";
  Example language = ex("What does Ann speak?", "Latin", "Ann");
  language.fact = "Ann|speaks";
  Example unrelated = ex("Who pays Cid?", "Initech", "Cid");
  unrelated.fact = "Cid|works_for";
  Case bob = make_case("Bob", {employer, unrelated}, {employer, language});
  bob.seen_out_scope = {employer, unrelated};
  const std::vector<Case> batch = {ann, bob};
  const auto hard = hard_out_scope_of(batch);
  ASSERT_EQ(hard.size(), 1u);
  EXPECT_EQ(hard[0].input, "What does Ann speak?");
  ASSERT_EQ(out_scope_of(batch).size(), 1u);
  EXPECT_EQ(out_scope_of(batch)[0].input, "Who pays Cid?");
  ASSERT_EQ(seen_out_scope_of(batch).size(), 1u);
  // Without Ann's edit in the batch, Bob's sets keep the employer question.
  EXPECT_EQ(hard_out_scope_of({bob}).size(), 2u);
  // The descriptors are all an editor gets.
  const auto d = descriptors_of(batch);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[1].input, bob.edit.input);
  EXPECT_EQ(d[1].target, bob.edit.target);
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
// change to "changed" while any edit is applied; everything else as the base model below.
// It records every descriptor it is given.
class MemorisingEditor : public Editor {
 public:
  std::string name() const override { return "memo"; }
  void apply(const std::vector<Example>& descriptors) override {
    EXPECT_TRUE(memory_.empty()) << "apply without reset";
    for (const auto& d : descriptors) memory_[d.input] = d.target;
    applied.push_back(descriptors);
  }
  std::vector<std::string> predict(const std::vector<std::string>& inputs) override {
    if (memory_.empty()) ++unedited_predicts;
    std::vector<std::string> out;
    for (const auto& x : inputs) {
      if (auto it = memory_.find(x); it != memory_.end()) out.push_back(it->second);
      else if (!memory_.empty() && x.rfind("fragile", 0) == 0) out.push_back("changed");
      else out.push_back(base_answer(x));
    }
    return out;
  }
  void reset() override {
    memory_.clear();
    ++resets;
  }

  // The base model of this fake world: it already knows the new label of "rephrase s<even>"
  // (so those need no edit), and answers "base" to everything else.
  static std::string base_answer(const std::string& x) {
    const std::string known = "rephrase s";
    if (x.rfind(known, 0) == 0 && std::stoi(x.substr(known.size())) % 2 == 0) return "new " + x.substr(std::string("rephrase ").size());
    return "base";
  }

  std::vector<std::vector<Example>> applied;
  int unedited_predicts = 0, resets = 0;

 private:
  std::map<std::string, std::string> memory_;
};

// The harness's base predictor for the fake world, counting what it is asked.
struct CountingBase {
  std::map<std::string, int> calls;
  BasePredictor predictor() {
    return [this](const std::vector<std::string>& inputs) {
      std::vector<std::string> out;
      for (const auto& x : inputs) {
        ++calls[x];
        out.push_back(MemorisingEditor::base_answer(x));
      }
      return out;
    };
  }
};

// Case i (subject s<i>, changes fact "fact s<i>"): in-scope = its descriptor (needs the edit,
// answered) and "rephrase s<i>" (known to the base for even i; for odd i needed and missed).
// Out-scope: "fragile o<i>" (gold "base": the base is right, the edit breaks it), "stable o<i>"
// (gold "gold": base wrong, unchanged), "fragile about s<i+1>" (about another case's subject:
// dropped when case i+1 is in the batch) and "fragile fact s<i+2>" (about subject p<i>, but
// asking fact s<i+2>: dropped when case i+2 is in the batch). Seen out-scope: one fragile, one
// stable. Hard out-scope: one fragile, one stable, and "fragile hard2 s<i>" asking fact s<i+1>.
Benchmark synthetic(int n, bool with_hard) {
  Benchmark b;
  b.name = "synthetic";
  for (int i = 0; i < n; ++i) {
    const std::string s = numbered("s", i), next = numbered("s", (i + 1) % n), after = numbered("s", (i + 2) % n);
    Case c;
    c.subject = s;
    c.edit = ex("edit " + s, "new " + s);
    c.changes = {"fact " + s};
    c.in_scope = {c.edit, ex("rephrase " + s, "new " + s)};
    Example about_fact = ex("fragile fact " + after, "base", numbered("p", i));
    about_fact.fact = "fact " + after;
    c.out_scope = {ex(numbered("fragile o", i), "base", numbered("o", i)), ex(numbered("stable o", i), "gold", numbered("o", i)),
                   ex("fragile about " + next, "base", next), about_fact};
    c.seen_out_scope = {ex(numbered("fragile seen o", i), "base", numbered("o", i)), ex(numbered("stable seen o", i), "base", numbered("o", i))};
    if (with_hard) {
      Example hard2 = ex("fragile hard2 " + s, "base", s);
      hard2.fact = "fact " + next;
      c.hard_out_scope = {ex("fragile hard " + s, "base", s), ex("stable hard " + s, "base", s), hard2};
    }
    b.split(Split::test).push_back(c);
  }
  return b;
}

EvalOptions exactly(std::vector<int> batch_sizes, int draws, std::uint64_t seed) {
  EvalOptions o;
  o.batch_sizes = std::move(batch_sizes);
  o.min_draws = o.max_draws = draws;
  o.min_examples = 0;
  o.seed = seed;
  return o;
}

// ES(known): among the edit-needed in-scope inputs, those the base model answers with the edit's
// old label. Cases 1 and 5 have old label "base", the fake base model's answer to their
// descriptor and to their (odd, so needed) rephrasing; the editor gets the descriptors only.
TEST(Evaluate, EsKnownIsEsWhereTheBaseAnswersTheOldLabel) {
  Benchmark bench = synthetic(8, /*with_hard=*/false);
  for (int i = 0; i < 8; ++i) bench.split(Split::test)[i].old_target = i % 4 == 1 ? "base" : "old";
  MemorisingEditor editor;
  CountingBase base;
  const auto rows = evaluate(editor, base.predictor(), bench, Split::test, exactly({8}, 1, 5), nullptr);
  ASSERT_TRUE(rows[0].es_known.has_value());
  EXPECT_DOUBLE_EQ(*rows[0].es_known, 0.5);  // 2 descriptors hit, 2 rephrasings missed
  EXPECT_EQ(rows[0].known_examples, std::optional<int>(4));
  EXPECT_DOUBLE_EQ(rows[0].es, 2.0 / 3.0);  // unchanged: 8 descriptors and 4 odd rephrasings

  bench.labels = {"base", "old"};  // a claim benchmark: its old label is the other claim label
  EXPECT_FALSE(evaluate(editor, base.predictor(), bench, Split::test, exactly({8}, 1, 5), nullptr)[0].es_known);
}

TEST(Evaluate, ExactScoresFromAFakeEditor) {
  const Benchmark bench = synthetic(8, /*with_hard=*/true);
  MemorisingEditor editor;
  CountingBase base;
  std::ostringstream progress;
  const auto rows = evaluate(editor, base.predictor(), bench, Split::test, exactly({1, 8}, 3, 5), &progress);
  ASSERT_EQ(rows.size(), 2u);
  for (const auto& row : rows) {  // the fake editor answers every descriptor it memorised
    ASSERT_TRUE(row.es_descriptors.has_value());
    EXPECT_DOUBLE_EQ(*row.es_descriptors, 1.0);
  }

  // K = 1, by hand from the drawn cases: an even case gives 1 needed hit of 1, an odd one 1 of 2.
  double hits = 0, trials = 0, base_hits = 0;
  for (int d = 0; d < 3; ++d) {
    const int i = std::stoi(draw_cases(bench.split(Split::test), 1, 5, d)[0].subject.substr(1));
    hits += 1;
    trials += i % 2 == 0 ? 1 : 2;
    base_hits += i % 2 == 0 ? 1 : 0;
  }
  const ResultRow& one = rows[0];
  EXPECT_EQ(one.method, "memo");
  EXPECT_EQ(one.benchmark, "synthetic");
  EXPECT_EQ(one.split, "test");
  EXPECT_EQ(one.batch_size, 1);
  EXPECT_EQ(one.draws, 3);
  EXPECT_FALSE(one.es_known.has_value());  // no case has an old label
  EXPECT_DOUBLE_EQ(one.es, hits / trials);
  EXPECT_DOUBLE_EQ(one.es0, base_hits / 6);                   // two in-scope examples per draw
  EXPECT_DOUBLE_EQ(one.es_all, (3 + base_hits) / 6);           // descriptors, plus the known rephrasings
  // K = 1: all four out-scope examples count; the three fragile ones change -> 3/4.
  EXPECT_DOUBLE_EQ(one.dd, 0.75);
  // Base accuracy 3/4 (the fragile answers "base" are right), edited 0 -> drop 3/4.
  EXPECT_DOUBLE_EQ(one.acc_drop, 0.75);
  ASSERT_TRUE(one.dd_seen.has_value());
  EXPECT_DOUBLE_EQ(*one.dd_seen, 0.5);
  ASSERT_TRUE(one.hard_dd.has_value());
  EXPECT_DOUBLE_EQ(*one.hard_dd, 2.0 / 3.0);
  ASSERT_TRUE(one.edit_ms.has_value());
  EXPECT_GE(*one.edit_ms, 0.0);

  // K = 8, every case: needed = 8 descriptors (hit) + 4 odd rephrasings (missed) -> 2/3; all 16
  // in-scope: 12 right; ES0 4/16. Every subject is edited, so "about s<i+1>" is dropped, and
  // every fact s<j> is changed, so "fact s<i+2>" and "hard2" are too: DD 1/2, hard DD 1/2.
  const ResultRow& all = rows[1];
  EXPECT_DOUBLE_EQ(all.es, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(all.es_all, 0.75);
  EXPECT_DOUBLE_EQ(all.es0, 0.25);
  EXPECT_DOUBLE_EQ(all.dd, 0.5);
  EXPECT_DOUBLE_EQ(all.acc_drop, 0.5);
  EXPECT_DOUBLE_EQ(*all.hard_dd, 0.5);
  EXPECT_EQ(all.in_examples, 16);
  EXPECT_EQ(all.needed_examples, 12);
  EXPECT_EQ(all.out_examples, 16);  // fragile and stable o<i> for 8 cases
  // Three identical draws of the whole split: every cluster is the same each time, so the
  // bootstrap over edits still sees 8 edits, not 24 independent ones.
  EXPECT_GT(all.es_se, 0.0);

  // The contract: apply gets exactly each draw's descriptors, nothing else.
  ASSERT_EQ(editor.applied.size(), 6u);
  for (std::size_t a = 0; a < editor.applied.size(); ++a) {
    const int k = a < 3 ? 1 : 8;
    const auto batch = draw_cases(bench.split(Split::test), k, 5, static_cast<int>(a % 3));
    ASSERT_EQ(editor.applied[a].size(), batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
      EXPECT_EQ(editor.applied[a][i].input, batch[i].edit.input);
      EXPECT_EQ(editor.applied[a][i].target, batch[i].edit.target);
    }
  }
  // The reference is the harness's own base model, each input asked once; the editor is never
  // asked for an unedited answer.
  EXPECT_EQ(editor.unedited_predicts, 0);
  for (const auto& [input, calls] : base.calls) EXPECT_EQ(calls, 1) << input;
  EXPECT_EQ(base.calls.count("stable o3"), 1u);
  EXPECT_EQ(base.calls.count("rephrase s3"), 1u);  // in-scope inputs too: ES0

  // Progress: one line per batch size.
  const std::string p = progress.str();
  EXPECT_NE(p.find("memo synthetic/test  K=8  3 draws  ES 0.67"), std::string::npos) << p;
  EXPECT_NE(p.find("(ES0 0.25, all 0.75)  DD 0.50"), std::string::npos) << p;
  EXPECT_EQ(std::count(p.begin(), p.end(), '\n'), 2);
}

TEST(Evaluate, DrawsUntilTheCellRestsOnEnoughExamples) {
  const Benchmark bench = synthetic(200, false);
  MemorisingEditor editor;
  CountingBase base;
  EvalOptions options;
  options.batch_sizes = {1, 4};
  options.min_draws = 3;
  options.min_examples = 30;
  const auto rows = evaluate(editor, base.predictor(), bench, Split::test, options, nullptr);
  for (const auto& row : rows) {
    // Replay the draws: the first count at which both distinct sets reach 30.
    std::set<std::string> needed, out;
    int expected = 0;
    while (expected < options.min_draws || needed.size() < 30 || out.size() < 30) {
      const auto batch = draw_cases(bench.split(Split::test), row.batch_size, options.seed, expected++);
      for (const auto& c : batch)
        for (const auto& e : c.in_scope)
          if (MemorisingEditor::base_answer(e.input) != e.target) needed.insert(c.subject + e.input);
      for (const auto& e : out_scope_of(batch)) out.insert(e.input);
    }
    EXPECT_EQ(row.draws, expected) << "K = " << row.batch_size;
    EXPECT_GE(row.needed_examples, 30);
    EXPECT_GE(row.out_examples, 30);
  }
  // A split too small for the target stops once each case has been drawn about four times.
  const Benchmark small = synthetic(5, false);
  options.batch_sizes = {5, 2};
  options.min_examples = 1000;
  const auto few = evaluate(editor, base.predictor(), small, Split::test, options, nullptr);
  EXPECT_EQ(few[0].draws, 4);   // ceil(4 * 5 / 5) = 4
  EXPECT_EQ(few[1].draws, 10);  // ceil(4 * 5 / 2) = 10
  EXPECT_EQ(draw_limit(1000, 1, options), 400);  // max_draws
}

// `editlab eval --resume` evaluates only the batch sizes a results file lacks: that is sound
// only if a row never depends on which other batch sizes were asked for, and if each row
// reaches the sink before the next batch size starts.
TEST(Evaluate, EachRowIsHandedOnWhenDoneAndDoesNotDependOnTheOtherBatchSizes) {
  const Benchmark bench = synthetic(40, /*with_hard=*/true);
  MemorisingEditor editor;
  CountingBase base;
  std::vector<ResultRow> sunk;
  std::vector<std::size_t> applied_when_sunk;
  const auto rows = evaluate(editor, base.predictor(), bench, Split::test, exactly({1, 4, 10}, 3, 7), nullptr,
                             [&](const ResultRow& row) {
                               sunk.push_back(row);
                               applied_when_sunk.push_back(editor.applied.size());
                             });
  ASSERT_EQ(sunk.size(), 3u);
  EXPECT_EQ(applied_when_sunk, (std::vector<std::size_t>{3, 6, 9}));  // handed on before the next K's draws
  for (std::size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(to_json(sunk[i]), to_json(rows[i]));
  MemorisingEditor fresh;
  const auto resumed = evaluate(fresh, base.predictor(), bench, Split::test, exactly({10, 4}, 3, 7), nullptr);
  for (const auto& [a, b] : {std::pair{&rows[1], &resumed[1]}, {&rows[2], &resumed[0]}}) {
    ASSERT_EQ(a->batch_size, b->batch_size);
    nlohmann::json ja = to_json(*a), jb = to_json(*b);
    for (auto* j : {&ja, &jb}) {  // wall times differ
      j->erase("edit_ms");
      j->erase("seconds");
    }
    EXPECT_EQ(ja, jb) << "K = " << a->batch_size;
  }
  ASSERT_TRUE(rows[0].seconds.has_value());
  EXPECT_GE(*rows[0].seconds, 0.0);
}

TEST(Evaluate, BadArgumentsFailBeforeAnyWork) {
  const Benchmark bench = synthetic(4, false);
  MemorisingEditor editor;
  CountingBase base;
  try {
    evaluate(editor, base.predictor(), bench, Split::test, exactly({1, 5}, 2, 1), nullptr);
    FAIL() << "expected an error";
  } catch (const tensortape::Error& e) {
    EXPECT_NE(std::string(e.what()).find("edit batch size 5 does not fit the 4 cases of synthetic/test"),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(editor.applied.empty());
  EXPECT_THROW(evaluate(editor, base.predictor(), bench, Split::test, exactly({1}, 0, 1), nullptr), tensortape::Error);
  EXPECT_THROW(evaluate(editor, base.predictor(), bench, Split::validation, exactly({1}, 1, 1), nullptr), tensortape::Error);  // empty split
}

class WrongCountEditor : public MemorisingEditor {
 public:
  std::vector<std::string> predict(const std::vector<std::string>&) override { return {"only one"}; }
};

TEST(Evaluate, AnEditorOrBaseReturningTheWrongNumberOfAnswersIsAnError) {
  const Benchmark bench = synthetic(4, false);
  WrongCountEditor editor;
  CountingBase base;
  EXPECT_THROW(evaluate(editor, base.predictor(), bench, Split::test, exactly({2}, 1, 1), nullptr), tensortape::Error);
  MemorisingEditor good;
  const BasePredictor broken = [](const std::vector<std::string>&) { return std::vector<std::string>{"x"}; };
  EXPECT_THROW(evaluate(good, broken, bench, Split::test, exactly({2}, 1, 1), nullptr), tensortape::Error);
}

// ---- Cluster bootstrap -----------------------------------------------------------------------

TEST(Bootstrap, PooledRateAndAStandardErrorOverClusters) {
  // One cluster: every resample is the same: SE 0.
  const MeanSe single = cluster_bootstrap({{3, 4}});
  EXPECT_DOUBLE_EQ(single.mean, 0.75);
  EXPECT_DOUBLE_EQ(single.se, 0.0);
  // Equal-sized clusters: the pooled rate is the mean of cluster rates, and the bootstrap SE
  // approaches the population SD of the cluster rates / sqrt(n).
  std::vector<Cluster> clusters;
  for (int i = 0; i < 40; ++i) clusters.push_back({static_cast<double>(i % 5), 4});
  const MeanSe b = cluster_bootstrap(clusters, 4000, 7);
  double mean = 0, squares = 0;
  for (const auto& c : clusters) mean += c.hits / c.trials / 40;
  for (const auto& c : clusters) squares += (c.hits / c.trials - mean) * (c.hits / c.trials - mean) / 40;
  EXPECT_DOUBLE_EQ(b.mean, mean);
  EXPECT_NEAR(b.se, std::sqrt(squares / 40), 0.1 * std::sqrt(squares / 40));
  EXPECT_EQ(b.n, 40);
  // Repeated draws of the same edits (each cluster's outcomes counted three times) are no new
  // evidence: the SE stays, where treating outcomes as independent would shrink it by sqrt(3).
  auto tripled = clusters;
  for (auto& c : tripled) c.hits *= 3, c.trials *= 3;
  EXPECT_NEAR(cluster_bootstrap(tripled, 4000, 7).se, b.se, 1e-12);
  // Nothing measured: NaN.
  EXPECT_TRUE(std::isnan(cluster_bootstrap({}).mean));
  EXPECT_TRUE(std::isnan(cluster_bootstrap({{0, 0}}).mean));
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
  r.es_all = es;
  r.es0 = 0.05;
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
  a.seconds = 41.25;
  a.es_known = 0.75;
  a.known_examples = 120;
  ResultRow b = row("seprog", "relations", 64, 0.8, 0.02, 0.03, 0.01);
  b.hard_dd = 0.12;
  b.hard_dd_se = 0.015;
  ResultRow c = row("serac", "qa", 1, 1.0, 0.0, std::nan(""), std::nan(""));  // DD not measured
  a.seed = 3;
  a.editor_options = {{"gate_threshold", 0.7}, {"variant", "seprog"}};
  a.split = "validation";
  a.dd_seen = 0.01;
  a.dd_seen_se = 0.002;
  a.in_examples = 410;
  a.needed_examples = 400;
  a.out_examples = 380;
  a.target_examples = 300;
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
  EXPECT_DOUBLE_EQ(*back[0].seconds, 41.25);
  EXPECT_FALSE(back[1].seconds.has_value());
  EXPECT_DOUBLE_EQ(*back[0].es_known, 0.75);
  EXPECT_EQ(back[0].known_examples, std::optional<int>(120));
  EXPECT_EQ(back[0].editor_options, a.editor_options);
  EXPECT_TRUE(back[1].editor_options.is_null()) << "a row without options reads back without them";
  EXPECT_FALSE(nlohmann::json::parse(to_json(b).dump()).contains("editor_options"));
  EXPECT_FALSE(back[1].es_known.has_value());
  EXPECT_EQ(back[0].seed, std::optional<std::uint64_t>(3));
  EXPECT_EQ(back[0].split, "validation");
  EXPECT_DOUBLE_EQ(back[0].es0, 0.05);
  EXPECT_DOUBLE_EQ(back[0].es_all, 0.93);
  EXPECT_DOUBLE_EQ(*back[0].dd_seen, 0.01);
  EXPECT_DOUBLE_EQ(*back[0].dd_seen_se, 0.002);
  EXPECT_EQ(back[0].in_examples, 410);
  EXPECT_EQ(back[0].needed_examples, 400);
  EXPECT_EQ(back[0].out_examples, 380);
  EXPECT_EQ(back[0].target_examples, 300);
  EXPECT_FALSE(back[1].seed.has_value());
  EXPECT_EQ(back[1].split, "test");
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
  expect_error(good + "\n\n{not json\n", path.string() + ":3: invalid JSON");
  expect_error(good + "\n" + R"({"method":"m","benchmark":"qa","batch_size":1,"draws":5,"es_se":0,"dd":0,"dd_se":0,"acc_drop":0})" + "\n",
               path.string() + ":2: field 'es': missing");
  expect_error(R"({"method":"m","benchmark":"qa","batch_size":"4","draws":5,"es":1,"es_se":0,"dd":0,"dd_se":0,"acc_drop":0})",
               path.string() + ":1: field 'batch_size': must be a positive integer");
  expect_error(R"({"method":"m","benchmark":"qa","batch_size":4,"draws":5,"es":"high","es_se":0,"dd":0,"dd_se":0,"acc_drop":0})",
               ":1: field 'es': must be a number");
  expect_error("[1, 2]\n", ":1: result row: expected a JSON object");
  expect_error(good.substr(0, good.size() - 1) + R"(,"editor_options":[0.5]})" + "\n", ":1: field 'editor_options': must be an object");
  expect_error(good.substr(0, good.size() - 1) + R"(,"es":0.9})" + "\n", ":1: a duplicate key 'es'");
  expect_error(std::string(100000, '[') + std::string(100000, ']') + "\n", ":1: nests deeper than 64 levels");
  expect_error(good + "\n" + std::string(1, '\0') + good + "\n", ":2: a NUL byte at offset 0");
  EXPECT_THROW(read_jsonl(scratch("absent.jsonl")), tensortape::Error);
}

// The standard error of a mean depends on how the estimates relate: separate edits (independent),
// the same edits (their mean se bounds it), or training seeds read on the same edit draws.
TEST(Report, AveragesCombineStandardErrorsByHowTheEstimatesRelate) {
  using editlab::eval::detail::Errors;
  const std::vector<std::pair<double, double>> two = {{0.90, 0.02}, {0.70, 0.04}, {std::nan(""), 0.5}};
  const auto independent = editlab::eval::detail::average(two, Errors::independent);
  EXPECT_NEAR(independent.first, 0.80, 1e-12);  // the NaN estimate left out
  EXPECT_NEAR(independent.second, std::sqrt(0.02 * 0.02 + 0.04 * 0.04) / 2, 1e-12);
  EXPECT_NEAR(editlab::eval::detail::average(two, Errors::shared).second, 0.03, 1e-12);
  EXPECT_NEAR(editlab::eval::detail::average(two, Errors::seeds).second, std::sqrt(0.03 * 0.03 + 0.02 / 2), 1e-12);
  // One seed: its own se. Seeds that agree: the shared se alone.
  EXPECT_NEAR(editlab::eval::detail::average({{0.9, 0.02}}, Errors::seeds).second, 0.02, 1e-12);
  EXPECT_NEAR(editlab::eval::detail::average({{0.9, 0.02}, {0.9, 0.04}}, Errors::seeds).second, 0.03, 1e-12);
  EXPECT_TRUE(std::isnan(editlab::eval::detail::average({}, Errors::seeds).first));
}

TEST(Report, Table2MeansOverBatchSizesPerBenchmark) {
  const std::vector<ResultRow> rows = {
      row("seprog", "qa", 1, 0.90, 0.02, 0.00, 0.00),
      row("seprog", "qa", 64, 0.96, 0.04, 0.04, 0.00),
      row("seprog", "entail", 1, 0.70, 0.04, 0.10, 0.00),
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
  EXPECT_EQ(header, "| Method | Avg. ES | Avg. DD | qa ES | ES0 | DD | entail ES | ES0 | DD |");
  EXPECT_EQ(rule, "|---|---|---|---|---|---|---|---|---|");
  // qa: ES (0.90 + 0.96) / 2 = 0.93; its batch sizes read the same edits, so se is their mean
  // se, (0.02 + 0.04) / 2 = 0.03; DD 0.02. entail: ES (0.70 + 0.80) / 2 = 0.75, se 0.02; DD 0.08.
  // Avg. over benchmarks, independent edits: ES 0.84, se sqrt(0.03^2 + 0.02^2) / 2 = 0.018; DD 0.05.
  EXPECT_EQ(seprog.rfind("| seprog | 0.84 ± 0.02 | 0.05 ± 0.00 | ", 0), 0u) << seprog;
  EXPECT_NE(seprog.find("| 0.93 ± 0.03 | 0.05 | 0.02 ± 0.00 | 0.75 ± 0.02 | 0.05 | 0.08 ± 0.00 |"), std::string::npos) << seprog;
  // No entail results: no Avg. (it would average a different set of benchmarks).
  EXPECT_EQ(noselect, "| sp-noselect | – | – | 0.60 ± 0.00 | 0.05 | 0.40 ± 0.00 | – | – | – |");
  EXPECT_NE(table.find("mean over edit batch sizes {1, 64}"), std::string::npos) << table;
  EXPECT_EQ(table.find('*'), std::string::npos) << table;

  // A cell measured on fewer batch sizes than the table gets a mark and a footnote.
  auto partial = rows;
  partial.push_back(row("sp-noselect", "entail", 1, 0.40, 0.0, 0.2, 0.0));
  const std::string marked = table2_markdown(partial);
  EXPECT_NE(marked.find("| 0.40 ± 0.00* | 0.05 | 0.20 ± 0.00* |"), std::string::npos) << marked;
  EXPECT_NE(marked.find("* mean over fewer batch sizes"), std::string::npos) << marked;
  // Now complete: Avg. over qa and entail, ES (0.60 + 0.40) / 2.
  EXPECT_NE(marked.find("| sp-noselect | 0.50 ± 0.00 | 0.30 ± 0.00 |"), std::string::npos) << marked;

  // DD not measurable at K = 64 (NaN): the DD cell is the K = 1 value, marked; ES is not marked.
  auto unmeasured = rows;
  unmeasured[1].dd = std::nan("");
  unmeasured[1].dd_se = std::nan("");
  const std::string nan_table = table2_markdown(unmeasured);
  EXPECT_NE(nan_table.find("| seprog | 0.84 ± 0.02 | 0.04 ± 0.00 | 0.93 ± 0.03"), std::string::npos) << nan_table;
  EXPECT_NE(nan_table.find(" | 0.05 | 0.00 ± 0.00* | 0.75 ± 0.02 |"), std::string::npos) << nan_table;

  // Several editor training seeds of one cell: the tables average them (every seed read the same
  // edit draws: their mean se, plus the seeds' scatter) and the per-K table shows their spread.
  auto seeded = rows;
  for (auto& r : seeded) r.seed = 1;
  ResultRow second = row("seprog", "qa", 1, 0.70, 0.04, 0.10, 0.00);
  second.seed = 2;
  seeded.push_back(second);
  const std::string seed_table = table2_markdown(seeded);
  // qa K = 1: (0.90 + 0.70) / 2 = 0.80, se sqrt(0.03^2 + 0.02 / 2) = 0.104 (mean se 0.03, the
  // seeds' sample variance 0.02); qa: (0.80 + 0.96) / 2 = 0.88, se (0.104 + 0.04) / 2 = 0.072.
  EXPECT_NE(seed_table.find("| 0.88 ± 0.07"), std::string::npos) << seed_table;
  EXPECT_NE(seed_table.find("several editor training seeds"), std::string::npos) << seed_table;
  const std::string per_k = batch_size_markdown(seeded);
  EXPECT_NE(per_k.find("| qa | seprog | 1 | 2 | 5 | 0 / 0 | 0.80 ± 0.10 (spread 0.20) |"), std::string::npos) << per_k;
  EXPECT_EQ(per_k.find("editor options differ"), std::string::npos) << "rows without options: nothing to compare";
}

// The per-K table names the editor options the averaged seeds of a cell disagree on, the seed
// aside, so a results file that mixes, say, gate thresholds does not pass for seeds of one setting.
TEST(Report, SeedsWithDifferentEditorOptionsAreNamed) {
  ResultRow first = row("seprog", "qa", 1, 0.90, 0.03, 0.00, 0.00), second = row("seprog", "qa", 1, 0.70, 0.04, 0.10, 0.00);
  first.seed = 1;
  second.seed = 2;
  first.editor_options = {{"seed", 1}, {"lr", 0.0003}, {"gate_threshold", 0.5}};
  second.editor_options = {{"seed", 2}, {"lr", 0.0003}, {"gate_threshold", 0.5}};
  ResultRow other_k = first, other_k_second = second;
  other_k.batch_size = other_k_second.batch_size = 4;
  EXPECT_EQ(batch_size_markdown({first, second, other_k, other_k_second}).find("editor options differ"), std::string::npos)
      << "the seeds differ only in their seed";

  second.editor_options["gate_threshold"] = 0.7;
  other_k_second.editor_options["pair_gate"] = true;  // an option only one seed's row names
  const std::string per_k = batch_size_markdown({first, second, other_k, other_k_second});
  EXPECT_NE(per_k.find("Averaged over seeds whose editor options differ (the seed aside): qa / seprog (gate_threshold, pair_gate)."),
            std::string::npos)
      << per_k;
  ResultRow unrecorded = row("serac", "qa", 1, 0.30, 0.03, 0.01, 0.00);  // written before rows held options
  unrecorded.seed = 2;
  ResultRow recorded = unrecorded;
  recorded.seed = 1;
  recorded.editor_options = {{"seed", 1}, {"lr", 0.001}};
  EXPECT_EQ(batch_size_markdown({recorded, unrecorded}).find("editor options differ"), std::string::npos);
}

TEST(Report, SideBySidePutsMethodsInColumnsAndAveragesSeeds) {
  ResultRow seprog1 = row("seprog", "qa", 10, 0.90, 0.01, 0.02, 0.01);
  ResultRow seprog1_seed2 = row("seprog", "qa", 10, 0.80, 0.01, 0.04, 0.01);
  seprog1.seed = 1;
  seprog1_seed2.seed = 2;
  const ResultRow seprog_k1 = row("seprog", "qa", 1, 1.0, 0.0, 0.0, 0.0);
  const ResultRow mend_k10 = row("mend", "qa", 10, 0.25, 0.02, 0.5, 0.02);
  const ResultRow mend_entail = row("mend", "entail", 4, 0.126, 0.02, 0.374, 0.02);
  const std::string table = side_by_side_markdown({seprog1, mend_k10, seprog1_seed2, seprog_k1, mend_entail});
  std::istringstream lines(table);
  std::vector<std::string> all;
  for (std::string line; std::getline(lines, line);) all.push_back(line);
  ASSERT_EQ(all.size(), 5u) << table;
  EXPECT_EQ(all[0], "| Benchmark | K | seprog ES / DD | mend ES / DD |");
  EXPECT_EQ(all[1], "|---|---|---|---|");
  // Benchmarks in order of first appearance, K ascending; the two seeds' mean; "–" where missing.
  EXPECT_EQ(all[2], "| qa | 1 | 1.00 / 0.00 | – |");
  EXPECT_EQ(all[3], "| qa | 10 | 0.85 / 0.03 | 0.25 / 0.50 |");
  EXPECT_EQ(all[4], "| entail | 4 | – | 0.13 / 0.37 |");
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
  ASSERT_EQ(all.size(), 7u) << table;
  EXPECT_EQ(all[0], "| Benchmark | Method | K | Seeds | Draws | In / out examples | ES | ES all | ES0 | DD | Acc. drop | Hard DD | ms per draw |");
  // Sorted by benchmark (first appearance), method, then K.
  EXPECT_EQ(all[2], "| relations | seprog | 1 | 1 | 5 | 0 / 0 | 0.90 ± 0.10 | 0.90 | 0.05 | 0.00 ± 0.00 | 0.00 | – | – |");
  EXPECT_EQ(all[3], "| relations | seprog | 64 | 1 | 5 | 0 / 0 | 0.81 ± 0.01 | 0.81 | 0.05 | 0.02 ± 0.00 | 0.01 | 0.12 ± 0.02 | 812.5 |");
  EXPECT_EQ(all[4].rfind("| qa | seprog | 4 | 1 | 5 | 0 / 0 | 0.95 ± 0.01 |", 0), 0u) << all[4];
  // A cell short of the examples it was to rest on is marked.
  ResultRow short_of = c;
  short_of.target_examples = 300;
  short_of.needed_examples = 120;
  short_of.out_examples = 400;
  EXPECT_NE(batch_size_markdown({short_of}).find("| 120 / 400 † |"), std::string::npos) << batch_size_markdown({short_of});
  // A validation-split row is told apart from the test split's.
  ResultRow v = c;
  v.split = "validation";
  EXPECT_NE(batch_size_markdown({c, v}).find("| qa (validation) | seprog | 4 |"), std::string::npos);

  const std::string both = results_markdown({a, b, c});
  EXPECT_NE(both.find(table2_markdown({a, b, c})), std::string::npos);
  EXPECT_NE(both.find(table), std::string::npos);
  EXPECT_LT(both.find("Table 2"), both.find("Per edit batch size"));
}

}  // namespace editlab_eval_test
