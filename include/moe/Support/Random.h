//===- Random.h - A fixed-seed random generator -----------------*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// splitmix64 with Box-Muller: the same numbers on every platform and
// compiler, for generated checkpoints, inputs and test data. Header-only and
// standard C++ only, so that programs outside the compiler can use it.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_SUPPORT_RANDOM_H
#define MOE_SUPPORT_RANDOM_H

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace mlir::moe {

class Random {
public:
  explicit Random(uint64_t seed) : state(seed) {}

  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, 1), 53 random bits.
  double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }
  /// Standard normal.
  double normal() {
    double u = std::max(uniform(), 1e-300), v = uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(6.283185307179586 * v);
  }

private:
  uint64_t state;
};

} // namespace mlir::moe

#endif // MOE_SUPPORT_RANDOM_H
