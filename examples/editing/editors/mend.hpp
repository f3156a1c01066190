// editlab::editors::Mend — model editor networks with gradient decomposition (Mitchell et al.,
// 2022; ../shared/design/EDITORS.md). For each edited matrix W (out, in) the edit loss's
// gradient is a sum of rank-one terms delta_n u_n^T over the tokens n of the edit batch: u the
// layer's input, delta the gradient reaching its output (captured by Linear::forward_hook).
// MEND maps each pair through a small network and applies the mapped sum:
//
//   x_n = [norm_u(u_n); norm_delta(delta_n)]                 (in + out), running mean/std
//   [u~_n; delta~_n] = g_shape(x_n, layer)                   one network per weight shape,
//                                                            a scale and shift per layer
//   G = sum_n delta~_n u~_n^T                                (out, in)
//   W' = W + lr_layer * G                                    lr_layer learned (sign as in the
//                                                            official code: it learns to descend)
//
// g is a stack of residual low-rank layers h + relu((U (V h) + b) * s_l + t_l), s_l and t_l the
// matrix's scale and shift, with U = 0 at the start, so MEND starts as the identity and G as the
// true gradient (without normalisation). Training
// (meta-learning on the train split) minimises c_edit * NLL of the in-scope examples under W'
// + c_loc * KL(unedited || edited) on unrelated out-scope inputs; u and delta are detached.
//
//   Mend editor(base, bench, MendOptions{});
//   editor.train(bench, control);            // train::run_training
//   editor.apply(descriptors);               // one pass: K descriptors, one summed update per matrix
#pragma once

#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "editors/options.hpp"
#include "editors/weight_edit.hpp"
#include "tensortape/io/safetensors.hpp"
#include "tensortape/nn/layers.hpp"
#include "train/edit_sets.hpp"
#include "train/loop.hpp"
#include "common/cases.hpp"

namespace editlab::editors {

struct MendOptions {
  int rank = 256;                 // width of each residual layer's low-rank bottleneck
  int hidden_layers = 1;          // residual layers: hidden_layers + 1 (the official n_hidden)
  bool normalize = true;          // running mean/std normalisation of u and delta
  double edit_lr = 1e-4;          // initial lr_layer
  // The official code's c_edit is 0.1, its edit loss one mean over the batch's tokens, its lr
  // 1e-4 with validation every 100 steps. Chosen instead on qa's validation split
  // (docs/editors.md, "Choosing the defaults"): 1.0, per-descriptor means summed, 3e-5, every 25.
  double c_edit = 1.0;
  double c_loc = 1.0;
  bool edits_summed = true;       // edit loss: per-descriptor means summed (true) or one mean (the official code)
  double lr = 3e-5;
  train::LoopOptions loop{.edits_per_step = 8, .warmup_steps = 100, .clip_norm = 100.0, .steps = 1000, .eval_every = 25, .patience = 600};
  int last_blocks = 2;
  std::uint64_t seed = 1;

  template <class Visit>
  void fields(Visit&& field) {
    field("rank", rank, "width of each residual layer's bottleneck");
    field("hidden_layers", hidden_layers, "residual layers beyond the first");
    field("normalize", normalize, "normalise u and delta by their running mean and std");
    field("edit_lr", edit_lr, "initial per-layer edit rate (W' = W + lr * G)");
    field("c_edit", c_edit, "weight of the in-scope NLL after the edit");
    field("c_loc", c_loc, "weight of the locality KL after the edit");
    field("edits_summed", edits_summed, "edit with the sum over descriptors of each one's mean token NLL (false: one mean over the batch, as the official code)");
    field("lr", lr, "Adam learning rate of the editor networks and edit rates");
    field("last_blocks", last_blocks, "edited: the feed-forward matrices of this many last encoder and decoder blocks");
    loop.fields(field);
    field("seed", seed, "seed of initialisation and draws");
  }
};

// Running mean and sum of squared deviations (Welford, merged a batch at a time as Chan et al.).
// All three are tensors changed in place: the training loop keeps them with the best state and
// in its checkpoints (its buffers).
struct RunningMoments {
  Tensor mean, m2;  // (dim)
  Tensor count;     // () rows seen; a float counts rows exactly up to 2^24

