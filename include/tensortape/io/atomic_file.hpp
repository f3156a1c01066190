// Atomic file replacement: write everything to `<target>.tmp.<pid>` in the same directory,
// fsync it, then rename() it over the target. Readers see either the old file or the complete
// new one, never a partial write. On any failure (including an exception thrown by the fill
// callback) the temporary file is removed, the target is left untouched, and an Error naming
// the file is thrown.
//
//   tt::io::write_file_atomically("model.safetensors", [&](tt::io::AtomicFileWriter& out) {
//     out.write(header.data(), header.size());
//   });
//
// POSIX only (open/write/fsync/rename).
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
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

// "<dir>/<name>.tmp.<pid>" next to the target, so the final rename stays on one file system.
inline std::filesystem::path atomic_temp_path(const std::filesystem::path& target) {
  std::filesystem::path temp = target;
  temp += ".tmp." + std::to_string(static_cast<long long>(::getpid()));
  return temp;
}

// Writes `target` atomically through `fill`. `what` prefixes error messages (e.g. "save").
inline void write_file_atomically(const std::filesystem::path& target,
                                  const std::function<void(AtomicFileWriter&)>& fill,
                                  const std::string& what = "write_file_atomically") {
  const std::string target_name = target.string();
  const std::filesystem::path temp = atomic_temp_path(target);
  const std::string temp_name = temp.string();
  auto fail_errno = [&](const std::string& action, const std::string& name) -> Error {
    return Error(what + ": '" + target_name + "': cannot " + action + " '" + name + "': " + std::strerror(errno));
  };

  // Keep the permissions of a file being replaced; new files get 0644 (minus the umask).
  ::mode_t mode = 0644;
  struct ::stat existing {};
  if (::stat(target_name.c_str(), &existing) == 0 && S_ISREG(existing.st_mode)) mode = existing.st_mode & 07777;

  int fd = ::open(temp_name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
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
