// Bad input must raise tensortape::Error with a message that names the op and the shapes,
// never crash or return garbage.
#include "support/test_support.hpp"

namespace errors_test {

using namespace test;
using Cpu = tt::backend::Eigen;
using Tensor = tt::Tensor<float, Cpu>;

Tensor t(const tt::Shape& shape) { return tt::zeros<float, Cpu>(shape); }

TEST(Errors, ShapeMismatchesNameTheOpAndShapes) {
  expect_error([] { tt::add(t({2, 3}), t({4})); }, {"add", "[2, 3]", "[4]"});
  expect_error([] { tt::matmul(t({2, 3}), t({4, 5})); }, {"matmul", "inner dimensions", "[2, 3]", "[4, 5]"});
  expect_error([] { tt::matmul(t({3}), t({3, 2})); }, {"matmul", "rank"});
  expect_error([] { tt::matmul(t({2, 2, 3}), t({3, 3, 4})); }, {"matmul", "broadcast"});
  expect_error([] { t({2, 3}).reshape({4, 2}); }, {"reshape", "[2, 3]", "[4, 2]"});
  expect_error([] { t({2, 3}).reshape({-1, -1}); }, {"reshape", "-1"});
  expect_error([] { t({2, 3}).expand({4, 3}); }, {"expand", "[2, 3]"});
  expect_error([] { tt::concat<float, Cpu>({t({2, 3}), t({3, 3})}, 1); }, {"concat", "[2, 3]", "[3, 3]"});
  expect_error([] { tt::linear(t({2, 3}), t({4, 5})); }, {"linear", "[2, 3]"});
  expect_error([] { tt::layer_norm(t({2, 3}), t({4}), Tensor(), 1e-5); }, {"layer_norm", "[4]", "[2, 3]"});
  expect_error([] { tt::where(t({2, 3}), t({3, 2}), t({2, 3})); }, {"where"});
}

TEST(Errors, AxesAndRangesAreChecked) {
  expect_error([] { tt::sum(t({2, 3}), {2}); }, {"axis 2", "rank 2"});
  expect_error([] { tt::sum(t({2, 3}), {1, -1}); }, {"sum", "repeated"});
  expect_error([] { t({2, 3}).narrow(1, 2, 2); }, {"narrow", "out of bounds", "[2, 3]"});
  expect_error([] { t({2, 3}).permute({0, 0}); }, {"permute", "repeated"});
  expect_error([] { t({2, 3}).squeeze(0); }, {"squeeze", "not 1"});
  expect_error([] { tt::max(t({2, 0}), {1}); }, {"max", "empty"});
  expect_error([] { tt::from_vector<float, Cpu>({2, 2}, {1, 2, 3}); }, {"from_vector", "3 values", "[2, 2]"});
  expect_error([] { t({2, 3}).item(); }, {"item", "[2, 3]"});
  expect_error([] { tt::clamp(t({2}), 1.0, -1.0); }, {"clamp"});
  Tensor x = t({2});
  tt::Rng rng(1);
  expect_error([&] { tt::dropout(x, 1.0, rng); }, {"dropout", "[0, 1)"});
}

TEST(Errors, IndicesAndLabelsAreValidated) {
  const auto table = t({5, 2});
  expect_error([&] { tt::embedding(table, tt::from_vector<std::int64_t, Cpu>({2}, {1, 5})); }, {"index_select", "index 5", "[0, 5)"});
  expect_error([&] { tt::embedding(table, tt::from_vector<std::int64_t, Cpu>({1}, {-1})); }, {"index -1"});
  const auto logits = t({2, 3});
  expect_error([&] { tt::cross_entropy(logits, tt::from_vector<std::int64_t, Cpu>({2}, {0, 3})); }, {"cross_entropy", "label 3", "[0, 3)"});
  expect_error([&] { tt::cross_entropy(logits, tt::from_vector<std::int64_t, Cpu>({3}, {0, 1, 2})); }, {"cross_entropy", "[3]", "[2, 3]"});
  expect_error([&] { tt::kl_div(t({2, 3}), t({3, 2})); }, {"kl_div", "[2, 3]", "[3, 2]"});
}

TEST(Errors, AutogradMisuseIsReported) {
  // backward of something that does not require grad
  expect_error([] { tt::backward(tt::sum(t({2}))); }, {"backward", "does not require grad"});
  // non-scalar output without grad_outputs
  auto w = t({2}).requires_grad_();
  expect_error([&] { tt::backward(w * 2.0); }, {"backward", "one-element", "[2]"});
  // grad_output of the wrong shape
  expect_error([&] { tt::backward(w * 2.0, t({3})); }, {"grad_output", "[3]", "[2]"});
  // grad w.r.t. a tensor that was not used
  auto unused = t({2}).requires_grad_();
  expect_error([&] { tt::grad<float, Cpu>({tt::sum(w * w)}, {unused}); }, {"grad", "not used"});
  // requires_grad_ on a non-leaf
  auto y = w * 2.0;
  expect_error([&] { y.requires_grad_(false); }, {"requires_grad_", "leaf", "affine"});
}

template <class X, class Y>
constexpr bool can_add = requires(X x, Y y) { tt::add(x, y); };
template <class X, class Y>
constexpr bool can_matmul = requires(X x, Y y) { tt::matmul(x, y); };

TEST(Errors, ElementTypesAndBackendsMustMatchAtCompileTime) {
  // Mixing float and double, or two backends, is rejected by overload resolution (a compile
  // error in user code) rather than discovered at run time.
  using F = tt::Tensor<float, Cpu>;
  using D = tt::Tensor<double, Cpu>;
  using R = tt::Tensor<float, tt::backend::Reference>;
  EXPECT_FALSE((can_add<F, D>));
  EXPECT_FALSE((can_matmul<F, R>));
  EXPECT_TRUE((can_add<F, F>));
  EXPECT_TRUE((can_matmul<R, R>));
}

}  // namespace errors_test
