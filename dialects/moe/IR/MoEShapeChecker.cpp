//===- MoEShapeChecker.cpp - named-dimension shape checks -----------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoEShapeChecker.h"

#include "llvm/ADT/StringExtras.h"

using namespace mlir;
using namespace mlir::moe;

int64_t mlir::moe::getDimOrDynamic(Type type, unsigned dim) {
  auto ranked = dyn_cast<RankedTensorType>(type);
  if (!ranked || dim >= ranked.getRank())
    return ShapedType::kDynamic;
  return ranked.getDimSize(dim);
}

Type mlir::moe::getElementTypeOrSelf(Type type) {
  if (auto shaped = dyn_cast<ShapedType>(type))
    return shaped.getElementType();
  return type;
}

void ShapeChecker::bindOne(StringRef what, unsigned dim, int64_t size,
                           StringRef sym) {
  if (hasFailed || sym.empty() || ShapedType::isDynamic(size))
    return;
  std::string here =
      (Twine("`") + what + "` dim " + Twine(dim) + " (" + sym + ")").str();
  // A literal symbol fixes the size.
  int64_t literal;
  if (!sym.getAsInteger(10, literal)) {
    if (size != literal) {
      op->emitOpError() << "expected " << here << " to be " << literal
                        << ", found " << size;
      hasFailed = true;
    }
    return;
  }
  // A symbol "c*name" binds name = size / c.
  int64_t factor = 1;
  StringRef name = sym;
  auto [lhs, rhs] = sym.split('*');
  if (!rhs.empty() && !lhs.getAsInteger(10, factor))
    name = rhs;
  if (size % factor != 0) {
    op->emitOpError() << "expected " << here << " to be a multiple of "
                      << factor << ", found " << size;
    hasFailed = true;
    return;
  }
  int64_t value = size / factor;
  auto it = bindings.find(name);
  if (it == bindings.end()) {
    bindings[name] = Binding{value, here};
    return;
  }
  if (it->second.size == value)
    return;
  op->emitOpError() << "expected " << here << " to be "
                    << it->second.size * factor << " (" << name << " = "
                    << it->second.size << " from " << it->second.source
                    << "), found " << size;
  hasFailed = true;
}

ShapeChecker &ShapeChecker::dims(StringRef what, Type type,
                                 ArrayRef<StringRef> syms) {
  if (hasFailed)
    return *this;
  auto ranked = dyn_cast<RankedTensorType>(type);
  if (!ranked || ranked.getRank() != static_cast<int64_t>(syms.size())) {
    // Rank and type are checked by the op's type constraints first; this is
    // only reached for types those constraints admit.
    op->emitOpError() << "expected `" << what << "` to be a rank-"
                      << syms.size() << " tensor ["
                      << llvm::join(syms, ", ") << "], found " << type;
    hasFailed = true;
    return *this;
  }
  for (auto [dim, sym] : llvm::enumerate(syms))
    bindOne(what, dim, ranked.getDimSize(dim), sym);
  return *this;
}

ShapeChecker &ShapeChecker::require(StringRef sym, int64_t value,
                                    StringRef why) {
  if (hasFailed)
    return *this;
  auto it = bindings.find(sym);
  if (it == bindings.end() || it->second.size == value)
    return *this;
  op->emitOpError() << "expected " << sym << " = " << value << " (" << why
                    << "), found " << sym << " = " << it->second.size
                    << " from " << it->second.source;
  hasFailed = true;
  return *this;
}

int64_t ShapeChecker::get(StringRef sym) const {
  auto it = bindings.find(sym);
  return it == bindings.end() ? ShapedType::kDynamic : it->second.size;
}

ShapeChecker &ShapeChecker::sameElementType(StringRef what, Type type,
                                            StringRef expectedFrom,
                                            Type expected) {
  if (hasFailed)
    return *this;
  Type found = getElementTypeOrSelf(type);
  Type want = getElementTypeOrSelf(expected);
  if (found != want) {
    op->emitOpError() << "expected `" << what << "` to have element type "
                      << want << " (that of `" << expectedFrom
                      << "`), found " << found;
    hasFailed = true;
  }
  return *this;
}
