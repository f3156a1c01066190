#include <tensortape/autograd/engine.hpp>  // backward, grad
#include <tensortape/backend/eigen.hpp>    // backend::Eigen
#include <tensortape/ops/inplace.hpp>      // add_
#include <tensortape/ops/loss.hpp>         // cross_entropy
#include <tensortape/ops/nn.hpp>           // linear
#include <tensortape/ops/reduce.hpp>       // sum

#include <cstdio>

namespace tt = tensortape;
using Cpu = tt::backend::Eigen;  // or backend::Reference, backend::Xtensor (their own headers)

int main() {
  tt::Rng rng(42);
  auto x = tt::randn<float, Cpu>({6, 4}, rng);                               // (N, D) inputs
  auto labels = tt::from_vector<std::int64_t, Cpu>({6}, {0, 1, 2, 0, 1, 2});  // (N) classes
  auto w = tt::randn<float, Cpu>({3, 4}, rng, 0.0, 0.1).requires_grad_();    // (C, D)
  auto b = tt::zeros<float, Cpu>({3}).requires_grad_();                       // (C)

  for (int step = 0; step < 100; ++step) {
    auto loss = tt::cross_entropy(tt::linear(x, w, b), labels);  // scalar
    w.zero_grad();
    b.zero_grad();
    tt::backward(loss);                                           // fills w.grad(), b.grad()
    tt::NoGradGuard no_grad;                                      // SGD step, not recorded
    w.add_(w.grad(), -0.5f);
    b.add_(b.grad(), -0.5f);
  }

  // Gradients of gradients: differentiate the squared norm of dloss/dw with respect to w.
  auto loss = tt::cross_entropy(tt::linear(x, w, b), labels);     // scalar
  auto [dw] = tt::grad<1>({loss}, {w}, {}, /*create_graph=*/true);  // (C, D), itself on the tape
  auto penalty = tt::sum(dw * dw);                                  // scalar
  auto [ddw] = tt::grad<1>({penalty}, {w});                         // (C, D)
  std::printf("loss %.4f  |dw|^2 %.3g  d|dw|^2/dw[0] %.3g\n", loss.item(), penalty.item(), ddw.to_vector()[0]);
}
