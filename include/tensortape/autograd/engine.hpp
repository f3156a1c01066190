// backward() and grad(): reverse-mode passes over the recorded graph.
//
//   tt::backward(loss);                                    // fills .grad() of leaves
//   auto [dx] = tt::grad<2>({loss}, {x});                  // returns dloss/dx, .grad untouched
//   auto gx = tt::grad({loss}, {x}, {}, /*create_graph=*/true)[0];
//   tt::backward(tt::sum(gx * gx));                        // gradient of a gradient
//
// With create_graph=false the rules run with grad mode off: nothing is recorded (the fast
// path). With create_graph=true they are recorded, so the result can be differentiated again.
// Unless retain_graph, a pass frees the saved tensors of the nodes it ran; running backward
// through them again raises an Error naming the op.
#pragma once

#include <array>
#include <unordered_map>
#include <unordered_set>

#include "tensortape/autograd/derivatives.hpp"

namespace tensortape {

namespace detail {

// Nothing but `t` holds its buffer (no other tensor, saved tensor or hook's copy), laid out
// contiguously: it may be written in place.
template <class T, class B>
bool sole_owner(const Tensor<T, B>& t) {
  return t.storage().use_count() == 1 && t.is_contiguous();
}

template <class T, class B>
class BackwardPass {
 public:
  using Meta = AutogradMeta<T, B>;
  using NodePtr = std::shared_ptr<Node<T, B>>;

  // targets: the tensors whose gradients are wanted; empty means every leaf requiring grad.
  BackwardPass(const std::vector<Tensor<T, B>>& targets, bool create_graph, bool retain_graph)
      : create_graph_(create_graph), retain_graph_(retain_graph), all_leaves_(targets.empty()) {
    for (const auto& target : targets) {
      target_metas_.insert(target.autograd_meta().get());
      if (target.grad_fn()) target_nodes_.insert(target.grad_fn().get());
    }
  }

  // Runs the pass from roots with seed gradients; returns the gradient reaching each target
  // meta and each leaf meta.
  std::unordered_map<const Meta*, Tensor<T, B>> run(const std::vector<Tensor<T, B>>& roots,
                                                    const std::vector<Tensor<T, B>>& seeds) {
    std::unordered_map<const Meta*, Tensor<T, B>> results;
    std::vector<NodePtr> order;
    for (std::size_t i = 0; i < roots.size(); ++i) {
      const auto& root = roots[i];
      if (target_metas_.count(root.autograd_meta().get()) && !root.grad_fn()) {
        accumulate(results[root.autograd_meta().get()], seeds[i]);
      }
      if (auto node = root.grad_fn(); node && wanted(node.get())) {
        accumulate(pending_[node.get()], seeds[i]);
        collect(node, order);
      }
    }
    GradModeGuard mode(create_graph_);
    // `order` is a reverse-topological post-order: walk it backwards so a node runs after all
    // of its consumers have delivered their gradient.
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      Node<T, B>& node = **it;
      auto found = pending_.find(&node);
      if (found == pending_.end()) continue;
      Tensor<T, B> grad = found->second;
      pending_.erase(found);
      for (const auto& hook : node.hooks) hook(grad);
      if (target_nodes_.count(&node)) node_results_[&node] = grad;
      check(grad.shape() == node.output_shape, node.name, "gradient of shape ", grad.shape(),
            " reached an output of shape ", node.output_shape);
      check(!node.released, node.name, "backward through a graph that was already freed; pass retain_graph=true to "
            "the first backward/grad call if you need to run it twice");
      node.wanted.assign(node.inputs.size(), false);
      bool any = false;
      for (std::size_t i = 0; i < node.inputs.size(); ++i) {
        node.wanted[i] = input_wanted(node.inputs[i].meta.get());
        any = any || node.wanted[i];
      }
      if (!any) continue;
      if (add_into_window(node, grad, results)) {
        if (!retain_graph_) node.release();
        continue;
      }
      auto input_grads = node.rule(node, grad);
      if (AnomalyMode::enabled()) check_backward_anomaly(node, grad, input_grads);
      for (std::size_t i = 0; i < node.inputs.size(); ++i) {
        if (!node.wanted[i] || i >= input_grads.size() || !input_grads[i].defined()) continue;
        const auto& input = node.inputs[i];
        accumulate(waiting_gradient(input, results), sum_to(input_grads[i], input.shape));
      }
      if (!retain_graph_) node.release();
    }
    return results;
  }

