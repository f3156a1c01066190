// editlab::editors::Enn — editable neural networks (Sinitsin et al., 2020; ../shared/design/
// EDITORS.md). An edit is `inner_steps` plain gradient steps on the edited matrices with a
// learned step size per matrix:
//
//   W_{s+1} = W_s - alpha_i * dNLL(descriptors | W_s)/dW_s
//
// Training makes the model editable: the outer loss, c_edit * NLL(in-scope | W') + c_loc *
// KL(original base || edited) on unrelated inputs, is differentiated through the inner steps
// (second order, create_graph) into every model weight and the step sizes. ENN therefore
// changes its base model; the harness still measures DD against the original (the run's
// model folder), and the KL anchors the trained model to it.
//
//   Enn editor(base, bench, EnnOptions{});
//   editor.train(bench, control);     // the model weights at lr, the step sizes at step_size_lr
//   editor.apply(descriptors);        // inner_steps SGD steps, in place; reset() undoes them
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "editors/options.hpp"
#include "editors/weight_edit.hpp"
#include "tensortape/io/safetensors.hpp"
#include "train/edit_sets.hpp"
#include "train/loop.hpp"
#include "common/cases.hpp"

namespace editlab::editors {

struct EnnOptions {
  double step_size = 0.1;     // initial alpha of every edited matrix
  int inner_steps = 1;
  double lr = 1e-5;           // Adam learning rate of the model weights
  double step_size_lr = 1e-3; // Adam learning rate of the step sizes
  double c_edit = 1.0;
  double c_loc = 1.0;
  // Chosen on qa's validation split (docs/editors.md, "Choosing the defaults"): the summed inner
  // loss, validation every 50 steps.
  bool edits_summed = true;   // inner loss: per-descriptor means summed (true) or one mean over the batch
  train::LoopOptions loop{.edits_per_step = 8, .warmup_steps = 100, .clip_norm = 100.0, .steps = 1000, .eval_every = 50, .patience = 600};
  int last_blocks = 2;
  std::uint64_t seed = 1;

  template <class Visit>
  void fields(Visit&& field) {
    field("step_size", step_size, "initial inner step size of every edited matrix");
    field("inner_steps", inner_steps, "inner gradient steps per edit");
    field("lr", lr, "Adam learning rate of the model weights (outer loop)");
    field("step_size_lr", step_size_lr, "Adam learning rate of the step sizes");
    field("c_edit", c_edit, "weight of the in-scope NLL after the edit");
    field("c_loc", c_loc, "weight of the locality KL to the original base after the edit");
    field("edits_summed", edits_summed, "inner steps on the sum over descriptors of each one's mean token NLL (false: one mean over the batch)");
    field("last_blocks", last_blocks, "edited: the feed-forward matrices of this many last encoder and decoder blocks");
    loop.fields(field);
    field("seed", seed, "seed of the draws");
  }
};

// The edited matrices after the inner steps on `edits`: W' (name -> tensor), on the tape when
// create_graph (training differentiates through them).
template <class T>
tt::nn::StateDict<T, Cpu> enn_inner_steps(T5Of<T>& model, const std::vector<std::string>& names,
                                          const TensorOf<T>& step_sizes, int inner_steps, const TextBatch& edits,
                                          bool create_graph, bool edits_summed = false) {
  auto weights = parameters_named(model, names);
  tt::nn::StateDict<T, Cpu> edited;
  for (int s = 0; s < inner_steps; ++s) {
    std::vector<TensorOf<T>> current;
    for (std::size_t i = 0; i < names.size(); ++i) current.push_back(edited.empty() ? weights[i] : edited.at(names[i]));
    const auto loss = tt::nn::functional_call(model, edited, [&] { return edit_nll(seq2seq_logits(model, edits), edits.labels, edits_summed); });
    const auto grads = tt::grad(std::vector<TensorOf<T>>{loss}, current, {}, create_graph);
    for (std::size_t i = 0; i < names.size(); ++i)
      edited[names[i]] = current[i] - tt::mul(grads[i], step_sizes.narrow(0, static_cast<std::int64_t>(i), 1).reshape({1, 1}));
  }
  return edited;
}

// ENN's outer loss: c_edit * NLL(in_scope | W') + c_loc * KL(reference || edited) on `unrelated`,
// W' from enn_inner_steps with the graph kept. reference_logits (B, T, V): the original base's.
template <class T>
TensorOf<T> enn_outer_loss(T5Of<T>& model, const std::vector<std::string>& names, const TensorOf<T>& step_sizes,
                           int inner_steps, const TextBatch& edits, const TextBatch& in_scope, const TextBatch& unrelated,
                           const TensorOf<T>& reference_logits, double c_edit, double c_loc, bool edits_summed = false) {
  const auto edited = enn_inner_steps(model, names, step_sizes, inner_steps, edits, /*create_graph=*/true, edits_summed);
  return tt::nn::functional_call(model, edited, [&] {
    const auto edit_loss = label_nll(seq2seq_logits(model, in_scope), in_scope.labels);
    return edit_loss * c_edit + locality_kl(reference_logits, seq2seq_logits(model, unrelated), unrelated.labels) * c_loc;
  });
}

class Enn : public WeightEditor {
 public:
  Enn(Seq2Seq& base, const Benchmark& bench, EnnOptions options)
      : WeightEditor(base, bench.labels, feed_forward_weights(base.model, options.last_blocks)), options_(options),
        original_(tt::nn::deep_copy(base.model)) {
    tt::check(options_.inner_steps > 0 && options_.loop.edits_per_step > 0, "Enn", "inner_steps and edits_per_step must be positive");
    original_.freeze();
    step_sizes_ = tt::full<float, Cpu>({static_cast<std::int64_t>(edited_.size())}, static_cast<float>(options_.step_size)).requires_grad_();
  }

