// backend::Cuda — the Backend concept on an NVIDIA GPU. Storage is device memory from a
// caching allocator; host <-> device copies are explicit; every kernel, copy and GEMM runs on
// one stream, and reads to the host (to_vector, item) wait for it. GEMMs go through cuBLASLt
// (fp32 by default, TF32 when switched on); the other primitives are kernels in kernels.cuh.
//
//   using Gpu = tt::backend::Cuda;
//   auto x = tt::randn<float, Gpu>({64, 256}, rng);     // drawn on the host, copied to the device
//   auto y = tt::softmax(tt::matmul(x, w.t()));          // kernels and cuBLASLt, queued on the stream
//   float first = y.to_vector()[0];                      // waits for the stream
//   Gpu::memory_stats().peak_bytes_in_use;
//
// This header needs only the host compiler (plus the CUDA include path). The kernels need
// nvcc: include cuda.cuh in a .cu file, or compile instantiate.cuh into one .cu file of the
// program and use this header everywhere else.
#pragma once

#include <cstdint>

#include "tensortape/backend/concept.hpp"
#include "tensortape/backend/cuda/allocator.hpp"
#include "tensortape/backend/cuda/check.hpp"
#include "tensortape/backend/cuda/device.hpp"
#include "tensortape/backend/cuda/gemm.hpp"
#include "tensortape/backend/cuda/kernels.hpp"

namespace tensortape::backend {

struct Cuda {
  static constexpr const char* name = "Cuda";
  // Each primitive is a kernel launch: ops pack operands rather than loop (see concept.hpp).
  static constexpr bool prefers_fewer_calls = true;

  // ---- memory ----
  template <class T>
  static T* allocate(std::int64_t n) {
    if (n <= 0) return nullptr;
    auto& device = cuda::Device::get();
    return static_cast<T*>(device.allocator().allocate(static_cast<std::size_t>(n) * sizeof(T), device.stream()));
  }
  template <class T>
  static void deallocate(T* p, std::int64_t) {
    if (p) cuda::Device::get().allocator().release(p);  // no CUDA call: safe in Storage's destructor
  }

  // Waits for the stream, so the host sees every result queued before.
  template <class T>
  static void copy_to_host(const T* src, std::int64_t n, T* host) {
    if (n <= 0) return;
    auto& device = cuda::Device::get();
    const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(T);
    cuda::check_cuda(cudaMemcpyAsync(host, src, bytes, cudaMemcpyDeviceToHost, device.stream()), "cudaMemcpyAsync",
                     "device ", src, " -> host ", host, ", bytes=", bytes);
    device.synchronize();
  }

  // From pageable memory (a std::vector) cudaMemcpyAsync has staged the source before it
  // returns, so the caller may free it at once; from pinned memory the copy is truly
  // asynchronous, so wait for it there.
  template <class T>
  static void copy_from_host(const T* host, std::int64_t n, T* dst) {
    if (n <= 0) return;
    auto& device = cuda::Device::get();
    const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(T);
    cuda::check_cuda(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, device.stream()), "cudaMemcpyAsync",
                     "host ", host, " -> device ", dst, ", bytes=", bytes);
    cudaPointerAttributes attributes{};
    cuda::check_cuda(cudaPointerGetAttributes(&attributes, host), "cudaPointerGetAttributes", "ptr=", host);
    if (attributes.type != cudaMemoryTypeUnregistered) device.synchronize();
  }

  template <class T>
  static void copy_strided(ConstView<T> src, StridedView<T> dst) { cuda::launch_copy_strided(src, dst); }
  template <class T>
  static void fill(T* dst, std::int64_t n, T value) { cuda::launch_fill(dst, n, value); }

  // ---- elementwise, reductions, rows ----
  template <class T>
  static void unary(UnaryArgs args, ConstView<T> src, T* dst) { cuda::launch_unary(args, src, dst); }
  template <class T>
  static void binary(Binary op, ConstView<T> a, ConstView<T> b, T* dst) { cuda::launch_binary(op, a, b, dst); }
  template <class T>
  static void where(ConstView<T> condition, ConstView<T> a, ConstView<T> b, T* dst) {
    cuda::launch_where(condition, a, b, dst);
  }
  // src (outer, n, inner) -> dst (outer, inner)
  template <class T>
  static void reduce(Reduce op, const T* src, std::int64_t outer, std::int64_t n, std::int64_t inner, T* dst) {
    cuda::launch_reduce(op, src, outer, n, inner, dst);
  }
  template <class T>
  static void softmax(const T* src, std::int64_t rows, std::int64_t cols, T* dst, bool log) {
    cuda::launch_softmax(src, rows, cols, dst, log);
  }

  // ---- linear algebra ----
  template <class T>
  static void gemm(const GemmArgs& g, const T* a, const T* b, T* c) { cuda::gemm(g, a, b, c); }

  // ---- gather / scatter (idx is a device pointer) ----
  template <class T>
  static void index_select(const T* src, std::int64_t outer, std::int64_t dim, std::int64_t inner,
                           const std::int64_t* idx, std::int64_t count, T* dst) {
    cuda::launch_index_select(src, outer, dim, inner, idx, count, dst);
  }
  template <class T>
  static void index_add(const T* src, std::int64_t outer, std::int64_t count, std::int64_t inner,
                        const std::int64_t* idx, std::int64_t dim, T* dst) {
    cuda::launch_index_add(src, outer, count, inner, idx, dim, dst);
  }

  // ---- optimizer ----
  template <class T>
  static void adam_step(const AdamArgs& args, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, std::int64_t n) {
    cuda::launch_adam_step(args, param, grad, exp_avg, exp_avg_sq, n);
  }

  // ---- memory: the same calls as the CPU backends' (backend::Reference) ----
  static cuda::AllocatorStats memory_stats() { return cuda::Device::get().allocator().stats(); }
  static void reset_peak_memory_stats() { cuda::Device::get().allocator().reset_peaks(); }
  // Returns every cached (released) block to the driver; blocks in use are untouched.
  static void release_cached_memory() {
    auto& device = cuda::Device::get();
    device.allocator().release_all(device.stream());
  }

  // ---- CUDA only ----
  static void synchronize() { cuda::Device::get().synchronize(); }
  static void set_allow_tf32(bool on) { cuda::Device::get().set_allow_tf32(on); }
};

static_assert(Backend<Cuda>);

}  // namespace tensortape::backend
