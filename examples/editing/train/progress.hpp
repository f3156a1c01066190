// editlab::train::Progress — a one-line progress bar for long training loops:
//
//   pretrain [#########...........]  4200/12000  loss 0.412  1650 ex/s  elapsed 2:31  ETA 4:41
//
//   Progress progress("pretrain", total_steps, /*first_step=*/resumed_step);
//   for (...) { ...; progress.update(step + 1, loss, batch_size); }
//   progress.finish();
//
// On a terminal the line redraws in place at most 4 times a second; otherwise (a log file, CI)
// a full line is printed every 10% of the run or 30 s, whichever comes first. The loss shown is
// an exponential moving average over roughly the last 50 steps. A null stream prints nothing.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

#include "tensortape/core/error.hpp"

namespace editlab::train {

inline std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 360000) return "--:--";
  const auto s = static_cast<long>(seconds + 0.5);
  char buffer[32];
  if (s >= 3600) std::snprintf(buffer, sizeof buffer, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else std::snprintf(buffer, sizeof buffer, "%ld:%02ld", s / 60, s % 60);
  return buffer;
}

class Progress {
 public:
  using Clock = std::chrono::steady_clock;

  Progress(std::string label, std::int64_t total_steps, std::int64_t first_step = 0, std::FILE* out = stderr)
      : label_(std::move(label)), total_(total_steps), first_(first_step), out_(out),
        is_terminal_(out != nullptr && ::isatty(::fileno(out)) != 0), start_(Clock::now()), last_print_(start_) {}

  void update(std::int64_t step, double loss, double examples_this_step) {
    step_ = step;
    examples_ += examples_this_step;
    smoothed_loss_ = have_loss_ ? 0.98 * smoothed_loss_ + 0.02 * loss : loss;
    have_loss_ = true;
    const auto now = Clock::now();
    const double since_print = std::chrono::duration<double>(now - last_print_).count();
    const bool tenth = total_ > 0 && (step * 10 / total_) != (last_printed_step_ * 10 / total_);
    if ((is_terminal_ && since_print >= 0.25) || (!is_terminal_ && (tenth || since_print >= 30)) || step == total_) {
      print(now);
      last_print_ = now;
      last_printed_step_ = step;
    }
  }

  void finish() {
    if (out_ == nullptr) return;
    if (step_ != last_printed_step_) print(Clock::now());
    if (is_terminal_) std::fputc('\n', out_);
    std::fflush(out_);
  }

  double elapsed_s() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

 private:
  void print(Clock::time_point now) {
    if (out_ == nullptr) return;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double done = static_cast<double>(step_ - first_);
    const double eta = done > 0 ? elapsed / done * static_cast<double>(total_ - step_) : -1;
    constexpr int width = 20;
    const int filled = total_ > 0 ? static_cast<int>(width * step_ / total_) : 0;
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(width, '.');
    std::fprintf(out_, "%s%s [%s] %6lld/%lld  loss %.3f  %5.0f ex/s  elapsed %s  ETA %s%s", is_terminal_ ? "\r" : "",
                 label_.c_str(), bar.c_str(), static_cast<long long>(step_), static_cast<long long>(total_),
                 smoothed_loss_, elapsed > 0 ? examples_ / elapsed : 0.0, format_duration(elapsed).c_str(),
                 format_duration(eta).c_str(), is_terminal_ ? "\033[K" : "\n");
    std::fflush(out_);
  }

  std::string label_;
  std::int64_t total_, first_;
  std::FILE* out_;
  bool is_terminal_;
  Clock::time_point start_, last_print_;
  std::int64_t step_ = 0, last_printed_step_ = 0;
  double examples_ = 0, smoothed_loss_ = 0;
  bool have_loss_ = false;
};


// Stops a run whose loss or gradient norm is no longer finite, before the optimizer step would
// write NaN into the weights (and the next checkpoint would keep them): the weights and the last
// checkpoint stay the last good state.
inline void check_finite_step(const std::string& what, int step, double loss, double gradient_norm) {
  if (std::isfinite(loss) && std::isfinite(gradient_norm)) return;
  throw tensortape::Error(what + ": step " + std::to_string(step) + ": the loss is " + std::to_string(loss) +
                          " and the gradient norm " + std::to_string(gradient_norm) +
                          "; stopped before the update, so the weights and the last checkpoint hold no NaN (try a lower"
                          " learning rate or a tighter clip_norm; editlab --detect-anomaly stops at the first op whose output or gradient holds a NaN or Inf, if one does)");
}

}  // namespace editlab::train
