#include "engine/src/thread_pool.h"

#include <chrono>
#include <string>
#include <exception>

#include "vitint/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace vitint::engine {
namespace {

using Clock = std::chrono::steady_clock;

// Waiting threads (workers between jobs, the caller for the workers) first
// spin on pause instructions, then keep polling with a yield() between
// polls, and only then block on a condition variable. A futex wake-up
// costs tens of microseconds on a VM (as much as a LayerNorm share), and a
// run has ~100 operators: a worker that blocks between two of them, or a
// caller that blocks on a worker a few microseconds behind, made a second
// thread gain almost nothing. The yielding polls hand the core to any other
// runnable thread (on an oversubscribed machine, often the partner this one
// waits for) instead of sitting on it, which is what made long pause loops
// slow there. Time, not a pause count: a pause takes 10 ns on some cores
// and 40 on others.
constexpr auto kPauseSpin = std::chrono::microseconds(4);
constexpr auto kYieldSpin = std::chrono::microseconds(200);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// Polls ready() as described above; false when it is still not ready at the
// end of the yielding phase (the caller then blocks).
template <class Ready>
bool spin_until(Ready ready) {
  const Clock::time_point start = Clock::now();
  for (int i = 1;; ++i) {
    if (ready()) return true;
    cpu_relax();
    if (i % 16 == 0 && Clock::now() - start > kPauseSpin) break;
  }
  for (;;) {
    if (ready()) return true;
    if (Clock::now() - start > kYieldSpin) return ready();
    std::this_thread::yield();
  }
}

}  // namespace

ThreadPool::ThreadPool(int threads) : threads_(threads < 1 ? 1 : threads) {
  workers_.reserve(static_cast<size_t>(threads_ - 1));
  for (int t = 1; t < threads_; ++t) {
    try {
      workers_.emplace_back([this, t] { worker_loop(t); });
    } catch (const std::exception& e) {  // std::system_error, or bad_alloc for the thread's state
      // The destructor does not run for a constructor that throws, and a
      // joinable std::thread destroyed unjoined ends the process.
      stop_workers();
      throw Error("cannot start thread " + std::to_string(t + 1) + " of " + std::to_string(threads_) + ": " +
                  e.what());
    }
  }
}

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::run_share(int thread) {
  for (int task = thread; task < tasks_; task += threads_) {
    try {
      fn_(ctx_, task, thread);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_) error_ = std::current_exception();
    }
  }
}

void ThreadPool::dispatch(int tasks, TaskFn fn, void* ctx) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = fn;
    ctx_ = ctx;
    tasks_ = tasks;
    pending_.store(threads_ - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  run_share(0);
  auto all_done = [this] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!spin_until(all_done)) {
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, all_done);
  }
  std::exception_ptr error;
  {
    std::lock_guard<std::mutex> lock(mu_);
    error.swap(error_);
  }
  if (error) std::rethrow_exception(error);
}

void ThreadPool::worker_loop(int thread) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t gen = seen;
    spin_until([&] {
      gen = generation_.load(std::memory_order_acquire);
      return gen != seen;
    });
    if (gen == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_ || generation_.load(std::memory_order_acquire) != seen; });
      if (stop_) return;
      gen = generation_.load(std::memory_order_acquire);
    }
    seen = gen;
    run_share(thread);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu_);
      done_.notify_one();
    }
  }
}

}  // namespace vitint::engine
