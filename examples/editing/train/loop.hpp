// editlab::train::run_training — the training loop every trained editor shares: Adam with a
// linear warm-up, gradient clipping, early stopping on a validation loss with the best state
// kept, crash-safe checkpoints with exact resume, and a progress line.
//
//   train::LoopSettings s{.method = "mend", .steps = 2000, .lr = 1e-4, ...};
//   auto report = train::run_training(params, s, control,
//       [&](int step) { ...; return train::StepResult{loss, examples}; },   // fills params' .grad
//       [&] { return validation_loss(); });
//
// Each step: the schedule sets Adam's learning rate, the gradients are zeroed, `gradients`
// fills them (seed its draws by the step so a resumed run draws what the uninterrupted one
// would), they are clipped to clip_norm and `update` (Adam's step by default) moves the
// parameters. Every eval_every steps the validation loss is measured; the best state is kept and
// restored at the end; the run stops when it has not improved for `patience` steps. `buffers`
// are state the steps change in place but the optimizer does not move (MEND's running moments):
// they are kept, restored and checkpointed with the parameters, so the editor left at the end
// is the one that was validated, and a resumed run continues them.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/seq2seq.hpp"
#include "tensortape/io/safetensors.hpp"
#include "tensortape/optim/adam.hpp"
#include "tensortape/optim/clip.hpp"
#include "tensortape/optim/schedule.hpp"
#include "train/checkpoint.hpp"
#include "train/edit_sets.hpp"
#include "train/progress.hpp"

namespace editlab::train {

using model::Cpu;
using model::Tensor;

// How a training run is driven; none of it changes what is learned, except `threads`, which
// changes the order in which shard gradients are summed.
struct TrainControl {
  std::filesystem::path checkpoint_dir;  // empty: no checkpoints
  int checkpoint_every = 200;            // steps between checkpoints
  bool resume = false;                   // continue from checkpoint_dir/checkpoint
  int stop_after = 0;                    // > 0: checkpoint and return at this step
  int threads = 0;                       // step shards in parallel; 0: one per core
  bool quiet = false;                    // no progress bar
  nlohmann::json identity;               // what a resumed checkpoint must match (beside the options)
};

struct TrainReport {
  int steps = 0;
  int best_step = 0;
  double best_validation_loss = 0;
  double seconds = 0;  // this call's training time (a resumed run counts from the resume)
  bool stopped_for_resume = false;  // control.stop_after reached: the caller resumes later
};

struct LoopSettings {
  std::string method;      // the editor trained (the progress line and the checkpoint say it)
  int steps = 1000;
  int warmup_steps = 100;
  double lr = 1e-3;
  double clip_norm = 5.0;
  int eval_every = 100;
  int patience = 600;
  nlohmann::json options;  // the editor's options: a resumed checkpoint must have been made with these
};

// The loop's options as the meta-trained editors (ENN, MEND, SLAG, SERAC) declare them: listed
// once, each editor giving its own defaults (`train::LoopOptions loop{.eval_every = 25}`) and
// listing them among its options with `loop.fields(field)`. The learning rate stays each
// editor's own: what it moves differs (ENN's loop rate is its step sizes').
struct LoopOptions {
  int edits_per_step = 8;
  int warmup_steps = 100;
  double clip_norm = 5.0;
  int steps = 1000;
  int eval_every = 50;
  int patience = 600;

  template <class Visit>
  void fields(Visit&& field) {
    field("edits_per_step", edits_per_step, "training edits per step (one edit batch)");
    field("warmup_steps", warmup_steps, "linear warm-up steps");
    field("clip_norm", clip_norm, "gradient norm clip");
    field("steps", steps, "training steps");
    field("eval_every", eval_every, "validation loss every this many steps");
    field("patience", patience, "early stopping: steps without a better validation loss");
  }