  explicit RunningMoments(std::int64_t dim = 0)
      : mean(tt::zeros<float, Cpu>({dim})), m2(tt::zeros<float, Cpu>({dim})), count(tt::scalar_tensor<float, Cpu>(0.0f)) {}
  std::vector<Tensor> state() const { return {mean, m2, count}; }
  double rows() const { return count.item(); }

  void add(const Tensor& rows_now) {  // (N, dim)
    tt::NoGradGuard no_grad;
    const double n = static_cast<double>(rows_now.shape()[0]);
    if (n == 0) return;
    const double seen = rows(), total = seen + n;
    const auto batch_mean = tt::mean(rows_now, {0});                                  // (dim)
    const auto centred = rows_now - batch_mean.reshape({1, batch_mean.numel()});
    const auto batch_m2 = tt::sum(centred * centred, {0});                           // (dim)
    const auto delta = batch_mean - mean;
    const auto new_mean = mean + delta * (n / total);
    const auto new_m2 = m2 + batch_m2 + delta * delta * (seen * n / total);
    mean.copy_(new_mean);
    m2.copy_(new_m2);
    count.copy_(tt::scalar_tensor<float, Cpu>(static_cast<float>(total)));
  }
  // (x - mean) / (std + 1e-7), the unbiased std as the official code; identity before two rows.
  Tensor normalize(const Tensor& x) const {
    const double seen = rows();
    if (seen < 2) return x;
    const auto std = tt::sqrt(m2 * (1.0 / (seen - 1)));
    const auto d = mean.numel();
    return (x - mean.reshape({1, d})) / (std + 1e-7).reshape({1, d});
  }
};

// One editor network for the matrices of one shape: residual low-rank layers with a scale and
// shift per layer ("mode") that shares it.
struct MendNetwork : tt::nn::Module<float, Cpu> {
  MendNetwork() = default;
  MendNetwork(std::int64_t in, std::int64_t out, std::int64_t modes, const MendOptions& o, tt::Rng& rng)
      : in_dim(in), out_dim(out), u_moments(in), delta_moments(out) {
    const auto dim = in + out;
    for (int l = 0; l <= o.hidden_layers; ++l) {
      Layer layer;
      layer.down = tt::randn<float, Cpu>({o.rank, dim}, rng, 0.0, 1.0 / std::sqrt(static_cast<double>(dim))).requires_grad_();
      layer.up = tt::zeros<float, Cpu>({dim, o.rank}).requires_grad_();  // identity at the start
      layer.bias = tt::zeros<float, Cpu>({dim}).requires_grad_();
      layer.scale = tt::ones<float, Cpu>({modes, dim}).requires_grad_();
      layer.shift = tt::zeros<float, Cpu>({modes, dim}).requires_grad_();
      layers.push_back(layer);
    }
  }

  // x (N, in + out) -> (N, in + out) for the matrix with this mode: each layer adds
  // relu((U (V x) + b) * s + t) to x, s and t the mode's scale and shift, as the official code's
  // LRLinear (its relu on every layer, the last included). The relu is a clamp at 0, whose
  // gradient at 0 is 1, not 0: at the start every pre-activation is exactly 0 (U, b and t are
  // zero), and a relu would keep the network at the identity for good.
  Tensor operator()(Tensor x, std::int64_t mode) const {
    for (const auto& l : layers) {
      const auto dim = x.shape()[1];
      const auto low_rank = tt::matmul(tt::matmul(x, l.down.transpose(0, 1)), l.up.transpose(0, 1)) + l.bias.reshape({1, dim});  // (N, dim)
      x = x + tt::clamp(low_rank * l.scale.narrow(0, mode, 1) + l.shift.narrow(0, mode, 1), 0.0,
                        std::numeric_limits<double>::infinity());
    }
    return x;
  }

