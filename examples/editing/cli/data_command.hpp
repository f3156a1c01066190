// `editlab data`: prints a benchmark's size and a few of its edit cases, for a person to read.
//
//   editlab data --benchmark qa --split test --show 5
//   editlab data --benchmark textgen --model models/base      # textgen samples from the base model
#pragma once

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>

#include <CLI/CLI.hpp>

#include "data/tracks.hpp"
#include "model/seq2seq.hpp"
#include "world/benchmarks.hpp"

namespace editlab::cli {

struct DataOptions {
  std::string benchmark = "qa";
  std::string split = "test";
  int show = 5;
  world::WorldOptions world;  // its seed, people and variant
  std::filesystem::path model = "models/base";
  std::filesystem::path data_dir = "../shared/data";
  bool es0 = false;  // also measure the unedited base model on the split's in-scope examples
};

// The world's five benchmarks, then the real-data tracks.
inline std::vector<std::string> all_benchmark_names() {
  auto names = world::benchmark_names();
  for (const auto& t : data::track_names()) names.push_back(t);
  return names;
}

// The generated world's options, the same in every command that makes one.
inline void add_world_options(CLI::App& cmd, world::WorldOptions& w) {
  cmd.add_option("--world-seed", w.seed, "seed of the generated world")->capture_default_str();
  cmd.add_option("--people", w.people, "number of people in the world")->check(CLI::Range(2, 100000))->capture_default_str();
  cmd.add_flag("--stress-world", w.stress,
               "the world's stress variant: names of two to four parts shared across entities, and out-scope "
               "examples about subjects that share a name part or an answer with the edit");
}

inline void add_data_options(CLI::App& cmd, DataOptions& o) {
  cmd.add_option("--benchmark", o.benchmark, "qa, factcheck, textgen, entail, relations, or a real-data track: lot, zsre1k")
      ->check(CLI::IsMember(all_benchmark_names()))
      ->capture_default_str();
  cmd.add_option("--split", o.split, "train, validation or test")
      ->check(CLI::IsMember({"train", "validation", "test"}))
      ->capture_default_str();
  cmd.add_option("--show", o.show, "how many edit cases to print")->check(CLI::NonNegativeNumber)->capture_default_str();
  add_world_options(cmd, o.world);
  cmd.add_option("--model", o.model, "base model folder (textgen samples its new continuations from it)")
      ->capture_default_str();
  cmd.add_option("--data-dir", o.data_dir, "the shared data folder (for the lot and zsre1k tracks)")->capture_default_str();
  cmd.add_flag("--es0", o.es0, "also report ES0: how many in-scope examples the unedited --model already answers with the new label");
}

// textgen's new continuations: 10 tokens sampled from the base model at temperature 1, never
// starting as the passage's own continuation does.
inline world::ContinuationSampler textgen_sampler(model::Seq2Seq& base) {
  return [&base](const std::string& prompt, const std::string& original, tensortape::Rng& rng) {
    return base.sample(prompt, /*max_tokens=*/10, /*temperature=*/1.0, rng, /*avoid=*/original);
  };
}

// Fits base's answers to the benchmark's new labels (Seq2Seq::fit_answers), on a generation
// benchmark: a label longer than the answers could never be given.
inline void fit_answers(model::Seq2Seq& base, const world::Benchmark& bench) {
  if (!bench.labels.empty()) return;
  std::vector<std::string> new_labels;
  for (world::Split s : world::kSplits)
    for (const auto& c : bench.split(s)) {
      new_labels.push_back(c.edit.target);
      for (const auto& e : c.in_scope) new_labels.push_back(e.target);
    }
  base.fit_answers(new_labels);
}

// The world's benchmark; textgen loads the base model to sample continuations.
inline world::Benchmark load_benchmark(const world::World& w, const std::string& name,
                                       const std::filesystem::path& model_dir) {
  if (name != "textgen") return world::make_benchmark(w, name);
  auto base = model::Seq2Seq::load(model_dir);
  return world::make_benchmark(w, name, textgen_sampler(base));
}

inline void print_examples(const char* label, const std::vector<world::Example>& examples) {
  for (const auto& e : examples) std::printf("    %-10s %s  =>  %s\n", label, e.input.c_str(), e.target.c_str());
}

inline int run_data(const DataOptions& o) {
  const auto w = world::generate(o.world);
  const bool is_track = std::find(data::track_names().begin(), data::track_names().end(), o.benchmark) != data::track_names().end();
  const auto bench = is_track ? data::load_track(o.benchmark, o.data_dir).benchmark : load_benchmark(w, o.benchmark, o.model);
  const auto& cases = bench.split(world::parse_split(o.split));
  std::size_t in_scope = 0, out_scope = 0, seen = 0, hard = 0;
  for (const auto& c : cases) {
    in_scope += c.in_scope.size();
    out_scope += c.out_scope.size();
    seen += c.seen_out_scope.size();
    hard += c.hard_out_scope.size();
  }
  std::printf("%s / %s: %zu edits, %zu in-scope, %zu out-scope", bench.name.c_str(), o.split.c_str(), cases.size(),
              in_scope, out_scope);
  if (seen) std::printf(", %zu seen out-scope", seen);
  if (hard) std::printf(", %zu hard out-scope", hard);
  const std::string source = is_track ? data::track_file(o.benchmark, o.data_dir).string()
                                      : "world seed " + std::to_string(o.world.seed) + (o.world.stress ? ", stress variant" : "");
  std::printf("  (%s; splits train/validation/test: %zu/%zu/%zu)\n\n", source.c_str(),
              bench.split(world::Split::train).size(),
              bench.split(world::Split::validation).size(), bench.split(world::Split::test).size());
  if (o.es0) {
    auto base = model::Seq2Seq::load(o.model);
    fit_answers(base, bench);
    std::vector<world::Example> in;
    std::vector<std::string> old_labels;  // the label before the edit, per in-scope example
    for (const auto& c : cases)
      for (const auto& e : c.in_scope) {
        in.push_back(e);
        old_labels.push_back(c.old_target);
      }
    std::vector<std::string> inputs;
    for (const auto& e : in) inputs.push_back(e.input);
    const auto answers = base.predict(inputs, bench.labels);
    std::size_t hits = 0, old = 0;
    for (std::size_t i = 0; i < in.size(); ++i) {
      hits += answers[i] == in[i].target;
      old += answers[i] == old_labels[i];
    }
    const double n = static_cast<double>(std::max<std::size_t>(in.size(), 1));
    std::printf("the unedited base model %s on the %zu in-scope inputs: ES0 %.3f (%zu already give the new label; %zu need"
                " the edit)", o.model.string().c_str(), in.size(), hits / n, hits, in.size() - hits);
    // A claim's label before the edit is the other label; an answer's is the case's old one.
    if (bench.labels.empty()) std::printf("; the answer before the edit on %.3f", old / n);
    std::printf("\n\n");
  }
  for (int i = 0; i < o.show && i < static_cast<int>(cases.size()); ++i) {
    const auto& c = cases[static_cast<std::size_t>(i)];
    std::printf("[%d] edit       %s  =>  %s   (was: %s)\n", i + 1, c.edit.input.c_str(), c.edit.target.c_str(),
                c.old_target.c_str());
    print_examples("in-scope", c.in_scope);
    print_examples("out-scope", c.out_scope);
    print_examples("seen-out", c.seen_out_scope);
    print_examples("hard-out", c.hard_out_scope);
    std::printf("\n");
  }
  return 0;
}

}  // namespace editlab::cli
