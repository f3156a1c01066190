// The CPU backends' kernels split over threads (backend/cpu_parallel.hpp) on inputs large
// enough to be split: every slicing path (whole rows, pieces of one long row, broadcast rows,
// gathers, reductions split over outer blocks or over the inner dim, scatter with repeated
// indices) must give bitwise the same result on 2 threads as on 1, and match
// backend::Reference (same tolerances as backend_primitives_test.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "tensortape/backend/cpu_blas_kernels.hpp"
#include "tensortape/backend/cpu_denormals.hpp"
#include "tensortape/backend/cpu_parallel.hpp"
#include "tensortape/backend/eigen.hpp"
#include "tensortape/backend/reference.hpp"
#include "tensortape/core/rng.hpp"
#include "tensortape/ops/linalg.hpp"
#include "tensortape/ops/views.hpp"
#if defined(TENSORTAPE_HAS_XTENSOR)
#include "tensortape/backend/xtensor.hpp"
#endif

namespace backend_threads_test {

namespace tt = tensortape;
using tt::Shape;
using tt::backend::Binary;
using tt::backend::ConstView;
using tt::backend::Reduce;
using tt::backend::Reference;
using tt::backend::Unary;

template <class B>
class BackendThreads : public ::testing::Test {
 protected:
  void SetUp() override {
#if !defined(_OPENMP)
    GTEST_SKIP() << "built without OpenMP (TENSORTAPE_WITH_OPENMP=OFF, or OpenMP or libopenblas0-openmp not found): "
                    "the kernels run on one thread";
#endif
  }

  std::vector<float> random(std::int64_t n, double offset = 0.0) {
    std::vector<float> out(static_cast<std::size_t>(n));
    for (auto& v : out) v = float(offset + rng.normal());
    return out;
  }

  // Runs `kernel` (which fills `out`) on 1 and then on 2 threads; expects identical bits, and
  // returns the 2-thread result. `out` lies `misalign` elements past a 64-byte boundary in both
  // runs: vectorised kernels treat an unaligned head apart, so only equal alignment compares.
  std::vector<float> same_on_one_and_two_threads(std::size_t size, const std::function<void(float*)>& kernel,
                                                 const std::string& what, std::size_t misalign = 0) {
    std::vector<float> one(size + 32, -7.0f), two(size + 32, -7.0f);
    const auto at = [&](std::vector<float>& buffer) {
      const auto skip = (64 - reinterpret_cast<std::uintptr_t>(buffer.data()) % 64) % 64 / sizeof(float);
      return buffer.data() + skip + misalign;
    };
    float* out_one = at(one);
    float* out_two = at(two);
#if defined(_OPENMP)
    const int before = omp_get_max_threads();
    omp_set_num_threads(1);
    kernel(out_one);
    omp_set_num_threads(2);
    EXPECT_EQ(tt::backend::cpu::parallel_threads(std::int64_t{1} << 20), 2) << what;
    kernel(out_two);
    omp_set_num_threads(before);
#else
    (void)kernel;  // SetUp skipped the test
#endif
    EXPECT_EQ(std::memcmp(out_one, out_two, size * sizeof(float)), 0) << what << ": 1 and 2 threads differ";
    return std::vector<float>(out_two, out_two + size);
  }

  // Within 1e-5 of each entry (at least 1e-5), plus `extra[i]` where given.
  static void expect_close(const std::vector<float>& got, const std::vector<float>& want, const std::string& what,
                           const std::vector<double>& extra = {}) {
    ASSERT_EQ(got.size(), want.size()) << what;
    int reported = 0;
    for (std::size_t i = 0; i < got.size() && reported < 5; ++i) {
      const double allowed = 1e-5 * std::max(1.0, std::abs(double(want[i]))) + (extra.empty() ? 0.0 : extra[i]);
      if (!(std::abs(double(got[i]) - double(want[i])) <= allowed)) {
        ADD_FAILURE() << what << ": element " << i << " is " << got[i] << ", Reference says " << want[i] << " (allowed " << allowed << ")";
        ++reported;
      }
    }
  }

