#include "sculpt/io/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "sculpt/core/error.h"

namespace fs = std::filesystem;

namespace sculpt::io {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SCULPT_CHECK(in.good(), "{}: cannot open ({})", path, std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  SCULPT_CHECK(fd >= 0, "{}: cannot create ({})", tmp, std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      fail("{}: write failed ({})", tmp, std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  SCULPT_CHECK(::rename(tmp.c_str(), path.c_str()) == 0, "{}: rename failed ({})", path,
               std::strerror(errno));
  fsync_dir(fs::path(path).parent_path().string());
}

}  // namespace sculpt::io
