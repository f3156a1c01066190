// editlab::editors::Seprog — semi-parametric prompt generation (the SEPROG paper, section 3;
// ../shared/design/EDITORS.md). The base T5 stays frozen; an edit is a text in a memory, and an
// input the memory covers gets a generated prefix (P, D) before the base decoder's inputs.
//
//   Seprog editor(base, benchmark.labels, SeprogOptions{});
//   editor.train(benchmark);                  // Adam, warm-up, clip 5.0, early stopping
//   editor.apply(descriptors);                // encode the edit descriptors once: memory H (K, 2 d_h)
//   auto answers = editor.predict(inputs);    // prefix only where e(x) > 0.5 (gate_threshold)
//   editor.memory().add({"question: ...", "new answer"});  editor.memory().remove("question: ...");
//   editor.memory().save("memory.safetensors");
//   editor.save("runs/seprog-qa");            // the trained modules and their options
//
// Modules (names as in the paper):
//   edit encoder   E_edit: a trainable copy of the base encoder over "input => label", mean-
//                  pooled, then a linear layer to d_h: h_i (d_h).
//   selection      b(x): the frozen base encoder's mean-pooled output (D).
//                  h(x) = softmax_i((W_att b(x)) . h_i / sqrt(d_h)) h_i  (d_h)
//   classifier     e(x) = sigmoid(NN_e([h(x); b(x)])), NN_e two layers.
//   prompt decoder NN_prompt(h(x)) -> (P, D), two layers.
// Beyond the paper, on by default (each an option; docs/editing.md, runs 12-39, measures them):
//   key_value, match_feature: a memory entry holds a key and a value h_i, and NN_e also sees the
//                  best key's score: e(x) = sigmoid(NN_e([h(x); b(x); max_i score_i])).
//   token_match    the key is the descriptor input's tokens through the frozen encoder and W_att;
//                  score_i = scale * sum_t a_it max_s cos(W_att x_s, k_it), with learned
//                  saliences a (one for selection, one for the score NN_e sees).
//   exact_match    a key token also counts when the query holds the same token id:
//                  + scale' * sum_t a_it [id_it in x] (the subject's name survives rephrasing).
//   answer_match   both scores also compare the frozen decoder's first-step states:
//                  + scale'' * cos(W_ans r(x), W_ans r(descriptor input)) (the fact asked about).
//   sibling_share, swap_negatives: training edit sets with several edits of one subject, and
//                  out-scope inputs that are in-scope wordings about another subject;
//                  hard_negatives (off by default): out-scope inputs that are the edited subjects' other facts.
//   hard_selection: at inference h(x) is the best-scoring edit's value.
//   prompt_sees_query (off by default): NN_prompt([h(x); b(x)]), a prompt fitted to the query's wording.
//   pair_gate (off by default): NN_e also reads "query </s> best edit's input </s>" through a
//                  trainable copy of the base encoder, mean-pooled: the pair read jointly.
//   prompt_sees_pair (off by default): NN_prompt also reads that pair encoding.
//   edit_sets_per_step > 1: several edit sets per training step, each input masked to its own set's edits.
//   relabel, selection_weight: training cases given another case's new label, and a selection loss.
// SeprogOptions::paper_form() turns every one of these off: the paper's equations (tested in
// seprog_test, Seprog.PaperFormLossIsThePapersEquations).
// Losses: L_sc = balanced BCE of e(x) (in-scope 1, out-scope 0); L_pg = token NLL of the new
// label through the frozen decoder with the prefix, in-scope only; L = lambda L_sc + (1 - lambda) L_pg.
// Variants (the paper's ablations): finetune (the base trains too), noclassifier (no NN_e, no
// L_sc, prefix always), noselect (trained as SEPROG, prefix always at inference).
// Training encodes every text its draws can show once with the frozen base and reads the steps'
// encodings from that cache (cache_frozen_encodings; not sp-finetune, whose base trains).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "editors/run_editor.hpp"
#include "editors/seprog/memory.hpp"
#include "editors/seprog/modules.hpp"
#include "editors/seprog/options.hpp"
#include "model/seq2seq.hpp"
#include "tensortape/io/safetensors.hpp"
#include "tensortape/optim/adam.hpp"
#include "tensortape/optim/clip.hpp"
#include "train/checkpoint.hpp"
#include "train/data_parallel.hpp"
#include "train/edit_sets.hpp"
#include "train/loop.hpp"
#include "common/cases.hpp"
#include "world/corpus.hpp"

namespace editlab::editors {

namespace tt = tensortape;
using model::Cpu;
using model::Ids;
using model::Seq2Seq;
using model::Tensor;



using train::TrainControl;
using train::TrainReport;

class Seprog : public RunEditor {
 public:
  Seprog(Seq2Seq& base, std::vector<std::string> labels, SeprogOptions options)
      : base_(&base), labels_(std::move(labels)), options_(options) {
    tt::check(options_.prefix_length > 0 && options_.memory_dim > 0 && options_.hidden > 0, "Seprog",
              "prefix_length, memory_dim and hidden must be positive");
    tt::check(options_.lambda >= 0 && options_.lambda <= 1, "Seprog", "lambda ", options_.lambda, " is not in [0, 1]");
    set_gate_threshold(options_.gate_threshold);
    tt::check(!options_.token_match || (options_.key_value && options_.key_tokens > 0), "Seprog",
              "token_match needs key_value and a positive key_tokens");
    tt::check(!options_.answer_match || options_.token_match, "Seprog", "answer_match needs token_match");
    tt::check(!options_.exact_match || options_.token_match, "Seprog", "exact_match needs token_match");
    tt::check(!options_.scope_from_match_only || options_.match_feature, "Seprog", "scope_from_match_only needs match_feature");
    tt::Rng init(options_.seed);
    modules_ = SeprogModules(base.model, options_, init);
    base_->model.freeze();
    base_->model.eval();
  }

  std::string name() const override { return variant_name(options_.variant); }
  const SeprogOptions& options() const { return options_; }
  nlohmann::json options_json() const override { return options_.to_json(); }
  std::uint64_t seed() const override { return options_.seed; }
  SeprogModules& modules() { return modules_; }
  // Where predict injects the prefix: e(x) > threshold. Saved with the run's options.
  void set_gate_threshold(double threshold) {
    tt::check(threshold > 0 && threshold < 1, "Seprog", "gate threshold ", threshold, " is not in (0, 1)");
    options_.gate_threshold = threshold;
  }
  EditMemory& memory() { return memory_; }

  // ---- Editor ----
  void apply(const std::vector<Example>& descriptors) override { add_edits(descriptors); }
  // Forgets the edits, and the frozen encodings train_step() kept (so that what is measured
  // after training does not hold them).
  void reset() override {
    memory_.clear();
    encoding_cache_ = {};
  }

