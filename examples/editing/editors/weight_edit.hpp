// editlab::editors — what the editors that change the base model's weights (FT, FT+KL, ENN,
// MEND, SLAG) share: which matrices they edit, the losses they edit and train with, the factors
// of an edit loss's gradient (MEND, SLAG), the "every descriptor is fit" check (FT, SLAG), and an
// editor base class whose reset() puts those matrices back bit for bit.
//
//   auto names = feed_forward_weights(base.model, /*last_blocks=*/2);  // T5 wi (wi_0, wi_1) and wo
//   auto logits = seq2seq_logits(base.model, base.batch(examples));     // (B, T, V)
//   auto kl = locality_kl(reference_logits, logits, batch.labels);      // mean over label tokens
//
// The loss helpers are templates over the element type so the tests can check them in float64.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/cases.hpp"
#include "editors/run_editor.hpp"
#include "model/seq2seq.hpp"
#include "tensortape/nn/layers.hpp"
#include "tensortape/nn/state.hpp"
#include "tensortape/ops/loss.hpp"

namespace editlab::editors {

namespace tt = tensortape;
using model::Cpu;
using model::Ids;
using model::Seq2Seq;
using model::TextBatch;
using model::Tensor;

template <class T>
using T5Of = tt::nn::T5Model<T, Cpu>;
template <class T>
using TensorOf = tt::Tensor<T, Cpu>;

// The feed-forward matrices of the last `last_blocks` blocks of the encoder and of the decoder,
// encoder first, each block's wi (or wi_0 and wi_1) before its wo: the weights FT, ENN and MEND
// edit (MEND's and ENN's choice for T5).
template <class T>
std::vector<std::string> feed_forward_weights(T5Of<T>& model, int last_blocks) {
  tt::check(last_blocks > 0, "editlab", "the edited blocks must be at least one, got ", last_blocks);
  std::vector<std::string> names;
  auto add_stack = [&](tt::nn::T5Stack<T, Cpu>& stack, const std::string& stack_name, const std::string& layer) {
    const auto blocks = static_cast<int>(stack.block.size());
    for (int b = std::max(0, blocks - last_blocks); b < blocks; ++b)
      stack.block[static_cast<std::size_t>(b)].feed_forward.for_each_parameter(
          [&](const std::string& n, TensorOf<T>&) {
            names.push_back(stack_name + ".block." + std::to_string(b) + "." + layer + ".DenseReluDense." + n);
          });
  };
  add_stack(model.encoder, "encoder", "layer.1");
  add_stack(model.decoder, "decoder", "layer.2");
  return names;
}

// The named parameters' tensors, in the order of `names`.
template <class T>
std::vector<TensorOf<T>> parameters_named(T5Of<T>& model, const std::vector<std::string>& names) {
  const auto all = tt::nn::state_dict(model);
  std::vector<TensorOf<T>> out;
  for (const auto& n : names) {
    tt::check(all.count(n) > 0, "editlab", "the model has no parameter '", n, "'");
    out.push_back(all.at(n));
  }
  // state_dict detaches: hand back the parameters themselves, which may require grad.
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < names.size(); ++i) index[names[i]] = i;
  model.for_each_parameter([&](const std::string& n, TensorOf<T>& p) {
    if (auto it = index.find(n); it != index.end()) out[it->second] = p;
  });
  return out;
}

// Teacher-forced logits (B, T, V) of a batch's labels.
template <class T>
TensorOf<T> seq2seq_logits(T5Of<T>& model, const TextBatch& b) {
  const auto encoded = model.encode(b.input_ids, b.attention_mask);  // (B, S, D)
  return model.decode(tt::nn::shift_right(b.labels, model.config().decoder_start_token_id, model.config().pad_token_id),
                      encoded, b.attention_mask);  // (B, T, V)
}

// Mean token NLL of the labels under logits (B, T, V).
template <class T>
TensorOf<T> label_nll(const TensorOf<T>& logits, const Ids& labels) {
  return tt::cross_entropy(logits, labels, model::kIgnore);
}

