// Every op's gradient against float64 central finite differences (the full Jacobian, one
// backward per output element, flashlight style), and the gradient of a gradient for every
// op-table entry against finite differences of the gradient (ENN's second-order path).
#include "support/op_table.hpp"

namespace gradcheck_test {

using namespace test;

template <class C>
class GradCheck : public BackendTest<C> {};
TYPED_TEST_SUITE(GradCheck, DoubleConfigs, ConfigNames);

constexpr double kStep = 1e-6;

template <class B>
struct Inputs {
  std::vector<std::vector<double>> values;  // host copies we perturb

  std::vector<tt::Tensor<double, B>> build(const OpCase<double, B>& op, bool requires_grad) const {
    std::vector<tt::Tensor<double, B>> tensors;
    for (std::size_t i = 0; i < values.size(); ++i) {
      auto t = make_tensor<double, B>(op.shapes[i], values[i], op.layout(i));
      if (requires_grad) t.requires_grad_();
      tensors.push_back(t);
    }
    return tensors;
  }
};

template <class B>
Inputs<B> random_inputs(const OpCase<double, B>& op, std::uint64_t seed) {
  tt::Rng rng(seed);
  Inputs<B> in;
  for (std::size_t i = 0; i < op.shapes.size(); ++i) in.values.push_back(random_values(tt::numel_of(op.shapes[i]), op.domain(i), rng));
  return in;
}

// Central difference of f(inputs) w.r.t. input k, element e.
template <class B, class F>
std::vector<double> central_difference(Inputs<B> in, std::size_t k, std::size_t e, F&& f) {
  const double original = in.values[k][e];
  in.values[k][e] = original + kStep;
  const auto plus = f(in);
  in.values[k][e] = original - kStep;
  const auto minus = f(in);
  std::vector<double> slope(plus.size());
  for (std::size_t j = 0; j < plus.size(); ++j) slope[j] = (plus[j] - minus[j]) / (2 * kStep);
  return slope;
}

TYPED_TEST(GradCheck, JacobianMatchesFiniteDifferences) {
  using B = typename TypeParam::Backend;
  for (const auto& op : op_table<double, B>()) {
    SCOPED_TRACE(op.name);
    const auto in = random_inputs(op, 11);
    auto inputs = in.build(op, true);
    const auto output = op.apply(inputs);
    ASSERT_TRUE(output.requires_grad());
    const std::size_t outputs = static_cast<std::size_t>(output.numel());

    // Analytic Jacobian rows: d output[j] / d inputs, one backward per output element.
    std::vector<std::vector<std::vector<double>>> rows;  // [j][k] -> gradient of input k
    for (std::size_t j = 0; j < outputs; ++j) {
      std::vector<double> one_hot(outputs, 0.0);
      one_hot[j] = 1.0;
      auto grads = tt::grad<double, B>({output}, inputs, {tt::from_vector<double, B>(output.shape(), one_hot)},
                                       false, /*retain_graph=*/true, /*allow_unused=*/true);
      std::vector<std::vector<double>> row;
      for (auto& g : grads) row.push_back(g.to_vector());
      rows.push_back(row);
    }
    // Numerical Jacobian columns, compared entry by entry.
    const auto evaluate = [&](const Inputs<B>& perturbed) {
      tt::NoGradGuard no_grad;
      return op.apply(perturbed.build(op, false)).to_vector();
    };
    for (std::size_t k = 0; k < inputs.size(); ++k) {
      for (std::size_t e = 0; e < in.values[k].size(); ++e) {
        const auto column = central_difference(in, k, e, evaluate);
        for (std::size_t j = 0; j < outputs; ++j) {
          ASSERT_NEAR(rows[j][k][e], column[j], 1e-6 + 1e-5 * std::abs(column[j]))
              << "d output[" << j << "] / d input" << k << "[" << e << "]";
        }
      }
    }
  }
}

// L2(x) = sum_k <dL1/dx_k, s_k> with L1 = <f(x), r>; its analytic gradient (through the
// recorded backward pass) must match finite differences of L2 computed without recording.
TYPED_TEST(GradCheck, SecondOrderMatchesFiniteDifferences) {
  using B = typename TypeParam::Backend;
  for (const auto& op : op_table<double, B>()) {
    if (!op.second_order) continue;
    SCOPED_TRACE(op.name);
    const auto in = random_inputs(op, 23);
    tt::Rng rng(99);
    const auto output_shape = op.apply(in.build(op, false)).shape();
    const auto r = tt::from_vector<double, B>(output_shape, random_values(tt::numel_of(output_shape), Domain::Any, rng));
    std::vector<tt::Tensor<double, B>> s;
    for (const auto& shape : op.shapes) s.push_back(tt::from_vector<double, B>(shape, random_values(tt::numel_of(shape), Domain::Any, rng)));

    const auto second_objective = [&](const std::vector<tt::Tensor<double, B>>& inputs, bool create_graph) {
      const auto first = tt::sum(op.apply(inputs) * r);
      const auto grads = tt::grad<double, B>({first}, inputs, {}, create_graph, false, /*allow_unused=*/true);
      auto total = tt::sum(grads[0] * s[0]);
      for (std::size_t k = 1; k < grads.size(); ++k) total = total + tt::sum(grads[k] * s[k]);
      return total;
    };

    auto inputs = in.build(op, true);
    const auto l2 = second_objective(inputs, true);
    std::vector<std::vector<double>> analytic;
    if (l2.requires_grad()) {
      for (auto& g : tt::grad<double, B>({l2}, inputs, {}, false, false, true)) analytic.push_back(g.to_vector());
    } else {
      for (const auto& values : in.values) analytic.push_back(std::vector<double>(values.size(), 0.0));  // f is affine
    }
    const auto evaluate = [&](const Inputs<B>& perturbed) {
      return std::vector<double>{second_objective(perturbed.build(op, true), false).item()};
    };
    for (std::size_t k = 0; k < inputs.size(); ++k) {
      for (std::size_t e = 0; e < in.values[k].size(); ++e) {
        const double numeric = central_difference(in, k, e, evaluate)[0];
        ASSERT_NEAR(analytic[k][e], numeric, 2e-5 + 1e-4 * std::abs(numeric)) << "input" << k << "[" << e << "]";
      }
    }
  }
}

}  // namespace gradcheck_test
