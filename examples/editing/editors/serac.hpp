// editlab::editors::Serac — semi-parametric editing with a retrieval-augmented counterfactual
// model (Mitchell et al., 2022; ../shared/design/EDITORS.md). The base model never changes. An
// edit is a text in a memory; a scope classifier decides whether a query falls in some edit's
// scope, and if so a separate, smaller counterfactual seq2seq answers it from the edit and the
// query; every other query goes to the untouched base model.
//
//   e(t) = W_e mean(Enc_cls(t))                        (d_h); Enc_cls a trainable copy of the base
//                                                      encoder over the base's (frozen) token table
//   s(edit, x) = exp(-||e(edit input) - e(x)||^2)       in (0, 1]: the embedding classifier
//   x goes to the counterfactual model with its best-scoring edit when max_edit s > threshold (0.5)
//   counterfactual model: "edit input => edit label || x" -> answer; a T5 made of the base's first
//   `counterfactual_layers` blocks of each stack (so smaller than the base), trained on the task
//
// Training (train split, early stopping on validation): each step draws an edit batch (K cases,
// one in-scope example each, K unrelated out-scope inputs) and minimises
//   c_counterfactual * NLL(in-scope label | edit, in-scope input)            (1.0; the official 0.1)
// + c_classifier * (mean BCE over positives + mean BCE over negatives)      (balanced, 1.0)
// with the pairs (edit i, its in-scope example) positive, and (edit i, another edit's in-scope
// example) and (edit i, any out-scope input) negative. -log s = ||e - e'||^2, so a positive's
// BCE is the squared distance and a negative's -log(1 - exp(-||e - e'||^2)).
// The official code also offers a cross-encoder classifier over "edit || query" pairs; it costs
// one encoder pass per (edit, query) pair, K x B at inference, and is not built here.
//
//   Serac editor(base, bench, SeracOptions{});
//   editor.train(bench, control);               // train::run_training
//   editor.apply(descriptors);                  // embeds the descriptors' inputs into the memory
//   auto routes = editor.route(inputs);         // best edit and its score, per input
//   editor.memory().save("memory.safetensors");
#pragma once

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/cases.hpp"
#include "editors/options.hpp"
#include "editors/run_editor.hpp"
#include "editors/seprog/memory.hpp"
#include "model/seq2seq.hpp"
#include "tensortape/io/safetensors.hpp"
#include "tensortape/nn/layers.hpp"
#include "tensortape/nn/state.hpp"
#include "train/edit_sets.hpp"
#include "train/loop.hpp"

namespace editlab::editors {

namespace tt = tensortape;
using model::Cpu;
using model::Seq2Seq;
using model::Tensor;

struct SeracOptions {
  int embedding_dim = 64;          // d_h: width of the classifier's embeddings
  int counterfactual_layers = 2;   // blocks the counterfactual model keeps of each stack of the base
  double threshold = 0.5;          // route to the counterfactual model above this score
  // The official c_counterfactual is 0.1; chosen instead on qa's validation split (docs/editors.md).
  double c_counterfactual = 1.0;
  double c_classifier = 1.0;
  double lr = 3e-4;
  train::LoopOptions loop{.edits_per_step = 16, .warmup_steps = 100, .clip_norm = 5.0, .steps = 1000, .eval_every = 50, .patience = 600};
  std::uint64_t seed = 1;

  template <class Visit>
  void fields(Visit&& field) {
    field("embedding_dim", embedding_dim, "width of the scope classifier's embeddings");
    field("counterfactual_layers", counterfactual_layers,
          "blocks of each of the base's stacks the counterfactual model is made of (its first ones)");
    field("threshold", threshold, "a query goes to the counterfactual model when its best edit scores above this");
    field("c_counterfactual", c_counterfactual, "weight of the counterfactual model's NLL");
    field("c_classifier", c_classifier, "weight of the classifier's balanced BCE");
    field("lr", lr, "Adam learning rate of the classifier and the counterfactual model");
    loop.fields(field);
    field("seed", seed, "seed of initialisation and draws");
  }
};

// What the counterfactual model reads: the edit, then the query.
inline std::string counterfactual_input(const Example& edit, const std::string& query) {
  return edit.input + " => " + edit.target + " || " + query;
}

// The scope classifier's trainable parts.
struct SeracClassifier : tt::nn::Module<float, Cpu> {
  tt::nn::T5Stack<float, Cpu> encoder;  // starts as the base encoder
  tt::nn::Linear<float, Cpu> projection;  // D -> d_h