// The loss an edit is made with: the mean token NLL over the whole batch (edits_summed false,
// as the official MEND and ENN code), or each descriptor's mean token NLL summed over the
// descriptors (true), whose gradient gives every edit the same weight whatever K is.
template <class T>
TensorOf<T> edit_nll(const TensorOf<T>& logits, const Ids& labels, bool edits_summed) {
  if (!edits_summed) return label_nll(logits, labels);
  const auto per_token = tt::cross_entropy(logits, labels, model::kIgnore, tt::Reduction::None);  // (B, T), 0 on padding
  const auto host = labels.to_vector();
  const auto rows = labels.shape()[0], cols = labels.shape()[1];
  std::vector<T> weight(host.size(), T(0));  // 1 / (the row's label tokens) on its label tokens
  for (std::int64_t r = 0; r < rows; ++r) {
    double count = 0;
    for (std::int64_t c = 0; c < cols; ++c) count += host[static_cast<std::size_t>(r * cols + c)] != model::kIgnore;
    for (std::int64_t c = 0; c < cols; ++c)
      if (host[static_cast<std::size_t>(r * cols + c)] != model::kIgnore) weight[static_cast<std::size_t>(r * cols + c)] = static_cast<T>(1.0 / count);
  }
  return tt::sum(per_token * tt::from_vector<T, Cpu>(labels.shape(), weight));
}

// KL(reference || edited) of the next-token distributions, summed over the vocabulary and
// averaged over the label positions (not padding): how far an edit moved the model's answers.
// reference_logits and logits (B, T, V), labels (B, T).
template <class T>
TensorOf<T> locality_kl(const TensorOf<T>& reference_logits, const TensorOf<T>& logits, const Ids& labels) {
  const auto per_token = tt::sum(tt::kl_div(tt::log_softmax(logits), tt::log_softmax(reference_logits).detach(),
                                            tt::Reduction::None, /*log_target=*/true),
                                 {2});  // (B, T)
  const auto host = labels.to_vector();
  std::vector<T> mask(host.size());
  double count = 0;
  for (std::size_t i = 0; i < host.size(); ++i) count += mask[i] = host[i] != model::kIgnore ? T(1) : T(0);
  tt::check(count > 0, "locality_kl", "the batch has no label tokens");
  return tt::sum(per_token * tt::from_vector<T, Cpu>(labels.shape(), mask)) * (1.0 / count);
}

// Finds the Linear a parameter name ("....wo.weight") belongs to.
template <class T>
tt::nn::Linear<T, Cpu>& linear_of(tt::nn::Module<T, Cpu>& root, const std::string& weight_name) {
  const std::string suffix = ".weight";
  tt::check(weight_name.size() > suffix.size() && weight_name.ends_with(suffix), "editlab", "'", weight_name,
            "' is not a weight");
  std::string path = weight_name.substr(0, weight_name.size() - suffix.size());
  tt::nn::Module<T, Cpu>* module = &root;
  while (!path.empty()) {
    tt::nn::Module<T, Cpu>* next = nullptr;
    std::string rest;
    module->for_each_child([&](const std::string& name, tt::nn::Module<T, Cpu>& child) {
      if (next) return;
      if (path == name) {
        next = &child;
      } else if (path.rfind(name + ".", 0) == 0) {
        next = &child;
        rest = path.substr(name.size() + 1);
      }
    });
    tt::check(next != nullptr, "editlab", "no module '", path, "' on the way to '", weight_name, "'");
    module = next;
    path = rest;
  }
  auto* linear = dynamic_cast<tt::nn::Linear<T, Cpu>*>(module);
  tt::check(linear != nullptr, "editlab", "'", weight_name, "' is not a Linear layer's weight");
  return *linear;
}

// The two factors of each edited matrix's gradient of an edit loss, and that gradient.
// Rows of one batch example touch only that example's loss term, so the rows of descriptor k
// alone, sum_{n of k} delta_n u_n^T, are its own gradient (SLAG conditions each one's).
struct GradientFactors {
  std::vector<Tensor> inputs;          // u (N, in) per edited matrix, rows with a zero delta dropped
  std::vector<Tensor> output_grads;    // delta (N, out)
  std::vector<Ids> descriptor_of;      // (N): the batch row (descriptor) each kept row came from
  std::vector<Tensor> gradients;       // dL/dW (out, in), for checks
};