  void for_each_own_parameter(const ParameterVisitor& visit) override {
    for (std::size_t l = 0; l < layers.size(); ++l) {
      const std::string p = "layer." + std::to_string(l) + ".";
      visit(p + "down", layers[l].down);
      visit(p + "up", layers[l].up);
      visit(p + "bias", layers[l].bias);
      visit(p + "scale", layers[l].scale);
      visit(p + "shift", layers[l].shift);
    }
  }

  struct Layer {
    Tensor down, up, bias, scale, shift;  // (rank, dim), (dim, rank), (dim), (modes, dim) x2
  };
  std::int64_t in_dim = 0, out_dim = 0;
  std::vector<Layer> layers;
  RunningMoments u_moments, delta_moments;
};

class Mend : public WeightEditor {
 public:
  Mend(Seq2Seq& base, const Benchmark& bench, MendOptions options)
      : WeightEditor(base, bench.labels, feed_forward_weights(base.model, options.last_blocks)), options_(options) {
    tt::check(options_.rank > 0 && options_.hidden_layers >= 0 && options_.loop.edits_per_step > 0, "Mend",
              "rank and edits_per_step must be positive, hidden_layers >= 0");
    tt::Rng init(options_.seed);
    const auto params = edited_tensors();
    std::map<std::pair<std::int64_t, std::int64_t>, std::int64_t> modes;
    for (const auto& p : params) {
      const std::pair<std::int64_t, std::int64_t> shape{p.shape()[0], p.shape()[1]};
      mode_of_.push_back(modes[shape]++);
      network_of_.push_back(shape);
    }
    for (const auto& [shape, count] : modes)
      networks_.emplace(shape, MendNetwork(shape.second, shape.first, count, options_, init));
    edit_lrs_ = tt::full<float, Cpu>({static_cast<std::int64_t>(params.size())}, static_cast<float>(options_.edit_lr)).requires_grad_();
  }

  std::string name() const override { return "mend"; }
  const MendOptions& options() const { return options_; }
  nlohmann::json options_json() const override { return options_to_json(options_); }
  std::uint64_t seed() const override { return options_.seed; }

  void apply(const std::vector<Example>& descriptors) override {
    if (descriptors.empty()) return;
    const auto updates = edit_updates(gradient_factors(*base_, edited_, base_->batch(descriptors), options_.edits_summed), false);
    tt::NoGradGuard no_grad;
    auto params = edited_tensors();
    for (std::size_t i = 0; i < params.size(); ++i) params[i].add_(updates[i]);
  }

  // MEND's pseudo-gradients G (out, in) for these descriptors, one per edited matrix (for checks).
  std::vector<Tensor> pseudo_gradients(const std::vector<Example>& descriptors) {
    tt::NoGradGuard no_grad;
    const auto factors = gradient_factors(*base_, edited_, base_->batch(descriptors), options_.edits_summed);
    std::vector<Tensor> out;
    for (std::size_t i = 0; i < edited_.size(); ++i) out.push_back(pseudo_gradient(factors, i));
    return out;
  }

  std::vector<Tensor> trainable_parameters() {
    std::vector<Tensor> out;
    for (auto& [shape, net] : networks_)
      for (auto& p : net.parameters()) out.push_back(p);
    out.push_back(edit_lrs_);
    return out;
  }
  std::vector<float> edit_rates() const { return edit_lrs_.to_vector(); }

  train::TrainReport train(const Benchmark& bench, const train::TrainControl& control = {}) override {
    return train::train_on_edit_batches(trainable_parameters(), options_.loop.settings(name(), options_.lr, options_to_json(options_)),
                                        control, bench, options_.loop.edits_per_step, options_.seed,
                                        [&](const train::EditBatch& batch, bool training) { return step_loss(batch, /*update_moments=*/training); },
                                        moments());
  }

