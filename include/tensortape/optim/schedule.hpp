// Learning-rate schedules: a Schedule maps a step count (0, 1, 2, ...) to a multiplier of the
// base learning rate; LrScheduler applies one to an optimizer.
//
//   auto schedule = tt::optim::warmup_cosine(/*warmup_steps=*/100, /*total_steps=*/10'000);
//   tt::optim::AdamW<float, Cpu> optimizer(params, {.lr = 3e-4});
//   tt::optim::LrScheduler scheduler(optimizer, schedule);   // lr = 3e-4 * schedule(0)
//   for (...) { ...; optimizer.step(); scheduler.step(); }    // lr = 3e-4 * schedule(1), ...
//
// All three warm up linearly, multiplier step / warmup_steps while step < warmup_steps, then:
//   warmup_linear:   (total - step) / (total - warmup), reaching 0 at total_steps (0 after it)
//   warmup_constant: 1
//   warmup_cosine:   min_ratio + (1 - min_ratio) * (1 + cos(pi * progress)) / 2,
//                    progress = (step - warmup) / (total - warmup), clamped to [0, 1]
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numbers>

#include "tensortape/core/error.hpp"
#include "tensortape/optim/optimizer.hpp"

namespace tensortape::optim {

// Step count -> learning-rate multiplier.
using Schedule = std::function<double(std::int64_t)>;

namespace detail {
inline void check_schedule(const char* name, std::int64_t warmup_steps, std::int64_t total_steps, bool needs_total) {
  check(warmup_steps >= 0, name, "warmup_steps ", warmup_steps, " is negative");
  if (needs_total) {
    check(total_steps > 0, name, "total_steps ", total_steps, " must be positive");
    check(warmup_steps <= total_steps, name, "warmup_steps ", warmup_steps, " exceeds total_steps ", total_steps);
  }
}
inline double warmup_factor(std::int64_t step, std::int64_t warmup_steps) {
  return static_cast<double>(std::max<std::int64_t>(step, 0)) / static_cast<double>(warmup_steps);
}
}  // namespace detail

inline Schedule warmup_linear(std::int64_t warmup_steps, std::int64_t total_steps) {
  detail::check_schedule("warmup_linear", warmup_steps, total_steps, true);
  return [=](std::int64_t step) {
    if (step < warmup_steps) return detail::warmup_factor(step, warmup_steps);
    if (total_steps == warmup_steps) return 0.0;
    return std::max(0.0, static_cast<double>(total_steps - step) / static_cast<double>(total_steps - warmup_steps));
  };
}

inline Schedule warmup_constant(std::int64_t warmup_steps) {
  detail::check_schedule("warmup_constant", warmup_steps, 0, false);
  return [=](std::int64_t step) { return step < warmup_steps ? detail::warmup_factor(step, warmup_steps) : 1.0; };
}

inline Schedule warmup_cosine(std::int64_t warmup_steps, std::int64_t total_steps, double min_ratio = 0.0) {
  detail::check_schedule("warmup_cosine", warmup_steps, total_steps, true);
  check(min_ratio >= 0.0 && min_ratio <= 1.0, "warmup_cosine", "min_ratio ", min_ratio, " must be in [0, 1]");
  return [=](std::int64_t step) {
    if (step < warmup_steps) return detail::warmup_factor(step, warmup_steps);
    const double progress =
        total_steps == warmup_steps
            ? 1.0
            : std::clamp(static_cast<double>(step - warmup_steps) / static_cast<double>(total_steps - warmup_steps),
                         0.0, 1.0);
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  };
}

// Sets the optimizer's learning rate to base_lr * schedule(step).
template <class T, class B>
void apply_schedule(Optimizer<T, B>& optimizer, double base_lr, const Schedule& schedule, std::int64_t step) {
  const double multiplier = schedule(step);
  check(multiplier >= 0.0 && std::isfinite(multiplier), "apply_schedule", "schedule gave multiplier ", multiplier,
        " at step ", step, " (must be finite and >= 0)");
  optimizer.set_lr(base_lr * multiplier);
}

// Keeps the optimizer's lr at base_lr * schedule(current_step); base_lr is the optimizer's lr at
// construction. Resume with set_step(n) (the number of scheduler.step() calls made so far).
template <class T, class B>
class LrScheduler {
 public:
  LrScheduler(Optimizer<T, B>& optimizer, Schedule schedule)
      : optimizer_(optimizer), schedule_(std::move(schedule)), base_lr_(optimizer.lr()) {
    check(static_cast<bool>(schedule_), "LrScheduler", "empty schedule");
    apply_schedule(optimizer_, base_lr_, schedule_, step_);
  }

  void step() { set_step(step_ + 1); }
  void set_step(std::int64_t step) {
    check(step >= 0, "LrScheduler", "step ", step, " is negative");
    step_ = step;
    apply_schedule(optimizer_, base_lr_, schedule_, step_);
  }
  std::int64_t current_step() const { return step_; }
  double base_lr() const { return base_lr_; }
  double lr() const { return optimizer_.lr(); }

 private:
  Optimizer<T, B>& optimizer_;
  Schedule schedule_;
  double base_lr_;
  std::int64_t step_ = 0;
};

}  // namespace tensortape::optim
