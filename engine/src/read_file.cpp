#include "engine/src/read_file.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "vitint/error.h"

namespace vitint {

std::vector<char> read_file(const std::string& path, const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_type type = fs::status(path, ec).type();
  if (type == fs::file_type::directory) throw Error("cannot read " + what + " " + path + ": it is a directory");
  // A device never ends (/dev/zero, /dev/urandom): reading it would fill memory.
  if (type == fs::file_type::character || type == fs::file_type::block || type == fs::file_type::socket)
    throw Error("cannot read " + what + " " + path + ": it is a device or socket, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + what + " " + path + ": " + std::strerror(errno));
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error("cannot read " + what + " " + path + ": I/O error");
  return bytes;
}

}  // namespace vitint
