#include "converter/evaluate.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>

#include "converter/checkpoint.h"
#include "converter/reference.h"
#include "vitint/error.h"
#include "vitint/vitint.h"

namespace vitint::convert {
namespace {

std::array<int, 5> top5(const float* logits, int n) {
  std::array<int, 5> best{-1, -1, -1, -1, -1};
  for (int c = 0; c < n; ++c) {
    int pos = 5;
    while (pos > 0 && (best[static_cast<size_t>(pos - 1)] < 0 || logits[c] > logits[best[static_cast<size_t>(pos - 1)]])) --pos;
    if (pos >= 5) continue;
    for (int k = 4; k > pos; --k) best[static_cast<size_t>(k)] = best[static_cast<size_t>(k - 1)];
    best[static_cast<size_t>(pos)] = c;
  }
  return best;
}

bool is_directory(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

EvalResult evaluate(const std::vector<LabeledImage>& items, const std::string& root, const EvalInput& input,
                    const ClassifierFactory& make_classifier, const float* reference_logits, int threads,
                    bool progress) {
  const int n = static_cast<int>(items.size());
  // A label the model cannot predict would count as a miss, silently.
  for (const LabeledImage& item : items)
    if (item.label >= input.num_classes)
      throw Error("image " + item.file + " has label " + std::to_string(item.label) + ", but the model has " +
                  std::to_string(input.num_classes) + " classes (0.." + std::to_string(input.num_classes - 1) + ")");
  EvalResult r;
  r.images = n;
  r.predictions.assign(items.size(), {-1, -1, -1, -1, -1});
  std::atomic<int> next{0}, done{0};
  Progress bar("evaluating", n, progress);
  const auto t0 = std::chrono::steady_clock::now();
  run_threads(static_cast<unsigned>(std::max(1, std::min(threads, n))), [&](unsigned t) {
    const Classifier classify = make_classifier();
    std::vector<float> logits(static_cast<size_t>(input.num_classes));
    for (int i; (i = next++) < n;) {
      const auto& item = items[static_cast<size_t>(i)];
      const Image img = load_preprocessed(root + "/" + item.file, input.image_size, input.crop_pct, input.interpolation);
      classify(img.rgb.data(), logits.data());
      r.predictions[static_cast<size_t>(i)] = top5(logits.data(), input.num_classes);
      ++done;
      if (t == 0) bar.update(done);
    }
  }, [&] { next = n; });
  bar.finish();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  int top1 = 0, top5c = 0, agree = 0;
  for (int i = 0; i < n; ++i) {
    const auto& p = r.predictions[static_cast<size_t>(i)];
    const int label = items[static_cast<size_t>(i)].label;
    if (label >= 0) {
      ++r.labeled;
      top1 += p[0] == label;
      top5c += std::find(p.begin(), p.end(), label) != p.end();
    }
    if (reference_logits)
      agree += p[0] == top5(reference_logits + static_cast<size_t>(i) * static_cast<size_t>(input.num_classes),
                            input.num_classes)[0];
  }
  if (r.labeled) {
    r.top1 = 100.0 * top1 / r.labeled;
    r.top5 = 100.0 * top5c / r.labeled;
  }
  if (reference_logits) r.agreement = 100.0 * agree / n;
  return r;
}

Engine open_engine(const std::string& model_path, const std::string& isa) {
  Engine e;
  if (is_directory(model_path)) {
    auto ckpt = std::make_shared<Checkpoint>(Checkpoint::load(model_path));
    auto ref = std::make_shared<ReferenceModel>(*ckpt);
    const VitConfig& c = ckpt->config();
    e.name = "fp32-reference";
    e.input = {c.image_size, c.crop_pct, c.interpolation, c.num_classes};
    // The factory owns the checkpoint and the reference (which refers to it).
    e.factory = [ckpt, ref] {
      const ReferenceModel* model = ref.get();
      return Classifier([model](const uint8_t* image, float* logits) {
        const std::vector<float> out = model->forward(image);
        std::copy(out.begin(), out.end(), logits);
      });
    };
    return e;
  }
  std::shared_ptr<const Model> model;
  LoadOptions lo;
  lo.isa = isa;
  const Status st = Model::load(model_path, lo, &model);
  if (!st) throw Error(st.message());
  const ModelInfo& i = model->info();
  e.name = "libvitint-" + model->isa();
  e.recipe = model->info().recipe;
  e.input = {i.image_size, i.crop_pct, i.interpolation, i.num_classes};
  e.factory = [model] {
    std::shared_ptr<Session> session;
    {
      std::unique_ptr<Session> s;
      const Status cs = Session::create(model, {}, &s);
      if (!cs) throw Error(cs.message());
      session = std::move(s);
    }
    return Classifier([session](const uint8_t* image, float* logits) {
      const Status rs = session->run(image, 1, logits);
      if (!rs) throw Error(rs.message());
    });
  };
  return e;
}

}  // namespace vitint::convert