  // Gradient captured for a non-leaf target (by its producing node).
  Tensor<T, B> node_result(const Node<T, B>* node) const {
    auto found = node_results_.find(node);
    return found == node_results_.end() ? Tensor<T, B>() : found->second;
  }

 private:
  bool input_wanted(const Meta* meta) const {
    if (!meta) return false;
    if (meta->grad_fn) return wanted(meta->grad_fn.get());
    return leaf_wanted(meta);
  }
  bool leaf_wanted(const Meta* meta) const { return all_leaves_ ? meta->requires_grad : target_metas_.count(meta) > 0; }

  // A node is wanted when a target is reachable from it (memoised). Iterative, like collect():
  // the recursive form overflowed the stack on a 20000-op chain under AddressSanitizer.
  bool wanted(const Node<T, B>* root) const {
    if (auto found = wanted_memo_.find(root); found != wanted_memo_.end()) return found->second;
    // Each node on the stack holds in the memo what it has found so far; the graph is acyclic,
    // so an input already in the memo is finished.
    std::vector<std::pair<const Node<T, B>*, std::size_t>> stack{{root, 0}};
    wanted_memo_[root] = target_nodes_.count(root) > 0;
    while (!stack.empty()) {
      auto& [node, next_input] = stack.back();
      if (next_input < node->inputs.size()) {
        const Meta* meta = node->inputs[next_input++].meta.get();
        if (!meta) continue;
        if (!meta->grad_fn) {
          if (leaf_wanted(meta)) wanted_memo_[node] = true;
          continue;
        }
        const Node<T, B>* input = meta->grad_fn.get();
        if (auto found = wanted_memo_.find(input); found != wanted_memo_.end()) {
          if (found->second) wanted_memo_[node] = true;
          continue;
        }
        wanted_memo_[input] = target_nodes_.count(input) > 0;
        stack.push_back({input, 0});
      } else {
        const bool result = wanted_memo_[node];
        stack.pop_back();
        if (result && !stack.empty()) wanted_memo_[stack.back().first] = true;
      }
    }
    return wanted_memo_[root];
  }

  // Depth-first post-order of wanted nodes (iterative, so deep graphs cannot overflow the stack).
  void collect(const NodePtr& root, std::vector<NodePtr>& order) {
    if (visited_.count(root.get())) return;
    std::vector<std::pair<NodePtr, std::size_t>> stack{{root, 0}};
    visited_.insert(root.get());
    while (!stack.empty()) {
      auto& [node, next_input] = stack.back();
      if (next_input < node->inputs.size()) {
        const auto& meta = node->inputs[next_input++].meta;
        if (meta && meta->grad_fn && !visited_.count(meta->grad_fn.get()) && wanted(meta->grad_fn.get())) {
          visited_.insert(meta->grad_fn.get());
          stack.push_back({meta->grad_fn, 0});
        }
      } else {
        order.push_back(node);
        stack.pop_back();
      }
    }
  }

  // Anomaly mode's backward check: blames the rule when the gradient reaching its output was
  // finite, and says so when it was not (a non-finite seed, or one a hook wrote).
  static void check_backward_anomaly(const Node<T, B>& node, const Tensor<T, B>& grad_output,
                                     const std::vector<Tensor<T, B>>& input_grads) {
    for (std::size_t i = 0; i < input_grads.size() && i < node.inputs.size(); ++i) {
      if (!node.wanted[i] || !input_grads[i].defined()) continue;
      const auto counts = count_non_finite(input_grads[i]);
      if (counts.first + counts.second == 0) continue;
      const auto output_counts = count_non_finite(grad_output);
      check(output_counts.first + output_counts.second == 0, node.name,
            "anomaly mode (backward): the gradient reaching its output holds ", non_finite_summary(grad_output, output_counts),
            " (a non-finite grad_output, or one a hook changed)");
      fail(node.name, "anomaly mode (backward): its derivative rule produced ", non_finite_summary(input_grads[i], counts),
           " in the gradient of input ", i, ", from a finite gradient of its output");
    }
  }

