// Consumer check: built against an *installed* tensortape through find_package. Runs a small
// network forward and backward on each CPU backend and compares first- and second-order
// gradients with central finite differences; exits non-zero on any mismatch.
#include <tensortape/tensortape.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

namespace tt = tensortape;

namespace {

template <class B>
struct Problem {
  using Tensor = tt::Tensor<double, B>;

  Tensor x;                          // (N, D)
  Tensor b1;                         // (H)
  Tensor w2;                         // (C, H)
  tt::Tensor<std::int64_t, B> labels;  // (N)

  // loss(w1) for w1 (H, D): cross-entropy of linear(tanh(linear(x, w1, b1)), w2).
  Tensor loss(const Tensor& w1) const {
    const auto hidden = tt::tanh(tt::linear(x, w1, b1));  // (N, H)
    return tt::cross_entropy(tt::linear(hidden, w2), labels);  // scalar
  }

  // |dloss/dw1|^2, differentiable again when create_graph.
  Tensor grad_norm2(const Tensor& w1, bool create_graph) const {
    auto g = tt::grad({loss(w1)}, {w1}, {}, create_graph)[0];  // (H, D)
    return tt::sum(g * g);                                      // scalar
  }
};

template <class B>
int check_backend() {
  using Tensor = tt::Tensor<double, B>;
  tt::Rng rng(11);
  const std::int64_t n = 5, d = 4, h = 6, c = 3;
  Problem<B> p{tt::randn<double, B>({n, d}, rng), tt::randn<double, B>({h}, rng, 0.0, 0.5),
               tt::randn<double, B>({c, h}, rng), tt::from_vector<std::int64_t, B>({n}, {0, 2, 1, 1, 0})};
  const std::vector<double> w1_values = tt::randn<double, B>({h, d}, rng, 0.0, 0.7).to_vector();
  auto make_w1 = [&](const std::vector<double>& values) {  // (H, D), a fresh leaf
    return tt::from_vector<double, B>({h, d}, values).requires_grad_();
  };

  // Analytic gradients: first order via backward, second order via grad(create_graph) + backward.
  Tensor w1 = make_w1(w1_values);
  tt::backward(p.loss(w1));
  const std::vector<double> first = w1.grad().to_vector();  // (H, D)
  Tensor w1b = make_w1(w1_values);
  tt::backward(p.grad_norm2(w1b, /*create_graph=*/true));
  const std::vector<double> second = w1b.grad().to_vector();  // (H, D)

  int failures = 0;
  double worst1 = 0.0, worst2 = 0.0;
  const double eps = 1e-5;
  for (std::size_t i = 0; i < w1_values.size(); ++i) {
    auto plus = w1_values, minus = w1_values;
    plus[i] += eps;
    minus[i] -= eps;
    const double fd1 = (p.loss(make_w1(plus)).item() - p.loss(make_w1(minus)).item()) / (2 * eps);
    const double fd2 = (p.grad_norm2(make_w1(plus), false).item() - p.grad_norm2(make_w1(minus), false).item()) / (2 * eps);
    const double err1 = std::abs(first[i] - fd1) / std::max(1.0, std::abs(fd1));
    const double err2 = std::abs(second[i] - fd2) / std::max(1.0, std::abs(fd2));
    worst1 = std::max(worst1, err1);
    worst2 = std::max(worst2, err2);
    if (err1 > 1e-6 || err2 > 1e-5) {
      std::fprintf(stderr, "  %s: element %zu: grad %.10g vs finite difference %.10g; grad of grad norm %.10g vs %.10g\n",
                   B::name, i, first[i], fd1, second[i], fd2);
      ++failures;
    }
  }
  std::printf("%-10s loss %.6f  worst relative error: first order %.2e, second order %.2e  %s\n", B::name,
              p.loss(make_w1(w1_values)).item(), worst1, worst2, failures ? "MISMATCH" : "ok");
  return failures;
}

}  // namespace

int main() {
  int failures = 0;
  try {
    failures += check_backend<tt::backend::Reference>();
    failures += check_backend<tt::backend::Eigen>();
#if defined(TENSORTAPE_HAS_XTENSOR)
    failures += check_backend<tt::backend::Xtensor>();
#endif
  } catch (const tt::Error& e) {
    std::fprintf(stderr, "consumer: tensortape error: %s\n", e.what());
    return 1;
  }
  if (failures) {
    std::fprintf(stderr, "consumer: %d gradient mismatches\n", failures);
    return 1;
  }
  std::printf("consumer: gradients match finite differences\n");
  return 0;
}
