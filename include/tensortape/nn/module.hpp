// Module: a layer or model that owns named parameters (Hugging Face dotted names) and child
// modules. Subclasses list their own parameters and children; the base class does the rest.
//
//   struct Mlp : tt::nn::Module<float, Cpu> {
//     tt::nn::Linear<float, Cpu> fc1, fc2;
//     void for_each_child(const ChildVisitor& visit) override { visit("fc1", fc1); visit("fc2", fc2); }
//   };
//   for (auto& [name, p] : mlp.named_parameters()) ...    // "fc1.weight", "fc1.bias", ...
//   mlp.freeze();                                          // no parameter requires grad
//   auto edited = tt::nn::deep_copy(mlp);                  // independent weights
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "tensortape/core/tensor.hpp"
#include "tensortape/ops/inplace.hpp"

namespace tensortape::nn {

template <class T, class B>
class Module {
 public:
  using ParameterVisitor = std::function<void(const std::string& name, Tensor<T, B>& parameter)>;
  using ChildVisitor = std::function<void(const std::string& name, Module& child)>;

  Module() = default;
  Module(const Module&) = default;  // shallow: copies share parameter storage (see deep_copy)
  Module& operator=(const Module&) = default;
  virtual ~Module() = default;

  // This module's own parameters and its direct children, in a fixed order.
  virtual void for_each_own_parameter(const ParameterVisitor&) {}
  virtual void for_each_child(const ChildVisitor&) {}

  // Every parameter below this module with its dotted name, children first-to-last.
  void for_each_parameter(const ParameterVisitor& visit, const std::string& prefix = "") {
    for_each_own_parameter([&](const std::string& name, Tensor<T, B>& p) { visit(prefix + name, p); });
    for_each_child([&](const std::string& name, Module& child) { child.for_each_parameter(visit, prefix + name + "."); });
  }

  std::vector<std::pair<std::string, Tensor<T, B>>> named_parameters() {
    std::vector<std::pair<std::string, Tensor<T, B>>> out;
    for_each_parameter([&](const std::string& name, Tensor<T, B>& p) { out.emplace_back(name, p); });
    return out;
  }

  std::vector<Tensor<T, B>> parameters() {
    std::vector<Tensor<T, B>> out;
    for_each_parameter([&](const std::string&, Tensor<T, B>& p) { out.push_back(p); });
    return out;
  }

  std::int64_t parameter_count() {
    std::int64_t count = 0;
    for_each_parameter([&](const std::string&, Tensor<T, B>& p) { count += p.numel(); });
    return count;
  }

  // Frozen parameters do not require grad: gradient still flows through them to whatever
  // upstream does, and their weight-gradient work is skipped.
  void freeze() { set_requires_grad(false); }
  void unfreeze() { set_requires_grad(true); }
  void set_requires_grad(bool on) {
    for_each_parameter([&](const std::string&, Tensor<T, B>& p) { p.requires_grad_(on); });
  }
  void zero_grad() {
    for_each_parameter([&](const std::string&, Tensor<T, B>& p) { p.zero_grad(); });
  }

  // Training mode turns dropout on; it propagates to every child.
  void train(bool on = true) {
    training_ = on;
    for_each_child([&](const std::string&, Module& child) { child.train(on); });
  }
  void eval() { train(false); }
  bool training() const { return training_; }

 private:
  bool training_ = false;
};

// A copy of `module` whose parameters have their own storage (editors keep an unedited copy).
// requires_grad flags are kept.
template <class M>
M deep_copy(const M& module) {
  M copy = module;
  copy.for_each_parameter([](const std::string&, auto& p) {
    const bool wanted = p.requires_grad();
    p = p.contiguous_copy();
    if (wanted) p.requires_grad_();
  });
  return copy;
}

}  // namespace tensortape::nn
