// The tools' command-line parser and their refusal to overwrite outputs.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "converter/cli.h"
#include "converter/convert_tool.h"
#include "engine/src/format.h"
#include "engine/src/output_files.h"
#include "safetensors_files.h"
#include "shared_data.h"
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

TEST_CASE("cli: an unknown short option is named as such") {
  CHECK(error_of({"-x"}) == "unknown option -x (see --help)");
  CHECK(error_of({"model.vti", "-json"}) == "unknown option -json (see --help)");
}

TEST_CASE("cli: refuse_existing checks the directory an output goes to") {
  const vitint::test::TempDir dir;
  CHECK_THROWS_WITH_AS(vitint::convert::refuse_existing(dir.file("absent/r.json"), "report", true),
                       ("cannot write report " + dir.file("absent/r.json") + ": directory " + dir.file("absent") +
                        ": No such file or directory")
                           .c_str(),
                       vitint::Error);
  CHECK_THROWS_WITH_AS(vitint::convert::refuse_existing("", "output", false), "output path is empty", vitint::Error);
  CHECK_NOTHROW(vitint::convert::refuse_existing(dir.file("r.json"), "report", false));
}

TEST_CASE("cli: refuse_same_file by normalized path and by inode") {
  const vitint::test::TempDir dir;
  const std::string model = dir.file("m.vti"), list = dir.file("list.txt");
  const std::vector<std::pair<std::string, std::string>> others = {{"calibration list", list}, {"output", model}};
  CHECK_THROWS_WITH_AS(vitint::convert::refuse_same_file(dir.path + "/./sub/../m.vti", "report", others),
                       ("report " + dir.path + "/./sub/../m.vti is the same file as output " + model).c_str(),
                       vitint::Error);
  CHECK_NOTHROW(vitint::convert::refuse_same_file(dir.file("r.json"), "report", others));
  std::ofstream(list) << "a.jpg 1\n";
  REQUIRE(::link(list.c_str(), dir.file("hard.txt").c_str()) == 0);
  REQUIRE(::symlink(list.c_str(), dir.file("soft.txt").c_str()) == 0);
  for (const char* alias : {"hard.txt", "soft.txt"})
    CHECK_THROWS_WITH_AS(vitint::convert::refuse_same_file(dir.file(alias), "report", others),
                         ("report " + dir.file(alias) + " is the same file as calibration list " + list).c_str(),
                         vitint::Error);
}

TEST_CASE("cli: OutputFiles writes all files or none") {
  const vitint::test::TempDir dir;
  const std::string model = dir.file("m.vti"), report = dir.file("r.json");
  auto text = [](const std::string& path) { return vitint::test::read_text(path); };
  SUBCASE("all committed") {
    vitint::OutputFiles out;
    const std::string temp = out.add(model, "output", "model", 5);
    out.add(report, "report", "report", 6);
    CHECK(text(temp) == "model");
    CHECK(dir.files().size() == 2);
    out.commit(false);
    CHECK(text(model) == "model");
    CHECK(text(report) == "report");
    CHECK(dir.files().size() == 2);  // no temporary left
  }
  SUBCASE("a failed add leaves nothing") {
    {
      vitint::OutputFiles out;
      out.add(model, "output", "model", 5);
      CHECK_THROWS_WITH_AS(out.add(dir.file("absent/r.json"), "report", "report", 6),
                           doctest::Contains(("cannot write report " + dir.file("absent/r.json") +
                                              ": cannot create a temporary file in " + dir.file("absent") +
                                              ": No such file or directory")
                                                 .c_str()),
                           vitint::Error);
    }
    CHECK(dir.files().empty());
  }
  SUBCASE("a failed commit removes what it created, keeps what was there") {
    std::ofstream(model) << "old model";
    {
      vitint::OutputFiles out;
      out.add(model, "output", "model", 5);
      out.add(report, "report", "report", 6);
      CHECK_THROWS_WITH_AS(out.commit(false),
                           ("output " + model + " already exists; pass --force to overwrite it").c_str(),
                           vitint::Error);
    }
    CHECK(text(model) == "old model");
    CHECK(dir.files() == std::vector<std::string>{"m.vti"});
    // The report's rename fails (a directory took its name): the new report
    // is gone, the model replaced with --force stays replaced.
    const std::string other = dir.file("o.vti");
    {
      vitint::OutputFiles out;
      out.add(other, "output", "other", 5);
      out.add(model, "output", "model", 5);
      out.add(report, "report", "report", 6);
      REQUIRE(::mkdir(report.c_str(), 0755) == 0);
      CHECK_THROWS_WITH_AS(out.commit(true), doctest::Contains(("cannot write report " + report + ": ").c_str()),
                           vitint::Error);
    }
    CHECK(text(model) == "model");
    ::rmdir(report.c_str());
    CHECK(dir.files() == std::vector<std::string>{"m.vti"});
  }
}

