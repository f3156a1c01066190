// The editor commands of editlab: train an editor into a run folder, evaluate it, print the
// tables, plot, and edit by hand.
//
//   editlab train --method seprog --benchmark qa --model models/base --out runs/seprog-qa
//   editlab eval --run runs/seprog-qa --batch-sizes 1,4,10,20,64,128 --json results.jsonl
//   editlab table results.jsonl
//   editlab plot results.jsonl --out docs/results
//   editlab cost --run runs/seprog-qa --k 64                  (time and memory, like Table 3)
//   editlab edit --run runs/seprog-qa --add "question: Where was Talimo born? => Brisvo"
//                --ask "question: Talimo was born in which city?"     (one command line)
//
// A run folder holds run.json (what it was trained on: method, benchmark, base model folder,
// world; run_format_version), and the editor's own files (seprog.json and seprog.safetensors,
// mend.json and mend.safetensors, ...; editors/registry.hpp says which).
//
//   editlab train --method mend --benchmark qa --out runs/mend-qa --set edits_per_step=16 --steps 2000
//   editlab methods                                       (every method and its options, with defaults)
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/data_command.hpp"
#include "editors/registry.hpp"
#include "eval/cost.hpp"
#include "eval/harness.hpp"
#include "eval/report.hpp"

namespace editlab::cli {

namespace fs = std::filesystem;

// A gate threshold in (0, 1), as Seprog::set_gate_threshold requires: 0 or 1 would inject the
// prefix everywhere or nowhere.
inline const CLI::Validator kOpenUnitInterval(
    [](const std::string& text) -> std::string {
      double value = 0;
      try {
        value = std::stod(text);
      } catch (const std::exception&) {
        return "not a number: " + text;
      }
      return value > 0 && value < 1 ? std::string() : "must be strictly between 0 and 1, got " + text;
    },
    "in (0, 1)");

// What a run is trained and evaluated on.
struct RunSource {
  std::string benchmark = "qa";
  fs::path model = "models/base";
  world::WorldOptions world;  // the generated world's seed, people and variant
  fs::path data_dir = "../shared/data";

