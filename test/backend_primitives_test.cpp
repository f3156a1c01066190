// Every primitive of the vectorised CPU backends (Eigen, Xtensor) checked against
// backend::Reference on random inputs: contiguous, transposed, padded and broadcast (stride 0)
// views; every GEMM transpose combination with odd sizes, padded leading dimensions, batch
// strides (0 included), alpha/beta and NaN garbage in C under beta == 0; softmax on huge and
// -inf logits; max over -inf.
//
// Tolerances: relative 1e-5 (float) / 1e-12 (double), with an absolute floor of the same size
// for elementwise kernels: inputs are O(1) and several functions cancel (gelu and 1 + erf at
// negative x, x - max), so a result near 0 carries the input's absolute error, not its own
// relative one. Sums and GEMMs are compared relative to the sum of |terms|, because their
// summation order (vector lanes, BLAS blocking) legitimately differs from Reference's loop.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "tensortape/backend/eigen.hpp"
#include "tensortape/backend/reference.hpp"
#include "tensortape/core/rng.hpp"
#if defined(TENSORTAPE_HAS_XTENSOR)
#include "tensortape/backend/xtensor.hpp"
#endif
#if defined(TENSORTAPE_TEST_CUDA)
#include "cuda/device_staged.hpp"
#endif

namespace backend_primitives_test {

namespace tt = tensortape;
using tt::Shape;
using tt::backend::Binary;
using tt::backend::ConstView;
using tt::backend::GemmArgs;
using tt::backend::Reduce;
using tt::backend::Reference;
using tt::backend::Unary;
using tt::backend::UnaryArgs;

template <class B, class T>
struct Case {
  using Backend = B;
  using Scalar = T;
};

struct CaseNames {
  template <class C>
  static std::string GetName(int) {
    return std::string(C::Backend::name) + (std::is_same_v<typename C::Scalar, float> ? "_float" : "_double");
  }
};

#if defined(TENSORTAPE_TEST_CUDA)
// The same checks on backend::Cuda, through host-staged copies (test/cuda/device_staged.hpp).
using CudaStaged = test::DeviceStaged<tt::backend::Cuda>;
using Cases = ::testing::Types<Case<CudaStaged, float>, Case<CudaStaged, double>>;
#else
using Cases = ::testing::Types<Case<tt::backend::Eigen, float>, Case<tt::backend::Eigen, double>
#if defined(TENSORTAPE_HAS_XTENSOR)
                               , Case<tt::backend::Xtensor, float>, Case<tt::backend::Xtensor, double>
#endif
                               >;
#endif

constexpr double kInf = std::numeric_limits<double>::infinity();

// Same value, or both NaN, or the same infinity; else within atol + rtol * scale.
bool close_enough(double got, double want, double tolerance) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  return std::abs(got - want) <= tolerance;
}

// Fails with the first few differing elements; tolerance[i] is the allowed |got - want|.
template <class T>
void expect_near_each(const std::vector<T>& got, const std::vector<T>& want, const std::vector<double>& tolerance,
                      const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int reported = 0;
  for (std::size_t i = 0; i < got.size() && reported < 5; ++i) {
    if (!close_enough(got[i], want[i], tolerance[i])) {
      ADD_FAILURE() << what << ": element " << i << " is " << got[i] << ", Reference says " << want[i]
                    << " (allowed difference " << tolerance[i] << ")";
      ++reported;
    }
  }
}

// allclose with rtol == atol: for results of O(1) inputs.
template <class T>
void expect_allclose(const std::vector<T>& got, const std::vector<T>& want, double rtol, const std::string& what) {
  std::vector<double> tolerance(want.size());
  for (std::size_t i = 0; i < want.size(); ++i) tolerance[i] = rtol * std::max(1.0, std::abs(double(want[i])));
  expect_near_each(got, want, tolerance, what);
}