  tt::Rng rng{20261204};
};

using Backends = ::testing::Types<tt::backend::Eigen
#if defined(TENSORTAPE_HAS_XTENSOR)
                                  , tt::backend::Xtensor
#endif
                                  >;
TYPED_TEST_SUITE(BackendThreads, Backends);

TYPED_TEST(BackendThreads, ElementwiseKernelsSplitIdenticallyOnEveryRowLayout) {
  using B = TypeParam;
  struct Layout {
    const char* label;
    Shape shape, strides;
  };
  // (a) one contiguous row cut into pieces, of even and odd length; (b) many padded rows; (c) a
  // transposed view (the gather-then-vector path); (d) two long rows, the second operand
  // broadcast along each row; (e) many rows shorter than a row kernel pays for.
  const std::vector<Layout> layouts = {{"one long row", {40000}, {1}},
                                       {"one long odd row", {40003}, {1}},
                                       {"padded rows", {300, 137}, {140, 1}},
                                       {"transposed", {150, 200}, {1, 150}},
                                       {"two long rows", {2, 20000}, {20000, 1}},
                                       {"short rows", {2500, 12}, {12, 1}}};
  for (const auto& layout : layouts) {
    const std::int64_t count = tt::numel_of(layout.shape);
    std::int64_t span = 1;
    for (std::size_t d = 0; d < layout.shape.size(); ++d) span += (layout.shape[d] - 1) * layout.strides[d];
    const auto x_storage = this->random(span), y_storage = this->random(span);
    const auto condition_storage = this->random(span);
    const ConstView<float> x{x_storage.data(), layout.shape, layout.strides};
    const ConstView<float> y{y_storage.data(), layout.shape, layout.strides};
    const ConstView<float> condition{condition_storage.data(), layout.shape, layout.strides};
    // The last dim broadcast from one value per row: rows of stride 0.
    const Shape per_row_strides = layout.shape.size() == 1 ? Shape{0} : Shape{layout.strides[0], 0};
    const ConstView<float> per_row{y_storage.data(), layout.shape, per_row_strides};
    const std::string where = std::string(" of ") + layout.label;
    const auto size = static_cast<std::size_t>(count);

    std::vector<float> want(size);
    for (std::size_t misalign : {0, 3}) {  // output 64-byte aligned, and 12 bytes past it
      for (const auto& label_op : {std::pair{"exp", Unary::Exp}, std::pair{"tanh", Unary::Tanh}}) {
        const Unary op = label_op.second;  // lambdas capture this
        const std::string what = label_op.first + where + ", output " + std::to_string(misalign) + " elements past 64 bytes";
        const auto got = this->same_on_one_and_two_threads(size, [&](float* out) { B::unary({op}, x, out); }, what, misalign);
        Reference::unary({op}, x, want.data());
        this->expect_close(got, want, what);
      }
    }
    std::vector<float> got;

    got = this->same_on_one_and_two_threads(size, [&](float* out) { B::binary(Binary::Mul, x, per_row, out); },
                                            "x * per-row value" + where);
    Reference::binary(Binary::Mul, x, per_row, want.data());
    this->expect_close(got, want, "x * per-row value" + where);

    got = this->same_on_one_and_two_threads(size, [&](float* out) { B::where(condition, x, y, out); }, "where" + where);
    Reference::where(condition, x, y, want.data());
    this->expect_close(got, want, "where" + where);

    got = this->same_on_one_and_two_threads(size, [&](float* out) {
      B::copy_strided(x, tt::backend::StridedView<float>{out, layout.shape, tt::contiguous_strides(layout.shape)});
    }, "copy" + where);
    Reference::copy_strided(x, tt::backend::StridedView<float>{want.data(), layout.shape, tt::contiguous_strides(layout.shape)});
    this->expect_close(got, want, "copy" + where);
  }
}

TYPED_TEST(BackendThreads, ReductionsSplitOverBlocksOrOverTheInnerDim) {
  using B = TypeParam;
  struct Extent {
    std::int64_t outer, n, inner;
  };
  // (1, n, inner): one block, split over inner; (3, n, inner): split over blocks; inner == 1:
  // contiguous columns, split over outer.
  for (const Extent& extent : std::vector<Extent>{{1, 64, 1000}, {3, 50, 300}, {300, 60, 1}}) {
    const std::int64_t outer = extent.outer, n = extent.n, inner = extent.inner;  // lambdas capture these
    const auto x = this->random(outer * n * inner);
    for (auto op : {Reduce::Sum, Reduce::Max}) {
      const std::string what = std::string(op == Reduce::Sum ? "sum" : "max") + " of " + tt::shape_str({outer, n, inner});
      const auto size = static_cast<std::size_t>(outer * inner);
      const auto got = this->same_on_one_and_two_threads(size, [&](float* out) { B::reduce(op, x.data(), outer, n, inner, out); }, what);
      std::vector<float> want(size), scale(size), magnitude(x.size());
      for (std::size_t i = 0; i < x.size(); ++i) magnitude[i] = std::abs(x[i]);
      Reference::reduce(op, x.data(), outer, n, inner, want.data());
      Reference::reduce(Reduce::Sum, magnitude.data(), outer, n, inner, scale.data());
      for (std::size_t i = 0; i < size; ++i) {
        ASSERT_NEAR(got[i], want[i], 1e-5 * scale[i]) << what << ", element " << i;
      }
    }
  }
}

TYPED_TEST(BackendThreads, SoftmaxGatherScatterAndAdamSplitIdentically) {
  using B = TypeParam;
  const std::int64_t rows = 300, cols = 200;
  const auto logits = this->random(rows * cols);
  for (bool log : {false, true}) {
    const std::string what = log ? "log_softmax" : "softmax";
    std::vector<float> want(logits.size());
    const auto got = this->same_on_one_and_two_threads(logits.size(), [&](float* out) { B::softmax(logits.data(), rows, cols, out, log); }, what);
    Reference::softmax(logits.data(), rows, cols, want.data(), log);
    this->expect_close(got, want, what);
  }

  // index_select / index_add of (1, dim, inner) with repeated indices: scattered rows add up.
  const std::int64_t dim = 50, count = 1000, inner = 64;
  const auto table = this->random(dim * inner), rows_in = this->random(count * inner);
  std::vector<std::int64_t> idx(count);
  for (auto& i : idx) i = static_cast<std::int64_t>(this->rng.below(static_cast<std::uint64_t>(dim)));
  std::vector<float> want(static_cast<std::size_t>(count * inner));
  auto got = this->same_on_one_and_two_threads(want.size(), [&](float* out) {
    B::index_select(table.data(), 1, dim, inner, idx.data(), count, out);
  }, "index_select");
  Reference::index_select(table.data(), 1, dim, inner, idx.data(), count, want.data());
  this->expect_close(got, want, "index_select");

  got = this->same_on_one_and_two_threads(table.size(), [&](float* out) {
    std::copy(table.begin(), table.end(), out);
    B::index_add(rows_in.data(), 1, count, inner, idx.data(), dim, out);
  }, "index_add");
  want.assign(table.begin(), table.end());
  Reference::index_add(rows_in.data(), 1, count, inner, idx.data(), dim, want.data());
  for (std::size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4) << "index_add, element " << i;

  // Adam on 50k parameters (param, exp_avg, exp_avg_sq updated in place, laid end to end in out).
  const std::int64_t n = 50000;
  const auto grad = this->random(n), start = this->random(3 * n, 1.5);
  const tt::backend::AdamArgs args{.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01,
                                   .decoupled = true, .correction1 = 0.1, .correction2_sqrt = 0.05};
  const auto adam = [&](auto backend, float* out) {
    std::copy(start.begin(), start.end(), out);
    for (std::int64_t i = n; i < 3 * n; ++i) out[i] = std::abs(out[i]);  // second moments are >= 0
    decltype(backend)::adam_step(args, out, grad.data(), out + n, out + 2 * n, n);
  };
  got = this->same_on_one_and_two_threads(start.size(), [&](float* out) { adam(B{}, out); }, "adam_step");
  want.resize(start.size());
  adam(Reference{}, want.data());
  this->expect_close(got, want, "adam_step");
}

// A batch of products is split over the threads, whole products to each. On 1 thread, on 2,
// and one call per product on one thread must give the same bits. (Not one call per product on
// two threads: OpenBLAS may split a large product over both itself, and its threaded driver
// blocks the inner dimension otherwise than its one-thread driver with some kernels, Haswell's.)
TYPED_TEST(BackendThreads, BatchedProductsSplitIdenticallyAndMatchOneCallEach) {
  using B = TypeParam;
  struct Shape3 {
    std::int64_t batch, m, n, k;
    bool trans_a, trans_b;
  };
  for (const Shape3& s : {Shape3{256, 16, 16, 64, false, true}, Shape3{256, 16, 64, 16, false, false},
                          Shape3{96, 8, 64, 16, true, true}, Shape3{4, 160, 192, 256, true, false}}) {
    const std::string what = "gemm batch " + std::to_string(s.batch) + " of (" + std::to_string(s.m) + "x" +
                             std::to_string(s.k) + ")@(" + std::to_string(s.k) + "x" + std::to_string(s.n) + ")" +
                             (s.trans_a ? " A^T" : "") + (s.trans_b ? " B^T" : "");
    const auto a = this->random(s.batch * s.m * s.k), b = this->random(s.batch * s.k * s.n);
    const tt::backend::GemmArgs args{.trans_a = s.trans_a, .trans_b = s.trans_b, .m = s.m, .n = s.n, .k = s.k,
                                     .lda = s.trans_a ? s.m : s.k, .ldb = s.trans_b ? s.k : s.n, .ldc = s.n,
                                     .stride_a = s.m * s.k, .stride_b = s.k * s.n, .stride_c = s.m * s.n, .batch = s.batch};
    const auto size = static_cast<std::size_t>(s.batch * s.m * s.n);
    const auto got = this->same_on_one_and_two_threads(size, [&](float* out) { B::template gemm<float>(args, a.data(), b.data(), out); }, what);

    std::vector<float> one_call_each(size);
    auto single = args;
    single.batch = 1;
#if defined(_OPENMP)
    const int before = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    for (std::int64_t i = 0; i < s.batch; ++i)
      B::template gemm<float>(single, a.data() + i * args.stride_a, b.data() + i * args.stride_b, one_call_each.data() + i * args.stride_c);
#if defined(_OPENMP)
    omp_set_num_threads(before);
#endif
    EXPECT_EQ(std::memcmp(got.data(), one_call_each.data(), size * sizeof(float)), 0) << what << ": batch and one call per product differ";

    std::vector<float> want(size), magnitude(size);  // magnitude: sum_k |a_ik b_kj| of each entry
    Reference::gemm<float>(args, a.data(), b.data(), want.data());
    std::vector<float> abs_a(a.size()), abs_b(b.size());
    std::transform(a.begin(), a.end(), abs_a.begin(), [](float v) { return std::abs(v); });
    std::transform(b.begin(), b.end(), abs_b.begin(), [](float v) { return std::abs(v); });
    Reference::gemm<float>(args, abs_a.data(), abs_b.data(), magnitude.data());
    // A kernel sums each entry's k products in its own order (blocks, vector lanes), so it
    // rounds differently from a plain loop by a few sqrt(k) float epsilons of the terms' sizes:
    // an entry that nearly cancels differs by more than 1e-5 of itself (OpenBLAS's Haswell and
    // Prescott kernels, k = 256).
    std::vector<double> rounding(size);
    for (std::size_t i = 0; i < size; ++i) rounding[i] = 2.0 * std::sqrt(double(s.k)) * std::numeric_limits<float>::epsilon() * magnitude[i];
    this->expect_close(got, want, what, rounding);
  }
}

// Attention's scores on head-split views: matmul loops over the examples, one call each for the
// heads' products (too small to split), and spreads those calls over the team; the bits stay.
TYPED_TEST(BackendThreads, MatmulSpreadsALoopOfSmallCallsIdentically) {
  using B = TypeParam;
  constexpr std::int64_t batch = 64, length = 12, heads = 8, head_dim = 16;
  const auto q_host = this->random(batch * length * heads * head_dim), k_host = this->random(batch * length * heads * head_dim, 0.5);
  const auto scores = [&]<class Backend>() {  // (B, H, L, L) from q, k (B, L, H d) split into heads
    const auto split = [](const std::vector<float>& host) {
      return tt::from_vector<float, Backend>({batch, length, heads * head_dim}, host).reshape({batch, length, heads, head_dim}).transpose(1, 2);
    };
    return tt::matmul(split(q_host), split(k_host).transpose(2, 3)).to_vector();
  };
  const auto size = static_cast<std::size_t>(batch * heads * length * length);
  const auto got = this->same_on_one_and_two_threads(size, [&](float* out) {
    const auto v = scores.template operator()<B>();
    std::memcpy(out, v.data(), size * sizeof(float));
  }, "head-split scores");
  this->expect_close(got, scores.template operator()<Reference>(), "head-split scores");
}

TEST(KernelThreads, AScopedCapKeepsThisThreadsKernelsAndGemmsOnItAndIsUndoneAfter) {
#if !defined(_OPENMP)
  GTEST_SKIP() << "built without OpenMP: the kernels always run on one thread";
#else
  const int before = omp_get_max_threads();
  omp_set_num_threads(2);
  const std::int64_t large = std::int64_t{1} << 20;
  EXPECT_EQ(tt::backend::cpu::parallel_threads(large), 2);
  EXPECT_EQ(tt::backend::cpu::parallel_threads(tt::backend::cpu::kMinParallelElements - 1), 1);  // too small to split
  {
    const tt::backend::cpu::ScopedKernelThreads one(1);
    EXPECT_EQ(tt::backend::cpu::parallel_threads(large), 1);
    EXPECT_EQ(omp_get_max_threads(), 1) << "the team size OpenBLAS's OpenMP build gives this thread's GEMMs";
    {
      const tt::backend::cpu::ScopedKernelThreads none(0);  // no cap: the team as it is
      EXPECT_EQ(omp_get_max_threads(), 1);
    }
    EXPECT_EQ(omp_get_max_threads(), 1);
  }
  {
    const tt::backend::cpu::ScopedKernelThreads more(4);  // a cap, never a raise
    EXPECT_EQ(omp_get_max_threads(), 2);
  }
  EXPECT_EQ(tt::backend::cpu::parallel_threads(large), 2);
  EXPECT_EQ(omp_get_max_threads(), 2);
  omp_set_num_threads(before);
#endif
}

// Gives the test an OpenMP team of 2 (scripts/test runs tests with OMP_NUM_THREADS=1), and
// restores the team's size and its subnormal mode when the test ends.
class TwoThreadsThenRestore {
 public:
  TwoThreadsThenRestore() {
#if defined(_OPENMP)
    omp_set_num_threads(2);
#endif
  }
  ~TwoThreadsThenRestore() {
    tt::backend::cpu::set_flush_denormal(flushed_);
#if defined(_OPENMP)
    omp_set_num_threads(threads_);
#endif
  }

