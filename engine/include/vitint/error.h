// Errors raised inside libvitint. The public API converts them to Status at
// its boundary; tools print what() and exit non-zero.
#pragma once
#include <stdexcept>
#include <string>

namespace vitint {

// A caller mistake or bad input (file, image, checkpoint). The message says
// what is wrong, where, and when possible how to fix it.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Internal invariant; a failure is a bug in libvitint, not in the input.
#define VITINT_ASSERT(cond)                                                               \
  do {                                                                                    \
    if (!(cond))                                                                          \
      throw ::vitint::Error(std::string("internal error: ") + #cond + " at " + __FILE__ + \
                            ":" + std::to_string(__LINE__));                              \
  } while (0)

}  // namespace vitint