// A strided view over storage it owns.
template <class T>
struct OwnedView {
  std::string label;
  Shape shape, strides;
  std::int64_t offset = 0;
  std::vector<T> storage;
  ConstView<T> view() const { return {storage.data() + offset, shape, strides}; }
};

struct LayoutSpec {
  const char* label;
  Shape strides;
  std::int64_t offset;
  std::int64_t storage;
};

// Several layouts of one logical shape: each exercises a different path of the row splitter
// (one contiguous row, unit-stride rows with gaps, stride-0 rows, gathers).
std::vector<LayoutSpec> layouts_of(const Shape& shape) {
  if (shape.empty()) return {{"scalar", {}, 0, 1}};
  if (shape.size() == 2) {
    const std::int64_t m = shape[0], n = shape[1];
    return {{"contiguous", {n, 1}, 0, m * n},       {"transposed", {1, m}, 0, m * n},
            {"padded", {n + 3, 1}, 2, m * (n + 3) + 2}, {"row_broadcast", {0, 1}, 0, n},
            {"column_broadcast", {1, 0}, 0, m},     {"scalar_broadcast", {0, 0}, 0, 1}};
  }
  const std::int64_t d0 = shape[0], d1 = shape[1], d2 = shape[2];
  return {{"contiguous", {d1 * d2, d2, 1}, 0, d0 * d1 * d2},
          {"permuted", {1, d0, d0 * d1}, 0, d0 * d1 * d2},
          {"padded", {d1 * (d2 + 1), d2 + 1, 1}, 1, d0 * d1 * (d2 + 1) + 1},
          {"bias_broadcast", {0, 0, 1}, 0, d2},
          {"middle_broadcast", {d2, 0, 1}, 0, d0 * d2}};
}

// (5, 37): rows long enough for the vector kernels; (3, 4): short rows, the fallback loop;
// (2, 3, 20): 3-d broadcasts; {}: a rank-0 tensor.
const std::vector<Shape> kShapes = {{5, 37}, {3, 4}, {2, 3, 20}, {}};

enum class Values { Normal, Wide, Positive, Quantized, Condition };

