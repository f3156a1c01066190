// Optimizers, schedules and gradient clipping (include/tensortape/optim/) against independent
// references: each PyTorch update rule re-implemented here as a plain scalar loop in double,
// schedule values worked out by hand, norms summed by a loop.
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <functional>
#include <memory>
#include <limits>
#include <string>
#include <vector>

#include "tensortape/tensortape.hpp"

namespace tt = tensortape;
namespace optim = tensortape::optim;

namespace optim_test {

using Eig = tt::backend::Eigen;
using Ref = tt::backend::Reference;
using Vec = std::vector<double>;
using EigParams = std::vector<tt::Tensor<double, Eig>>;

// ---- scalar-loop reference update rules (double), one parameter at a time ----

struct RefSgd {
  double lr, momentum, dampening, weight_decay;
  bool nesterov;
  std::vector<Vec> buf;  // empty until the first update of that parameter

  void update(std::size_t i, Vec& p, const Vec& grad) {
    if (buf.size() <= i) buf.resize(i + 1);
    const bool first = buf[i].empty();
    if (first) buf[i].assign(p.size(), 0.0);
    for (std::size_t k = 0; k < p.size(); ++k) {
      double g = grad[k] + weight_decay * p[k];
      if (momentum != 0.0) {
        buf[i][k] = first ? g : momentum * buf[i][k] + (1.0 - dampening) * g;
        g = nesterov ? g + momentum * buf[i][k] : buf[i][k];
      }
      p[k] -= lr * g;
    }
  }
};

struct RefAdam {
  double lr, beta1, beta2, eps, weight_decay;
  bool amsgrad, decoupled;
  std::vector<Vec> m, v, vmax;
  std::vector<int> t;

  void update(std::size_t i, Vec& p, const Vec& grad) {
    if (m.size() <= i) m.resize(i + 1), v.resize(i + 1), vmax.resize(i + 1), t.resize(i + 1, 0);
    if (m[i].empty()) m[i].assign(p.size(), 0.0), v[i].assign(p.size(), 0.0), vmax[i].assign(p.size(), 0.0);
    const int step = ++t[i];
    const double bc1 = 1.0 - std::pow(beta1, step);
    const double bc2 = 1.0 - std::pow(beta2, step);
    for (std::size_t k = 0; k < p.size(); ++k) {
      double g = grad[k];
      if (decoupled) {
        p[k] *= 1.0 - lr * weight_decay;
      } else {
        g += weight_decay * p[k];
      }
      m[i][k] = beta1 * m[i][k] + (1.0 - beta1) * g;
      v[i][k] = beta2 * v[i][k] + (1.0 - beta2) * g * g;
      double second = v[i][k];
      if (amsgrad) {
        vmax[i][k] = std::max(vmax[i][k], v[i][k]);
        second = vmax[i][k];
      }
      const double m_hat = m[i][k] / bc1;
      const double denom = std::sqrt(second) / std::sqrt(bc2) + eps;
      p[k] -= lr * m_hat / denom;
    }
  }
};

struct RefRmsprop {
  double lr, alpha, eps, weight_decay, momentum;
  bool centered;
  std::vector<Vec> sq, ga, buf;

