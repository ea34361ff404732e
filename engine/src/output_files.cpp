#include "engine/src/output_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "vitint/error.h"

namespace vitint {

void throw_exists(const std::string& path, const std::string& what) {
  throw Error(what + " " + path + " already exists; pass --force to overwrite it");
}

std::string directory_of(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

OutputFiles::~OutputFiles() {
  for (const File& f : files_)
    if (!f.temp.empty()) ::unlink(f.temp.c_str());
}

std::string OutputFiles::add(const std::string& path, const std::string& what, const void* data, size_t size) {
  return add(path, what, [&](const Sink& sink) { sink(data, size); });
}

std::string OutputFiles::add(const std::string& path, const std::string& what,
                             const std::function<void(const Sink&)>& fill) {
  if (path.empty()) throw Error(what + " path is empty");
  if (path.back() == '/') throw Error(what + " path " + path + " names a directory, not a file");
  const std::string fail = "cannot write " + what + " " + path + ": ";
  // In the same directory, so that commit()'s rename is atomic.
  std::string temp = directory_of(path) + "/." + std::filesystem::path(path).filename().string() + ".tmp-XXXXXX";
  const int fd = ::mkstemp(temp.data());
  if (fd < 0)
    throw Error(fail + "cannot create a temporary file in " + directory_of(path) + ": " + std::strerror(errno));
  files_.push_back({path, what, temp});
  ::fchmod(fd, 0644);  // mkstemp creates 0600; outputs are meant to be shared
  int err = 0;
  fill([&](const void* bytes, size_t n) {
    for (size_t done = 0; done < n && err == 0;) {
      const ssize_t w = ::write(fd, static_cast<const char*>(bytes) + done, std::min(n - done, size_t{1} << 30));
      if (w > 0) done += static_cast<size_t>(w);
      else if (w == 0 || errno != EINTR) err = w == 0 ? EIO : errno;
    }
  });
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) throw Error(fail + std::strerror(err));
  return temp;
}

void OutputFiles::commit(bool overwrite) {
  for (File& f : files_) {
    struct stat st {};
    f.replaced = ::stat(f.path.c_str(), &st) == 0;
    int err = 0;
    // Without overwrite, link() refuses a file that appeared since the check,
    // where rename() would replace it; filesystems without hard links rename.
    if (!overwrite && f.replaced) {
      err = EEXIST;
    } else if (!overwrite && ::link(f.temp.c_str(), f.path.c_str()) == 0) {
      ::unlink(f.temp.c_str());
    } else if (!overwrite && errno == EEXIST) {
      err = EEXIST;
    } else if (::rename(f.temp.c_str(), f.path.c_str()) != 0) {
      err = errno;
    }
    if (err != 0) {
      for (const File& done : files_)
        if (done.temp.empty() && !done.replaced) ::unlink(done.path.c_str());
      if (err == EEXIST && !overwrite) throw_exists(f.path, f.what);
      throw Error("cannot write " + f.what + " " + f.path + ": " + std::strerror(err));
    }
    f.temp.clear();
  }
  // Make the renames durable; a failure here loses no data already written.
  std::vector<std::string> dirs;
  for (const File& f : files_) dirs.push_back(directory_of(f.path));
  std::sort(dirs.begin(), dirs.end());
  dirs.erase(std::unique(dirs.begin(), dirs.end()), dirs.end());
  for (const std::string& dir : dirs) {
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }
}

}  // namespace vitint
