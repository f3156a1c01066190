// A tiny MLP trained from scratch with tensortape on backend::Eigen: three interleaved 2-D
// spirals (a seeded synthetic 3-class task), one tanh hidden layer, full-batch Adam
// (tt::optim::Adam).
//
//   scripts/demo                            # installs deps, builds and runs this
//   build/examples/mlp/mlp_demo             # after a build
//
// It prints step, loss and accuracy every kLogEvery steps and exits non-zero with a message
// if the final model misses the targets below (so ctest runs it as a test too).
#include <tensortape/tensortape.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numbers>
#include <vector>

namespace tt = tensortape;
using Cpu = tt::backend::Eigen;
using Real = float;
using Tensor = tt::Tensor<Real, Cpu>;
using Labels = tt::Tensor<std::int64_t, Cpu>;

namespace {

constexpr std::int64_t kClasses = 3;
constexpr std::int64_t kTrainPerClass = 200;
constexpr std::int64_t kTestPerClass = 200;
constexpr std::int64_t kHidden = 64;
constexpr int kSteps = 1000;
constexpr int kLogEvery = 100;
constexpr double kLearningRate = 0.01;

// Targets checked at the end (the seeded run reaches them with a wide margin).
constexpr double kMaxTrainLoss = 0.05;
constexpr double kMinTrainAccuracy = 0.98;
constexpr double kMinTestAccuracy = 0.96;

struct Dataset {
  Tensor points;  // (N, 2)
  Labels labels;  // (N) int64 in [0, kClasses)
};

// Class c is a spiral arm: radius r uniform in [0, 1), angle c * 2pi/C + 4r plus Gaussian noise.
Dataset make_spirals(std::int64_t per_class, tt::Rng& rng) {
  std::vector<Real> xy;               // (N, 2) row-major
  std::vector<std::int64_t> labels;   // (N)
  for (std::int64_t c = 0; c < kClasses; ++c) {
    for (std::int64_t i = 0; i < per_class; ++i) {
      const double r = rng.uniform();
      const double angle = 2.0 * std::numbers::pi * c / kClasses + 4.0 * r + rng.normal(0.0, 0.15);
      xy.push_back(static_cast<Real>(r * std::cos(angle)));
      xy.push_back(static_cast<Real>(r * std::sin(angle)));
      labels.push_back(c);
    }
  }
  const std::int64_t n = kClasses * per_class;
  return {tt::from_vector<Real, Cpu>({n, 2}, xy), tt::from_vector<std::int64_t, Cpu>({n}, labels)};
}

struct Mlp {
  Tensor w1;  // (H, 2)
  Tensor b1;  // (H)
  Tensor w2;  // (C, H)
  Tensor b2;  // (C)

  Mlp(tt::Rng& rng)
      : w1(tt::randn<Real, Cpu>({kHidden, 2}, rng, 0.0, 1.0).requires_grad_()),
        b1(tt::zeros<Real, Cpu>({kHidden}).requires_grad_()),
        w2(tt::randn<Real, Cpu>({kClasses, kHidden}, rng, 0.0, 1.0 / std::sqrt(double(kHidden))).requires_grad_()),
        b2(tt::zeros<Real, Cpu>({kClasses}).requires_grad_()) {}

  Tensor operator()(const Tensor& x) const {   // x (N, 2)
    const auto h = tt::tanh(tt::linear(x, w1, b1));  // (N, H)
    return tt::linear(h, w2, b2);                     // (N, C) logits
  }

  std::vector<Tensor> parameters() const { return {w1, b1, w2, b2}; }  // handles, not copies
};

// Fraction of rows whose largest logit is at the label.
double accuracy(const Tensor& logits, const Labels& labels) {  // logits (N, C), labels (N)
  const auto scores = logits.to_vector();
  const auto truth = labels.to_vector();
  const std::int64_t n = logits.size(0), classes = logits.size(1);
  std::int64_t correct = 0;
  for (std::int64_t row = 0; row < n; ++row) {
    std::int64_t best = 0;
    for (std::int64_t c = 1; c < classes; ++c) {
      if (scores[row * classes + c] > scores[row * classes + best]) best = c;
    }
    correct += best == truth[row];
  }
  return static_cast<double>(correct) / static_cast<double>(n);
}

}  // namespace

int main() {
  const auto start = std::chrono::steady_clock::now();
  tt::Rng data_rng(2024);
  const Dataset train = make_spirals(kTrainPerClass, data_rng);
  const Dataset test = make_spirals(kTestPerClass, data_rng);
  tt::Rng init_rng(7);
  Mlp model(init_rng);
  tt::optim::Adam<Real, Cpu> optimizer(model.parameters(), {.lr = kLearningRate});

  std::printf("mlp_demo: %s backend, %lld train / %lld test points, %lld classes, hidden %lld\n", Cpu::name,
              static_cast<long long>(train.points.size(0)), static_cast<long long>(test.points.size(0)),
              static_cast<long long>(kClasses), static_cast<long long>(kHidden));

  double train_loss = 0.0, train_accuracy = 0.0;
  for (int step = 1; step <= kSteps; ++step) {
    const Tensor logits = model(train.points);                // (N, C)
    const Tensor loss = tt::cross_entropy(logits, train.labels);  // scalar
    optimizer.zero_grad();
    tt::backward(loss);
    optimizer.step();
    if (step == 1 || step % kLogEvery == 0) {
      train_loss = loss.item();
      train_accuracy = accuracy(logits, train.labels);
      std::printf("step %5d  loss %.4f  train accuracy %.3f\n", step, train_loss, train_accuracy);
    }
  }

  // Final numbers with the trained weights (the logged ones lag one update behind).
  tt::NoGradGuard no_grad;
  const Tensor final_logits = model(train.points);  // (N, C)
  train_loss = tt::cross_entropy(final_logits, train.labels).item();
  train_accuracy = accuracy(final_logits, train.labels);
  const Tensor test_logits = model(test.points);  // (M, C)
  const double test_accuracy = accuracy(test_logits, test.labels);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("final: train loss %.4f, train accuracy %.3f, test accuracy %.3f (%.1f s)\n", train_loss,
              train_accuracy, test_accuracy, seconds);

  bool ok = true;
  if (!(train_loss < kMaxTrainLoss)) {
    std::fprintf(stderr, "mlp_demo: FAILED: final train loss %.4f is not below %.2f\n", train_loss, kMaxTrainLoss);
    ok = false;
  }
  if (!(train_accuracy >= kMinTrainAccuracy)) {
    std::fprintf(stderr, "mlp_demo: FAILED: train accuracy %.3f is below %.2f\n", train_accuracy, kMinTrainAccuracy);
    ok = false;
  }
  if (!(test_accuracy >= kMinTestAccuracy)) {
    std::fprintf(stderr, "mlp_demo: FAILED: test accuracy %.3f is below %.2f\n", test_accuracy, kMinTestAccuracy);
    ok = false;
  }
  if (ok) std::printf("mlp_demo: OK (targets: train loss < %.2f, train accuracy >= %.2f, test accuracy >= %.2f)\n",
                      kMaxTrainLoss, kMinTrainAccuracy, kMinTestAccuracy);
  return ok ? 0 : 1;
}
