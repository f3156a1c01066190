// SEPROG: the frozen-backbone gradient route, gating at e(x) > 0.5, the edit memory's add /
// remove / persist round trip, and that training lowers the validation loss. On a tiny base
// model pretrained here in a second (the real one is made by `editlab pretrain`).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "editors/seprog.hpp"
#include "eval/cost.hpp"
#include "eval/harness.hpp"
#include "pretrain/pretrain.hpp"
#include "scratch.hpp"
#include "tiny_pretrain.hpp"

namespace editlab_seprog_test {

namespace fs = std::filesystem;
using editlab::editors::Seprog;
using editlab::editors::SeprogOptions;
using editlab::editors::SeprogVariant;
using editlab::world::Example;

editlab::pretrain::PretrainOptions tiny_options(const fs::path& out) {
  auto o = tiny_pretrain_options(out);
  o.steps = 300;
  o.warmup_steps = 20;
  o.lr = 3e-3;
  return o;
}

struct TinyWorld {
  editlab::model::Seq2Seq base;
  editlab::world::Benchmark qa, relations;
};

TinyWorld& tiny() {
  static TinyWorld* w = [] {
    const fs::path dir = scratch_path("editlab_seprog_test_base");
    fs::remove_all(dir);
    const auto options = tiny_options(dir);
    editlab::pretrain::pretrain(options);
    auto world = editlab::world::generate(options.world);
    return new TinyWorld{editlab::model::Seq2Seq::load(dir), editlab::world::make_benchmark(world, "qa"),
                         editlab::world::make_benchmark(world, "relations")};
  }();
  return *w;
}

SeprogOptions small(SeprogVariant variant = SeprogVariant::seprog) {
  SeprogOptions o;
  o.variant = variant;
  o.prefix_length = 4;
  o.memory_dim = 16;
  o.hidden = 32;
  o.max_edits = 4;
  o.examples_per_step = 6;
  return o;
}

editlab::editors::TrainControl quietly(const fs::path& checkpoint_dir = {}) {
  editlab::editors::TrainControl control;
  control.quiet = true;
  control.checkpoint_dir = checkpoint_dir;
  control.identity = {{"benchmark", "qa"}};
  return control;
}

// The case of `pool` whose edit has this input (a test failure, and an empty case, when none has).
const editlab::world::Case& case_of(const std::vector<editlab::world::Case>& pool, const std::string& edit_input) {
  for (const auto& c : pool)
    if (c.edit.input == edit_input) return c;
  ADD_FAILURE() << "not in the pool: " << edit_input;
  static const editlab::world::Case none;
  return none;
}

std::vector<std::string> inputs_of(const std::vector<editlab::world::Case>& cases) {
  std::vector<std::string> out;
  for (const auto& c : cases) {
    out.push_back(c.edit.input);
    for (const auto& e : c.out_scope) out.push_back(e.input);
  }
  return out;
}

TEST(Seprog, GradientReachesOnlySeprogModulesThroughTheFrozenBase) {
  auto& t = tiny();
  Seprog editor(t.base, {}, small());
  tensortape::Rng rng(3);
  const auto data = editor.draw(t.qa.split(editlab::world::Split::train), rng);
  ASSERT_FALSE(data.in_scope.empty());
  ASSERT_FALSE(data.out_scope.empty());
  tensortape::backward(editor.step_loss(data));
  for (auto& [name, p] : t.base.model.named_parameters()) EXPECT_FALSE(p.grad().defined()) << name;
  std::size_t with_grad = 0, nonzero = 0;
  for (auto& [name, p] : editor.modules().named_parameters()) {
    if (!p.grad().defined()) continue;
    ++with_grad;
    for (float g : p.grad().to_vector())
      if (g != 0.0f) {
        ++nonzero;
        break;
      }
  }
  EXPECT_EQ(with_grad, editor.modules().parameters().size());
  EXPECT_GT(nonzero, with_grad / 2);
}

TEST(Seprog, EmptyMemoryOrOutOfScopeMeansTheBaseModelUntouched) {
  auto& t = tiny();
  Seprog editor(t.base, {}, small());
  const auto& cases = t.qa.split(editlab::world::Split::test);
  const auto inputs = inputs_of(cases);
  const auto base_answers = t.base.answer(inputs);
  EXPECT_EQ(editor.predict(inputs), base_answers);
  // Force e(x) ~ 0: every input is out of scope, so no prefix is injected anywhere.
  {
    tensortape::NoGradGuard no_grad;
    editor.modules().classifier_out.bias.fill_(-100.0f);
  }
  editor.apply(editlab::eval::descriptors_of({cases.begin(), cases.begin() + 2}));
  for (float p : editor.scope_probabilities(inputs)) EXPECT_LT(p, 1e-6f);
  EXPECT_EQ(editor.predict(inputs), base_answers);
  // Force e(x) ~ 1 and a large prompt: the prefix changes what the frozen decoder says.
  {
    tensortape::NoGradGuard no_grad;
    editor.modules().classifier_out.bias.fill_(100.0f);
    editor.modules().prompt_out.bias.fill_(25.0f);
  }
  for (float p : editor.scope_probabilities(inputs)) EXPECT_GT(p, 1.0f - 1e-6f);
  EXPECT_NE(editor.predict(inputs), base_answers);
}

// Which inputs get the prompt is e(x) > gate_threshold, input by input: each answer is either
// the one it gets with every input prompted or the base's. A large prompt makes most prompted
// answers differ from the base's; those inputs are the ones that tell the two apart.
TEST(Seprog, TheGateThresholdDecidesWhichInputsGetThePrefix) {
  auto& t = tiny();
  Seprog editor(t.base, {}, small());
  const auto& cases = t.qa.split(editlab::world::Split::test);
  const auto inputs = inputs_of(cases);
  const auto base_answers = t.base.answer(inputs);
  {
    tensortape::NoGradGuard no_grad;
    editor.modules().prompt_out.bias.fill_(25.0f);
  }
  editor.apply(editlab::eval::descriptors_of({cases.begin(), cases.begin() + 2}));
  const auto p = editor.scope_probabilities(inputs);
  auto sorted = p;
  std::sort(sorted.begin(), sorted.end());
  ASSERT_LT(sorted.front(), sorted.back()) << "every input has the same e(x)";
  editor.set_gate_threshold(1e-9);
  const auto prompted = editor.predict(inputs);  // every input
  const double threshold = sorted[sorted.size() / 2];
  editor.set_gate_threshold(threshold);
  const auto answers = editor.predict(inputs);
  int telling_above = 0, telling_below = 0;  // inputs whose prompted answer differs from the base's
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    EXPECT_EQ(answers[i], p[i] > threshold ? prompted[i] : base_answers[i]) << inputs[i] << " e(x) " << p[i];
    if (prompted[i] != base_answers[i]) ++(p[i] > threshold ? telling_above : telling_below);
  }
  EXPECT_GT(telling_above, 0);
  EXPECT_GT(telling_below, 0);
  EXPECT_THROW(editor.set_gate_threshold(1.0), tensortape::Error);
}

TEST(Seprog, MemoryAddRemoveAndPersistRoundTrip) {
  auto& t = tiny();
  Seprog editor(t.base, {}, small());
  const auto& cases = t.qa.split(editlab::world::Split::test);
  editor.apply(editlab::eval::descriptors_of({cases.begin(), cases.begin() + 3}));
  ASSERT_EQ(editor.memory().size(), 3u);
  const auto before = editor.memory().encodings().to_vector();
  // Adding encodes only the new descriptor: the old rows are unchanged.
  editor.add_edits({cases[3].edit});
  ASSERT_EQ(editor.memory().size(), 4u);
  const auto after_add = editor.memory().encodings().to_vector();
  EXPECT_EQ(std::vector<float>(after_add.begin(), after_add.begin() + before.size()), before);

  const fs::path file = scratch_path("editlab_seprog_memory.safetensors");
  editor.memory().save(file);
  Seprog other(t.base, {}, small());
  const auto width = small().memory_width();  // 2 d_h: a key and a value per edit
  other.memory().load(file, width);
  EXPECT_EQ(other.memory().encodings().to_vector(), after_add);
  ASSERT_EQ(other.memory().size(), 4u);
  EXPECT_EQ(other.memory().descriptors()[3].input, cases[3].edit.input);
  EXPECT_EQ(other.memory().descriptors()[3].target, cases[3].edit.target);
  const auto inputs = inputs_of({cases.begin(), cases.begin() + 4});
  EXPECT_EQ(other.predict(inputs), editor.predict(inputs));

  // Removing drops that descriptor's row and keeps the others in order.
  EXPECT_EQ(editor.memory().remove(cases[1].edit.input), 1u);
  ASSERT_EQ(editor.memory().size(), 3u);
  const auto kept = editor.memory().encodings().to_vector();
  const auto d = static_cast<std::size_t>(width);
  EXPECT_EQ(std::vector<float>(kept.begin(), kept.begin() + d), std::vector<float>(after_add.begin(), after_add.begin() + d));
  EXPECT_EQ(std::vector<float>(kept.begin() + d, kept.end()), std::vector<float>(after_add.begin() + 2 * d, after_add.end()));
  EXPECT_EQ(editor.memory().remove("not in the memory"), 0u);
  EXPECT_THROW(other.memory().load(file, width + 1), tensortape::Error);
}

