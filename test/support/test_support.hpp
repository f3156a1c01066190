// Shared test helpers: the backend list for typed tests, seeded inputs on host and device, and
// closeness checks that name the first element that differs.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "tensortape/tensortape.hpp"
#if defined(TENSORTAPE_TEST_CUDA)
#include "tensortape/backend/cuda/backend.hpp"
#endif

namespace tt = tensortape;

namespace test {

using Ref = tt::backend::Reference;

template <class T, class B>
struct Config {
  using Value = T;
  using Backend = B;
};

#if defined(TENSORTAPE_HAS_XTENSOR)
#define TENSORTAPE_TEST_XTENSOR(T) , Config<T, tt::backend::Xtensor>
#else
#define TENSORTAPE_TEST_XTENSOR(T)
#endif

#if defined(TENSORTAPE_TEST_CUDA)
// The same typed tests built again for backend::Cuda (test/CMakeLists.txt, cuda_* targets).
using AllConfigs = ::testing::Types<Config<float, tt::backend::Cuda>, Config<double, tt::backend::Cuda>>;
using DoubleConfigs = ::testing::Types<Config<double, tt::backend::Cuda>>;
#else
// Every CPU backend in float and double.
using AllConfigs = ::testing::Types<Config<float, Ref>, Config<double, Ref>, Config<float, tt::backend::Eigen>,
                                    Config<double, tt::backend::Eigen> TENSORTAPE_TEST_XTENSOR(float)
                                        TENSORTAPE_TEST_XTENSOR(double)>;
// Every CPU backend in double (finite-difference checks).
using DoubleConfigs = ::testing::Types<Config<double, Ref>, Config<double, tt::backend::Eigen> TENSORTAPE_TEST_XTENSOR(double)>;
#endif

// Why backend B cannot run here (no device), or empty: CPU backends always can.
template <class B>
std::string backend_unavailable_reason() {
#if defined(TENSORTAPE_TEST_CUDA)
  if constexpr (std::is_same_v<B, tt::backend::Cuda>) {
    const std::string why = tt::backend::cuda::device_unavailable_reason();
    return why.empty() ? why : "no CUDA device visible (" + why + ")";
  }
#endif
  return {};
}

// In a plain TEST: skips it, saying why, when backend B has no device.
#define SKIP_UNLESS_BACKEND_AVAILABLE(B)                                                     \
  if (const auto why = ::test::backend_unavailable_reason<B>(); !why.empty()) GTEST_SKIP() << why

// Base of the typed fixtures: skips each test, saying why, when its backend has no device.
template <class C>
class BackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const auto why = backend_unavailable_reason<typename C::Backend>(); !why.empty()) GTEST_SKIP() << why;
  }
};

struct ConfigNames {
  template <class C>
  static std::string GetName(int) {
    return std::string(C::Backend::name) + "_" + tt::dtype_name<typename C::Value>;
  }
};

// Where random inputs are drawn from, so that each op sees a smooth, well-defined region.
enum class Domain {
  Any,           // N(0, 1)
  Positive,      // U(0.5, 2): log, sqrt, rsqrt, pow, div denominators
  AwayFromZero,  // +-U(0.2, 1.5): abs, relu, clamp kinks stay out of finite-difference reach
  Probability,   // U(0.05, 1): kl_div targets, bce targets
};

inline std::vector<double> random_values(std::int64_t n, Domain domain, tt::Rng& rng) {
  std::vector<double> values(static_cast<std::size_t>(n));
  for (auto& v : values) {
    switch (domain) {
      case Domain::Any: v = rng.normal(); break;
      case Domain::Positive: v = rng.uniform(0.5, 2.0); break;
      case Domain::AwayFromZero: v = (rng.uniform() < 0.5 ? -1.0 : 1.0) * rng.uniform(0.2, 1.5); break;
      case Domain::Probability: v = rng.uniform(0.05, 1.0); break;
    }
  }
  return values;
}

// How an input tensor is laid out in memory, to exercise strided kernels.
enum class Layout {
  Contiguous,
  Transposed,  // last two dims stored swapped: a transpose() view
  Narrowed,    // a window of a wider buffer along the last dim: non-unit row stride
};

// A tensor of `shape` holding `values` (row-major) with the given memory layout. The result
// is a leaf (safe to requires_grad_()).
template <class T, class B>
tt::Tensor<T, B> make_tensor(const tt::Shape& shape, const std::vector<double>& values, Layout layout) {
  const std::vector<T> cast(values.begin(), values.end());
  const auto rank = static_cast<std::int64_t>(shape.size());
  if (layout == Layout::Transposed && rank >= 2) {
    tt::Shape stored = shape;
    std::swap(stored[rank - 1], stored[rank - 2]);
    auto contiguous = tt::from_vector<T, B>(shape, cast);
    auto base = tt::empty<T, B>(stored);
    base.transpose(-1, -2).copy_(contiguous);
    return base.transpose(-1, -2).detach();
  }
  if (layout == Layout::Narrowed && rank >= 1) {
    tt::Shape wider = shape;
    wider[rank - 1] += 3;
    auto base = tt::full<T, B>(wider, T(1e30));  // garbage outside the window must never be read
    auto window = base.narrow(-1, 2, shape[rank - 1]);
    window.copy_(tt::from_vector<T, B>(shape, cast));
    return window.detach();
  }
  return tt::from_vector<T, B>(shape, cast);
}

template <class T>
double default_tolerance() {
  return std::is_same_v<T, float> ? 2e-5 : 1e-11;
}

// |a - b| <= atol + rtol |b| elementwise, reporting the first failure.
template <class A, class Bv>
::testing::AssertionResult all_close(const std::vector<A>& actual, const std::vector<Bv>& expected, double rtol, double atol) {
  if (actual.size() != expected.size()) {
    return ::testing::AssertionFailure() << "size " << actual.size() << " vs " << expected.size();
  }
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const double a = static_cast<double>(actual[i]), e = static_cast<double>(expected[i]);
    if (std::isnan(a) && std::isnan(e)) continue;
    if (std::isinf(a) && std::isinf(e) && (a > 0) == (e > 0)) continue;
    if (!(std::abs(a - e) <= atol + rtol * std::abs(e))) {
      return ::testing::AssertionFailure() << "element " << i << ": " << a << " vs expected " << e << " (diff "
                                           << std::abs(a - e) << ", rtol " << rtol << ", atol " << atol << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

// Runs `action`, expecting a tensortape::Error whose message contains every fragment.
template <class F>
void expect_error(F&& action, std::initializer_list<std::string> fragments) {
  try {
    action();
    ADD_FAILURE() << "expected tensortape::Error";
  } catch (const tt::Error& e) {
    const std::string message = e.what();
    for (const auto& fragment : fragments) {
      EXPECT_NE(message.find(fragment), std::string::npos) << "message \"" << message << "\" lacks \"" << fragment << "\"";
    }
  }
}

}  // namespace test
