//===- Kernels.cpp - choose the micro-kernels for this CPU ----------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

using namespace moe::rt::cpu;

#if MOE_X86_KERNELS
static bool hasAvx512() {
  return __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bf16");
}

static bool hasAvx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
// Only the portable kernels are built for this architecture.
static bool hasAvx512() { return false; }
static bool hasAvx2() { return false; }
const Kernels *moe::rt::cpu::avx2Kernels() { return nullptr; }
const Kernels *moe::rt::cpu::avx512Kernels() { return nullptr; }
#endif

static const Kernels &select() {
  const Kernels *avx512 = hasAvx512() ? avx512Kernels() : nullptr;
  const Kernels *avx2 = hasAvx2() ? avx2Kernels() : nullptr;
  if (const char *isa = std::getenv("MOE_CPU_ISA")) {
    if (!std::strcmp(isa, "generic"))
      return genericKernels();
    if (!std::strcmp(isa, "avx2") && avx2)
      return *avx2;
    if (!std::strcmp(isa, "avx512") && avx512)
      return *avx512;
    std::fprintf(stderr,
                 "moe runtime: MOE_CPU_ISA=%s is unknown or not supported by "
                 "this CPU; choosing by the CPU's features\n",
                 isa);
  }
  if (avx512)
    return *avx512;
  if (avx2)
    return *avx2;
  return genericKernels();
}

const Kernels &moe::rt::cpu::kernels() {
  static const Kernels &chosen = select();
  return chosen;
}
