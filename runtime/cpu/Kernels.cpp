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

#if MOE_X86_KERNELS
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

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

/// AMX tiles with bf16, enabled by the OS, and this process allowed to use
/// the tile data state (Linux asks for it once, with arch_prctl).
static bool hasAmx() {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx))
    return false;
  bool tile = edx & (1u << 24), bf16 = edx & (1u << 22);
  if (!tile || !bf16 || !hasAvx512())
    return false;
#if defined(__linux__) && defined(SYS_arch_prctl)
  constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}
#else
// Only the portable kernels are built for this architecture.
static bool hasAvx512() { return false; }
static bool hasAvx2() { return false; }
static bool hasAmx() { return false; }
const Kernels *moe::rt::cpu::avx2Kernels() { return nullptr; }
const Kernels *moe::rt::cpu::avx512Kernels() { return nullptr; }
const Kernels *moe::rt::cpu::amxKernels() { return nullptr; }
#endif

static const Kernels &select() {
  const Kernels *avx512 = hasAvx512() ? avx512Kernels() : nullptr;
  const Kernels *amx = avx512 && hasAmx() ? amxKernels() : nullptr;
  const Kernels *avx2 = hasAvx2() ? avx2Kernels() : nullptr;
  if (const char *isa = std::getenv("MOE_CPU_ISA")) {
    if (!std::strcmp(isa, "generic"))
      return genericKernels();
    if (!std::strcmp(isa, "avx2") && avx2)
      return *avx2;
    if (!std::strcmp(isa, "avx512") && avx512)
      return *avx512;
    if (!std::strcmp(isa, "amx") && amx)
      return *amx;
    std::fprintf(stderr,
                 "moe runtime: MOE_CPU_ISA=%s is unknown or not supported by "
                 "this CPU; choosing by the CPU's features\n",
                 isa);
  }
  if (amx)
    return *amx;
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