template <class C>
class BackendPrimitives : public ::testing::Test {
 protected:
  using B = typename C::Backend;
  using T = typename C::Scalar;
  static constexpr double rtol = std::is_same_v<T, float> ? 1e-5 : 1e-12;

#if defined(TENSORTAPE_TEST_CUDA)
  void SetUp() override {
    if (const auto why = B::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
  }
#endif

  T draw(Values kind) {
    switch (kind) {
      case Values::Normal: return T(rng.normal());
      case Values::Wide: return T(3 * rng.normal());
      case Values::Positive: return T(0.1 + std::abs(3 * rng.normal()));
      case Values::Quantized: return T(std::round(4 * rng.normal()) / 4);  // repeats, zeros: Equal, Div by 0
      case Values::Condition: return T(rng.below(2));
    }
    return T(0);
  }

  std::vector<T> random(std::int64_t n, Values kind = Values::Normal) {
    std::vector<T> out(static_cast<std::size_t>(n));
    for (auto& v : out) v = draw(kind);
    return out;
  }

  std::vector<OwnedView<T>> views_of(const Shape& shape, Values kind) {
    std::vector<OwnedView<T>> out;
    for (const auto& spec : layouts_of(shape)) {
      out.push_back({spec.label, shape, spec.strides, spec.offset, random(spec.storage, kind)});
    }
    return out;
  }

  tt::Rng rng{20240611};
};

TYPED_TEST_SUITE(BackendPrimitives, Cases, CaseNames);

TYPED_TEST(BackendPrimitives, UnaryMatchesReferenceOnEveryLayout) {
  using T = typename TestFixture::T;
  using B = typename TestFixture::B;
  struct OpCase {
    const char* label;
    UnaryArgs args;
    Values values;
  };
  const std::vector<OpCase> ops = {
      {"affine", {Unary::Affine, 1.5, -0.25}, Values::Normal}, {"exp", {Unary::Exp}, Values::Wide},
      {"log", {Unary::Log}, Values::Positive},                 {"sqrt", {Unary::Sqrt}, Values::Positive},
      {"rsqrt", {Unary::Rsqrt}, Values::Positive},             {"abs", {Unary::Abs}, Values::Quantized},
      {"sign", {Unary::Sign}, Values::Quantized},              {"tanh", {Unary::Tanh}, Values::Wide},
      {"sigmoid", {Unary::Sigmoid}, Values::Wide},             {"relu", {Unary::Relu}, Values::Quantized},
      {"erf", {Unary::Erf}, Values::Wide},                     {"gelu_erf", {Unary::GeluErf}, Values::Wide},
      {"gelu_tanh", {Unary::GeluTanh}, Values::Wide},          {"pow_fraction", {Unary::Pow, 2.5}, Values::Positive},
      {"pow_cube", {Unary::Pow, 3.0}, Values::Normal},         {"clamp", {Unary::Clamp, -0.5, 0.75}, Values::Quantized},
      {"in_range", {Unary::InRange, -0.5, 0.75}, Values::Quantized}, {"step", {Unary::Step}, Values::Quantized},
  };
  for (const auto& op : ops) {
    for (const auto& shape : kShapes) {
      for (const auto& x : this->views_of(shape, op.values)) {
        const auto count = tt::numel_of(shape);
        std::vector<T> got(count), want(count);
        B::unary(op.args, x.view(), got.data());
        Reference::unary(op.args, x.view(), want.data());
        expect_allclose(got, want, this->rtol, std::string(op.label) + " of " + x.label + " " + tt::shape_str(shape));
      }
    }
  }
}

TYPED_TEST(BackendPrimitives, BinaryMatchesReferenceOnEveryPairOfLayouts) {
  using T = typename TestFixture::T;
  using B = typename TestFixture::B;
  const std::vector<std::pair<const char*, Binary>> ops = {
      {"add", Binary::Add},         {"sub", Binary::Sub},         {"mul", Binary::Mul},
      {"div", Binary::Div},         {"maximum", Binary::Maximum}, {"minimum", Binary::Minimum},
      {"equal", Binary::Equal},     {"greater", Binary::Greater}, {"less", Binary::Less}};
  for (const auto& shape : kShapes) {
    const auto lhs = this->views_of(shape, Values::Quantized);
    const auto rhs = this->views_of(shape, Values::Quantized);
    const auto count = tt::numel_of(shape);
    for (const auto& [label, op] : ops) {
      for (const auto& a : lhs) {
        for (const auto& b : rhs) {
          std::vector<T> got(count), want(count);
          B::binary(op, a.view(), b.view(), got.data());
          Reference::binary(op, a.view(), b.view(), want.data());
          expect_allclose(got, want, this->rtol,
                          std::string(label) + " of " + a.label + " and " + b.label + " " + tt::shape_str(shape));
        }
      }
    }
  }
}

TYPED_TEST(BackendPrimitives, WhereMatchesReferenceOnEveryTripleOfLayouts) {
  using T = typename TestFixture::T;
  using B = typename TestFixture::B;
  for (const auto& shape : kShapes) {
    const auto conditions = this->views_of(shape, Values::Condition);
    const auto lhs = this->views_of(shape, Values::Normal);
    const auto rhs = this->views_of(shape, Values::Normal);
    const auto count = tt::numel_of(shape);
    for (const auto& c : conditions) {
      for (const auto& a : lhs) {
        for (const auto& b : rhs) {
          std::vector<T> got(count), want(count);
          B::where(c.view(), a.view(), b.view(), got.data());
          Reference::where(c.view(), a.view(), b.view(), want.data());
          expect_allclose(got, want, 0.0,
                          "where " + c.label + " of " + a.label + " and " + b.label + " " + tt::shape_str(shape));
        }
      }
    }
  }
}

TYPED_TEST(BackendPrimitives, EmptyTensorsWriteNothing) {
  using T = typename TestFixture::T;
  using B = typename TestFixture::B;
  const std::vector<T> storage(4, T(1));
  const ConstView<T> empty{storage.data(), {0, 5}, {5, 1}};
  std::vector<T> out(1, T(7));
  B::unary(UnaryArgs{Unary::Exp}, empty, out.data());
  B::binary(Binary::Add, empty, empty, out.data());
  B::where(empty, empty, empty, out.data());
  EXPECT_EQ(out[0], T(7));
}

TYPED_TEST(BackendPrimitives, ReduceMatchesReferenceIncludingMinusInfinity) {
  using T = typename TestFixture::T;
  using B = typename TestFixture::B;
  struct Extent {
    std::int64_t outer, n, inner;
  };
  // inner == 1 reduces contiguous columns; inner > 1 accumulates rows; n == 0 gives the identity.
  const std::vector<Extent> extents = {{3, 17, 1}, {2, 33, 19}, {1, 1, 5}, {5, 200, 1}, {4, 0, 3}, {0, 5, 3}, {3, 4, 40}};
  for (const auto& [outer, n, inner] : extents) {
    auto x = this->random(outer * n * inner, Values::Wide);  // (outer, n, inner)
    for (std::size_t i = 0; i < x.size(); i += 7) x[i] = T(-kInf);
    if (n > 0 && inner > 1 && outer > 0) {
      for (std::int64_t j = 0; j < n; ++j) x[j * inner] = T(-kInf);  // column 0 of block 0: all -inf
    }
    std::vector<T> magnitude(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) magnitude[i] = std::isinf(x[i]) ? T(0) : std::abs(x[i]);
    for (auto op : {Reduce::Sum, Reduce::Max}) {
      std::vector<T> got(outer * inner, T(-1)), want(outer * inner, T(-1)), scale(outer * inner);
      B::reduce(op, x.data(), outer, n, inner, got.data());
      Reference::reduce(op, x.data(), outer, n, inner, want.data());
      Reference::reduce(Reduce::Sum, magnitude.data(), outer, n, inner, scale.data());
      std::vector<double> tolerance(scale.size());
      for (std::size_t i = 0; i < scale.size(); ++i) tolerance[i] = this->rtol * double(scale[i]);
      expect_near_each(got, want, tolerance,
                       std::string(op == Reduce::Sum ? "sum" : "max") + " over n of " + tt::shape_str({outer, n, inner}));
    }
  }
}

TYPED_TEST(BackendPrimitives, SoftmaxIsStableForHugeLogitsAndMinusInfinity) {
  using T = typename TestFixture::T;
  using B = typename TestFixture::B;
  struct Extent {
    std::int64_t rows, cols;
  };
  for (const auto& [rows, cols] : std::vector<Extent>{{4, 37}, {3, 5}, {2, 1000}, {1, 1}, {0, 8}}) {
    auto x = this->random(rows * cols, Values::Wide);  // (rows, cols)
    if (rows > 1) {
      for (std::int64_t c = 0; c < cols; ++c) x[cols + c] = T(1e4) + T(300) * x[cols + c];  // exp would overflow
    }
    if (rows > 2) {
      for (std::int64_t c = 0; c < cols; c += 3) x[2 * cols + c] = T(-kInf);  // masked positions
    }
    for (bool log : {false, true}) {
      std::vector<T> got(x.size()), want(x.size());
      B::softmax(x.data(), rows, cols, got.data(), log);
      Reference::softmax(x.data(), rows, cols, want.data(), log);
      for (T v : got) ASSERT_FALSE(std::isnan(v)) << "softmax produced NaN";
      // Relative, with a floor far below any probability that matters: an underflowing
      // exp may come out as 0 or as a denormal.
      // log_softmax is x - max - log(sum), and the log of a sum near 1 keeps that sum's rounding
      // (an ulp of 1 is epsilon) as an absolute error, which backends summing in another order
      // (the GPU's tree) see even where the result is near 0 and a relative tolerance is tiny.
      const double log_sum_error = log ? 4.0 * std::numeric_limits<T>::epsilon() * std::log2(double(cols) + 1.0) : 0.0;
      std::vector<double> tolerance(want.size());
      for (std::size_t i = 0; i < want.size(); ++i) {
        tolerance[i] = this->rtol * std::abs(double(want[i])) + log_sum_error + 1e-30;
      }
      expect_near_each(got, want, tolerance, std::string(log ? "log_softmax " : "softmax ") + tt::shape_str({rows, cols}));
    }
  }
}

struct GemmCase {
  std::string label;
  GemmArgs args;
};

// Stored rows/cols of A and B, and the elements a buffer needs for all batches.
std::int64_t batched_size(std::int64_t rows, std::int64_t ld, std::int64_t stride, std::int64_t batch) {
  return (batch - 1) * stride + (rows - 1) * ld + ld;
}

std::vector<GemmCase> gemm_cases() {
  std::vector<GemmCase> cases;
  const auto packed = [](bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k) {
    GemmArgs g{.trans_a = ta, .trans_b = tb, .m = m, .n = n, .k = k};
    g.lda = ta ? m : k;
    g.ldb = tb ? k : n;
    g.ldc = n;
    g.stride_a = m * k;
    g.stride_b = k * n;
    g.stride_c = m * n;
    return g;
  };
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const std::string t = std::string(ta ? "T" : "N") + (tb ? "T" : "N");
      struct Size {
        std::int64_t m, n, k;
      };
      // (1,1,1) and (7,5,3) stay on Eigen's coefficient-based product; the rest reach BLAS, and
      // from 2^20 multiply-adds backend::Eigen's float ones oneDNN where it is built with it.
      for (const auto& [m, n, k] : std::vector<Size>{{1, 1, 1}, {7, 5, 3}, {33, 17, 65}, {64, 48, 80}, {150, 90, 120}}) {
        cases.push_back({t + " " + std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k),
                         packed(ta, tb, m, n, k)});
      }
      auto padded = packed(ta, tb, 20, 18, 30);
      padded.lda += 3;
      padded.ldb += 5;
      padded.ldc += 2;
      padded.beta = 0.5;
      cases.push_back({t + " padded leading dims, beta 0.5", padded});

