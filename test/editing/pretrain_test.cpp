// Pretraining's crash safety: a run stopped at a checkpoint and resumed ends with exactly the
// weights of an uninterrupted run; bad resumes fail with a clear message. Also the quality
// sets' construction. (The quality bars themselves are measured by `editlab pretrain` on the
// default world; docs/editing.md records the run.)
#include <gtest/gtest.h>
#if defined(_OPENMP)
#include <omp.h>
#endif

#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "pretrain/pretrain.hpp"
#include "train/loop.hpp"
#include "scratch.hpp"
#include "tiny_pretrain.hpp"

namespace editlab_pretrain_test {

namespace fs = std::filesystem;
using editlab::pretrain::PretrainOptions;

PretrainOptions tiny(const fs::path& out) {
  PretrainOptions o = tiny_pretrain_options(out);
  o.batch_size = 4;
  o.steps = 12;
  o.checkpoint_every = 5;
  return o;
}

fs::path scratch(const std::string& name) {
  const fs::path dir = scratch_path("editlab_pretrain_test_" + name);
  fs::remove_all(dir);
  return dir;
}

TEST(Pretrain, StoppedAndResumedRunEqualsUninterruptedRun) {
  const fs::path whole = scratch("whole"), split = scratch("split");
  editlab::pretrain::pretrain(tiny(whole));
  for (const char* file : {"config.json", "model.safetensors", "spiece.model", "world.txt", "quality.json"})
    EXPECT_TRUE(fs::exists(whole / file)) << file;
  EXPECT_FALSE(fs::exists(whole / "checkpoint"));

  auto first = tiny(split);
  first.stop_after = 7;
  const auto stopped = editlab::pretrain::pretrain(first);
  EXPECT_EQ(stopped.at("stopped_at").get<int>(), 7);
  EXPECT_TRUE(fs::exists(split / "checkpoint" / "state.json"));
  EXPECT_FALSE(fs::exists(split / "model.safetensors"));

  auto second = tiny(split);
  second.resume = true;
  editlab::pretrain::pretrain(second);
  EXPECT_TRUE(file_bytes(whole / "model.safetensors") == file_bytes(split / "model.safetensors")) << "resumed weights differ";
  EXPECT_TRUE(file_bytes(whole / "spiece.model") == file_bytes(split / "spiece.model"));
}

TEST(Pretrain, ResumesFromThePreviousCheckpointWhenASwapWasInterrupted) {
  const fs::path whole = scratch("whole2"), crashed = scratch("crashed");
  editlab::pretrain::pretrain(tiny(whole));
  auto first = tiny(crashed);
  first.stop_after = 5;
  editlab::pretrain::pretrain(first);
  // A crash between "checkpoint -> checkpoint.old" and "checkpoint.tmp -> checkpoint".
  fs::rename(crashed / "checkpoint", crashed / "checkpoint.old");
  fs::create_directories(crashed / "checkpoint.tmp");
  auto second = tiny(crashed);
  second.resume = true;
  editlab::pretrain::pretrain(second);
  EXPECT_TRUE(file_bytes(whole / "model.safetensors") == file_bytes(crashed / "model.safetensors")) << "resumed weights differ";
}

TEST(Pretrain, BadResumesFailClearly) {
  const fs::path dir = scratch("bad");
  auto first = tiny(dir);
  first.stop_after = 5;
  editlab::pretrain::pretrain(first);
  try {
    editlab::pretrain::pretrain(tiny(dir));  // not --resume, but a run is in progress
    FAIL() << "expected an error";
  } catch (const tensortape::Error& e) {
    EXPECT_NE(std::string(e.what()).find("pass --resume"), std::string::npos) << e.what();
  }
  auto changed = tiny(dir);
  changed.resume = true;
  changed.d_model = 32;
  try {
    editlab::pretrain::pretrain(changed);
    FAIL() << "expected an error";
  } catch (const tensortape::Error& e) {
    EXPECT_NE(std::string(e.what()).find("was made with"), std::string::npos) << e.what();
  }
  auto nothing = tiny(scratch("empty"));
  nothing.resume = true;
  EXPECT_THROW(editlab::pretrain::pretrain(nothing), tensortape::Error);
}

// After one Adam step on a batch of known tokens, exactly the rows of the tokens the batch fed
// in (encoder inputs, and the decoder's inputs: the start token and the shifted labels) keep
// their values; every other row is zeroed.
TEST(Pretrain, BlanksTheEmbeddingsOfTokensNoTrainingInputHeld) {
  namespace tt = tensortape;
  using editlab::model::Tensor;
  auto options = tiny_pretrain_options(scratch("blank"));
  const int vocab = 40;
  tt::Rng rng(3);
  editlab::model::T5 model(editlab::pretrain::base_config(options, vocab), rng);
  auto params = model.parameters();
  tt::optim::AdamW<float, editlab::model::Cpu> adam(params, {.lr = 1e-3, .weight_decay = 0.0});
  const auto ids = tt::from_vector<std::int64_t, editlab::model::Cpu>({2, 3}, {5, 6, 7, 7, 11, 1});
  const auto mask = tt::from_vector<std::int64_t, editlab::model::Cpu>({2, 3}, {1, 1, 1, 1, 1, 1});
  const auto labels = tt::from_vector<std::int64_t, editlab::model::Cpu>({2, 3}, {8, 9, 1, 20, 1, -100});
  const std::set<std::int64_t> fed = {5, 6, 7, 11, 1, /*decoder start*/ 0, 8, 9, 20};
  const auto decoder_inputs = tt::nn::shift_right(labels, model.config().decoder_start_token_id, model.config().pad_token_id);
  const auto loss = tt::cross_entropy(model.decode(decoder_inputs, model.encode(ids, mask), mask), labels, -100);
  const auto grads = tt::grad(std::vector<Tensor>{loss}, params, {}, false, false, /*allow_unused=*/true);
  for (std::size_t p = 0; p < params.size(); ++p)
    if (grads[p].defined()) params[p].set_grad(grads[p]);
  adam.step();
  const auto before = model.shared.weight.to_vector();

  const int blanked = editlab::pretrain::blank_untrained_embeddings(model, adam);
  EXPECT_EQ(blanked, vocab - static_cast<int>(fed.size()));
  const auto after = model.shared.weight.to_vector();
  const std::int64_t width = model.shared.weight.shape()[1];
  for (std::int64_t token = 0; token < vocab; ++token) {
    bool zero = true, kept = true;
    for (std::int64_t d = 0; d < width; ++d) {
      zero = zero && after[token * width + d] == 0.0f;
      kept = kept && after[token * width + d] == before[token * width + d];
    }
    if (fed.count(token)) EXPECT_TRUE(kept) << "token " << token << " was fed in and must keep its row";
    else EXPECT_TRUE(zero) << "token " << token << " was never fed in and must be blank";
  }
}

// --init fan-in (the shipped model's initialisation) is T5's with the query weights scaled up by
// sqrt(d_kv) and the position-bias tables by sqrt(d_model); every other weight is T5's draw.
TEST(Pretrain, FanInInitScalesUpOnlyTheQueriesAndThePositionBias) {
  namespace tt = tensortape;
  const auto config = editlab::pretrain::base_config(tiny_pretrain_options(scratch("fan_in")), 40);
  tt::Rng rng_t5(5), rng_fan_in(5);
  editlab::model::T5 t5(config, rng_t5), fan_in(config, rng_fan_in);
  editlab::pretrain::use_fan_in_init(fan_in);
  const auto a = t5.named_parameters(), b = fan_in.named_parameters();
  ASSERT_EQ(a.size(), b.size());
  int queries = 0, biases = 0;
  for (std::size_t p = 0; p < a.size(); ++p) {
    const std::string& name = a[p].first;
    double factor = 1.0;
    if (name.ends_with(".q.weight")) factor = std::sqrt(static_cast<double>(config.d_kv)), ++queries;
    if (name.ends_with("relative_attention_bias.weight")) factor = std::sqrt(static_cast<double>(config.d_model)), ++biases;
    const auto x = a[p].second.to_vector(), y = b[p].second.to_vector();
    ASSERT_EQ(x.size(), y.size());
    for (std::size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(y[i], x[i] * factor, 1e-6 * std::abs(x[i] * factor)) << name;
  }
  EXPECT_EQ(queries, config.num_layers + 2 * config.num_decoder_layers);
  EXPECT_EQ(biases, 2);

  auto options = tiny(scratch("bad_init"));
  options.init = "xavier";
  EXPECT_THROW(editlab::pretrain::pretrain(options), tensortape::Error);
}

// pretrain(options) must fail with a message that names `option`.
void expect_refused_naming(const PretrainOptions& options, const std::string& option, const char* why) {
  try {
    editlab::pretrain::pretrain(options);
    FAIL() << why;
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(option), std::string::npos) << e.what();
  }
}

TEST(Pretrain, AMixForATrackIsRefused) {
  auto options = tiny(scratch("track_mix"));
  options.source = "lot";
  options.mix.set("question=3");
  expect_refused_naming(options, "--mix", "a track has no mix to set");
}

// The copy task (--copy-percent): each example is one of the track's questions with an answer
// that is a span of one to four words of the track's text, other than the question's own answer,
// and never an edit's new label for that question (or an in-scope rephrasing's).
TEST(Pretrain, Zsre1kCopyTaskAnswersWithASpanOfTheTextNeverAnEditsNewLabel) {
  const fs::path shared = EDITLAB_SHARED_DATA_DIR;
  if (!fs::exists(editlab::data::track_file("zsre1k", shared)))
    GTEST_SKIP() << "real data not found under " << shared.string() << " (expected ../shared/data beside the repository)";
  const auto source = editlab::pretrain::track_source("zsre1k", shared, 25);
  ASSERT_TRUE(source.draw_copy);
  const auto track = editlab::data::load_track("zsre1k", shared);
  std::map<std::string, std::set<std::string>> answers;  // question -> its pretraining answers
  for (const auto& e : track.knowledge) answers[e.input].insert(e.target);
  std::set<std::pair<std::string, std::string>> edited;
  for (auto split : editlab::world::kSplits)
    for (const auto& c : track.benchmark.split(split)) {
      edited.insert({c.edit.input, c.edit.target});
      for (const auto& e : c.in_scope) edited.insert({e.input, e.target});
    }
  std::string all_text;  // every text, each between newlines
  for (const auto& text : track.texts) all_text += "\n" + editlab::world::detail::join_words(editlab::world::detail::split_words(text)) + "\n";
  tensortape::Rng rng(11);
  std::set<std::string> targets;
  for (int i = 0; i < 3000; ++i) {
    const auto e = source.draw_copy(rng);
    ASSERT_TRUE(answers.count(e.input)) << e.input << " is not one of the track's questions";
    EXPECT_EQ(answers[e.input].count(e.target), 0u) << e.target << " is the question's own answer";
    EXPECT_EQ(edited.count({e.input, e.target}), 0u) << e.input << " -> " << e.target << " is an edit";
    const auto words = editlab::world::detail::split_words(e.target);
    ASSERT_GE(words.size(), 1u);
    ASSERT_LE(words.size(), 4u);
    EXPECT_NE(all_text.find(e.target), std::string::npos) << e.target << " is not a span of a text";
    targets.insert(e.target);
  }
  EXPECT_GT(targets.size(), 2000u) << "answers should be as varied as the text";
}

// The generated world's copy task: a question or relation prompt about a fact, in a training
// phrasing or name, answered with another entity of the object's kind, never the fact's own
// object and never a new answer a qa or relations edit gives that fact.
TEST(Pretrain, WorldCopyTaskAnswersWithAnotherEntityOfTheKindNeverAnEditsNewAnswer) {
  namespace world = editlab::world;
  const auto source = editlab::pretrain::world_source({}, {});
  ASSERT_TRUE(source.draw_copy);
  const auto w = world::generate({});
  const world::Forms forms(w);
  std::map<std::string, const world::Fact*> fact_of;  // every training-phrased question and relation prompt
  for (const auto& f : w.facts) {
    for (int p = 0; p < world::Relation::num_train_questions; ++p) fact_of[forms.question(f, p).input] = &f;
    for (int n = 0; n < world::Relation::num_train_names; ++n) fact_of[forms.relation_prompt(f, n)] = &f;
  }
  std::set<std::pair<std::string, std::string>> edited;  // (subject|relation, new answer)
  for (const char* name : {"qa", "relations"}) {
    const auto benchmark = world::make_benchmark(w, name);
    for (auto split : world::kSplits)
      for (const auto& c : benchmark.split(split)) edited.insert({c.changes.front(), c.edit.target});  // the fact's "subject|relation"
  }
  ASSERT_GT(edited.size(), 100u);
  tensortape::Rng rng(11);
  int questions = 0;
  std::set<std::string> targets;
  for (int i = 0; i < 3000; ++i) {
    const auto e = source.draw_copy(rng);
    const auto found = fact_of.find(e.input);
    ASSERT_NE(found, fact_of.end()) << e.input << " is no training-phrased question or relation prompt";
    const world::Fact& f = *found->second;
    questions += e.input.rfind("question: ", 0) == 0;
    EXPECT_NE(e.target, w.answer(f)) << e.input << ": the fact's own answer";
    std::set<std::string> kind;
    for (int o : w.entities_of(w.relations[f.relation].object_kind)) kind.insert(w.name(o));
    EXPECT_TRUE(kind.count(e.target)) << e.target << " is not of the kind " << e.input << " asks for";
    EXPECT_FALSE(edited.count({world::detail::fact_key(w, f), e.target}))
        << e.input << " -> " << e.target << " is an edit";
    targets.insert(e.target);
  }
  EXPECT_GT(questions, 1300);  // half questions, half relation prompts
  EXPECT_LT(questions, 1700);
  EXPECT_GT(targets.size(), 50u);
}

// A track without texts (lot) has nothing to copy from.
TEST(Pretrain, ACopyTaskForATrackWithoutTextsIsRefused) {
  const fs::path shared = EDITLAB_SHARED_DATA_DIR;
  if (!fs::exists(editlab::data::track_file("lot", shared)))
    GTEST_SKIP() << "real data not found under " << shared.string() << " (expected ../shared/data beside the repository)";
  auto options = tiny(scratch("copy_lot"));
  options.source = "lot";
  options.data_dir = shared;
  options.copy_percent = 25;
  expect_refused_naming(options, "--copy-percent", "lot has no texts to copy from");
}

// The copy task's prefix: slot t of row r is the embedding row of label token t (before the end
// token), zero past the label's end; labels longer than the slots are cut.
TEST(Pretrain, LabelSlotsAreTheLabelsOwnEmbeddingsThenZeros) {
  namespace tt = tensortape;
  const auto& tiny_base = tiny_qa_base("editlab_pretrain_test_label_slots");
  auto base = editlab::model::Seq2Seq::load(tiny_base.dir);
  const auto batch = base.batch({{"question: a", "x y z"}, {"question: b", "w"}});
  const std::int64_t slots = 3;
  const auto prefix = base.label_slots(batch, slots);  // (2, 3, D)
  const auto d = base.model.config().d_model;
  ASSERT_EQ(prefix.shape(), (tt::Shape{2, slots, d}));
  const auto got = prefix.contiguous_copy().to_vector();
  const auto table = base.model.shared.weight.to_vector();
  const auto labels = batch.labels.to_vector();  // (2, T)
  const auto length = batch.labels.shape()[1];
  for (std::int64_t r = 0; r < 2; ++r)
    for (std::int64_t t = 0; t < slots; ++t) {
      const auto id = labels[static_cast<std::size_t>(r * length + t)];
      const bool token = id != editlab::model::kIgnore && id != base.model.config().eos_token_id;
      for (std::int64_t k = 0; k < d; ++k)
        EXPECT_EQ(got[static_cast<std::size_t>((r * slots + t) * d + k)], token ? table[static_cast<std::size_t>(id * d + k)] : 0.0f)
            << "row " << r << " slot " << t;
    }
  // "x y z" is at least three pieces (cut), "w" at most two (a zero slot): both cases are tested.
  EXPECT_NE(labels[2], base.model.config().eos_token_id);
  EXPECT_TRUE(labels[static_cast<std::size_t>(length + 2)] == base.model.config().eos_token_id ||
              labels[static_cast<std::size_t>(length + 2)] == editlab::model::kIgnore);
}

// A frozen encoder's output passed to Seq2Seq::loss (SEPROG's step reuses the one it pooled)
// gives the loss and the prefix's gradient of the loss that encodes the inputs itself, and is
// what the decoder reads.
TEST(Seq2SeqLoss, AGivenEncodingStandsForTheEncodersOwn) {
  namespace tt = tensortape;
  using editlab::model::Cpu;
  const auto& tiny_base = tiny_qa_base("editlab_pretrain_test_given_encoding");
  auto base = editlab::model::Seq2Seq::load(tiny_base.dir);
  base.model.freeze();
  const auto batch = base.batch({{"question: a b", "x y z"}, {"question: c", "w"}, {"question: d e f", "v u"}});
  tt::Rng rng(11);
  const auto start = tt::randn<float, Cpu>({3, 4, base.model.config().d_model}, rng);  // (B, P, D)
  auto loss_and_grad = [&](const tt::Tensor<float, Cpu>& encoded) {
    auto prefix = start.contiguous_copy().requires_grad_();
    const auto loss = base.loss(batch, prefix, encoded);
    tt::backward(loss);
    return std::pair{loss.item(), prefix.grad().to_vector()};
  };
  tt::Tensor<float, Cpu> frozen;
  {
    tt::NoGradGuard no_grad;
    frozen = base.model.encode(batch.input_ids, batch.attention_mask);  // (B, S, D)
  }
  const auto [own_loss, own_grad] = loss_and_grad(tt::Tensor<float, Cpu>());
  const auto [given_loss, given_grad] = loss_and_grad(frozen);
  EXPECT_EQ(given_loss, own_loss);
  EXPECT_EQ(given_grad, own_grad);
  const auto [zero_loss, zero_grad] = loss_and_grad(tt::zeros<float, Cpu>(frozen.shape()));
  EXPECT_NE(zero_loss, own_loss) << "the decoder reads the encoding it is given";
}

// Answering and classifying from an encoding the caller holds (SEPROG's predict answers each
// group of its inputs with their rows of the batch's encoding, padded for the whole batch) gives
// the answers of the encoder's own run; the rows given are what is read, and an encoding of
// other inputs is refused. Token ids are remembered per text and stay the tokenizer's.
TEST(Seq2SeqPredict, AGivenEncodingStandsForTheEncodersOwn) {
  namespace tt = tensortape;
  using editlab::model::Cpu;
  const auto& tiny_base = tiny_qa_base("editlab_pretrain_test_given_encoding_predict");
  auto base = editlab::model::Seq2Seq::load(tiny_base.dir);
  const std::vector<std::string> inputs = {"question: a b", "question: c", "question: d e f g h i"};
  const auto padded = base.encode_inputs(inputs);  // ids and mask (3, S): the third row is the longest
  const auto& mask = padded.second;
  tt::Tensor<float, Cpu> hidden;
  {
    tt::NoGradGuard no_grad;
    hidden = base.model.encode(padded.first, mask);  // (3, S, D)
  }
  const auto rows = [&](std::vector<std::int64_t> which) {
    const auto index = tt::from_vector<std::int64_t, Cpu>({static_cast<std::int64_t>(which.size())}, which);
    return editlab::model::InputEncoding{tt::index_select(hidden, 0, index), tt::index_select(mask, 0, index)};
  };
  const std::vector<std::string> two(inputs.begin(), inputs.begin() + 2), swapped = {inputs[1], inputs[0]};
  const std::vector<std::string> labels = {"x y z", "w"};
  EXPECT_EQ(base.predict(two, {}, tt::Tensor<float, Cpu>(), rows({0, 1})), base.predict(two, {}));
  EXPECT_EQ(base.predict(two, labels, tt::Tensor<float, Cpu>(), rows({0, 1})), base.predict(two, labels));
  EXPECT_EQ(base.predict(two, {}, tt::Tensor<float, Cpu>(), rows({1, 0})), base.predict(swapped, {}));
  EXPECT_EQ(base.predict(two, labels, tt::Tensor<float, Cpu>(), rows({1, 0})), base.predict(swapped, labels));
  EXPECT_THROW(base.predict(inputs, {}, tt::Tensor<float, Cpu>(), rows({0, 1})), tt::Error);
  for (int round = 0; round < 2; ++round)
    for (const auto& text : inputs) {
      auto expected = base.tokenizer.encode(text, /*append_eos=*/true);
      EXPECT_EQ(base.encode(text), std::vector<std::int64_t>(expected.begin(), expected.end())) << text << ", round " << round;
    }
}

// textgen's sampler: told a continuation to avoid, the sample never starts with its first
// token, even near temperature 0, where the sample is otherwise the greedy continuation.
TEST(Seq2SeqSample, NeverStartsWithTheAvoidedContinuationsFirstToken) {
  const auto& tiny_base = tiny_qa_base("editlab_pretrain_test_sample_avoid");
  auto base = editlab::model::Seq2Seq::load(tiny_base.dir);
  const std::string input = tiny_base.qa.split(editlab::world::Split::train).front().edit.input;
  tensortape::Rng rng(7);
  const std::string greedy = base.sample(input, 10, 0.01, rng);
  ASSERT_FALSE(greedy.empty());
  const int first = base.tokenizer.encode(greedy).front();
  int plain_starts = 0;
  for (int draw = 0; draw < 30; ++draw) {
    const auto plain = base.sample(input, 10, 0.01, rng);
    plain_starts += !plain.empty() && base.tokenizer.encode(plain).front() == first;
    const auto other = base.sample(input, 10, 0.01, rng, /*avoid=*/greedy);
    EXPECT_NE(other, greedy) << "draw " << draw;
    if (!other.empty()) {
      EXPECT_NE(base.tokenizer.encode(other).front(), first) << other;
    }
  }
  EXPECT_GT(plain_starts, 20);  // without avoid, the same first token nearly always
}

// predict() answers up to answer_tokens tokens: 12, or one more than the longest label a
// benchmark needs (zsRE's new answers run to 20 pieces and more), so that every label can be given.
TEST(Seq2SeqPredict, AnswersAreFittedToTheLongestLabel) {
  const auto& tiny_base = tiny_qa_base("editlab_pretrain_test_fit_answers");
  auto base = editlab::model::Seq2Seq::load(tiny_base.dir);
  EXPECT_EQ(base.answer_tokens, editlab::model::Seq2Seq::kAnswerTokens);
  base.fit_answers({"a", "question"});
  EXPECT_EQ(base.answer_tokens, editlab::model::Seq2Seq::kAnswerTokens);  // short labels keep the default
  std::string long_label;
  for (int word = 0; word < 20; ++word) long_label += (word ? " " : "") + tiny_base.qa.split(editlab::world::Split::train)[static_cast<std::size_t>(word)].subject;
  const auto pieces = static_cast<int>(base.tokenizer.encode(long_label).size());
  ASSERT_GT(pieces, editlab::model::Seq2Seq::kAnswerTokens);
  base.fit_answers({"a", long_label});
  EXPECT_EQ(base.answer_tokens, pieces + 1);
}

TEST(QualitySets, CoverEveryFactAndLabelStatedFactsByTheStatedClass) {
  const auto w = editlab::world::generate(editlab::world::WorldOptions{});
  const auto sets = editlab::pretrain::quality_sets(w);
  using editlab::world::Relation;
  EXPECT_EQ(sets.facts_training.size(), w.facts.size() * Relation::num_train_questions);
  EXPECT_EQ(sets.facts_heldout.size(), w.facts.size() * 2);
  EXPECT_EQ(sets.factcheck_training.size(), w.facts.size() * Relation::num_train_statements * 2);
  // Balanced labels where the bar is an accuracy.
  for (const auto* set : {&sets.factcheck_training, &sets.taxonomy_entailed}) {
    std::size_t trues = 0;
    for (const auto& e : *set) trues += e.target == "true";
    EXPECT_EQ(trues * 2, set->size());
  }
  ASSERT_GE(sets.stated_fact_new_names.size(), 250u);
  for (const auto& e : sets.stated_fact_new_names) {
    EXPECT_EQ(e.input.rfind("context: ", 0), 0u);
    // The named member is not an entity of the world.
    const std::string member = e.input.substr(e.input.find(' ', 9) + 1, e.input.find(" is a") - e.input.find(' ', 9) - 1);
    for (const auto& s : w.species) EXPECT_NE(s.name, member);
  }
}

// Sharded steps (train/data_parallel.hpp) must compute the whole batch's gradient: each
// shard's mean token loss weighted by its share of the target tokens.
// Issue "Hostile files and crashes": a training loop stops with a clear message when its loss or
// gradient turns non-finite, before the update writes NaN into the weights.
TEST(TrainingLoop, ANonFiniteStepStopsBeforeTheUpdate) {
  namespace train = editlab::train;
  namespace tt = tensortape;
  auto weight = tt::from_vector<float, editlab::model::Cpu>({2}, {1.0f, -1.0f}).requires_grad_();
  train::LoopSettings settings;
  settings.method = "probe";
  settings.steps = 10;
  settings.warmup_steps = 0;
  settings.eval_every = 100;
  train::TrainControl control;
  control.quiet = true;
  std::vector<float> before_bad_step;
  const auto gradients = [&](int step) {
    before_bad_step = weight.detach().to_vector();
    const float scale = step == 3 ? std::numeric_limits<float>::quiet_NaN() : 1.0f;  // step 4 goes bad
    auto loss = tt::sum(weight * weight) * scale;
    tt::backward(loss);
    return train::StepResult{loss.item(), 1};
  };
  try {
    train::run_training({weight}, settings, control, gradients, [] { return 0.0; });
    FAIL() << "expected an Error";
  } catch (const tt::Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("editlab train probe: step 4"), std::string::npos) << message;
    EXPECT_NE(message.find("nan"), std::string::npos) << message;
  }
  EXPECT_EQ(weight.detach().to_vector(), before_bad_step);  // the bad step's update never happened
  for (float w : weight.detach().to_vector()) EXPECT_TRUE(std::isfinite(w));
  // A finite gradient with a non-finite loss stops too.
  EXPECT_THROW(train::check_finite_step("x", 1, std::numeric_limits<double>::infinity(), 1.0), tt::Error);
  EXPECT_NO_THROW(train::check_finite_step("x", 1, 2.0, 3.0));
}