namespace {

// vitint-convert run in-process: "" or the message of the Error it throws.
std::string convert_error(std::vector<std::string> words) {
  Argv a(std::move(words));
  try {
    vitint::convert::convert_tool(a.argc(), a.argv());
  } catch (const vitint::Error& e) {
    return e.what();
  }
  return "";
}

// vitint-convert's arguments for DeiT-Tiny calibrated on the images of `list`, and `extra`.
std::vector<std::string> convert_args(const std::string& list, std::vector<std::string> extra) {
  extra.insert(extra.begin(), {vitint::test::model_dir(vitint::test::kDeitTiny), "--calib-list", list, "--calib-root",
                               vitint::test::val_dir(), "--quiet"});
  return extra;
}

}  // namespace

TEST_CASE("vitint-convert: contradictory arguments and outputs over inputs are refused before any work") {
  const vitint::test::TempDir dir;
  const std::string ckpt = vitint::test::model_dir(vitint::test::kDeitTiny), list = dir.file("list.txt"),
                    model = dir.file("m.vti"), labels = vitint::test::shared_dir() + "/data/imagenet_synset_words.txt";
  std::ofstream(list) << vitint::test::kPilProbeImage << " 1\n";
  auto error = [&](std::vector<std::string> extra) { return convert_error(convert_args(list, std::move(extra))); };
  CHECK(error({"-o", model, "--report", dir.path + "/./m.vti"}) ==
        "report " + dir.path + "/./m.vti is the same file as output " + model);
  CHECK(error({"-o", model, "--report", list, "--force"}) ==
        "report " + list + " is the same file as calibration list " + list);
  CHECK(error({"-o", model, "--labels", labels, "--report", labels, "--force"}) ==
        "report " + labels + " is the same file as labels file " + labels);
  CHECK(error({"-o", ckpt + "/config.json", "--force"}) ==
        "output " + ckpt + "/config.json is the same file as checkpoint file " + ckpt + "/config.json");
  CHECK(error({"-o", model, "--report", dir.file("absent/r.json")}) ==
        "cannot write report " + dir.file("absent/r.json") + ": directory " + dir.file("absent") +
            ": No such file or directory");
  CHECK(error({"-o", model, "--attn-bits", "8", "--lis"}) == "--attn-bits 8 and --lis contradict each other");
  CHECK(error({"-o", model, "--attn-bits", "4", "--no-lis"}) == "--attn-bits 4 and --no-lis contradict each other");
  CHECK(error({"-o", model, "--shared-stream", "--no-shared-stream"}) ==
        "--shared-stream and --no-shared-stream contradict each other");
  CHECK(error({"-o", model}) ==
        "calibration list " + list +
            " has only 1 image, fewer than the default --calib-count 100: pass --calib-count 1 or a longer list");
  CHECK(dir.files() == std::vector<std::string>{"list.txt"});
}

TEST_CASE("vitint-convert: one shared stream grid by default for 16-bit streams, per point for 8-bit ones") {
  const vitint::test::TempDir dir;
  const std::string list = dir.file("list.txt"), model = dir.file("m.vti");
  std::ofstream(list) << vitint::test::kPilProbeImage << " 1\n";
  auto shared = [&](std::vector<std::string> extra) {
    extra.insert(extra.end(), {"-o", model, "--calib-count", "1", "--force"});
    REQUIRE(convert_error(convert_args(list, extra)) == "");
    return vitint::format::Reader::open(model)->metadata()["calibration"]["shared_stream"].get<bool>();
  };
  CHECK(shared({}));
  CHECK_FALSE(shared({"--no-shared-stream"}));
  CHECK_FALSE(shared({"--residual-bits", "8"}));
  CHECK(shared({"--residual-bits", "8", "--shared-stream"}));
}

TEST_CASE("vitint-convert: paths that are not UTF-8 are stored and printed with U+FFFD") {
  const vitint::test::TempDir dir;
  const std::string list = dir.file("list\xff.txt"), model = dir.file("m\xff.vti"), report = dir.file("r.json");
  std::ofstream(list) << vitint::test::kPilProbeImage << " 1\n";
  std::ostringstream out;
  std::streambuf* const stdout_buf = std::cout.rdbuf(out.rdbuf());
  const std::string error =
      convert_error(convert_args(list, {"-o", model, "--calib-count", "1", "--report", report, "--json"}));
  std::cout.rdbuf(stdout_buf);
  REQUIRE(error == "");
  CHECK(nlohmann::json::parse(out.str())["output"] == dir.path + "/m\xef\xbf\xbd.vti");
  CHECK(vitint::format::Reader::open(model)->metadata()["calibration"]["list"] ==
        dir.path + "/list\xef\xbf\xbd.txt");
  CHECK(nlohmann::json::parse(vitint::test::read_text(report)).is_object());
  CHECK(dir.files().size() == 3);
}
