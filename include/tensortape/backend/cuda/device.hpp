// The process-wide CUDA state of backend::Cuda: the device it runs on, its one stream, the
// cuBLASLt handle and GEMM workspace, the caching allocator and the TF32 switch. Created on
// first use; when no GPU is visible, that first use throws tensortape::Error saying why.
//
//   auto& device = tt::backend::cuda::Device::get();   // throws without a GPU
//   cudaStream_t s = device.stream();                  // every kernel and copy goes here
//   device.synchronize();
//
// Host-only (no kernels): usable from .cpp files compiled by the host compiler.
#pragma once

#include <cstddef>
#include <string>

#include "tensortape/backend/cuda/allocator.hpp"
#include "tensortape/backend/cuda/check.hpp"

namespace tensortape::backend::cuda {

// Empty when a device is visible; otherwise why not, e.g.
// "cudaGetDeviceCount: cudaErrorNoDevice: no CUDA-capable device is detected".
inline std::string device_unavailable_reason() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();  // do not leave the failure behind for the next check
    return std::string("cudaGetDeviceCount: ") + cudaGetErrorName(status) + ": " + cudaGetErrorString(status);
  }
  if (count == 0) return "cudaGetDeviceCount: 0 devices";
  return {};
}

class Device {
 public:
  // Large enough for cuBLASLt's split-K and Hopper kernels (NVIDIA recommends 32 MiB on H100).
  static constexpr std::size_t kWorkspaceBytes = std::size_t(32) << 20;

  static Device& get() {
    // Deliberately never destroyed: tensors with static lifetime may outlive any destructor
    // order we could pick, and the CUDA runtime may already be unloaded at exit.
    static Device* instance = new Device();
    return *instance;
  }

  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  int ordinal() const { return ordinal_; }
  cudaStream_t stream() const { return stream_; }
  cublasLtHandle_t blas() const { return blas_; }
  void* workspace() const { return workspace_; }
  CachingAllocator& allocator() { return allocator_; }

  void synchronize() const { check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize", "stream=", stream_); }

  // TF32 tensor-core GEMMs for float (10-bit mantissa inputs, ~1e-3 relative error): off by
  // default so float results match the CPU backends to ~1e-5; an explicit opt-in for speed.
  bool allow_tf32() const { return allow_tf32_; }
  void set_allow_tf32(bool on) { allow_tf32_ = on; }

 private:
  Device() {
    if (const std::string reason = device_unavailable_reason(); !reason.empty()) {
      throw Error("tensortape::backend::Cuda: no CUDA device visible (" + reason + ")");
    }
    check_cuda(cudaGetDevice(&ordinal_), "cudaGetDevice", "");
    // Default flags (blocking): the stream still orders against the legacy default stream,
    // so user code that mixes in plain cudaMemcpy stays correct.
    check_cuda(cudaStreamCreate(&stream_), "cudaStreamCreate", "device=", ordinal_);
    check_cublas(cublasLtCreate(&blas_), "cublasLtCreate", "device=", ordinal_);
    check_cuda(cudaMalloc(&workspace_, kWorkspaceBytes), "cudaMalloc", "bytes=", kWorkspaceBytes, " (cuBLASLt workspace)");
  }

  int ordinal_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasLtHandle_t blas_ = nullptr;
  void* workspace_ = nullptr;
  CachingAllocator allocator_;
  bool allow_tf32_ = false;
};

}  // namespace tensortape::backend::cuda
