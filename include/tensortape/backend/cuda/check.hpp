// Status checks for the CUDA runtime and cuBLASLt. Every call the CUDA backend makes goes
// through one of these, so a failure surfaces as tensortape::Error naming the call and the
// arguments it was given, never as a silently ignored status code.
//
//   check_cuda(cudaMalloc(&p, bytes), "cudaMalloc", "bytes=", bytes);
//   // throws "cudaMalloc(bytes=1024) failed: cudaErrorMemoryAllocation: out of memory"
//
// Host-only (no kernels): usable from .cpp files compiled by the host compiler.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <sstream>
#include <string>

#include "tensortape/core/error.hpp"

namespace tensortape::backend::cuda {

// "call(arg pieces...) failed: NAME: description"
template <class... Args>
[[noreturn]] void fail_call(const char* call, const char* status_name, const char* description, const Args&... args) {
  std::ostringstream out;
  out << call << '(';
  tensortape::detail::append_all(out, args...);
  out << ") failed: " << status_name << ": " << description;
  throw Error(out.str());
}

template <class... Args>
void check_cuda(cudaError_t status, const char* call, const Args&... args) {
  if (status == cudaSuccess) return;
  fail_call(call, cudaGetErrorName(status), cudaGetErrorString(status), args...);
}

template <class... Args>
void check_cublas(cublasStatus_t status, const char* call, const Args&... args) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  fail_call(call, cublasLtGetStatusName(status), cublasLtGetStatusString(status), args...);
}

}  // namespace tensortape::backend::cuda
