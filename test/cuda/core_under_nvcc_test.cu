// The core library (tensors, ops, autograd) must compile under nvcc, since the CUDA backend's
// translation units include it. This test builds it with nvcc, runs a host-side backward pass,
// and, when a GPU is visible, checks a device round trip; without one it skips, saying why.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include "tensortape/autograd/engine.hpp"
#include "tensortape/backend/reference.hpp"
#include "tensortape/ops/inplace.hpp"

namespace tt = tensortape;

namespace {

__global__ void scale_kernel(float* values, int n, float factor) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) values[i] *= factor;
}

TEST(CoreUnderNvcc, BackwardPassMatchesHandDerivative) {
  // d/dx sum(x * x) = 2x
  auto x = tt::from_vector<float, tt::backend::Reference>({3}, {1.0f, -2.0f, 0.5f}).requires_grad_();
  tt::backward(tt::sum(x * x));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{2.0f, -4.0f, 1.0f}));
}

TEST(CoreUnderNvcc, DeviceRoundTripWhenAGpuIsPresent) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    GTEST_SKIP() << "no CUDA device visible (cudaGetDeviceCount reports none); device checks skipped";
  }
  std::vector<float> host{1.0f, 2.0f, 3.0f};
  float* device = nullptr;
  ASSERT_EQ(cudaMalloc(&device, host.size() * sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(device, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
  scale_kernel<<<1, 32>>>(device, static_cast<int>(host.size()), 2.0f);
  ASSERT_EQ(cudaMemcpy(host.data(), device, host.size() * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
  cudaFree(device);
  EXPECT_EQ(host, (std::vector<float>{2.0f, 4.0f, 6.0f}));
}

}  // namespace