  // Every network's running moments, in a fixed order (the training loop's buffers).
  std::vector<Tensor> moments() const {
    std::vector<Tensor> out;
    for (const auto& [shape, net] : networks_)
      for (const auto* m : {&net.u_moments, &net.delta_moments})
        for (const auto& t : m->state()) out.push_back(t);
    return out;
  }

  // One training step with these cases as the edit batch (what `editlab cost` times); it
  // changes the networks, and updates the moments.
  double train_step(const std::vector<Case>& cases) override {
    if (!step_optimizer_) step_optimizer_ = std::make_unique<tt::optim::Adam<float, Cpu>>(trainable_parameters(), tt::optim::AdamOptions{.lr = options_.lr});
    const StepData data = train::edit_batch_of(cases);
    step_optimizer_->zero_grad();
    const auto loss = step_loss(data, true);
    tt::backward(loss);
    tt::optim::clip_grad_norm_(trainable_parameters(), options_.loop.clip_norm);
    step_optimizer_->step();
    return loss.item();
  }

  // The editor network's form, written to mend.json: weights saved before 2026-12-07 belong to
  // another network of the same shapes (each layer x + U relu(V (x * s + t)) + b) and are refused.
  static constexpr const char* kNetworkForm = "x + relu((U(Vx) + b) * s + t)";

  // <dir>/mend.json (options) and <dir>/mend.safetensors (networks, moments, edit rates).
  void save(const std::filesystem::path& dir) override {
    std::filesystem::create_directories(dir);
    std::map<std::string, Tensor> tensors;
    for (auto& [shape, net] : networks_) {
      const std::string prefix = "network." + std::to_string(shape.first) + "x" + std::to_string(shape.second) + ".";
      for (auto& [n, p] : net.named_parameters()) tensors.emplace(prefix + n, p.detach());
      tensors.emplace(prefix + "u_mean", net.u_moments.mean);
      tensors.emplace(prefix + "u_m2", net.u_moments.m2);
      tensors.emplace(prefix + "u_count", net.u_moments.count);
      tensors.emplace(prefix + "delta_mean", net.delta_moments.mean);
      tensors.emplace(prefix + "delta_m2", net.delta_moments.m2);
      tensors.emplace(prefix + "delta_count", net.delta_moments.count);
    }
    tensors.emplace("edit_lrs", edit_lrs_.detach());
    tt::io::save(dir / "mend.safetensors", tensors);
    train::write_text(dir / "mend.json",
                      nlohmann::json{{"editor", "mend"}, {"options", options_to_json(options_)}, {"network", kNetworkForm}}.dump(2) + "\n");
  }

  void load_weights(const std::filesystem::path& dir) override {
    const auto options_file = dir / "mend.json";
    tt::check(train::read_json(options_file).value("network", "") == kNetworkForm, "Mend::load", "'", options_file.string(),
              "' holds a MEND editor of an older network form (before 2026-12-07, each layer x + U relu(V (x * s + t)) + b): ",
              "train it again");
    const auto file = dir / "mend.safetensors";
    const tt::io::SafetensorsFile st(file);
    auto read = [&](const std::string& n, const tt::Shape& shape) {
      tt::check(st.contains(n), "Mend::load", "'", file.string(), "' has no tensor '", n, "'");
      auto t = tt::io::load<float, Cpu>(st, n);
      tt::check(t.shape() == shape, "Mend::load", "tensor '", n, "' has shape ", t.shape(), ", this model expects ", shape,
                " (was the run made with another base model?)");
      return t;
    };
    for (auto& [shape, net] : networks_) {
      const std::string prefix = "network." + std::to_string(shape.first) + "x" + std::to_string(shape.second) + ".";
      net.for_each_parameter([&](const std::string& n, Tensor& p) { p = read(prefix + n, p.shape()).requires_grad_(); });
      net.u_moments.mean = read(prefix + "u_mean", {net.in_dim});
      net.u_moments.m2 = read(prefix + "u_m2", {net.in_dim});
      net.u_moments.count = read(prefix + "u_count", {});
      net.delta_moments.mean = read(prefix + "delta_mean", {net.out_dim});
      net.delta_moments.m2 = read(prefix + "delta_m2", {net.out_dim});
      net.delta_moments.count = read(prefix + "delta_count", {});
    }
    edit_lrs_ = read("edit_lrs", edit_lrs_.shape()).requires_grad_();
  }

