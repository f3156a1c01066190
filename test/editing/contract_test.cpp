// The editor contract (eval/editor.hpp), run on every editor: a typed test over the editors
// editlab has. An editor with no edits answers exactly as the untouched base model the harness
// holds; reset() restores that exactly after any edits; applying nothing changes nothing; edits
// act the same when applied again; the answer to an input does not depend on what else is in
// the batch (the harness asks for all sets in one call); and the harness, driving it, reports
// ES0 as the base model's own score.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "editors/registry.hpp"
#include "eval/harness.hpp"
#include "eval/metrics.hpp"
#include "scratch.hpp"
#include "tiny_pretrain.hpp"

namespace editlab_contract_test {

namespace fs = std::filesystem;
using editlab::eval::BasePredictor;
using editlab::eval::Editor;
using editlab::world::Case;
using editlab::world::Example;
using editlab::world::Split;

const TinyQaBase& tiny() { return tiny_qa_base("editlab_contract_test_base"); }

// An editor under test, with the base model it edits (its own copy: some editors train it).
struct EditorUnderTest {
  std::unique_ptr<editlab::model::Seq2Seq> base;
  std::unique_ptr<Editor> editor;
};

template <editlab::editors::SeprogVariant variant>
struct SeprogMaker {
  static EditorUnderTest make(const fs::path& dir) {
    EditorUnderTest e{std::make_unique<editlab::model::Seq2Seq>(editlab::model::Seq2Seq::load(dir)), nullptr};
    editlab::editors::SeprogOptions o;
    o.variant = variant;
    o.prefix_length = 4;
    o.memory_dim = 16;
    o.hidden = 32;
    o.key_tokens = 16;
    e.editor = std::make_unique<editlab::editors::Seprog>(*e.base, std::vector<std::string>{}, o);
    return e;
  }
};

// A weight-editing method from the registry with its defaults, small where it matters here.
template <const char* method>
struct RegistryMaker {
  static EditorUnderTest make(const fs::path& dir) {
    EditorUnderTest e{std::make_unique<editlab::model::Seq2Seq>(editlab::model::Seq2Seq::load(dir)), nullptr};
    auto options = editlab::editors::method(method).default_options();
    if (options.contains("rank")) options["rank"] = 8;
    if (options.contains("max_steps")) options["max_steps"] = 5;
    if (options.contains("embedding_dim")) options["embedding_dim"] = 8;
    e.editor = editlab::editors::method(method).make(*e.base, tiny().qa, options);
    return e;
  }
};
constexpr char kFt[] = "ft", kFtKl[] = "ft-kl", kEnn[] = "enn", kMend[] = "mend", kSerac[] = "serac", kSlag[] = "slag";

template <class Maker>
class EditorContract : public ::testing::Test {};

using Editors = ::testing::Types<SeprogMaker<editlab::editors::SeprogVariant::seprog>,
                                 SeprogMaker<editlab::editors::SeprogVariant::finetune>,
                                 SeprogMaker<editlab::editors::SeprogVariant::noclassifier>,
                                 SeprogMaker<editlab::editors::SeprogVariant::noselect>, RegistryMaker<kFt>,
                                 RegistryMaker<kFtKl>, RegistryMaker<kEnn>, RegistryMaker<kMend>, RegistryMaker<kSerac>,
                                 RegistryMaker<kSlag>>;
TYPED_TEST_SUITE(EditorContract, Editors);

BasePredictor untouched(const fs::path& dir) {
  auto base = std::make_shared<editlab::model::Seq2Seq>(editlab::model::Seq2Seq::load(dir));
  return [base](const std::vector<std::string>& inputs) { return base->predict(inputs, {}); };
}

std::vector<std::string> probe_inputs(const std::vector<Case>& cases) {
  std::vector<std::string> out;
  for (const auto& c : cases) {
    out.push_back(c.edit.input);
    for (const auto* set : {&c.in_scope, &c.out_scope, &c.seen_out_scope})
      for (const auto& e : *set) out.push_back(e.input);
  }
  return out;
}

TYPED_TEST(EditorContract, UneditedAndResetAnswerAsTheUntouchedBase) {
  const auto& t = tiny();
  auto under_test = TypeParam::make(t.dir);
  Editor& editor = *under_test.editor;
  const auto& cases = t.qa.split(Split::test);
  const std::vector<Case> batch(cases.begin(), cases.begin() + std::min<std::size_t>(4, cases.size()));
  const auto inputs = probe_inputs(batch);
  const auto base = untouched(t.dir)(inputs);

  const auto weights = [&] {
    std::map<std::string, std::vector<float>> out;
    for (auto& [name, p] : under_test.base->model.named_parameters()) out.emplace(name, p.to_vector());
    return out;
  };
  const auto unedited_weights = weights();

  EXPECT_EQ(editor.predict(inputs), base) << "a new editor must answer as the base model";
  editor.apply({});
  EXPECT_EQ(editor.predict(inputs), base) << "applying no edit must change nothing";
  EXPECT_TRUE(weights() == unedited_weights) << "applying no edit must leave every base weight as it was";
  editor.apply(editlab::eval::descriptors_of(batch));
  const auto edited = editor.predict(inputs);
  ASSERT_EQ(edited.size(), inputs.size());
  editor.reset();
  EXPECT_EQ(editor.predict(inputs), base) << "reset() must restore the unedited answers exactly";
  EXPECT_TRUE(weights() == unedited_weights) << "reset() must leave every base weight bit-identical";
  editor.apply(editlab::eval::descriptors_of(batch));
  EXPECT_EQ(editor.predict(inputs), edited) << "the same edits, applied again, must act the same";
  editor.reset();
  EXPECT_TRUE(editor.predict({}).empty());
}

TYPED_TEST(EditorContract, AnAnswerDoesNotDependOnTheRestOfTheBatch) {
  const auto& t = tiny();
  auto under_test = TypeParam::make(t.dir);
  Editor& editor = *under_test.editor;
  const auto& cases = t.qa.split(Split::test);
  const std::vector<Case> batch(cases.begin(), cases.begin() + std::min<std::size_t>(3, cases.size()));
  const auto inputs = probe_inputs(batch);
  editor.apply(editlab::eval::descriptors_of(batch));
  const auto together = editor.predict(inputs);
  for (std::size_t i = 0; i < inputs.size(); ++i) EXPECT_EQ(editor.predict({inputs[i]}).front(), together[i]) << inputs[i];
  auto reversed = inputs;
  std::reverse(reversed.begin(), reversed.end());
  auto back = editor.predict(reversed);
  std::reverse(back.begin(), back.end());
  EXPECT_EQ(back, together);
}

TYPED_TEST(EditorContract, TheHarnessMeasuresAgainstItsOwnBase) {
  const auto& t = tiny();
  auto under_test = TypeParam::make(t.dir);
  const auto base = untouched(t.dir);
  const auto& pool = t.qa.split(Split::test);
  editlab::eval::EvalOptions options;
  options.batch_sizes = {1, static_cast<int>(pool.size())};
  options.min_draws = options.max_draws = 2;
  options.min_examples = 0;
  const auto rows = editlab::eval::evaluate(*under_test.editor, base, t.qa, Split::test, options, nullptr);
  ASSERT_EQ(rows.size(), 2u);
  // K = the whole split, twice: ES0 is the base model's accuracy on every in-scope example.
  std::vector<Example> in_scope;
  for (const auto& c : pool) in_scope.insert(in_scope.end(), c.in_scope.begin(), c.in_scope.end());
  EXPECT_DOUBLE_EQ(rows[1].es0, editlab::eval::accuracy(base(editlab::eval::inputs_of(in_scope)), in_scope));
  for (const auto& row : rows) {
    EXPECT_GE(row.dd, 0.0);
    EXPECT_LE(row.dd, 1.0);
    EXPECT_EQ(row.method, under_test.editor->name());
  }
}

}  // namespace editlab_contract_test
