// The one translation unit nvcc compiles for the CUDA test suites and benchmarks: every
// backend::Cuda kernel launcher, instantiated once. The test and benchmark files themselves are
// .cpp files built by the host compiler against backend.hpp (see backend/cuda/kernels.hpp),
// which keeps nvcc time small.
#include "tensortape/backend/cuda/instantiate.cuh"

static_assert(tensortape::backend::Backend<tensortape::backend::Cuda>);