  // narrow's gradient is g inside a window of zeros. Without create_graph, when the input's
  // gradient already waits in a buffer no one else holds, g is added into that buffer's window
  // instead: the same sums where g lands, and no full-size tensor of zeros to add elsewhere. An
  // empty slot looked up here is filled at once: narrow's rule runs next, for an input that wants it.
  bool add_into_window(const Node<T, B>& node, const Tensor<T, B>& g, std::unordered_map<const Meta*, Tensor<T, B>>& results) {
    if (node.op != Op::Narrow || create_graph_ || AnomalyMode::enabled() || !node.wanted[0]) return false;
    const auto& input = node.inputs[0];
    Tensor<T, B>& slot = waiting_gradient(input, results);
    if (!slot.defined() || !sole_owner(slot) || slot.shape() != input.shape) return false;
    const auto window = slot.narrow(node.ints[0], node.ints[1], g.shape()[static_cast<std::size_t>(node.ints[0])]);
    const auto sum = window + g;
    if (sum.numel() > 0) B::copy_strided(sum.view(), {window.data(), window.shape(), window.strides()});
    return true;
  }

  // Where the gradient for `input` gathers: its node's pending slot, or a leaf's result.
  Tensor<T, B>& waiting_gradient(const typename Node<T, B>::Input& input, std::unordered_map<const Meta*, Tensor<T, B>>& results) {
    return input.meta->grad_fn ? pending_[input.meta->grad_fn.get()] : results[input.meta.get()];
  }

  // slot += grad. Without create_graph, a slot whose buffer nothing else holds (another slot, a
  // rule's saved tensor, a hook's copy) takes the sum in place: the same additions, no new tensor.
  void accumulate(Tensor<T, B>& slot, const Tensor<T, B>& grad) const {
    if (!slot.defined()) {
      slot = grad;
    } else if (!create_graph_ && sole_owner(slot) && slot.shape() == grad.shape()) {
      B::binary(backend::Binary::Add, slot.view(), grad.view(), slot.data());
    } else {
      slot = slot + grad;
    }
  }

  bool create_graph_, retain_graph_, all_leaves_;
  std::unordered_set<const Meta*> target_metas_;
  std::unordered_set<const Node<T, B>*> target_nodes_;
  mutable std::unordered_map<const Node<T, B>*, bool> wanted_memo_;
  std::unordered_set<const Node<T, B>*> visited_;
  std::unordered_map<const Node<T, B>*, Tensor<T, B>> pending_;
  std::unordered_map<const Node<T, B>*, Tensor<T, B>> node_results_;
};

template <class T, class B>
std::vector<Tensor<T, B>> seed_gradients(const std::vector<Tensor<T, B>>& outputs, const std::vector<Tensor<T, B>>& given,
                                         const char* op) {
  check(given.empty() || given.size() == outputs.size(), op, given.size(), " grad_outputs for ", outputs.size(), " outputs");
  std::vector<Tensor<T, B>> seeds;
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const auto& output = outputs[i];
    check(output.defined(), op, "output ", i, " is undefined");
    check(output.requires_grad(), op, "output ", i, " of shape ", output.shape(),
          " does not require grad (no input of the computation requires grad, or it ran under no_grad)");
    if (!given.empty() && given[i].defined()) {
      check(given[i].shape() == output.shape(), op, "grad_output ", given[i].shape(), " does not match output ", output.shape());
      seeds.push_back(given[i]);
    } else {
      check(output.numel() == 1, op, "implicit gradient only for one-element outputs; output ", i, " has shape ",
            output.shape(), " (pass grad_outputs)");
      seeds.push_back(ones<T, B>(output.shape()));
    }
  }
  return seeds;
}

}  // namespace detail