// Runs the edit loss (edit_nll) of `batch` with the named matrices requiring grad, capturing each
// one's layer input and output gradient. The model's weights are not changed; the factors and
// gradients are detached.
inline GradientFactors gradient_factors(Seq2Seq& base, const std::vector<std::string>& names, const TextBatch& batch,
                                        bool edits_summed = false) {
  tt::GradModeGuard grad_on(true);  // also when the caller evaluates under no_grad: the factors need a backward pass
  auto params = parameters_named(base.model, names);
  std::vector<Tensor> inputs(names.size()), output_grads(names.size());
  std::vector<tt::nn::Linear<float, Cpu>*> layers;
  for (std::size_t i = 0; i < names.size(); ++i) {
    layers.push_back(&linear_of(base.model, names[i]));
    layers.back()->forward_hook = [&, i](const Tensor& x, const Tensor& y) {
      tt::check(!inputs[i].defined(), "editlab", "'", names[i], "' ran twice in one edit pass");
      inputs[i] = x.detach();
      y.register_hook([&, i](const Tensor& g) { output_grads[i] = g.detach(); });
    };
  }
  struct Unhook {
    std::vector<tt::nn::Linear<float, Cpu>*>& layers;
    std::vector<Tensor>& params;
    ~Unhook() {
      for (auto* l : layers) l->forward_hook = nullptr;
      for (auto& p : params) p.requires_grad_(false);
    }
  } unhook{layers, params};
  for (auto& p : params) p.requires_grad_(true);
  const auto loss = edit_nll(seq2seq_logits(base.model, batch), batch.labels, edits_summed);
  GradientFactors out;
  out.gradients = tt::grad(std::vector<Tensor>{loss}, params);
  for (std::size_t i = 0; i < names.size(); ++i) {
    tt::check(inputs[i].defined() && output_grads[i].defined(), "editlab", "'", names[i], "' took no part in the edit loss");
    const auto in = inputs[i].shape().back(), out_dim = output_grads[i].shape().back();
    const auto u = inputs[i].reshape({inputs[i].numel() / in, in});                    // (N, in)
    const auto delta = output_grads[i].reshape({output_grads[i].numel() / out_dim, out_dim});  // (N, out)
    // Padding positions get no gradient: keep the rows where delta is not all zero.
    const auto host = delta.contiguous_copy().to_vector();
    std::vector<std::int64_t> rows;
    for (std::int64_t r = 0; r < delta.shape()[0]; ++r)
      for (std::int64_t c = 0; c < out_dim; ++c)
        if (host[static_cast<std::size_t>(r * out_dim + c)] != 0.0f) {
          rows.push_back(r);
          break;
        }
    const auto index = tt::from_vector<std::int64_t, Cpu>({static_cast<std::int64_t>(rows.size())}, rows);
    out.inputs.push_back(tt::index_select(u, 0, index));
    out.output_grads.push_back(tt::index_select(delta, 0, index));
    const auto per_example = delta.shape()[0] / batch.labels.shape()[0];  // rows of one batch example (its positions)
    std::vector<std::int64_t> owner;
    for (auto r : rows) owner.push_back(r / per_example);
    out.descriptor_of.push_back(tt::from_vector<std::int64_t, Cpu>({static_cast<std::int64_t>(owner.size())}, owner));
  }
  return out;
}

// Whether every descriptor is answered with its new label (FT and SLAG stop editing then).
inline bool every_descriptor_fit(const std::vector<std::string>& answers, const std::vector<Example>& descriptors) {
  if (answers.size() != descriptors.size()) return false;
  for (std::size_t i = 0; i < answers.size(); ++i)
    if (answers[i] != descriptors[i].target) return false;
  return true;
}

// Base of the editors that change the base model's weights: they edit the matrices `edited`
// names, in place; reset() restores them bit-identically (tt::nn::ParameterSnapshot). The
// rest of the model is frozen. Predictions are the edited model's own (greedy answer, or the
// most likely label).
class WeightEditor : public RunEditor {
 public:
  WeightEditor(Seq2Seq& base, std::vector<std::string> labels, std::vector<std::string> edited)
      : base_(&base), labels_(std::move(labels)), edited_(std::move(edited)) {
    base_->model.freeze();
    base_->model.eval();
    retake_snapshot();
  }

  std::vector<std::string> predict(const std::vector<std::string>& inputs) override {
    return base_->predict(inputs, labels_);
  }
  void reset() override { snapshot_->restore(); }

  const std::vector<std::string>& edited_weights() const { return edited_; }

 protected:
  // The unedited state reset() goes back to is the weights as they are now (after training).
  void retake_snapshot() {
    snapshot_.reset();
    snapshot_ = std::make_unique<tt::nn::ParameterSnapshot<float, Cpu>>(base_->model, edited_);
  }
  std::vector<Tensor> edited_tensors() { return parameters_named(base_->model, edited_); }

  Seq2Seq* base_;
  std::vector<std::string> labels_;
  std::vector<std::string> edited_;

 private:
  std::unique_ptr<tt::nn::ParameterSnapshot<float, Cpu>> snapshot_;
};

}  // namespace editlab::editors
