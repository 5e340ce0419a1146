//===- ThreadPool.cpp - the runtime's worker threads ----------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "ThreadPool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

using namespace moe::rt::cpu;

namespace {

int defaultThreads() {
  if (const char *env = std::getenv("MOE_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0)
      return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

/// Workers sleep between loops; a loop publishes its body and a counter of
/// items, and every participant takes items until none are left.
class Pool {
public:
  static Pool &get() {
    static Pool pool;
    return pool;
  }

  int threads() const { return wanted.load(); }
  void setThreads(int n) { wanted.store(n > 0 ? n : defaultThreads()); }

  void run(int64_t count, const Body &body) {
    int participants =
        static_cast<int>(std::min<int64_t>(wanted.load(), count));
    if (participants <= 1 || inLoop) {
      for (int64_t i = 0; i < count; ++i)
        body(i, i + 1 < count ? i + 1 : -1);
      return;
    }
    std::lock_guard<std::mutex> exclusive(runMutex);
    ensureWorkers(participants - 1);
    {
      std::lock_guard<std::mutex> lock(mutex);
      task = &body;
      total = count;
      next.store(0);
      helpers = participants - 1;
      active = helpers;
      ++generation;
    }
    wake.notify_all();
    work();
    std::unique_lock<std::mutex> lock(mutex);
    done.wait(lock, [&] { return active == 0; });
    task = nullptr;
  }

private:
  Pool() : wanted(defaultThreads()) {}

  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stopping = true;
    }
    wake.notify_all();
    for (std::thread &t : workers)
      t.join();
  }

  void ensureWorkers(int n) {
    while (static_cast<int>(workers.size()) < n) {
      int index = static_cast<int>(workers.size());
      workers.emplace_back([this, index] { workerLoop(index); });
    }
  }

  /// Claims the next index before running the current one, so that the
  /// body knows what this thread does next.
  void work() {
    inLoop = true;
    for (int64_t i = next.fetch_add(1); i < total;) {
      int64_t following = next.fetch_add(1);
      (*task)(i, following < total ? following : -1);
      i = following;
    }
    inLoop = false;
  }

  void workerLoop(int index) {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex);
        wake.wait(lock, [&] {
          return stopping || (generation != seen && index < helpers);
        });
        if (stopping)
          return;
        seen = generation;
      }
      work();
      std::lock_guard<std::mutex> lock(mutex);
      if (--active == 0)
        done.notify_one();
    }
  }

  std::atomic<int> wanted;
  std::mutex runMutex;
  std::mutex mutex;
  std::condition_variable wake, done;
  std::vector<std::thread> workers;
  const Body *task = nullptr;
  int64_t total = 0;
  std::atomic<int64_t> next{0};
  int helpers = 0, active = 0;
  uint64_t generation = 0;
  bool stopping = false;
  static thread_local bool inLoop;
};

thread_local bool Pool::inLoop = false;

} // namespace

void moe::rt::cpu::parallelFor(int64_t count,
                               const std::function<void(int64_t)> &body) {
  Pool::get().run(count, [&](int64_t i, int64_t) { body(i); });
}

void moe::rt::cpu::parallelForAhead(int64_t count, const Body &body) {
  Pool::get().run(count, body);
}

int moe::rt::cpu::numThreads() { return Pool::get().threads(); }

void moe::rt::cpu::setNumThreads(int threads) {
  Pool::get().setThreads(threads);
}
