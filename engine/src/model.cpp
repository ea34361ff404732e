// Public API: Model (load, validate, prepare) and Session (arena, run).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <new>

#include "engine/src/model_impl.h"
#include "vitint/error.h"
#include "vitint/image.h"
#include "vitint/vitint.h"

namespace vitint {

namespace {
template <class F>
Status guarded(F&& f) {
  try {
    f();
    return Status();
  } catch (const std::bad_alloc&) {
    return Status::error("out of memory");
  } catch (const std::exception& e) {
    return Status::error(e.what());
  }
}

// The network's input from an any-size image; errors name the API call.
Image model_input(const ModelInfo& info, const Image& image, const char* where) {
  try {
    return preprocess(image, info.image_size, info.crop_pct, info.interpolation);
  } catch (const Error& e) {
    throw Error(std::string(where) + ": " + e.what());
  }
}
}  // namespace

const char* version() { return VITINT_VERSION; }

Status load_image(const std::string& path, Image* out) {
  return guarded([&] {
    if (!out) throw Error("load_image: out must not be null");
    *out = load_image(path);
  });
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;
const ModelInfo& Model::info() const { return impl_->info; }
std::string Model::isa() const { return kernels::isa_name(impl_->isa); }

Status Model::preprocess(const Image& image, uint8_t* out) const {
  return guarded([&] {
    if (!out) throw Error("Model::preprocess: out must not be null");
    const Image pre = model_input(impl_->info, image, "Model::preprocess");
    std::memcpy(out, pre.rgb.data(), pre.rgb.size());
  });
}

Status Model::load(const std::string& path, const LoadOptions& options, std::shared_ptr<const Model>* out) {
  return guarded([&] {
    if (!out) throw Error("Model::load: out must not be null");
    auto impl = std::make_unique<Impl>();
    if (options.isa.empty()) {
      impl->isa = kernels::best_isa();
    } else {
      if (!kernels::parse_isa(options.isa, &impl->isa))
        throw Error("unknown kernel path '" + options.isa + "' (use " + kernels::isa_names(" or ") + ")");
      if (!kernels::isa_supported(impl->isa))
        throw Error("kernel path '" + options.isa + "' is not supported by this CPU");
    }
    impl->file = format::Reader::open(path);
    const auto& meta = impl->file->metadata();
    if (!meta.contains("family") || !meta["family"].is_string())
      throw Error("model file " + path + ": metadata 'family' is missing");
    const std::string family = meta["family"].get<std::string>();
    const models::GraphBuilder build = models::find_builder(family);
    if (!build)
      throw Error("model file " + path + ": architecture family '" + family +
                  "' is not supported by this libvitint (supported: vit)");
    build(*impl->file, impl->isa, &impl->info, &impl->graph);
    *out = std::shared_ptr<const Model>(new Model(std::move(impl)));
  });
}

struct Session::Impl {
  std::shared_ptr<const Model> model;
  int max_batch = 1;
  engine::AlignedBuffer arena;
  std::unique_ptr<engine::ThreadPool> pool;
  engine::ExecContext ctx;
  std::vector<float> logits;
  std::vector<OpProfile> op_profile;  // [op] with SessionOptions::profile (allocated by create()), else empty

  // The network on checked arguments; throws like every operator.
  void run(const uint8_t* images, int batch, float* out) {
    ctx.batch = batch;
    ctx.images = images;
    ctx.logits = out;
    const auto& ops = model->impl().graph.ops;
    if (op_profile.empty()) {
      for (const auto& op : ops) op->run(ctx);
      return;
    }
    for (size_t i = 0; i < ops.size(); ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      ops[i]->run(ctx);
      const auto t1 = std::chrono::steady_clock::now();
      OpProfile& p = op_profile[i];
      ++p.runs;
      p.total_ms += std::chrono::duration<double, std::milli>(t1 - t0).count();
    }
  }
};

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::~Session() = default;

Status Session::create(std::shared_ptr<const Model> model, const SessionOptions& options,
                       std::unique_ptr<Session>* out) {
  return guarded([&] {
    if (!out) throw Error("Session::create: out must not be null");
    if (!model) throw Error("Session::create: model is null");
    if (options.max_batch < 1 || options.max_batch > 4096)
      throw Error("Session::create: max_batch must be in [1, 4096], got " + std::to_string(options.max_batch));
    if (options.threads < 1 || options.threads > 256)
      throw Error("Session::create: threads must be in [1, 256], got " + std::to_string(options.threads));
    auto impl = std::make_unique<Impl>();
    impl->model = std::move(model);
    impl->max_batch = options.max_batch;
    const auto& graph = impl->model->impl().graph;
    // Plan the arena once: every buffer gets its own 64-byte aligned slot.
    std::vector<size_t> offsets;
    size_t total = 0;
    for (const auto& b : graph.buffers) {
      offsets.push_back(total);
      total += engine::align64(b.per_image * static_cast<size_t>(options.max_batch) + b.fixed +
                             b.per_thread * static_cast<size_t>(options.threads));
    }
    impl->arena = engine::AlignedBuffer(total);
    for (size_t off : offsets) impl->ctx.buffers.push_back(impl->arena.data() + off);
    impl->ctx.isa = impl->model->impl().isa;
    try {
      impl->pool = std::make_unique<engine::ThreadPool>(options.threads);
    } catch (const Error& e) {
      throw Error(std::string("Session::create: ") + e.what());
    }
    impl->ctx.pool = impl->pool.get();
    const ModelInfo& info = impl->model->info();
    impl->logits.resize(static_cast<size_t>(info.num_classes));
    if (options.profile)
      for (const auto& op : graph.ops) impl->op_profile.push_back({op->name, op->kind, 0, 0.0});
    out->reset(new Session(std::move(impl)));
  });
}

Status Session::run(const uint8_t* images, int batch, float* logits) {
  return guarded([&] {
    if (!images || !logits) throw Error("Session::run: images and logits must not be null");
    if (batch < 1 || batch > impl_->max_batch)
      throw Error("Session::run: batch " + std::to_string(batch) + " is outside [1, max_batch = " +
                  std::to_string(impl_->max_batch) + "]");
    impl_->run(images, batch, logits);
  });
}

std::vector<OpProfile> Session::profile() const { return impl_->op_profile; }

std::vector<Prediction> Session::top_k(const float* logits, int k) const {
  if (!logits) return {};
  const ModelInfo& info = impl_->model->info();
  const int n = info.num_classes;
  k = std::max(0, std::min(k, n));
  std::vector<int> idx(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = i;
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int a, int b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  const float mx = *std::max_element(logits, logits + n);
  double denom = 0;
  for (int i = 0; i < n; ++i) denom += std::exp(static_cast<double>(logits[i] - mx));
  std::vector<Prediction> preds;
  for (int i = 0; i < k; ++i) {
    Prediction p;
    p.class_index = idx[static_cast<size_t>(i)];
    p.logit = logits[p.class_index];
    p.probability = static_cast<float>(std::exp(static_cast<double>(p.logit - mx)) / denom);
    if (static_cast<size_t>(p.class_index) < info.labels.size()) p.label = info.labels[static_cast<size_t>(p.class_index)];
    preds.push_back(std::move(p));
  }
  return preds;
}

Status Session::classify(const Image& image, int top_k_count, std::vector<Prediction>* out) {
  return guarded([&] {
    if (!out) throw Error("Session::classify: out must not be null");
    out->clear();  // no earlier call's predictions after a failure
    const Image pre = model_input(impl_->model->info(), image, "Session::classify");
    impl_->run(pre.rgb.data(), 1, impl_->logits.data());
    *out = top_k(impl_->logits.data(), top_k_count);
  });
}

}  // namespace vitint