      auto large = packed(ta, tb, 130, 97, 100);  // 1.26M multiply-adds
      large.lda += 3;
      large.ldb += 5;
      large.ldc += 2;
      large.alpha = -2.0;
      large.beta = 0.5;
      cases.push_back({t + " 130x97x100 padded leading dims, alpha -2, beta 0.5", large});
      auto large_batched = packed(ta, tb, 128, 64, 128);  // 1.05M each
      large_batched.batch = 2;
      large_batched.stride_a += 7;
      large_batched.stride_b = 0;
      large_batched.stride_c += 4;
      cases.push_back({t + " batch 2 of 128x64x128, shared B", large_batched});

      auto batched = packed(ta, tb, 9, 11, 13);
      batched.batch = 3;
      batched.alpha = 0.5;
      batched.stride_a += 7;  // gaps between matrices
      batched.stride_c += 4;
      cases.push_back({t + " batch 3, alpha 0.5", batched});
      auto shared_a = batched;
      shared_a.stride_a = 0;  // one A for every batch: a weight against a batch of inputs
      shared_a.beta = 1.0;
      cases.push_back({t + " batch 3, shared A, beta 1", shared_a});
      auto shared_b = batched;
      shared_b.stride_b = 0;
      shared_b.alpha = -2.0;
      shared_b.beta = 0.75;
      cases.push_back({t + " batch 3, shared B, alpha -2, beta 0.75", shared_b});
    }
  }
  cases.push_back({"NN one row, 1x1100x1000", packed(false, false, 1, 1100, 1000)});
  auto accumulate_into_one = packed(false, false, 6, 7, 21);
  accumulate_into_one.batch = 4;
  accumulate_into_one.stride_c = 0;  // every batch adds into the same C
  accumulate_into_one.beta = 1.0;
  cases.push_back({"NN batch 4 into one C", accumulate_into_one});
  auto attention = packed(false, true, 8, 16, 64);  // Q (8, 64) @ K^T, K (16, 64)
  attention.batch = 8;
  cases.push_back({"NT attention-shaped batch 8", attention});
  cases.push_back({"NN 257x256x255 (threaded BLAS)", packed(false, false, 257, 256, 255)});
  cases.push_back({"TT 129x131x127", packed(true, true, 129, 131, 127)});
  auto alpha_zero = packed(false, false, 5, 40, 7);
  alpha_zero.alpha = 0.0;
  alpha_zero.beta = 0.5;
  cases.push_back({"alpha 0, beta 0.5", alpha_zero});
  cases.push_back({"k 0, beta 0", packed(false, false, 3, 4, 0)});
  auto empty_sum_scaled = packed(true, false, 3, 4, 0);
  empty_sum_scaled.beta = 0.5;
  cases.push_back({"k 0, beta 0.5", empty_sum_scaled});
  cases.push_back({"m 0", packed(false, false, 0, 4, 5)});
  cases.push_back({"n 0", packed(false, true, 4, 0, 5)});
  return cases;
}

