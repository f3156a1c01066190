// A module's weights as data: state dicts, snapshots that put weights back bit for bit, and
// functional calls that run a module with some parameters replaced.
//
//   auto state = tt::nn::state_dict(model);                  // name -> tensor (shares storage)
//   tt::nn::load_state_dict(model, loaded);                  // copies in place; strict by default
//
//   {
//     tt::nn::ParameterSnapshot saved(model, names);         // copies of these parameters
//     ... edit the weights in place ...
//   }                                                        // restored bit-identically here
//
//   // W' = W - lr * g stays on the tape: the loss below is differentiable w.r.t. lr and W.
//   auto g = tt::grad({edit_loss}, {w}, {}, /*create_graph=*/true)[0];
//   auto loss = tt::nn::functional_call(model, {{"decoder.block.2.layer.2.DenseReluDense.wo.weight", w - lr * g}},
//                                       [&] { return model_loss(model); });
//
// A replacement is swapped into the module's parameter slot for the call only, so any tensor
// works, leaf or not; a tensor that merely shares storage with a parameter elsewhere (none in
// T5: the tied lm_head reads `shared.weight` itself) is not replaced.
#pragma once

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "tensortape/nn/module.hpp"

namespace tensortape::nn {

template <class T, class B>
using StateDict = std::map<std::string, Tensor<T, B>>;

// Every parameter by its dotted name, detached; the tensors share the module's storage.
template <class T, class B>
StateDict<T, B> state_dict(Module<T, B>& module) {
  StateDict<T, B> out;
  module.for_each_parameter([&](const std::string& name, Tensor<T, B>& p) { out.emplace(name, p.detach()); });
  return out;
}

// What load_state_dict did not match (empty when strict, which raises instead).
struct LoadResult {
  std::vector<std::string> missing;     // the module's parameters the state lacks
  std::vector<std::string> unexpected;  // the state's tensors the module lacks
};

// Copies each tensor of `state` into the module's parameter of that name, in place (so
// optimizers and other holders of the parameter see the new values). Shapes must match.
// strict: a missing or unexpected name raises an Error naming them all, before anything is copied.
template <class T, class B>
LoadResult load_state_dict(Module<T, B>& module, const StateDict<T, B>& state, bool strict = true) {
  LoadResult result;
  std::set<std::string> seen;
  module.for_each_parameter([&](const std::string& name, Tensor<T, B>& p) {
    seen.insert(name);
    auto found = state.find(name);
    if (found == state.end()) {
      result.missing.push_back(name);
      return;
    }
    check(found->second.shape() == p.shape(), "load_state_dict", "tensor '", name, "' has shape ", found->second.shape(),
          ", the module's parameter has ", p.shape());
  });
  for (const auto& [name, tensor] : state)
    if (!seen.count(name)) result.unexpected.push_back(name);
  if (strict && (!result.missing.empty() || !result.unexpected.empty())) {
    std::string missing, unexpected;
    for (const auto& n : result.missing) missing += (missing.empty() ? "" : ", ") + n;
    for (const auto& n : result.unexpected) unexpected += (unexpected.empty() ? "" : ", ") + n;
    fail("load_state_dict", "the state does not match the module: missing [", missing, "], unexpected [", unexpected, "]");
  }
  NoGradGuard no_grad;
  module.for_each_parameter([&](const std::string& name, Tensor<T, B>& p) {
    if (auto found = state.find(name); found != state.end()) p.copy_(found->second);
  });
  return result;
}

// The named parameters of `module` (all when `names` is empty) as they are now. restore(), or
// the destructor unless release() was called, puts back each parameter's original tensor (the
// same handle, so optimizers holding it stay valid) with its original bits, however the slot
// was reassigned or its values changed in place meanwhile.
template <class T, class B>
class ParameterSnapshot {
 public:
  explicit ParameterSnapshot(Module<T, B>& module, const std::vector<std::string>& names = {}) : module_(&module) {
    const std::set<std::string> wanted(names.begin(), names.end());
    module.for_each_parameter([&](const std::string& name, Tensor<T, B>& p) {
      if (!wanted.empty() && !wanted.count(name)) return;
      saved_.push_back({name, p, p.contiguous_copy()});
    });
    check(wanted.empty() || saved_.size() == wanted.size(), "ParameterSnapshot", "asked for ", wanted.size(),
          " parameters, the module has ", saved_.size(), " of those names");
  }
  ParameterSnapshot(const ParameterSnapshot&) = delete;
  ParameterSnapshot& operator=(const ParameterSnapshot&) = delete;
  ~ParameterSnapshot() {
    if (module_) restore();
  }

  void restore() {
    std::map<std::string, const Saved*> by_name;
    for (const auto& s : saved_) by_name.emplace(s.name, &s);
    NoGradGuard no_grad;
    module_->for_each_parameter([&](const std::string& name, Tensor<T, B>& p) {
      auto found = by_name.find(name);
      if (found == by_name.end()) return;
      p = found->second->handle;
      p.copy_(found->second->values);
    });
  }
  // Keeps the current weights: the destructor no longer restores.
  void release() { module_ = nullptr; }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& s : saved_) out.push_back(s.name);
    return out;
  }

 private:
  struct Saved {
    std::string name;
    Tensor<T, B> handle;  // the parameter tensor itself
    Tensor<T, B> values;  // a copy of its values
  };
  Module<T, B>* module_;
  std::vector<Saved> saved_;
};

// Swaps `replacements` (name -> tensor of the parameter's shape) into the module's parameter
// slots while it lives; the destructor puts the original tensors back. Values are not copied:
// the module computes with the given tensors, so gradients flow to whatever they came from.
template <class T, class B>
class ParameterSubstitution {
 public:
  ParameterSubstitution(Module<T, B>& module, const StateDict<T, B>& replacements) : module_(&module) {
    std::size_t found = 0;
    module.for_each_parameter([&](const std::string& name, Tensor<T, B>& p) {
      auto it = replacements.find(name);
      if (it == replacements.end()) return;
      check(it->second.shape() == p.shape(), "functional_call", "replacement for '", name, "' has shape ",
            it->second.shape(), ", the parameter has ", p.shape());
      ++found;
    });
    if (found != replacements.size()) {
      std::set<std::string> names;
      module.for_each_parameter([&](const std::string& name, Tensor<T, B>&) { names.insert(name); });
      for (const auto& [name, tensor] : replacements)
        check(names.count(name) > 0, "functional_call", "the module has no parameter '", name, "'");
    }
    module.for_each_parameter([&](const std::string& name, Tensor<T, B>& p) {
      auto it = replacements.find(name);
      if (it == replacements.end()) return;
      originals_.emplace(name, p);
      p = it->second;
    });
  }
  ParameterSubstitution(const ParameterSubstitution&) = delete;
  ParameterSubstitution& operator=(const ParameterSubstitution&) = delete;
  ~ParameterSubstitution() {
    module_->for_each_parameter([&](const std::string& name, Tensor<T, B>& p) {
      if (auto it = originals_.find(name); it != originals_.end()) p = it->second;
    });
  }

 private:
  Module<T, B>* module_;
  StateDict<T, B> originals_;
};

// Runs f() with the module's named parameters replaced (ParameterSubstitution) and returns
// what f returns; the originals are back afterwards, also when f throws.
template <class T, class B, class F>
auto functional_call(Module<T, B>& module, const StateDict<T, B>& replacements, F&& f) {
  ParameterSubstitution<T, B> swapped(module, replacements);
  return f();
}

}  // namespace tensortape::nn
