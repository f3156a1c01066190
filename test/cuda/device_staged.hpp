// DeviceStaged<Device>: the primitives of a device backend on host buffers, so the CPU
// primitive tests (backend_primitives_test.cpp) run unchanged against it. Each call copies the
// memory its views can reach to the device, runs the device primitive, and copies the outputs'
// reach back (gaps included, so padding the kernel must not touch is checked too).
//
//   using Staged = test::DeviceStaged<tt::backend::Cuda>;
//   Staged::gemm(args, a_host, b_host, c_host);   // cuBLASLt on copies; c_host holds the result
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "tensortape/backend/cpu_common.hpp"
#include "tensortape/backend/cuda/backend.hpp"

namespace test {

template <class Device>
struct DeviceStaged {
  static constexpr const char* name = Device::name;

  static std::string unavailable_reason() {
    const std::string why = tensortape::backend::cuda::device_unavailable_reason();
    return why.empty() ? why : "no CUDA device visible (" + why + ")";
  }

  // Buffers the tests own live on the host.
  template <class T>
  static T* allocate(std::int64_t n) { return tensortape::backend::cpu::allocate<T>(n); }
  template <class T>
  static void deallocate(T* p, std::int64_t n) { tensortape::backend::cpu::deallocate(p, n); }
  template <class T>
  static void copy_to_host(const T* src, std::int64_t n, T* host) { tensortape::backend::cpu::copy(src, n, host); }
  template <class T>
  static void copy_from_host(const T* host, std::int64_t n, T* dst) { tensortape::backend::cpu::copy(host, n, dst); }

  template <class T>
  static void copy_strided(tensortape::backend::ConstView<T> src, tensortape::backend::StridedView<T> dst) {
    Staged<T> in(src.data, reach(src.shape, src.strides)), out(dst.data, reach(dst.shape, dst.strides));
    Device::copy_strided(tensortape::backend::ConstView<T>{in.device, src.shape, src.strides},
                         tensortape::backend::StridedView<T>{out.device, dst.shape, dst.strides});
    out.copy_back();
  }
  template <class T>
  static void fill(T* dst, std::int64_t n, T value) {
    Staged<T> out(dst, n);
    Device::fill(out.device, n, value);
    out.copy_back();
  }
  template <class T>
  static void unary(tensortape::backend::UnaryArgs args, tensortape::backend::ConstView<T> src, T* dst) {
    Staged<T> in(src.data, reach(src.shape, src.strides)), out(dst, tensortape::numel_of(src.shape));
    Device::unary(args, on_device(src, in), out.device);
    out.copy_back();
  }
  template <class T>
  static void binary(tensortape::backend::Binary op, tensortape::backend::ConstView<T> a,
                     tensortape::backend::ConstView<T> b, T* dst) {
    Staged<T> in_a(a.data, reach(a.shape, a.strides)), in_b(b.data, reach(b.shape, b.strides));
    Staged<T> out(dst, tensortape::numel_of(a.shape));
    Device::binary(op, on_device(a, in_a), on_device(b, in_b), out.device);
    out.copy_back();
  }
  template <class T>
  static void where(tensortape::backend::ConstView<T> condition, tensortape::backend::ConstView<T> a,
                    tensortape::backend::ConstView<T> b, T* dst) {
    Staged<T> in_c(condition.data, reach(condition.shape, condition.strides));
    Staged<T> in_a(a.data, reach(a.shape, a.strides)), in_b(b.data, reach(b.shape, b.strides));
    Staged<T> out(dst, tensortape::numel_of(a.shape));
    Device::where(on_device(condition, in_c), on_device(a, in_a), on_device(b, in_b), out.device);
    out.copy_back();
  }
  template <class T>
  static void reduce(tensortape::backend::Reduce op, const T* src, std::int64_t outer, std::int64_t n,
                     std::int64_t inner, T* dst) {
    Staged<T> in(src, outer * n * inner), out(dst, outer * inner);
    Device::reduce(op, in.device, outer, n, inner, out.device);
    out.copy_back();
  }
  template <class T>
  static void softmax(const T* src, std::int64_t rows, std::int64_t cols, T* dst, bool log) {
    Staged<T> in(src, rows * cols), out(dst, rows * cols);
    Device::softmax(in.device, rows, cols, out.device, log);
    out.copy_back();
  }
  template <class T>
  static void gemm(const tensortape::backend::GemmArgs& g, const T* a, const T* b, T* c) {
    const std::int64_t a_rows = g.trans_a ? g.k : g.m, a_cols = g.trans_a ? g.m : g.k;  // as stored
    const std::int64_t b_rows = g.trans_b ? g.n : g.k, b_cols = g.trans_b ? g.k : g.n;
    Staged<T> in_a(a, matrix_reach(a_rows, a_cols, g.lda, g.stride_a, g.batch));
    Staged<T> in_b(b, matrix_reach(b_rows, b_cols, g.ldb, g.stride_b, g.batch));
    Staged<T> out(c, matrix_reach(g.m, g.n, g.ldc, g.stride_c, g.batch));
    Device::gemm(g, in_a.device, in_b.device, out.device);
    out.copy_back();
  }
  template <class T>
  static void index_select(const T* src, std::int64_t outer, std::int64_t dim, std::int64_t inner,
                           const std::int64_t* idx, std::int64_t count, T* dst) {
    Staged<T> in(src, outer * dim * inner), out(dst, outer * count * inner);
    Staged<std::int64_t> indices(idx, count);
    Device::index_select(in.device, outer, dim, inner, indices.device, count, out.device);
    out.copy_back();
  }
  template <class T>
  static void index_add(const T* src, std::int64_t outer, std::int64_t count, std::int64_t inner,
                        const std::int64_t* idx, std::int64_t dim, T* dst) {
    Staged<T> in(src, outer * count * inner), out(dst, outer * dim * inner);
    Staged<std::int64_t> indices(idx, count);
    Device::index_add(in.device, outer, count, inner, indices.device, dim, out.device);
    out.copy_back();
  }
  template <class T>
  static void adam_step(const tensortape::backend::AdamArgs& args, T* param, const T* grad, T* exp_avg, T* exp_avg_sq,
                        std::int64_t n) {
    Staged<T> p(param, n), g(grad, n), m(exp_avg, n), v(exp_avg_sq, n);
    Device::adam_step(args, p.device, g.device, m.device, v.device, n);
    p.copy_back(), m.copy_back(), v.copy_back();
  }

