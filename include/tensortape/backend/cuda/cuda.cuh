// backend::Cuda, header-only: the backend and its kernels, for a .cu file compiled by nvcc.
//
//   #include <tensortape/tensortape.hpp>
//   #include <tensortape/backend/cuda/cuda.cuh>
//   using Gpu = tt::backend::Cuda;
#pragma once

#include "tensortape/backend/cuda/backend.hpp"
#include "tensortape/backend/cuda/kernels.cuh"

static_assert(tensortape::backend::Backend<tensortape::backend::Cuda>);
