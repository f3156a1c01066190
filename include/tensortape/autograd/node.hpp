// The pieces of the autograd tape: grad mode, the per-tensor autograd metadata, saved tensors
// with version checks, and Node — one recorded op with its inputs and derivative rule.
//
//   {
//     tt::NoGradGuard no_grad;          // nothing inside is recorded
//     weight.add_(update);
//   }
//   bool on = tt::GradMode::enabled();
//   {
//     tt::DetectAnomalyGuard anomaly;   // the first op to make a NaN/Inf throws, naming itself
//     tt::backward(loss);
//   }
//
// A Node is appended when an op runs with grad mode on and any input requires grad. Its rule
// is looked up in Derivative<Op::...> (autograd/derivatives.hpp — all rules in one file).
#pragma once

#include <atomic>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "tensortape/core/tensor.hpp"

namespace tensortape {

class GradMode {
 public:
  static bool enabled() { return enabled_ref(); }
  static void set_enabled(bool on) { enabled_ref() = on; }

 private:
  static bool& enabled_ref() {
    thread_local bool enabled = true;
    return enabled;
  }
};

// Sets grad mode for a scope and restores the previous mode on exit.
class GradModeGuard {
 public:
  explicit GradModeGuard(bool on) : previous_(GradMode::enabled()) { GradMode::set_enabled(on); }
  ~GradModeGuard() { GradMode::set_enabled(previous_); }
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;

 private:
  bool previous_;
};

class NoGradGuard : public GradModeGuard {
 public:
  NoGradGuard() : GradModeGuard(false) {}
};

// Anomaly mode: while on, every op recorded on the tape checks its output, and every backward
// rule the gradients it returns, for NaN and Inf, and throws an Error naming the first op that
// made one (forward or backward) — for finding where a NaN comes from. Each check copies the
// whole tensor to the host, so it is for debugging runs. Unlike grad mode it is process-wide,
// so work sharded over threads is checked too.
class AnomalyMode {
 public:
  static bool enabled() { return flag().load(std::memory_order_relaxed); }
  static void set_enabled(bool on) { flag().store(on, std::memory_order_relaxed); }

 private:
  static std::atomic<bool>& flag() {
    static std::atomic<bool> on{false};
    return on;
  }
};

// Turns anomaly mode on (or off) for a scope and restores the previous setting on exit.
class DetectAnomalyGuard {
 public:
  explicit DetectAnomalyGuard(bool on = true) : previous_(AnomalyMode::enabled()) { AnomalyMode::set_enabled(on); }
  ~DetectAnomalyGuard() { AnomalyMode::set_enabled(previous_); }
  DetectAnomalyGuard(const DetectAnomalyGuard&) = delete;
  DetectAnomalyGuard& operator=(const DetectAnomalyGuard&) = delete;

 private:
  bool previous_;
};

namespace detail {

// How many NaN and Inf values `x` holds (copies it to the host).
template <class T, class B>
std::pair<std::int64_t, std::int64_t> count_non_finite(const Tensor<T, B>& x) {
  std::int64_t nan = 0, inf = 0;
  for (const T value : x.to_vector()) {
    nan += std::isnan(value) ? 1 : 0;
    inf += std::isinf(value) ? 1 : 0;
  }
  return {nan, inf};
}

template <class T, class B>
std::string non_finite_summary(const Tensor<T, B>& x, std::pair<std::int64_t, std::int64_t> counts) {
  return std::to_string(counts.first) + " NaN and " + std::to_string(counts.second) + " Inf of the " +
         std::to_string(x.numel()) + " values of shape " + shape_str(x.shape());
}

// Anomaly mode's forward check of a recorded op: blames the op when its inputs were finite, and
// names the input otherwise (an input made on the tape was checked when it was made, so a
// non-finite one came from a leaf or from work done without grad).
template <class T, class B>
void check_forward_anomaly(const char* op, const Tensor<T, B>& output, const std::vector<const Tensor<T, B>*>& inputs) {
  const auto counts = count_non_finite(output);
  if (counts.first + counts.second == 0) return;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const auto input_counts = count_non_finite(*inputs[i]);
    if (input_counts.first + input_counts.second > 0)
      fail(op, "anomaly mode (forward): input ", i, " holds ", non_finite_summary(*inputs[i], input_counts),
           "; it was made off the tape (a leaf, or an op run without grad or before anomaly mode was on)");
  }
  fail(op, "anomaly mode (forward): produced ", non_finite_summary(output, counts), " in its output, from finite inputs");
}

}  // namespace detail

