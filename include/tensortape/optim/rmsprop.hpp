// RMSprop (Hinton) with optional momentum, centering and L2 weight decay (PyTorch's
// torch.optim.RMSprop update rule).
//
//   tt::optim::RMSprop<float, Cpu> rmsprop(model.parameters(), {.lr = 1e-2, .alpha = 0.99, .centered = true});
//   rmsprop.zero_grad();
//   tt::backward(loss);
//   rmsprop.step();
//
// Per parameter p with gradient g:
//   g <- g + weight_decay * p
//   s <- alpha * s + (1 - alpha) * g^2
//   a <- alpha * a + (1 - alpha) * g                                     (centered)
//   denom <- sqrt(s - a^2) + eps (centered), else sqrt(s) + eps
//   buf <- momentum * buf + g / denom;  p <- p - lr * buf                (momentum > 0)
//   p <- p - lr * g / denom                                              (otherwise)
// State: "square_avg" (s), "grad_avg" (a, when centered), "momentum_buffer" (when momentum > 0).
#pragma once

#include "tensortape/optim/optimizer.hpp"

namespace tensortape::optim {

struct RMSpropOptions {
  double lr = 1e-2;
  double alpha = 0.99;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double momentum = 0.0;
  bool centered = false;
};

template <class T, class B>
class RMSprop : public Optimizer<T, B> {
 public:
  using TensorType = Tensor<T, B>;

  RMSprop(std::vector<TensorType> params, RMSpropOptions options = {})
      : Optimizer<T, B>("RMSprop", std::move(params), options.lr), options_(options) {
    const auto& o = options_;
    detail::check_hyper(o.alpha >= 0.0 && o.alpha <= 1.0, "RMSprop", "alpha", o.alpha, "must be in [0, 1]");
    detail::check_hyper(o.eps >= 0.0 && std::isfinite(o.eps), "RMSprop", "eps", o.eps, "must be finite and >= 0");
    detail::check_hyper(o.weight_decay >= 0.0 && std::isfinite(o.weight_decay), "RMSprop", "weight_decay",
                        o.weight_decay, "must be finite and >= 0");
    detail::check_hyper(o.momentum >= 0.0 && std::isfinite(o.momentum), "RMSprop", "momentum", o.momentum,
                        "must be finite and >= 0");
  }

  const RMSpropOptions& options() const { return options_; }

  void step() override {
    const auto& o = options_;
    const T neg_lr = static_cast<T>(-this->lr());
    this->for_each_update([&](std::size_t i, TensorType& p, const TensorType& grad) {
      const TensorType g = o.weight_decay != 0.0 ? grad + p.detach() * o.weight_decay : grad;
      TensorType& square_avg = this->state(i, "square_avg");
      detail::scale_add_(square_avg, o.alpha, g * g, 1.0 - o.alpha);
      TensorType denom;
      if (o.centered) {
        TensorType& grad_avg = this->state(i, "grad_avg");
        detail::scale_add_(grad_avg, o.alpha, g, 1.0 - o.alpha);
        denom = tensortape::sqrt(square_avg - grad_avg * grad_avg) + o.eps;
      } else {
        denom = tensortape::sqrt(square_avg) + o.eps;
      }
      if (o.momentum > 0.0) {
        TensorType& buf = this->state(i, "momentum_buffer");
        detail::scale_add_(buf, o.momentum, g / denom, 1.0);
        p.add_(buf, neg_lr);
      } else {
        p.add_(g / denom, neg_lr);
      }
    });
  }

 protected:
  std::vector<std::string> state_keys() const override {
    std::vector<std::string> keys = {"square_avg"};
    if (options_.centered) keys.push_back("grad_avg");
    if (options_.momentum > 0.0) keys.push_back("momentum_buffer");
    return keys;
  }

 private:
  RMSpropOptions options_;
};

}  // namespace tensortape::optim
