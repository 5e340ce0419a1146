//===- Npy.h - NumPy .npy arrays --------------------------------*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Reads and writes the arrays the tools exchange with users: .npy format
// 1.0 to 3.0, little-endian, C order, with the dtypes f32 ('<f4'), f64
// ('<f8'), f16 ('<f2'), bf16 ('<V2', the upper half of an f32), i32, i64,
// and bool. Malformed files give an error naming the file and the problem.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_SUPPORT_NPY_H
#define MOE_SUPPORT_NPY_H

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mlir::moe::npy {

enum class DType { F32, F64, F16, BF16, I32, I64, Bool };

/// The .npy descriptor of `type` ('<f4', '<V2', ...).
llvm::StringRef descriptor(DType type);
/// A short name for messages (`float32`, `bfloat16`, ...).
llvm::StringRef name(DType type);
size_t elementSize(DType type);

/// An array in host memory, 64-byte aligned, C order.
class Array {
public:
  Array(DType type, llvm::ArrayRef<int64_t> shape);

  DType type() const { return dtype; }
  llvm::ArrayRef<int64_t> shape() const { return dims; }
  int64_t numElements() const;
  size_t numBytes() const { return numElements() * elementSize(dtype); }
  void *data() { return storage.get(); }
  const void *data() const { return storage.get(); }

  /// Element i as a double (any dtype).
  double getAsDouble(int64_t i) const;
  /// Sets element i from a double, rounding to the dtype (nearest even).
  void setFromDouble(int64_t i, double value);

private:
  struct Free {
    void operator()(void *p) const;
  };
  DType dtype;
  llvm::SmallVector<int64_t> dims;
  std::unique_ptr<void, Free> storage;
};

llvm::Expected<Array> read(llvm::StringRef path);
llvm::Error write(llvm::StringRef path, const Array &array);

/// Conversions between f32 and the 16-bit float formats (round to nearest
/// even; NaN stays NaN).
uint16_t floatToBF16(float value);
float bf16ToFloat(uint16_t bits);
uint16_t floatToF16(float value);
float f16ToFloat(uint16_t bits);

/// FP8 E4M3 as in `float8_e4m3fn` (OCP FP8): 1 sign, 4 exponent (bias 7)
/// and 3 mantissa bits, subnormals, no infinities, NaN 0x7f and 0xff;
/// the largest finite magnitude is 448. `floatToF8E4M3` rounds to nearest
/// even and saturates finite values and infinities to +-448 (what
/// quantizers store after clamping); NaN stays NaN.
float f8E4M3ToFloat(uint8_t bits);
uint8_t floatToF8E4M3(float value);

} // namespace mlir::moe::npy

#endif // MOE_SUPPORT_NPY_H