  SeracClassifier() = default;
  SeracClassifier(const model::T5& base, std::int64_t embedding_dim, tt::Rng& rng)
      : encoder(tt::nn::deep_copy(base.encoder)), projection(base.config().d_model, embedding_dim, rng) {
    encoder.unfreeze();
  }
  void for_each_child(const ChildVisitor& visit) override {
    visit("encoder", encoder);
    visit("projection", projection);
  }
};

class Serac : public RunEditor {
 public:
  // Where one query goes: its best edit in the memory and that edit's score s.
  struct Route {
    std::size_t edit = 0;
    float score = 0.0f;
    bool counterfactual = false;  // score > threshold
  };

  Serac(Seq2Seq& base, const Benchmark& bench, SeracOptions options)
      : base_(&base), labels_(bench.labels), options_(options) {
    tt::check(options_.embedding_dim > 0 && options_.counterfactual_layers > 0 && options_.loop.edits_per_step > 0, "Serac",
              "embedding_dim, counterfactual_layers and edits_per_step must be positive");
    tt::Rng init(options_.seed);
    classifier_ = SeracClassifier(base.model, options_.embedding_dim, init);
    auto config = base.model.config();
    config.num_layers = std::min<std::int64_t>(options_.counterfactual_layers, config.num_layers);
    config.num_decoder_layers = std::min<std::int64_t>(options_.counterfactual_layers, config.num_decoder_layers);
    model::T5 small(config, init);
    const auto unmatched = tt::nn::load_state_dict(small, tt::nn::state_dict(base.model), /*strict=*/false);
    if (!unmatched.missing.empty())  // (check() would evaluate front() of an empty list)
      tt::fail("Serac", "the counterfactual model has weights the base lacks: ", unmatched.missing.front());
    small.unfreeze();
    counterfactual_ = std::make_unique<Seq2Seq>(std::move(small), base.tokenizer.copy());
    counterfactual_->answer_tokens = base.answer_tokens;
  }

  std::string name() const override { return "serac"; }
  const SeracOptions& options() const { return options_; }
  nlohmann::json options_json() const override { return options_to_json(options_); }
  std::uint64_t seed() const override { return options_.seed; }
  EditMemory& memory() { return memory_; }
  Seq2Seq& counterfactual_model() { return *counterfactual_; }

  // ---- Editor ----
  void apply(const std::vector<Example>& descriptors) override {
    if (descriptors.empty()) return;
    tt::NoGradGuard no_grad;
    std::vector<std::string> inputs;
    for (const auto& d : descriptors) inputs.push_back(d.input);
    const auto encodings = embed(inputs);  // (k, d_h)
    auto all = memory_.descriptors();
    all.insert(all.end(), descriptors.begin(), descriptors.end());
    memory_.set(all, memory_.size() ? tt::concat<float, Cpu>({memory_.encodings(), encodings}, 0) : encodings);
  }
  void reset() override { memory_.clear(); }

  // Each input's best edit and score under the current memory (none routed when it is empty).
  std::vector<Route> route(const std::vector<std::string>& inputs) {
    tt::NoGradGuard no_grad;
    std::vector<Route> out(inputs.size());
    if (memory_.size() == 0 || inputs.empty()) return out;
    const auto k = memory_.size();
    const auto distances = squared_distances(memory_.encodings(), embed(inputs)).to_vector();  // (K, B)
    for (std::size_t b = 0; b < inputs.size(); ++b) {
      float best = distances[b];
      for (std::size_t e = 1; e < k; ++e)
        if (distances[e * inputs.size() + b] < best) best = distances[e * inputs.size() + b], out[b].edit = e;
      out[b].score = std::exp(-best);
      out[b].counterfactual = out[b].score > options_.threshold;
    }
    return out;
  }

