// Reading a whole file that a user named (an image, a list, a checkpoint,
// a config): one place for the errors. Internal (not installed); the
// converter includes it as "engine/src/read_file.h".
#pragma once
#include <string>
#include <vector>

namespace vitint {

// The bytes of `path`. Throws vitint::Error naming it as `what`: "cannot
// open WHAT PATH: REASON", "cannot read WHAT PATH: it is a directory" (an
// ifstream opens a directory and then fails inside its buffer with a message
// that names no file), "cannot read WHAT PATH: it is a device or socket, not
// a file" (/dev/zero would fill memory; pipes and FIFOs are read) or
// "cannot read WHAT PATH: I/O error".
std::vector<char> read_file(const std::string& path, const std::string& what);

}  // namespace vitint