  void update(std::size_t i, Vec& p, const Vec& grad) {
    if (sq.size() <= i) sq.resize(i + 1), ga.resize(i + 1), buf.resize(i + 1);
    if (sq[i].empty()) sq[i].assign(p.size(), 0.0), ga[i].assign(p.size(), 0.0), buf[i].assign(p.size(), 0.0);
    for (std::size_t k = 0; k < p.size(); ++k) {
      const double g = grad[k] + weight_decay * p[k];
      sq[i][k] = alpha * sq[i][k] + (1.0 - alpha) * g * g;
      double avg;
      if (centered) {
        ga[i][k] = alpha * ga[i][k] + (1.0 - alpha) * g;
        avg = std::sqrt(sq[i][k] - ga[i][k] * ga[i][k]) + eps;
      } else {
        avg = std::sqrt(sq[i][k]) + eps;
      }
      if (momentum > 0.0) {
        buf[i][k] = momentum * buf[i][k] + g / avg;
        p[k] -= lr * buf[i][k];
      } else {
        p[k] -= lr * g / avg;
      }
    }
  }
};

// ---- driver: the same random gradients through the optimizer and the reference ----

const std::vector<tt::Shape> kShapes = {{3, 4}, {5}, {2, 1, 3}};

template <class T, class B>
std::vector<tt::Tensor<T, B>> make_params(const std::vector<Vec>& values) {
  std::vector<tt::Tensor<T, B>> params;
  for (std::size_t i = 0; i < values.size(); ++i) {
    params.push_back(tt::from_vector<T, B>(kShapes[i], std::vector<T>(values[i].begin(), values[i].end())).requires_grad_());
  }
  return params;
}

std::vector<Vec> random_params(tt::Rng& rng) {
  std::vector<Vec> values;
  for (const auto& shape : kShapes) {
    Vec v(static_cast<std::size_t>(tt::numel_of(shape)));
    for (auto& x : v) x = rng.normal();
    values.push_back(v);
  }
  return values;
}

// Runs `steps` steps; parameter 2 gets no gradient on step 1 (its state starts later, apart from
// the others', which Adam allocates together on the first step) and parameter 1 none on step 2
// (it must be skipped, and its own step count must lag). Checks every parameter after every
// step against the reference.
template <class T, class B, class Reference>
void compare(tt::optim::Optimizer<T, B>& opt, std::vector<Vec> expected, Reference& reference, tt::Rng& rng,
             int steps, double tolerance, const std::string& label) {
  const auto& params = opt.parameters();
  for (int s = 1; s <= steps; ++s) {
    opt.zero_grad();
    for (std::size_t i = 0; i < params.size(); ++i) {
      if ((s == 1 && i == 2) || (s == 2 && i == 1)) continue;
      Vec g(expected[i].size());
      for (auto& x : g) x = rng.normal(0.0, s == 3 ? 10.0 : 1.0);
      params[i].set_grad(tt::from_vector<T, B>(params[i].shape(), std::vector<T>(g.begin(), g.end())));
      reference.update(i, expected[i], g);
    }
    opt.step();
    for (std::size_t i = 0; i < params.size(); ++i) {
      const auto got = params[i].to_vector();
      ASSERT_EQ(got.size(), expected[i].size());
      for (std::size_t k = 0; k < got.size(); ++k) {
        const double want = expected[i][k];
        ASSERT_NEAR(static_cast<double>(got[k]), want, tolerance * (1.0 + std::abs(want)))
            << label << ": step " << s << ", parameter " << i << ", element " << k;
      }
    }
  }
  EXPECT_EQ(opt.step_count(0), steps) << label;
  EXPECT_EQ(opt.step_count(1), steps - 1) << label;
  EXPECT_EQ(opt.step_count(2), steps - 1) << label;
}

template <class T, class B>
void check_sgd_all_options(double tolerance) {
  for (double momentum : {0.0, 0.9}) {
    for (double dampening : {0.0, 0.3}) {
      for (bool nesterov : {false, true}) {
        if (nesterov && (momentum == 0.0 || dampening != 0.0)) continue;
        for (double wd : {0.0, 0.05}) {
          const std::string label = "SGD momentum " + std::to_string(momentum) + " dampening " +
                                    std::to_string(dampening) + " nesterov " + std::to_string(nesterov) + " wd " +
                                    std::to_string(wd);
          tt::Rng rng(11);
          const auto init = random_params(rng);
          optim::SGD<T, B> opt(make_params<T, B>(init),
                               {.lr = 0.05, .momentum = momentum, .dampening = dampening, .weight_decay = wd,
                                .nesterov = nesterov});
          RefSgd reference{0.05, momentum, dampening, wd, nesterov, {}};
          compare(opt, init, reference, rng, 6, tolerance, label);
        }
      }
    }
  }
}

template <class T, class B>
void check_adam_all_options(double tolerance) {
  for (bool decoupled : {false, true}) {
    for (bool amsgrad : {false, true}) {
      for (double wd : {0.0, 0.1}) {
        for (auto betas : {std::pair{0.9, 0.999}, std::pair{0.5, 0.8}}) {
          const std::string label = std::string(decoupled ? "AdamW" : "Adam") + " amsgrad " +
                                    std::to_string(amsgrad) + " wd " + std::to_string(wd) + " beta1 " +
                                    std::to_string(betas.first);
          tt::Rng rng(23);
          const auto init = random_params(rng);
          RefAdam reference{0.01, betas.first, betas.second, 1e-3, wd, amsgrad, decoupled, {}, {}, {}, {}};
          if (decoupled) {
            optim::AdamW<T, B> opt(make_params<T, B>(init),
                                   {.lr = 0.01, .betas = betas, .eps = 1e-3, .weight_decay = wd, .amsgrad = amsgrad});
            compare(opt, init, reference, rng, 7, tolerance, label);
          } else {
            optim::Adam<T, B> opt(make_params<T, B>(init),
                                  {.lr = 0.01, .betas = betas, .eps = 1e-3, .weight_decay = wd, .amsgrad = amsgrad});
            compare(opt, init, reference, rng, 7, tolerance, label);
          }
        }
      }
    }
  }
}

template <class T, class B>
void check_rmsprop_all_options(double tolerance) {
  for (bool centered : {false, true}) {
    for (double momentum : {0.0, 0.8}) {
      for (double wd : {0.0, 0.1}) {
        const std::string label = "RMSprop centered " + std::to_string(centered) + " momentum " +
                                  std::to_string(momentum) + " wd " + std::to_string(wd);
        tt::Rng rng(37);
        const auto init = random_params(rng);
        optim::RMSprop<T, B> opt(make_params<T, B>(init), {.lr = 0.01,
                                                           .alpha = 0.9,
                                                           .eps = 1e-6,
                                                           .weight_decay = wd,
                                                           .momentum = momentum,
                                                           .centered = centered});
        RefRmsprop reference{0.01, 0.9, 1e-6, wd, momentum, centered, {}, {}, {}};
        compare(opt, init, reference, rng, 6, tolerance, label);
      }
    }
  }
}

// ---- update rules ----

TEST(Optim, SgdMatchesScalarReferenceEigen) { check_sgd_all_options<double, Eig>(1e-12); }
TEST(Optim, SgdMatchesScalarReferenceReference) { check_sgd_all_options<double, Ref>(1e-12); }
TEST(Optim, SgdFloatMatchesScalarReferenceEigen) { check_sgd_all_options<float, Eig>(2e-5); }

TEST(Optim, AdamMatchesScalarReferenceEigen) { check_adam_all_options<double, Eig>(1e-12); }
TEST(Optim, AdamMatchesScalarReferenceReference) { check_adam_all_options<double, Ref>(1e-12); }
TEST(Optim, AdamFloatMatchesScalarReferenceEigen) { check_adam_all_options<float, Eig>(2e-5); }

TEST(Optim, RmspropMatchesScalarReferenceEigen) { check_rmsprop_all_options<double, Eig>(1e-12); }
TEST(Optim, RmspropMatchesScalarReferenceReference) { check_rmsprop_all_options<double, Ref>(1e-12); }

TEST(Optim, StepUsesGradientsFromBackward) {
  // loss = sum(w * w) / 2 has gradient w: one SGD step with lr 0.25 scales w by 0.75.
  auto w = tt::from_vector<double, Eig>({3}, {1.0, -2.0, 4.0}).requires_grad_();
  optim::SGD<double, Eig> sgd({w}, {.lr = 0.25});
  tt::backward(tt::sum(w * w) * 0.5);
  sgd.step();
  EXPECT_EQ(w.to_vector(), (std::vector<double>{0.75, -1.5, 3.0}));
  sgd.zero_grad();
  EXPECT_FALSE(w.grad().defined());
  EXPECT_TRUE(w.requires_grad());
  EXPECT_TRUE(w.is_leaf());
}

TEST(Optim, LearningRateGetSet) {
  auto w = tt::zeros<double, Eig>({2}).requires_grad_();
  optim::Adam<double, Eig> adam({w}, {.lr = 0.1});
  EXPECT_EQ(adam.lr(), 0.1);
  adam.set_lr(0.02);
  EXPECT_EQ(adam.lr(), 0.02);
  EXPECT_THROW(adam.set_lr(-1.0), tt::Error);
  EXPECT_EQ(adam.name(), "Adam");
  // Class template argument deduction from the parameter list.
  optim::AdamW adamw(std::vector{w}, {.lr = 0.5});
  static_assert(std::is_same_v<decltype(adamw), optim::AdamW<double, Eig>>);
  EXPECT_EQ(adamw.lr(), 0.5);
}

// ---- convergence ----

// Least squares y = X w* + b*: Adam with a cosine schedule recovers w* and b* from noiseless data.
TEST(Optim, AdamSolvesLinearRegression) {
  tt::Rng rng(5);
  const std::int64_t n = 128, d = 4;
  const Vec w_true = {1.5, -2.0, 0.5, 3.0};
  const double b_true = -0.7;
  std::vector<double> xs(static_cast<std::size_t>(n * d)), ys(static_cast<std::size_t>(n));
  for (std::int64_t r = 0; r < n; ++r) {
    double y = b_true;
    for (std::int64_t c = 0; c < d; ++c) {
      const double x = rng.normal();
      xs[static_cast<std::size_t>(r * d + c)] = x;
      y += w_true[static_cast<std::size_t>(c)] * x;
    }
    ys[static_cast<std::size_t>(r)] = y;
  }
  const auto x = tt::from_vector<double, Eig>({n, d}, xs);  // (N, D)
  const auto y = tt::from_vector<double, Eig>({n, 1}, ys);  // (N, 1)
  auto w = tt::zeros<double, Eig>({d, 1}).requires_grad_();
  auto b = tt::zeros<double, Eig>({1}).requires_grad_();
  optim::Adam<double, Eig> adam({w, b}, {.lr = 0.1});
  optim::LrScheduler scheduler(adam, optim::warmup_cosine(20, 1500));
  double loss_value = 0.0;
  for (int step = 0; step < 1500; ++step) {
    const auto residual = tt::matmul(x, w) + b - y;  // (N, 1)
    const auto loss = tt::mean(residual * residual);
    loss_value = loss.item();
    adam.zero_grad();
    tt::backward(loss);
    adam.step();
    scheduler.step();
  }
  const auto w_got = w.to_vector();
  for (std::size_t c = 0; c < w_true.size(); ++c) EXPECT_NEAR(w_got[c], w_true[c], 1e-3) << "w[" << c << "]";
  EXPECT_NEAR(b.item(), b_true, 1e-3);
  EXPECT_LT(loss_value, 1e-5);
}

// ---- schedules ----

TEST(Optim, ScheduleValuesByHand) {
  const auto linear = optim::warmup_linear(10, 110);
  EXPECT_DOUBLE_EQ(linear(0), 0.0);
  EXPECT_DOUBLE_EQ(linear(5), 0.5);
  EXPECT_DOUBLE_EQ(linear(10), 1.0);
  EXPECT_DOUBLE_EQ(linear(60), 0.5);   // (110 - 60) / 100
  EXPECT_DOUBLE_EQ(linear(85), 0.25);  // (110 - 85) / 100
  EXPECT_DOUBLE_EQ(linear(110), 0.0);
  EXPECT_DOUBLE_EQ(linear(500), 0.0);

  const auto constant = optim::warmup_constant(4);
  EXPECT_DOUBLE_EQ(constant(0), 0.0);
  EXPECT_DOUBLE_EQ(constant(1), 0.25);
  EXPECT_DOUBLE_EQ(constant(4), 1.0);
  EXPECT_DOUBLE_EQ(constant(100000), 1.0);
  EXPECT_DOUBLE_EQ(optim::warmup_constant(0)(0), 1.0);

  const auto cosine = optim::warmup_cosine(10, 110);
  EXPECT_DOUBLE_EQ(cosine(5), 0.5);
  EXPECT_DOUBLE_EQ(cosine(10), 1.0);
  EXPECT_NEAR(cosine(35), 0.5 * (1.0 + std::sqrt(0.5)), 1e-15);  // progress 1/4: cos(pi/4)
  EXPECT_NEAR(cosine(60), 0.5, 1e-15);                            // progress 1/2
  EXPECT_NEAR(cosine(85), 0.5 * (1.0 - std::sqrt(0.5)), 1e-15);  // progress 3/4
  EXPECT_NEAR(cosine(110), 0.0, 1e-15);
  EXPECT_NEAR(cosine(1000), 0.0, 1e-15);
  const auto cosine_floor = optim::warmup_cosine(0, 100, 0.1);
  EXPECT_DOUBLE_EQ(cosine_floor(0), 1.0);
  EXPECT_NEAR(cosine_floor(50), 0.1 + 0.9 * 0.5, 1e-15);
  EXPECT_NEAR(cosine_floor(100), 0.1, 1e-15);

  EXPECT_THROW(optim::warmup_linear(-1, 10), tt::Error);
  EXPECT_THROW(optim::warmup_linear(20, 10), tt::Error);
  EXPECT_THROW(optim::warmup_cosine(0, 0), tt::Error);
  EXPECT_THROW(optim::warmup_cosine(0, 10, 1.5), tt::Error);
}

TEST(Optim, SchedulerSetsOptimizerLearningRate) {
  auto w = tt::zeros<double, Eig>({2}).requires_grad_();
  optim::SGD<double, Eig> sgd({w}, {.lr = 0.2});
  optim::LrScheduler scheduler(sgd, optim::warmup_linear(4, 12));
  EXPECT_DOUBLE_EQ(sgd.lr(), 0.0);
  scheduler.step();
  EXPECT_DOUBLE_EQ(sgd.lr(), 0.05);
  scheduler.step();
  EXPECT_DOUBLE_EQ(sgd.lr(), 0.1);
  scheduler.set_step(8);  // (12 - 8) / 8 = 0.5
  EXPECT_DOUBLE_EQ(sgd.lr(), 0.1);
  EXPECT_EQ(scheduler.current_step(), 8);
  optim::apply_schedule(sgd, 1.0, optim::warmup_constant(10), 3);
  EXPECT_DOUBLE_EQ(sgd.lr(), 0.3);
}

// ---- clipping ----

template <class B>
void check_clip_grad_norm() {
  tt::Rng rng(3);
  std::vector<tt::Tensor<double, B>> params;
  std::vector<Vec> grads;
  for (const auto& shape : kShapes) {
    params.push_back(tt::zeros<double, B>(shape).requires_grad_());
    Vec g(static_cast<std::size_t>(tt::numel_of(shape)));
    for (auto& x : g) x = rng.normal(0.0, 2.0);
    grads.push_back(g);
  }
  auto w_no_grad = tt::zeros<double, B>({7}).requires_grad_();  // grad() undefined: skipped
  params.push_back(w_no_grad);
  const auto set_grads = [&] {
    for (std::size_t i = 0; i < grads.size(); ++i) params[i].set_grad(tt::from_vector<double, B>(kShapes[i], grads[i]));
  };
  double sum_sq = 0.0, sum_abs = 0.0, sum_cube = 0.0, max_abs = 0.0;
  for (const auto& g : grads) {
    for (double x : g) {
      sum_sq += x * x;
      sum_abs += std::abs(x);
      sum_cube += std::abs(x) * std::abs(x) * std::abs(x);
      max_abs = std::max(max_abs, std::abs(x));
    }
  }
  const double norm = std::sqrt(sum_sq);

  // Above max_norm: every gradient scaled by max_norm / (norm + 1e-6).
  set_grads();
  const double max_norm = norm / 3.0;
  EXPECT_NEAR(optim::clip_grad_norm_(params, max_norm), norm, 1e-12 * norm);
  const double scale = max_norm / (norm + 1e-6);
  double clipped_sq = 0.0;
  for (std::size_t i = 0; i < grads.size(); ++i) {
    const auto got = params[i].grad().to_vector();
    for (std::size_t k = 0; k < got.size(); ++k) {
      EXPECT_NEAR(got[k], grads[i][k] * scale, 1e-14);
      clipped_sq += got[k] * got[k];
    }
  }
  EXPECT_NEAR(std::sqrt(clipped_sq), max_norm, 1e-6);
  EXPECT_FALSE(w_no_grad.grad().defined());

  // Below max_norm: untouched.
  set_grads();
  EXPECT_NEAR(optim::clip_grad_norm_(params, 2.0 * norm), norm, 1e-12 * norm);
  for (std::size_t i = 0; i < grads.size(); ++i) EXPECT_EQ(params[i].grad().to_vector(), grads[i]);

  // Other orders.
  set_grads();
  EXPECT_NEAR(optim::clip_grad_norm_(params, 1e9, 1.0), sum_abs, 1e-12 * sum_abs);
  EXPECT_NEAR(optim::clip_grad_norm_(params, 1e9, 3.0), std::cbrt(sum_cube), 1e-12 * std::cbrt(sum_cube));
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(optim::clip_grad_norm_(params, 1e9, inf), max_abs);
  set_grads();
  optim::clip_grad_norm_(params, max_abs / 2.0, inf);
  for (std::size_t i = 0; i < grads.size(); ++i) {
    const auto got = params[i].grad().to_vector();
    for (std::size_t k = 0; k < got.size(); ++k) {
      EXPECT_NEAR(got[k], grads[i][k] * (max_abs / 2.0) / (max_abs + 1e-6), 1e-14);
    }
  }
}

TEST(Optim, ClipGradNormEigen) { check_clip_grad_norm<Eig>(); }
TEST(Optim, ClipGradNormReference) { check_clip_grad_norm<Ref>(); }

TEST(Optim, ClipGradNormNonFinite) {
  const double inf = std::numeric_limits<double>::infinity();
  auto a = tt::zeros<double, Eig>({3}).requires_grad_();
  auto b = tt::zeros<double, Eig>({2}).requires_grad_();
  a.set_grad(tt::from_vector<double, Eig>({3}, {1.0, inf, 2.0}));
  b.set_grad(tt::from_vector<double, Eig>({2}, {3.0, 4.0}));
  try {
    optim::clip_grad_norm_(EigParams{a, b}, 1.0, 2.0, /*error_if_nonfinite=*/true);
    ADD_FAILURE() << "expected tt::Error";
  } catch (const tt::Error& e) {
    EXPECT_NE(std::string(e.what()).find("clip_grad_norm_"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("inf"), std::string::npos) << e.what();
  }
  // The failed call left the gradients alone.
  EXPECT_EQ(b.grad().to_vector(), (std::vector<double>{3.0, 4.0}));
  // Without the flag: the norm is returned and the gradients scaled by 0 (PyTorch's result).
  EXPECT_EQ(optim::clip_grad_norm_(EigParams{a, b}, 1.0), inf);
  EXPECT_EQ(b.grad().to_vector(), (std::vector<double>{0.0, 0.0}));
  EXPECT_TRUE(std::isnan(a.grad().to_vector()[1]));

  // No gradients at all: norm 0.
  auto c = tt::zeros<double, Eig>({2}).requires_grad_();
  EXPECT_EQ(optim::clip_grad_norm_(EigParams{c}, 1.0), 0.0);
  EXPECT_THROW(optim::clip_grad_norm_(EigParams{a}, -1.0), tt::Error);
  EXPECT_THROW(optim::clip_grad_norm_(EigParams{a}, 1.0, 0.0), tt::Error);
}

TEST(Optim, ClipGradValue) {
  auto a = tt::zeros<double, Eig>({4}).requires_grad_();
  a.set_grad(tt::from_vector<double, Eig>({4}, {-3.0, -0.5, 0.25, 2.0}));
  optim::clip_grad_value_(EigParams{a}, 1.0);
  EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{-1.0, -0.5, 0.25, 1.0}));
}