 private:
  using StepData = train::EditBatch;

  Tensor pseudo_gradient(const GradientFactors& f, std::size_t i, bool update_moments = false) {
    auto& net = networks_.at(network_of_[i]);
    const auto& u = f.inputs[i];
    const auto& delta = f.output_grads[i];
    if (update_moments) {
      net.u_moments.add(u);
      net.delta_moments.add(delta);
    }
    const auto x = options_.normalize
                       ? tt::concat<float, Cpu>({net.u_moments.normalize(u), net.delta_moments.normalize(delta)}, 1)
                       : tt::concat<float, Cpu>({u, delta}, 1);  // (N, in + out)
    const auto y = net(x, mode_of_[i]);
    const auto u_mapped = y.narrow(1, 0, net.in_dim), delta_mapped = y.narrow(1, net.in_dim, net.out_dim);
    return tt::matmul(delta_mapped.transpose(0, 1), u_mapped);  // (out, in)
  }

  // lr_i * G_i for every edited matrix (on the tape unless grad mode is off).
  std::vector<Tensor> edit_updates(const GradientFactors& f, bool update_moments) {
    std::vector<Tensor> out;
    for (std::size_t i = 0; i < edited_.size(); ++i)
      out.push_back(tt::mul(pseudo_gradient(f, i, update_moments),
                            edit_lrs_.narrow(0, static_cast<std::int64_t>(i), 1).reshape({1, 1})));
    return out;
  }

  // c_edit * NLL(in-scope | W') + c_loc * KL(W || W') on the unrelated inputs.
  Tensor step_loss(const StepData& d, bool update_moments) {
    const auto factors = gradient_factors(*base_, edited_, base_->batch(d.edits), options_.edits_summed);
    const auto updates = edit_updates(factors, update_moments);
    const auto params = edited_tensors();
    tt::nn::StateDict<float, Cpu> edited;
    for (std::size_t i = 0; i < params.size(); ++i) edited.emplace(edited_[i], params[i] + updates[i]);
    const auto in_batch = base_->batch(d.in_scope);
    Tensor loss;
    tt::nn::functional_call(base_->model, edited, [&] {
      loss = label_nll(seq2seq_logits(base_->model, in_batch), in_batch.labels) * options_.c_edit;
    });
    if (!d.out_scope.empty()) {
      const auto out_batch = base_->batch(d.out_scope);
      Tensor reference;
      {
        tt::NoGradGuard no_grad;
        reference = seq2seq_logits(base_->model, out_batch);
      }
      tt::nn::functional_call(base_->model, edited, [&] {
        loss = loss + locality_kl(reference, seq2seq_logits(base_->model, out_batch), out_batch.labels) * options_.c_loc;
      });
    }
    return loss;
  }

  MendOptions options_;
  std::map<std::pair<std::int64_t, std::int64_t>, MendNetwork> networks_;  // by (out, in)
  std::vector<std::pair<std::int64_t, std::int64_t>> network_of_;           // per edited matrix
  std::vector<std::int64_t> mode_of_;
  Tensor edit_lrs_;  // (edited matrices)
  std::unique_ptr<tt::optim::Adam<float, Cpu>> step_optimizer_;  // train_step()'s, made on first use
};

}  // namespace editlab::editors