TEST(Seprog, KeyValueMemoryAndMatchFeatureTrainEveryModuleAndPersist) {
  auto& t = tiny();
  auto options = small();
  ASSERT_TRUE(options.key_value && options.match_feature && options.token_match) << "the defaults";
  options.token_match = options.answer_match = options.exact_match = false;  // pooled keys: the form this test covers
  Seprog editor(t.base, {}, options);
  tensortape::Rng rng(5);
  tensortape::backward(editor.step_loss(editor.draw(t.qa.split(editlab::world::Split::train), rng)));
  for (auto& [name, p] : editor.modules().named_parameters()) EXPECT_TRUE(p.grad().defined()) << name;
  EXPECT_EQ(editor.modules().classifier_hidden.weight.shape()[1], 16 + t.base.model.config().d_model + 1);

  const auto& cases = t.qa.split(editlab::world::Split::test);
  editor.apply(editlab::eval::descriptors_of({cases.begin(), cases.begin() + 3}));
  EXPECT_EQ(editor.memory().encodings().shape(), (tensortape::Shape{3, 32}));  // a key and a value of d_h = 16 each
  const fs::path file = scratch_path("editlab_seprog_kv_memory.safetensors");
  editor.memory().save(file);
  const fs::path dir = scratch_path("editlab_seprog_kv_run");
  editor.save(dir);
  EXPECT_EQ(Seprog::read_options(dir).to_json(), options.to_json());
  Seprog other(t.base, {}, Seprog::read_options(dir));
  other.load_weights(dir);
  other.memory().load(file, options.memory_width());
  const auto inputs = inputs_of({cases.begin(), cases.begin() + 3});
  EXPECT_EQ(other.scope_probabilities(inputs), editor.scope_probabilities(inputs));
  EXPECT_THROW(other.memory().load(file, options.memory_dim), tensortape::Error);

  // The paper's form: one vector per edit, and NN_e over [h(x); b(x)] only.
  options.key_value = options.match_feature = options.token_match = options.answer_match = options.exact_match = false;
  Seprog paper(t.base, {}, options);
  paper.apply(editlab::eval::descriptors_of({cases.begin(), cases.begin() + 3}));
  EXPECT_EQ(paper.memory().encodings().shape(), (tensortape::Shape{3, 16}));
  EXPECT_EQ(paper.modules().classifier_hidden.weight.shape()[1], 16 + t.base.model.config().d_model);
}

// r(x) for each text, by a different route than the editor's: the decoder run over two steps
// (the start token and an arbitrary second token), keeping the first step, which causal
// attention keeps independent of the second. Checks on the way that the lm_head turns it into
// the first-step logits of the model's own decode(). (B, D) as rows.
std::vector<std::vector<double>> first_step_states(editlab::model::Seq2Seq& base, const std::vector<std::string>& texts) {
  namespace tt = tensortape;
  using editlab::model::Cpu;
  tt::NoGradGuard no_grad;
  const auto& t5 = base.model;
  const auto [ids, mask] = base.encode_inputs(texts);
  const auto encoded = t5.encode(ids, mask);
  const auto b = static_cast<std::int64_t>(texts.size()), d = t5.config().d_model;
  std::vector<std::int64_t> steps;
  for (std::int64_t row = 0; row < b; ++row) steps.insert(steps.end(), {t5.config().decoder_start_token_id, 7});
  const auto decoder_ids = tt::from_vector<std::int64_t, Cpu>({b, 2}, steps);
  const auto hidden = t5.decoder(t5.shared(decoder_ids), tt::nn::causal_mask_bias<float, Cpu>(2, 2), encoded,
                                 tt::nn::key_mask_bias<float, Cpu>(mask), nullptr);                  // (B, 2, D)
  const auto first = hidden.narrow(1, 0, 1).contiguous_copy();                                     // (B, 1, D)
  const auto logits = t5.project_to_vocab(first).to_vector();
  const auto expected = t5.decode(decoder_ids, encoded, mask).narrow(1, 0, 1).contiguous_copy().to_vector();
  EXPECT_EQ(logits.size(), expected.size());
  for (std::size_t i = 0; i < logits.size(); ++i) EXPECT_NEAR(logits[i], expected[i], 1e-4) << i;
  const auto values = first.to_vector();
  std::vector<std::vector<double>> out;
  for (std::int64_t row = 0; row < b; ++row) out.emplace_back(values.begin() + row * d, values.begin() + (row + 1) * d);
  return out;
}

