// vitint-classify: top classes of images with an integer model.
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "converter/cli.h"
#include "vitint/error.h"
#include "vitint/image.h"
#include "vitint/vitint.h"

namespace {
const char* kUsage = R"(usage: vitint-classify MODEL.vti IMAGE... [--top K] [--json] [--isa ref|avx2|avxvnni|avx512vnni|amx]
Prints the K (default 5) most likely classes of each image.
)";
}

int main(int argc, char** argv) {
  try {
    const vitint::convert::Args args(argc, argv, {"top", "isa"}, {"json", "help"});
    if (args.has("help")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (args.positional().size() < 2) throw vitint::Error("expected MODEL.vti and at least one IMAGE\n" + std::string(kUsage));
    const int top = args.get_int("top", 5, 1, 100000);
    std::shared_ptr<const vitint::Model> model;
    vitint::LoadOptions lo;
    lo.isa = args.get("isa");
    vitint::Status st = vitint::Model::load(args.positional()[0], lo, &model);
    if (!st) throw vitint::Error(st.message());
    std::unique_ptr<vitint::Session> session;
    st = vitint::Session::create(model, {}, &session);
    if (!st) throw vitint::Error(st.message());
    if (!args.has("json"))
      std::printf("%s (%s), %s kernels, recipe %s\n", model->info().architecture.c_str(), args.positional()[0].c_str(),
                  model->isa().c_str(), vitint::convert::recipe_summary(model->info().recipe).c_str());
    nlohmann::json out = nlohmann::json::array();
    int failures = 0;
    for (size_t i = 1; i < args.positional().size(); ++i) {
      const std::string& path = args.positional()[i];
      std::vector<vitint::Prediction> preds;
      try {
        const vitint::Image img = vitint::load_image(path);
        st = session->classify(img, top, &preds);
        if (!st) throw vitint::Error("image " + path + ": " + st.message());
      } catch (const std::exception& e) {
        std::fprintf(stderr, "vitint-classify: error: %s\n", e.what());
        ++failures;
        continue;
      }
      if (args.has("json")) {
        nlohmann::json j = {{"image", path}, {"top", nlohmann::json::array()}};
        for (const auto& p : preds)
          j["top"].push_back({{"class", p.class_index}, {"label", p.label}, {"probability", p.probability}, {"logit", p.logit}});
        out.push_back(j);
      } else {
        std::printf("%s\n", path.c_str());
        for (const auto& p : preds)
          std::printf("  %6.2f%%  %4d  %s\n", 100.0 * p.probability, p.class_index, p.label.c_str());
      }
    }
    if (args.has("json")) std::cout << vitint::convert::json_text(out) << "\n";
    return failures ? 1 : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vitint-classify: error: %s\n", e.what());
    return 1;
  }
}