  std::string name() const override { return "enn"; }
  const EnnOptions& options() const { return options_; }
  nlohmann::json options_json() const override { return options_to_json(options_); }
  std::uint64_t seed() const override { return options_.seed; }
  std::vector<float> step_sizes() const { return step_sizes_.to_vector(); }

  void apply(const std::vector<Example>& descriptors) override {
    if (descriptors.empty()) return;
    const auto batch = base_->batch(descriptors);
    auto params = edited_tensors();
    for (auto& p : params) p.requires_grad_(true);
    struct Frozen {
      std::vector<Tensor>& params;
      ~Frozen() {
        for (auto& p : params) p.requires_grad_(false);
      }
    } frozen{params};
    const auto alphas = step_sizes_.to_vector();
    for (int s = 0; s < options_.inner_steps; ++s) {
      const auto grads = tt::grad(std::vector<Tensor>{edit_nll(seq2seq_logits(base_->model, batch), batch.labels, options_.edits_summed)}, params);
      tt::NoGradGuard no_grad;
      for (std::size_t i = 0; i < params.size(); ++i) params[i].add_(grads[i], -alphas[i]);
    }
  }

  train::TrainReport train(const Benchmark& bench, const train::TrainControl& control = {}) override {
    const auto& train_cases = bench.split(Split::train);
    const auto& validation_cases = bench.split(Split::validation);
    tt::check(!train_cases.empty() && !validation_cases.empty(), "Enn::train", "benchmark '", bench.name,
              "' needs train and validation edits");
    std::vector<StepData> validation;
    tt::Rng validation_rng(options_.seed + 17);
    for (int i = 0; i < 8; ++i) validation.push_back(draw(validation_cases, validation_rng));
    base_->model.unfreeze();
    auto model_params = base_->model.parameters();
    auto params = model_params;
    params.push_back(step_sizes_);
    const auto settings = options_.loop.settings(name(), options_.step_size_lr, options_to_json(options_));
    auto report = train::run_training(
        params, settings, control,
        [&](int step) {
          tt::Rng rng(options_.seed * 1'000'003ULL + static_cast<std::uint64_t>(step));
          const auto data = draw(train_cases, rng);
          const auto loss = step_loss(data);
          tt::backward(loss);
          return train::StepResult{loss.item(), static_cast<double>(data.edits.size())};
        },
        [&] {
          double total = 0;
          for (const auto& d : validation) total += step_loss(d).item();  // needs the graph of the inner step
          return total / static_cast<double>(validation.size());
        },
        [&](tt::optim::Adam<float, Cpu>& adam) { train::adam_step_scaled(adam, model_params, options_.lr / options_.step_size_lr); });
    base_->model.freeze();
    retake_snapshot();  // reset() now returns to the trained model
    return report;
  }