  // One training step (Adam, clipping, as in train()) on the edit set `edits`, with in-scope
  // and out-scope examples drawn from them: what the cost table times. It changes the modules;
  // the first call also creates the optimizer state. One pass, its kernels on every core, as the
  // other editors' steps: one set split by its examples over threads would have each thread
  // encode all K edits again (docs/results/cost.md).
  double train_step(const std::vector<Case>& edits) override {
    const bool finetune = options_.variant == SeprogVariant::finetune;
    if (finetune) {  // sp-finetune's base trains too, as in train(); frozen again however the step ends
      base_->model.unfreeze();
      base_->model.train();
    }
    struct Refreeze {
      Seq2Seq* base;
      bool finetune;
      ~Refreeze() {
        if (!finetune) return;
        base->model.freeze();
        base->model.eval();
      }
    } refreeze{base_, finetune};
    auto params = trainable_parameters();
    if (!step_optimizer_) step_optimizer_ = std::make_unique<tt::optim::Adam<float, Cpu>>(params, tt::optim::AdamOptions{.lr = options_.lr});
    tt::Rng rng(options_.seed);
    const StepData data = train::one_edit_set(edits, rng, options_.examples_per_step, options_.swap_negatives);
    cache_frozen_encodings(texts_of(data));  // as train() holds its pool's before its steps
    step_optimizer_->zero_grad();
    const auto loss = step_loss(data);
    tt::backward(loss);
    tt::optim::clip_grad_norm_(params, options_.clip_norm);
    step_with_base_lr(*step_optimizer_);
    return loss.item();
  }

  std::vector<std::string> predict(const std::vector<std::string>& inputs) override {
    tt::NoGradGuard no_grad;
    std::vector<std::string> out(inputs.size());
    if (inputs.empty()) return out;
    std::vector<std::size_t> prompted, plain;
    Forward scope;  // without edits, the base answers alone and encodes the inputs itself
    if (memory_.size() > 0) {
      scope = forward(inputs, memory_.encodings(), memory_.descriptors(), Tensor(), options_.hard_selection);
      const auto probabilities = tt::sigmoid(scope.in_scope_logit).to_vector();
      for (std::size_t i = 0; i < inputs.size(); ++i)
        (always_inject() || probabilities[i] > options_.gate_threshold ? prompted : plain).push_back(i);
    } else {
      for (std::size_t i = 0; i < inputs.size(); ++i) plain.push_back(i);
    }
    // Each group answers with its rows of the frozen encoding forward() already computed.
    auto run = [&](const std::vector<std::size_t>& which, bool with_prefix) {
      if (which.empty()) return;
      std::vector<std::string> group;
      std::vector<std::int64_t> rows;
      for (auto i : which) group.push_back(inputs[i]), rows.push_back(static_cast<std::int64_t>(i));
      const auto index = tt::from_vector<std::int64_t, Cpu>({static_cast<std::int64_t>(rows.size())}, rows);
      const auto pick = [&](const auto& t) { return t.defined() ? tt::index_select(t, 0, index) : t; };
      const model::InputEncoding encoding{pick(scope.encoding.hidden), pick(scope.encoding.mask)};
      const auto answers = base_->predict(group, labels_, with_prefix ? pick(scope.prefix) : Tensor(), encoding);
      for (std::size_t k = 0; k < which.size(); ++k) out[which[k]] = answers[k];
    };
    run(prompted, /*with_prefix=*/true);
    run(plain, /*with_prefix=*/false);
    return out;
  }

  // ---- the memory, at run time ----
  // Encodes and appends descriptors (no retraining).
  void add_edits(const std::vector<Example>& descriptors) {
    if (descriptors.empty()) return;
    tt::NoGradGuard no_grad;
    auto encodings = encode_edits(descriptors);  // (k, d_h)
    auto all = memory_.descriptors();
    all.insert(all.end(), descriptors.begin(), descriptors.end());
    memory_.set(all, memory_.size() ? tt::concat<float, Cpu>({memory_.encodings(), encodings}, 0) : encodings);
  }
  // The scope probability e(x) of each input under the current memory, as predict gates on it
  // (with predict's selection: hard_selection feeds NN_e the best edit's value).
  std::vector<float> scope_probabilities(const std::vector<std::string>& inputs) {
    tt::NoGradGuard no_grad;
    if (memory_.size() == 0) return std::vector<float>(inputs.size(), 0.0f);
    const auto scope = forward(inputs, memory_.encodings(), memory_.descriptors(), Tensor(), options_.hard_selection);
    return tt::sigmoid(scope.in_scope_logit).to_vector();
  }

  // Answers with the oracle's routing: input i gets the prompt of memory entry edit_of_input[i]
  // (the edit it belongs to), the gate open. What the prompt decoder and the frozen base can do
  // when selection and scope are perfect (editlab oracle).
  std::vector<std::string> predict_with_edit(const std::vector<std::string>& inputs, const std::vector<std::size_t>& edit_of_input) {
    if (inputs.empty()) return {};
    return base_predict(inputs, oracle_prefix(inputs, edit_of_input));
  }
  // The prefix each input gets with the oracle's routing (as in predict_with_edit). (B, P, D),
  // or (B, P + label_slots, D)
  Tensor oracle_prefix(const std::vector<std::string>& inputs, const std::vector<std::size_t>& edit_of_input) {
    tt::NoGradGuard no_grad;
    tt::check(edit_of_input.size() == inputs.size(), "Seprog::oracle_prefix", inputs.size(), " inputs but ",
              edit_of_input.size(), " edit indices");
    tt::check(!inputs.empty(), "Seprog::oracle_prefix", "no inputs");
    const auto k = static_cast<std::int64_t>(memory_.size());
    std::vector<float> bias(inputs.size() * static_cast<std::size_t>(k), -1e9f);  // (B, K): only the given edit
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      tt::check(edit_of_input[i] < memory_.size(), "Seprog::oracle_prefix", "edit index ", edit_of_input[i],
                " is not in the memory of ", memory_.size(), " edits");
      bias[i * static_cast<std::size_t>(k) + edit_of_input[i]] = 0.0f;
    }
    const auto set_bias = tt::from_vector<float, Cpu>({static_cast<std::int64_t>(inputs.size()), k}, bias);
    return forward(inputs, memory_.encodings(), memory_.descriptors(), set_bias, /*hard=*/true).prefix;
  }

  // The selection's attention over the memory for each input, (B, K) row-major (for inspection).
  std::vector<float> selection_weights(const std::vector<std::string>& inputs) {
    tt::NoGradGuard no_grad;
    if (memory_.size() == 0 || inputs.empty()) return {};
    return tt::exp(forward(inputs, memory_.encodings(), memory_.descriptors()).selection_log_weights).to_vector();
  }

  // How well each input matches its best edit: the largest selection score, or with
  // token_match the largest score under the scope salience (for inspection).
  std::vector<float> best_match(const std::vector<std::string>& inputs) {
    tt::NoGradGuard no_grad;
    if (memory_.size() == 0 || inputs.empty()) return {};
    return forward(inputs, memory_.encodings(), memory_.descriptors()).best_match.to_vector();
  }

