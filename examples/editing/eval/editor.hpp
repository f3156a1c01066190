// editlab::eval::Editor — the one interface every editor (SEPROG, FT, ENN, MEND, SLAG, SERAC)
// implements, and that the evaluation harness drives:
//
//   editor.apply(batch);                         // edit the model with K edit descriptors
//   auto answers = editor.predict(inputs);       // greedy answers, or "true"/"false" for claim tasks
//   editor.reset();                              // back to the unedited model
//   editor.reference_predict(inputs);            // after reset(): the original base model's answers (DD)
//   editor.train_step(batch);                    // one training step on this edit set (cost table)
//
// Training is method-specific (each editor has its own options) and happens before evaluation.
#pragma once

#include <string>
#include <vector>

#include "tensortape/core/error.hpp"
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
  // The unedited base model's predictions, against which DD and the accuracy drop are
  // measured; called on a reset editor. By default the editor's own predictions; an editor
  // whose training changes the base model (sp-finetune) answers with the original one instead.
  virtual std::vector<std::string> reference_predict(const std::vector<std::string>& inputs) { return predict(inputs); }
  // One step of the editor's own training on this edit set; returns its loss. Editors that are
  // not trained (FT edits by fine-tuning at apply time) keep this default.
  virtual double train_step(const std::vector<Case>& /*edits*/) {
    throw tensortape::Error("editor '" + name() + "' has no training step");
  }
};

}  // namespace editlab::eval