// token_match, recomputed with plain loops from the frozen encoder's token states and the
// module weights: score_i = scale * sum_t a_it max_s cos(q_s, k_it), a softmax over the key's
// first key_tokens tokens under salience head 0 (scope) or 1 (selection); with exact_match
// each score gains its head's exact scale * sum_t a_t [key token t's id is among the query's,
// and is no padding, end or unknown]; with answer_match its head's answer scale *
// cos(W_ans r(query), W_ans r(key)). Returns the
// selection weights softmax_i(score_i) (B, K) and the best scope score (B).
struct TokenMatchReference {
  std::vector<double> weights, best_scope;
};
TokenMatchReference token_match_reference(Seprog& editor, editlab::model::Seq2Seq& base,
                                          const std::vector<std::string>& queries, const std::vector<std::string>& keys) {
  auto& m = editor.modules();
  const auto d_h = editor.options().memory_dim;
  const auto projection = m.attention_projection.weight.to_vector();  // (d_h, D)
  const auto salience = m.salience.weight.to_vector();                // (2, D)
  const double scale = std::exp(m.log_match_scale.to_vector()[0]);
  // Each text's tokens, projected to unit length, and their salience logits.
  struct Tokens {
    std::vector<std::vector<double>> unit;
    std::vector<double> logits[2];
    std::vector<std::int64_t> ids;
  };
  auto tokens = [&](const std::vector<std::string>& texts, std::size_t keep) {
    const auto [ids, mask] = base.encode_inputs(texts);
    const auto hidden = base.model.encode(ids, mask).to_vector();  // (B, L, D)
    const auto on = mask.to_vector();
    const auto id = ids.to_vector();
    const auto length = static_cast<std::size_t>(mask.shape()[1]);
    const auto d = salience.size() / 2;
    std::vector<Tokens> out(texts.size());
    for (std::size_t b = 0; b < texts.size(); ++b)
      for (std::size_t l = 0; l < std::min(length, keep); ++l) {
        if (!on[b * length + l]) continue;
        const float* h = &hidden[(b * length + l) * d];
        std::vector<double> v(static_cast<std::size_t>(d_h));
        double norm = 0;
        for (std::size_t j = 0; j < v.size(); ++j) {
          for (std::size_t k = 0; k < d; ++k) v[j] += double(projection[j * d + k]) * h[k];
          norm += v[j] * v[j];
        }
        for (auto& x : v) x /= std::sqrt(norm);
        out[b].unit.push_back(v);
        out[b].ids.push_back(id[b * length + l]);
        for (std::size_t head = 0; head < 2; ++head) {
          double logit = 0;
          for (std::size_t k = 0; k < d; ++k) logit += double(salience[head * d + k]) * h[k];
          out[b].logits[head].push_back(logit);
        }
      }
    return out;
  };
  const auto q = tokens(queries, SIZE_MAX);
  const auto k = tokens(keys, static_cast<std::size_t>(editor.options().key_tokens));
  const bool exact = editor.options().exact_match;
  const double exact_scale[2] = {exact ? std::exp(m.log_exact_scale.to_vector()[0]) : 0.0, exact ? std::exp(m.log_exact_scale.to_vector()[1]) : 0.0};
  const auto& config = base.model.config();
  auto score = [&](const Tokens& query, const Tokens& key, int head) {
    const auto& logits = key.logits[head];
    const double top = *std::max_element(logits.begin(), logits.end());
    double total = 0, sum = 0, exact_sum = 0;
    for (double logit : logits) total += std::exp(logit - top);
    for (std::size_t t = 0; t < key.unit.size(); ++t) {
      double best = -2;
      for (const auto& token : query.unit)
        best = std::max(best, std::inner_product(token.begin(), token.end(), key.unit[t].begin(), 0.0));
      const double a = std::exp(logits[t] - top) / total;
      sum += a * best;
      const auto id = key.ids[t];
      const bool special = id == config.pad_token_id || id == config.eos_token_id || id == base.tokenizer.unk_id();
      if (!special && std::find(query.ids.begin(), query.ids.end(), id) != query.ids.end()) exact_sum += a;
    }
    return scale * sum + exact_scale[head] * exact_sum;
  };
  // answer_match's term for (query, key) under each head.
  std::vector<std::vector<double>> query_answers, key_answers;
  double answer_scale[2] = {0, 0};
  if (editor.options().answer_match) {
    const auto answer_projection = m.answer_projection.weight.to_vector();  // (d_h, D)
    auto project = [&](const std::vector<std::vector<double>>& states) {
      std::vector<std::vector<double>> out;
      for (const auto& r : states) {
        std::vector<double> v(static_cast<std::size_t>(d_h));
        double norm = 0;
        for (std::size_t j = 0; j < v.size(); ++j) {
          for (std::size_t k = 0; k < r.size(); ++k) v[j] += double(answer_projection[j * r.size() + k]) * r[k];
          norm += v[j] * v[j];
        }
        for (auto& x : v) x /= std::sqrt(norm);
        out.push_back(v);
      }
      return out;
    };
    query_answers = project(first_step_states(base, queries));
    key_answers = project(first_step_states(base, keys));
    for (int head = 0; head < 2; ++head) answer_scale[head] = std::exp(m.log_answer_scale.to_vector()[static_cast<std::size_t>(head)]);
  }
  auto answer_term = [&](std::size_t query, std::size_t key, int head) {
    if (query_answers.empty()) return 0.0;
    const auto& a = query_answers[query];
    return answer_scale[head] * std::inner_product(a.begin(), a.end(), key_answers[key].begin(), 0.0);
  };
  TokenMatchReference out;
  for (std::size_t query = 0; query < q.size(); ++query) {
    std::vector<double> selection;
    double best_scope = -1e300;
    for (std::size_t key = 0; key < k.size(); ++key) {
      selection.push_back(score(q[query], k[key], 1) + answer_term(query, key, 1));
      best_scope = std::max(best_scope, score(q[query], k[key], 0) + answer_term(query, key, 0));
    }
    out.best_scope.push_back(best_scope);
    const double top = *std::max_element(selection.begin(), selection.end());
    double total = 0;
    for (double s : selection) total += std::exp(s - top);
    for (double s : selection) out.weights.push_back(std::exp(s - top) / total);
  }
  return out;
}

// A step's groups of inputs (edits, in-scope, out-scope) share texts; frozen_encodings encodes
// each distinct text once and hands each group what its own frozen_encoding call would give:
// the same rows in the group's order, padded to the group's own longest input.
TEST(Seprog, SharedTextsAreEncodedOnceAndEachGroupGetsItsOwnCallsEncoding) {
  auto& t = tiny();
  const auto& cases = t.qa.split(editlab::world::Split::test);
  std::vector<std::string> edits, in_scope, out_scope;
  for (int i = 0; i < 3; ++i) edits.push_back(cases[i].edit.input);
  in_scope = {cases[1].in_scope.front().input, cases[0].edit.input, cases[1].in_scope.front().input, cases[2].edit.input};
  out_scope = {cases[3].out_scope.front().input, cases[1].edit.input};
  std::string longest;  // a longer input than any other group's, so that the pads differ
  for (const auto& c : cases)
    for (const auto& e : c.out_scope)
      if (t.base.encode(e.input).size() > t.base.encode(longest).size()) longest = e.input;
  out_scope.push_back(longest);
  for (bool answer_match : {false, true}) {
    SCOPED_TRACE(testing::Message() << "answer_match " << answer_match);
    auto options = small();
    options.answer_match = answer_match;
    Seprog editor(t.base, {}, options);
    const auto groups = editor.frozen_encodings({edits, in_scope, {}, out_scope});
    ASSERT_EQ(groups.size(), 4u);
    EXPECT_FALSE(groups[2].hidden.defined());
    std::vector<std::int64_t> lengths;
    for (std::size_t g : {0u, 1u, 3u}) {
      const auto& texts = g == 0 ? edits : g == 1 ? in_scope : out_scope;
      const auto own = editor.frozen_encoding(texts);
      const auto& shared = groups[g];
      ASSERT_EQ(shared.hidden.shape(), own.hidden.shape()) << "group " << g;
      lengths.push_back(own.hidden.shape()[1]);
      EXPECT_EQ(shared.ids.to_vector(), own.ids.to_vector()) << "group " << g;
      EXPECT_EQ(shared.mask.to_vector(), own.mask.to_vector()) << "group " << g;
      const auto a = shared.hidden.to_vector(), b = own.hidden.to_vector();
      for (std::size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5) << "group " << g << ", entry " << i;
      ASSERT_EQ(shared.answer_state.defined(), answer_match);
      if (!answer_match) continue;
      const auto r = shared.answer_state.to_vector(), r_own = own.answer_state.to_vector();
      ASSERT_EQ(r.size(), r_own.size());
      for (std::size_t i = 0; i < r.size(); ++i) ASSERT_NEAR(r[i], r_own[i], 1e-5) << "group " << g << ", entry " << i;
    }
    EXPECT_GT(lengths[2], std::max(lengths[0], lengths[1]));  // the groups' pads differ, as meant
  }
}

// The frozen encodings kept across training steps stand for the encoder's own: a step whose
// texts are partly cached (the rest encoded at the step) has the loss and the gradients of a
// step that encodes them all, and each group's rows hold the same tokens and values (pads may
// differ: they are masked wherever read). sp-finetune, whose base trains, never caches.
TEST(Seprog, CachedFrozenEncodingsGiveTheStepsLossAndGradients) {
  auto& t = tiny();
  tensortape::Rng draw_rng(11);
  const auto data = Seprog(t.base, {}, small()).draw(t.qa.split(editlab::world::Split::train), draw_rng);
  std::vector<std::string> texts;
  for (const auto* examples : {&data.edits, &data.in_scope, &data.out_scope})
    for (const auto& e : *examples) texts.push_back(e.input);
  std::vector<std::string> distinct;  // in order of first appearance, as frozen_encodings takes them
  for (const auto& text : texts)
    if (std::find(distinct.begin(), distinct.end(), text) == distinct.end()) distinct.push_back(text);
  std::vector<std::string> half;  // every second distinct text, the first one not: cached and fresh rows interleave
  for (std::size_t i = 1; i < distinct.size(); i += 2) half.push_back(distinct[i]);

  Seprog plain(t.base, {}, small()), cached(t.base, {}, small());  // the same seed: the same modules
  cached.cache_frozen_encodings(half);
  ASSERT_GT(cached.encoding_cache().row_of.size(), 1u);
  ASSERT_EQ(cached.encoding_cache().row_of.size(), half.size());

  const auto groups = cached.frozen_encodings({texts});
  const auto own = plain.frozen_encoding(texts);
  ASSERT_EQ(groups[0].hidden.shape(), own.hidden.shape());
  const auto mask = own.mask.to_vector();
  EXPECT_EQ(groups[0].mask.to_vector(), mask);
  EXPECT_EQ(groups[0].ids.to_vector(), own.ids.to_vector());
  const auto a = groups[0].hidden.to_vector(), b = own.hidden.to_vector();
  const auto d = static_cast<std::size_t>(own.hidden.shape()[2]);
  for (std::size_t i = 0; i < a.size(); ++i)
    if (mask[i / d]) {
      ASSERT_NEAR(a[i], b[i], 1e-5) << "entry " << i;
    }
  const auto r = groups[0].answer_state.to_vector(), r_own = own.answer_state.to_vector();
  ASSERT_EQ(r.size(), r_own.size());
  for (std::size_t i = 0; i < r.size(); ++i) ASSERT_NEAR(r[i], r_own[i], 1e-5) << "answer state " << i;

  const auto loss_plain = plain.step_loss(data), loss_cached = cached.step_loss(data);
  EXPECT_NEAR(loss_cached.item(), loss_plain.item(), 1e-5 * std::abs(loss_plain.item()));
  tensortape::backward(loss_plain);
  tensortape::backward(loss_cached);
  auto plain_params = plain.modules().named_parameters();
  auto cached_params = cached.modules().named_parameters();
  ASSERT_EQ(plain_params.size(), cached_params.size());
  for (std::size_t p = 0; p < plain_params.size(); ++p) {
    ASSERT_TRUE(plain_params[p].second.grad().defined()) << plain_params[p].first;
    const auto g = plain_params[p].second.grad().to_vector(), g_cached = cached_params[p].second.grad().to_vector();
    double scale = 1e-6;
    for (float x : g) scale = std::max(scale, static_cast<double>(std::abs(x)));
    for (std::size_t i = 0; i < g.size(); ++i) ASSERT_NEAR(g_cached[i], g[i], 1e-4 * scale) << plain_params[p].first << " " << i;
  }

  cached.reset();  // what is measured after training does not hold the cache
  EXPECT_TRUE(cached.encoding_cache().row_of.empty());
  EXPECT_EQ(cached.encoding_cache().bytes(), 0);

  Seprog finetune(t.base, {}, small(SeprogVariant::finetune));
  finetune.cache_frozen_encodings(texts);
  EXPECT_TRUE(finetune.encoding_cache().row_of.empty());
}

