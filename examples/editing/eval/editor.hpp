// editlab::eval::Editor — the one interface every editor (SEPROG, FT, ENN, MEND, SLAG, SERAC)
// implements, and that the evaluation harness drives:
//
//   editor.apply(batch);                         // edit the model with K edit descriptors
//   auto answers = editor.predict(inputs);       // greedy answers, or "true"/"false" for claim tasks
//   editor.reset();                              // back to the unedited model
//
// Training is method-specific (each editor has its own options) and happens before evaluation.
#pragma once

#include <string>
#include <vector>

#include "world/benchmarks.hpp"

namespace editlab::eval {

using world::Benchmark;
using world::Case;
using world::Example;

class Editor {
 public:
  virtual ~Editor() = default;
  virtual std::string name() const = 0;
  // Edits the model with every case's descriptor (case.edit: input -> new label).
  virtual void apply(const std::vector<Case>& batch) = 0;
  // Predictions for the inputs under the current edits: the decoded answer, or for a benchmark
  // with labels, the most likely label.
  virtual std::vector<std::string> predict(const std::vector<std::string>& inputs) = 0;
  // Undoes every edit.
  virtual void reset() = 0;
};

}  // namespace editlab::eval
