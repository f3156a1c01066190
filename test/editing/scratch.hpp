// Scratch paths for the editlab tests. ctest runs each test of a binary as a process of its
// own, side by side under -j, so a fixed name under the temp folder would be shared between
// running tests (one test's remove_all pulled a fixture from under another). The process id
// keeps them apart.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

inline std::filesystem::path scratch_path(const std::string& name) {
  return std::filesystem::temp_directory_path() / (name + "_" + std::to_string(::getpid()));
}
