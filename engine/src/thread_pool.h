// A fixed team of threads that splits one operator's work at a time. The
// calling thread is member 0, so a pool of `threads` starts threads - 1
// workers. run() allocates nothing: the task function is passed by pointer
// and the assignment of tasks to threads is static (task i runs on thread
// i % threads), so a given call always hands each thread the same work —
// thread-local buffers of the kernels stop growing after the first run.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace vitint::engine {

class ThreadPool {
 public:
  // threads >= 1 (1: no workers, run() calls the function inline). Throws
  // vitint::Error, with no thread left running, if one cannot be started.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return threads_; }

  // Calls fn(task, thread) for every task in [0, tasks) and returns when all
  // are done; thread is in [0, threads()) and no two concurrent calls share
  // one. An exception thrown by fn is rethrown here (the first one; the
  // other tasks still run). Not reentrant: fn must not call run().
  template <class F>
  void run(int tasks, F&& fn) {
    if (tasks <= 0) return;
    if (threads_ == 1 || tasks == 1) {
      for (int t = 0; t < tasks; ++t) fn(t, 0);
      return;
    }
    using Fn = std::remove_reference_t<F>;
    dispatch(tasks, [](void* f, int task, int thread) { (*static_cast<Fn*>(f))(task, thread); },
             const_cast<void*>(static_cast<const void*>(&fn)));
  }

 private:
  using TaskFn = void (*)(void*, int, int);
  void dispatch(int tasks, TaskFn fn, void* ctx);
  void worker_loop(int thread);
  void run_share(int thread);
  void stop_workers();  // ends and joins the workers started so far

  int threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;  // a new job or stop
  std::condition_variable done_;  // the last worker finished its share
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};  // workers still busy with the current job
  bool stop_ = false;            // guarded by mu_
  // The current job; written by dispatch() while no worker reads it.
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int tasks_ = 0;
  std::exception_ptr error_;  // guarded by mu_
};

}  // namespace vitint::engine