// ---- state export / import ----

// Steps `first` times, exports, imports into a fresh optimizer on copies of the parameters,
// then both take `then` more steps on identical gradients and must agree exactly.
template <class T, class B, class Make>
void check_round_trip(Make make, const std::vector<std::string>& expected_keys) {
  tt::Rng rng(99);
  const auto init = random_params(rng);
  auto params_a = make_params<T, B>(init);
  auto opt_a = make(params_a);
  const auto random_grads = [&](const std::vector<tt::Tensor<T, B>>& params, std::uint64_t seed, int step) {
    tt::Rng g_rng(seed);
    for (std::size_t i = 0; i < params.size(); ++i) {
      auto g = tt::randn<T, B>(params[i].shape(), g_rng);
      if (step == 1 && i == 2) continue;  // parameter 2 skips a step: its own count lags
      params[i].set_grad(g);
    }
  };
  for (int s = 0; s < 3; ++s) {
    opt_a->zero_grad();
    random_grads(params_a, 1000 + s, s);
    opt_a->step();
  }
  const auto state = opt_a->state_dict();
  std::vector<std::string> names;
  for (const auto& [name, tensor] : state) names.push_back(name);
  for (std::size_t i = 0; i < params_a.size(); ++i) {
    for (const auto& key : expected_keys) {
      const std::string name = "state." + std::to_string(i) + "." + key;
      EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << "missing " << name;
    }
  }
  EXPECT_EQ(names.size(), params_a.size() * expected_keys.size());
  for (const auto& [name, tensor] : state) {
    if (name == "state.2.step") {
      EXPECT_EQ(tensor.item(), T(2));
    }
    if (name == "state.0.step") {
      EXPECT_EQ(tensor.item(), T(3));
    }
  }

  std::vector<Vec> current;
  for (const auto& p : params_a) {
    const auto v = p.to_vector();
    current.emplace_back(v.begin(), v.end());
  }
  auto params_b = make_params<T, B>(current);
  auto opt_b = make(params_b);
  opt_b->load_state_dict(state);
  EXPECT_EQ(opt_b->step_count(2), 2);
  for (int s = 3; s < 7; ++s) {
    opt_a->zero_grad();
    opt_b->zero_grad();
    random_grads(params_a, 1000 + s, s);
    random_grads(params_b, 1000 + s, s);
    opt_a->step();
    opt_b->step();
  }
  for (std::size_t i = 0; i < params_a.size(); ++i) EXPECT_EQ(params_a[i].to_vector(), params_b[i].to_vector()) << i;
  // Exported state is a snapshot: later steps did not change it.
  const auto later = opt_a->state_dict();
  bool any_changed = false;
  for (std::size_t j = 0; j < state.size(); ++j) any_changed = any_changed || state[j].second.to_vector() != later[j].second.to_vector();
  EXPECT_TRUE(any_changed);
}

