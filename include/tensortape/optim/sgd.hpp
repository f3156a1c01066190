// SGD with optional momentum, dampening, Nesterov momentum and L2 weight decay (PyTorch's
// torch.optim.SGD update rule).
//
//   tt::optim::SGD<float, Cpu> sgd(model.parameters(), {.lr = 0.1, .momentum = 0.9, .nesterov = true});
//   sgd.zero_grad();
//   tt::backward(loss);
//   sgd.step();
//
// Per parameter p with gradient g:
//   g <- g + weight_decay * p
//   buf <- g (first step), else momentum * buf + (1 - dampening) * g      (when momentum != 0)
//   g <- g + momentum * buf (nesterov), else buf                          (when momentum != 0)
//   p <- p - lr * g
// State: "momentum_buffer" (when momentum != 0).
#pragma once

#include "tensortape/optim/optimizer.hpp"

namespace tensortape::optim {

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

template <class T, class B>
class SGD : public Optimizer<T, B> {
 public:
  using TensorType = Tensor<T, B>;

  SGD(std::vector<TensorType> params, SGDOptions options = {})
      : Optimizer<T, B>("SGD", std::move(params), options.lr), options_(options) {
    const auto& o = options_;
    detail::check_hyper(o.momentum >= 0.0 && std::isfinite(o.momentum), "SGD", "momentum", o.momentum,
                        "must be finite and >= 0");
    detail::check_hyper(std::isfinite(o.dampening), "SGD", "dampening", o.dampening, "must be finite");
    detail::check_hyper(o.weight_decay >= 0.0 && std::isfinite(o.weight_decay), "SGD", "weight_decay",
                        o.weight_decay, "must be finite and >= 0");
    if (o.nesterov) {
      detail::check_hyper(o.momentum > 0.0, "SGD", "momentum", o.momentum, "nesterov needs momentum > 0");
      detail::check_hyper(o.dampening == 0.0, "SGD", "dampening", o.dampening, "nesterov needs dampening 0");
    }
  }

  const SGDOptions& options() const { return options_; }

  void step() override {
    const auto& o = options_;
    const T neg_lr = static_cast<T>(-this->lr());
    this->for_each_update([&](std::size_t i, TensorType& p, const TensorType& grad) {
      TensorType d = o.weight_decay != 0.0 ? grad + p.detach() * o.weight_decay : grad;
      if (o.momentum != 0.0) {
        if (!this->has_state(i, "momentum_buffer")) {
          this->set_state(i, "momentum_buffer", d.contiguous_copy());
        } else {
          detail::scale_add_(this->state(i, "momentum_buffer"), o.momentum, d, 1.0 - o.dampening);
        }
        const TensorType& buf = this->state(i, "momentum_buffer");
        d = o.nesterov ? d + buf * o.momentum : buf;
      }
      p.add_(d, neg_lr);
    });
  }

 protected:
  std::vector<std::string> state_keys() const override {
    if (options_.momentum != 0.0) return {"momentum_buffer"};
    return {};
  }

 private:
  SGDOptions options_;
};

}  // namespace tensortape::optim
