// Forward values of every op-table entry on every backend, against backend::Reference on the
// same seeded inputs (including broadcasting and non-contiguous views).
#include "support/op_table.hpp"

namespace ops_forward_test {

using namespace test;

template <class C>
class OpForward : public BackendTest<C> {};
TYPED_TEST_SUITE(OpForward, AllConfigs, ConfigNames);

template <class T, class B>
std::vector<tt::Tensor<T, B>> inputs_for(const OpCase<T, B>& op, std::uint64_t seed) {
  tt::Rng rng(seed);
  std::vector<tt::Tensor<T, B>> inputs;
  for (std::size_t i = 0; i < op.shapes.size(); ++i) {
    inputs.push_back(make_tensor<T, B>(op.shapes[i], random_values(tt::numel_of(op.shapes[i]), op.domain(i), rng), op.layout(i)));
  }
  return inputs;
}

TYPED_TEST(OpForward, MatchesReferenceBackend) {
  using T = typename TypeParam::Value;
  using B = typename TypeParam::Backend;
  const auto ops = op_table<T, B>();
  const auto reference_ops = op_table<T, Ref>();
  ASSERT_EQ(ops.size(), reference_ops.size());
  for (std::size_t i = 0; i < ops.size(); ++i) {
    SCOPED_TRACE(ops[i].name);
    for (std::uint64_t seed : {1u, 2u}) {
      const auto actual = ops[i].apply(inputs_for(ops[i], seed));
      const auto expected = reference_ops[i].apply(inputs_for(reference_ops[i], seed));
      ASSERT_EQ(actual.shape(), expected.shape());
      EXPECT_TRUE(all_close(actual.to_vector(), expected.to_vector(), default_tolerance<T>(), default_tolerance<T>()));
    }
  }
}

#if !defined(TENSORTAPE_TEST_CUDA)  // CPU-only checks; the CUDA build reruns just the typed test
// The oracle itself, on values worked out by hand.
TEST(ReferenceValues, SmallCasesComputedByHand) {
  using R = tt::Tensor<double, Ref>;
  const auto a = tt::from_vector<double, Ref>({2, 3}, {1, 2, 3, 4, 5, 6});
  const auto b = tt::from_vector<double, Ref>({3, 2}, {7, 8, 9, 10, 11, 12});
  EXPECT_EQ(tt::matmul(a, b).to_vector(), (std::vector<double>{58, 64, 139, 154}));
  EXPECT_EQ(tt::matmul(a, a.t()).to_vector(), (std::vector<double>{14, 32, 32, 77}));
  EXPECT_EQ(tt::sum(a, {0}).to_vector(), (std::vector<double>{5, 7, 9}));
  EXPECT_EQ(tt::max(a, {1}).to_vector(), (std::vector<double>{3, 6}));
  EXPECT_EQ((a + tt::from_vector<double, Ref>({3}, {10, 20, 30})).to_vector(), (std::vector<double>{11, 22, 33, 14, 25, 36}));
  EXPECT_EQ(a.t().contiguous().to_vector(), (std::vector<double>{1, 4, 2, 5, 3, 6}));

  const R softmax = tt::softmax(tt::from_vector<double, Ref>({1, 3}, {0.0, std::log(2.0), std::log(5.0)}));
  EXPECT_TRUE(all_close(softmax.to_vector(), std::vector<double>{0.125, 0.25, 0.625}, 1e-15, 0));
  // Large logits must not overflow: softmax is shift-invariant.
  const R shifted = tt::softmax(tt::from_vector<double, Ref>({1, 3}, {1000.0, 1000.0 + std::log(2.0), 1000.0 + std::log(5.0)}));
  EXPECT_TRUE(all_close(shifted.to_vector(), std::vector<double>{0.125, 0.25, 0.625}, 1e-12, 0));

  // Cross-entropy of uniform logits over 4 classes is log 4, ignored rows excluded.
  const auto logits = tt::zeros<double, Ref>({3, 4});
  const auto labels = tt::from_vector<std::int64_t, Ref>({3}, {2, -100, 0});
  EXPECT_NEAR(tt::cross_entropy(logits, labels).item(), std::log(4.0), 1e-15);

  EXPECT_NEAR(tt::gelu(tt::scalar_tensor<double, Ref>(1.0)).item(), 0.8413447460685429, 1e-15);
  EXPECT_NEAR(tt::gelu(tt::scalar_tensor<double, Ref>(1.0), tt::GeluForm::Tanh).item(), 0.8411919906082768, 1e-15);
  const auto rms = tt::rms_norm(tt::from_vector<double, Ref>({1, 2}, {3, 4}), R(), 0.0);
  EXPECT_TRUE(all_close(rms.to_vector(), std::vector<double>{3 / std::sqrt(12.5), 4 / std::sqrt(12.5)}, 1e-15, 0));
}

TEST(ReferenceValues, RandomStreamsAreReproducible) {
  tt::Rng first(123), second(123);
  const auto x = tt::randn<float, Ref>({100}, first).to_vector();
  const auto y = tt::randn<float, tt::backend::Eigen>({100}, second).to_vector();
  EXPECT_EQ(x, y);  // same numbers on every backend for the same seed
  double sum = 0, sum_sq = 0;
  tt::Rng stats(5);
  for (int i = 0; i < 20000; ++i) {
    const double z = stats.normal();
    sum += z;
    sum_sq += z * z;
  }
  EXPECT_NEAR(sum / 20000, 0.0, 0.03);
  EXPECT_NEAR(sum_sq / 20000, 1.0, 0.04);
}

// A CPU backend that asks for fewer calls, as backend::Cuda does, and counts its GEMM calls.
struct FewCallsEigen : tt::backend::Eigen {
  static constexpr const char* name = "FewCallsEigen";
  static constexpr bool prefers_fewer_calls = true;
  static inline int gemm_calls = 0;
  template <class T>
  static void gemm(const tt::backend::GemmArgs& g, const T* a, const T* b, T* c) {
    ++gemm_calls;
    tt::backend::Eigen::gemm(g, a, b, c);
  }
};
static_assert(tt::backend::prefers_fewer_calls<FewCallsEigen> && !tt::backend::prefers_fewer_calls<tt::backend::Eigen>);

TEST(Matmul, HeadSplitViewsBecomeOneBatchedGemmWhereCallsAreCostly) {
  // (B, T, H*Dh) -> (B, H, T, Dh) views: their (B, H) batch dims do not collapse to one stride.
  // The CPU backends loop over B; a backend that prefers fewer calls gets packed copies and one
  // strided-batched GEMM, with the same values.
  constexpr std::int64_t batch = 5, heads = 3, queries = 4, keys = 6, head_dim = 2;
  const auto scores = [&](auto backend_tag) {
    using B = decltype(backend_tag);
    tt::Rng rng(11);
    const auto q = tt::randn<double, B>({batch, queries, heads * head_dim}, rng).reshape({batch, queries, heads, head_dim}).transpose(1, 2);
    const auto k = tt::randn<double, B>({batch, keys, heads * head_dim}, rng).reshape({batch, keys, heads, head_dim}).transpose(1, 2);
    return tt::matmul(q, k.transpose(-1, -2)).to_vector();  // (B, H, T, S)
  };
  const auto looped = scores(tt::backend::Eigen{});
  FewCallsEigen::gemm_calls = 0;
  const auto packed = scores(FewCallsEigen{});
  EXPECT_EQ(FewCallsEigen::gemm_calls, 1);
  EXPECT_TRUE(all_close(packed, looped, 1e-14, 1e-14));
  EXPECT_EQ(packed.size(), std::size_t(batch * heads * queries * keys));
}

#endif

}  // namespace ops_forward_test
