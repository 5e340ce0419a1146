//===- EntryPoints.h - the runtime functions generated code calls -*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The names and addresses of the runtime's entry points, for a JIT that
// resolves the symbols of generated code against this process.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_ENTRYPOINTS_H
#define MOE_RUNTIME_ENTRYPOINTS_H

#include <cstddef>
#include <vector>

namespace moe::rt {

struct Symbol {
  const char *name;
  void *address;
};

/// Every entry point: weights, statistics and the CPU kernels.
const std::vector<Symbol> &entryPoints();

namespace cpu {
/// The CPU kernels alone (runtime/cpu/UKernels.cpp, which does not depend
/// on LLVM: it is also built alone as libmoe_cpu_kernels.so).
const std::vector<Symbol> &ukernelEntryPoints();
} // namespace cpu

} // namespace moe::rt

#endif // MOE_RUNTIME_ENTRYPOINTS_H