 private:
  bool flushed_ = tt::backend::cpu::flushes_denormals_this_thread();
#if defined(_OPENMP)
  int threads_ = omp_get_max_threads();
#endif
};

// A float the compiler cannot fold: whether it reads as 0 depends on the thread's mode at run time.
float times(float a, float b) {
  volatile float x = a, y = b;
  return x * y;
}

TEST(FlushDenormal, ReachesEveryOpenMpThreadAndThreadsCreatedLaterAndIsUndone) {
  const TwoThreadsThenRestore restore;
  const float subnormal = 1e-40f;  // below FLT_MIN (1.18e-38)
  tt::backend::cpu::set_flush_denormal(false);
  int team = 0;  // the OpenMP team's threads exist (and do not flush) before the mode is set
#if defined(_OPENMP)
#pragma omp parallel num_threads(omp_get_max_threads()) reduction(+ : team)
#endif
  team += 1;
  if (!tt::backend::cpu::set_flush_denormal(true)) GTEST_SKIP() << "no flush-to-zero mode on this CPU (not x86)";
  EXPECT_EQ(times(subnormal, 1.0f), 0.0f) << "denormals-are-zero: a subnormal input reads as 0";
  EXPECT_EQ(times(1e-20f, 1e-20f), 0.0f) << "flush-to-zero: a subnormal result becomes 0";
  int threads_flushing = 0, threads_seen = 0;
#if defined(_OPENMP)
#pragma omp parallel num_threads(omp_get_max_threads()) reduction(+ : threads_flushing, threads_seen)
#endif
  {
    threads_seen += 1;
    threads_flushing += tt::backend::cpu::flushes_denormals_this_thread() && times(subnormal, 1.0f) == 0.0f;
  }
  EXPECT_EQ(threads_flushing, threads_seen);
  EXPECT_EQ(threads_seen, team);
  bool later_thread_flushes = false;
  std::thread([&] { later_thread_flushes = tt::backend::cpu::flushes_denormals_this_thread(); }).join();
  EXPECT_TRUE(later_thread_flushes) << "a thread inherits its creator's floating-point mode";

  tt::backend::cpu::set_flush_denormal(false);
  EXPECT_EQ(times(subnormal, 1.0f), subnormal);
  threads_flushing = 0;
#if defined(_OPENMP)
#pragma omp parallel num_threads(omp_get_max_threads()) reduction(+ : threads_flushing)
#endif
  threads_flushing += tt::backend::cpu::flushes_denormals_this_thread();
  EXPECT_EQ(threads_flushing, 0);
}

// A GEMM large enough for OpenBLAS to split over its threads reads subnormal inputs as 0 on every
// one of them in the mode, and sums them exactly as a plain loop does outside it.
TEST(FlushDenormal, GemmOnEveryThreadReadsSubnormalInputsAsZero) {
#if !defined(_OPENMP)
  GTEST_SKIP() << "built without OpenMP: OpenBLAS's pthread build starts its threads before main, and they keep IEEE mode";
#endif
  const TwoThreadsThenRestore restore;
  const std::int64_t n = 256;
  const float subnormal = 1e-40f;
  std::vector<float> a(static_cast<std::size_t>(n * n), subnormal), b(static_cast<std::size_t>(n * n), 0.5f);
  std::vector<float> c(static_cast<std::size_t>(n * n), -1.0f);
  const tt::backend::GemmArgs args{.m = n, .n = n, .k = n, .lda = n, .ldb = n, .ldc = n};
  if (!tt::backend::cpu::set_flush_denormal(true)) GTEST_SKIP() << "no flush-to-zero mode on this CPU (not x86)";
  tt::backend::Eigen::gemm<float>(args, a.data(), b.data(), c.data());
  for (float v : c) ASSERT_EQ(v, 0.0f);
  tt::backend::cpu::set_flush_denormal(false);
  tt::backend::Eigen::gemm<float>(args, a.data(), b.data(), c.data());
  double plain = 0;  // one entry by a plain loop: n products of subnormal * 0.5
  for (std::int64_t k = 0; k < n; ++k) plain += double(subnormal) * 0.5;
  for (float v : c) ASSERT_NEAR(v, plain, 1e-3 * plain);
}

// The kernel family named for each set of vector instructions: the widest one the CPU runs.
TEST(BlasKernels, TheFamilyFollowsTheWidestVectorInstructionsTheCpuHas) {
  using tt::backend::cpu::blas_core_for;
  using tt::backend::cpu::VectorFeatures;
  const VectorFeatures sse_only{};
  const VectorFeatures avx{.avx = true};
  const VectorFeatures avx2_without_fma{.avx = true, .avx2 = true};
  const VectorFeatures avx2{.avx = true, .avx2 = true, .fma = true};
  VectorFeatures avx512 = avx2;
  avx512.avx512f = avx512.avx512dq = avx512.avx512cd = avx512.avx512bw = avx512.avx512vl = true;
  VectorFeatures avx512f_only = avx2;  // Knights Landing: no BW/VL, so not SkylakeX's kernels
  avx512f_only.avx512f = avx512f_only.avx512cd = true;
  EXPECT_EQ(blas_core_for(sse_only), "");
  EXPECT_EQ(blas_core_for(avx), "Sandybridge");
  EXPECT_EQ(blas_core_for(avx2_without_fma), "Sandybridge");
  EXPECT_EQ(blas_core_for(avx2), "Haswell");
  EXPECT_EQ(blas_core_for(avx512), "SkylakeX");
  EXPECT_EQ(blas_core_for(avx512f_only), "Haswell");
}

using tt::backend::cpu::detail::DynamicOpenBlas;

std::string lower(std::string name) {
  for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

// Products through backend::Eigen against backend::Reference's plain loops: three sizes (the
// float ones below oneDNN's threshold and every double one go to OpenBLAS), every transposition,
// float and double, on the calling thread's team (two threads in the test below).
void expect_products_match_plain_loops() {
  tt::Rng rng(5);
  for (const auto& shape : {std::array<std::int64_t, 3>{3, 5, 7}, {64, 96, 128}, {200, 130, 70}})
    for (const bool trans_a : {false, true})
      for (const bool trans_b : {false, true}) {
        const std::int64_t m = shape[0], n = shape[1], k = shape[2];  // not a structured binding: lambdas capture these
        const tt::backend::GemmArgs args{.trans_a = trans_a, .trans_b = trans_b, .m = m, .n = n, .k = k,
                                         .lda = trans_a ? m : k, .ldb = trans_b ? k : n, .ldc = n};
        auto check = [&]<class T>(T tolerance) {
          std::vector<T> a(static_cast<std::size_t>(m * k)), b(static_cast<std::size_t>(k * n));
          for (auto& v : a) v = T(rng.normal());
          for (auto& v : b) v = T(rng.normal());
          std::vector<T> fast(static_cast<std::size_t>(m * n)), plain(fast.size());
          tt::backend::Eigen::gemm<T>(args, a.data(), b.data(), fast.data());
          Reference::gemm<T>(args, a.data(), b.data(), plain.data());
          for (std::size_t i = 0; i < fast.size(); ++i)
            ASSERT_NEAR(fast[i], plain[i], tolerance * std::sqrt(double(k))) << m << "x" << n << "x" << k << " at " << i;
        };
        check(1e-5f);
        check(1e-12);
      }
}

// Where OpenBLAS runs its Prescott fallback on a CPU with AVX or more (forced here, whatever
// this machine's model), fit_blas_kernels() moves it to the family the CPU runs; the products
// stay right, and the environment is left as it was.
TEST(BlasKernels, ThePrescottFallbackIsReplacedByKernelsThisCpuRuns) {
  const DynamicOpenBlas openblas;
  if (!openblas.present()) GTEST_SKIP() << "no DYNAMIC_ARCH OpenBLAS in this process: nothing to fit";
  const auto fitting = std::string(tt::backend::cpu::blas_core_for(tt::backend::cpu::this_cpu_vector_features()));
  if (fitting.empty()) GTEST_SKIP() << "this CPU has no AVX: Prescott's kernels are the ones it runs";
  const std::string found = openblas.core();
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) GTEST_SKIP() << "OPENBLAS_CORETYPE is set: the user's choice stays";
  openblas.pick("Prescott");
  ASSERT_EQ(lower(openblas.core()), "prescott");
  const TwoThreadsThenRestore restore;
  expect_products_match_plain_loops();  // on the fallback

  const auto choice = tt::backend::cpu::fit_blas_kernels();
  EXPECT_TRUE(choice.changed);
  EXPECT_EQ(choice.before, "Prescott");
  EXPECT_EQ(lower(openblas.core()), lower(fitting));
  EXPECT_EQ(choice.after, openblas.core());
  EXPECT_EQ(std::getenv("OPENBLAS_CORETYPE"), nullptr);
  expect_products_match_plain_loops();  // on the fitted kernels

  // A second call finds nothing to fit.
  const auto again = tt::backend::cpu::fit_blas_kernels();
  EXPECT_FALSE(again.changed);
  EXPECT_EQ(again.before, choice.after);
  openblas.pick(found);  // as this process found it
}

// A core the user named in OPENBLAS_CORETYPE stays, even the fallback.
TEST(BlasKernels, AUsersOpenBlasCoretypeIsLeftAlone) {
  const DynamicOpenBlas openblas;
  if (!openblas.present()) GTEST_SKIP() << "no DYNAMIC_ARCH OpenBLAS in this process: nothing to fit";
  const std::string found = openblas.core();
  openblas.pick("Prescott");
  setenv("OPENBLAS_CORETYPE", "Prescott", 1);
  const auto choice = tt::backend::cpu::fit_blas_kernels();
  unsetenv("OPENBLAS_CORETYPE");
  EXPECT_FALSE(choice.changed);
  EXPECT_EQ(choice.after, "Prescott");
  EXPECT_EQ(lower(openblas.core()), "prescott");
  openblas.pick(found);
}

}  // namespace backend_threads_test