  nlohmann::json to_json() const {
    nlohmann::json j = {{"benchmark", benchmark}, {"model", fs::absolute(model).string()}, {"world_seed", world.seed},
                        {"people", world.people}, {"data_dir", fs::absolute(data_dir).string()}};
    if (world.stress) j["stress_world"] = true;  // absent otherwise, so earlier checkpoints still resume
    return j;
  }
  static RunSource from_json(const nlohmann::json& j) {
    RunSource s;
    s.benchmark = j.at("benchmark");
    s.model = j.at("model").get<std::string>();
    s.world.seed = j.at("world_seed");
    s.world.people = j.at("people");
    s.world.stress = j.value("stress_world", false);
    s.data_dir = j.at("data_dir").get<std::string>();
    return s;
  }
  bool is_track() const {
    const auto& tracks = data::track_names();
    return std::find(tracks.begin(), tracks.end(), benchmark) != tracks.end();
  }
  // Fails when the base model was pretrained on another world or track than this source names
  // (its quality.json, written by editlab pretrain, says which; a folder without one passes).
  void check_base_model() const {
    const fs::path report = model / "quality.json";
    if (!fs::exists(report)) return;
    const auto config = train::read_json(report).at("model").at("config");
    const std::string pretrained_on = config.value("source", "default");
    const std::string wanted = is_track() ? benchmark : "default";
    tensortape::check(pretrained_on == wanted, "editlab", "the base model '", model.string(), "' was pretrained on ",
                      pretrained_on == "default" ? "the generated world" : "the " + pretrained_on + " track", ", not on ",
                      wanted == "default" ? "the generated world" : "the " + wanted + " track", " that --benchmark ",
                      benchmark, " needs; pass the --model that editlab pretrain made for it");
    if (is_track()) return;
    auto describe = [](std::uint64_t seed, int people, bool stress) {
      return "world seed " + std::to_string(seed) + ", " + std::to_string(people) + " people" + (stress ? ", stress variant" : "");
    };
    const std::string base_world =
        describe(config.at("world_seed"), config.at("people"), config.value("stress_world", false));
    tensortape::check(base_world == describe(world.seed, world.people, world.stress), "editlab", "the base model '",
                      model.string(), "' was pretrained on ", base_world, ", not on ", describe(world.seed, world.people, world.stress),
                      "; pass the same --world-seed, --people and --stress-world as to editlab pretrain");
  }
  // The benchmark, with base's answers fitted to its new labels (fit_answers).
  world::Benchmark load_benchmark(model::Seq2Seq& base) const {
    check_base_model();
    auto bench = is_track()                ? data::load_track(benchmark, data_dir).benchmark
                 : benchmark != "textgen" ? world::make_benchmark(world::generate(world), benchmark)
                                          : world::make_benchmark(world::generate(world), benchmark, textgen_sampler(base));
    fit_answers(base, bench);
    return bench;
  }
};

inline void add_source_options(CLI::App& cmd, RunSource& s) {
  cmd.add_option("--benchmark", s.benchmark, "qa, factcheck, textgen, entail, relations, lot or zsre1k")
      ->check(CLI::IsMember(all_benchmark_names()))
      ->capture_default_str();
  cmd.add_option("--model", s.model, "the base model folder (from editlab pretrain)")->capture_default_str();
  add_world_options(cmd, s.world);
  cmd.add_option("--data-dir", s.data_dir, "the shared data folder (lot, zsre1k)")->capture_default_str();
}

// The version of run.json and the editors' files that this editlab writes (2: the registry's
// methods, each editor's options file holding {"editor", "options"}).
inline constexpr int kRunFormatVersion = 2;

struct TrainCommand {
  std::string method = "seprog";
  bool paper_form = false;
  RunSource source;
  fs::path out;
  editors::SeprogOptions seprog;  // SEPROG's flags; --steps, --lr and --seed also set other methods' options
  std::vector<std::string> sets;  // --set key=value, any method
  train::TrainControl control;
  const CLI::App* command = nullptr;  // the parsed subcommand, to tell which flags were given
};

// Flags every method takes; the rest of `editlab train`'s flags are SEPROG's own.
inline bool is_common_train_flag(const std::string& name) {
  for (const char* common : {"method", "benchmark", "model", "world-seed", "people", "stress-world", "data-dir", "out", "steps", "lr", "seed",
                             "set", "checkpoint-every", "resume", "stop-after", "threads", "help"})
    if (name == common) return true;
  return false;
}

inline bool is_seprog_method(const std::string& method) {
  for (const char* v : {"seprog", "sp-finetune", "sp-noclassifier", "sp-noselect"})
    if (method == v) return true;
  return false;
}

// The options JSON of a new run: SEPROG's from its flags, another method's defaults with
// --steps, --lr and --seed when given; then every --set key=value.
inline nlohmann::json train_options(TrainCommand& t) {
  nlohmann::json options;
  if (is_seprog_method(t.method)) {
    t.seprog.variant = editors::parse_variant(t.method);
    if (t.paper_form) t.seprog = t.seprog.paper_form();
    options = t.seprog.to_json();
  } else {
    options = editors::method(t.method).default_options();
    tensortape::check(!t.paper_form, "editlab train", "--paper-form is SEPROG's");
    if (t.command) {
      for (const auto* option : t.command->get_options()) {
        if (option->count() == 0 || option->get_lnames().empty()) continue;
        const auto& flag = option->get_lnames().front();
        tensortape::check(is_common_train_flag(flag), "editlab train", "--", flag, " is a SEPROG option; ", t.method,
                          " takes --set key=value (editlab methods lists its keys)");
        if (flag == "steps" || flag == "lr" || flag == "seed") {
          const auto value = flag == "steps" ? nlohmann::json(t.seprog.steps)
                             : flag == "lr"  ? nlohmann::json(t.seprog.lr)
                                             : nlohmann::json(t.seprog.seed);
          editors::set_json_option(options, flag, value.dump());
        }
      }
    }
  }
  for (const auto& assignment : t.sets) {
    const auto equals = assignment.find('=');
    tensortape::check(equals != std::string::npos && equals > 0, "editlab train", "--set '", assignment, "': expected key=value");
    editors::set_json_option(options, assignment.substr(0, equals), assignment.substr(equals + 1));
  }
  return options;
}

inline void add_train_options(CLI::App& cmd, TrainCommand& t) {
  t.command = &cmd;
  cmd.add_option("--method", t.method, "the editor (editlab methods lists them and their options)")
      ->check(CLI::IsMember(editors::method_names()))
      ->capture_default_str();
  cmd.add_option("--set", t.sets, "key=value: one of the method's options (repeatable; editlab methods lists them)");
  add_source_options(cmd, t.source);
  cmd.add_option("--out", t.out, "the run folder to write")->required();
  cmd.add_flag("--paper-form", t.paper_form,
               "SEPROG exactly as the paper writes it: every option marked 'beyond the paper' off, one edit set per step"
               " (overrides those options)");
  cmd.add_option("--steps", t.seprog.steps, "training steps")->check(CLI::PositiveNumber)->capture_default_str();
  cmd.add_option("--lr", t.seprog.lr, "Adam learning rate (linear warm-up)")->check(CLI::PositiveNumber)->capture_default_str();
  cmd.add_option("--base-lr", t.seprog.base_lr, "sp-finetune: the base model's learning rate")->check(CLI::PositiveNumber)->capture_default_str();
  cmd.add_option("--lambda", t.seprog.lambda, "weight of the scope loss: L = lambda L_sc + (1 - lambda) L_pg")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd.add_option("--prefix-length", t.seprog.prefix_length, "P, the generated prompt's length")->check(CLI::PositiveNumber)->capture_default_str();
  cmd.add_option("--max-edits", t.seprog.max_edits, "largest edit set drawn in training")->check(CLI::PositiveNumber)->capture_default_str();
  cmd.add_option("--edit-sets", t.seprog.edit_sets_per_step, "independent edit sets per training step")->check(CLI::PositiveNumber)->capture_default_str();
  cmd.add_option("--examples", t.seprog.examples_per_step, "in-scope examples per step (and as many out-scope)")->check(CLI::PositiveNumber)->capture_default_str();
  cmd.add_option("--relabel", t.seprog.relabel, "share of training cases given another case's new label")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd.add_option("--selection-weight", t.seprog.selection_weight,
                 "weight of the selection loss (beyond the paper; 0: the paper's objective)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--key-value", t.seprog.key_value, "memory entries hold a key and a value (beyond the paper)")->capture_default_str();
  cmd.add_option("--match-feature", t.seprog.match_feature, "NN_e also sees the best key's score (beyond the paper)")->capture_default_str();
  cmd.add_option("--token-match", t.seprog.token_match, "selection matches the key's tokens one by one, weighed by a learned salience (beyond the paper; needs --key-value)")->capture_default_str();
  cmd.add_option("--key-tokens", t.seprog.key_tokens, "with --token-match: tokens kept of each descriptor input")->capture_default_str()->check(CLI::PositiveNumber);
  cmd.add_option("--answer-match", t.seprog.answer_match, "selection and scope also compare the frozen decoder's first-step state: what the base model is about to answer (beyond the paper; needs --token-match)")->capture_default_str();
  cmd.add_option("--exact-match", t.seprog.exact_match, "key tokens also count when the query holds the same token id (beyond the paper; needs --token-match)")->capture_default_str();
  cmd.add_option("--scope-from-match-only", t.seprog.scope_from_match_only, "NN_e sees only the best match, not [h(x); b(x)] (beyond the paper)")->capture_default_str();
  cmd.add_option("--swap-negatives", t.seprog.swap_negatives, "share of out-scope training inputs that are in-scope inputs about another subject (beyond the paper)")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd.add_option("--hard-negatives", t.seprog.hard_negatives, "share of out-scope training inputs that are other facts of a subject the set edits (beyond the paper)")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd.add_option("--hard-selection", t.seprog.hard_selection, "at inference, the prompt comes from the best-scoring edit alone (beyond the paper)")->capture_default_str();
  cmd.add_option("--prompt-sees-query", t.seprog.prompt_sees_query, "the prompt decoder reads the query's pooled encoding beside the selected edit (beyond the paper)")->capture_default_str();
  cmd.add_option("--gate-threshold", t.seprog.gate_threshold, "an input gets the prefix where the scope classifier's e(x) exceeds this (the paper: 0.5)")->capture_default_str()->check(kOpenUnitInterval);
  cmd.add_option("--pair-gate", t.seprog.pair_gate, "the scope classifier also reads the query and its best-matching edit's input encoded together (beyond the paper)")->capture_default_str();
  cmd.add_option("--prompt-sees-pair", t.seprog.prompt_sees_pair, "the prompt decoder also reads the query and its best-matching edit's input encoded together (beyond the paper)")->capture_default_str();
  cmd.add_option("--label-slots", t.seprog.label_slots, "the selected edit's first N label tokens, as embeddings, end the prefix (beyond the paper; for a base pretrained with --copy-percent; 0: off)")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd.add_option("--sibling-share", t.seprog.sibling_share, "share of an edit set's edits drawn from subjects it already edits (beyond the paper)")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd.add_option("--word-dropout", t.seprog.word_dropout, "share of in-scope training inputs with one word dropped (beyond the paper)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd.add_option("--patience", t.seprog.patience, "early stopping: steps without a better validation loss")->check(CLI::PositiveNumber)->capture_default_str();
  cmd.add_option("--seed", t.seprog.seed, "seed of initialisation and draws")->capture_default_str();
  cmd.add_option("--checkpoint-every", t.control.checkpoint_every, "steps between checkpoints (in <out>/checkpoint)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd.add_flag("--resume", t.control.resume, "continue the interrupted run in --out (its options come from the checkpoint)");
  cmd.add_option("--stop-after", t.control.stop_after, "checkpoint and stop at this step (continue with --resume)")
      ->check(CLI::PositiveNumber);
  cmd.add_option("--threads", t.control.threads, "threads, each running a share of a step's examples (0: one per core)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
}

inline int run_train(TrainCommand t) {
  tensortape::check(!fs::exists(t.out / "run.json"), "editlab train", "'", t.out.string(),
                    "' already holds a finished run; choose another --out or remove it");
  const fs::path checkpoint = train::find_checkpoint(t.out);
  nlohmann::json options;
  std::string method = t.method;
  if (t.control.resume) {
    tensortape::check(!checkpoint.empty(), "editlab train", "--resume: '", t.out.string(), "' has no checkpoint to resume");
    const auto state = train::read_json(checkpoint / "state.json");  // the interrupted run's own settings
    options = state.at("options");
    // Checkpoints from before the registry name no method; they are SEPROG's, whose options say the variant.
    method = state.contains("method") ? state.at("method").get<std::string>() : options.at("variant").get<std::string>();
    t.source = RunSource::from_json(state.at("identity"));
    std::fprintf(stderr, "editlab train: resuming %s on %s from step %d\n", method.c_str(), t.source.benchmark.c_str(),
                 state.at("step").get<int>());
  } else {
    options = train_options(t);
    tensortape::check(checkpoint.empty(), "editlab train", "'", t.out.string(), "' holds an interrupted run (",
                      checkpoint.string(), "); pass --resume to continue it or remove it");
  }
  t.control.checkpoint_dir = t.out;
  t.control.identity = t.source.to_json();
  auto base = model::Seq2Seq::load(t.source.model);
  const auto bench = t.source.load_benchmark(base);
  auto editor = editors::method(method).make(base, bench, options);
  const auto report = editor->train(bench, t.control);
  if (report.stopped_for_resume) {
    std::printf("stopped at step %d; continue with: editlab train --out %s --resume\n", report.steps, t.out.string().c_str());
    return 0;
  }
  editor->save(t.out);
  const nlohmann::json run = {{"method", editor->name()}, {"run_format_version", kRunFormatVersion}, {"source", t.source.to_json()},
                              {"training", {{"steps", report.steps}, {"best_step", report.best_step},
                                            {"best_validation_loss", report.best_validation_loss},
                                            {"seconds", report.seconds}, {"resumed", t.control.resume}}}};
  train::write_text(t.out / "run.json", run.dump(2) + "\n");
  fs::remove_all(t.out / "checkpoint");
  if (editors::method(method).trains) {
    std::printf("trained %s on %s: %d steps, best validation loss %.4f at step %d, %.0f s; wrote %s\n", editor->name().c_str(),
                bench.name.c_str(), report.steps, report.best_validation_loss, report.best_step, report.seconds,
                t.out.string().c_str());
  } else {
    std::printf("%s has no training phase; wrote its options to %s\n", editor->name().c_str(), t.out.string().c_str());
  }
  return 0;
}

// Every method, its options and their defaults; with names_only, the names alone, one a line
// (scripts/results reads them); with trained_only, only the methods that train.
inline int run_methods(bool names_only, bool trained_only) {
  for (const auto& m : editors::methods()) {
    if (trained_only && !m.trains) continue;
    if (names_only) {
      std::printf("%s\n", m.name.c_str());
      continue;
    }
    std::printf("%s%s\n  %s\n  options (editlab train --set key=value%s):\n", m.name.c_str(), m.trains ? "" : "  (no training phase)",
                m.summary.c_str(), is_seprog_method(m.name) ? "; or the flags of editlab train --help" : "");
    const auto defaults = m.default_options();
    for (const auto& [key, value] : defaults.items()) std::printf("    %s = %s\n", key.c_str(), value.dump().c_str());
  }
  return 0;
}

// A trained run, ready to edit: the base model, the benchmark and the editor.
struct LoadedRun {
  std::string method;
  RunSource source;
  model::Seq2Seq base;
  world::Benchmark bench;
  std::unique_ptr<editors::RunEditor> editor;

  // The SEPROG editor, for the commands that only SEPROG has (oracle; edit, which SERAC has too).
  editors::Seprog& seprog(const char* command) const {
    auto* s = dynamic_cast<editors::Seprog*>(editor.get());
    tensortape::check(s != nullptr, command, "works on SEPROG runs; this run is ", method);
    return *s;
  }

  // The harness's own copy of the base model, loaded anew from the run's model folder: an
  // editor that trains its base (sp-finetune) never touches it.
  eval::BasePredictor untouched_base() const {
    auto reference = std::make_shared<model::Seq2Seq>(model::Seq2Seq::load(source.model));
    reference->model.eval();
    reference->answer_tokens = base.answer_tokens;
    return [reference, labels = bench.labels](const std::vector<std::string>& inputs) { return reference->predict(inputs, labels); };
  }
};

inline std::unique_ptr<LoadedRun> load_run(const fs::path& dir) {
  std::ifstream in(dir / "run.json");
  tensortape::check(static_cast<bool>(in), "editlab", "'", (dir / "run.json").string(),
                    "' is missing: is this a folder written by editlab train?");
  const auto run = nlohmann::json::parse(in, nullptr, false);
  tensortape::check(!run.is_discarded() && run.contains("source") && run.contains("method"), "editlab", "'",
                    (dir / "run.json").string(), "' is not a valid run description");
  auto source = RunSource::from_json(run.at("source"));
  auto base = model::Seq2Seq::load(source.model);
  auto bench = source.load_benchmark(base);
  auto loaded = std::make_unique<LoadedRun>(LoadedRun{run.at("method"), source, std::move(base), std::move(bench), nullptr});
  tensortape::check(run.value("run_format_version", 1) <= kRunFormatVersion, "editlab", "'", (dir / "run.json").string(),
                    "' was written by a newer editlab (run format ", run.value("run_format_version", 1), ")");
  loaded->editor = editors::load_editor(dir, loaded->method, loaded->base, loaded->bench);
  return loaded;
}

struct EvalCommand {
  fs::path run;
  eval::EvalOptions options;
  std::string split = "test";
  fs::path json = "results.jsonl";
  bool resume = false;
  std::optional<double> gate_threshold;  // SEPROG runs: overrides the run's
};

inline void add_eval_options(CLI::App& cmd, EvalCommand& e) {
  cmd.add_option("--run", e.run, "the run folder (from editlab train)")->required();
  cmd.add_option("--batch-sizes", e.options.batch_sizes, "edit batch sizes K")->delimiter(',')->capture_default_str();
  cmd.add_option("--draws", e.options.min_draws, "at least this many random edit batches per K")->check(CLI::PositiveNumber)->capture_default_str();
  cmd.add_option("--max-draws", e.options.max_draws, "at most this many edit batches per K")->check(CLI::PositiveNumber)->capture_default_str();
  cmd.add_option("--min-examples", e.options.min_examples,
                 "draw batches until each K rests on this many distinct edit-needed in-scope and out-scope examples")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd.add_option("--split", e.split, "train, validation or test")->check(CLI::IsMember({"train", "validation", "test"}))->capture_default_str();
  cmd.add_option("--json", e.json, "results file; rows are appended")->capture_default_str();
  cmd.add_option("--seed", e.options.seed, "seed of the edit batch draws")->capture_default_str();
  cmd.add_flag("--resume", e.resume,
               "skip the batch sizes whose rows --json already holds for this run (method, benchmark, split, training seed, editor options)");
  cmd.add_option("--gate-threshold", e.gate_threshold,
                 "SEPROG runs: inject the prefix where e(x) exceeds this instead of the run's threshold (rows record it in their "
                 "editor options; tables key rows by method and seed, so give them their own --json)")
      ->check(kOpenUnitInterval);
}

inline int run_eval(const EvalCommand& e) {
  tensortape::check(e.options.max_draws >= e.options.min_draws, "editlab eval", "--max-draws ", e.options.max_draws,
                    " is below --draws ", e.options.min_draws);
  auto run = load_run(e.run);
  if (e.gate_threshold) run->seprog("editlab eval --gate-threshold").set_gate_threshold(*e.gate_threshold);
  eval::EvalOptions options = e.options;
  const nlohmann::json editor_options = run->editor->options_json();  // what every row records
  std::vector<eval::ResultRow> kept;  // --resume: the rows an earlier sitting finished
  if (e.resume && fs::exists(e.json)) {
    const std::string split = world::split_name(world::parse_split(e.split));
    // Rows written before rows recorded options (null) count as this run's.
    for (const auto& row : eval::read_jsonl(e.json))
      if (row.method == run->editor->name() && row.benchmark == run->bench.name && row.split == split &&
          row.seed == run->editor->seed() && (row.editor_options.is_null() || row.editor_options == editor_options))
        kept.push_back(row);
    std::erase_if(options.batch_sizes, [&](int k) {
      return std::any_of(kept.begin(), kept.end(), [k](const eval::ResultRow& row) { return row.batch_size == k; });
    });
    std::fprintf(stderr, "editlab eval: %zu batch sizes already in %s; %zu left\n", e.options.batch_sizes.size() - options.batch_sizes.size(),
                 e.json.string().c_str(), options.batch_sizes.size());
  }
  // Each row is appended as soon as its batch size is done: an interrupted evaluation keeps it.
  auto rows = options.batch_sizes.empty()
                  ? std::vector<eval::ResultRow>{}
                  : eval::evaluate(*run->editor, run->untouched_base(), run->bench, world::parse_split(e.split), options,
                                   &std::cerr, [&](eval::ResultRow row) {
                                     row.seed = run->editor->seed();
                                     row.editor_options = editor_options;
                                     eval::append_jsonl(e.json, {row});
                                   });
  for (auto& row : rows) {
    row.seed = run->editor->seed();
    row.editor_options = editor_options;
  }
  rows.insert(rows.begin(), kept.begin(), kept.end());
  std::printf("%s\nthe rows are in %s\n", eval::batch_size_markdown(rows).c_str(), e.json.string().c_str());
  return 0;
}

inline int run_table(const fs::path& results) {
  std::printf("%s", eval::results_markdown(eval::latest_rows(eval::read_jsonl(results))).c_str());
  return 0;
}

inline int run_plot(const fs::path& results, const fs::path& out) {
  tensortape::check(fs::exists(results), "editlab plot", "'", results.string(), "' does not exist");
  const fs::path script = fs::path(EDITLAB_SOURCE_DIR) / "tools" / "plot_results.py";
  const std::string command = "/usr/bin/python3 '" + script.string() + "' '" + results.string() + "' --out '" + out.string() + "'";
  const int status = std::system(command.c_str());
  tensortape::check(status == 0, "editlab plot", "'", command, "' failed (it needs Debian's python3-matplotlib)");
  return 0;
}

struct OracleCommand {
  fs::path run;
  std::string split = "test";
  int k = 64;
  int draws = 5;
  std::uint64_t seed = 1;
  int show = 0;  // print this many inputs the forced prompt gets wrong
};

inline void add_oracle_options(CLI::App& cmd, OracleCommand& o) {
  cmd.add_option("--run", o.run, "the run folder (from editlab train)")->required();
  cmd.add_option("--split", o.split, "train, validation or test")->check(CLI::IsMember({"train", "validation", "test"}))->capture_default_str();
  cmd.add_option("--k", o.k, "edits per batch")->check(CLI::PositiveNumber)->capture_default_str();
  cmd.add_option("--draws", o.draws, "edit batches")->check(CLI::PositiveNumber)->capture_default_str();
  cmd.add_option("--seed", o.seed, "seed of the batch draws")->capture_default_str();
  cmd.add_option("--show", o.show, "print this many in-scope inputs the forced prompt answers wrongly")->check(CLI::NonNegativeNumber)->capture_default_str();
}

// The prompt route alone: K edits applied, each in-scope input answered with its own edit's
// prompt and the gate open (Seprog::predict_with_edit), beside the editor's own answers and
// the untouched base model's (ES0). Edit-needed ES as in the harness.
inline int run_oracle(const OracleCommand& o) {
  auto run = load_run(o.run);
  const auto split = world::parse_split(o.split);
  const auto& pool = run->bench.split(split);
  tensortape::check(o.k <= static_cast<int>(pool.size()), "editlab oracle", "--k ", o.k, " is more than the ", pool.size(),
                    " cases of the split");
  const auto untouched = run->untouched_base();
  auto& editor = run->seprog("editlab oracle");
  double needed = 0, oracle_needed = 0, own_needed = 0, total = 0, oracle_all = 0, base_all = 0;
  std::vector<std::string> misses;  // input, target and the forced answer, for --show
  for (int d = 0; d < o.draws; ++d) {
    const auto batch = eval::draw_cases(pool, o.k, o.seed, d);
    std::vector<std::string> inputs;
    std::vector<std::size_t> edit_of;
    std::vector<std::string> targets;
    for (std::size_t b = 0; b < batch.size(); ++b)
      for (const auto& e : batch[b].in_scope) {
        inputs.push_back(e.input);
        edit_of.push_back(b);
        targets.push_back(e.target);
      }
    const auto base = untouched(inputs);
    editor.reset();
    editor.apply(eval::descriptors_of(batch));
    const auto forced = editor.predict_with_edit(inputs, edit_of);
    const auto own = editor.predict(inputs);
    editor.reset();
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      total += 1;
      oracle_all += forced[i] == targets[i];
      base_all += base[i] == targets[i];
      if (base[i] == targets[i]) continue;
      needed += 1;
      oracle_needed += forced[i] == targets[i];
      own_needed += own[i] == targets[i];
      if (forced[i] != targets[i] && static_cast<int>(misses.size()) < o.show)
        misses.push_back(inputs[i] + "  ->  " + targets[i] + "   forced: " + forced[i]);
    }
    std::fprintf(stderr, "\roracle %s/%s K=%d: draw %d/%d", run->bench.name.c_str(), o.split.c_str(), o.k, d + 1, o.draws);
  }
  std::fprintf(stderr, "\n");
  std::printf("%s on %s/%s, K = %d, %d draws, %.0f in-scope examples (%.0f need the edit):\n"
              "  oracle ES %.3f (all %.3f)   the editor's own ES %.3f   ES0 %.3f\n",
              editor.name().c_str(), run->bench.name.c_str(), o.split.c_str(), o.k, o.draws, total, needed,
              oracle_needed / needed, oracle_all / total, own_needed / needed, base_all / total);
  for (const auto& miss : misses) std::printf("  miss: %s\n", miss.c_str());
  return 0;
}

struct CostCommand {
  fs::path run;
  int k = 64;
  int repeats = 5;
  fs::path json;   // optional: rows are appended
  fs::path table;  // instead of measuring: the table of the rows in this file
};

inline void add_cost_options(CLI::App& cmd, CostCommand& c) {
  auto* run = cmd.add_option("--run", c.run, "the run folder (from editlab train)");
  auto* table = cmd.add_option("--table", c.table, "measure nothing: print the table of the rows a .jsonl file holds (from --json), one for all of them");
  run->excludes(table);
  table->excludes(run)->check(CLI::ExistingFile);
  cmd.add_option("--k", c.k, "edits in the edit set")->check(CLI::PositiveNumber)->capture_default_str();
  cmd.add_option("--repeats", c.repeats, "timed runs of each phase (after one warm-up)")->check(CLI::PositiveNumber)->capture_default_str();
  cmd.add_option("--json", c.json, "a .jsonl file the rows are appended to");
}

inline int run_cost(const CostCommand& c) {
  if (!c.table.empty()) {
    std::printf("%s", eval::cost_markdown(eval::read_json_lines(c.table, "cost rows file", eval::CostRow::from_json)).c_str());
    return 0;
  }
  tensortape::check(!c.run.empty(), "editlab cost", "give --run (a run folder to measure) or --table (rows to print)");
  auto run = load_run(c.run);  // a copy in memory: the timed training steps never reach the run folder
  const auto rows = eval::measure_cost(*run->editor, run->bench, c.k, c.repeats, editors::method(run->method).trains);
  std::printf("%s", eval::cost_markdown(rows).c_str());
  if (!c.json.empty()) eval::append_json_lines(c.json, rows, [](const eval::CostRow& r) { return r.to_json(); });
  return 0;
}

struct EditCommand {
  fs::path run;
  std::vector<std::string> add;
  std::vector<std::string> ask;
  fs::path memory;  // optional: load the memory from this file first; save it back after adding
};

inline void add_edit_options(CLI::App& cmd, EditCommand& e) {
  cmd.add_option("--run", e.run, "the run folder (from editlab train)")->required();
  cmd.add_option("--add", e.add, "an edit, \"input => new answer\" (repeatable)");
  cmd.add_option("--ask", e.ask, "an input to answer before and after the edits (repeatable)")->required();
  cmd.add_option("--memory", e.memory, "an edit-memory file to load first and save after adding");
}

inline world::Example parse_edit(const std::string& text) {
  const auto arrow = text.find("=>");
  tensortape::check(arrow != std::string::npos, "editlab edit", "--add \"", text, "\": expected \"input => new answer\"");
  auto trim = [](std::string s) {
    const auto b = s.find_first_not_of(' '), e = s.find_last_not_of(' ');
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  };
  world::Example edit{trim(text.substr(0, arrow)), trim(text.substr(arrow + 2))};
  tensortape::check(!edit.input.empty() && !edit.target.empty(), "editlab edit", "--add \"", text,
                    "\": both the input and the answer must be non-empty");
  return edit;
}

// SERAC's memory: each asked input's best edit, its score and where it went.
inline void print_serac_edits(editors::Serac& editor, const EditCommand& e, const std::vector<std::string>& before,
                              const std::vector<std::string>& after) {
  const auto routes = editor.route(e.ask);
  std::printf("memory: %zu edits\n", editor.memory().size());
  for (std::size_t i = 0; i < e.ask.size(); ++i) {
    std::printf("%s\n    base: %s\n    edited: %s   (%s)\n", e.ask[i].c_str(), before[i].c_str(), after[i].c_str(),
                routes[i].counterfactual ? "the counterfactual model answered" : "the base model answered");
    if (editor.memory().size() == 0) continue;
    std::printf("    best edit: %s   (score %.2f, threshold %.2f)\n",
                editors::descriptor_text(editor.memory().descriptors()[routes[i].edit]).c_str(), routes[i].score,
                editor.options().threshold);
  }
}

// The same memory handling for both editors that keep one (SEPROG and SERAC).
template <class E>
std::vector<std::string> edit_memory(E& editor, const EditCommand& e, std::int64_t memory_width) {
  const auto before = editor.predict(e.ask);
  if (!e.memory.empty() && fs::exists(e.memory)) editor.memory().load(e.memory, memory_width);
  std::vector<world::Example> edits;
  for (const auto& text : e.add) edits.push_back(parse_edit(text));
  editor.apply(edits);
  if (!e.memory.empty() && editor.memory().size() > 0) editor.memory().save(e.memory);
  return before;
}

inline int run_edit(const EditCommand& e) {
  auto run = load_run(e.run);
  if (auto* serac = dynamic_cast<editors::Serac*>(run->editor.get())) {
    const auto before = edit_memory(*serac, e, serac->options().embedding_dim);
    print_serac_edits(*serac, e, before, serac->predict(e.ask));
    return 0;
  }
  tensortape::check(dynamic_cast<editors::Seprog*>(run->editor.get()) != nullptr, "editlab edit",
                    "works on the runs of editors with an edit memory (SEPROG and its ablations, SERAC); this run is ", run->method);
  auto& editor = run->seprog("editlab edit");
  const auto before = edit_memory(editor, e, editor.options().memory_width());
  const auto after = editor.predict(e.ask);
  const auto scope = editor.scope_probabilities(e.ask);
  const auto weights = editor.selection_weights(e.ask);  // (asked, K)
  const auto k = editor.memory().size();
  std::printf("memory: %zu edits\n", k);
  for (std::size_t i = 0; i < e.ask.size(); ++i) {
    std::printf("%s\n    base: %s\n    edited: %s   (e(x) = %.2f)\n", e.ask[i].c_str(), before[i].c_str(), after[i].c_str(), scope[i]);
    if (k == 0) continue;
    const auto row = weights.begin() + static_cast<std::ptrdiff_t>(i * k);
    const auto best = static_cast<std::size_t>(std::max_element(row, row + static_cast<std::ptrdiff_t>(k)) - row);
    std::printf("    selects: %s   (attention %.2f)\n", editors::descriptor_text(editor.memory().descriptors()[best]).c_str(), row[best]);
  }
  return 0;
}

}  // namespace editlab::cli
