// backend::Cuda beyond the shared op tables: the caching allocator, host <-> device copies of
// every element type, the cuBLASLt plan cache, GEMM epilogues, the TF32 switch, a few training
// steps against backend::Reference, and the error paths. Tests that need a GPU skip, saying
// why, when none is visible; the host-side pieces (error text, the no-device error) run
// everywhere. The size classes are tested in host_allocator_test.cpp.
#include "support/test_support.hpp"

namespace cuda_backend_test {

using namespace test;
using Gpu = tt::backend::Cuda;
namespace cuda = tt::backend::cuda;

#define SKIP_WITHOUT_GPU() SKIP_UNLESS_BACKEND_AVAILABLE(Gpu)

// ---- host-only pieces: run on every machine ----

TEST(CudaErrors, NameTheCallItsArgumentsAndTheStatus) {
  expect_error([] { cuda::check_cuda(cudaErrorInvalidValue, "cudaMemcpyAsync", "bytes=", 64); },
               {"cudaMemcpyAsync(bytes=64) failed", "cudaErrorInvalidValue"});
  expect_error([] { cuda::check_cublas(CUBLAS_STATUS_NOT_SUPPORTED, "cublasLtMatmul", "m=", 3, ", n=", 4); },
               {"cublasLtMatmul(m=3, n=4) failed", "CUBLAS_STATUS_NOT_SUPPORTED"});
  EXPECT_NO_THROW(cuda::check_cuda(cudaSuccess, "cudaFree", ""));
}

TEST(CudaGemmPlan, AlignmentIsTheLargestPowerOfTwoOfEveryStep) {
  const auto at = [](std::uintptr_t address) { return reinterpret_cast<const void*>(address); };
  EXPECT_EQ(cuda::detail::alignment_of(at(0x1000), 1024, 0), 256u);  // capped at cuBLASLt's default
  EXPECT_EQ(cuda::detail::alignment_of(at(0x1000), 12, 0), 4u);      // ld of 3 floats
  EXPECT_EQ(cuda::detail::alignment_of(at(0x1008), 64, 0), 8u);      // a view 2 floats in
  EXPECT_EQ(cuda::detail::alignment_of(at(0x1000), 64, 48), 16u);    // batch stride of 12 floats
  EXPECT_EQ(cuda::detail::leading_dimension(1, 1, 5), 5);            // one row: any ld is fine to us
  EXPECT_EQ(cuda::detail::leading_dimension(7, 3, 5), 7);
}

TEST(CudaDevice, WithoutAGpuTheFirstUseThrowsSayingWhy) {
  if (cuda::device_unavailable_reason().empty()) GTEST_SKIP() << "a CUDA device is visible; this checks the error without one";
  expect_error([] { tt::zeros<float, Gpu>({4}); }, {"no CUDA device visible", "cudaGetDeviceCount"});
  expect_error([] { Gpu::memory_stats(); }, {"no CUDA device visible"});
}

// ---- on a GPU ----

TEST(CudaAllocator, ReusesReleasedBlocksAndReleasesTheCache) {
  SKIP_WITHOUT_GPU();
  Gpu::synchronize();
  Gpu::release_cached_memory();
  const auto start = Gpu::memory_stats();
  EXPECT_EQ(start.bytes_cached, 0);
  for (int step = 0; step < 5; ++step) {
    tt::Rng rng(static_cast<std::uint64_t>(step));
    auto x = tt::randn<float, Gpu>({257, 33}, rng);  // same size every step
    auto y = tt::exp(x) * 2.0;
    EXPECT_EQ(y.numel(), 257 * 33);
  }
  const auto after = Gpu::memory_stats();
  EXPECT_LE(after.device_allocations - start.device_allocations, 3) << "steps after the first must reuse blocks";
  EXPECT_GT(after.cache_hits, start.cache_hits);
  EXPECT_EQ(after.bytes_in_use, start.bytes_in_use) << "every tensor of the loop was freed";
  EXPECT_GT(after.bytes_cached, 0);
  EXPECT_GE(after.peak_bytes_in_use, std::int64_t(257 * 33 * sizeof(float)));

  Gpu::release_cached_memory();
  const auto released = Gpu::memory_stats();
  EXPECT_EQ(released.bytes_cached, 0);
  EXPECT_GT(released.device_frees, after.device_frees);

  // The peak restarts from what is held, then records the next phase's high-water mark.
  Gpu::reset_peak_memory_stats();
  EXPECT_EQ(Gpu::memory_stats().peak_bytes_in_use, released.bytes_in_use);
  { const auto phase = tt::zeros<float, Gpu>({1 << 20}); }
  EXPECT_GE(Gpu::memory_stats().peak_bytes_in_use, released.bytes_in_use + std::int64_t(4 << 20));
  EXPECT_EQ(Gpu::memory_stats().bytes_in_use, released.bytes_in_use);
}

TEST(CudaAllocator, BlocksAreSizeClassedAndZeroSizedTensorsAllocateNothing) {
  SKIP_WITHOUT_GPU();
  auto& allocator = cuda::Device::get().allocator();
  const auto stream = cuda::Device::get().stream();
  void* first = allocator.allocate(1000, stream);
  EXPECT_TRUE(allocator.owns(first));
  allocator.release(first);
  void* second = allocator.allocate(900, stream);  // same 1024-byte class: the same block
  EXPECT_EQ(second, first);
  allocator.release(second);
  EXPECT_EQ(Gpu::allocate<float>(0), nullptr);
  auto empty = tt::zeros<float, Gpu>({0, 7});
  EXPECT_TRUE(empty.to_vector().empty());
}

TEST(CudaCopies, EveryElementTypeRoundTripsIncludingStridedInt64) {
  SKIP_WITHOUT_GPU();
  const std::vector<std::int64_t> ids = {5, -100, 7, 1LL << 40, 0, 3};
  const auto labels = tt::from_vector<std::int64_t, Gpu>({2, 3}, ids);
  EXPECT_EQ(labels.to_vector(), ids);
  EXPECT_EQ(labels.transpose(0, 1).to_vector(), (std::vector<std::int64_t>{5, 1LL << 40, -100, 0, 7, 3}));
  EXPECT_EQ(labels.narrow(1, 1, 2).contiguous_copy().to_vector(), (std::vector<std::int64_t>{-100, 7, 0, 3}));
  const auto x = tt::from_vector<double, Gpu>({3}, {1.5, -2.25, 1e300});
  EXPECT_EQ(x.to_vector(), (std::vector<double>{1.5, -2.25, 1e300}));
  EXPECT_EQ((tt::full<float, Gpu>({2, 2}, 0.5f).to_vector()), std::vector<float>(4, 0.5f));
}

TEST(CudaGemm, PlansAreCachedPerShape) {
  SKIP_WITHOUT_GPU();
  tt::Rng rng(3);
  const auto a = tt::randn<float, Gpu>({37, 19}, rng), b = tt::randn<float, Gpu>({19, 23}, rng);
  (void)tt::matmul(a, b).to_vector();
  const auto before = cuda::GemmPlanCache::get().stats();
  (void)tt::matmul(a, b).to_vector();
  const auto after = cuda::GemmPlanCache::get().stats();
  EXPECT_EQ(after.misses, before.misses);
  EXPECT_EQ(after.hits, before.hits + 1);
  (void)tt::matmul(b.t(), a.t()).to_vector();  // other transposes: a new plan
  EXPECT_EQ(cuda::GemmPlanCache::get().stats().misses, after.misses + 1);
}

// c (m, n) = epilogue(a (m, k) @ b (k, n) + bias (n)) against the same steps in tensor ops.
TEST(CudaGemm, BiasAndGeluEpiloguesMatchTheUnfusedOps) {
  SKIP_WITHOUT_GPU();
  tt::Rng rng(4);
  const std::int64_t m = 45, n = 70, k = 33;
  const auto a = tt::randn<float, Gpu>({m, k}, rng), b = tt::randn<float, Gpu>({k, n}, rng);
  const auto bias = tt::randn<float, Gpu>({n}, rng);
  const tt::backend::GemmArgs args{.m = m, .n = n, .k = k, .lda = k, .ldb = n, .ldc = n};
  const auto product = tt::matmul(a, b);
  const auto biased = product + bias;
  const std::vector<std::pair<cuda::GemmEpilogue, tt::Tensor<float, Gpu>>> cases = {
      {cuda::GemmEpilogue::Bias, biased},
      {cuda::GemmEpilogue::GeluTanh, tt::gelu(product, tt::GeluForm::Tanh)},
      {cuda::GemmEpilogue::BiasGeluTanh, tt::gelu(biased, tt::GeluForm::Tanh)},
  };
  for (const auto& [epilogue, expected] : cases) {
    SCOPED_TRACE(int(epilogue));
    auto c = tt::empty<float, Gpu>({m, n});
    cuda::gemm<float>(args, a.data(), b.data(), c.data(), epilogue, bias.data());
    // cuBLASLt's GELU may use its own tanh approximation: close, not bit-equal.
    EXPECT_TRUE(all_close(c.to_vector(), expected.to_vector(), 1e-4, 1e-4));
  }
  expect_error([&] { cuda::gemm<float>(args, a.data(), b.data(), product.data(), cuda::GemmEpilogue::Bias); },
               {"gemm", "bias"});
}

TEST(CudaGemm, Tf32IsOptInAndCloseToFp32) {
  SKIP_WITHOUT_GPU();
  tt::Rng rng(5);
  const auto a = tt::randn<float, Gpu>({128, 256}, rng), b = tt::randn<float, Gpu>({256, 96}, rng);
  EXPECT_FALSE(cuda::Device::get().allow_tf32());
  const auto fp32 = tt::matmul(a, b).to_vector();
  const auto expected = tt::matmul(tt::to_backend<Ref>(a), tt::to_backend<Ref>(b)).to_vector();
  EXPECT_TRUE(all_close(fp32, expected, 1e-5, 1e-4));
  Gpu::set_allow_tf32(true);
  const auto tf32 = tt::matmul(a, b).to_vector();
  Gpu::set_allow_tf32(false);
  // TF32 keeps 10 mantissa bits: sums of 256 unit-variance products are off by ~1e-2.
  EXPECT_TRUE(all_close(tf32, expected, 1e-2, 0.1));
}

// A small classifier trained for a few SGD steps on both backends: the whole stack (linear,
// GELU, cross-entropy, backward, in-place updates) must track Reference step by step.
template <class T>
void expect_training_matches_reference(double tolerance) {
  const auto train = [](auto backend_tag) {
    using B = decltype(backend_tag);
    tt::Rng rng(42);
    auto x = tt::randn<T, B>({16, 8}, rng);
    auto labels = tt::from_vector<std::int64_t, B>({16}, {0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, -100});
    auto w1 = tt::randn<T, B>({12, 8}, rng, 0.0, 0.3).requires_grad_();
    auto w2 = tt::randn<T, B>({3, 12}, rng, 0.0, 0.3).requires_grad_();
    auto b2 = tt::zeros<T, B>({3}).requires_grad_();
    std::vector<T> losses;
    for (int step = 0; step < 5; ++step) {
      auto loss = tt::cross_entropy(tt::linear(tt::gelu(tt::linear(x, w1)), w2, b2), labels);
      losses.push_back(loss.item());
      for (auto* p : {&w1, &w2, &b2}) p->zero_grad();
      tt::backward(loss);
      tt::NoGradGuard no_grad;
      for (auto* p : {&w1, &w2, &b2}) p->add_(p->grad(), T(-0.5));
    }
    losses.push_back(T(tt::sum(w1 * w1).item()));
    return losses;
  };
  EXPECT_TRUE(all_close(train(Gpu{}), train(Ref{}), tolerance, tolerance));
}

TEST(CudaTraining, StepsTrackReferenceInFloatAndDouble) {
  SKIP_WITHOUT_GPU();
  expect_training_matches_reference<float>(1e-4);
  expect_training_matches_reference<double>(1e-11);
}

TEST(CudaErrors, ShapeErrorsStillComeFromTheOps) {
  SKIP_WITHOUT_GPU();
  const auto a = tt::zeros<float, Gpu>({2, 3}), b = tt::zeros<float, Gpu>({4, 5});
  expect_error([&] { tt::matmul(a, b); }, {"matmul", "[2, 3]", "[4, 5]"});
  const auto table = tt::zeros<float, Gpu>({4, 2});
  expect_error([&] { tt::embedding(table, tt::from_vector<std::int64_t, Gpu>({2}, {1, 4})); }, {"index 4 out of range"});
}

}  // namespace cuda_backend_test