TEST(Seprog, TokenMatchSelectionEqualsAPlainLoopOverTokens) {
  auto& t = tiny();
  const auto& cases = t.qa.split(editlab::world::Split::test);
  const std::vector<editlab::world::Case> batch(cases.begin(), cases.begin() + 4);
  std::vector<std::string> keys, queries;
  for (const auto& c : batch) {
    keys.push_back(c.edit.input);
    queries.push_back(c.edit.input);
    queries.push_back(c.in_scope.front().input);
    queries.push_back(c.out_scope.front().input);
  }
  // 64: every key token kept, short keys padded; 5: keys cut to their first five tokens; and
  // each with and without answer_match.
  for (int key_tokens : {64, 5})
  for (bool answer_match : {false, true})
  for (bool exact_match : {false, true}) {
    SCOPED_TRACE(testing::Message() << "key_tokens " << key_tokens << ", answer_match " << answer_match << ", exact_match " << exact_match);
    auto options = small();
    options.token_match = true;
    options.key_tokens = key_tokens;
    options.answer_match = answer_match;
    options.exact_match = exact_match;
    Seprog editor(t.base, {}, options);
    {  // a trained-looking salience and scales instead of the near-uniform start
      tensortape::NoGradGuard no_grad;
      tensortape::Rng rng(3);
      editor.modules().salience.weight.copy_(tensortape::randn<float, editlab::model::Cpu>(editor.modules().salience.weight.shape(), rng));
      editor.modules().log_match_scale.copy_(tensortape::full<float, editlab::model::Cpu>({1}, std::log(25.0f)));
      if (answer_match)
        editor.modules().log_answer_scale.copy_(tensortape::from_vector<float, editlab::model::Cpu>({2}, {std::log(3.0f), std::log(40.0f)}));
      if (exact_match)
        editor.modules().log_exact_scale.copy_(tensortape::from_vector<float, editlab::model::Cpu>({2}, {std::log(20.0f), std::log(0.5f)}));
    }
    editor.apply(editlab::eval::descriptors_of(batch));
    EXPECT_EQ(editor.memory().encodings().shape(), (tensortape::Shape{4, 16 + key_tokens * 18 + (exact_match ? key_tokens : 0) + (answer_match ? 16 : 0)}));
    const auto weights = editor.selection_weights(queries);
    const auto best = editor.best_match(queries);
    const auto reference = token_match_reference(editor, t.base, queries, keys);
    ASSERT_EQ(weights.size(), reference.weights.size());
    for (std::size_t i = 0; i < weights.size(); ++i) EXPECT_NEAR(weights[i], reference.weights[i], 1e-4) << "entry " << i;
    ASSERT_EQ(best.size(), reference.best_scope.size());
    for (std::size_t i = 0; i < best.size(); ++i) EXPECT_NEAR(best[i], reference.best_scope[i], 1e-3) << "input " << i;
    // A descriptor's own input matches each of its key tokens exactly: the largest score there is.
    for (std::size_t c = 0; c < keys.size(); ++c) {
      const auto row = weights.begin() + static_cast<std::ptrdiff_t>(3 * c * keys.size());
      EXPECT_EQ(std::max_element(row, row + static_cast<std::ptrdiff_t>(keys.size())) - row, static_cast<std::ptrdiff_t>(c));
    }
    // Removing an edit leaves the other entries' selection as the reference computes it.
    editor.memory().remove(keys[1]);
    const std::vector<std::string> kept_keys = {keys[0], keys[2], keys[3]};
    const auto after = editor.selection_weights(queries);
    const auto after_reference = token_match_reference(editor, t.base, queries, kept_keys).weights;
    for (std::size_t i = 0; i < after.size(); ++i) EXPECT_NEAR(after[i], after_reference[i], 1e-4) << i;
  }
}

TEST(Seprog, TokenMatchTrainsItsSalienceAndScaleAndPersists) {
  auto& t = tiny();
  auto options = small();
  options.token_match = true;
  Seprog editor(t.base, {}, options);
  tensortape::Rng rng(5);
  tensortape::backward(editor.step_loss(editor.draw(t.qa.split(editlab::world::Split::train), rng)));
  for (auto& [name, p] : editor.modules().named_parameters()) EXPECT_TRUE(p.grad().defined()) << name;
  EXPECT_TRUE(editor.modules().salience.weight.grad().defined());
  ASSERT_TRUE(options.answer_match) << "the defaults";
  EXPECT_TRUE(editor.modules().answer_projection.weight.grad().defined());
  EXPECT_TRUE(editor.modules().log_answer_scale.grad().defined());
  ASSERT_TRUE(options.exact_match) << "the defaults";
  EXPECT_TRUE(editor.modules().log_exact_scale.grad().defined());

  const auto& cases = t.qa.split(editlab::world::Split::test);
  editor.apply(editlab::eval::descriptors_of({cases.begin(), cases.begin() + 3}));
  const fs::path dir = scratch_path("editlab_seprog_token_run");
  const fs::path file = scratch_path("editlab_seprog_token_memory.safetensors");
  editor.save(dir);
  editor.memory().save(file);
  Seprog other(t.base, {}, Seprog::read_options(dir));
  other.load_weights(dir);
  other.memory().load(file, other.options().memory_width());
  const auto inputs = inputs_of({cases.begin(), cases.begin() + 3});
  EXPECT_EQ(other.selection_weights(inputs), editor.selection_weights(inputs));
  EXPECT_EQ(other.scope_probabilities(inputs), editor.scope_probabilities(inputs));

  options.key_value = false;
  EXPECT_THROW(Seprog(t.base, {}, options), tensortape::Error) << "token_match needs key_value";
  options.key_value = true;
  options.token_match = false;
  EXPECT_THROW(Seprog(t.base, {}, options), tensortape::Error) << "answer_match needs token_match";
  options.answer_match = false;
  EXPECT_THROW(Seprog(t.base, {}, options), tensortape::Error) << "exact_match needs token_match";
  options.answer_match = true;
  options.token_match = true;

  // NN_e on the best match alone.
  options.key_value = true;
  options.scope_from_match_only = true;
  Seprog match_only(t.base, {}, options);
  EXPECT_EQ(match_only.modules().classifier_hidden.weight.shape()[1], 1);
  tensortape::backward(match_only.step_loss(match_only.draw(t.qa.split(editlab::world::Split::train), rng)));
  EXPECT_TRUE(match_only.modules().salience.weight.grad().defined());
  options.match_feature = false;
  EXPECT_THROW(Seprog(t.base, {}, options), tensortape::Error) << "scope_from_match_only needs match_feature";
}