TYPED_TEST(BackendPrimitives, GemmMatchesReferenceForEveryTransposeStrideAndScale) {
  using T = typename TestFixture::T;
  using B = typename TestFixture::B;
  for (const auto& [label, g] : gemm_cases()) {
    const std::int64_t a_rows = g.trans_a ? g.k : g.m, b_rows = g.trans_b ? g.n : g.k;
    auto a = this->random(std::max<std::int64_t>(1, batched_size(a_rows, g.lda, g.stride_a, g.batch)));
    auto b = this->random(std::max<std::int64_t>(1, batched_size(b_rows, g.ldb, g.stride_b, g.batch)));
    std::vector<T> c_before = this->random(std::max<std::int64_t>(1, batched_size(g.m, g.ldc, g.stride_c, g.batch)));
    // beta == 0 must overwrite C without reading it: fill it with NaN to prove it.
    if (g.beta == 0.0) c_before.assign(c_before.size(), std::numeric_limits<T>::quiet_NaN());

    std::vector<T> got = c_before, want = c_before;
    B::gemm(g, a.data(), b.data(), got.data());
    Reference::gemm(g, a.data(), b.data(), want.data());

    // The same product on |A|, |B|, |C| bounds every rounding error.
    auto magnitude = [](std::vector<T> v) {
      for (auto& e : v) e = std::isnan(e) ? T(0) : std::abs(e);
      return v;
    };
    GemmArgs bound_args = g;
    bound_args.alpha = std::abs(g.alpha);
    bound_args.beta = std::abs(g.beta);
    auto scale = magnitude(c_before);
    Reference::gemm(bound_args, magnitude(a).data(), magnitude(b).data(), scale.data());
    std::vector<double> tolerance(scale.size());
    for (std::size_t i = 0; i < scale.size(); ++i) tolerance[i] = this->rtol * double(scale[i]);
    // Elements outside the (m, n) windows are padding and must be untouched; the check covers them.
    expect_near_each(got, want, tolerance, "gemm " + label);
  }
}

