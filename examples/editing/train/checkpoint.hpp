// editlab::train — crash-safe training checkpoints, shared by `editlab pretrain` and
// `editlab train`.
//
//   train::save_checkpoint(out, [&](const fs::path& dir) {       // writes <out>/checkpoint/
//     tt::io::save(dir / "optimizer.safetensors", state);
//     train::write_text(dir / "state.json", json.dump(2));        // state.json is written last
//   });
//   fs::path found = train::find_checkpoint(out);                 // empty when there is none
//
// The contents go to <out>/checkpoint.tmp first, which is then renamed into place: a crash
// leaves the previous checkpoint (as checkpoint or checkpoint.old) or the new one, never half.
#pragma once

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "tensortape/core/error.hpp"
#include "tensortape/io/atomic_file.hpp"

namespace editlab::train {

namespace fs = std::filesystem;
namespace tt = tensortape;

inline void write_text(const fs::path& file, const std::string& text) {
  tt::io::write_file_atomically(file, [&](tt::io::AtomicFileWriter& w) { w.write(text.data(), text.size()); }, "editlab");
}

inline nlohmann::json read_json(const fs::path& file) {
  std::ifstream in(file);
  tt::check(static_cast<bool>(in), "editlab", "cannot open '", file.string(), "'");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    tt::fail("editlab", "'", file.string(), "' is not valid JSON: ", e.what());
  }
}

// Calls write_contents(dir) on a fresh temporary folder, then swaps it in as <out>/checkpoint.
// write_contents must write a state.json: find_checkpoint() looks for it.
inline void save_checkpoint(const fs::path& out, const std::function<void(const fs::path&)>& write_contents) {
  const fs::path final_dir = out / "checkpoint", temp_dir = out / "checkpoint.tmp", old_dir = out / "checkpoint.old";
  fs::remove_all(temp_dir);
  fs::create_directories(temp_dir);
  write_contents(temp_dir);
  tt::check(fs::exists(temp_dir / "state.json"), "editlab", "a checkpoint must hold a state.json");
  fs::remove_all(old_dir);
  if (fs::exists(final_dir)) fs::rename(final_dir, old_dir);
  fs::rename(temp_dir, final_dir);
  fs::remove_all(old_dir);
}

// The newest complete checkpoint folder under out, or empty.
inline fs::path find_checkpoint(const fs::path& out) {
  for (const char* name : {"checkpoint", "checkpoint.old"})
    if (fs::exists(out / name / "state.json")) return out / name;
  return {};
}

}  // namespace editlab::train