TEST(Seprog, SiblingDrawsFillASetWithItsSubjectsEditsBeforeANewSubject) {
  auto& t = tiny();
  const auto& pool = t.qa.split(editlab::world::Split::train);
  auto options = small();
  options.max_edits = 12;
  options.edit_sets_per_step = 8;
  auto subject_of = [&](const std::string& edit_input) { return case_of(pool, edit_input).subject; };
  // Per set, in draw order: (edits drawn, edits of subjects already in the set when a new
  // subject came in while the pool still had unchosen ones).
  auto count = [&](double share) {
    options.sibling_share = share;
    const Seprog editor(t.base, {}, options);
    tensortape::Rng rng(8);
    int pairs = 0, skipped = 0;
    for (int draw = 0; draw < 20; ++draw) {
      const auto data = editor.draw(pool, rng);
      std::vector<std::string> set_inputs, set_subjects;
      for (std::size_t i = 0; i < data.edits.size(); ++i) {
        if (i == 0 || data.edit_set[i] != data.edit_set[i - 1]) set_inputs.clear(), set_subjects.clear();
        const auto subject = subject_of(data.edits[i].input);
        const bool seen = std::find(set_subjects.begin(), set_subjects.end(), subject) != set_subjects.end();
        if (seen) ++pairs;
        if (!seen && !set_subjects.empty())
          for (const auto& c : pool)
            if (std::find(set_subjects.begin(), set_subjects.end(), c.subject) != set_subjects.end() &&
                std::find(set_inputs.begin(), set_inputs.end(), c.edit.input) == set_inputs.end())
              ++skipped;
        set_inputs.push_back(data.edits[i].input);
        set_subjects.push_back(subject);
      }
    }
    return std::pair{pairs, skipped};
  };
  const auto [sibling_pairs, sibling_skipped] = count(1.0);
  EXPECT_EQ(sibling_skipped, 0) << "with share 1, a set takes every edit of its subjects before a new subject";
  EXPECT_GT(sibling_pairs, 0);
  const auto [uniform_pairs, uniform_skipped] = count(0.0);
  EXPECT_GT(uniform_skipped, 0);
  EXPECT_GT(sibling_pairs, 3 * uniform_pairs) << "uniform draws rarely repeat a subject";
}

TEST(Seprog, SwapNegativesAreInScopeWordingsAboutAnUneditedSubject) {
  auto& t = tiny();
  const auto& pool = t.qa.split(editlab::world::Split::train);
  auto options = small();
  options.edit_sets_per_step = 4;
  options.examples_per_step = 32;
  // Out-scope inputs that are one of their set's in-scope inputs with the subject swapped.
  auto swapped = [&](double share) {
    options.swap_negatives = share;
    const Seprog editor(t.base, {}, options);
    tensortape::Rng rng(13);
    const auto data = editor.draw(pool, rng);
    int count = 0;
    for (std::size_t o = 0; o < data.out_scope.size(); ++o) {
      const auto& out = data.out_scope[o];
      for (std::size_t e = 0; e < data.edits.size(); ++e)
        EXPECT_FALSE(data.edit_set[e] == data.out_set[o] && data.edits[e].input.find(out.subject) != std::string::npos)
            << "'" << out.input << "' is about an edited subject";
      for (std::size_t i = 0; i < data.in_scope.size(); ++i) {
        if (data.in_set[i] != data.out_set[o]) continue;
        const auto at = out.input.find(out.subject);
        if (at == std::string::npos) continue;
        for (const auto& c : pool) {  // the in-scope input's subject put back
          if (data.in_edit[i] != c.edit.input) continue;
          if (out.input.substr(0, at) + c.subject + out.input.substr(at + out.subject.size()) == data.in_scope[i].input) ++count, i = data.in_scope.size() - 1;
          break;
        }
      }
    }
    return std::pair{count, static_cast<int>(data.out_scope.size())};
  };
  const auto [with_swaps, total] = swapped(1.0);
  EXPECT_GT(with_swaps, total / 2) << "most out-scope inputs are swapped wordings";
  EXPECT_LT(swapped(0.0).first, with_swaps / 4) << "without swaps, only the odd out-scope input is worded like an in-scope one";
}

// Hard negatives: out-scope inputs that ask another fact of a subject their set edits (the
// cases' hard out-scope examples), never a fact one of the set's edits changes.
TEST(Seprog, HardNegativesAskAnEditedSubjectsOtherFactsNeverAChangedOne) {
  auto& t = tiny();
  const auto& pool = t.relations.split(editlab::world::Split::train);
  auto options = small();
  options.edit_sets_per_step = 4;
  options.examples_per_step = 32;
  options.sibling_share = 1.0;  // sets with several edits of one subject: one's hard example may be another's edit
  auto hard = [&](double share) {
    options.hard_negatives = share;
    const Seprog editor(t.base, {}, options);
    int count = 0, total = 0;
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
      tensortape::Rng rng(seed);
      const auto data = editor.draw(pool, rng);
      for (std::size_t o = 0; o < data.out_scope.size(); ++o) {
        const auto& out = data.out_scope[o];
        bool edited_subject = false;
        for (std::size_t e = 0; e < data.edits.size(); ++e) {
          if (data.edit_set[e] != data.out_set[o]) continue;
          const auto& c = case_of(pool, data.edits[e].input);
          edited_subject = edited_subject || c.subject == out.subject;
          for (const auto& changed : c.changes) EXPECT_NE(out.fact, changed) << "'" << out.input << "' asks a fact its set changes";
        }
        count += edited_subject;
        ++total;
      }
    }
    return std::pair{count, total};
  };
  const auto [with_hard, total] = hard(1.0);
  EXPECT_GT(with_hard, total * 9 / 10) << "nearly every out-scope input asks about an edited subject";
  EXPECT_EQ(hard(0.0).first, 0) << "without hard negatives, no out-scope input is about an edited subject";

  // qa has no hard out-scope examples: the option draws nothing there, and the step is unchanged.
  auto qa_step = [&](double share) {
    options.hard_negatives = share;
    tensortape::Rng rng(5);
    return Seprog(t.base, {}, options).draw(t.qa.split(editlab::world::Split::train), rng);
  };
  const auto plain = qa_step(0.0), with_option = qa_step(1.0);
  ASSERT_EQ(plain.out_scope.size(), with_option.out_scope.size());
  for (std::size_t o = 0; o < plain.out_scope.size(); ++o) EXPECT_EQ(plain.out_scope[o].input, with_option.out_scope[o].input);
  ASSERT_EQ(plain.in_scope.size(), with_option.in_scope.size());
  for (std::size_t i = 0; i < plain.in_scope.size(); ++i) EXPECT_EQ(plain.in_scope[i].input, with_option.in_scope[i].input);
}

TEST(Seprog, WordDropoutDropsOneWordOfEachInScopeInputButNeverTheSubject) {
  auto& t = tiny();
  auto options = small();
  options.word_dropout = 1.0;
  const Seprog editor(t.base, {}, options);
  const auto& pool = t.qa.split(editlab::world::Split::train);
  tensortape::Rng rng(21);
  const auto data = editor.draw(pool, rng);
  const auto words = [](const std::string& text) { return std::count(text.begin(), text.end(), ' ') + 1; };
  ASSERT_FALSE(data.in_scope.empty());
  for (std::size_t i = 0; i < data.in_scope.size(); ++i) {
    const auto source = std::find_if(pool.begin(), pool.end(), [&](const auto& c) { return c.edit.input == data.in_edit[i]; });
    ASSERT_NE(source, pool.end());
    EXPECT_NE(data.in_scope[i].input.find(source->subject), std::string::npos) << data.in_scope[i].input;
    bool one_word_fewer = false;  // than the descriptor or one of its rephrasings
    for (const auto& e : source->in_scope) one_word_fewer |= words(e.input) == words(data.in_scope[i].input) + 1;
    one_word_fewer |= words(source->edit.input) == words(data.in_scope[i].input) + 1;
    EXPECT_TRUE(one_word_fewer) << data.in_scope[i].input;
  }
}

