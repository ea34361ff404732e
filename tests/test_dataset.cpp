// Image lists and the evaluation loop of vitint-eval: malformed lists and
// labels the model cannot predict are errors, unlabeled entries count in no
// accuracy.
#include <doctest/doctest.h>

#include <array>
#include <fstream>
#include <string>
#include <vector>

#include "converter/dataset.h"
#include "converter/evaluate.h"
#include "shared_data.h"
#include "temp_files.h"
#include "vitint/error.h"

using vitint::convert::LabeledImage;

namespace {

std::string write_list(const vitint::test::TempDir& dir, const std::string& text) {
  const std::string path = dir.file("list.txt");
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

}  // namespace

TEST_CASE("read_image_list: labels are optional; malformed lines name the file and line") {
  const vitint::test::TempDir dir;
  const auto list = vitint::convert::read_image_list(write_list(dir, "a.jpg 3\r\n\n  \nb.png\nc.jpg 0\n"));
  REQUIRE(list.size() == 3);
  CHECK(list[0].file == "a.jpg");
  CHECK(list[0].label == 3);
  CHECK(list[1].file == "b.png");
  CHECK(list[1].label == -1);
  CHECK(list[2].label == 0);

  const std::string path = write_list(dir, "a.jpg 3\nb.jpg -2\n");
  CHECK_THROWS_WITH_AS(vitint::convert::read_image_list(path),
                       doctest::Contains((path + ":2: label '-2' is not a non-negative integer").c_str()), vitint::Error);
  CHECK_THROWS_WITH_AS(vitint::convert::read_image_list(write_list(dir, "a.jpg 3 x\n")),
                       doctest::Contains(":1: expected 'FILE LABEL', found more fields"), vitint::Error);
  CHECK_THROWS_WITH_AS(vitint::convert::read_image_list(write_list(dir, "\n \n")), doctest::Contains("has no entries"),
                       vitint::Error);
  CHECK_THROWS_WITH_AS(vitint::convert::read_image_list(dir.path), doctest::Contains((dir.path + ": it is a directory").c_str()),
                       vitint::Error);
  CHECK_THROWS_WITH_AS(vitint::convert::read_image_list(dir.file("missing.txt")),
                       doctest::Contains(("cannot open image list " + dir.file("missing.txt")).c_str()), vitint::Error);
}

TEST_CASE("evaluate: accuracy over the labeled entries only; a label past the classes is an error") {
  // A classifier that always ranks class 7 first, then 6, 5, ...
  vitint::convert::EvalInput input;
  input.num_classes = 10;
  const vitint::convert::ClassifierFactory factory = [] {
    return vitint::convert::Classifier([](const uint8_t*, float* logits) {
      for (int c = 0; c < 10; ++c) logits[c] = c <= 7 ? static_cast<float>(c) : -1.0f;
    });
  };
  const std::string image = "ILSVRC2012_val_00000347.JPEG";
  const std::vector<LabeledImage> items = {{image, 7}, {image, -1}, {image, 4}, {image, 0}};
  const auto r = vitint::convert::evaluate(items, vitint::test::val_dir(), input, factory, nullptr, 2, false);
  CHECK(r.images == 4);
  CHECK(r.labeled == 3);
  CHECK(r.predictions[1] == std::array<int, 5>{7, 6, 5, 4, 3});
  CHECK(r.top1 == doctest::Approx(100.0 / 3));  // label 7
  CHECK(r.top5 == doctest::Approx(200.0 / 3));  // labels 7 and 4

  const std::vector<LabeledImage> bad = {{image, 7}, {"other.jpg", 10}};
  CHECK_THROWS_WITH_AS(vitint::convert::evaluate(bad, vitint::test::val_dir(), input, factory, nullptr, 1, false),
                       doctest::Contains("image other.jpg has label 10, but the model has 10 classes (0..9)"),
                       vitint::Error);
}
