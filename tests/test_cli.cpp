// The tools' command-line parser and their refusal to overwrite outputs.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "converter/cli.h"
#include "temp_files.h"
#include "vitint/error.h"

namespace {

using vitint::convert::Args;

// argv from strings (argv[0] is the program name).
struct Argv {
  std::vector<std::string> strings;
  std::vector<char*> ptrs;
  explicit Argv(std::vector<std::string> s) : strings(std::move(s)) {
    strings.insert(strings.begin(), "tool");
    for (auto& a : strings) ptrs.push_back(a.data());
  }
  int argc() { return static_cast<int>(ptrs.size()); }
  char** argv() { return ptrs.data(); }
};

Args parse(std::vector<std::string> words) {
  Argv a(std::move(words));
  return Args(a.argc(), a.argv(), {"threads", "output", "attn-bits"}, {"json", "force"});
}

std::string error_of(std::vector<std::string> words) {
  try {
    const Args args = parse(std::move(words));
    args.get_int("threads", 1, 1, 64);
    args.get_choice("attn-bits", 8, {8, 4});
  } catch (const vitint::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("cli: options, flags and positional arguments") {
  const Args a = parse({"model.vti", "--threads", "2", "--json", "--attn-bits=4", "-o", "out.vti"});
  CHECK(a.positional() == std::vector<std::string>{"model.vti"});
  CHECK(a.get_int("threads", 1, 1, 64) == 2);
  CHECK(a.get_choice("attn-bits", 8, {8, 4}) == 4);
  CHECK(a.get("output") == "out.vti");
  CHECK(a.has("json"));
  CHECK_FALSE(a.has("force"));
  CHECK(parse({}).get_int("threads", 7, 1, 64) == 7);
}

TEST_CASE("cli: bad arguments name the option and the value") {
  CHECK(error_of({"--thread", "2"}) == "unknown option --thread (see --help)");
  CHECK(error_of({"--threads"}) == "option --threads needs a value");
  CHECK(error_of({"--json=1"}) == "option --json takes no value");
  CHECK(error_of({"--threads", "0"}) == "option --threads must be an integer in [1, 64], got '0'");
  CHECK(error_of({"--threads", "2x"}) == "option --threads must be an integer in [1, 64], got '2x'");
  CHECK(error_of({"--attn-bits", "6"}) == "option --attn-bits must be 8 or 4, got '6'");
  CHECK(error_of({"--threads", "64", "--attn-bits", "8"}).empty());
}

TEST_CASE("cli: refuse_existing keeps a user's file unless forced") {
  const vitint::test::TempFile existing(std::vector<uint8_t>{'k', 'e', 'e', 'p'});
  try {
    vitint::convert::refuse_existing(existing.path, "report", false);
    FAIL("an existing file was not refused");
  } catch (const vitint::Error& e) {
    CHECK(std::string(e.what()) == "report " + existing.path + " already exists; pass --force to overwrite it");
  }
  CHECK_NOTHROW(vitint::convert::refuse_existing(existing.path, "report", true));
  CHECK_NOTHROW(vitint::convert::refuse_existing(existing.path + ".absent", "report", false));
  // A directory is no file to overwrite, --force or not (checked before any
  // work: the converter calibrates first and writes last).
  const vitint::test::TempDir dir;
  for (const bool force : {false, true})
    CHECK_THROWS_WITH_AS(vitint::convert::refuse_existing(dir.path, "output", force),
                         ("output " + dir.path + " is a directory; name a file").c_str(), vitint::Error);
}