TEST(DataParallel, ShardedGradientEqualsTheWholeBatchGradient) {
  const fs::path dir = scratch("sharded");
  auto options = tiny(dir);
  editlab::pretrain::pretrain(options);
  auto base = editlab::model::Seq2Seq::load(dir);
  base.model.unfreeze();
  const auto world = editlab::world::generate(options.world);
  editlab::world::PretrainingMix mix(world, 5);
  std::vector<editlab::world::Example> examples(7);  // odd, so the shards differ in size and tokens
  for (auto& e : examples) e = mix.sample();
  const auto params = base.model.parameters();

  for (const auto& p : params) p.zero_grad();
  auto loss = base.loss(base.batch(examples));
  tensortape::backward(loss);
  std::vector<std::vector<float>> whole;
  for (const auto& p : params) whole.push_back(p.grad().to_vector());

  const auto shards = editlab::train::split_batch(base, examples, 3);
  ASSERT_EQ(shards.size(), 3u);
  EXPECT_NE(shards[0].weight, shards[2].weight);
  // Sorted by length: each micro-batch pads to no more than the next one.
  for (std::size_t s = 1; s < shards.size(); ++s)
    EXPECT_LE(shards[s - 1].data.input_ids.shape()[1], shards[s].data.input_ids.shape()[1]) << s;
  // One thread per micro-batch, and fewer threads than micro-batches, give the same gradient.
  for (int threads : {0, 2, 1}) {
    for (const auto& p : params) p.zero_grad();
    const double sharded_loss = editlab::train::backward_sharded(
        params, shards, [&](const editlab::model::TextBatch& b) { return base.loss(b); }, threads);
    EXPECT_NEAR(sharded_loss, loss.item(), 1e-5 * std::abs(loss.item())) << threads << " threads";
    for (std::size_t i = 0; i < params.size(); ++i) {
      const auto got = params[i].grad().to_vector();
      double scale = 1e-6;
      for (float g : whole[i]) scale = std::max(scale, static_cast<double>(std::abs(g)));
      for (std::size_t j = 0; j < got.size(); ++j)
        ASSERT_NEAR(got[j], whole[i][j], 1e-4 * scale) << threads << " threads, parameter " << i << " entry " << j;
    }
  }
}

