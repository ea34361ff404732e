// Files written so that a failure leaves none of them behind: each goes to a
// temporary file beside its path, and all move into place together. The model
// writer (format::Writer::write) and the tools' outputs use it. Internal (not
// installed); the converter and tools include it as "engine/src/output_files.h".
#pragma once
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace vitint {

// add() writes each file to a temporary file beside it, commit() then moves
// them all into place. The destructor removes the temporaries left; a failed
// commit() also removes the files it had already moved that did not replace
// an existing one.
class OutputFiles {
 public:
  // Receives the file's bytes piece by piece.
  using Sink = std::function<void(const void* data, size_t size)>;

  OutputFiles() = default;
  OutputFiles(const OutputFiles&) = delete;
  OutputFiles& operator=(const OutputFiles&) = delete;
  ~OutputFiles();
  // Writes `size` bytes to a new temporary file in PATH's directory and
  // returns its path; throws vitint::Error ("cannot write <what> PATH: REASON",
  // or for an empty PATH or one ending in '/', before anything is written).
  std::string add(const std::string& path, const std::string& what, const void* data, size_t size);
  // The same for bytes that `fill` passes to its sink (a file too large to
  // hold twice in memory).
  std::string add(const std::string& path, const std::string& what, const std::function<void(const Sink&)>& fill);
  // Renames the temporaries to their paths; without `overwrite`, an existing
  // file is an error ("<what> PATH already exists; pass --force to overwrite it").
  void commit(bool overwrite);

 private:
  struct File {
    std::string path, what, temp;  // temp: empty once committed
    bool replaced = false;         // commit() replaced an existing file
  };
  std::vector<File> files_;
};

// Throws vitint::Error "<what> PATH already exists; pass --force to overwrite it".
[[noreturn]] void throw_exists(const std::string& path, const std::string& what);

// The directory a file path is in ("." for a bare name).
std::string directory_of(const std::string& path);

}  // namespace vitint