// Every differentiable op; Derivative<Op::X> holds its rule.
enum class Op {
  Add, Sub, Mul, Div, Affine, Pow, Exp, Log, Sqrt, Rsqrt, Abs, Clamp, Tanh, Sigmoid, Relu, Erf,
  GeluErf, GeluTanh, Maximum, Minimum, Where, Matmul, Sum, Max, Softmax, LogSoftmax, IndexSelect,
  IndexAdd, Reshape, Permute, Expand, Narrow, NarrowScatter, Concat, Contiguous,
  RmsNorm, CrossEntropy, BinaryCrossEntropyWithLogits,
};

// Primary template only; the specialisations live in autograd/derivatives.hpp.
template <Op K>
struct Derivative;

template <class T, class B>
struct AutogradMeta {
  bool requires_grad = false;              // set on leaves by requires_grad_()
  std::shared_ptr<Node<T, B>> grad_fn;     // the op that produced this tensor; null on leaves
  Tensor<T, B> grad;                       // accumulated by backward() on leaves
  std::vector<typename Tensor<T, B>::Hook> hooks;  // leaf hooks (non-leaf hooks live on grad_fn)
};

// A tensor kept for the backward pass. It remembers the storage version at save time, and an
// op's own output is held weakly (through its metadata) so the node does not own itself.
template <class T, class B>
class SavedTensor {
 public:
  SavedTensor(const Tensor<T, B>& tensor, bool is_output)
      : data_(tensor.detach()), version_(tensor.version()), is_output_(is_output) {
    if (is_output) {
      weak_meta_ = tensor.autograd_meta();
    } else {
      meta_ = tensor.autograd_meta();
    }
  }

  Tensor<T, B> unpack(const char* op) const {
    if (data_.version() != version_) {
      fail(op, "a tensor of shape ", data_.shape(), " saved for backward was modified in place (saved at version ",
           version_, ", now ", data_.version(), "); clone it before the in-place change or move the change after backward");
    }
    Tensor<T, B> tensor = data_;
    tensor.set_autograd_meta(is_output_ ? weak_meta_.lock() : meta_);
    return tensor;
  }

 private:
  Tensor<T, B> data_;
  std::uint64_t version_;
  bool is_output_;
  std::shared_ptr<AutogradMeta<T, B>> meta_;
  std::weak_ptr<AutogradMeta<T, B>> weak_meta_;
};

// Integer indices kept for the backward pass (index_select, index_add, embedding), with the
// same version check as SavedTensor: changing them in place after the forward would route the
// gradient to the wrong rows without a word.
template <class B>
class SavedIndex {
 public:
  explicit SavedIndex(const Tensor<std::int64_t, B>& index) : data_(index), version_(index.version()) {}
  const Tensor<std::int64_t, B>& unpack(const char* op) const {
    if (data_.version() != version_) {
      fail(op, "an index tensor of shape ", data_.shape(), " saved for backward was modified in place (saved at version ",
           version_, ", now ", data_.version(), "); clone it before the in-place change or move the change after backward");
    }
    return data_;
  }

 private:
  Tensor<std::int64_t, B> data_;
  std::uint64_t version_;
};

template <class T, class B>
struct Node {
  using Grads = std::vector<Tensor<T, B>>;
  using Rule = Grads (*)(const Node&, const Tensor<T, B>& grad_output);

  struct Input {
    std::shared_ptr<AutogradMeta<T, B>> meta;  // null when this input needs no gradient
    Shape shape;                               // the engine reduces broadcast grads to it
  };

  Op op;
  const char* name;
  Rule rule;
  std::vector<Input> inputs;
  Shape output_shape;
  // What the rule needs: saved tensors, integer arguments (axes, sizes), real arguments.
  std::vector<SavedTensor<T, B>> saved;
  std::vector<SavedIndex<B>> indices;
  std::vector<std::int64_t> ints;
  std::vector<double> reals;
  std::vector<typename Tensor<T, B>::Hook> hooks;
  // Set by the engine for the pass in progress: which inputs want a gradient this time.
  std::vector<bool> wanted;
  bool released = false;

  void save(const Tensor<T, B>& tensor) { saved.emplace_back(tensor, false); }
  void save_output(const Tensor<T, B>& tensor) { saved.emplace_back(tensor, true); }
  Tensor<T, B> saved_tensor(std::size_t i) const { return saved.at(i).unpack(name); }
  void save_index(const Tensor<std::int64_t, B>& index) { indices.emplace_back(index); }
  const Tensor<std::int64_t, B>& saved_index(std::size_t i) const { return indices.at(i).unpack(name); }
  bool needs(std::size_t i) const { return i < wanted.size() && wanted[i]; }
  void release() {
    saved.clear();
    indices.clear();
    released = true;
  }

  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  // Freeing a graph must not recurse along it (node -> input's metadata -> its node -> ...):
  // a 200000-op chain overflowed the stack. Inputs whose node only they keep alive are unlinked
  // one by one instead, each node dying with none such left; the list allocates only then.
  ~Node() {
    std::vector<std::shared_ptr<AutogradMeta<T, B>>> pending;
    unlink_sole_owners(*this, pending);
    while (!pending.empty()) {
      const auto node = std::move(pending.back()->grad_fn);
      pending.pop_back();
      unlink_sole_owners(*node, pending);
    }
  }

