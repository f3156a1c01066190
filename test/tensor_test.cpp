// Layouts and views: which ops share storage, reshape's view rules, broadcasting, factories.
#include "support/test_support.hpp"

namespace tensor_test {

using namespace test;
using Cpu = tt::backend::Eigen;

std::vector<float> iota(int n) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = static_cast<float>(i);
  return v;
}

TEST(Tensor, ViewsShareStorageWithoutCopying) {
  auto x = tt::from_vector<float, Cpu>({2, 3, 4}, iota(24));
  for (const auto& view : {x.reshape({6, 4}), x.transpose(0, 2), x.permute({1, 2, 0}), x.narrow(2, 1, 2),
                           x.unsqueeze(0), x.narrow(0, 1, 1).squeeze(0), x.reshape({2, 1, 3, 4}).expand({2, 5, 3, 4})}) {
    EXPECT_TRUE(view.shares_storage_with(x));
  }
  const auto t = x.transpose(0, 2);  // (4, 3, 2)
  EXPECT_EQ(t.shape(), (tt::Shape{4, 3, 2}));
  EXPECT_EQ(t.strides(), (tt::Shape{1, 4, 12}));
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_EQ(t.narrow(0, 1, 1).to_vector(), (std::vector<float>{1, 13, 5, 17, 9, 21}));
  // A write through a view is visible in the base and bumps the shared version counter.
  const auto version = x.version();
  x.narrow(1, 2, 1).fill_(-1.0f);
  EXPECT_EQ(x.to_vector()[8], -1.0f);
  EXPECT_EQ(x.to_vector()[20], -1.0f);
  EXPECT_GT(x.version(), version);
}

TEST(Tensor, StorageBytesCountWhatIsHeldAndThePeak) {
  auto& c = tt::counters();
  const auto held = c.storage_bytes.load();
  c.reset_peak_storage();
  {
    auto a = tt::zeros<float, Cpu>({10, 10});                            // 400 bytes
    auto view = a.reshape({100});                                        // a view: no new storage
    EXPECT_EQ(c.storage_bytes.load() - held, 400);
    { auto b = tt::zeros<double, Cpu>({25}); EXPECT_EQ(c.storage_bytes.load() - held, 600); }  // + 200, then freed
    EXPECT_EQ(c.storage_bytes.load() - held, 400);
    EXPECT_EQ(c.peak_storage_bytes.load() - held, 600);
  }
  EXPECT_EQ(c.storage_bytes.load(), held);
  c.reset_peak_storage();
  EXPECT_EQ(c.peak_storage_bytes.load(), held);
}

TEST(Tensor, ReshapeViewsWhenStridesAllowAndCopiesOtherwise) {
  auto x = tt::from_vector<float, Cpu>({4, 6}, iota(24));
  // Splitting and merging dims of a column window keeps a view.
  auto window = x.narrow(1, 0, 4);  // (4, 4), row stride 6
  EXPECT_TRUE(window.reshape({4, 2, 2}).shares_storage_with(x));
  // Merging rows of a window is not expressible with strides: copy.
  auto merged = window.reshape({16});
  EXPECT_FALSE(merged.shares_storage_with(x));
  EXPECT_EQ(merged.to_vector()[4], 6.0f);
  // Transposed then flattened: copy, in row-major order of the transposed view.
  auto flat = x.t().reshape({24});
  EXPECT_EQ(flat.to_vector()[1], 6.0f);
  // Size-1 dims are free to appear or vanish.
  EXPECT_TRUE(x.t().reshape({6, 1, 4}).shares_storage_with(x));
  EXPECT_EQ(x.reshape({-1, 3}).shape(), (tt::Shape{8, 3}));
}

TEST(Tensor, BroadcastingFollowsNumpyRules) {
  EXPECT_EQ(tt::broadcast_shapes({2, 1, 4}, {3, 1}, "test"), (tt::Shape{2, 3, 4}));
  EXPECT_EQ(tt::broadcast_shapes({}, {3}, "test"), (tt::Shape{3}));
  EXPECT_THROW(tt::broadcast_shapes({2, 3}, {3, 2}, "test"), tt::Error);
  auto column = tt::from_vector<float, Cpu>({3, 1}, {1, 2, 3});
  auto row = tt::from_vector<float, Cpu>({4}, {10, 20, 30, 40});
  auto sum = column + row;
  EXPECT_EQ(sum.shape(), (tt::Shape{3, 4}));
  EXPECT_EQ(sum.to_vector()[5], 22.0f);
}

TEST(Tensor, FactoriesAndHostRoundTrips) {
  using F = tt::Tensor<float, Cpu>;
  const F zeros = tt::zeros<float, Cpu>({2, 2}), empty_rows = tt::zeros<float, Cpu>({0, 3});
  EXPECT_EQ(zeros.to_vector(), std::vector<float>(4, 0.0f));
  const auto halves = tt::full<double, Cpu>({3}, 2.5);
  EXPECT_EQ(halves.to_vector(), std::vector<double>(3, 2.5));
  const F scalar = tt::scalar_tensor<float, Cpu>(4.0f);
  EXPECT_EQ(scalar.dim(), 0);
  EXPECT_EQ(empty_rows.numel(), 0);
  EXPECT_EQ(tt::sum(empty_rows).item(), 0.0f);
  const auto d = tt::cast<double>(tt::from_vector<float, Cpu>({2}, {1.5f, -2.0f}));
  EXPECT_EQ(d.to_vector(), (std::vector<double>{1.5, -2.0}));
  const auto moved = tt::to_backend<tt::backend::Reference>(d);
  EXPECT_EQ(moved.to_vector(), d.to_vector());
  tt::Rng a(3), b(3);
  const F first = tt::rand<float, Cpu>({5}, a, -1, 1), second = tt::rand<float, Cpu>({5}, b, -1, 1);
  EXPECT_EQ(first.to_vector(), second.to_vector());
}

}  // namespace tensor_test
