// Shared by the libFuzzer targets: the input written to a scratch file for readers that take a
// path, and the rule every target checks — a reader either returns or throws
// tensortape::Error; anything else (another exception, a crash, a sanitizer report, a hang)
// is a finding.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "tensortape/core/error.hpp"

namespace fuzz {

// A scratch folder of this process's own (libFuzzer may run several processes at once).
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("tensortape_fuzz_" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

inline std::filesystem::path write_scratch(const std::string& name, std::string_view bytes) {
  const auto path = scratch_dir() / name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Runs `read`; a tensortape::Error is the expected way to reject an input.
template <class Read>
void expect_return_or_error(Read&& read) {
  try {
    read();
  } catch (const tensortape::Error&) {
  }
}

}  // namespace fuzz