  // ---- training ----
  // Trains the modules on the benchmark's train split, early-stopping on validation loss, and
  // leaves the best validation state in place (train::run_training). Each step's draw is seeded
  // by (seed, step), so a resumed run draws exactly what the uninterrupted one would have.
  TrainReport train(const Benchmark& bench, const TrainControl& control = {}) override {

    const auto& train_cases = bench.split(Split::train);
    const auto& validation_cases = bench.split(Split::validation);
    tt::check(!train_cases.empty() && !validation_cases.empty(), "Seprog::train", "benchmark '", bench.name,
              "' needs train and validation edits");
    if (options_.variant == SeprogVariant::finetune) {
      base_->model.unfreeze();
      base_->model.train();
    }
    const int shards = train::shard_count(control.threads);

    // Fixed validation draws so that losses are comparable between evaluations.
    std::vector<StepData> validation;
    tt::Rng validation_rng(options_.seed + 17);
    for (int i = 0; i < 8; ++i) validation.push_back(draw(validation_cases, validation_rng));

    // Every text the draws can show (word dropout and swapped subjects make new ones, encoded
    // at their step) is encoded once here; the shards only read the cache.
    std::vector<std::string> texts;
    for (const auto& c : train_cases) {
      texts.push_back(c.edit.input);
      for (const auto* examples : {&c.in_scope, &c.out_scope, &c.hard_out_scope})
        for (const auto& e : *examples) texts.push_back(e.input);
    }
    for (const auto& d : validation)
      for (auto& text : texts_of(d)) texts.push_back(std::move(text));
    const auto cache_start = std::chrono::steady_clock::now();
    cache_frozen_encodings(texts);
    if (!control.quiet && options_.variant != SeprogVariant::finetune)
      std::fprintf(stderr, "%s: the frozen base's encodings of %zu texts kept for the steps (%.0f MB, %.1f s)%s\n", name().c_str(),
                   encoding_cache_.row_of.size(), static_cast<double>(encoding_cache_.bytes()) / (1024.0 * 1024.0),
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - cache_start).count(),
                   encoding_cache_.full ? "; the rest would pass the cache's limit and are encoded at their steps" : "");
    struct ClearCache {
      EncodingCache& cache;
      ~ClearCache() { cache = {}; }
    } clear_cache{encoding_cache_};

