// editlab's common currency: edit cases and benchmarks, whichever source made them (the
// generated knowledge world in world/, real LeapOfThought and zsRE data in data/). Editors,
// the harness and the command line take these and nothing source-specific.
//
//   for (const Case& c : bench.split(Split::test)) use(c.edit, c.in_scope, c.out_scope);
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "tensortape/core/error.hpp"

namespace editlab {

// One text-to-text example.
struct Example {
  std::string input;
  std::string target;
  std::string subject = {};  // who or what it is about, where a benchmark needs to know (out-scope)
  // The piece of knowledge it asks about ("Talimo|born_in", "futhouro|has fur"), where a
  // benchmark knows it: an edit that changes that fact makes the example no longer out-scope.
  std::string fact = {};
};

enum class Split { train, validation, test };
inline constexpr std::array<Split, 3> kSplits = {Split::train, Split::validation, Split::test};

inline const char* split_name(Split s) {
  return s == Split::train ? "train" : s == Split::validation ? "validation" : "test";
}
inline Split parse_split(std::string_view name) {
  for (Split s : kSplits)
    if (name == split_name(s)) return s;
  tensortape::fail("editlab", "unknown split '", std::string(name), "' (train, validation, test)");
}

// One edit descriptor with its evaluation examples.
struct Case {
  std::string subject;                  // what the edit is about; edits in one batch should differ
  Example edit;                         // input -> the new label
  std::string old_target;               // the label before the edit (the world's truth)
  std::vector<Example> in_scope;        // inputs the edit should change, with the new label
  std::vector<Example> out_scope;       // inputs it must not change, with their (gold) label
  std::vector<Example> seen_out_scope;  // validation / test: out-scope the editor trained on (header)
  std::vector<Example> hard_out_scope;  // same subject, a fact the edit does not touch
  std::vector<std::string> changes;     // the facts (Example::fact) the edit changes
};

struct Benchmark {
  std::string name;
  std::vector<std::string> labels;  // {"true", "false"} for claim tasks; empty for generation
  std::array<std::vector<Case>, 3> splits;
  const std::vector<Case>& split(Split s) const { return splits[static_cast<int>(s)]; }
  std::vector<Case>& split(Split s) { return splits[static_cast<int>(s)]; }
};

}  // namespace editlab