// Accumulates d(loss)/d(leaf) into .grad() of every leaf that requires grad.
template <class T, class B>
void backward(const Tensor<T, B>& loss, const Tensor<T, B>& grad_output = {}, bool retain_graph = false,
              bool create_graph = false) {
  const std::vector<Tensor<T, B>> roots{loss};
  auto seeds = detail::seed_gradients(roots, {grad_output}, "backward");
  detail::BackwardPass<T, B> pass({}, create_graph, retain_graph || create_graph);
  auto leaf_grads = pass.run(roots, seeds);
  GradModeGuard mode(create_graph);
  for (auto& [meta_ptr, grad] : leaf_grads) {
    auto* meta = const_cast<AutogradMeta<T, B>*>(meta_ptr);
    for (const auto& hook : meta->hooks) hook(grad);
    if (meta->grad.defined()) {
      meta->grad = meta->grad + grad;
    } else if (create_graph) {
      meta->grad = grad;
    } else {
      // .grad must own its buffer: optimizers update it in place, and a rule may have handed
      // the same tensor (or a broadcast view of one) to several inputs.
      const bool whole_buffer = detail::sole_owner(grad) && grad.numel() == grad.storage()->size;
      meta->grad = whole_buffer ? grad.detach() : grad.contiguous_copy();
    }
  }
}

// Gradients of `outputs` w.r.t. `inputs` (leaves or intermediate tensors), weighted by
// grad_outputs (ones for one-element outputs when omitted). Leaves' .grad is not touched.
// An input the outputs do not depend on raises an Error unless allow_unused, which gives zeros.
template <class T, class B>
std::vector<Tensor<T, B>> grad(const std::vector<Tensor<T, B>>& outputs, const std::vector<Tensor<T, B>>& inputs,
                               const std::vector<Tensor<T, B>>& grad_outputs = {}, bool create_graph = false,
                               bool retain_graph = false, bool allow_unused = false) {
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    check(inputs[i].defined() && inputs[i].requires_grad(), "grad", "input ", i, " of shape ",
          inputs[i].defined() ? inputs[i].shape() : Shape{}, " does not require grad");
  }
  auto seeds = detail::seed_gradients(outputs, grad_outputs, "grad");
  detail::BackwardPass<T, B> pass(inputs, create_graph, retain_graph || create_graph);
  auto leaf_grads = pass.run(outputs, seeds);
  std::vector<Tensor<T, B>> result;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const auto& input = inputs[i];
    Tensor<T, B> g;
    if (input.grad_fn()) {
      g = pass.node_result(input.grad_fn().get());
    } else if (auto found = leaf_grads.find(input.autograd_meta().get()); found != leaf_grads.end()) {
      g = found->second;
    }
    if (!g.defined()) {
      check(allow_unused, "grad", "input ", i, " of shape ", input.shape(),
            " was not used to compute the outputs (pass allow_unused=true to get zeros)");
      g = zeros<T, B>(input.shape());
    }
    result.push_back(create_graph ? g : g.detach());
  }
  return result;
}

// Braced lists: tt::grad({loss}, {w, b}).
template <class T, class B>
std::vector<Tensor<T, B>> grad(std::initializer_list<Tensor<T, B>> outputs, std::initializer_list<Tensor<T, B>> inputs,
                               std::initializer_list<Tensor<T, B>> grad_outputs = {}, bool create_graph = false,
                               bool retain_graph = false, bool allow_unused = false) {
  return grad(std::vector<Tensor<T, B>>(outputs), std::vector<Tensor<T, B>>(inputs),
              std::vector<Tensor<T, B>>(grad_outputs), create_graph, retain_graph, allow_unused);
}

// The same with a fixed count, for structured bindings: auto [dw, db] = tt::grad<2>({loss}, {w, b}).
template <std::size_t N, class T, class B>
std::array<Tensor<T, B>, N> grad(std::initializer_list<Tensor<T, B>> outputs, std::initializer_list<Tensor<T, B>> inputs,
                                 std::initializer_list<Tensor<T, B>> grad_outputs = {}, bool create_graph = false) {
  check(inputs.size() == N, "grad", "asked for ", N, " gradients of ", inputs.size(), " inputs");
  auto list = grad(std::vector<Tensor<T, B>>(outputs), std::vector<Tensor<T, B>>(inputs),
                   std::vector<Tensor<T, B>>(grad_outputs), create_graph);
  std::array<Tensor<T, B>, N> out;
  for (std::size_t i = 0; i < N; ++i) out[i] = list[i];
  return out;
}

}  // namespace tensortape
