//===- moe-import.cpp - Hugging Face MoE checkpoints to moe IR ------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
//   moe-import --model DIR [--layers LIST] [-o OUT.mlir]
//
// Reads DIR/config.json and the safetensors weights of DIR and writes a
// module with one public function `moe_layer_L` per sparse MoE layer L
// (LIST: comma-separated layer indices; default: every sparse layer). The
// weights stay in the checkpoint: the functions name them with moe.weight
// ops, and the module's `moe.checkpoint` attribute holds DIR.
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoEDialect.h"
#include "moe/Import/Importer.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
namespace cl = llvm::cl;

static cl::OptionCategory category("moe-import options");

static cl::opt<std::string>
    modelDir("model",
             cl::desc("Model directory: config.json and model.safetensors, or "
                      "shards with model.safetensors.index.json"),
             cl::Required, cl::cat(category));
static cl::opt<std::string>
    layerList("layers",
              cl::desc("Comma-separated indices of the sparse layers to import "
                       "(default: all)"),
              cl::cat(category));
static cl::opt<std::string> outputFile("o", cl::desc("Output file"),
                                       cl::value_desc("OUT.mlir"),
                                       cl::init("-"), cl::cat(category));
static cl::opt<std::string> dtypeName(
    "dtype",
    cl::desc("Element type of the layers: f32, f16 or bf16 (default: the "
             "checkpoint's). Weights stored in another dtype are converted "
             "when the model is loaded (moe.weight {stored})"),
    cl::value_desc("TYPE"), cl::cat(category));
static cl::opt<bool> weightsAsArguments(
    "weights-as-arguments",
    cl::desc("Pass the weights as function arguments after the hidden "
             "states, in moe.layer operand order, instead of moe.weight ops "
             "(for testing)"),
    cl::cat(category));

static int fail(const llvm::Twine &message) {
  llvm::errs() << "moe-import: error: " << message << "\n";
  return 1;
}

static int fail(llvm::Error error) {
  std::string message = llvm::toString(std::move(error));
  return fail(message);
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv,
      "moe-import: Hugging Face MoE checkpoints to moe dialect functions\n");

  moe::import::ImportOptions options;
  options.weightsAsArguments = weightsAsArguments;
  if (dtypeName.getNumOccurrences()) {
    std::optional<moe::checkpoint::DType> dtype =
        moe::checkpoint::parseComputeDType(llvm::StringRef(dtypeName));
    if (!dtype)
      return fail("--dtype: expected f32, f16 or bf16, found \"" + dtypeName +
                  "\"");
    options.dtype = dtype;
  }
  if (layerList.getNumOccurrences()) {
    auto layers = moe::import::parseLayerList(layerList);
    if (!layers)
      return fail(layers.takeError());
    options.layers = std::move(*layers);
  }

  DialectRegistry registry;
  registry.insert<moe::MoEDialect, func::FuncDialect>();
  MLIRContext context(registry);
  auto result = moe::import::importModel(context, modelDir, options);
  if (!result)
    return fail(result.takeError());
  for (const std::string &warning : result->warnings)
    llvm::errs() << "moe-import: warning: " << warning << "\n";

  std::string error;
  std::unique_ptr<llvm::ToolOutputFile> output =
      openOutputFile(outputFile, &error);
  if (!output)
    return fail(error);
  result->module->print(output->os(), OpPrintingFlags().printNameLocAsPrefix());
  output->os() << "\n";
  output->os().flush();
  if (output->os().has_error())
    return fail(outputFile +
                ": write failed: " + output->os().error().message());
  output->keep();
  return 0;
}
