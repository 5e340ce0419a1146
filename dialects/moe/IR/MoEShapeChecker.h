//===- MoEShapeChecker.h - named-dimension shape checks ---------*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// One mechanism verifies the shapes of every moe op: each dimension of each
// operand and result is bound to a named size (T, d, E, f, ...), and the
// first disagreement is reported naming both places and both sizes.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_IR_MOESHAPECHECKER_H
#define MOE_IR_MOESHAPECHECKER_H

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Operation.h"
#include "llvm/ADT/StringMap.h"

#include <string>

namespace mlir::moe {

class ShapeChecker {
public:
  explicit ShapeChecker(Operation *op) : op(op) {}

  /// Binds the dimensions of `type` (a ranked tensor type of the value named
  /// `what`) to `syms`, in order. A symbol may carry an integer factor
  /// (`"2*f"`); an empty symbol leaves that dimension free. Dynamic sizes
  /// match anything.
  ShapeChecker &dims(StringRef what, Type type, ArrayRef<StringRef> syms);

  /// Requires the size named `sym` to be `value` when it is known, because
  /// of `why` (for example "k of the routing").
  ShapeChecker &require(StringRef sym, int64_t value, StringRef why);

  /// The size bound to `sym`, or ShapedType::kDynamic.
  int64_t get(StringRef sym) const;

  /// Requires the element type of `what` to be `expected`, taken from
  /// `expectedFrom`.
  ShapeChecker &sameElementType(StringRef what, Type type,
                                StringRef expectedFrom, Type expected);

  LogicalResult result() const { return failure(hasFailed); }

private:
  void bindOne(StringRef what, unsigned dim, int64_t size, StringRef sym);

  struct Binding {
    int64_t size;
    std::string source;
  };
  Operation *op;
  llvm::StringMap<Binding> bindings;
  bool hasFailed = false;
};

/// Size of dimension `dim` of `type`, or ShapedType::kDynamic when `type` is
/// not a ranked tensor of sufficient rank. Safe on unverified IR.
int64_t getDimOrDynamic(Type type, unsigned dim);

/// Element type of a shaped `type`, or `type` itself.
Type getElementTypeOrSelf(Type type);

} // namespace mlir::moe

#endif // MOE_IR_MOESHAPECHECKER_H