  std::vector<std::string> predict(const std::vector<std::string>& inputs) override {
    tt::NoGradGuard no_grad;
    std::vector<std::string> out(inputs.size());
    std::vector<std::size_t> routed, plain;
    std::vector<std::string> routed_texts, plain_inputs;
    const auto routes = route(inputs);
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      if (routes[i].counterfactual) {
        routed.push_back(i);
        routed_texts.push_back(counterfactual_input(memory_.descriptors()[routes[i].edit], inputs[i]));
      } else {
        plain.push_back(i);
        plain_inputs.push_back(inputs[i]);
      }
    }
    if (!routed.empty()) {
      const auto answers = counterfactual_->predict(routed_texts, labels_);
      for (std::size_t j = 0; j < routed.size(); ++j) out[routed[j]] = answers[j];
    }
    if (!plain.empty()) {
      const auto answers = base_->predict(plain_inputs, labels_);
      for (std::size_t j = 0; j < plain.size(); ++j) out[plain[j]] = answers[j];
    }
    return out;
  }

  // ---- training ----
  std::vector<Tensor> trainable_parameters() {
    auto out = classifier_.parameters();
    for (auto& p : counterfactual_->model.parameters()) out.push_back(p);
    return out;
  }

  train::TrainReport train(const Benchmark& bench, const train::TrainControl& control = {}) override {
    return train::train_on_edit_batches(trainable_parameters(), options_.loop.settings(name(), options_.lr, options_to_json(options_)),
                                        control, bench, options_.loop.edits_per_step, options_.seed,
                                        [&](const train::EditBatch& batch, bool) { return step_loss(batch); });
  }

  double train_step(const std::vector<Case>& cases) override {
    if (!step_optimizer_)
      step_optimizer_ = std::make_unique<tt::optim::Adam<float, Cpu>>(trainable_parameters(), tt::optim::AdamOptions{.lr = options_.lr});
    step_optimizer_->zero_grad();
    const auto loss = step_loss(train::edit_batch_of(cases));
    tt::backward(loss);
    tt::optim::clip_grad_norm_(trainable_parameters(), options_.loop.clip_norm);
    step_optimizer_->step();
    return loss.item();
  }

  // The training objective on one edit batch: in_scope[i] belongs to edits[i] (public for tests).
  Tensor step_loss(const train::EditBatch& d) {
    const auto k = static_cast<std::int64_t>(d.edits.size());
    tt::check(k > 0 && d.in_scope.size() == d.edits.size(), "Serac::step_loss", "an edit batch needs one in-scope example per edit");
    std::vector<Example> counterfactual;
    std::vector<std::string> edit_inputs, in_inputs, out_inputs;
    for (std::int64_t i = 0; i < k; ++i) {
      const auto& e = d.edits[static_cast<std::size_t>(i)];
      const auto& x = d.in_scope[static_cast<std::size_t>(i)];
      counterfactual.push_back({counterfactual_input(e, x.input), x.target});
      edit_inputs.push_back(e.input);
      in_inputs.push_back(x.input);
    }
    for (const auto& x : d.out_scope) out_inputs.push_back(x.input);
    const auto counterfactual_nll = counterfactual_->loss(counterfactual_->batch(counterfactual));

    const auto edits = embed(edit_inputs);                      // (K, d_h)
    const auto in_distances = squared_distances(edits, embed(in_inputs));  // (K, K): positives on the diagonal
    std::vector<float> eye(static_cast<std::size_t>(k * k), 0.0f);
    for (std::int64_t i = 0; i < k; ++i) eye[static_cast<std::size_t>(i * k + i)] = 1.0f;
    const auto diagonal = tt::from_vector<float, Cpu>({k, k}, eye);
    const auto positive = tt::sum(in_distances * diagonal) * (1.0 / static_cast<double>(k));
    auto negative_sum = tt::sum(negative_bce(in_distances) * (1.0 - diagonal));
    double negatives = static_cast<double>(k * (k - 1));
    if (!out_inputs.empty()) {
      negative_sum = negative_sum + tt::sum(negative_bce(squared_distances(edits, embed(out_inputs))));
      negatives += static_cast<double>(k) * static_cast<double>(out_inputs.size());
    }
    auto classifier_loss = positive;
    if (negatives > 0) classifier_loss = classifier_loss + negative_sum * (1.0 / negatives);
    return counterfactual_nll * options_.c_counterfactual + classifier_loss * options_.c_classifier;
  }

