// Optimizer<T, B>: the common base of the optimizers in optim/ (SGD, Adam, AdamW, RMSprop).
// It holds the parameter handles, the learning rate and the per-parameter state (moment
// tensors and a step count), which can be exported and imported as named tensors.
//
//   tt::optim::Adam<float, Cpu> optimizer(model.parameters(), {.lr = 1e-3});
//   for (...) {
//     optimizer.zero_grad();
//     tt::backward(loss);
//     optimizer.step();                    // parameters whose grad() is undefined are skipped
//   }
//   auto state = optimizer.state_dict();   // {"state.0.step", ...}, {"state.0.exp_avg", ...}, ...
//   other.load_state_dict(state);          // resumes with identical subsequent steps
//
// Hyper-parameters (lr, betas, ...) are not part of the exported state: construct the optimizer
// with the same options (and re-apply a schedule) when resuming.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tensortape/core/error.hpp"
#include "tensortape/core/tensor.hpp"
#include "tensortape/ops/elementwise.hpp"
#include "tensortape/ops/inplace.hpp"

namespace tensortape::optim {

template <class T, class B>
using NamedTensors = std::vector<std::pair<std::string, Tensor<T, B>>>;

namespace detail {

// y = a * y + b * x, written back into y (one copy instead of mul_ then add_).
template <class T, class B>
void scale_add_(Tensor<T, B>& y, double a, const Tensor<T, B>& x, double b) {
  NoGradGuard no_grad;
  const Tensor<T, B> scaled_x = b == 1.0 ? x : x * b;
  y.copy_(a == 1.0 ? y + scaled_x : y * a + scaled_x);
}

// Throws "<optimizer>: invalid <what> <value> (<rule>)" unless ok.
inline void check_hyper(bool ok, const std::string& optimizer, const char* what, double value, const char* rule) {
  check(ok && !std::isnan(value), optimizer, "invalid ", what, " ", value, " (", rule, ")");
}

}  // namespace detail

template <class T, class B>
class Optimizer {
 public:
  using TensorType = Tensor<T, B>;

  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter whose grad() is defined (runs under NoGradGuard).
  virtual void step() = 0;

  // Drops every parameter's gradient (grad() becomes undefined; the next backward sets it).
  void zero_grad() {
    for (const auto& p : params_) p.zero_grad();
  }

  const std::vector<TensorType>& parameters() const { return params_; }
  const std::string& name() const { return name_; }

  double lr() const { return lr_; }
  void set_lr(double lr) {
    detail::check_hyper(lr >= 0.0 && std::isfinite(lr), name_, "learning rate", lr, "must be finite and >= 0");
    lr_ = lr;
  }

  // Number of updates applied to parameter i so far.
  std::int64_t step_count(std::size_t i) const {
    check(i < params_.size(), name_, "parameter index ", i, " out of range (", params_.size(), " parameters)");
    return steps_[i];
  }

  // The per-parameter state as named copies: "state.<i>.step" (a scalar holding the step count,
  // exact up to 2^24 steps in float) and "state.<i>.<key>" (tensors shaped like parameter i) for every parameter updated so far.
  NamedTensors<T, B> state_dict() const {
    NamedTensors<T, B> out;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      if (!has_state_[i]) continue;
      const std::string prefix = "state." + std::to_string(i) + ".";
      out.emplace_back(prefix + "step", scalar_tensor<T, B>(static_cast<T>(steps_[i])));
      for (const auto& [key, tensor] : state_[i]) out.emplace_back(prefix + key, tensor.contiguous_copy());
    }
    return out;
  }

  // Replaces the state with copies of `entries` (as written by state_dict()). Every parameter
  // mentioned needs "step" and exactly this optimizer's keys, shaped like the parameter.
  void load_state_dict(const NamedTensors<T, B>& entries) {
    const std::string op = name_ + ": load_state_dict";
    const auto keys = state_keys();
    std::vector<std::map<std::string, TensorType>> state(params_.size());
    std::vector<std::int64_t> steps(params_.size(), 0);
    std::vector<bool> has_step(params_.size(), false);
    for (const auto& [entry_name, tensor] : entries) {
      check(entry_name.rfind("state.", 0) == 0, op, "unknown entry '", entry_name, "'");
      const auto dot = entry_name.find('.', 6);
      check(dot != std::string::npos && dot > 6, op, "malformed entry '", entry_name, "'");
      const std::string index_text = entry_name.substr(6, dot - 6);
      check(index_text.find_first_not_of("0123456789") == std::string::npos && index_text.size() < 10, op,
            "malformed parameter index in '", entry_name, "'");
      const std::size_t index = std::stoul(index_text);
      check(index < params_.size(), op, "entry '", entry_name, "' names parameter ", index, " but there are ",
            params_.size(), " parameters");
      const std::string key = entry_name.substr(dot + 1);
      check(tensor.defined(), op, "entry '", entry_name, "' is an undefined tensor");
      if (key == "step") {
        check(tensor.numel() == 1, op, "entry '", entry_name, "' needs one element, got shape ", tensor.shape());
        const double value = static_cast<double>(tensor.item());
        check(value >= 0.0 && value == std::floor(value), op, "entry '", entry_name, "' is not a step count: ",
              value);
        steps[index] = static_cast<std::int64_t>(value);
        has_step[index] = true;
        continue;
      }
      bool known = false;
      for (const auto& k : keys) known = known || k == key;
      check(known, op, "unknown state '", key, "' in entry '", entry_name, "'");
      check(tensor.shape() == params_[index].shape(), op, "entry '", entry_name, "' has shape ", tensor.shape(),
            " but parameter ", index, " has shape ", params_[index].shape());
      check(!state[index].count(key), op, "duplicate entry '", entry_name, "'");
      state[index].emplace(key, tensor.contiguous_copy());
    }
    for (std::size_t i = 0; i < params_.size(); ++i) {
      if (!has_step[i] && state[i].empty()) continue;
      const std::string prefix = "state." + std::to_string(i) + ".";
      check(has_step[i], op, "missing entry '", prefix, "step'");
      for (const auto& k : keys) check(state[i].count(k) == 1, op, "missing entry '", prefix, k, "'");
    }
    state_ = std::move(state);
    steps_ = std::move(steps);
    has_state_ = std::move(has_step);
  }

