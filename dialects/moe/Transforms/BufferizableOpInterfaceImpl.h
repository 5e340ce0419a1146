//===- BufferizableOpInterfaceImpl.h - bufferization of moe ops -*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TRANSFORMS_BUFFERIZABLEOPINTERFACEIMPL_H
#define MOE_TRANSFORMS_BUFFERIZABLEOPINTERFACEIMPL_H

namespace mlir {
class DialectRegistry;
namespace moe {

/// Attaches One-Shot Bufferize's interface to moe.ukernel (destination
/// style: outputs are written in place of their buffers).
void registerBufferizableOpInterfaceExternalModels(DialectRegistry &registry);

} // namespace moe
} // namespace mlir

#endif // MOE_TRANSFORMS_BUFFERIZABLEOPINTERFACEIMPL_H
