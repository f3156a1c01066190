// Compiles every CUDA kernel launcher of backend::Cuda for float and double (and the memory
// kernels for int64), for a program whose other files are .cpp: include this in exactly one
// .cu file, and backend.hpp wherever backend::Cuda is used.
//
//   // cuda_kernels.cu
//   #include <tensortape/backend/cuda/instantiate.cuh>
#pragma once

#include "tensortape/backend/cuda/cuda.cuh"

namespace tensortape::backend::cuda {

#define TENSORTAPE_CUDA_INSTANTIATE_MEMORY(T)                            \
  template void launch_fill<T>(T*, std::int64_t, T);                     \
  template void launch_copy_strided<T>(ConstView<T>, StridedView<T>);

#define TENSORTAPE_CUDA_INSTANTIATE_FLOATING(T)                                                                      \
  template void launch_unary<T>(UnaryArgs, ConstView<T>, T*);                                                        \
  template void launch_binary<T>(Binary, ConstView<T>, ConstView<T>, T*);                                            \
  template void launch_where<T>(ConstView<T>, ConstView<T>, ConstView<T>, T*);                                       \
  template void launch_reduce<T>(Reduce, const T*, std::int64_t, std::int64_t, std::int64_t, T*);                    \
  template void launch_softmax<T>(const T*, std::int64_t, std::int64_t, T*, bool);                                   \
  template void launch_index_select<T>(const T*, std::int64_t, std::int64_t, std::int64_t, const std::int64_t*,      \
                                       std::int64_t, T*);                                                            \
  template void launch_index_add<T>(const T*, std::int64_t, std::int64_t, std::int64_t, const std::int64_t*,        \
                                    std::int64_t, T*);                                                               \
  template void launch_adam_step<T>(const AdamArgs&, T*, const T*, T*, T*, std::int64_t);                            \
  template void launch_scale_matrix<T>(T*, std::int64_t, std::int64_t, std::int64_t, double);

TENSORTAPE_CUDA_INSTANTIATE_MEMORY(float)
TENSORTAPE_CUDA_INSTANTIATE_MEMORY(double)
TENSORTAPE_CUDA_INSTANTIATE_MEMORY(std::int64_t)
TENSORTAPE_CUDA_INSTANTIATE_FLOATING(float)
TENSORTAPE_CUDA_INSTANTIATE_FLOATING(double)

#undef TENSORTAPE_CUDA_INSTANTIATE_FLOATING
#undef TENSORTAPE_CUDA_INSTANTIATE_MEMORY

}  // namespace tensortape::backend::cuda
