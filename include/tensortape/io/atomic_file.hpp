// Atomic file replacement: write everything to a new temporary file
// `<target>.tmp.<pid>.<random>` in the same directory (created with O_EXCL | O_NOFOLLOW, so a
// planted file or symlink is never written through, and concurrent saves never share one),
// fsync it, then rename() it over the target. Readers see either the old file or a complete new
// one, never a partial write; of concurrent saves to one path, the last rename wins whole. On any
// failure (including an exception thrown by the fill callback) the temporary file is removed,
// the target is left untouched, and an Error naming the file is thrown. Temporary files that a
// killed writer left behind (their process is gone) are removed by the next save of the target.
//
//   tt::io::write_file_atomically("model.safetensors", [&](tt::io::AtomicFileWriter& out) {
//     out.write(header.data(), header.size());
//   });
//
// POSIX only (open/write/fsync/rename).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "tensortape/core/error.hpp"

namespace tensortape::io {

// The sink handed to the fill callback: a plain file descriptor with a checked write loop.
class AtomicFileWriter {
 public:
  AtomicFileWriter(int fd, std::string temp_name) : fd_(fd), temp_name_(std::move(temp_name)) {}

  void write(const void* data, std::size_t size) {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
      const ::ssize_t n = ::write(fd_, p, size);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw Error("cannot write '" + temp_name_ + "': " + std::strerror(errno));
      }
      p += n;
      size -= static_cast<std::size_t>(n);
      written_ += static_cast<std::size_t>(n);
    }
  }
  void write(std::string_view text) { write(text.data(), text.size()); }
  std::size_t bytes_written() const { return written_; }

 private:
  int fd_;
  std::string temp_name_;
  std::size_t written_ = 0;
};

// "<dir>/<name>.tmp.<pid>." next to the target (the final rename stays on one file system); the
// temporary file's name goes on with random hex digits.
inline std::string atomic_temp_prefix(const std::filesystem::path& target) {
  return target.string() + ".tmp." + std::to_string(static_cast<long long>(::getpid())) + ".";
}

namespace detail {

// 16 hex digits no other process or thread can predict or repeat.
inline std::string random_suffix() {
  static std::atomic<std::uint64_t> counter{0};
  std::random_device device;
  const std::uint64_t bits = (static_cast<std::uint64_t>(device()) << 32 | device()) ^ (counter.fetch_add(1) * 0x9e3779b97f4a7c15ULL);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(bits));
  return hex;
}

// Removes "<target>.tmp.<pid>.*" files whose writer process no longer exists (SIGKILL, power
// loss); a live writer's file is left alone. Best effort: errors are ignored.
inline void remove_stale_temporaries(const std::filesystem::path& target) {
  std::error_code ec;
  const std::filesystem::path dir = target.parent_path().empty() ? std::filesystem::path(".") : target.parent_path();
  const std::string prefix = target.filename().string() + ".tmp.";
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string rest = name.substr(prefix.size());  // "<pid>.<random>"
    const auto dot = rest.find('.');
    if (dot == std::string::npos || dot == 0 || rest.find_first_not_of("0123456789") != dot) continue;
    const long long pid = std::strtoll(rest.substr(0, dot).c_str(), nullptr, 10);
    if (pid <= 0 || (::kill(static_cast<::pid_t>(pid), 0) != 0 && errno == ESRCH)) std::filesystem::remove(entry.path(), ec);
  }
}

}  // namespace detail

// Writes `target` atomically through `fill`. `what` prefixes error messages (e.g. "save").
inline void write_file_atomically(const std::filesystem::path& target,
                                  const std::function<void(AtomicFileWriter&)>& fill,
                                  const std::string& what = "write_file_atomically") {
  const std::string target_name = target.string();
  std::string temp_name;
  auto fail_errno = [&](const std::string& action, const std::string& name) -> Error {
    return Error(what + ": '" + target_name + "': cannot " + action + " '" + name + "': " + std::strerror(errno));
  };

  // Keep the permissions of a file being replaced; new files get 0644 (minus the umask).
  ::mode_t mode = 0644;
  struct ::stat existing {};
  if (::stat(target_name.c_str(), &existing) == 0 && S_ISREG(existing.st_mode)) mode = existing.st_mode & 07777;

  detail::remove_stale_temporaries(target);
  int fd = -1;
  for (int attempt = 0; fd < 0 && attempt < 8; ++attempt) {  // EEXIST: a name taken by chance, draw another
    temp_name = atomic_temp_prefix(target) + detail::random_suffix();
    fd = ::open(temp_name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) throw fail_errno("create temporary file", temp_name);

  bool committed = false;
  struct Cleanup {
    int& fd;
    const std::string& temp_name;
    bool& committed;
    ~Cleanup() {
      if (fd >= 0) ::close(fd);
      if (!committed) ::unlink(temp_name.c_str());
    }
  } cleanup{fd, temp_name, committed};

  try {
    AtomicFileWriter writer(fd, temp_name);
    fill(writer);
  } catch (const Error& e) {
    throw Error(what + ": '" + target_name + "': " + e.what());
  }
  if (::fsync(fd) != 0) throw fail_errno("fsync", temp_name);
  const int to_close = fd;
  fd = -1;
  if (::close(to_close) != 0) throw fail_errno("close", temp_name);
  if (::rename(temp_name.c_str(), target_name.c_str()) != 0) throw fail_errno("rename temporary file", temp_name);
  committed = true;

  // Make the rename itself durable (best effort: some file systems refuse fsync on directories).
  std::filesystem::path dir = target.parent_path();
  if (dir.empty()) dir = ".";
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

}  // namespace tensortape::io