TEST(Optim, StateRoundTripGivesIdenticalSteps) {
  using P = std::vector<tt::Tensor<double, Eig>>;
  check_round_trip<double, Eig>(
      [](P p) { return std::make_unique<optim::Adam<double, Eig>>(p, optim::AdamOptions{.lr = 0.01, .amsgrad = true}); },
      {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"});
  check_round_trip<double, Eig>([](P p) { return std::make_unique<optim::AdamW<double, Eig>>(p); },
                                {"step", "exp_avg", "exp_avg_sq"});
  check_round_trip<double, Eig>(
      [](P p) { return std::make_unique<optim::SGD<double, Eig>>(p, optim::SGDOptions{.lr = 0.1, .momentum = 0.9}); },
      {"step", "momentum_buffer"});
  check_round_trip<double, Eig>([](P p) { return std::make_unique<optim::SGD<double, Eig>>(p); }, {"step"});
  check_round_trip<double, Eig>(
      [](P p) {
        return std::make_unique<optim::RMSprop<double, Eig>>(p,
                                                             optim::RMSpropOptions{.momentum = 0.5, .centered = true});
      },
      {"step", "square_avg", "grad_avg", "momentum_buffer"});
  using F = std::vector<tt::Tensor<float, Ref>>;
  check_round_trip<float, Ref>([](F p) { return std::make_unique<optim::Adam<float, Ref>>(p); },
                               {"step", "exp_avg", "exp_avg_sq"});
}

TEST(Optim, LoadStateDictRejectsBadEntries) {
  auto w = tt::zeros<double, Eig>({2, 3}).requires_grad_();
  optim::Adam<double, Eig> adam({w});
  const auto t = [](tt::Shape s) { return tt::zeros<double, Eig>(s); };
  const auto expect_error = [&](const optim::NamedTensors<double, Eig>& entries, const std::string& fragment) {
    try {
      adam.load_state_dict(entries);
      ADD_FAILURE() << "expected tt::Error mentioning " << fragment;
    } catch (const tt::Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("Adam"), std::string::npos) << e.what();
    }
  };
  const auto step = tt::scalar_tensor<double, Eig>(1.0);
  expect_error({{"state.0.step", step}, {"state.0.exp_avg", t({3, 2})}, {"state.0.exp_avg_sq", t({2, 3})}}, "shape");
  expect_error({{"state.1.step", step}}, "parameter 1");
  expect_error({{"state.0.step", step}, {"state.0.momentum_buffer", t({2, 3})}}, "momentum_buffer");
  expect_error({{"state.0.step", step}, {"state.0.exp_avg", t({2, 3})}}, "missing entry 'state.0.exp_avg_sq'");
  expect_error({{"lr", step}}, "lr");
  expect_error({{"state.0.step", tt::scalar_tensor<double, Eig>(1.5)}}, "step count");
  adam.load_state_dict({});  // empty: fresh state
  EXPECT_EQ(adam.step_count(0), 0);
}

// ---- hyper-parameter and argument checks ----

template <class Fn>
void expect_error_naming(Fn fn, const std::string& optimizer, const std::string& value) {
  try {
    fn();
    ADD_FAILURE() << "expected tt::Error from " << optimizer << " naming " << value;
  } catch (const tt::Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind(optimizer + ":", 0), 0u) << message;
    EXPECT_NE(message.find(value), std::string::npos) << message;
  }
}

