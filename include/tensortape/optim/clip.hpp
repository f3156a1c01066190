// Gradient clipping over a parameter list (PyTorch's clip_grad_norm_ / clip_grad_value_).
//
//   tt::backward(loss);
//   double norm = tt::optim::clip_grad_norm_(model.parameters(), /*max_norm=*/1.0);
//   optimizer.step();
//
// clip_grad_norm_ computes the norm of all gradients together, as if concatenated into one
// vector (parameters whose grad() is undefined are skipped), and, when it exceeds max_norm,
// scales every gradient in place by max_norm / (norm + 1e-6). It returns the norm before
// clipping. A non-finite norm throws tensortape::Error when error_if_nonfinite; otherwise the
// gradients are scaled as PyTorch does (by 0 for an infinite norm, by NaN for a NaN norm).
// norm_type: 2 (Euclidean, the default), any p > 0, or infinity (largest absolute value).
#pragma once

#include <cmath>
#include <limits>
#include <vector>

#include "tensortape/core/error.hpp"
#include "tensortape/core/tensor.hpp"
#include "tensortape/ops/elementwise.hpp"
#include "tensortape/ops/inplace.hpp"
#include "tensortape/ops/reduce.hpp"

namespace tensortape::optim {

template <class T, class B>
double clip_grad_norm_(const std::vector<Tensor<T, B>>& params, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false) {
  check(max_norm >= 0.0 && !std::isnan(max_norm), "clip_grad_norm_", "invalid max_norm ", max_norm,
        " (must be >= 0)");
  check(norm_type > 0.0 && !std::isnan(norm_type), "clip_grad_norm_", "invalid norm_type ", norm_type,
        " (must be > 0 or infinity)");
  NoGradGuard no_grad;
  const bool is_inf = std::isinf(norm_type);
  // Accumulated on the backend in one scalar, so there is a single device-to-host read.
  Tensor<T, B> total;
  std::vector<Tensor<T, B>> grads;
  for (const auto& p : params) {
    const Tensor<T, B> g = p.grad();
    if (!g.defined()) continue;
    grads.push_back(g);
    if (g.numel() == 0) continue;
    Tensor<T, B> part;
    if (is_inf) {
      part = tensortape::max(tensortape::abs(g));
    } else if (norm_type == 2.0) {
      part = tensortape::sum(g * g);
    } else if (norm_type == 1.0) {
      part = tensortape::sum(tensortape::abs(g));
    } else {
      part = tensortape::sum(tensortape::pow(tensortape::abs(g), norm_type));
    }
    total = !total.defined() ? part : is_inf ? tensortape::maximum(total, part) : total + part;
  }
  if (grads.empty()) return 0.0;
  double norm = total.defined() ? static_cast<double>(total.item()) : 0.0;
  if (!is_inf) norm = norm_type == 2.0 ? std::sqrt(norm) : norm_type == 1.0 ? norm : std::pow(norm, 1.0 / norm_type);
  if (error_if_nonfinite) {
    check(std::isfinite(norm), "clip_grad_norm_", "the total norm of order ", norm_type, " of the gradients is ",
          norm, "; set error_if_nonfinite=false to clip anyway");
  }
  const double coefficient = max_norm / (norm + 1e-6);
  if (!(coefficient >= 1.0)) {  // also NaN, as PyTorch's clamp passes it through
    for (auto& g : grads) g.mul_(static_cast<T>(coefficient));
  }
  return norm;
}

// Clamps every defined gradient into [-clip_value, clip_value], in place.
template <class T, class B>
void clip_grad_value_(const std::vector<Tensor<T, B>>& params, double clip_value) {
  check(clip_value >= 0.0 && !std::isnan(clip_value), "clip_grad_value_", "invalid clip_value ", clip_value,
        " (must be >= 0)");
  NoGradGuard no_grad;
  for (const auto& p : params) {
    Tensor<T, B> g = p.grad();
    if (g.defined()) g.copy_(tensortape::clamp(g, -clip_value, clip_value));
  }
}

}  // namespace tensortape::optim
