// SERAC (editors/serac.hpp): the routing between the untouched base and the counterfactual
// model, the edit memory on disk, the saved weights, the counterfactual model made from the
// base, and the classifier's loss against a plain-loop reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "editors/serac.hpp"
#include "eval/metrics.hpp"
#include "scratch.hpp"
#include "tiny_pretrain.hpp"

namespace editlab_serac_test {

namespace fs = std::filesystem;
using editlab::Case;
using editlab::Example;
using editlab::Split;
using editlab::editors::Serac;
using editlab::editors::SeracOptions;
using editlab::model::Seq2Seq;

const TinyQaBase& tiny() { return tiny_qa_base("editlab_serac_test_base"); }

SeracOptions small_options(double threshold = 0.5) {
  SeracOptions o;
  o.embedding_dim = 8;
  o.threshold = threshold;
  return o;
}

std::vector<Case> first_cases(std::size_t n) {
  const auto& cases = tiny().qa.split(Split::test);
  return {cases.begin(), cases.begin() + static_cast<std::ptrdiff_t>(std::min(n, cases.size()))};
}

std::vector<std::string> probe_inputs(const std::vector<Case>& cases) {
  std::vector<std::string> out;
  for (const auto& c : cases) {
    out.push_back(c.edit.input);
    for (const auto* set : {&c.in_scope, &c.out_scope, &c.hard_out_scope})
      for (const auto& e : *set) out.push_back(e.input);
  }
  for (const auto& c : tiny().qa.split(Split::validation)) out.push_back(c.edit.input);
  return out;
}

TEST(Serac, RoutesBelowTheThresholdToTheBaseAndAboveToTheCounterfactualModel) {
  auto base = Seq2Seq::load(tiny().dir);
  const auto batch = first_cases(4);
  const auto descriptors = editlab::eval::descriptors_of(batch);
  const auto inputs = probe_inputs(batch);

  // The scores, from an editor whose threshold does not matter: put the threshold between two
  // of them so that both routes are taken.
  Serac probe(base, tiny().qa, small_options());
  probe.apply(descriptors);
  std::vector<float> scores;
  for (const auto& r : probe.route(inputs)) scores.push_back(r.score);
  std::vector<float> sorted = scores;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  ASSERT_GE(sorted.size(), 2u) << "every input scored the same";
  const auto middle = sorted.size() / 2;
  const double threshold = 0.5 * (sorted[middle - 1] + sorted[middle]);

  Serac editor(base, tiny().qa, small_options(threshold));  // same seed: the same classifier
  editor.apply(descriptors);
  const auto routes = editor.route(inputs);
  const auto answers = editor.predict(inputs);
  const auto base_answers = base.predict(inputs, {});
  std::size_t routed = 0, plain = 0, differs = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    ASSERT_FLOAT_EQ(routes[i].score, scores[i]) << inputs[i];
    ASSERT_EQ(routes[i].counterfactual, routes[i].score > threshold);
    if (routes[i].counterfactual) {
      ++routed;
      const auto text = editlab::editors::counterfactual_input(descriptors[routes[i].edit], inputs[i]);
      EXPECT_EQ(answers[i], editor.counterfactual_model().predict({text}, {}).front()) << inputs[i];
      differs += answers[i] != base_answers[i];
    } else {
      ++plain;
      EXPECT_EQ(answers[i], base_answers[i]) << "below the threshold the base model answers: " << inputs[i];
    }
  }
  EXPECT_GT(routed, 0u);
  EXPECT_GT(plain, 0u);
  EXPECT_GT(differs, 0u) << "the counterfactual model answered as the base everywhere: the routing test proves nothing";
  // A descriptor's own input is at distance 0 from its edit: score 1, routed to that edit.
  const auto own = editor.route({descriptors[2].input}).front();
  EXPECT_EQ(own.edit, 2u);
  EXPECT_NEAR(own.score, 1.0f, 1e-4f);
}

TEST(Serac, TheMemoryRoundTripsThroughDiskAndEditsCanBeRemoved) {
  auto base = Seq2Seq::load(tiny().dir);
  const auto batch = first_cases(4);
  const auto inputs = probe_inputs(batch);
  const auto file = scratch_path("editlab_serac_memory") / "memory.safetensors";
  fs::create_directories(file.parent_path());

  Serac editor(base, tiny().qa, small_options());
  editor.apply(editlab::eval::descriptors_of(batch));
  const auto answers = editor.predict(inputs);
  editor.memory().save(file);

  Serac loaded(base, tiny().qa, small_options());
  loaded.memory().load(file, loaded.options().embedding_dim);
  ASSERT_EQ(loaded.memory().size(), batch.size());
  EXPECT_EQ(loaded.predict(inputs), answers);

  EXPECT_EQ(loaded.memory().remove(batch[0].edit.input), 1u);
  for (const auto& r : loaded.route({batch[0].edit.input})) EXPECT_LT(r.score, 1.0f - 1e-4f) << "the removed edit still matched";
}

