//===- ThreadPool.h - the runtime's worker threads --------------*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// A fixed set of worker threads that run parallel loops over work items.
// Items are handed out dynamically, but each item's arithmetic is the same
// whatever thread runs it, so results do not depend on the thread count.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_CPU_THREADPOOL_H
#define MOE_RUNTIME_CPU_THREADPOOL_H

#include <cstdint>
#include <functional>

namespace moe::rt::cpu {

/// Runs `body(item)` for item in [0, count), on up to numThreads() threads
/// (the caller included). Nested calls run serially.
void parallelFor(int64_t count, const std::function<void(int64_t)> &body);

/// body(i, next) for i < count, where `next` is the index the same thread
/// runs after i (or -1): a body can prefetch its next item's data.
using Body = std::function<void(int64_t i, int64_t next)>;
void parallelForAhead(int64_t count, const Body &body);

/// The number of threads parallel loops use: MOE_NUM_THREADS if set, else
/// the hardware's. setNumThreads(0) restores the default.
int numThreads();
void setNumThreads(int threads);

} // namespace moe::rt::cpu

#endif // MOE_RUNTIME_CPU_THREADPOOL_H
