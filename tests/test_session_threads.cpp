// Session threads: logits are bit-identical for every thread count, batch
// size and kernel path, and Session::run allocates nothing once warm.
//
// This file replaces the global allocation functions of the test binary with
// counting ones (malloc-backed, correct for every other test as well).
#include <doctest/doctest.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <set>
#include <string>
#include <vector>

#include "isas.h"
#include "temp_files.h"
#include "tiny_model.h"
#include "vitint/kernels/cpu.h"
#include "vitint/vitint.h"

namespace {

std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};

void* counted_alloc(std::size_t size, std::size_t align) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (size == 0) size = 1;
  void* p = nullptr;
  if (align <= alignof(std::max_align_t)) {
    p = std::malloc(size);
  } else {
    p = std::aligned_alloc(align, (size + align - 1) / align * align);
  }
  return p;
}

}  // namespace

void* operator new(std::size_t size) {
  if (void* p = counted_alloc(size, 0)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
  if (void* p = counted_alloc(size, 0)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t size, std::align_val_t align) {
  if (void* p = counted_alloc(size, static_cast<std::size_t>(align))) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size, std::align_val_t align) {
  if (void* p = counted_alloc(size, static_cast<std::size_t>(align))) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return counted_alloc(size, 0); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return counted_alloc(size, 0); }
void* operator new(std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  return counted_alloc(size, static_cast<std::size_t>(align));
}
void* operator new[](std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  return counted_alloc(size, static_cast<std::size_t>(align));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

namespace {

constexpr int kImages = 3;

// One converted model per attention width, shared by the test cases. The
// 8-bit one has the default shared residual-stream grid (its residual adds
// run residual_add16), the 4-bit one a grid per stream point (the exact
// residual_add).
const vitint::test::TempFile& model_file(int attention_bits) {
  if (attention_bits == 8) {
    static const vitint::test::TempFile eight(vitint::test::tiny_model_bytes(8, 11));
    return eight;
  }
  static const vitint::test::TempFile four(vitint::test::tiny_model_bytes(4, 11, false));
  return four;
}

std::shared_ptr<const vitint::Model> load_path(const std::string& path, const std::string& isa) {
  vitint::LoadOptions lo;
  lo.isa = isa;
  std::shared_ptr<const vitint::Model> model;
  const vitint::Status st = vitint::Model::load(path, lo, &model);
  REQUIRE_MESSAGE(st.ok(), st.message());
  return model;
}

std::shared_ptr<const vitint::Model> load(int attention_bits, const std::string& isa) {
  return load_path(model_file(attention_bits).path, isa);
}

std::vector<uint8_t> images() {
  std::vector<uint8_t> all;
  for (const auto& img : vitint::test::synthetic_images(kImages, 224, 5)) all.insert(all.end(), img.begin(), img.end());
  return all;
}

std::unique_ptr<vitint::Session> session(const std::shared_ptr<const vitint::Model>& model, int threads,
                                         int max_batch) {
  vitint::SessionOptions so;
  so.threads = threads;
  so.max_batch = max_batch;
  std::unique_ptr<vitint::Session> s;
  const vitint::Status st = vitint::Session::create(model, so, &s);
  REQUIRE_MESSAGE(st.ok(), st.message());
  return s;
}

std::vector<float> run(vitint::Session& s, const uint8_t* imgs, int batch, int classes) {
  std::vector<float> logits(static_cast<size_t>(batch) * classes, -1.f);
  const vitint::Status st = s.run(imgs, batch, logits.data());
  REQUIRE_MESSAGE(st.ok(), st.message());
  return logits;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
}

}  // namespace

TEST_CASE("session threads: identical logits for any thread count, batch and kernel path") {
  const std::vector<uint8_t> imgs = images();
  const size_t image_bytes = imgs.size() / kImages;
  for (int bits : {8, 4}) {
    const auto best = load(bits, "");
    const int classes = best->info().num_classes;
    // Reference: best path, one thread, one image at a time.
    auto single = session(best, 1, 1);
    std::vector<float> want;
    for (int i = 0; i < kImages; ++i) {
      const auto l = run(*single, imgs.data() + i * image_bytes, 1, classes);
      want.insert(want.end(), l.begin(), l.end());
    }
    for (int threads : {1, 2, 3, 5}) {
      CAPTURE(bits);
      CAPTURE(threads);
      auto s = session(best, threads, kImages);
      CHECK(same_bits(run(*s, imgs.data(), kImages, classes), want));
      // Smaller batches on the same session, and again (state is not carried).
      const auto one = run(*s, imgs.data() + image_bytes, 1, classes);
      CHECK(same_bits(one, std::vector<float>(want.begin() + classes, want.begin() + 2 * classes)));
      CHECK(same_bits(run(*s, imgs.data(), kImages, classes), want));
    }
    for (vitint::kernels::Isa isa : vitint::test::supported_isas()) {
      const std::string name = vitint::kernels::isa_name(isa);
      CAPTURE(bits);
      CAPTURE(name);
      auto s = session(load(bits, name), 2, kImages);
      CHECK(same_bits(run(*s, imgs.data(), kImages, classes), want));
    }
  }
}

// Layers with weights of 1 MiB or more (DeiT-B's qkv, fc1, fc2) are split
// among threads by columns, the others by row bands: a random DeiT-B on the
// best path gives the same logits on 1 and 2 threads, batch 1 and 2.
TEST_CASE("session threads: DeiT-B-sized layers split by columns give the same logits") {
  const vitint::test::TempFile file(vitint::test::random_model_bytes("deit_base_patch16_224", 3, 1));
  const auto model = load_path(file.path, "");
  const int classes = model->info().num_classes;
  const std::vector<uint8_t> imgs = images();
  auto one = session(model, 1, 2);
  auto two = session(model, 2, 2);
  const auto want = run(*one, imgs.data(), 2, classes);
  CHECK(same_bits(run(*two, imgs.data(), 2, classes), want));
  CHECK(same_bits(run(*two, imgs.data(), 1, classes), std::vector<float>(want.begin(), want.begin() + classes)));
}

TEST_CASE("session threads: Session::run allocates nothing once warm") {
  const std::vector<uint8_t> imgs = images();
  for (int bits : {8, 4}) {
    const auto model = load(bits, "");
    const int classes = model->info().num_classes;
    for (int threads : {1, 2}) {
      CAPTURE(bits);
      CAPTURE(threads);
      auto s = session(model, threads, 2);
      std::vector<float> logits(static_cast<size_t>(2) * classes);
      // The first run at the largest batch sizes the kernels' thread-local
      // buffers; after it nothing may allocate.
      REQUIRE(s->run(imgs.data(), 2, logits.data()).ok());
      g_allocations = 0;
      g_counting = true;
      bool ok = true;
      for (int batch : {2, 1, 2, 1}) ok = ok && s->run(imgs.data(), batch, logits.data()).ok();
      g_counting = false;
      CHECK(ok);
      CHECK(g_allocations.load() == 0);
    }
  }
  // The counter itself works.
  g_allocations = 0;
  g_counting = true;
  auto* p = new std::vector<int>(100);
  g_counting = false;
  delete p;
  CHECK(g_allocations.load() >= 2);
}

TEST_CASE("session threads: invalid thread counts are refused") {
  const auto model = load(8, "");
  std::unique_ptr<vitint::Session> s;
  vitint::SessionOptions so;
  for (int bad : {0, -1, 257}) {
    so.threads = bad;
    const vitint::Status st = vitint::Session::create(model, so, &s);
    CHECK_FALSE(st.ok());
    CHECK(st.message().find("threads") != std::string::npos);
  }
}

// Where the OS refuses a thread (memory or process limits), create() fails
// with a Status; the threads already started must be stopped first (a
// joinable std::thread destroyed unjoined ends the process). In a child
// process whose address space leaves room for a few thread stacks only.
// Not under the sanitizers, whose shadow memory an address-space limit breaks.
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
TEST_CASE("session threads: a thread the OS refuses gives a Status, not an abort") {
  const auto model = load(8, "");
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    long pages = 0;
    if (FILE* f = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(f, "%ld", &pages) != 1) pages = 0;
      std::fclose(f);
    }
    const rlim_t limit = static_cast<rlim_t>(pages) * static_cast<rlim_t>(::sysconf(_SC_PAGESIZE)) + (rlim_t{512} << 20);
    const rlimit rl{limit, limit};
    if (pages == 0 || ::setrlimit(RLIMIT_AS, &rl) != 0) ::_exit(3);
    std::unique_ptr<vitint::Session> s;
    vitint::SessionOptions so;
    so.threads = 256;  // 8 MB of stack each
    const vitint::Status st = vitint::Session::create(model, so, &s);
    const bool refused = !st.ok() && st.message().rfind("Session::create: cannot start thread ", 0) == 0;
    if (!refused) std::fprintf(stderr, "child: %s\n", st.ok() ? "created all threads" : st.message().c_str());
    ::_exit(refused ? 0 : 1);
  }
  // Without the fix the child aborts, or hangs destroying condition variables
  // that its workers still wait on: 60 s at most, then it is killed.
  int status = 0;
  pid_t done = 0;
  for (int i = 0; i < 600 && (done = ::waitpid(pid, &status, WNOHANG)) == 0; ++i) ::usleep(100000);
  if (done == 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    FAIL("the child hung in Session::create");
  }
  REQUIRE(done == pid);
  REQUIRE_MESSAGE(WIFEXITED(status), "the child was killed by signal " << WTERMSIG(status));
  CHECK(WEXITSTATUS(status) == 0);  // 1: no such refusal (the child says why), 3: no limit set
}
#endif

TEST_CASE("session profile: every operator named and timed, logits unchanged, nothing allocated") {
  const std::vector<uint8_t> imgs = images();
  const auto model = load(8, "");
  const int classes = model->info().num_classes;
  const int depth = model->info().depth;
  auto plain = session(model, 2, 1);
  CHECK(plain->profile().empty());
  vitint::SessionOptions so;
  so.threads = 2;
  so.profile = true;
  std::unique_ptr<vitint::Session> s;
  REQUIRE(vitint::Session::create(model, so, &s).ok());
  const auto want = run(*plain, imgs.data(), 1, classes);
  CHECK(same_bits(run(*s, imgs.data(), 1, classes), want));
  std::vector<float> logits(static_cast<size_t>(classes));
  g_allocations = 0;
  g_counting = true;
  const bool ok = s->run(imgs.data(), 1, logits.data()).ok();
  g_counting = false;
  CHECK(ok);
  CHECK(g_allocations.load() == 0);
  const std::vector<vitint::OpProfile> prof = s->profile();
  // patch embedding, 7 operators per block, final norm, head
  REQUIRE(prof.size() == static_cast<size_t>(3 + 7 * depth));
  CHECK(prof.front().name == "patch_embed");
  CHECK(prof[1].name == "blocks.0.ln1");
  CHECK(prof[6].name == "blocks.0.fc1");
  CHECK(prof[6].kind == "linear + GELU");
  CHECK(prof.back().name == "head");
  std::set<std::string> names;
  for (const auto& p : prof) {
    CAPTURE(p.name);
    names.insert(p.name);
    CHECK(!p.kind.empty());
    CHECK(p.runs == 2);
    CHECK(p.total_ms >= 0.0);
  }
  CHECK(names.size() == prof.size());
}
