// Tensor<T, Backend>: shared storage owned by the backend plus a Layout (shape, strides,
// offset). Copies of a Tensor are handles to the same data; view ops share storage.
//
//   using Cpu = tt::backend::Eigen;
//   auto x = tt::from_vector<float, Cpu>({2, 3}, {1, 2, 3, 4, 5, 6});   // (2, 3)
//   auto y = x.transpose(0, 1);             // (3, 2) view, no copy
//   std::vector<float> host = y.to_vector(); // {1, 4, 2, 5, 3, 6}
//   auto w = tt::randn<float, Cpu>({3, 4}, rng).requires_grad_();
//
// T is float or double for differentiable tensors; std::int64_t tensors hold indices and
// labels (storage, views and host copies only).
#pragma once

#include <atomic>
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <type_traits>
#include <vector>

#include "tensortape/backend/concept.hpp"
#include "tensortape/core/counters.hpp"
#include "tensortape/core/error.hpp"
#include "tensortape/core/rng.hpp"
#include "tensortape/core/shape.hpp"

namespace tensortape {

template <class T, class B>
struct AutogradMeta;
template <class T, class B>
struct Node;

template <class T>
concept FloatingElement = std::same_as<T, float> || std::same_as<T, double>;

template <class T>
inline constexpr const char* dtype_name = std::same_as<T, float> ? "float32" : std::same_as<T, double> ? "float64" : "int64";

// A buffer owned by backend B. The version counter is bumped by every in-place write, so
// autograd can tell when a tensor saved for backward has gone stale (PyTorch's TensorImpl).
template <class T, class B>
struct Storage {
  explicit Storage(std::int64_t n) : data(B::template allocate<T>(n)), size(n) {
    counters().storage_allocated(n * static_cast<std::int64_t>(sizeof(T)));
  }
  ~Storage() {
    B::template deallocate<T>(data, size);
    counters().storage_freed(size * static_cast<std::int64_t>(sizeof(T)));
  }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  T* data;
  std::int64_t size;
  std::uint64_t version = 0;
};

template <class T, class B>
class Tensor {
 public:
  using value_type = T;
  using backend_type = B;
  using Hook = std::function<void(const Tensor&)>;

  Tensor() = default;
  Tensor(std::shared_ptr<Storage<T, B>> storage, Layout layout)
      : storage_(std::move(storage)), layout_(std::move(layout)) {}

  // ---- layout ----
  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return layout_.shape; }
  const Shape& strides() const { return layout_.strides; }
  const Layout& layout() const { return layout_; }
  std::int64_t dim() const { return static_cast<std::int64_t>(layout_.rank()); }
  std::int64_t size(std::int64_t axis) const { return layout_.shape[wrap_axis(axis, layout_.rank(), "size")]; }
  std::int64_t numel() const { return layout_.numel(); }
  bool is_contiguous() const { return layout_.is_contiguous(); }

  // ---- raw access for ops and kernels (layers never use these) ----
  const std::shared_ptr<Storage<T, B>>& storage() const { return storage_; }
  T* data() const { return storage_ ? storage_->data + layout_.offset : nullptr; }
  backend::ConstView<T> view() const { return {data(), layout_.shape, layout_.strides}; }
  backend::ConstView<T> view_as(const Shape& broadcast_shape) const {
    const Layout expanded = layout_.expanded(broadcast_shape);
    return {data(), expanded.shape, expanded.strides};
  }
  backend::StridedView<T> mutable_view() const { return {data(), layout_.shape, layout_.strides}; }
  std::uint64_t version() const { return storage_ ? storage_->version : 0; }
  void bump_version() const {
    if (storage_) ++storage_->version;
  }
  bool shares_storage_with(const Tensor& other) const { return storage_ == other.storage_; }

  // ---- host access ----
  std::vector<T> to_vector() const {
    std::vector<T> host(static_cast<std::size_t>(numel()));
    if (host.empty()) return host;
    if (is_contiguous()) {
      B::copy_to_host(data(), numel(), host.data());
    } else {
      Tensor packed = contiguous_copy();
      B::copy_to_host(packed.data(), numel(), host.data());
    }
    return host;
  }
  T item() const {
    check(numel() == 1, "item", "needs a tensor with one element, got shape ", shape());
    return to_vector()[0];
  }

  // ---- autograd (see autograd/node.hpp) ----
  bool requires_grad() const;
  Tensor& requires_grad_(bool on = true);
  bool is_leaf() const;
  Tensor grad() const;
  void set_grad(const Tensor& grad) const;
  void zero_grad() const;
  Tensor detach() const { return Tensor(storage_, layout_); }
  std::shared_ptr<Node<T, B>> grad_fn() const;
  // Called with the gradient w.r.t. this tensor whenever a backward pass computes it.
  void register_hook(Hook hook) const;
  const std::shared_ptr<AutogradMeta<T, B>>& autograd_meta() const { return meta_; }
  void set_autograd_meta(std::shared_ptr<AutogradMeta<T, B>> meta) { meta_ = std::move(meta); }