 private:
  // A device copy of host[0, n); copy_back() writes it over the host buffer again.
  template <class T>
  struct Staged {
    const T* host;
    T* writable_host;
    std::int64_t n;
    T* device;
    Staged(const T* host_data, std::int64_t count)
        : host(host_data), writable_host(const_cast<T*>(host_data)), n(count),
          device(Device::template allocate<T>(count)) {
      if (n > 0) Device::copy_from_host(host, n, device);
    }
    ~Staged() { Device::deallocate(device, n); }
    Staged(const Staged&) = delete;
    Staged& operator=(const Staged&) = delete;
    void copy_back() const {
      if (n > 0) Device::copy_to_host(device, n, writable_host);
    }
  };

  // Elements from the view's first element to its last one (strides are never negative here).
  static std::int64_t reach(const tensortape::Shape& shape, const tensortape::Shape& strides) {
    if (tensortape::numel_of(shape) == 0) return 0;
    std::int64_t last = 0;
    for (std::size_t d = 0; d < shape.size(); ++d) last += (shape[d] - 1) * strides[d];
    return last + 1;
  }
  static std::int64_t matrix_reach(std::int64_t rows, std::int64_t cols, std::int64_t ld, std::int64_t stride,
                                   std::int64_t batch) {
    if (rows <= 0 || cols <= 0 || batch <= 0) return 0;
    return (batch - 1) * stride + (rows - 1) * ld + cols;
  }
  template <class T>
  static tensortape::backend::ConstView<T> on_device(const tensortape::backend::ConstView<T>& view, const Staged<T>& staged) {
    return {staged.device, view.shape, view.strides};
  }
};

}  // namespace test