TEST(Optim, BadHyperParametersThrow) {
  using T = tt::Tensor<double, Eig>;
  const auto params = [] { return std::vector<T>{tt::zeros<double, Eig>({2}).requires_grad_()}; };
  using optim::Adam, optim::AdamW, optim::SGD, optim::RMSprop;
  expect_error_naming([&] { SGD<double, Eig>(params(), {.lr = -0.1}); }, "SGD", "-0.1");
  expect_error_naming([&] { SGD<double, Eig>(params(), {.momentum = -0.5}); }, "SGD", "-0.5");
  expect_error_naming([&] { SGD<double, Eig>(params(), {.weight_decay = -2}); }, "SGD", "-2");
  expect_error_naming([&] { SGD<double, Eig>(params(), {.nesterov = true}); }, "SGD", "nesterov");
  expect_error_naming([&] { SGD<double, Eig>(params(), {.momentum = 0.9, .dampening = 0.1, .nesterov = true}); },
                      "SGD", "0.1");
  expect_error_naming([&] { Adam<double, Eig>(params(), {.lr = -1e-3}); }, "Adam", "-0.001");
  expect_error_naming([&] { Adam<double, Eig>(params(), {.betas = {1.0, 0.999}}); }, "Adam", "beta1 1");
  expect_error_naming([&] { Adam<double, Eig>(params(), {.betas = {0.9, -0.25}}); }, "Adam", "beta2 -0.25");
  expect_error_naming([&] { Adam<double, Eig>(params(), {.eps = -1e-8}); }, "Adam", "eps -1e-08");
  expect_error_naming([&] { AdamW<double, Eig>(params(), {.weight_decay = -0.01}); }, "AdamW", "-0.01");
  expect_error_naming([&] { AdamW<double, Eig>(params(), {.betas = {0.9, 1.5}}); }, "AdamW", "1.5");
  expect_error_naming([&] { RMSprop<double, Eig>(params(), {.alpha = -0.1}); }, "RMSprop", "alpha -0.1");
  expect_error_naming([&] { RMSprop<double, Eig>(params(), {.eps = -1.0}); }, "RMSprop", "eps -1");
  expect_error_naming([&] { RMSprop<double, Eig>(params(), {.momentum = -0.3}); }, "RMSprop", "-0.3");
  expect_error_naming([&] { RMSprop<double, Eig>(params(), {.lr = std::nan("")}); }, "RMSprop", "nan");

  // Parameter lists.
  expect_error_naming([&] { Adam<double, Eig>(std::vector<T>{}); }, "Adam", "empty");
  expect_error_naming([&] { Adam<double, Eig>({tt::zeros<double, Eig>({2})}); }, "Adam", "does not require grad");
  auto w = tt::zeros<double, Eig>({2}).requires_grad_();
  expect_error_naming([&] { Adam<double, Eig>({w, w}); }, "Adam", "twice");
  expect_error_naming([&] { Adam<double, Eig>({w * 2.0}); }, "Adam", "not a leaf");
}

}  // namespace optim_test
