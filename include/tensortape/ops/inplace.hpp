// In-place updates (optimizers, weight edits). They are not recorded; each bumps the storage
// version so a stale tensor saved for backward is caught. Use them under NoGradGuard on
// tensors that require grad.
//
//   { tt::NoGradGuard no_grad; w.add_(w.grad(), -lr); }
#pragma once

#include "tensortape/ops/elementwise.hpp"

namespace tensortape {

namespace detail {
template <class T, class B>
void check_inplace_allowed(const Tensor<T, B>& x, const char* op) {
  check(x.defined(), op, "undefined tensor");
  check(!(GradMode::enabled() && x.requires_grad()), op, "in-place change of a tensor of shape ", x.shape(),
        " that requires grad is not differentiable; do it under NoGradGuard");
}
}  // namespace detail

template <class T, class B>
Tensor<T, B>& Tensor<T, B>::copy_(const Tensor<T, B>& source) {
  detail::check_inplace_allowed(*this, "copy_");
  check(broadcast_shapes(source.shape(), shape(), "copy_") == shape(), "copy_", "source ", source.shape(),
        " does not broadcast to ", shape());
  if (numel() > 0) B::copy_strided(source.view_as(shape()), mutable_view());
  bump_version();
  return *this;
}

template <class T, class B>
Tensor<T, B>& Tensor<T, B>::fill_(T value) {
  detail::check_inplace_allowed(*this, "fill_");
  if (numel() > 0) {
    if (is_contiguous()) {
      B::fill(data(), numel(), value);
    } else {
      B::copy_strided(scalar_tensor<T, B>(value).view_as(shape()), mutable_view());
    }
  }
  bump_version();
  return *this;
}

template <class T, class B>
Tensor<T, B>& Tensor<T, B>::add_(const Tensor<T, B>& other, T alpha) {
  detail::check_inplace_allowed(*this, "add_");
  NoGradGuard no_grad;
  const auto scaled = alpha == T(1) ? other : other * static_cast<double>(alpha);
  return copy_(*this + scaled);
}

template <class T, class B>
Tensor<T, B>& Tensor<T, B>::mul_(T factor) {
  detail::check_inplace_allowed(*this, "mul_");
  NoGradGuard no_grad;
  return copy_(*this * static_cast<double>(factor));
}

}  // namespace tensortape
