// Declarations of the CUDA kernel launchers behind backend::Cuda. Their definitions are in
// kernels.cuh and need nvcc; this header needs only the host compiler, so .cpp files can use
// backend::Cuda while one .cu file provides the code:
//
//   // in a .cu file (nvcc): header-only, instantiated where used
//   #include <tensortape/backend/cuda/cuda.cuh>
//   // or: .cpp files include backend.hpp, and one .cu file instantiates every launcher
//   #include <tensortape/backend/cuda/instantiate.cuh>
//
// Semantics are backend::Reference's (see backend/concept.hpp); every launcher enqueues on
// Device::get().stream() and returns without waiting.
#pragma once

#include <cstdint>

#include "tensortape/backend/kinds.hpp"

namespace tensortape::backend::cuda {

template <class T>
void launch_fill(T* dst, std::int64_t n, T value);
template <class T>
void launch_copy_strided(ConstView<T> src, StridedView<T> dst);
template <class T>
void launch_unary(UnaryArgs args, ConstView<T> src, T* dst);
template <class T>
void launch_binary(Binary op, ConstView<T> a, ConstView<T> b, T* dst);
template <class T>
void launch_where(ConstView<T> condition, ConstView<T> a, ConstView<T> b, T* dst);
// src (outer, n, inner) -> dst (outer, inner)
template <class T>
void launch_reduce(Reduce op, const T* src, std::int64_t outer, std::int64_t n, std::int64_t inner, T* dst);
// src (rows, cols) -> dst (rows, cols), row-wise
template <class T>
void launch_softmax(const T* src, std::int64_t rows, std::int64_t cols, T* dst, bool log);
// src (outer, dim, inner), idx (count) on the device -> dst (outer, count, inner)
template <class T>
void launch_index_select(const T* src, std::int64_t outer, std::int64_t dim, std::int64_t inner,
                         const std::int64_t* idx, std::int64_t count, T* dst);
// dst (outer, dim, inner) += src (outer, count, inner) scattered at rows idx (count)
template <class T>
void launch_index_add(const T* src, std::int64_t outer, std::int64_t count, std::int64_t inner,
                      const std::int64_t* idx, std::int64_t dim, T* dst);
// One fused Adam / AdamW update of n contiguous elements (AdamArgs in kinds.hpp)
template <class T>
void launch_adam_step(const AdamArgs& args, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, std::int64_t n);
// c (m, n), row stride ldc: c = beta * c, or 0 when beta == 0 without reading c (GEMM with k == 0)
template <class T>
void launch_scale_matrix(T* c, std::int64_t m, std::int64_t n, std::int64_t ldc, double beta);

}  // namespace tensortape::backend::cuda
