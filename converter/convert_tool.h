// vitint-convert's command line: main.cpp runs it, the tests call it directly.
#pragma once

namespace vitint::convert {

// Runs vitint-convert on its arguments (argv[0]: the program name). Every
// argument is checked before the long work; MODEL.vti and the --report file
// are written together at the end, or neither is. Throws vitint::Error for
// bad input.
void convert_tool(int argc, char** argv);

}  // namespace vitint::convert
