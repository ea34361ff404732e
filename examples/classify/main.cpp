// Minimal embedding of libvitint: load a model, classify one image.
#include <cstdio>
#include <memory>
#include <vector>

#include <vitint/vitint.h>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MODEL.vti IMAGE\n", argv[0]);
    return 2;
  }
  std::shared_ptr<const vitint::Model> model;
  vitint::Status st = vitint::Model::load(argv[1], {}, &model);
  if (!st) {
    std::fprintf(stderr, "%s\n", st.message().c_str());
    return 1;
  }
  std::unique_ptr<vitint::Session> session;
  st = vitint::Session::create(model, {}, &session);
  if (!st) {
    std::fprintf(stderr, "%s\n", st.message().c_str());
    return 1;
  }
  vitint::Image image;
  st = vitint::load_image(argv[2], &image);
  if (!st) {
    std::fprintf(stderr, "%s\n", st.message().c_str());
    return 1;
  }
  std::vector<vitint::Prediction> top;
  st = session->classify(image, 3, &top);
  if (!st) {
    std::fprintf(stderr, "%s\n", st.message().c_str());
    return 1;
  }
  std::printf("%s (libvitint %s, %s kernels)\n", model->info().architecture.c_str(), vitint::version(),
              model->isa().c_str());
  for (const auto& p : top) std::printf("%6.2f%%  %s\n", 100.0 * p.probability, p.label.c_str());
  return 0;
}
