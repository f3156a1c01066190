// editlab demo — the main job, with nothing prepared: a base model (the shipped one, or
// pretrained on the spot), SEPROG trained on qa and entail, evaluated over edit batch sizes on
// the validation split (the test split is read once, for docs/results; validation holds 61 qa
// and 50 entail edits, hence K up to 50), and the results table.
//
//   editlab demo                     # 5.2 minutes on 2 cores with the shipped base model
//   editlab demo --out demo --model models/base
//
// Everything lands in --out: base/ (only when pretrained here), seprog-qa/, seprog-entail/,
// results.jsonl and results.md. A run folder that is already complete is reused, so a second
// demo only re-evaluates; an interrupted training run is resumed from its checkpoint.
#pragma once

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/run_commands.hpp"
#include "pretrain/pretrain.hpp"

namespace editlab::cli {

struct DemoCommand {
  fs::path out = "demo";
  fs::path model;  // empty: the shipped base model, else pretrain one into <out>/base
  int steps = 700;
  int draws = 3;
  std::vector<int> batch_sizes = {1, 4, 10, 20, 50};
};

inline void add_demo_options(CLI::App& cmd, DemoCommand& d) {
  cmd.add_option("--out", d.out, "folder for the runs and results")->capture_default_str();
  cmd.add_option("--model", d.model, "a base model folder (default: the shipped one, or pretrain one)");
  cmd.add_option("--steps", d.steps, "SEPROG training steps per benchmark")->check(CLI::PositiveNumber)->capture_default_str();
  cmd.add_option("--draws", d.draws, "random edit batches per K")->check(CLI::PositiveNumber)->capture_default_str();
  cmd.add_option("--batch-sizes", d.batch_sizes, "edit batch sizes K")->delimiter(',')->capture_default_str();
}

// The base model that ships with the source tree (made by `editlab pretrain`, see its
// pretrain.json), or empty when this build's source tree has none.
inline fs::path shipped_base_model() {
  const fs::path dir = fs::path(EDITLAB_SOURCE_DIR) / "examples" / "editing" / "models" / "base";
  return fs::exists(dir / "model.safetensors") ? dir : fs::path();
}

inline int run_demo(const DemoCommand& d) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // the step headers interleave with progress on stderr, even in a log
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto minutes = [&] { return std::chrono::duration<double>(Clock::now() - start).count() / 60.0; };
  fs::create_directories(d.out);

  fs::path model = d.model.empty() ? shipped_base_model() : d.model;
  if (model.empty()) {
    model = d.out / "base";
    if (!fs::exists(model / "model.safetensors")) {
      std::printf("== 1/3  no shipped base model in this source tree: pretraining one into %s (about 10 minutes)\n",
                  model.string().c_str());
      pretrain::PretrainOptions options;
      options.out = model;
      options.resume = !train::find_checkpoint(model).empty();
      pretrain::pretrain(options);
    }
  } else {
    std::printf("== 1/3  base model: %s\n", model.string().c_str());
  }

  std::vector<fs::path> runs;
  for (const std::string benchmark : {"qa", "entail"}) {
    const fs::path run = d.out / ("seprog-" + benchmark);
    runs.push_back(run);
    if (fs::exists(run / "run.json")) {
      std::printf("== 2/3  %s: reusing the trained run %s\n", benchmark.c_str(), run.string().c_str());
      continue;
    }
    std::printf("== 2/3  training SEPROG on %s (%d steps) into %s   [%.1f min]\n", benchmark.c_str(), d.steps,
                run.string().c_str(), minutes());
    TrainCommand t;
    t.source.benchmark = benchmark;
    t.source.model = model;
    t.out = run;
    t.seprog.steps = d.steps;
    t.control.resume = !train::find_checkpoint(run).empty();
    run_train(t);
  }

  const fs::path results = d.out / "results.jsonl";
  fs::remove(results);
  for (const auto& run : runs) {
    std::printf("== 3/3  evaluating %s on validation at K = %s, at least %d draws each   [%.1f min]\n", run.string().c_str(),
                nlohmann::json(d.batch_sizes).dump().c_str(), d.draws, minutes());
    EvalCommand e;
    e.run = run;
    e.options.batch_sizes = d.batch_sizes;
    e.options.min_draws = d.draws;
    e.split = "validation";  // the test split is read once, for docs/results
    e.json = results;
    run_eval(e);
  }
  const std::string table = eval::results_markdown(eval::read_jsonl(results));
  train::write_text(d.out / "results.md", table);
  std::printf("\n%s\n", table.c_str());

  auto loaded = load_run(runs.front());
  const auto& example = loaded->bench.split(world::Split::validation).front();
  std::printf("demo finished in %.1f minutes; results in %s and %s\n\nEdit the model yourself:\n"
              "  editlab edit --run %s --add \"%s => %s\" --ask \"%s\"\n",
              minutes(), results.string().c_str(), (d.out / "results.md").string().c_str(), runs.front().string().c_str(),
              example.edit.input.c_str(), example.edit.target.c_str(),
              (example.in_scope.empty() ? example.edit : example.in_scope.front()).input.c_str());
  return 0;
}

}  // namespace editlab::cli