TEST(Seprog, TrainingLowersTheValidationLossAndSavesAndLoads) {
  auto& t = tiny();
  auto options = small();
  options.steps = 1000;
  options.eval_every = 50;
  options.warmup_steps = 10;
  options.lr = 3e-3;
  Seprog editor(t.base, {}, options);
  // Validate on the training edits: on a world this small the validation split holds a couple
  // of edits, too few to show progress; what this checks is that the objective goes down.
  auto bench = t.qa;
  bench.split(editlab::world::Split::validation) = bench.split(editlab::world::Split::train);
  tensortape::Rng rng(9);
  std::vector<Seprog::StepData> held;
  for (int i = 0; i < 4; ++i) held.push_back(editor.draw(bench.split(editlab::world::Split::train), rng));
  auto loss_on_held = [&] {
    tensortape::NoGradGuard no_grad;
    double total = 0;
    for (const auto& d : held) total += editor.step_loss(d).item();
    return total / 4;
  };
  const double before = loss_on_held();
  const auto report = editor.train(bench, quietly());
  EXPECT_GT(report.best_step, 0) << "validation loss never improved on the untrained editor";
  EXPECT_LT(loss_on_held(), 0.8 * before);

  const fs::path dir = scratch_path("editlab_seprog_run");
  fs::remove_all(dir);
  editor.save(dir);
  const auto loaded_options = Seprog::read_options(dir);
  EXPECT_EQ(loaded_options.to_json(), options.to_json());
  Seprog loaded(t.base, {}, loaded_options);
  loaded.load_weights(dir);
  const auto& cases = t.qa.split(editlab::world::Split::test);
  editor.apply(editlab::eval::descriptors_of({cases.begin(), cases.begin() + 3}));
  loaded.apply(editlab::eval::descriptors_of({cases.begin(), cases.begin() + 3}));
  const auto inputs = inputs_of({cases.begin(), cases.begin() + 3});
  EXPECT_EQ(loaded.scope_probabilities(inputs), editor.scope_probabilities(inputs));
  EXPECT_EQ(loaded.predict(inputs), editor.predict(inputs));
}

TEST(Seprog, StoppedAndResumedTrainingEqualsUninterruptedTraining) {
  auto& t = tiny();
  auto options = small();
  options.steps = 40;
  options.eval_every = 10;
  options.warmup_steps = 5;
  auto bench = t.qa;
  bench.split(editlab::world::Split::validation) = bench.split(editlab::world::Split::train);
  auto trained_parameters = [&](const fs::path& dir, int stop_after) {
    fs::remove_all(dir);
    Seprog editor(t.base, {}, options);
    auto control = quietly(dir);
    control.checkpoint_every = 15;
    control.threads = 2;
    if (stop_after > 0) {
      control.stop_after = stop_after;
      EXPECT_EQ(editor.train(bench, control).steps, stop_after);
      Seprog resumed(t.base, {}, options);  // a fresh process would start from a fresh editor
      control.stop_after = 0;
      control.resume = true;
      resumed.train(bench, control);
      std::vector<std::vector<float>> values;
      for (auto& p : resumed.modules().parameters()) values.push_back(p.to_vector());
      return values;
    }
    editor.train(bench, control);
    std::vector<std::vector<float>> values;
    for (auto& p : editor.modules().parameters()) values.push_back(p.to_vector());
    return values;
  };
  const auto straight = trained_parameters(scratch_path("editlab_seprog_straight"), 0);
  const auto resumed = trained_parameters(scratch_path("editlab_seprog_resumed"), 23);
  ASSERT_EQ(straight.size(), resumed.size());
  for (std::size_t i = 0; i < straight.size(); ++i) EXPECT_EQ(straight[i], resumed[i]) << "parameter " << i;

  // A checkpoint made with other options is refused, with both settings named.
  Seprog other(t.base, {}, small(SeprogVariant::noselect));
  auto other_bench = bench;
  auto resume_other = quietly(scratch_path("editlab_seprog_resumed"));
  resume_other.resume = true;
  EXPECT_THROW(other.train(other_bench, resume_other), tensortape::Error);
}

TEST(Cost, MeasuresEveryPhaseAndCountsTheMemoryItHolds) {
  auto& t = tiny();
  Seprog editor(t.base, {}, small());
  std::int64_t parameter_bytes = 0;
  for (auto& p : editor.modules().parameters()) parameter_bytes += p.numel() * static_cast<std::int64_t>(sizeof(float));
  const auto before = editor.modules().parameters().front().to_vector();
  const auto rows = editlab::eval::measure_cost(editor, t.qa, /*k=*/3, /*repeats=*/2);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].phase, "training step");
  EXPECT_EQ(rows[2].phase, "inference");
  EXPECT_EQ(rows[2].inputs, 3);
  for (const auto& r : rows) {
    EXPECT_GT(r.median_ms, 0.0) << r.phase;
    EXPECT_LE(r.min_ms, r.median_ms) << r.phase;
    EXPECT_EQ(r.repeats, 2);
  }
  // A training step holds at least the weights, their gradients and Adam's two moments.
  EXPECT_GE(rows[0].peak_tensor_mb * 1024 * 1024, 4.0 * static_cast<double>(parameter_bytes));
  EXPECT_NE(editor.modules().parameters().front().to_vector(), before) << "the timed training steps did not train";
  EXPECT_EQ(editor.memory().size(), 0u) << "measure_cost leaves the editor reset";
  EXPECT_THROW(editlab::eval::measure_cost(editor, t.qa, 100000, 1), tensortape::Error);
  EXPECT_NE(editlab::eval::cost_markdown(rows).find("| seprog | qa | inference | 3 | 3 |"), std::string::npos);
  // Every row names the machine: the CPU as /proc/cpuinfo's first block names it, and the threads.
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string cpu;
  for (std::string line; cpu.empty() && std::getline(cpuinfo, line);)
    if (line.rfind("model name", 0) == 0) cpu = line.substr(line.find(':') + 2);
  for (const auto& r : rows) {
    EXPECT_EQ(r.machine, rows[0].machine);
    if (!cpu.empty()) {
      EXPECT_EQ(r.machine.rfind(cpu, 0), 0u) << r.machine;
    }
    EXPECT_NE(r.machine.find(" thread"), std::string::npos) << r.machine;
    EXPECT_EQ(r.to_json().at("machine"), r.machine);
  }
  EXPECT_EQ(editlab::eval::cost_markdown(rows).rfind("Measured on " + rows[0].machine + ".", 0), 0u);
  // Rows read back from --json's lines make the same table (editlab cost --table); the machine
  // line names each machine once, and no machine where the rows name none.
  std::vector<editlab::eval::CostRow> read;
  for (const auto& r : rows) read.push_back(editlab::eval::CostRow::from_json(nlohmann::json::parse(r.to_json().dump())));
  EXPECT_EQ(editlab::eval::cost_markdown(read), editlab::eval::cost_markdown(rows));
  auto mixed = rows;
  mixed[1].machine = "another machine";
  EXPECT_EQ(editlab::eval::cost_markdown(mixed).rfind("Measured on " + rows[0].machine + "; another machine.\n\n|", 0), 0u);
  auto unnamed = rows;
  for (auto& r : unnamed) r.machine.clear();
  EXPECT_EQ(editlab::eval::cost_markdown(unnamed).rfind("| method |", 0), 0u);
}

// y = W x + b in double, plain loops; W (out, in) row-major.
std::vector<double> affine(const tensortape::nn::Linear<float, editlab::model::Cpu>& layer, const std::vector<double>& x) {
  const auto w = layer.weight.to_vector();
  const auto out = static_cast<std::size_t>(layer.weight.shape()[0]), in = static_cast<std::size_t>(layer.weight.shape()[1]);
  EXPECT_EQ(in, x.size());
  std::vector<double> y(out, 0.0);
  const auto b = layer.bias.defined() ? layer.bias.to_vector() : std::vector<float>(out, 0.0f);
  for (std::size_t o = 0; o < out; ++o) {
    y[o] = b[o];
    for (std::size_t i = 0; i < in; ++i) y[o] += w[o * in + i] * x[i];
  }
  return y;
}

// Mean over the unmasked rows of hidden (B, L, D), plain loops: one vector per row of the batch.
std::vector<std::vector<double>> pooled(const editlab::model::Tensor& hidden, const editlab::model::Ids& mask) {
  const auto h = hidden.contiguous_copy().to_vector();
  const auto m = mask.to_vector();
  const auto b = static_cast<std::size_t>(hidden.shape()[0]), l = static_cast<std::size_t>(hidden.shape()[1]),
             d = static_cast<std::size_t>(hidden.shape()[2]);
  std::vector<std::vector<double>> out(b, std::vector<double>(d, 0.0));
  for (std::size_t r = 0; r < b; ++r) {
    double count = 0;
    for (std::size_t t = 0; t < l; ++t)
      if (m[r * l + t]) {
        count += 1;
        for (std::size_t k = 0; k < d; ++k) out[r][k] += h[(r * l + t) * d + k];
      }
    for (auto& v : out[r]) v /= count;
  }
  return out;
}

