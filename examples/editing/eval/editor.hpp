// editlab::eval::Editor — the one interface every editor (SEPROG, FT, ENN, MEND, SLAG, SERAC)
// implements, and that the evaluation harness drives:
//
//   editor.apply(descriptors);                   // edit the model with K descriptors (input -> new label)
//   auto answers = editor.predict(inputs);       // greedy answers, or "true"/"false" for claim tasks
//   editor.reset();                              // back to the unedited model
//   editor.train_step(cases);                    // one training step on training-split cases (cost table)
//
// apply() gets what a real user gives: the descriptors, nothing else. The in-scope and out-scope
// examples of a test case, and their labels, never reach an editor. The harness compares against
// the untouched base model itself (a BasePredictor of its own), not against anything an editor
// reports, so an editor that changed its base while training (sp-finetune) is measured against
// the original. Training is method-specific (each editor has its own options) and happens
// before evaluation, on the train split.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "tensortape/core/error.hpp"
#include "common/cases.hpp"

namespace editlab::eval {

// The untouched base model's predictions (the same decoding or label scoring an editor uses).
using BasePredictor = std::function<std::vector<std::string>(const std::vector<std::string>& inputs)>;

class Editor {
 public:
  virtual ~Editor() = default;
  virtual std::string name() const = 0;
  // Edits the model with these descriptors (input -> new label), on top of any earlier ones.
  virtual void apply(const std::vector<Example>& descriptors) = 0;
  // Predictions for the inputs under the current edits: the decoded answer, or for a benchmark
  // with labels, the most likely label.
  virtual std::vector<std::string> predict(const std::vector<std::string>& inputs) = 0;
  // Undoes every edit.
  virtual void reset() = 0;
  // One step of the editor's own training on these training-split cases; returns its loss.
  // Editors that are not trained (FT edits by fine-tuning at apply time) keep this default.
  virtual double train_step(const std::vector<Case>& /*training_cases*/) {
    throw tensortape::Error("editor '" + name() + "' has no training step");
  }
};

}  // namespace editlab::eval
