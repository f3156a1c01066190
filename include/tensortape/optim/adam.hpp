// Adam (Kingma & Ba) with L2 weight decay, and AdamW (Loshchilov & Hutter) with decoupled weight
// decay; both with bias correction and optional AMSGrad (PyTorch's torch.optim.Adam / AdamW).
//
//   tt::optim::Adam<float, Cpu> adam(model.parameters(), {.lr = 1e-3, .betas = {0.9, 0.999}});
//   tt::optim::AdamW<float, Cpu> adamw(model.parameters(), {.lr = 1e-3, .weight_decay = 0.01});
//   adam.zero_grad();
//   tt::backward(loss);
//   adam.step();
//
// Per parameter p with gradient g, at its step t (1, 2, ...):
//   Adam:  g <- g + weight_decay * p          AdamW: p <- p * (1 - lr * weight_decay)
//   m <- beta1 * m + (1 - beta1) * g
//   v <- beta2 * v + (1 - beta2) * g^2
//   vmax <- max(vmax, v) (amsgrad; used in place of v below)
//   p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// State: "exp_avg" (m), "exp_avg_sq" (v), "max_exp_avg_sq" (vmax, with amsgrad).
#pragma once

#include <cmath>
#include <utility>

#include "tensortape/optim/optimizer.hpp"

namespace tensortape::optim {

struct AdamOptions {
  double lr = 1e-3;
  std::pair<double, double> betas = {0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 0.0;  // L2: added to the gradient
  bool amsgrad = false;
};

struct AdamWOptions {
  double lr = 1e-3;
  std::pair<double, double> betas = {0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 1e-2;  // decoupled: shrinks the parameter directly
  bool amsgrad = false;
};

namespace detail {

// Shared by Adam and AdamW; `decoupled` selects how weight decay is applied.
template <class T, class B>
class AdamBase : public Optimizer<T, B> {
 public:
  using TensorType = Tensor<T, B>;

  double beta1() const { return beta1_; }
  double beta2() const { return beta2_; }
  double eps() const { return eps_; }
  double weight_decay() const { return weight_decay_; }
  bool amsgrad() const { return amsgrad_; }

  void step() override {
    const double lr = this->lr();
    this->allocate_zero_state_together(state_keys());
    this->for_each_update([&](std::size_t i, TensorType& p, const TensorType& grad) {
      TensorType& m = this->state(i, "exp_avg");
      TensorType& v = this->state(i, "exp_avg_sq");
      const double t = static_cast<double>(this->step_count(i));
      const double correction1 = 1.0 - std::pow(beta1_, t);
      const double correction2_sqrt = std::sqrt(1.0 - std::pow(beta2_, t));
      // One fused pass (one kernel launch on a GPU, instead of about nine) where the buffers
      // allow it; AMSGrad and strided tensors take the composed route below, same formulas.
      if (!amsgrad_ && p.is_contiguous() && grad.is_contiguous() && m.is_contiguous() && v.is_contiguous()) {
        backend::AdamArgs args;
        args.lr = lr, args.beta1 = beta1_, args.beta2 = beta2_, args.eps = eps_, args.weight_decay = weight_decay_;
        args.decoupled = decoupled_, args.correction1 = correction1, args.correction2_sqrt = correction2_sqrt;
        B::adam_step(args, p.data(), grad.data(), m.data(), v.data(), p.numel());
        p.bump_version(), m.bump_version(), v.bump_version();
        return;
      }
      TensorType g = grad;
      if (weight_decay_ != 0.0) {
        if (decoupled_) {
          p.mul_(static_cast<T>(1.0 - lr * weight_decay_));
        } else {
          g = grad + p.detach() * weight_decay_;
        }
      }
      scale_add_(m, beta1_, g, 1.0 - beta1_);
      scale_add_(v, beta2_, g * g, 1.0 - beta2_);
      const TensorType* second = &v;
      if (amsgrad_) {
        TensorType& vmax = this->state(i, "max_exp_avg_sq");
        vmax.copy_(tensortape::maximum(vmax, v));
        second = &vmax;
      }
      // denom = sqrt(v) / sqrt(1 - beta2^t) + eps, in one affine kernel after the sqrt
      const TensorType denom = tensortape::affine(tensortape::sqrt(*second), 1.0 / correction2_sqrt, eps_);
      p.add_(m / denom, static_cast<T>(-lr / correction1));
    });
  }

 protected:
  AdamBase(const char* name, bool decoupled, std::vector<TensorType> params, double lr, std::pair<double, double> betas,
           double eps, double weight_decay, bool amsgrad)
      : Optimizer<T, B>(name, std::move(params), lr),
        decoupled_(decoupled),
        beta1_(betas.first),
        beta2_(betas.second),
        eps_(eps),
        weight_decay_(weight_decay),
        amsgrad_(amsgrad) {
    check_hyper(beta1_ >= 0.0 && beta1_ < 1.0, name, "beta1", beta1_, "must be in [0, 1)");
    check_hyper(beta2_ >= 0.0 && beta2_ < 1.0, name, "beta2", beta2_, "must be in [0, 1)");
    check_hyper(eps_ >= 0.0 && std::isfinite(eps_), name, "eps", eps_, "must be finite and >= 0");
    check_hyper(weight_decay_ >= 0.0 && std::isfinite(weight_decay_), name, "weight_decay", weight_decay_,
                "must be finite and >= 0");
  }

  std::vector<std::string> state_keys() const override {
    if (amsgrad_) return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    return {"exp_avg", "exp_avg_sq"};
  }

 private:
  bool decoupled_;
  double beta1_, beta2_, eps_, weight_decay_;
  bool amsgrad_;
};

}  // namespace detail

template <class T, class B>
class Adam : public detail::AdamBase<T, B> {
 public:
  Adam(std::vector<Tensor<T, B>> params, AdamOptions o = {})
      : detail::AdamBase<T, B>("Adam", false, std::move(params), o.lr, o.betas, o.eps, o.weight_decay, o.amsgrad) {}
};

template <class T, class B>
class AdamW : public detail::AdamBase<T, B> {
 public:
  AdamW(std::vector<Tensor<T, B>> params, AdamWOptions o = {})
      : detail::AdamBase<T, B>("AdamW", true, std::move(params), o.lr, o.betas, o.eps, o.weight_decay, o.amsgrad) {}
};

}  // namespace tensortape::optim