  // ---- views and shape ops (differentiable; defined in ops/views.hpp) ----
  Tensor reshape(Shape shape) const;
  Tensor flatten() const { return reshape({numel()}); }
  Tensor transpose(std::int64_t a, std::int64_t b) const;
  Tensor t() const { return transpose(-2, -1); }
  Tensor permute(std::vector<std::int64_t> order) const;
  Tensor narrow(std::int64_t axis, std::int64_t start, std::int64_t length) const;
  Tensor expand(Shape shape) const;
  Tensor unsqueeze(std::int64_t axis) const;
  Tensor squeeze(std::int64_t axis) const;
  Tensor contiguous() const;

  // ---- in place (not recorded; bump the version counter; defined in ops/inplace.hpp) ----
  Tensor& copy_(const Tensor& source);
  Tensor& fill_(T value);
  Tensor& zero_() { return fill_(T(0)); }
  Tensor& add_(const Tensor& other, T alpha = T(1));
  Tensor& mul_(T factor);

  // A contiguous copy without autograd (kernels use it to pack inputs).
  Tensor contiguous_copy() const {
    Tensor out(std::make_shared<Storage<T, B>>(numel()), Layout::contiguous(shape()));
    if (numel() > 0) B::copy_strided(view(), out.mutable_view());
    return out;
  }

 private:
  std::shared_ptr<Storage<T, B>> storage_;
  Layout layout_;
  std::shared_ptr<AutogradMeta<T, B>> meta_;
};

// ---- factories ----

template <class T, class B>
Tensor<T, B> empty(const Shape& shape) {
  for (auto d : shape) check(d >= 0, "empty", "negative dimension in shape ", shape);
  return Tensor<T, B>(std::make_shared<Storage<T, B>>(numel_of(shape)), Layout::contiguous(shape));
}

template <class T, class B>
Tensor<T, B> full(const Shape& shape, T value) {
  auto out = empty<T, B>(shape);
  if (out.numel() > 0) B::fill(out.data(), out.numel(), value);
  return out;
}

template <class T, class B>
Tensor<T, B> zeros(const Shape& shape) { return full<T, B>(shape, T(0)); }

template <class T, class B>
Tensor<T, B> ones(const Shape& shape) { return full<T, B>(shape, T(1)); }

template <class T, class B>
Tensor<T, B> scalar_tensor(T value) { return full<T, B>({}, value); }

template <class T, class B>
Tensor<T, B> from_vector(const Shape& shape, const std::vector<T>& values) {
  auto out = empty<T, B>(shape);
  check(static_cast<std::int64_t>(values.size()) == out.numel(), "from_vector", values.size(),
        " values do not fill shape ", shape, " (", out.numel(), " elements)");
  if (out.numel() > 0) B::copy_from_host(values.data(), out.numel(), out.data());
  return out;
}

template <class T, class B>
Tensor<T, B> randn(const Shape& shape, Rng& rng, double mean = 0.0, double stddev = 1.0) {
  std::vector<T> values(static_cast<std::size_t>(numel_of(shape)));
  for (auto& v : values) v = static_cast<T>(rng.normal(mean, stddev));
  return from_vector<T, B>(shape, values);
}

template <class T, class B>
Tensor<T, B> rand(const Shape& shape, Rng& rng, double low = 0.0, double high = 1.0) {
  std::vector<T> values(static_cast<std::size_t>(numel_of(shape)));
  for (auto& v : values) v = static_cast<T>(rng.uniform(low, high));
  return from_vector<T, B>(shape, values);
}

template <class T, class B>
Tensor<T, B> zeros_like(const Tensor<T, B>& x) { return zeros<T, B>(x.shape()); }
template <class T, class B>
Tensor<T, B> ones_like(const Tensor<T, B>& x) { return ones<T, B>(x.shape()); }
template <class T, class B>
Tensor<T, B> full_like(const Tensor<T, B>& x, T value) { return full<T, B>(x.shape(), value); }

// Converts element type (float <-> double) through the host; not recorded.
template <class To, class From, class B>
Tensor<To, B> cast(const Tensor<From, B>& x) {
  const auto host = x.to_vector();
  return from_vector<To, B>(x.shape(), std::vector<To>(host.begin(), host.end()));
}

// Moves data between backends through the host; not recorded.
template <class ToBackend, class T, class FromBackend>
Tensor<T, ToBackend> to_backend(const Tensor<T, FromBackend>& x) {
  return from_vector<T, ToBackend>(x.shape(), x.to_vector());
}

}  // namespace tensortape

#include "tensortape/autograd/node.hpp"
