//===- moe-checkpoint-info.cpp - list the tensors of a checkpoint ---------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
//   moe-checkpoint-info PATH [--show-file] [--value-stats]
//
// Opens a .safetensors file or a model directory with the checkpoint reader
// and prints one line per tensor, sorted by name: `NAME DTYPE [shape]`,
// then with --show-file the file holding it, and with --value-stats the mean
// absolute value and the number of zeros. A corrupt checkpoint gives the
// reader's error and exit status 1.
//
//===----------------------------------------------------------------------===//

#include "moe/Checkpoint/SafeTensors.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>

using namespace mlir::moe;
namespace cl = llvm::cl;

static cl::OptionCategory category("moe-checkpoint-info options");

static cl::opt<std::string> path(cl::Positional,
                                 cl::desc("<file.safetensors | model dir>"),
                                 cl::Required, cl::cat(category));
static cl::opt<bool> showFile("show-file",
                              cl::desc("Print the file holding each tensor"),
                              cl::cat(category));
// Not "stats": LLVM's own --stats would clash.
static cl::opt<bool>
    valueStats("value-stats",
               cl::desc("Print mean |x| and the count of zeros of each tensor"),
               cl::cat(category));

static void printStats(const checkpoint::TensorInfo &tensor,
                       llvm::raw_ostream &os) {
  if (!tensor.dtype) {
    os << " (unsupported dtype)";
    return;
  }
  double sum = 0;
  int64_t zeros = 0, count = tensor.numElements();
  for (int64_t i = 0; i < count; ++i) {
    float value = checkpoint::getAsF32(tensor, i);
    sum += std::fabs(value);
    zeros += value == 0.0f;
  }
  os << llvm::format(" mean_abs=%.6g", count ? sum / count : 0.0)
     << " zeros=" << zeros;
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(argc, argv,
                              "list the tensors of a safetensors checkpoint\n");

  auto ckpt = checkpoint::Checkpoint::open(path);
  if (!ckpt) {
    llvm::errs() << "moe-checkpoint-info: error: "
                 << llvm::toString(ckpt.takeError()) << "\n";
    return 1;
  }
  llvm::raw_ostream &os = llvm::outs();
  for (const checkpoint::TensorInfo &tensor : (*ckpt)->tensors()) {
    os << tensor.name << " " << tensor.dtypeName << " ["
       << llvm::join(
              llvm::map_range(tensor.shape,
                              [](int64_t d) { return std::to_string(d); }),
              ", ")
       << "]";
    if (showFile)
      os << " " << llvm::sys::path::filename(tensor.file);
    if (valueStats)
      printStats(tensor, os);
    os << "\n";
  }
  return 0;
}
