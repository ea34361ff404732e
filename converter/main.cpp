// vitint-convert: timm checkpoint + calibration images -> integer .vti model.
#include <cstdio>
#include <exception>

#include "converter/convert_tool.h"

int main(int argc, char** argv) {
  try {
    vitint::convert::convert_tool(argc, argv);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vitint-convert: error: %s\n", e.what());
    return 1;
  }
}
