// Basic layers: Linear, Embedding, RMSNorm (T5LayerNorm) and LayerNorm. Weights follow
// PyTorch / Hugging Face shapes and names, so checkpoints map one to one.
//
//   tt::nn::Linear<float, Cpu> proj(256, 64, rng, /*bias=*/false);   // weight (64, 256)
//   auto y = proj(x);                                                // (..., 256) -> (..., 64)
//   tt::nn::Embedding<float, Cpu> embed(32128, 512, rng);            // weight (V, D)
//   auto h = tt::nn::RMSNorm<float, Cpu>(512, 1e-6)(embed(ids));     // (B, S, D)
#pragma once

#include <cmath>
#include <functional>

#include "tensortape/nn/module.hpp"
#include "tensortape/ops/index.hpp"
#include "tensortape/ops/linalg.hpp"
#include "tensortape/ops/nn.hpp"

namespace tensortape::nn {

template <class T, class B>
class Linear : public Module<T, B> {
 public:
  Linear() = default;
  // Weights ~ N(0, init_std^2); init_std defaults to 1/sqrt(in_features).
  Linear(std::int64_t in_features, std::int64_t out_features, Rng& rng, bool bias = true, double init_std = -1.0) {
    const double std = init_std > 0 ? init_std : 1.0 / std::sqrt(static_cast<double>(in_features));
    weight = randn<T, B>({out_features, in_features}, rng, 0.0, std).requires_grad_();
    if (bias) this->bias = zeros<T, B>({out_features}).requires_grad_();
  }

  Tensor<T, B> operator()(const Tensor<T, B>& x) const {
    auto y = linear(x, weight, bias);
    if (forward_hook) forward_hook(x, y);
    return y;
  }

  void for_each_own_parameter(const typename Module<T, B>::ParameterVisitor& visit) override {
    visit("weight", weight);
    if (bias.defined()) visit("bias", bias);
  }

  Tensor<T, B> weight;  // (out, in)
  Tensor<T, B> bias;    // (out) or undefined
  // Called after each forward with its input (..., in) and output (..., out). With
  // output.register_hook it also sees the gradient reaching the output in a backward pass: the
  // two factors of the weight gradient (MEND edits with them). Copies of the layer share it.
  std::function<void(const Tensor<T, B>& input, const Tensor<T, B>& output)> forward_hook;
};

template <class T, class B>
class Embedding : public Module<T, B> {
 public:
  Embedding() = default;
  Embedding(std::int64_t vocab, std::int64_t dim, Rng& rng, double init_std = 1.0)
      : weight(randn<T, B>({vocab, dim}, rng, 0.0, init_std).requires_grad_()) {}

  Tensor<T, B> operator()(const Tensor<std::int64_t, B>& ids) const { return embedding(weight, ids); }

  void for_each_own_parameter(const typename Module<T, B>::ParameterVisitor& visit) override { visit("weight", weight); }

  Tensor<T, B> weight;  // (V, D)
};

// x * rsqrt(mean(x^2) + eps) * weight: no mean subtraction, no bias (T5LayerNorm).
template <class T, class B>
class RMSNorm : public Module<T, B> {
 public:
  RMSNorm() = default;
  RMSNorm(std::int64_t dim, double eps) : weight(ones<T, B>({dim}).requires_grad_()), eps(eps) {}

  Tensor<T, B> operator()(const Tensor<T, B>& x) const { return rms_norm(x, weight, eps); }

  void for_each_own_parameter(const typename Module<T, B>::ParameterVisitor& visit) override { visit("weight", weight); }

  Tensor<T, B> weight;  // (D)
  double eps = 1e-6;
};

template <class T, class B>
class LayerNorm : public Module<T, B> {
 public:
  LayerNorm() = default;
  LayerNorm(std::int64_t dim, double eps)
      : weight(ones<T, B>({dim}).requires_grad_()), bias(zeros<T, B>({dim}).requires_grad_()), eps(eps) {}

  Tensor<T, B> operator()(const Tensor<T, B>& x) const { return layer_norm(x, weight, bias, eps); }

  void for_each_own_parameter(const typename Module<T, B>::ParameterVisitor& visit) override {
    visit("weight", weight);
    visit("bias", bias);
  }

  Tensor<T, B> weight;  // (D)
  Tensor<T, B> bias;    // (D)
  double eps = 1e-5;
};

}  // namespace tensortape::nn