// Each shard's pass runs its kernels and GEMMs on its own thread: inside it the OpenMP team size
// (which sizes the kernels' splits and, in OpenBLAS's OpenMP build, every GEMM's threads) is 1.
// The calling thread keeps its team between steps, for the gradient sum, the optimizer and
// evaluation; shard_count once set it to 1 for good through openblas_set_num_threads.
TEST(DataParallel, ShardsRunOnOneThreadEachAndTheCallerKeepsItsTeam) {
#if !defined(_OPENMP)
  GTEST_SKIP() << "built without OpenMP: the kernels run on one thread and OpenBLAS's threads are set process-wide";
#else
  const int before = omp_get_max_threads();
  omp_set_num_threads(2);
  EXPECT_EQ(editlab::train::shard_count(2), 2);
  EXPECT_EQ(omp_get_max_threads(), 2) << "shard_count shrank the calling thread's team";
  auto w = tensortape::ones<float, editlab::model::Cpu>({1}).requires_grad_();
  const std::vector<editlab::train::Shard<int>> shards = {{0, 0.25}, {1, 0.25}, {2, 0.25}, {3, 0.25}};
  for (int threads : {2, 1}) {
    std::vector<int> team(shards.size(), 0);
    w.zero_grad();
    editlab::train::backward_sharded({w}, shards, [&](int s) {
      team[static_cast<std::size_t>(s)] = omp_get_max_threads();
      return tensortape::sum(w * static_cast<double>(s + 1));
    }, threads);
    EXPECT_EQ(team, std::vector<int>(shards.size(), threads == 1 ? 2 : 1)) << threads << " threads";
    EXPECT_EQ(w.grad().to_vector(), std::vector<float>{2.5f}) << threads << " threads";  // 0.25 * (1 + 2 + 3 + 4)
    EXPECT_EQ(omp_get_max_threads(), 2) << threads << " threads: the caller's team after the step";
  }
  omp_set_num_threads(before);
#endif
}