  // One outer step on these cases as the edit batch (what `editlab cost` times).
  double train_step(const std::vector<Case>& cases) override {
    base_->model.unfreeze();
    auto params = base_->model.parameters();
    params.push_back(step_sizes_);
    if (!step_optimizer_) step_optimizer_ = std::make_unique<tt::optim::Adam<float, Cpu>>(params, tt::optim::AdamOptions{.lr = options_.lr});
    tt::Rng rng(options_.seed);
    const StepData data = train::edit_batch_of(cases);
    step_optimizer_->zero_grad();
    const auto loss = step_loss(data);
    tt::backward(loss);
    step_optimizer_->step();
    base_->model.freeze();
    return loss.item();
  }

  // <dir>/enn.json (options) and <dir>/enn.safetensors (the trained model under "base.", and
  // the step sizes).
  void save(const std::filesystem::path& dir) override {
    std::filesystem::create_directories(dir);
    std::map<std::string, Tensor> tensors;
    for (auto& [n, p] : base_->model.named_parameters()) tensors.emplace("base." + n, p.detach());
    tensors.emplace("step_sizes", step_sizes_.detach());
    tt::io::save(dir / "enn.safetensors", tensors);
    train::write_text(dir / "enn.json", nlohmann::json{{"editor", "enn"}, {"options", options_to_json(options_)}}.dump(2) + "\n");
  }

  void load_weights(const std::filesystem::path& dir) override {
    const auto file = dir / "enn.safetensors";
    const tt::io::SafetensorsFile st(file);
    tt::nn::StateDict<float, Cpu> state;
    for (const auto& n : st.names())
      if (n.rfind("base.", 0) == 0) state.emplace(n.substr(5), tt::io::load<float, Cpu>(st, n));
    tt::nn::load_state_dict(base_->model, state);
    tt::check(st.contains("step_sizes"), "Enn::load", "'", file.string(), "' has no step sizes");
    auto loaded = tt::io::load<float, Cpu>(st, "step_sizes");
    tt::check(loaded.shape() == step_sizes_.shape(), "Enn::load", "'", file.string(), "' has ", loaded.shape(),
              " step sizes, this model edits ", step_sizes_.shape());
    step_sizes_ = loaded.requires_grad_();
    retake_snapshot();
  }

 private:
  using StepData = train::EditBatch;
  StepData draw(const std::vector<Case>& pool, tt::Rng& rng) const { return train::draw_edit_batch(pool, options_.loop.edits_per_step, rng); }

  Tensor step_loss(const StepData& d) {
    const auto unrelated = base_->batch(d.out_scope.empty() ? d.in_scope : d.out_scope);
    Tensor reference;
    {
      tt::NoGradGuard no_grad;
      reference = seq2seq_logits(original_, unrelated);
    }
    return enn_outer_loss(base_->model, edited_, step_sizes_, options_.inner_steps, base_->batch(d.edits),
                          base_->batch(d.in_scope), unrelated, reference, options_.c_edit, d.out_scope.empty() ? 0.0 : options_.c_loc,
                          options_.edits_summed);
  }

  EnnOptions options_;
  T5Of<float> original_;  // the base before training: the KL's reference
  Tensor step_sizes_;     // (edited matrices)
  std::unique_ptr<tt::optim::Adam<float, Cpu>> step_optimizer_;
};

}  // namespace editlab::editors