TYPED_TEST(BackendPrimitives, IndexSelectAndIndexAddMatchReference) {
  using T = typename TestFixture::T;
  using B = typename TestFixture::B;
  struct Extent {
    std::int64_t outer, dim, inner;
  };
  const std::vector<std::int64_t> idx = {3, 0, 3, 1, 4, 3};  // repeats: index_add must accumulate
  const auto count = static_cast<std::int64_t>(idx.size());
  for (const auto& [outer, dim, inner] : std::vector<Extent>{{2, 7, 19}, {3, 5, 1}, {1, 10, 64}, {2, 6, 0}}) {
    const auto label = tt::shape_str({outer, dim, inner});
    const auto table = this->random(outer * dim * inner);  // (outer, dim, inner)
    std::vector<T> got(outer * count * inner), want(got.size());  // (outer, count, inner)
    B::index_select(table.data(), outer, dim, inner, idx.data(), count, got.data());
    Reference::index_select(table.data(), outer, dim, inner, idx.data(), count, want.data());
    expect_allclose(got, want, 0.0, "index_select " + label);

    const auto updates = this->random(outer * count * inner);  // (outer, count, inner)
    std::vector<T> got_sum = table, want_sum = table;        // (outer, dim, inner)
    B::index_add(updates.data(), outer, count, inner, idx.data(), dim, got_sum.data());
    Reference::index_add(updates.data(), outer, count, inner, idx.data(), dim, want_sum.data());
    expect_allclose(got_sum, want_sum, this->rtol, "index_add " + label);
  }
}

