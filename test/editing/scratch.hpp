// Scratch paths for the editlab tests. ctest runs each test of a binary as a process of its
// own, side by side under -j, so a fixed name under the temp folder would be shared between
// running tests (one test's remove_all pulled a fixture from under another). The process id
// keeps them apart, and every path handed out is removed when the process exits. Also a file's
// bytes, for tests that compare two files exactly.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

namespace scratch_detail {
struct Paths {
  std::vector<std::filesystem::path> handed_out;
  ~Paths() {
    std::error_code ignored;  // best effort: a leftover folder must not fail the run
    for (const auto& p : handed_out) std::filesystem::remove_all(p, ignored);
  }
};
inline Paths& paths() {
  static Paths p;
  return p;
}
}  // namespace scratch_detail

inline std::filesystem::path scratch_path(const std::string& name) {
  auto path = std::filesystem::temp_directory_path() / (name + "_" + std::to_string(::getpid()));
  scratch_detail::paths().handed_out.push_back(path);
  return path;
}

inline std::string file_bytes(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}