// label_slots: the oracle's prefix for an input is [NN_prompt(h) | e_1 + M e_1, ..., e_S + M e_S],
// with e_t the frozen embedding of its edit's t-th label token (0 past the label's end) and M
// the learned label_map; the P generated vectors are those of the same editor without label
// slots. Plain loops over the embedding table and M; the label ids survive the memory's save.
TEST(Seprog, LabelSlotsEndThePrefixWithTheSelectedEditsLabelEmbeddings) {
  auto& t = tiny();
  const auto& cases = t.qa.split(editlab::world::Split::test);
  const std::vector<editlab::world::Case> batch(cases.begin(), cases.begin() + 3);
  auto options = small();
  options.label_slots = 3;
  Seprog editor(t.base, {}, options);
  Seprog plain(t.base, {}, small());
  {  // a trained-looking label map instead of the small start
    tensortape::NoGradGuard no_grad;
    tensortape::Rng rng(7);
    editor.modules().label_map.weight.copy_(tensortape::randn<float, editlab::model::Cpu>(editor.modules().label_map.weight.shape(), rng));
  }
  const auto descriptors = editlab::eval::descriptors_of(batch);
  editor.apply(descriptors);
  plain.apply(descriptors);
  ASSERT_EQ(editor.memory().encodings().shape()[1], plain.memory().encodings().shape()[1] + 3);

  std::vector<std::string> inputs;
  std::vector<std::size_t> edit_of;
  for (std::size_t c = 0; c < batch.size(); ++c)
    for (const auto& e : batch[c].in_scope) inputs.push_back(e.input), edit_of.push_back(c);
  const auto prefix = editor.oracle_prefix(inputs, edit_of);
  const auto generated = plain.oracle_prefix(inputs, edit_of);
  const auto d = static_cast<std::size_t>(t.base.model.config().d_model), p = static_cast<std::size_t>(options.prefix_length);
  ASSERT_EQ(prefix.shape(), (tensortape::Shape{static_cast<std::int64_t>(inputs.size()), static_cast<std::int64_t>(3 + p), static_cast<std::int64_t>(d)}));
  const auto got = prefix.contiguous_copy().to_vector();
  const auto want_tail = generated.contiguous_copy().to_vector();
  const auto table = t.base.model.shared.weight.to_vector();  // (V, D)
  bool some_label_shorter = false;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const auto label = t.base.tokenizer.encode(descriptors[edit_of[i]].target);
    some_label_shorter |= label.size() < 3;
    for (std::size_t slot = 0; slot < 3; ++slot) {
      std::vector<double> e(d, 0.0);
      if (slot < label.size())
        for (std::size_t k = 0; k < d; ++k) e[k] = table[static_cast<std::size_t>(label[slot]) * d + k];
      const auto mapped = affine(editor.modules().label_map, e);
      for (std::size_t k = 0; k < d; ++k)
        EXPECT_NEAR(got[(i * (3 + p) + p + slot) * d + k], e[k] + mapped[k], 1e-4) << "input " << i << " slot " << slot << " " << k;
    }
    for (std::size_t j = 0; j < p * d; ++j)
      EXPECT_NEAR(got[(i * (3 + p)) * d + j], want_tail[i * p * d + j], 1e-5) << "input " << i << " generated " << j;
  }
  EXPECT_TRUE(some_label_shorter) << "qa's labels are one or two pieces: the zero slots are tested";

  // The map trains, and the label ids persist with the memory.
  tensortape::Rng rng(5);
  tensortape::backward(editor.step_loss(editor.draw(t.qa.split(editlab::world::Split::train), rng)));
  ASSERT_TRUE(editor.modules().label_map.weight.grad().defined());
  const auto grad = editor.modules().label_map.weight.grad().to_vector();
  EXPECT_TRUE(std::any_of(grad.begin(), grad.end(), [](float g) { return g != 0.0f; }));
  const fs::path file = scratch_path("editlab_seprog_label_memory.safetensors");
  editor.memory().save(file);
  Seprog other(t.base, {}, options);
  other.memory().load(file, options.memory_width());
  EXPECT_EQ(other.memory().encodings().to_vector(), editor.memory().encodings().to_vector());
  EXPECT_EQ(options.paper_form().label_slots, 0);
}

// --paper-form: the loss of one training step is the paper's, section 3, computed here in plain
// loops from the modules' weights (the T5 stacks themselves run through the library):
//   h_i = W_p mean(E_edit("x_i => y_i")) + b_p          b(x) = mean(E_base(x))
//   h(x) = sum_i softmax_i((W_att b(x)) . h_i / sqrt(d_h)) h_i
//   e(x) = sigmoid(NN_e([h(x); b(x)]))                   prefix = NN_prompt(h(x))  (P, D)
//   L = lambda * (BCE(e, 1 | in-scope) + BCE(e, 0 | out-scope)) / 2 + (1 - lambda) * NLL(y | x, prefix)
// With prompt_sees_query the prefix is NN_prompt([h(x); b(x)]) instead; with pair_gate
// e(x) = sigmoid(NN_e([h(x); b(x); mean(E_pair(x </s> x_j </s>))])), j the edit of the largest
// selection score; with prompt_sees_pair the prefix is NN_prompt([h(x); mean(E_pair(...))]); the
// rest alike.
struct PaperFormChange {
  bool prompt_sees_query = false;
  bool pair_gate = false;
  bool prompt_sees_pair = false;
};
void expect_paper_form_loss(PaperFormChange change) {
  auto& t = tiny();
  SeprogOptions options = small().paper_form();
  EXPECT_EQ(options.edit_sets_per_step, 1);
  EXPECT_FALSE(options.key_value || options.match_feature || options.token_match || options.answer_match || options.exact_match ||
               options.hard_selection || options.scope_from_match_only || options.prompt_sees_query || options.pair_gate || options.prompt_sees_pair);
  EXPECT_EQ(options.relabel + options.selection_weight + options.sibling_share + options.swap_negatives + options.word_dropout, 0.0);
  options.prompt_sees_query = change.prompt_sees_query;
  options.pair_gate = change.pair_gate;
  options.prompt_sees_pair = change.prompt_sees_pair;
  Seprog editor(t.base, {}, options);
  const auto& cases = t.qa.split(editlab::world::Split::test);
  Seprog::StepData data;
  for (int i = 0; i < 2; ++i) {
    data.edits.push_back(cases[i].edit);
    data.edit_set.push_back(0);
    for (const auto& e : {cases[i].edit, cases[i].in_scope.front()}) {
      data.in_scope.push_back(e);
      data.in_edit.push_back(cases[i].edit.input);
      data.in_set.push_back(0);
    }
    data.out_scope.push_back(cases[i].out_scope.front());
    data.out_set.push_back(0);
  }
  const double loss = editor.step_loss(data).item();

  tensortape::NoGradGuard no_grad;
  auto& m = editor.modules();
  std::vector<std::string> texts;
  for (const auto& d : data.edits) texts.push_back(editlab::editors::descriptor_text(d));
  const auto [edit_ids, edit_mask] = t.base.encode_inputs(texts);
  const auto edit_hidden = m.edit_encoder(t.base.model.shared(edit_ids), tensortape::nn::key_mask_bias<float, editlab::model::Cpu>(edit_mask),
                                          editlab::model::Tensor(), editlab::model::Tensor(), nullptr);
  std::vector<std::vector<double>> h;  // h_i (d_h)
  for (const auto& v : pooled(edit_hidden, edit_mask)) h.push_back(affine(m.edit_projection, v));
  const double d_h = static_cast<double>(options.memory_dim);

  // e(x) logits and prefixes for a list of examples.
  auto forward = [&](const std::vector<Example>& examples, std::vector<double>& logits, std::vector<float>& prefix) {
    std::vector<std::string> inputs;
    for (const auto& e : examples) inputs.push_back(e.input);
    const auto [ids, mask] = t.base.encode_inputs(inputs);
    const auto encoded = pooled(t.base.model.encode(ids, mask), mask);
    for (std::size_t row = 0; row < encoded.size(); ++row) {
      const auto& b = encoded[row];
      const auto q = affine(m.attention_projection, b);
      std::vector<double> scores;
      for (const auto& hi : h) scores.push_back(std::inner_product(q.begin(), q.end(), hi.begin(), 0.0) / std::sqrt(d_h));
      const auto best_edit = static_cast<std::size_t>(std::max_element(scores.begin(), scores.end()) - scores.begin());
      const double top = scores[best_edit];
      double total = 0;
      for (auto& s : scores) total += s = std::exp(s - top);
      std::vector<double> selected(h[0].size(), 0.0);
      for (std::size_t i = 0; i < h.size(); ++i)
        for (std::size_t k = 0; k < selected.size(); ++k) selected[k] += scores[i] / total * h[i][k];
      std::vector<double> features = selected;
      features.insert(features.end(), b.begin(), b.end());
      std::vector<double> pair_mean;
      if (change.pair_gate || change.prompt_sees_pair) {  // one row, no padding: the query's tokens, then the edit input's
        auto pair = t.base.encode(inputs[row]);
        const auto tail = t.base.encode(data.edits[best_edit].input);
        pair.insert(pair.end(), tail.begin(), tail.end());
        const std::vector<std::int64_t> ones(pair.size(), 1);
        const auto length = static_cast<std::int64_t>(pair.size());
        const auto pair_ids = tensortape::from_vector<std::int64_t, editlab::model::Cpu>({1, length}, pair);
        const auto pair_mask = tensortape::from_vector<std::int64_t, editlab::model::Cpu>({1, length}, ones);
        const auto pair_hidden = m.pair_encoder(t.base.model.shared(pair_ids), tensortape::nn::key_mask_bias<float, editlab::model::Cpu>(pair_mask),
                                                editlab::model::Tensor(), editlab::model::Tensor(), nullptr);
        pair_mean = pooled(pair_hidden, pair_mask).front();
      }
      if (change.pair_gate) features.insert(features.end(), pair_mean.begin(), pair_mean.end());
      auto hidden = affine(m.classifier_hidden, features);
      for (auto& v : hidden) v = std::max(0.0, v);
      logits.push_back(affine(m.classifier_out, hidden)[0]);
      std::vector<double> prompt_input = selected;
      if (change.prompt_sees_query) prompt_input.insert(prompt_input.end(), b.begin(), b.end());
      if (change.prompt_sees_pair) prompt_input.insert(prompt_input.end(), pair_mean.begin(), pair_mean.end());
      auto prompt = affine(m.prompt_hidden, prompt_input);
      for (auto& v : prompt) v = std::max(0.0, v);
      for (double v : affine(m.prompt_out, prompt)) prefix.push_back(static_cast<float>(v));
    }
  };
  std::vector<double> in_logits, out_logits;
  std::vector<float> in_prefix, out_prefix;
  forward(data.in_scope, in_logits, in_prefix);
  forward(data.out_scope, out_logits, out_prefix);
  auto bce = [](const std::vector<double>& logits, bool positive) {
    double sum = 0;
    for (double l : logits) {
      const double p = 1.0 / (1.0 + std::exp(-l));
      sum -= positive ? std::log(p) : std::log(1.0 - p);
    }
    return sum / static_cast<double>(logits.size());
  };
  const double scope_loss = 0.5 * (bce(in_logits, true) + bce(out_logits, false));
  const auto d = t.base.model.config().d_model;
  const auto prefix = tensortape::from_vector<float, editlab::model::Cpu>(
      {static_cast<std::int64_t>(data.in_scope.size()), options.prefix_length, d}, in_prefix);
  const double prompt_loss = t.base.loss(t.base.batch(data.in_scope), prefix).item();
  const double expected = options.lambda * scope_loss + (1 - options.lambda) * prompt_loss;
  EXPECT_NEAR(loss, expected, 1e-4 * std::max(1.0, std::abs(expected)));
}

