// editlab::editors::Ft — the fine-tuning baselines FT and FT+KL (../shared/design/EDITORS.md):
// apply() fine-tunes the edited matrices (WeightEditor) on the descriptors until every one of
// them is answered with its new label, or max_steps. FT+KL adds a locality term: the KL from
// the model before this apply() to the model being tuned, on unrelated inputs drawn from the
// training split's out-scope examples. No training phase.
//
//   Ft editor(base, bench, FtOptions{});        // FT; FtOptions::with_locality() for FT+KL
//   editor.apply(descriptors);                  // up to max_steps optimizer steps
//   editor.last_apply_steps();                  // how many it took
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "editors/options.hpp"
#include "editors/weight_edit.hpp"
#include "tensortape/optim/adam.hpp"
#include "tensortape/optim/clip.hpp"
#include "tensortape/optim/rmsprop.hpp"
#include "common/cases.hpp"

namespace editlab::editors {

struct FtOptions {
  std::string optimizer = "adam";
  double lr = 1e-3;
  int max_steps = 40;
  double clip_norm = 1.0;
  double kl_weight = 0.0;       // FT+KL's locality weight; 0 is plain FT
  int locality_examples = 32;   // unrelated training-split inputs per apply() (FT+KL)
  int last_blocks = 2;
  std::uint64_t seed = 1;

  template <class Visit>
  void fields(Visit&& field) {
    field("optimizer", optimizer, "adam or rmsprop");
    field("lr", lr, "learning rate of the edited matrices");
    field("max_steps", max_steps, "at most this many steps per apply(); it stops earlier once every descriptor is fit");
    field("clip_norm", clip_norm, "gradient norm clip");
    field("kl_weight", kl_weight, "weight of the locality KL (FT+KL; 0 for FT)");
    field("locality_examples", locality_examples, "unrelated training-split inputs the KL is taken on");
    field("last_blocks", last_blocks, "edited: the feed-forward matrices of this many last encoder and decoder blocks");
    field("seed", seed, "seed of the locality draws");
  }
  FtOptions with_locality() const {
    FtOptions o = *this;
    o.kl_weight = 1.0;
    return o;
  }
};

class Ft : public WeightEditor {
 public:
  Ft(Seq2Seq& base, const Benchmark& bench, FtOptions options)
      : WeightEditor(base, bench.labels, feed_forward_weights(base.model, options.last_blocks)), options_(options) {
    tt::check(options_.optimizer == "adam" || options_.optimizer == "rmsprop", "Ft", "optimizer '", options_.optimizer,
              "' is not adam or rmsprop");
    tt::check(options_.max_steps >= 0 && options_.lr > 0, "Ft", "max_steps must be >= 0 and lr > 0");
    for (const auto& c : bench.split(Split::train))
      locality_pool_.insert(locality_pool_.end(), c.out_scope.begin(), c.out_scope.end());
    tt::check(options_.kl_weight == 0 || !locality_pool_.empty(), "Ft", "FT+KL needs training-split out-scope examples");
  }

  std::string name() const override { return options_.kl_weight > 0 ? "ft-kl" : "ft"; }
  const FtOptions& options() const { return options_; }
  nlohmann::json options_json() const override { return options_to_json(options_); }
  std::uint64_t seed() const override { return options_.seed; }

  // No training phase: FT edits by fine-tuning at apply() time.
  train::TrainReport train(const Benchmark&, const train::TrainControl&) override { return {}; }
  // <dir>/ft.json: the options (there are no trained weights).
  void save(const std::filesystem::path& dir) override {
    std::filesystem::create_directories(dir);
    train::write_text(dir / "ft.json", nlohmann::json{{"editor", name()}, {"options", options_json()}}.dump(2) + "\n");
  }
  void load_weights(const std::filesystem::path&) override {}
  int last_apply_steps() const { return last_apply_steps_; }

  void apply(const std::vector<Example>& descriptors) override {
    last_apply_steps_ = 0;
    if (descriptors.empty()) return;
    const auto batch = base_->batch(descriptors);
    std::vector<std::string> inputs;
    for (const auto& d : descriptors) inputs.push_back(d.input);
    auto params = edited_tensors();
    for (auto& p : params) p.requires_grad_(true);
    struct Frozen {  // the edited matrices stop requiring grad again however apply() ends
      std::vector<Tensor>& params;
      ~Frozen() {
        for (auto& p : params) p.requires_grad_(false);
      }
    } frozen{params};
    std::unique_ptr<tt::optim::Optimizer<float, Cpu>> optimizer;
    if (options_.optimizer == "adam") {
      optimizer = std::make_unique<tt::optim::Adam<float, Cpu>>(params, tt::optim::AdamOptions{.lr = options_.lr});
    } else {
      optimizer = std::make_unique<tt::optim::RMSprop<float, Cpu>>(params, tt::optim::RMSpropOptions{.lr = options_.lr});
    }
    TextBatch locality;
    Tensor reference;  // (B, T, V): the model before this apply() on the locality inputs
    if (options_.kl_weight > 0) {
      locality = base_->batch(draw_locality());
      tt::NoGradGuard no_grad;
      reference = seq2seq_logits(base_->model, locality);
    }
    for (int step = 0; step < options_.max_steps; ++step) {
      if (every_descriptor_fit(base_->predict(inputs, labels_), descriptors)) break;
      optimizer->zero_grad();
      auto loss = label_nll(seq2seq_logits(base_->model, batch), batch.labels);
      if (options_.kl_weight > 0)
        loss = loss + locality_kl(reference, seq2seq_logits(base_->model, locality), locality.labels) * options_.kl_weight;
      tt::backward(loss);
      tt::optim::clip_grad_norm_(params, options_.clip_norm);
      optimizer->step();
      ++last_apply_steps_;
    }
  }

  void reset() override {
    WeightEditor::reset();
    applies_since_reset_ = 0;
  }

 private:
  // The same draws after every reset(), so the same edits act the same.
  std::vector<Example> draw_locality() {
    tt::Rng rng(options_.seed * 7919ULL + static_cast<std::uint64_t>(applies_since_reset_++));
    std::vector<Example> out;
    for (int i = 0; i < options_.locality_examples; ++i)
      out.push_back(locality_pool_[rng.next_u64() % locality_pool_.size()]);
    return out;
  }

  FtOptions options_;
  std::vector<Example> locality_pool_;
  int last_apply_steps_ = 0;
  int applies_since_reset_ = 0;
};

}  // namespace editlab::editors
