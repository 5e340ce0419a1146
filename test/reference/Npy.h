//===- Npy.h - Minimal .npy reader and writer -------------------*- C++ -*-===//
//
// A small, self-contained reader and writer of NumPy .npy files (format
// versions 1.0 and 2.0; 3.0 is read too), C order only, for the test oracle
// of moe-mlir. It depends on the C++ standard library alone.
//
// Element types: '<f4', '<f8', '<f2' (IEEE half), '<V2' (bfloat16: the upper
// 16 bits of an f32; '|V2' is accepted on reading), '<i4', '<i8'. Values are
// held as doubles (floating types) or int64 (integer types) in memory.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_REFERENCE_NPY_H
#define MOE_REFERENCE_NPY_H

#include <cstdint>
#include <string>
#include <vector>

namespace npy {

enum class DType { F32, F64, F16, BF16, I32, I64 };

/// Short name of an element type: "f32", "f64", "f16", "bf16", "i32", "i64".
const char *dtypeName(DType t);
/// The .npy descr string written for an element type, e.g. "<f4".
const char *dtypeDescr(DType t);
bool isIntDType(DType t);

/// An array in memory. Floating arrays use `f`, integer arrays use `i`;
/// both in C order. An empty shape is a 0-d array of one element.
struct Array {
  DType dtype = DType::F64;
  std::vector<int64_t> shape;
  std::vector<double> f;
  std::vector<int64_t> i;

  bool isInt() const { return isIntDType(dtype); }
  int64_t numElements() const;
};

/// Shape as text, e.g. "[17,32]" or "[]".
std::string shapeString(const std::vector<int64_t> &shape);

/// Writes `a` to `path`. Floating values are rounded to the element type
/// (round to nearest even). Returns false and sets `err` on failure.
bool write(const std::string &path, const Array &a, std::string *err);
/// Reads `path`. Returns false and sets `err` on failure.
bool read(const std::string &path, Array *a, std::string *err);

// Conversions, all round to nearest even.
uint16_t f32ToBf16(float x);
float bf16ToF32(uint16_t h);
uint16_t f64ToF16(double x);
double f16ToF64(uint16_t h);
/// Rounds a double to the nearest value of a floating element type (F64 is
/// the identity; BF16 rounds to f32 first). Integer types are rejected.
double roundTo(DType t, double x);

} // namespace npy

#endif // MOE_REFERENCE_NPY_H