  // ---- persistence ----
  // <dir>/serac.json (options) and <dir>/serac.safetensors (classifier and counterfactual model).
  void save(const std::filesystem::path& dir) override {
    std::filesystem::create_directories(dir);
    std::map<std::string, Tensor> tensors;
    for (auto& [n, p] : classifier_.named_parameters()) tensors.emplace("classifier." + n, p.detach());
    for (auto& [n, p] : counterfactual_->model.named_parameters()) tensors.emplace("counterfactual." + n, p.detach());
    tt::io::save(dir / "serac.safetensors", tensors);
    train::write_text(dir / "serac.json", nlohmann::json{{"editor", "serac"}, {"options", options_to_json(options_)}}.dump(2) + "\n");
  }

  void load_weights(const std::filesystem::path& dir) override {
    const auto file = dir / "serac.safetensors";
    const tt::io::SafetensorsFile st(file);
    auto load_into = [&](tt::nn::Module<float, Cpu>& m, const std::string& prefix) {
      m.for_each_parameter([&](const std::string& n, Tensor& p) {
        tt::check(st.contains(prefix + n), "Serac::load", "'", file.string(), "' has no tensor '", prefix + n, "'");
        auto loaded = tt::io::load<float, Cpu>(st, prefix + n);
        tt::check(loaded.shape() == p.shape(), "Serac::load", "tensor '", prefix + n, "' has shape ", loaded.shape(),
                  ", this model expects ", p.shape(), " (was the run made with another base model?)");
        p = loaded.requires_grad_();
      });
    };
    load_into(classifier_, "classifier.");
    load_into(counterfactual_->model, "counterfactual.");
  }

 private:
  // Embeddings e(t) (N, d_h) of these texts, in chunks.
  Tensor embed(const std::vector<std::string>& texts) {
    std::vector<Tensor> parts;
    for (std::size_t start = 0; start < texts.size(); start += 256) {
      const std::vector<std::string> part(texts.begin() + static_cast<std::ptrdiff_t>(start),
                                          texts.begin() + static_cast<std::ptrdiff_t>(std::min(texts.size(), start + 256)));
      const auto [ids, mask] = base_->encode_inputs(part);
      const auto embeddings = base_->model.shared(ids);  // (n, L, D); the base's table, frozen
      const auto hidden = classifier_.encoder(embeddings, tt::nn::key_mask_bias<float, Cpu>(mask), Tensor(), Tensor(), nullptr);
      parts.push_back(classifier_.projection(model::masked_mean(hidden, mask)));  // (n, d_h)
    }
    return parts.size() == 1 ? parts.front() : tt::concat<float, Cpu>(parts, 0);
  }

  // ||a_i - b_j||^2 (Na, Nb) for a (Na, d), b (Nb, d); clipped at 0 against rounding.
  static Tensor squared_distances(const Tensor& a, const Tensor& b) {
    const auto na = a.shape()[0], nb = b.shape()[0];
    const auto a2 = tt::sum(a * a, {1}).reshape({na, 1});
    const auto b2 = tt::sum(b * b, {1}).reshape({1, nb});
    return tt::relu(a2 + b2 - tt::matmul(a, b.transpose(0, 1)) * 2.0);
  }

  // A negative pair's BCE, -log(1 - exp(-d)), with d kept off 0 (where it is infinite).
  static Tensor negative_bce(const Tensor& squared_distance) {
    return -tt::log(1.0 - tt::exp(-(squared_distance + 1e-4)));
  }

  Seq2Seq* base_;
  std::vector<std::string> labels_;
  SeracOptions options_;
  SeracClassifier classifier_;
  std::unique_ptr<Seq2Seq> counterfactual_;
  EditMemory memory_;
  std::unique_ptr<tt::optim::Adam<float, Cpu>> step_optimizer_;  // train_step()'s, made on first use
};

}  // namespace editlab::editors