// With OpenMP the shards run on the caller's own team, one shard's thread per team thread (the
// caller is thread 0), not on threads started for them, which would run beside the team's idle,
// spin-waiting threads.
TEST(DataParallel, ShardsRunOnTheCallersOpenMpTeam) {
#if !defined(_OPENMP)
  GTEST_SKIP() << "built without OpenMP: the shards run on threads of their own";
#else
  const auto caller = std::this_thread::get_id();
  auto w = tensortape::ones<float, editlab::model::Cpu>({1}).requires_grad_();
  const std::vector<editlab::train::Shard<int>> shards = {{0, 0.25}, {1, 0.25}, {2, 0.25}, {3, 0.25}};
  std::vector<int> team_thread(shards.size(), -1), in_parallel(shards.size(), -1);
  std::vector<bool> on_caller(shards.size(), false);
  editlab::train::backward_sharded({w}, shards, [&](int s) {
    const auto i = static_cast<std::size_t>(s);
    team_thread[i] = omp_get_thread_num();
    in_parallel[i] = omp_in_parallel();
    on_caller[i] = std::this_thread::get_id() == caller;
    return tensortape::sum(w * static_cast<double>(s + 1));
  }, 2);
  EXPECT_EQ(team_thread, (std::vector<int>{0, 1, 1, 0}));  // thread_of(s, 2)
  EXPECT_EQ(in_parallel, (std::vector<int>{1, 1, 1, 1}));
  EXPECT_EQ(on_caller, (std::vector<bool>{true, false, false, true}));
#endif
}

// Micro-batches sorted by length go to the threads there and back (0 1 1 0 0 1 ...), so each
// thread gets short and long ones.
TEST(DataParallel, ThreadsTakeShortAndLongMicroBatchesAlike) {
  std::vector<std::size_t> got;
  for (std::size_t s = 0; s < 8; ++s) got.push_back(editlab::train::thread_of(s, 2));
  EXPECT_EQ(got, (std::vector<std::size_t>{0, 1, 1, 0, 0, 1, 1, 0}));
  got.clear();
  for (std::size_t s = 0; s < 6; ++s) got.push_back(editlab::train::thread_of(s, 3));
  EXPECT_EQ(got, (std::vector<std::size_t>{0, 1, 2, 2, 1, 0}));
}

}  // namespace editlab_pretrain_test