  LoopSettings settings(std::string method, double lr, nlohmann::json options) const {
    return {.method = std::move(method), .steps = steps, .warmup_steps = warmup_steps, .lr = lr, .clip_norm = clip_norm,
            .eval_every = eval_every, .patience = patience, .options = std::move(options)};
  }
};

struct StepResult {
  double loss = 0;
  double examples = 0;  // for the progress line's rate
};

namespace detail {

inline std::vector<Tensor> copies_of(const std::vector<Tensor>& params) {
  std::vector<Tensor> out;
  for (const auto& p : params) out.push_back(p.detach().contiguous_copy());
  return out;
}

inline void copy_into(const std::vector<Tensor>& params, const std::vector<Tensor>& values) {
  tt::NoGradGuard no_grad;
  for (std::size_t i = 0; i < params.size(); ++i) {
    Tensor p = params[i];
    p.copy_(values[i]);  // in place: the optimizer holds these tensors
  }
}

// <checkpoint_dir>/checkpoint/: the trained state (parameters, then buffers) now and at the best
// validation loss, the optimizer state, and the step and early-stopping state.
inline void save_loop_checkpoint(const TrainControl& control, const LoopSettings& s, tt::optim::Adam<float, Cpu>& adam,
                                 const std::vector<Tensor>& state, const TrainReport& report, const std::vector<Tensor>& best) {
  save_checkpoint(control.checkpoint_dir, [&](const std::filesystem::path& dir) {
    std::map<std::string, Tensor> tensors;
    for (std::size_t i = 0; i < state.size(); ++i) {
      tensors.emplace("current." + std::to_string(i), state[i].detach());
      tensors.emplace("best." + std::to_string(i), best[i]);
    }
    for (auto& [n, t] : adam.state_dict()) tensors.emplace("optimizer." + n, t);
    tt::io::save(dir / "training.safetensors", tensors);
    const nlohmann::json progress = {{"method", s.method}, {"step", report.steps}, {"best_step", report.best_step},
                                  {"best_validation_loss", report.best_validation_loss},
                                  {"options", s.options}, {"identity", control.identity}};
    write_text(dir / "state.json", progress.dump(2) + "\n");
  });
}

inline void resume_loop_checkpoint(const TrainControl& control, const LoopSettings& s, tt::optim::Adam<float, Cpu>& adam,
                                   const std::vector<Tensor>& state, TrainReport& report, std::vector<Tensor>& best) {
  const auto dir = find_checkpoint(control.checkpoint_dir);
  tt::check(!dir.empty(), "editlab train", "--resume: '", control.checkpoint_dir.string(), "' has no checkpoint");
  const auto progress = read_json(dir / "state.json");
  tt::check(progress.at("options") == s.options && progress.at("identity") == control.identity, "editlab train",
            "--resume: the checkpoint in '", dir.string(), "' was made with ", progress.at("options").dump(), " on ",
            progress.at("identity").dump(), ", not ", s.options.dump(), " on ", control.identity.dump());
  const tt::io::SafetensorsFile st(dir / "training.safetensors");
  std::map<std::string, Tensor> optimizer_state;
  for (const auto& n : st.names())
    if (n.rfind("optimizer.", 0) == 0) optimizer_state.emplace(n.substr(10), tt::io::load<float, Cpu>(st, n));
  std::vector<Tensor> current;
  best.clear();
  for (std::size_t i = 0; i < state.size(); ++i) {
    tt::check(st.contains("current." + std::to_string(i)), "editlab train", "--resume: the checkpoint in '", dir.string(),
              "' holds fewer tensors than this editor trains (", state.size(), "): was it made by an older editlab?");
    current.push_back(tt::io::load<float, Cpu>(st, "current." + std::to_string(i)));
    tt::check(current.back().shape() == state[i].shape(), "editlab train", "--resume: tensor ", i, " has shape ",
              current.back().shape(), " in the checkpoint, ", state[i].shape(), " here");
    best.push_back(tt::io::load<float, Cpu>(st, "best." + std::to_string(i)));
  }
  copy_into(state, current);
  adam.load_state_dict({optimizer_state.begin(), optimizer_state.end()});
  report.steps = progress.at("step");
  report.best_step = progress.at("best_step");
  report.best_validation_loss = progress.at("best_validation_loss");
}

}  // namespace detail

// adam.step(), with the `slower` parameters moved at ratio times the optimizer's learning rate.
// Adam's step is lr times a direction that does not depend on lr (no weight decay here), so
// scaling those parameters' step by the ratio is exactly Adam at ratio * lr for them, with one
// optimizer state (SEPROG's sp-finetune and ENN train the base model slower than their own modules).
inline void adam_step_scaled(tt::optim::Adam<float, Cpu>& adam, const std::vector<Tensor>& slower, double ratio) {
  tt::NoGradGuard no_grad;
  std::vector<Tensor> before;
  for (const auto& p : slower) before.push_back(p.contiguous_copy());
  adam.step();
  const auto factor = static_cast<float>(ratio);
  for (std::size_t i = 0; i < slower.size(); ++i) {
    Tensor p = slower[i];
    p.add_(before[i], -1.0f);  // the step Adam took at lr
    p.mul_(factor);
    p.add_(before[i]);
  }
}

// Trains `params` (see the header comment) and leaves the best validation state in them and in
// `buffers`. update(adam) takes the step; SEPROG's sp-finetune moves its base at another rate there.
inline TrainReport run_training(const std::vector<Tensor>& params, const LoopSettings& s, const TrainControl& control,
                                const std::function<StepResult(int step)>& gradients,
                                const std::function<double()>& validation_loss,
                                const std::function<void(tt::optim::Adam<float, Cpu>&)>& update = {},
                                const std::vector<Tensor>& buffers = {}) {
  tt::check(!params.empty(), "editlab train", s.method, " has nothing to train");
  tt::optim::Adam<float, Cpu> adam(params, {.lr = s.lr});
  const auto schedule = tt::optim::warmup_constant(s.warmup_steps);
  std::vector<Tensor> state = params;  // what is kept at the best step and checkpointed
  state.insert(state.end(), buffers.begin(), buffers.end());
  TrainReport report;
  std::vector<Tensor> best;
  if (control.resume) {
    detail::resume_loop_checkpoint(control, s, adam, state, report, best);
  } else {
    best = detail::copies_of(state);
    report.best_validation_loss = validation_loss();
  }
  Progress progress("train " + s.method, s.steps, report.steps, control.quiet ? nullptr : stderr);
  for (int step = report.steps; step < s.steps; ++step) {
    tt::optim::apply_schedule(adam, s.lr, schedule, step);
    adam.zero_grad();
    const StepResult result = gradients(step);
    check_finite_step("editlab train " + s.method, step + 1, result.loss, tt::optim::clip_grad_norm_(params, s.clip_norm));
    if (update) {
      update(adam);
    } else {
      adam.step();
    }
    progress.update(step + 1, result.loss, result.examples);
    report.steps = step + 1;
    bool stop = false;
    if (report.steps % s.eval_every == 0) {
      const double v = validation_loss();
      if (v < report.best_validation_loss) {
        report.best_validation_loss = v;
        report.best_step = report.steps;
        best = detail::copies_of(state);
      } else if (report.steps - report.best_step >= s.patience) {
        stop = true;  // early stopping
      }
    }
    if (control.stop_after > 0 && report.steps == control.stop_after && !stop && report.steps < s.steps) {
      detail::save_loop_checkpoint(control, s, adam, state, report, best);
      progress.finish();
      report.seconds = progress.elapsed_s();
      report.stopped_for_resume = true;
      return report;
    }
    if (stop) break;
    if (!control.checkpoint_dir.empty() && report.steps % control.checkpoint_every == 0 && report.steps < s.steps)
      detail::save_loop_checkpoint(control, s, adam, state, report, best);
  }
  progress.finish();
  detail::copy_into(state, best);
  report.seconds = progress.elapsed_s();
  return report;
}

// Meta-training on edit batches (MEND, SLAG, SERAC): step n draws an edit batch of
// loop.edits_per_step training cases from an Rng seeded by (seed, n), so a resumed run draws as
// an uninterrupted one; the validation loss is the mean over 8 batches of the validation split
// drawn once. loss(batch, training) is the editor's objective; `training` is false under
// validation (MEND updates its running moments, its `buffers`, only while training).
inline TrainReport train_on_edit_batches(const std::vector<Tensor>& params, const LoopSettings& settings,
                                         const TrainControl& control, const Benchmark& bench, int edits_per_step,
                                         std::uint64_t seed, const std::function<Tensor(const EditBatch&, bool)>& loss,
                                         const std::vector<Tensor>& buffers = {}) {
  const auto& train_cases = bench.split(Split::train);
  const auto& validation_cases = bench.split(Split::validation);
  tt::check(!train_cases.empty() && !validation_cases.empty(), settings.method + " training", "benchmark '", bench.name,
            "' needs train and validation edits");
  std::vector<EditBatch> validation;
  tt::Rng validation_rng(seed + 17);
  for (int i = 0; i < 8; ++i) validation.push_back(draw_edit_batch(validation_cases, edits_per_step, validation_rng));
  return run_training(
      params, settings, control,
      [&](int step) {
        tt::Rng rng(seed * 1'000'003ULL + static_cast<std::uint64_t>(step));
        const auto data = draw_edit_batch(train_cases, edits_per_step, rng);
        const auto value = loss(data, true);
        tt::backward(value);
        return StepResult{value.item(), static_cast<double>(data.edits.size())};
      },
      [&] {
        tt::NoGradGuard no_grad;
        double total = 0;
        for (const auto& d : validation) total += loss(d, false).item();
        return total / static_cast<double>(validation.size());
      },
      {}, buffers);
}

}  // namespace editlab::train