TEST(Serac, SavedWeightsLoadIntoAFreshEditor) {
  auto base = Seq2Seq::load(tiny().dir);
  const auto batch = first_cases(4);
  const auto dir = scratch_path("editlab_serac_run");
  Serac trained(base, tiny().qa, small_options());
  for (int step = 0; step < 3; ++step) trained.train_step(batch);
  trained.save(dir);
  trained.apply(editlab::eval::descriptors_of(batch));

  SeracOptions other_seed = small_options();
  other_seed.seed = 7;
  Serac loaded(base, tiny().qa, other_seed);
  loaded.load_weights(dir);
  loaded.apply(editlab::eval::descriptors_of(batch));
  const auto inputs = probe_inputs(batch);
  const auto a = trained.route(inputs), b = loaded.route(inputs);
  for (std::size_t i = 0; i < inputs.size(); ++i) EXPECT_FLOAT_EQ(a[i].score, b[i].score);
  EXPECT_EQ(loaded.predict(inputs), trained.predict(inputs));
}

TEST(Serac, TheCounterfactualModelStartsAsTheBasesFirstBlocks) {
  auto base = Seq2Seq::load(tiny().dir);
  SeracOptions o = small_options();
  o.counterfactual_layers = 1;
  Serac editor(base, tiny().qa, o);
  auto& counterfactual = editor.counterfactual_model().model;
  EXPECT_EQ(counterfactual.decoder.block.size(), 1u);
  const auto base_state = tensortape::nn::state_dict(base.model);
  std::size_t compared = 0;
  for (auto& [name, p] : counterfactual.named_parameters()) {
    ASSERT_TRUE(base_state.count(name)) << name;
    EXPECT_EQ(p.to_vector(), base_state.at(name).to_vector()) << name;
    ++compared;
  }
  EXPECT_GT(compared, 0u);
  // Training it leaves the base alone.
  const auto before = base.model.named_parameters().front().second.to_vector();
  editor.train_step(first_cases(4));
  EXPECT_EQ(base.model.named_parameters().front().second.to_vector(), before);
}

// The classifier's balanced BCE, recomputed in plain loops from the routes' scores: positives
// (edit i, its in-scope example), negatives (edit i, another in-scope example or any out-scope
// input); with c_counterfactual = 0 the step loss is that BCE alone.
TEST(Serac, TheClassifierLossIsTheBalancedBceOfTheScores) {
  auto base = Seq2Seq::load(tiny().dir);
  SeracOptions o = small_options();
  o.c_counterfactual = 0.0;
  Serac editor(base, tiny().qa, o);
  const auto batch = first_cases(3);
  editlab::train::EditBatch data;
  for (const auto& c : batch) {
    data.edits.push_back(c.edit);
    data.in_scope.push_back(c.in_scope.front());
    data.out_scope.push_back(c.out_scope.front());
  }
  const double loss = editor.step_loss(data).item();

  editor.apply(data.edits);
  // score of (edit e, input x): exp(-d^2); each input's route scores against all edits, so
  // ask for one edit's memory at a time.
  auto score = [&](std::size_t e, const std::string& x) {
    Serac one(base, tiny().qa, o);
    one.apply({data.edits[e]});
    return static_cast<double>(one.route({x}).front().score);
  };
  double positive = 0, negative = 0;
  std::size_t negatives = 0;
  for (std::size_t e = 0; e < data.edits.size(); ++e) {
    for (std::size_t j = 0; j < data.in_scope.size(); ++j) {
      const double s = score(e, data.in_scope[j].input);
      if (j == e) {
        positive += -std::log(std::max(s, 1e-30));
      } else {
        negative += -std::log(1.0 - s * std::exp(-1e-4));
        ++negatives;
      }
    }
    for (const auto& x : data.out_scope) {
      negative += -std::log(1.0 - score(e, x.input) * std::exp(-1e-4));
      ++negatives;
    }
  }
  const double expected = positive / static_cast<double>(data.edits.size()) + negative / static_cast<double>(negatives);
  EXPECT_NEAR(loss, expected, 1e-3 * std::max(1.0, expected));
}

}  // namespace editlab_serac_test