 protected:
  Optimizer(std::string name, std::vector<TensorType> params, double lr)
      : name_(std::move(name)), params_(std::move(params)) {
    check(!params_.empty(), name_, "got an empty parameter list");
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const auto& p = params_[i];
      check(p.defined(), name_, "parameter ", i, " is an undefined tensor");
      check(p.requires_grad(), name_, "parameter ", i, " (shape ", p.shape(), ") does not require grad");
      check(p.is_leaf(), name_, "parameter ", i, " (shape ", p.shape(),
            ") is not a leaf; optimize the leaf it was computed from");
      for (std::size_t j = 0; j < i; ++j) {
        check(params_[j].autograd_meta() != p.autograd_meta(), name_, "parameter ", i,
              " appears twice in the parameter list (also at ", j, ")");
      }
    }
    set_lr(lr);
    state_.resize(params_.size());
    steps_.assign(params_.size(), 0);
    has_state_.assign(params_.size(), false);
  }

  // The names of the tensors each parameter's state holds besides "step", given the options.
  virtual std::vector<std::string> state_keys() const = 0;

  // Calls update(i, param, grad) for every parameter with a defined gradient, under
  // NoGradGuard, after counting the step (so step_count(i) is 1 in the first update).
  template <class Update>
  void for_each_update(Update&& update) {
    NoGradGuard no_grad;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const TensorType grad = params_[i].grad();
      if (!grad.defined()) continue;
      check(grad.shape() == params_[i].shape(), name_, "gradient of parameter ", i, " has shape ", grad.shape(),
            " but the parameter has shape ", params_[i].shape());
      ++steps_[i];
      has_state_[i] = true;
      update(i, params_[i], grad);
    }
  }

  // Zero state `keys` for every parameter about to be updated (its gradient defined) that has no
  // state yet, each key carved out of one block. On the first step that is the whole model's
  // state in one allocation per key, which the heap places apart, instead of one per parameter
  // filling the gaps that the first backward pass left between activations.
  void allocate_zero_state_together(const std::vector<std::string>& keys) {
    constexpr std::int64_t kAlign = 16;  // elements: each parameter's slice starts on a cache line
    const auto padded = [&](std::int64_t n) { return (n + kAlign - 1) / kAlign * kAlign; };
    std::vector<std::size_t> fresh;
    std::int64_t total = 0;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      if (!params_[i].grad().defined() || !state_[i].empty()) continue;
      fresh.push_back(i);
      total += padded(params_[i].numel());
    }
    if (fresh.size() < 2) return;
    for (const auto& key : keys) {
      const auto block = zeros<T, B>({total});
      std::int64_t offset = 0;
      for (auto i : fresh) {
        const auto n = params_[i].numel();
        state_[i][key] = block.narrow(0, offset, n).reshape(params_[i].shape());
        offset += padded(n);
      }
    }
  }

  // State tensor `key` of parameter i; zeros shaped like the parameter when first asked for.
  TensorType& state(std::size_t i, const std::string& key) {
    auto [it, inserted] = state_[i].try_emplace(key);
    if (inserted) it->second = zeros_like(params_[i].detach());
    return it->second;
  }
  bool has_state(std::size_t i, const std::string& key) const { return state_[i].count(key) == 1; }
  // Stores `value` (owned by the caller from now on) as state `key` of parameter i.
  void set_state(std::size_t i, const std::string& key, TensorType value) { state_[i][key] = std::move(value); }

 private:
  std::string name_;
  std::vector<TensorType> params_;
  double lr_ = 0.0;
  std::vector<std::map<std::string, TensorType>> state_;
  std::vector<std::int64_t> steps_;
  std::vector<bool> has_state_;  // parameter i has been updated (or loaded) at least once
};

}  // namespace tensortape::optim