 private:
  static void unlink_sole_owners(Node& node, std::vector<std::shared_ptr<AutogradMeta<T, B>>>& pending) {
    for (auto& input : node.inputs) {
      const auto& meta = input.meta;
      if (meta && meta.use_count() == 1 && meta->grad_fn && meta->grad_fn.use_count() == 1)
        pending.push_back(std::move(input.meta));
    }
  }
};

// ---- Tensor's autograd members ----

template <class T, class B>
bool Tensor<T, B>::requires_grad() const {
  return meta_ && (meta_->requires_grad || meta_->grad_fn);
}

template <class T, class B>
Tensor<T, B>& Tensor<T, B>::requires_grad_(bool on) {
  static_assert(FloatingElement<T>, "only float and double tensors can require grad");
  check(!meta_ || !meta_->grad_fn, "requires_grad_",
        "only leaf tensors can change requires_grad; this one was produced by '",
        meta_ && meta_->grad_fn ? meta_->grad_fn->name : "", "' (detach() it first)");
  if (!meta_) meta_ = std::make_shared<AutogradMeta<T, B>>();
  meta_->requires_grad = on;
  return *this;
}

template <class T, class B>
bool Tensor<T, B>::is_leaf() const {
  return !meta_ || !meta_->grad_fn;
}

template <class T, class B>
Tensor<T, B> Tensor<T, B>::grad() const {
  return meta_ ? meta_->grad : Tensor<T, B>();
}

template <class T, class B>
void Tensor<T, B>::set_grad(const Tensor<T, B>& grad) const {
  check(meta_ != nullptr, "set_grad", "tensor of shape ", shape(), " does not require grad");
  meta_->grad = grad;
}

template <class T, class B>
void Tensor<T, B>::zero_grad() const {
  if (meta_) meta_->grad = Tensor<T, B>();
}

template <class T, class B>
std::shared_ptr<Node<T, B>> Tensor<T, B>::grad_fn() const {
  return meta_ ? meta_->grad_fn : nullptr;
}

template <class T, class B>
void Tensor<T, B>::register_hook(Hook hook) const {
  check(requires_grad(), "register_hook", "tensor of shape ", shape(), " does not require grad");
  if (meta_->grad_fn) {
    meta_->grad_fn->hooks.push_back(std::move(hook));
  } else {
    meta_->hooks.push_back(std::move(hook));
  }
}

// ---- recording ----

// Appends a node for op K producing `output` from `inputs`, when grad mode is on and some input
// requires grad; returns null (and records nothing) otherwise. The caller then saves what the
// rule needs on the returned node.
template <Op K, class T, class B>
std::shared_ptr<Node<T, B>> record(const char* name, Tensor<T, B>& output, const std::vector<const Tensor<T, B>*>& inputs) {
  if constexpr (!FloatingElement<T>) {
    return nullptr;  // index tensors never carry gradients
  } else {
    if (!GradMode::enabled()) return nullptr;
    bool any_requires_grad = false;
    for (const auto* input : inputs) any_requires_grad = any_requires_grad || input->requires_grad();
    if (!any_requires_grad) return nullptr;

    auto node = std::make_shared<Node<T, B>>();
    node->op = K;
    node->name = name;
    node->rule = &Derivative<K>::template backward<T, B>;
    node->output_shape = output.shape();
    for (const auto* input : inputs) {
      node->inputs.push_back({input->requires_grad() ? input->autograd_meta() : nullptr, input->shape()});
    }
    auto meta = std::make_shared<AutogradMeta<T, B>>();
    meta->grad_fn = node;
    output.set_autograd_meta(std::move(meta));
    if (AnomalyMode::enabled()) detail::check_forward_anomaly(name, output, inputs);
    return node;
  }
}

template <Op K, class T, class B>
std::shared_ptr<Node<T, B>> record(const char* name, Tensor<T, B>& output,
                                   std::initializer_list<const Tensor<T, B>*> inputs) {
  return record<K>(name, output, std::vector<const Tensor<T, B>*>(inputs));
}

}  // namespace tensortape