TYPED_TEST(BackendPrimitives, AdamStepMatchesReferenceWithEveryWeightDecay) {
  using T = typename TestFixture::T;
  using B = typename TestFixture::B;
  for (const std::int64_t n : {std::int64_t(1000), std::int64_t(1), std::int64_t(0)}) {
    for (const auto& [weight_decay, decoupled] : std::vector<std::pair<double, bool>>{{0.0, false}, {0.1, false}, {0.1, true}}) {
      tt::backend::AdamArgs args;
      args.lr = 0.01, args.beta1 = 0.9, args.beta2 = 0.999, args.eps = 1e-8;
      args.weight_decay = weight_decay, args.decoupled = decoupled;
      args.correction1 = 1.0 - std::pow(0.9, 3.0), args.correction2_sqrt = std::sqrt(1.0 - std::pow(0.999, 3.0));  // step 3
      const auto param = this->random(n), grad = this->random(n), exp_avg = this->random(n);
      auto exp_avg_sq = this->random(n, Values::Positive);
      std::vector<T> got_p = param, got_m = exp_avg, got_v = exp_avg_sq;
      std::vector<T> want_p = param, want_m = exp_avg, want_v = exp_avg_sq;
      B::adam_step(args, got_p.data(), grad.data(), got_m.data(), got_v.data(), n);
      Reference::adam_step(args, want_p.data(), grad.data(), want_m.data(), want_v.data(), n);
      const std::string label = "adam_step n=" + std::to_string(n) + (decoupled ? " AdamW" : " Adam") +
                                " weight_decay=" + std::to_string(weight_decay);
      expect_allclose(got_p, want_p, this->rtol, label + " param");
      expect_allclose(got_m, want_m, this->rtol, label + " exp_avg");
      expect_allclose(got_v, want_v, this->rtol, label + " exp_avg_sq");
      if (n > 0) {
        EXPECT_NE(got_p, param) << label << ": the parameter did not move";
      }
    }
  }
}

TYPED_TEST(BackendPrimitives, MemoryPrimitivesRoundTrip) {
  using T = typename TestFixture::T;
  using B = typename TestFixture::B;
  const auto host = this->random(12);
  T* device = B::template allocate<T>(12);
  B::copy_from_host(host.data(), 12, device);
  std::vector<T> back(12);
  B::copy_to_host(device, 12, back.data());
  EXPECT_EQ(back, host);
  // Transposing copy: (3, 4) seen as (4, 3) with strides (1, 4) into a contiguous (4, 3).
  T* transposed = B::template allocate<T>(12);
  B::copy_strided(ConstView<T>{device, {4, 3}, {1, 4}}, tt::backend::StridedView<T>{transposed, {4, 3}, {3, 1}});
  B::copy_to_host(transposed, 12, back.data());
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(back[r * 3 + c], host[c * 4 + r]);
  B::fill(device, 12, T(2.5));
  B::copy_to_host(device, 12, back.data());
  EXPECT_EQ(back, std::vector<T>(12, T(2.5)));
  B::deallocate(transposed, 12);
  B::deallocate(device, 12);
}

}  // namespace backend_primitives_test
