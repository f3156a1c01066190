// editlab demo — the main job, with nothing prepared: a base model (the shipped one, or
// pretrained on the spot), SEPROG and two baselines (SERAC, MEND) trained on qa, evaluated over
// edit batch sizes on the validation split (the test split is read once, for docs/results; qa's
// validation split holds 61 edits, hence K up to 50), their ES / DD side by side and the plots.
//
//   editlab demo                     # minutes on 2 cores with the shipped base model: docs/editing.md
//   editlab demo --out demo --model models/base --methods seprog,serac,mend,enn
//
// Everything lands in --out: base/ (only when pretrained here), METHOD-qa/ per method,
// results.jsonl, results.md and the plots. A run folder that is already complete is reused, so
// a second demo only re-evaluates; an interrupted training run is resumed from its checkpoint.
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
  std::vector<std::string> methods = {"seprog", "serac", "mend"};
  std::string benchmark = "qa";
};

inline void add_demo_options(CLI::App& cmd, DemoCommand& d) {
  cmd.add_option("--out", d.out, "folder for the runs and results")->capture_default_str();
  cmd.add_option("--model", d.model, "a base model folder (default: the shipped one, or pretrain one)");
  cmd.add_option("--methods", d.methods, "the editors to train and compare (editlab methods lists them)")
      ->delimiter(',')
      ->check(CLI::IsMember(editors::method_names()))
      ->capture_default_str();
  cmd.add_option("--benchmark", d.benchmark, "the benchmark of the default world they are trained and evaluated on")
      ->check(CLI::IsMember({"qa", "entail", "factcheck", "relations", "textgen"}))
      ->capture_default_str();
  cmd.add_option("--steps", d.steps, "training steps of each method that trains")->check(CLI::PositiveNumber)->capture_default_str();
  cmd.add_option("--draws", d.draws, "random edit batches per K")->check(CLI::PositiveNumber)->capture_default_str();
  cmd.add_option("--batch-sizes", d.batch_sizes, "edit batch sizes K")->delimiter(',')->capture_default_str();
}

// The base model that ships with the source tree (made by `editlab pretrain`, see its
// quality.json), or empty when this build's source tree has none.
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
  for (const auto& method : d.methods) {
    const fs::path run = d.out / (method + "-" + d.benchmark);
    runs.push_back(run);
    if (fs::exists(run / "run.json")) {
      std::printf("== 2/3  %s: reusing the trained run %s\n", method.c_str(), run.string().c_str());
      continue;
    }
    const bool trains = editors::method(method).trains;
    std::printf("== 2/3  %s %s on %s%s into %s   [%.1f min]\n", trains ? "training" : "setting up", method.c_str(),
                d.benchmark.c_str(), trains ? (" (" + std::to_string(d.steps) + " steps)").c_str() : "", run.string().c_str(),
                minutes());
    TrainCommand t;
    t.method = method;
    t.source.benchmark = d.benchmark;
    t.source.model = model;
    t.out = run;
    if (is_seprog_method(method)) t.seprog.steps = d.steps;
    else if (trains) t.sets = {"steps=" + std::to_string(d.steps)};
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
  const auto rows = eval::read_jsonl(results);
  const std::string side_by_side = eval::side_by_side_markdown(rows);
  train::write_text(d.out / "results.md", "### ES / DD side by side\n\n" + side_by_side + "\n" + eval::results_markdown(rows));
  std::printf("\n%s\n", side_by_side.c_str());
  try {
    run_plot(results, d.out);
    std::printf("plots: %s/es_vs_batch_size.png, %s/dd_vs_batch_size.png\n", d.out.string().c_str(), d.out.string().c_str());
  } catch (const tensortape::Error& e) {  // the plots are extra; the table above is the result
    std::printf("no plots: %s\n", e.what());
  }

  std::printf("demo finished in %.1f minutes; results in %s and %s\n", minutes(), results.string().c_str(),
              (d.out / "results.md").string().c_str());
  // `editlab edit` takes the editors with an edit memory: SEPROG's variants and SERAC.
  for (std::size_t i = 0; i < runs.size(); ++i) {
    if (!is_seprog_method(d.methods[i]) && d.methods[i] != "serac") continue;
    auto loaded = load_run(runs[i]);
    const auto& example = loaded->bench.split(world::Split::validation).front();
    std::printf("\nEdit the model yourself:\n  editlab edit --run %s --add \"%s => %s\" --ask \"%s\"\n", runs[i].string().c_str(),
                example.edit.input.c_str(), example.edit.target.c_str(),
                (example.in_scope.empty() ? example.edit : example.in_scope.front()).input.c_str());
    break;
  }
  return 0;
}

}  // namespace editlab::cli