TEST(Seprog, PaperFormLossIsThePapersEquations) { expect_paper_form_loss({}); }
TEST(Seprog, PromptThatSeesTheQueryReadsItsPooledEncoding) { expect_paper_form_loss({.prompt_sees_query = true}); }
TEST(Seprog, PairGateReadsTheQueryWithItsBestEdit) { expect_paper_form_loss({.pair_gate = true}); }
TEST(Seprog, PromptThatSeesThePairReadsTheQueryWithItsBestEdit) { expect_paper_form_loss({.prompt_sees_pair = true}); }

// sp-finetune moves the base model at base_lr and SEPROG's modules at lr: one step with
// base_lr = lr / 10 moves every base weight by a tenth of what base_lr = lr moves it, and the
// modules alike. train_step() unfreezes the base itself (editlab cost failed on a loaded
// sp-finetune run, whose base comes frozen) and freezes it again.
TEST(Seprog, FinetuneMovesTheBaseAtItsOwnLearningRate) {
  auto& t = tiny();  // also writes the tiny base model's folder
  const fs::path dir = scratch_path("editlab_seprog_test_base");
  const auto& cases = t.qa.split(editlab::world::Split::train);
  const std::vector<editlab::world::Case> edits(cases.begin(), cases.begin() + 3);
  auto step = [&](double base_lr, std::vector<float>& base_delta, std::vector<float>& module_delta) {
    auto base = editlab::model::Seq2Seq::load(dir);
    auto options = small(SeprogVariant::finetune);
    options.base_lr = base_lr;
    Seprog editor(base, {}, options);  // the base comes frozen, as from a run folder (editlab cost)
    const auto base_before = base.model.parameters().front().to_vector();
    const auto module_before = editor.modules().prompt_hidden.weight.to_vector();
    editor.train_step(edits);
    for (const auto& p : base.model.parameters()) EXPECT_FALSE(p.requires_grad()) << "the base is frozen again after the step";
    const auto base_after = base.model.parameters().front().to_vector();
    const auto module_after = editor.modules().prompt_hidden.weight.to_vector();
    for (std::size_t i = 0; i < base_after.size(); ++i) base_delta.push_back(base_after[i] - base_before[i]);
    for (std::size_t i = 0; i < module_after.size(); ++i) module_delta.push_back(module_after[i] - module_before[i]);
  };
  const double lr = small().lr;
  std::vector<float> full_base, full_module, tenth_base, tenth_module;
  step(lr, full_base, full_module);
  step(lr / 10, tenth_base, tenth_module);
  double moved = 0;
  for (std::size_t i = 0; i < full_base.size(); ++i) {
    moved += std::abs(full_base[i]);
    EXPECT_NEAR(tenth_base[i], full_base[i] / 10, 1e-6 + 1e-3 * std::abs(full_base[i])) << i;
  }
  EXPECT_GT(moved, 0.0) << "the base model must train in sp-finetune";
  for (std::size_t i = 0; i < full_module.size(); ++i) EXPECT_NEAR(tenth_module[i], full_module[i], 1e-6) << i;
}

TEST(Seprog, FinetuneIsMeasuredAgainstTheOriginalBase) {
  auto& t = tiny();  // also writes the tiny base model's folder
  const fs::path dir = scratch_path("editlab_seprog_test_base");
  auto base = editlab::model::Seq2Seq::load(dir);  // this test's own copy: sp-finetune trains it
  auto pristine = editlab::model::Seq2Seq::load(dir);
  Seprog editor(base, {}, small(SeprogVariant::finetune));
  {  // what fine-tuning does to the base model, without depending on a training run
    tensortape::NoGradGuard no_grad;
    for (auto& p : base.model.parameters()) p.mul_(0.5f);
  }
  const auto& cases = t.qa.split(editlab::world::Split::test);
  std::vector<std::string> in_inputs;
  std::vector<editlab::world::Example> in_scope;
  for (const auto& c : cases)
    for (const auto& e : c.in_scope) {
      in_scope.push_back(e);
      in_inputs.push_back(e.input);
    }
  ASSERT_NE(editor.predict(in_inputs), pristine.answer(in_inputs)) << "halving the weights must change some answer";

  // ES0 is the untouched base's score on every in-scope example of the split (K = all, one draw).
  editlab::eval::EvalOptions options;
  options.batch_sizes = {static_cast<int>(cases.size())};
  options.min_draws = options.max_draws = 1;
  options.min_examples = 0;
  const editlab::eval::BasePredictor untouched = [&](const std::vector<std::string>& inputs) { return pristine.predict(inputs, {}); };
  const auto rows = editlab::eval::evaluate(editor, untouched, t.qa, editlab::world::Split::test, options, nullptr);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_DOUBLE_EQ(rows[0].es0, editlab::eval::accuracy(pristine.answer(in_inputs), in_scope));
}

}  // namespace editlab_seprog_test

