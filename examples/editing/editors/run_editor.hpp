// editlab::editors::RunEditor — an editor the command line trains, saves into a run folder and
// loads back: the harness's eval::Editor plus its training and persistence. Every editor in
// editors/ implements it; editors/registry.hpp makes them by --method name.
//
//   auto editor = registry::make("mend", base, bench, options);   // options: JSON
//   editor->train(bench, control);                                // no-op for FT
//   editor->save("runs/mend-qa");                                 // <dir>/<method file>.json + weights
#pragma once

#include <cstdint>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "eval/editor.hpp"
#include "train/loop.hpp"
#include "common/cases.hpp"

namespace editlab::editors {

class RunEditor : public eval::Editor {
 public:
  // Trains on the benchmark's train split, early-stopping on its validation split. An editor
  // with no training phase (FT) returns an empty report.
  virtual train::TrainReport train(const Benchmark& bench, const train::TrainControl& control) = 0;
  // Writes the editor's own files (its options and trained weights) into the run folder.
  virtual void save(const std::filesystem::path& dir) = 0;
  // Reads the weights save() wrote into this editor (made with the saved options).
  virtual void load_weights(const std::filesystem::path& dir) = 0;
  virtual nlohmann::json options_json() const = 0;
  virtual std::uint64_t seed() const = 0;
};

}  // namespace editlab::editors