    const train::LoopSettings settings{.method = name(), .steps = options_.steps, .warmup_steps = options_.warmup_steps,
                                       .lr = options_.lr, .clip_norm = options_.clip_norm, .eval_every = options_.eval_every,
                                       .patience = options_.patience, .options = options_.to_json()};
    const auto report = train::run_training(
        trainable_parameters(), settings, control,
        [&](int step) {
          tt::Rng step_rng(options_.seed * 1'000'003ULL + static_cast<std::uint64_t>(step));
          const StepData data = draw(train_cases, step_rng);
          const double loss = train::backward_sharded(trainable_parameters(), train::split_edit_sets(data, shards),
                                                      [&](const StepData& d) { return step_loss(d); });
          return train::StepResult{loss, static_cast<double>(data.in_scope.size() + data.out_scope.size())};
        },
        [&] { return validation_loss(validation); }, [&](tt::optim::Adam<float, Cpu>& adam) { step_with_base_lr(adam); });
    if (!report.stopped_for_resume) {
      base_->model.freeze();
      base_->model.eval();
    }
    return report;
  }

  // ---- persistence of the trained editor ----
  // <dir>/seprog.json (options) and <dir>/seprog.safetensors (modules; with sp-finetune also
  // the fine-tuned base under "base.").
  void save(const std::filesystem::path& dir) override {
    std::filesystem::create_directories(dir);
    std::map<std::string, Tensor> tensors;
    for (auto& [n, p] : modules_.named_parameters()) tensors.emplace(n, p.detach());
    if (options_.variant == SeprogVariant::finetune)
      for (auto& [n, p] : base_->model.named_parameters()) tensors.emplace("base." + n, p.detach());
    tt::io::save(dir / "seprog.safetensors", tensors);
    const std::string json = nlohmann::json{{"editor", "seprog"}, {"options", options_.to_json()}}.dump(2) + "\n";
    tt::io::write_file_atomically(dir / "seprog.json", [&](tt::io::AtomicFileWriter& w) { w.write(json.data(), json.size()); });
  }

  static SeprogOptions read_options(const std::filesystem::path& dir) {
    std::ifstream in(dir / "seprog.json");
    tt::check(static_cast<bool>(in), "Seprog::load", "'", (dir / "seprog.json").string(), "' is missing");
    const auto j = nlohmann::json::parse(in, nullptr, false);
    tt::check(!j.is_discarded() && j.value("editor", "") == "seprog", "Seprog::load", "'", (dir / "seprog.json").string(),
              "' is not a SEPROG run");
    return SeprogOptions::from_json(j.at("options"));
  }

  // Loads modules written by save() into this editor (its base must be the run's base).
  void load_weights(const std::filesystem::path& dir) override {
    const tt::io::SafetensorsFile st(dir / "seprog.safetensors");
    auto load_into = [&](tt::nn::Module<float, Cpu>& m, const std::string& prefix) {
      m.for_each_parameter([&](const std::string& n, Tensor& p) {
        tt::check(st.contains(prefix + n), "Seprog::load", "'", (dir / "seprog.safetensors").string(), "' has no tensor '",
                  prefix + n, "'");
        auto loaded = tt::io::load<float, Cpu>(st, prefix + n);
        tt::check(loaded.shape() == p.shape(), "Seprog::load", "tensor '", prefix + n, "' has shape ", loaded.shape(),
                  ", this model expects ", p.shape(), " (was the run made with another base model?)");
        p = p.requires_grad() ? loaded.requires_grad_() : loaded;
      });
    };
    load_into(modules_, "");
    if (options_.variant == SeprogVariant::finetune) load_into(base_->model, "base.");
  }

  // The training objective on one step's data (public for tests).
  using StepData = train::EditSets;
  Tensor step_loss(const StepData& data) {
    const bool scope_trains = options_.variant != SeprogVariant::noclassifier;
    std::vector<std::string> edit_inputs, in_inputs, out_inputs;  // the keys read the edits' (key_value)
    if (options_.key_value)
      for (const auto& e : data.edits) edit_inputs.push_back(e.input);
    for (const auto& e : data.in_scope) in_inputs.push_back(e.input);
    if (scope_trains)
      for (const auto& e : data.out_scope) out_inputs.push_back(e.input);
    // A step's texts repeat (an edit's input is among its in-scope examples, other edits' inputs
    // among the out-scope ones): the frozen base encodes each distinct text once.
    const auto frozen = frozen_encodings({edit_inputs, in_inputs, out_inputs});
    const auto memory = encode_edits(data.edits, frozen[0]);  // (K, memory width), trainable
    const auto in = forward(in_inputs, frozen[1], memory, data.edits, set_mask(data.in_set, data.edit_set));
    // The frozen encoder's output from forward() serves the prompt loss too; sp-finetune's base
    // trains, so its encoder runs again on the tape.
    const bool frozen_base = options_.variant != SeprogVariant::finetune;
    auto prompt_loss = base_->loss(base_->batch(data.in_scope), in.prefix, frozen_base ? in.encoding.hidden : Tensor());
    if (options_.selection_weight > 0) prompt_loss = prompt_loss + tt::affine(selection_loss(data, in.selection_log_weights), options_.selection_weight, 0.0);
    if (!scope_trains) return prompt_loss;
    const auto out = forward(out_inputs, frozen[2], memory, data.edits, set_mask(data.out_set, data.edit_set));
    const auto ones = tt::full<float, Cpu>(in.in_scope_logit.shape(), 1.0f);
    const auto zeros = tt::zeros<float, Cpu>(out.in_scope_logit.shape());
    const auto scope_loss = tt::affine(tt::binary_cross_entropy_with_logits(in.in_scope_logit, ones) +
                                           tt::binary_cross_entropy_with_logits(out.in_scope_logit, zeros),
                                       0.5, 0.0);
    return tt::affine(scope_loss, options_.lambda, 0.0) + tt::affine(prompt_loss, 1.0 - options_.lambda, 0.0);
  }

  // The frozen base model's view of inputs; no gradient is needed through it (public for
  // tests, as the two functions below).
  struct FrozenEncoding {
    Tensor hidden;        // (B, L, D) the encoder's output
    Ids ids;              // (B, L) the input's token ids
    Ids mask;             // (B, L) 1 on tokens, 0 on padding
    Tensor answer_state;  // (B, D) r(x), with answer_match only
    Tensor pooled() const { return masked_mean(hidden, mask); }  // b(x) (B, D)
  };
  FrozenEncoding frozen_encoding(const std::vector<std::string>& inputs) {
    tt::NoGradGuard no_grad;
    auto [ids, mask] = base_->encode_inputs(inputs);
    FrozenEncoding frozen{base_->model.encode(ids, mask), ids, mask, Tensor()};
    if (options_.answer_match) frozen.answer_state = answer_state(base_->model, frozen.hidden, mask);
    return frozen;
  }
  // frozen_encoding() of each group of inputs, with each distinct text encoded once, all in one
  // batch; a group's rows are cut to its own longest input, as its own call would pad them. An
  // empty group gets an empty encoding.
  std::vector<FrozenEncoding> frozen_encodings(const std::vector<std::vector<std::string>>& groups) {
    tt::NoGradGuard no_grad;
    std::vector<std::string> distinct;
    std::unordered_map<std::string, std::int64_t> row_of;
    for (const auto& group : groups)
      for (const auto& text : group)
        if (row_of.emplace(text, static_cast<std::int64_t>(distinct.size())).second) distinct.push_back(text);
    if (distinct.empty()) return std::vector<FrozenEncoding>(groups.size());
    const auto all = cached_or_fresh_encoding(distinct);
    const auto tokens = token_counts(all.mask);  // each distinct text's
    std::vector<FrozenEncoding> out;
    for (const auto& group : groups) {
      if (group.empty()) {
        out.emplace_back();
        continue;
      }
      std::vector<std::int64_t> rows;
      std::int64_t length = 1;  // the group's longest input
      for (const auto& text : group) {
        const auto row = row_of.at(text);
        rows.push_back(row);
        length = std::max(length, tokens[static_cast<std::size_t>(row)]);
      }
      const auto index = tt::from_vector<std::int64_t, Cpu>({static_cast<std::int64_t>(rows.size())}, rows);
      auto pick = [&](const auto& x) { return tt::index_select(x, 0, index).narrow(1, 0, length).contiguous_copy(); };
      out.push_back({pick(all.hidden), pick(all.ids), pick(all.mask),
                     all.answer_state.defined() ? tt::index_select(all.answer_state, 0, index) : Tensor()});
    }
    return out;
  }

  // ---- the frozen encodings kept across training steps ----
  // The base does not change while the modules train (except sp-finetune's, which never
  // caches), and every epoch of draws shows the same texts again: train() and train_step()
  // encode the texts their steps will meet once, before the steps, and the steps read them
  // here. Up to kEncodingCacheBytes; texts beyond it are encoded at each step, as without.
  static constexpr std::int64_t kEncodingCacheBytes = std::int64_t{1} << 30;
  struct EncodingCache {
    FrozenEncoding rows;                                 // (N, L, D), (N, L), (N, L), (N, D): padded to the longest
    std::unordered_map<std::string, std::int64_t> row_of;  // text -> its row
    std::vector<std::int64_t> tokens;                    // each row's token count
    bool full = false;                                   // the last fill stopped at the cap
    // What n rows of width l hold: hidden (floats), ids and mask (int64), answer state (floats).
    static std::int64_t bytes_of(std::int64_t n, std::int64_t l, std::int64_t d, bool answer_state) {
      return n * l * (d * 4 + 16) + (answer_state ? n * d * 4 : 0);
    }
    std::int64_t bytes() const {
      if (!rows.hidden.defined()) return 0;
      return bytes_of(rows.hidden.shape()[0], rows.hidden.shape()[1], rows.hidden.shape()[2], rows.answer_state.defined());
    }
  };
  const EncodingCache& encoding_cache() const { return encoding_cache_; }

  // Encodes with the frozen base the texts the cache does not hold yet, in batches of texts of
  // about one length, and keeps them. Call it before a step, never while shards run.
  void cache_frozen_encodings(const std::vector<std::string>& texts) {
    if (options_.variant == SeprogVariant::finetune || encoding_cache_.full) return;
    tt::NoGradGuard no_grad;
    auto& cache = encoding_cache_;
    std::vector<std::string> fresh;
    for (const auto& text : texts)
      if (!cache.row_of.contains(text)) fresh.push_back(text);
    std::sort(fresh.begin(), fresh.end(), [](const std::string& a, const std::string& b) {
      return a.size() != b.size() ? a.size() < b.size() : a < b;
    });
    fresh.erase(std::unique(fresh.begin(), fresh.end()), fresh.end());
    if (fresh.empty()) return;
    constexpr std::size_t kBatch = 256;
    const auto d = std::int64_t{base_->model.config().d_model};
    std::vector<FrozenEncoding> parts = {cache.rows};  // the rows held, then the new batches
    auto rows = static_cast<std::int64_t>(cache.tokens.size());
    auto width = cache.rows.hidden.defined() ? cache.rows.hidden.shape()[1] : std::int64_t{1};
    for (std::size_t start = 0; start < fresh.size(); start += kBatch) {
      const std::vector<std::string> batch(fresh.begin() + static_cast<std::ptrdiff_t>(start),
                                           fresh.begin() + static_cast<std::ptrdiff_t>(std::min(fresh.size(), start + kBatch)));
      auto encoded = frozen_encoding(batch);
      const auto n = static_cast<std::int64_t>(batch.size()), new_width = std::max(width, encoded.hidden.shape()[1]);
      if (EncodingCache::bytes_of(rows + n, new_width, d, /*answer_state=*/true) > kEncodingCacheBytes) {  // as if it had one
        cache.full = true;
        break;
      }
      const auto counts = token_counts(encoded.mask);
      for (std::int64_t row = 0; row < n; ++row) cache.row_of.emplace(batch[static_cast<std::size_t>(row)], rows + row);
      cache.tokens.insert(cache.tokens.end(), counts.begin(), counts.end());
      rows += n;
      width = new_width;
      parts.push_back(std::move(encoded));
    }
    cache.rows = concat_rows(parts, width);
  }

 private:
  // Each row's token count: one past its last unmasked position. mask (N, L) -> N counts
  static std::vector<std::int64_t> token_counts(const Ids& mask) {
    const auto host = mask.to_vector();
    const auto n = mask.shape()[0], l = mask.shape()[1];
    std::vector<std::int64_t> counts(static_cast<std::size_t>(n), 0);
    for (std::int64_t row = 0; row < n; ++row)
      for (std::int64_t t = 0; t < l; ++t)
        if (host[static_cast<std::size_t>(row * l + t)]) counts[static_cast<std::size_t>(row)] = t + 1;
    return counts;
  }
  // x (N, L, ...) cut or padded with zeros along axis 1 to width.
  template <class T>
  static tt::Tensor<T, Cpu> to_width(const tt::Tensor<T, Cpu>& x, std::int64_t width) {
    const auto l = x.shape()[1];
    if (l >= width) return x.narrow(1, 0, width);
    auto pad_shape = x.shape();
    pad_shape[1] = width - l;
    return tt::concat<T, Cpu>({x, tt::zeros<T, Cpu>(pad_shape)}, 1);
  }
  // The rows of every part, padded to width (undefined parts skipped).
  static FrozenEncoding concat_rows(const std::vector<FrozenEncoding>& parts, std::int64_t width) {
    std::vector<Tensor> hidden, answer_state;
    std::vector<Ids> ids, mask;
    for (const auto& p : parts) {
      if (!p.hidden.defined()) continue;
      hidden.push_back(to_width(p.hidden, width));
      ids.push_back(to_width(p.ids, width));
      mask.push_back(to_width(p.mask, width));
      if (p.answer_state.defined()) answer_state.push_back(p.answer_state);
    }
    if (hidden.size() == 1) return {hidden[0].contiguous_copy(), ids[0].contiguous_copy(), mask[0].contiguous_copy(),
                                    answer_state.empty() ? Tensor() : answer_state[0]};
    return {tt::concat<float, Cpu>(hidden, 0), tt::concat<std::int64_t, Cpu>(ids, 0), tt::concat<std::int64_t, Cpu>(mask, 0),
            answer_state.empty() ? Tensor() : tt::concat<float, Cpu>(answer_state, 0)};
  }
  // frozen_encoding(texts) (distinct texts), its rows read from the cache where it holds them:
  // the same rows, padded to the longest text. With none cached, the very call.
  FrozenEncoding cached_or_fresh_encoding(const std::vector<std::string>& texts) {
    const auto& cache = encoding_cache_;
    std::vector<std::int64_t> cached_rows, order;  // order: each text's row in [cached rows; fresh rows]
    std::vector<std::string> fresh;
    std::int64_t width = 1;
    for (const auto& text : texts)
      if (const auto found = cache.row_of.find(text); found != cache.row_of.end()) {
        order.push_back(static_cast<std::int64_t>(cached_rows.size()));
        cached_rows.push_back(found->second);
        width = std::max(width, cache.tokens[static_cast<std::size_t>(found->second)]);
      } else {
        order.push_back(-1 - static_cast<std::int64_t>(fresh.size()));
        fresh.push_back(text);
      }
    if (cached_rows.empty()) return frozen_encoding(texts);
    const auto index = [](const std::vector<std::int64_t>& rows) {
      return tt::from_vector<std::int64_t, Cpu>({static_cast<std::int64_t>(rows.size())}, rows);
    };
    const auto cached_index = index(cached_rows);
    const auto pick = [&](const auto& x) { return x.defined() ? tt::index_select(x, 0, cached_index) : x; };
    FrozenEncoding cached{pick(cache.rows.hidden), pick(cache.rows.ids), pick(cache.rows.mask), pick(cache.rows.answer_state)};
    if (fresh.empty()) return concat_rows({cached}, width);
    const auto encoded = frozen_encoding(fresh);
    width = std::max(width, encoded.hidden.shape()[1]);
    for (auto& row : order)
      if (row < 0) row = static_cast<std::int64_t>(cached_rows.size()) - 1 - row;
    const auto all = concat_rows({cached, encoded}, width);
    const auto back = index(order);
    const auto reorder = [&](const auto& x) { return x.defined() ? tt::index_select(x, 0, back) : x; };
    return {reorder(all.hidden), reorder(all.ids), reorder(all.mask), reorder(all.answer_state)};
  }
  // Every input text of a step's data.
  static std::vector<std::string> texts_of(const StepData& data) {
    std::vector<std::string> texts;
    for (const auto* examples : {&data.edits, &data.in_scope, &data.out_scope})
      for (const auto& e : *examples) texts.push_back(e.input);
    return texts;
  }

 public:
  // Mean over in-scope examples of -log(attention weight on the example's own edit).
  static Tensor selection_loss(const StepData& data, const Tensor& log_weights) {  // log_weights (B, K)
    const auto b = static_cast<std::int64_t>(data.in_scope.size()), k = static_cast<std::int64_t>(data.edits.size());
    std::vector<float> target(static_cast<std::size_t>(b * k), 0.0f);  // (B, K) one-hot
    for (std::int64_t i = 0; i < b; ++i)
      for (std::int64_t j = 0; j < k; ++j)
        if (data.edit_set[j] == data.in_set[i] && data.edits[j].input == data.in_edit[i]) {
          target[i * k + j] = 1.0f;
          break;
        }
    const auto picked = tt::sum(tt::mul(log_weights, tt::from_vector<float, Cpu>({b, k}, target)));
    return tt::affine(picked, -1.0 / static_cast<double>(b), 0.0);
  }

  // One step's training data (train::draw_edit_sets, with this editor's sampling options).
  StepData draw(const std::vector<Case>& pool, tt::Rng& rng) const { return train::draw_edit_sets(pool, rng, sampling()); }

 private:
  train::EditSetOptions sampling() const {
    return {.edit_sets = options_.edit_sets_per_step, .examples_per_step = options_.examples_per_step,
            .max_edits = options_.max_edits, .sibling_share = options_.sibling_share, .relabel = options_.relabel,
            .word_dropout = options_.word_dropout, .swap_negatives = options_.swap_negatives,
            .hard_negatives = options_.hard_negatives};
  }

  struct Forward {
    Tensor in_scope_logit;         // (B) logit of e(x)
    Tensor prefix;                 // (B, P, D); (B, P + label_slots, D) with label_slots
    Tensor selection_log_weights;  // (B, K) log of the attention over the edits
    Tensor best_match;             // (B, 1) the best edit's score (with token_match, under the scope salience)
    model::InputEncoding encoding;  // the frozen encoder's output for the inputs (B, L, D), no gradient, and its mask
  };

  bool always_inject() const {
    return options_.variant == SeprogVariant::noclassifier || options_.variant == SeprogVariant::noselect;
  }

  // (B, K) additive bias keeping each input to its own edit set's edits; undefined when the
  // step holds a single set.
  static Tensor set_mask(const std::vector<int>& input_sets, const std::vector<int>& edit_sets) {
    if (edit_sets.empty() || edit_sets.front() == edit_sets.back()) return Tensor();
    std::vector<float> bias;
    for (int in : input_sets)
      for (int edit : edit_sets) bias.push_back(in == edit ? 0.0f : -1e9f);
    return tt::from_vector<float, Cpu>({static_cast<std::int64_t>(input_sets.size()), static_cast<std::int64_t>(edit_sets.size())}, bias);
  }

  // The frozen encoding of descriptors' inputs: what their keys read (key_value); none without.
  FrozenEncoding frozen_inputs(const std::vector<Example>& descriptors) {
    if (!options_.key_value) return {};
    std::vector<std::string> inputs;
    for (const auto& d : descriptors) inputs.push_back(d.input);
    return frozen_encoding(inputs);
  }

  // h_i for each descriptor: pooled E_edit over "input => label", projected to d_h. With
  // key_value, each row is [key | value]: the value is that h_i, and the key is the descriptor's
  // input through the same frozen encoder and W_att as a query, so that selection compares like
  // with like. (K, memory width)
  Tensor encode_edits(const std::vector<Example>& descriptors) { return encode_edits(descriptors, frozen_inputs(descriptors)); }
  // The same, given the frozen encoding of the descriptors' inputs (with key_value; else unread).
  Tensor encode_edits(const std::vector<Example>& descriptors, const FrozenEncoding& frozen) {
    const auto routes = route_encodings(descriptors, frozen);  // (K, route width)
    if (options_.label_slots == 0) return routes;
    return tt::concat<float, Cpu>({routes, label_ids(descriptors)}, 1);  // (K, memory width)
  }
  // The memory entries without the label's token ids: what selection, scope and NN_prompt read.
  Tensor route_encodings(const std::vector<Example>& descriptors, const FrozenEncoding& frozen) {
    std::vector<std::string> texts;
    for (const auto& d : descriptors) texts.push_back(descriptor_text(d));
    const auto [ids, mask] = base_->encode_inputs(texts);
    const auto values = modules_.edit_projection(pooled_through(modules_.edit_encoder, ids, mask));  // (K, d_h)
    if (!options_.key_value) return values;
    if (options_.token_match) {
      std::vector<Tensor> parts = {values, token_keys(frozen)};               // (K, d_h), (K, key_tokens (2 + d_h))
      if (options_.exact_match) parts.push_back(key_ids(frozen.ids));         // (K, key_tokens)
      if (options_.answer_match) parts.push_back(answer_keys(frozen));        // (K, d_h)
      return tt::concat<float, Cpu>(parts, 1);                                // (K, memory width)
    }
    return tt::concat<float, Cpu>({modules_.attention_projection(frozen.pooled()), values}, 1);  // (K, 2 d_h)
  }

  // r(x): the decoder's last hidden state at its first step, what the lm_head turns into the
  // first answer token's logits. encoded (B, L, D), mask (B, L) -> (B, D)
  static Tensor answer_state(const model::T5& t5, const Tensor& encoded, const Ids& mask) {
    const auto b = encoded.shape()[0];
    const auto start = tt::full<std::int64_t, Cpu>({b, 1}, t5.config().decoder_start_token_id);
    const auto hidden = t5.decoder(t5.shared(start), tt::nn::causal_mask_bias<float, Cpu>(1, 1), encoded,
                                   tt::nn::key_mask_bias<float, Cpu>(mask), nullptr);  // (B, 1, D)
    return hidden.reshape({b, t5.config().d_model});
  }

  // answer_match's keys: W_ans r(descriptor input) at unit length. (K, d_h)
  Tensor answer_keys(const FrozenEncoding& frozen) { return unit_rows(modules_.answer_projection(frozen.answer_state)); }

  // (B, L, 1): 0 on tokens, -1e9 on padding.
  static Tensor padding_bias(const Ids& mask) {
    std::vector<float> bias;
    for (auto m : mask.to_vector()) bias.push_back(m ? 0.0f : -1e9f);
    return tt::from_vector<float, Cpu>({mask.shape()[0], mask.shape()[1], 1}, bias);
  }

  // Unit-length rows along the last axis.
  static Tensor unit_rows(const Tensor& x) { return tt::mul(x, tt::rsqrt(tt::affine(tt::sum(tt::square(x), {-1}, true), 1.0, 1e-12))); }

  // token_match's keys: for each descriptor input, key_tokens rows of [a_t (2) | k_t], with a
  // the scope and the selection salience (each a softmax over the input's tokens; 0 on
  // padding) and k_t = W_att(token) at unit length. (K, key_tokens (2 + d_h))
  Tensor token_keys(const FrozenEncoding& frozen) {
    const auto k = frozen.hidden.shape()[0], d_h = std::int64_t{options_.memory_dim}, width = 2 + d_h;
    const auto length = std::min<std::int64_t>(frozen.hidden.shape()[1], options_.key_tokens);
    const auto hidden = frozen.hidden.narrow(1, 0, length);                                  // (K, L, D)
    const auto bias = padding_bias(frozen.mask).narrow(1, 0, length);                         // (K, L, 1)
    const auto salience = tt::softmax(modules_.salience(hidden) + bias, 1);                 // (K, L, 2)
    auto rows = tt::concat<float, Cpu>({salience, unit_rows(modules_.attention_projection(hidden))}, 2);  // (K, L, 2 + d_h)
    if (length < options_.key_tokens)
      rows = tt::concat<float, Cpu>({rows, tt::zeros<float, Cpu>({k, options_.key_tokens - length, width})}, 1);
    return rows.reshape({k, std::int64_t{options_.key_tokens} * width});
  }

  // exact_match's keys: the first key_tokens token ids of each descriptor input, as floats
  // (exact below 2^24), -1 where no token may count (padding, end, unknown). (K, key_tokens)
  Tensor key_ids(const Ids& ids) const {
    const auto host = ids.to_vector();
    const auto k = ids.shape()[0], length = ids.shape()[1], kept = std::int64_t{options_.key_tokens};
    std::vector<float> out(static_cast<std::size_t>(k * kept), -1.0f);
    for (std::int64_t row = 0; row < k; ++row)
      for (std::int64_t t = 0; t < std::min(length, kept); ++t)
        if (const auto id = host[static_cast<std::size_t>(row * length + t)]; counts_as_exact(id)) out[static_cast<std::size_t>(row * kept + t)] = static_cast<float>(id);
    return tt::from_vector<float, Cpu>({k, kept}, out);
  }
  // label_slots' entries: the first label_slots token ids of each descriptor's label (without
  // its end token), as floats, -1 past its end. (K, label_slots)
  Tensor label_ids(const std::vector<Example>& descriptors) const {
    const auto k = static_cast<std::int64_t>(descriptors.size()), slots = std::int64_t{options_.label_slots};
    std::vector<float> out(static_cast<std::size_t>(k * slots), -1.0f);
    for (std::int64_t row = 0; row < k; ++row) {
      const auto ids = base_->tokenizer.encode(descriptors[static_cast<std::size_t>(row)].target, /*append_eos=*/false);
      for (std::int64_t t = 0; t < std::min<std::int64_t>(slots, static_cast<std::int64_t>(ids.size())); ++t)
        out[static_cast<std::size_t>(row * slots + t)] = static_cast<float>(ids[static_cast<std::size_t>(t)]);
    }
    return tt::from_vector<float, Cpu>({k, slots}, out);
  }
  // The label slots of the prefix: the selected edits' label embeddings, each slot e +
  // label_map(e). weights (B, K) over the memory's edits -> (B, label_slots, D)
  Tensor label_prefix(const Tensor& memory, const Tensor& weights) {
    const auto k = memory.shape()[0], slots = std::int64_t{options_.label_slots}, d = base_->model.config().d_model;
    std::vector<std::int64_t> ids;
    for (float id : memory.narrow(1, options_.route_width(), slots).contiguous_copy().to_vector()) ids.push_back(static_cast<std::int64_t>(id));
    const auto embeddings = base_->token_slots(ids, k, slots);  // (K, slots, D), 0 past the label
    const auto mixed = tt::matmul(weights, embeddings.reshape({k, slots * d})).reshape({weights.shape()[0], slots, d});  // (B, slots, D)
    return mixed + modules_.label_map(mixed);
  }
  bool counts_as_exact(std::int64_t id) const {
    const auto& c = base_->model.config();
    return id != c.pad_token_id && id != c.eos_token_id && id != base_->tokenizer.unk_id();
  }
  // (B, K, L_k): 1 where key token t of edit k is among query b's tokens. key_ids (K, L_k)
  static Tensor exact_hits(const Ids& query_ids, const Tensor& key_ids) {
    const auto query = query_ids.to_vector();
    const auto keys = key_ids.contiguous_copy().to_vector();
    const auto b = query_ids.shape()[0], l_q = query_ids.shape()[1], k = key_ids.shape()[0], l_k = key_ids.shape()[1];
    // Where each id stands among the key tokens (flat k * L_k + t): each query token is looked up
    // once, rather than every key token searched for in every query.
    std::unordered_map<std::int64_t, std::vector<std::int64_t>> key_positions;
    for (std::int64_t i = 0; i < k * l_k; ++i)
      if (const auto id = keys[static_cast<std::size_t>(i)]; id >= 0) key_positions[static_cast<std::int64_t>(id)].push_back(i);
    std::vector<float> hits(static_cast<std::size_t>(b * k * l_k), 0.0f);
    for (std::int64_t row = 0; row < b; ++row)
      for (std::int64_t t = 0; t < l_q; ++t)
        if (const auto found = key_positions.find(query[static_cast<std::size_t>(row * l_q + t)]); found != key_positions.end())
          for (const auto position : found->second) hits[static_cast<std::size_t>(row * k * l_k + position)] = 1.0f;
    return tt::from_vector<float, Cpu>({b, k, l_k}, hits);
  }

  // token_match's scores (B, K) under each salience: scale * sum_t a_it max_s cos(q_s, k_it),
  // plus with exact_match scale_exact * sum_t a_it [id_it in query], and with answer_match
  // scale_answer * cos(W_ans r(x), answer key).
  struct TokenScores {
    Tensor scope, selection;  // (B, K)
    // Adds exp(log_scale[0]) * scope_term to scope and exp(log_scale[1]) * selection_term to selection.
    void add(const Tensor& scope_term, const Tensor& selection_term, const Tensor& log_scale) {
      const auto scale = tt::exp(log_scale);  // (2)
      scope = scope + tt::mul(scope_term, scale.narrow(0, 0, 1).reshape({1, 1}));
      selection = selection + tt::mul(selection_term, scale.narrow(0, 1, 1).reshape({1, 1}));
    }
  };
  TokenScores token_scores(const FrozenEncoding& query, const Tensor& memory) {
    const auto d_h = std::int64_t{options_.memory_dim}, width = 2 + d_h, k = memory.shape()[0];
    const auto b = query.hidden.shape()[0], l_q = query.hidden.shape()[1];
    auto rows = memory.narrow(1, d_h, std::int64_t{options_.key_tokens} * width).reshape({k, options_.key_tokens, width});
    rows = rows.narrow(1, 0, used_key_tokens(rows));                                         // (K, L_k, 2 + d_h)
    const auto l_k = rows.shape()[1];
    const auto keys = rows.narrow(2, 2, d_h).reshape({k * l_k, d_h});                       // (K L_k, d_h)
    const auto queries = unit_rows(modules_.attention_projection(query.hidden)).reshape({b * l_q, d_h});  // (B L_q, d_h)
    const auto cosines = tt::matmul(queries, keys.transpose(0, 1)).reshape({b, l_q, k, l_k});  // (B, L_q, K, L_k)
    const auto best = tt::max(cosines + padding_bias(query.mask).reshape({b, l_q, 1, 1}), {1});  // (B, K, L_k)
    const auto scale = tt::exp(modules_.log_match_scale).reshape({1, 1});
    auto weighed = [&](const Tensor& match, std::int64_t head) {  // (B, K): sum_t a_it match_bit
      return tt::sum(tt::mul(match, rows.narrow(2, head, 1).reshape({1, k, l_k})), {2});
    };
    TokenScores out{tt::mul(weighed(best, 0), scale), tt::mul(weighed(best, 1), scale)};  // the match lies in [-1, 1] before scaling
    if (options_.exact_match) {
      const auto ids = memory.narrow(1, d_h + std::int64_t{options_.key_tokens} * width, options_.key_tokens).narrow(1, 0, l_k);  // (K, L_k)
      const auto hits = exact_hits(query.ids, ids);                                                                      // (B, K, L_k)
      out.add(weighed(hits, 0), weighed(hits, 1), modules_.log_exact_scale);
    }
    if (options_.answer_match) {
      const auto keys = memory.narrow(1, options_.route_width() - d_h, d_h);  // (K, d_h)
      const auto cosines = tt::matmul(answer_keys(query), keys.transpose(0, 1));  // (B, K)
      out.add(cosines, cosines, modules_.log_answer_scale);
    }
    return out;
  }
  // The column of each row's largest entry. scores (B, K)
  static std::vector<std::size_t> argmax_rows(const Tensor& scores) {
    const auto host = scores.contiguous_copy().to_vector();
    const auto k = static_cast<std::size_t>(scores.shape()[1]);
    std::vector<std::size_t> best;
    for (std::size_t row = 0; row * k < host.size(); ++row)
      best.push_back(static_cast<std::size_t>(std::max_element(host.begin() + row * k, host.begin() + (row + 1) * k) - (host.begin() + row * k)));
    return best;
  }
  // (B, K): 1 at each row's largest entry, 0 elsewhere.
  static Tensor one_hot_argmax(const Tensor& scores) {
    const auto k = static_cast<std::size_t>(scores.shape()[1]);
    const auto best = argmax_rows(scores);
    std::vector<float> one_hot(best.size() * k, 0.0f);
    for (std::size_t row = 0; row < best.size(); ++row) one_hot[row * k + best[row]] = 1.0f;
    return tt::from_vector<float, Cpu>(scores.shape(), one_hot);
  }
  // Key tokens in use: past the longest descriptor input, every salience is 0.
  static std::int64_t used_key_tokens(const Tensor& rows) {  // rows (K, key_tokens, 2 + d_h)
    const auto salience = rows.narrow(2, 0, 1).contiguous_copy().to_vector();
    const auto per_entry = rows.shape()[1];
    std::int64_t used = 1;
    for (std::size_t i = 0; i < salience.size(); ++i)
      if (salience[i] > 0) used = std::max<std::int64_t>(used, static_cast<std::int64_t>(i) % per_entry + 1);
    return used;
  }

  // e(x) logits and prompts for inputs, given the memory (K, d_h) of the edits `edits`.
  // set_bias (B, K), optional: 0 where an input may select an edit, -1e9 where it may not.
  // hard: h(x) is the best-scoring edit's value (inference only: no gradient reaches the scores).
  Forward forward(const std::vector<std::string>& inputs, const Tensor& entries, const std::vector<Example>& edits,
                  const Tensor& set_bias = Tensor(), bool hard = false) {
    return forward(inputs, frozen_encoding(inputs), entries, edits, set_bias, hard);
  }
  // The same, given the frozen encoding of the inputs.
  Forward forward(const std::vector<std::string>& inputs, const FrozenEncoding& frozen, const Tensor& entries,
                  const std::vector<Example>& edits, const Tensor& set_bias = Tensor(), bool hard = false) {
    const auto memory = options_.label_slots > 0 ? entries.narrow(1, 0, options_.route_width()) : entries;  // (K, route width)
    const Tensor pooled = frozen.pooled();  // b(x) (B, D)
    const auto d_h = options_.memory_dim;
    Tensor values, scores, scope_scores;  // (K, d_h), (B, K), (B, K): what NN_e's best match is taken from
    if (options_.token_match) {
      values = memory.narrow(1, 0, d_h);
      auto token = token_scores(frozen, memory);
      scores = token.selection;
      scope_scores = set_bias.defined() ? token.scope + set_bias : token.scope;
    } else {
      const auto keys = options_.key_value ? memory.narrow(1, 0, d_h) : memory;  // (K, d_h)
      values = options_.key_value ? memory.narrow(1, d_h, d_h) : memory;
      const auto query = modules_.attention_projection(pooled);                                         // (B, d_h)
      scores = tt::affine(tt::matmul(query, keys.transpose(0, 1)), 1.0 / std::sqrt(double(d_h)), 0.0);  // (B, K)
    }
    if (set_bias.defined()) scores = scores + set_bias;
    if (!scope_scores.defined()) scope_scores = scores;
    const auto log_weights = tt::log_softmax(scores, 1);                                                      // (B, K)
    const auto weights = hard ? one_hot_argmax(log_weights) : tt::exp(log_weights);
    const auto selected = tt::matmul(weights, values);                                                       // h(x) (B, d_h)
    auto features = tt::concat<float, Cpu>({selected, pooled}, 1);                                          // (B, d_h + D)
    Forward f;
    f.best_match = tt::max(scope_scores, {1}, true);                                                         // (B, 1)
    if (options_.match_feature) features = tt::concat<float, Cpu>({features, f.best_match}, 1);            // (B, d_h + D + 1)
    if (options_.scope_from_match_only) features = f.best_match;                                            // (B, 1)
    const auto pair = options_.pair_gate || options_.prompt_sees_pair ? pair_encoding(inputs, edits, scope_scores) : Tensor();  // (B, D)
    if (options_.pair_gate) features = tt::concat<float, Cpu>({features, pair}, 1);  // (B, ... + D)
    f.selection_log_weights = log_weights;
    f.encoding = {frozen.hidden, frozen.mask};
    f.in_scope_logit = modules_.classifier_out(tt::relu(modules_.classifier_hidden(features))).reshape({static_cast<std::int64_t>(inputs.size())});
    const auto d = base_->model.config().d_model;
    std::vector<Tensor> prompt_parts = {selected};  // h(x) (B, d_h)
    if (options_.prompt_sees_query) prompt_parts.push_back(pooled);
    if (options_.prompt_sees_pair) prompt_parts.push_back(pair);
    const auto prompt_input = prompt_parts.size() == 1 ? selected : tt::concat<float, Cpu>(prompt_parts, 1);  // (B, d_h (+ D) (+ D))
    f.prefix = modules_.prompt_out(tt::relu(modules_.prompt_hidden(prompt_input)))
                   .reshape({static_cast<std::int64_t>(inputs.size()), options_.prefix_length, d});  // (B, P, D)
    if (options_.label_slots > 0) f.prefix = tt::concat<float, Cpu>({f.prefix, label_prefix(entries, weights)}, 1);  // (B, P + slots, D)
    return f;
  }

  // pair_gate's and prompt_sees_pair's view: each input with the input of its best-scoring edit (scope_scores (B, K)),
  // "query </s> edit input </s>" through the pair encoder, mean-pooled. (B, D)
  Tensor pair_encoding(const std::vector<std::string>& inputs, const std::vector<Example>& edits, const Tensor& scope_scores) {
    tt::check(static_cast<std::int64_t>(edits.size()) == scope_scores.shape()[1], "Seprog", "the pair encoding needs the memory's ",
              scope_scores.shape()[1], " edits, got ", edits.size());
    std::vector<std::string> paired;
    for (auto best : argmax_rows(scope_scores)) paired.push_back(edits[best].input);
    const auto [ids, mask] = base_->encode_pairs(inputs, paired);
    return pooled_through(modules_.pair_encoder, ids, mask);
  }

  // A trainable encoder stack over token ids (B, L), read through the base's frozen embedding
  // table, mean-pooled over the tokens. (B, D)
  Tensor pooled_through(tt::nn::T5Stack<float, Cpu>& stack, const Ids& ids, const Ids& mask) {
    const auto hidden = stack(base_->model.shared(ids), tt::nn::key_mask_bias<float, Cpu>(mask), Tensor(), Tensor(), nullptr);  // (B, L, D)
    return masked_mean(hidden, mask);
  }

  std::vector<std::string> base_predict(const std::vector<std::string>& inputs, const Tensor& prefix) {
    return base_->predict(inputs, labels_, prefix);
  }

  // adam.step(), with sp-finetune's base weights moved at base_lr instead of lr.
  void step_with_base_lr(tt::optim::Adam<float, Cpu>& adam) {
    if (options_.variant != SeprogVariant::finetune || options_.base_lr == options_.lr) {
      adam.step();
      return;
    }
    train::adam_step_scaled(adam, base_->model.parameters(), options_.base_lr / options_.lr);
  }

  std::vector<Tensor> trainable_parameters() {
    auto params = modules_.parameters();
    if (options_.variant == SeprogVariant::finetune)
      for (auto& p : base_->model.parameters()) params.push_back(p);
    return params;
  }

  double validation_loss(const std::vector<StepData>& draws) {
    tt::NoGradGuard no_grad;
    double total = 0;
    for (const auto& d : draws) total += step_loss(d).item();
    return total / static_cast<double>(draws.size());
  }

  Seq2Seq* base_;
  std::vector<std::string> labels_;
  SeprogOptions options_;
  SeprogModules modules_;
  std::unique_ptr<tt::optim::Adam<float, Cpu>> step_optimizer_;  // train_step()'s, made on first use
  EncodingCache encoding_cache_;
  EditMemory memory_;
};

}  // namespace editlab::editors
