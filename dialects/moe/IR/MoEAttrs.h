//===- MoEAttrs.h - moe dialect attributes ----------------------*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef MOE_IR_MOEATTRS_H
#define MOE_IR_MOEATTRS_H

#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/bit.h"

#include <optional>

#include "moe/IR/MoEEnums.h.inc"

namespace mlir::moe {
/// A double as a structured-attribute parameter: hashable and comparable
/// bit for bit, and usable wherever a double is.
struct F64 {
  double value = 0.0;
  operator double() const { return value; }
  friend bool operator==(F64 lhs, F64 rhs) {
    return llvm::bit_cast<uint64_t>(lhs.value) ==
           llvm::bit_cast<uint64_t>(rhs.value);
  }
  friend bool operator!=(F64 lhs, F64 rhs) { return !(lhs == rhs); }
};
inline llvm::hash_code hash_value(F64 v) {
  return llvm::hash_value(llvm::bit_cast<uint64_t>(v.value));
}
} // namespace mlir::moe

namespace mlir::moe::detail {
/// Parameter parsers for the structured attributes (the generic field
/// parsers of MLIR cover neither floats nor keyword booleans).
FailureOr<F64> parseF64(AsmParser &parser);
FailureOr<std::optional<F64>> parseOptionalF64(AsmParser &parser);
FailureOr<bool> parseBool(AsmParser &parser);
/// Prints the shortest decimal form that parses back to the same double.
void printF64(AsmPrinter &printer, F64 value);

template <typename T>
FailureOr<std::optional<T>> parseAsOptional(AsmParser &parser) {
  FailureOr<T> value = FieldParser<T>::parse(parser);
  if (failed(value))
    return failure();
  return std::optional<T>(*value);
}
} // namespace mlir::moe::detail

#define GET_ATTRDEF_CLASSES
#include "moe/IR/MoEAttrs.h.inc"

#endif // MOE_IR_MOEATTRS_H
