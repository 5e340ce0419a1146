//===- Runner.cpp - JIT-compile and call moe functions --------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "moe/Runner/Runner.h"

#include "moe/Analysis/LayerCost.h"

#include "moe/Conversion/Passes.h"
#include "moe/IR/MoEOps.h"
#include "moe/Pipelines/Pipelines.h"
#include "moe/Transforms/Passes.h"

#include "Manifest.h"
#include "Model.h"

#include "moe/InitMoE.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "llvm/ExecutionEngine/Orc/Mangling.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/SmallPtrSet.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>
#include <cstring>

using namespace mlir;
using namespace mlir::moe;

static llvm::Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

std::optional<npy::DType> mlir::moe::dtypeFor(Type type) {
  if (type.isF32())
    return npy::DType::F32;
  if (type.isF64())
    return npy::DType::F64;
  if (type.isF16())
    return npy::DType::F16;
  if (type.isBF16())
    return npy::DType::BF16;
  if (type.isInteger(32))
    return npy::DType::I32;
  if (type.isInteger(64) || type.isIndex())
    return npy::DType::I64;
  if (type.isInteger(1))
    return npy::DType::Bool;
  return std::nullopt;
}

std::string ValueSpec::str() const {
  std::string s;
  llvm::raw_string_ostream os(s);
  if (isScalar) {
    os << elementType;
    return s;
  }
  os << "tensor<";
  for (int64_t d : shape)
    os << (ShapedType::isDynamic(d) ? std::string("?") : std::to_string(d))
       << "x";
  os << elementType << ">";
  return s;
}

static llvm::Expected<ValueSpec> specFor(Type type, StringRef what) {
  ValueSpec spec;
  if (auto tensor = dyn_cast<RankedTensorType>(type)) {
    spec.elementType = tensor.getElementType();
    spec.shape.assign(tensor.getShape().begin(), tensor.getShape().end());
  } else if (type.isIntOrIndexOrFloat()) {
    spec.elementType = type;
    spec.isScalar = true;
  } else {
    std::string s;
    llvm::raw_string_ostream(s) << type;
    return makeError(what + " has type " + s +
                     "; moe-run passes ranked tensors and scalars");
  }
  std::optional<npy::DType> dtype = dtypeFor(spec.elementType);
  if (!dtype) {
    std::string s;
    llvm::raw_string_ostream(s) << spec.elementType;
    return makeError(what + " has element type " + s +
                     ", which .npy files cannot hold here");
  }
  spec.dtype = *dtype;
  if (spec.isScalar && what.starts_with("result"))
    return makeError(what + " is a scalar; moe-run returns tensors only "
                            "(return a 0-d tensor)");
  return spec;
}

CompiledFunction::~CompiledFunction() = default;

llvm::Expected<std::unique_ptr<CompiledFunction>>
CompiledFunction::compile(ModuleOp module, StringRef entry,
                          const RunnerOptions &options) {
  auto func = module.lookupSymbol<func::FuncOp>(entry);
  if (!func || func.isExternal())
    return makeError("no function @" + entry + " with a body in the module");

  std::unique_ptr<CompiledFunction> compiled(new CompiledFunction());
  compiled->entryName = entry.str();
  FunctionType type = func.getFunctionType();
  for (auto [i, t] : llvm::enumerate(type.getInputs())) {
    auto spec = specFor(t, ("argument " + llvm::Twine(i)).str());
    if (!spec)
      return spec.takeError();
    compiled->args.push_back(*spec);
  }
  for (auto [i, t] : llvm::enumerate(type.getResults())) {
    auto spec = specFor(t, ("result " + llvm::Twine(i)).str());
    if (!spec)
      return spec.takeError();
    compiled->resultSpecs.push_back(*spec);
  }

  markArgumentsReadOnly(func);
  if (failed(formLayers(module)))
    return makeError("moe-form-layers failed (see the diagnostics above)");

  PassManager pm(module.getContext(), ModuleOp::getOperationName());
  bool cuda = !options.cudaRuntime.empty();
  // The kernel library's limit on the tokens of a call, checked before the
  // call where a layer takes an argument as its input.
  if (cuda)
    func.walk([&](LayerOp layer) {
      auto arg = dyn_cast<BlockArgument>(layer.getInput());
      if (!arg || arg.getOwner()->getParentOp() != func)
        return;
      int64_t limit = cudaMaxTokens(layer);
      auto [it, inserted] =
          compiled->tokenLimits.try_emplace(arg.getArgNumber(), limit);
      if (!inserted)
        it->second = std::min(it->second, limit);
    });
  if (cuda) {
    // PTX, compiled by the driver for the GPU it runs on.
    CUDAPipelineOptions pipelineOptions;
    pipelineOptions.chip = options.cudaChip;
    pipelineOptions.format = CUDAPipelineOptions::Format::Isa;
    pipelineOptions.stats = options.stats;
    pipelineOptions.statsCoactivation = options.coactivation;
    pipelineOptions.knobs = options.knobs;
    pipelineOptions.narrowToBF16 = options.narrowToBF16;
    pipelineOptions.emulate = options.cudaEmulate;
    buildMoECUDAPipeline(pm, pipelineOptions);
  } else {
    CPUPipelineOptions pipelineOptions;
    pipelineOptions.stats = options.stats;
    pipelineOptions.statsCoactivation = options.coactivation;
    pipelineOptions.knobs = options.knobs;
    pipelineOptions.narrowToBF16 = options.narrowToBF16;
    pipelineOptions.reference = options.reference;
    buildMoECPUPipeline(pm, pipelineOptions);
  }
  if (failed(pm.run(module)))
    return makeError("compilation of @" + entry + " failed (see the "
                     "diagnostics above)");

  // Weights and statistics live in the runtime.
  ::moe::rt::Manifest manifest;
  if (llvm::Error error = collectRuntimeTables(module, manifest))
    return std::move(error);
  if (!manifest.weights.empty() || !manifest.stats.empty() ||
      !manifest.knobs.empty()) {
    auto model = ::moe::rt::Model::load(std::move(manifest), options.checkpoint);
    if (!model)
      return model.takeError();
    compiled->runtimeModel = std::move(*model);
  }

  auto transformer = makeOptimizingTransformer(options.optLevel,
                                               /*sizeLevel=*/0,
                                               /*targetMachine=*/nullptr);
  ExecutionEngineOptions engineOptions;
  engineOptions.transformer = transformer;
  engineOptions.jitCodeGenOptLevel =
      static_cast<llvm::CodeGenOptLevel>(options.optLevel);
  SmallVector<StringRef, 1> sharedLibs;
  if (cuda)
    sharedLibs.push_back(options.cudaRuntime);
  engineOptions.sharedLibPaths = sharedLibs;
  auto engine = ExecutionEngine::create(module, engineOptions);
  if (!engine)
    return engine.takeError();
  compiled->engine = std::move(*engine);
  compiled->engine->registerSymbols(
      [](llvm::orc::MangleAndInterner interner) {
        llvm::orc::SymbolMap symbols;
        for (const ::moe::rt::Symbol &symbol : ::moe::rt::entryPoints())
          symbols[interner(symbol.name)] = {
              llvm::orc::ExecutorAddr::fromPtr(symbol.address),
              llvm::JITSymbolFlags::Exported};
        return symbols;
      });
  // Global constructors load the GPU binaries.
  if (cuda)
    compiled->engine->initialize();
  auto packed = compiled->engine->lookupPacked(entry);
  if (!packed)
    return packed.takeError();
  compiled->packed = *packed;
  return compiled;
}

static std::string shapeString(ArrayRef<int64_t> shape) {
  std::string s = "(";
  for (auto [i, d] : llvm::enumerate(shape))
    s += (i ? ", " : "") +
         (ShapedType::isDynamic(d) ? std::string("?") : std::to_string(d));
  if (shape.size() == 1)
    s += ",";
  return s + ")";
}

llvm::Error
CompiledFunction::checkInputs(ArrayRef<const npy::Array *> inputs,
                              ArrayRef<std::string> inputNames) const {
  if (inputs.size() != args.size())
    return makeError("@" + entryName + " takes " + llvm::Twine(args.size()) +
                     " arguments, got " + llvm::Twine(inputs.size()) +
                     " inputs");
  for (auto [i, input] : llvm::enumerate(inputs)) {
    const ValueSpec &spec = args[i];
    std::string where = ("input " + llvm::Twine(i) + " (" + inputNames[i] +
                         ") for argument " + llvm::Twine(i) + " of type " +
                         spec.str())
                            .str();
    if (input->type() != spec.dtype)
      return makeError(where + ": dtype is " + npy::name(input->type()) +
                       ", expected " + npy::name(spec.dtype));
    if (spec.isScalar) {
      if (!input->shape().empty())
        return makeError(where + ": shape is " +
                         shapeString(input->shape()) +
                         ", expected a 0-d array ()");
      continue;
    }
    bool ok = input->shape().size() == spec.shape.size();
    for (size_t d = 0; ok && d < spec.shape.size(); ++d)
      ok = ShapedType::isDynamic(spec.shape[d]) ||
           spec.shape[d] == input->shape()[d];
    if (!ok)
      return makeError(where + ": shape is " + shapeString(input->shape()) +
                       ", expected " + shapeString(spec.shape));
  }
  for (auto [arg, limit] : tokenLimits)
    if (inputs[arg]->shape()[0] > limit)
      return makeError("input " + llvm::Twine(arg) + " (" + inputNames[arg] +
                       ") has " + llvm::Twine(inputs[arg]->shape()[0]) +
                       " tokens, expected at most " + llvm::Twine(limit) +
                       ": the most one call of the CUDA kernel library takes "
                       "for this layer (docs/cuda.md)");
  return llvm::Error::success();
}

namespace {
/// Storage for the expanded LLVM arguments of one call: a memref becomes
/// (allocated, aligned, offset, sizes..., strides...).
struct PackedArguments {
  std::vector<std::unique_ptr<int64_t[]>> slots;
  std::vector<void *> pointers;

  void *slot() {
    slots.emplace_back(new int64_t[1]());
    pointers.push_back(slots.back().get());
    return slots.back().get();
  }
  void addPointer(void *value) { std::memcpy(slot(), &value, sizeof(value)); }
  void addInt(int64_t value) { std::memcpy(slot(), &value, sizeof(value)); }
};
} // namespace

llvm::Expected<std::vector<npy::Array>>
CompiledFunction::call(ArrayRef<const npy::Array *> inputs) const {
  PackedArguments packedArgs;
  llvm::SmallPtrSet<const void *, 8> inputBuffers;
  for (auto [i, input] : llvm::enumerate(inputs)) {
    const ValueSpec &spec = args[i];
    if (spec.isScalar) {
      void *slot = packedArgs.slot();
      std::memcpy(slot, input->data(), npy::elementSize(input->type()));
      continue;
    }
    void *data = const_cast<void *>(input->data());
    inputBuffers.insert(data);
    packedArgs.addPointer(data);
    packedArgs.addPointer(data);
    packedArgs.addInt(0);
    ArrayRef<int64_t> shape = input->shape();
    for (int64_t d : shape)
      packedArgs.addInt(d);
    int64_t stride = 1;
    SmallVector<int64_t> strides(shape.size());
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
      strides[d] = stride;
      stride *= shape[d];
    }
    for (int64_t s : strides)
      packedArgs.addInt(s);
  }

  // All results are memref descriptors: 8-byte fields, laid out in order.
  size_t resultWords = 0;
  for (const ValueSpec &spec : resultSpecs)
    resultWords += 3 + 2 * spec.shape.size();
  std::vector<int64_t> resultStorage(std::max<size_t>(resultWords, 1));
  if (!resultSpecs.empty())
    packedArgs.pointers.push_back(resultStorage.data());

  // A failed GPU operation is the call's error, as in the C API of
  // compiled libraries (the CUDA runtime catches it; nothing to catch on
  // the CPU).
  std::string gpuFailure;
  {
    ::moe::rt::ScopedModel scope(runtimeModel.get());
    ::moe::rt::Model::beginCatchingGpuFailures();
    packed(packedArgs.pointers.data());
    if (::moe::rt::Model::endCatchingGpuFailures(gpuFailure) == 0)
      gpuFailure.clear();
  }

  std::vector<npy::Array> outputs;
  // Results may share a buffer (a value returned twice): copy them all out
  // before freeing anything, and free each buffer once.
  llvm::SetVector<void *> owned;
  const int64_t *field = resultStorage.data();
  for (const ValueSpec &spec : resultSpecs) {
    void *allocated, *aligned;
    std::memcpy(&allocated, field, sizeof(void *));
    std::memcpy(&aligned, field + 1, sizeof(void *));
    int64_t offset = field[2];
    size_t rank = spec.shape.size();
    ArrayRef<int64_t> sizes(field + 3, rank);
    ArrayRef<int64_t> strides(field + 3 + rank, rank);
    field += 3 + 2 * rank;

    npy::Array out(spec.dtype, sizes);
    size_t elementSize = npy::elementSize(spec.dtype);
    const char *base =
        static_cast<const char *>(aligned) + offset * elementSize;
    char *dst = static_cast<char *>(out.data());
    SmallVector<int64_t> index(rank, 0);
    for (int64_t n = 0, e = out.numElements(); n < e; ++n) {
      int64_t linear = 0;
      for (size_t d = 0; d < rank; ++d)
        linear += index[d] * strides[d];
      std::memcpy(dst + n * elementSize, base + linear * elementSize,
                  elementSize);
      for (int64_t d = static_cast<int64_t>(rank) - 1; d >= 0; --d) {
        if (++index[d] < sizes[d])
          break;
        index[d] = 0;
      }
    }
    // The caller owns returned buffers, unless a result is an input.
    if (allocated && !inputBuffers.count(allocated))
      owned.insert(allocated);
    outputs.push_back(std::move(out));
  }
  for (void *buffer : owned)
    std::free(buffer);
  if (!gpuFailure.empty())
    return makeError(gpuFailure);
  return outputs;
}

//===----------------------------------------------------------------------===//
// Runtime tables
//===----------------------------------------------------------------------===//

void mlir::moe::markArgumentsReadOnly(Operation *op) {
  auto func = cast<func::FuncOp>(op);
  MLIRContext *ctx = func.getContext();
  for (unsigned i = 0, e = func.getNumArguments(); i < e; ++i)
    if (isa<TensorType>(func.getArgument(i).getType()))
      func.setArgAttr(i, bufferization::BufferizationDialect::kWritableAttrName,
                      BoolAttr::get(ctx, false));
}

static std::optional<moe_dtype> runtimeDType(Type type) {
  if (type.isF32())
    return MOE_DTYPE_F32;
  if (type.isF16())
    return MOE_DTYPE_F16;
  if (type.isBF16())
    return MOE_DTYPE_BF16;
  return std::nullopt;
}

LogicalResult mlir::moe::formLayers(ModuleOp module) {
  PassManager pm(module.getContext(), ModuleOp::getOperationName());
  pm.addPass(createMoEFormLayers());
  return pm.run(module);
}

void mlir::moe::collectLayers(ModuleOp module, ::moe::rt::Manifest &manifest,
                              bool cuda) {
  for (auto func : module.getOps<func::FuncOp>()) {
    FunctionType type = func.getFunctionType();
    if (func.isPrivate() || func.isExternal() || type.getNumInputs() != 1 ||
        type.getNumResults() != 1)
      continue;
    auto in = dyn_cast<RankedTensorType>(type.getInput(0));
    auto out = dyn_cast<RankedTensorType>(type.getResult(0));
    if (!in || !out || in.getRank() != 2 || out.getRank() != 2 ||
        !in.isDynamicDim(0) || !out.isDynamicDim(0) ||
        in.isDynamicDim(1) || out.isDynamicDim(1) ||
        in.getElementType() != out.getElementType())
      continue;
    std::optional<moe_dtype> dtype = runtimeDType(in.getElementType());
    if (!dtype)
      continue;
    ::moe::rt::LayerEntry entry{func.getName().str(), in.getDimSize(1),
                                out.getDimSize(1), *dtype};
    // What the function's moe.layer ops cost (before decomposition).
    func.walk([&](LayerOp layer) {
      FailureOr<LayerCost> cost = analyzeLayer(layer);
      if (failed(cost))
        return;
      entry.flopsPerToken += cost->sparseFlops(1);
      entry.denseFlopsPerToken += cost->denseFlops(1);
    });
    if (cuda)
      func.walk([&](LayerOp layer) {
        int64_t limit = cudaMaxTokens(layer);
        entry.maxTokens =
            entry.maxTokens ? std::min(entry.maxTokens, limit) : limit;
      });
    manifest.layers.push_back(std::move(entry));
  }
}

llvm::Error mlir::moe::collectRuntimeTables(ModuleOp module,
                                            ::moe::rt::Manifest &manifest) {
  if (auto path = module->getAttrOfType<StringAttr>(
          WeightOp::getCheckpointAttrName()))
    manifest.checkpoint = path.str();
  if (auto weights = module->getAttrOfType<ArrayAttr>("moe.weights")) {
    for (auto dict : weights.getAsRange<DictionaryAttr>()) {
      ::moe::rt::WeightEntry entry;
      entry.id = dict.getAs<IntegerAttr>("id").getInt();
      for (auto name : dict.getAs<ArrayAttr>("names").getAsRange<StringAttr>())
        entry.names.push_back(name.str());
      entry.stacked = dict.getAs<BoolAttr>("stacked").getValue();
      if (auto device = dict.getAs<BoolAttr>("device"))
        entry.device = device.getValue();
      auto type = cast<RankedTensorType>(
          dict.getAs<TypeAttr>("type").getValue());
      std::optional<moe_dtype> dtype = runtimeDType(type.getElementType());
      if (!dtype)
        return makeError("weight " + entry.names.front() +
                         " has an element type the runtime does not bind");
      entry.dtype = *dtype;
      auto stored = dict.getAs<TypeAttr>("stored");
      if (stored)
        entry.stored = runtimeDType(stored.getValue());
      if (auto scales = dict.getAs<ArrayAttr>("scales")) {
        auto block = dict.getAs<DenseI64ArrayAttr>("scale_block");
        ::moe::rt::WeightEntry::BlockScales blockScales;
        for (auto name : scales.getAsRange<StringAttr>())
          blockScales.names.push_back(name.str());
        blockScales.rows = block[0];
        blockScales.cols = block[1];
        blockScales.fp4 = stored && isa<Float4E2M1FNType>(stored.getValue());
        if (auto integer = dyn_cast_if_present<IntegerType>(
                stored ? stored.getValue() : Type())) {
          blockScales.bits = integer.getWidth();
          blockScales.bytes = integer.isSigned();
        }
        for (auto [key, list] :
             {std::pair("zero_points", &blockScales.zeros),
              std::pair("group_indices", &blockScales.groupIndices)})
          if (auto names = dict.getAs<ArrayAttr>(key))
            for (auto name : names.getAsRange<StringAttr>())
              list->push_back(name.str());
        if (auto offset = dict.getAs<IntegerAttr>("zero_point_offset"))
          blockScales.zeroOffset = offset.getInt();
        if (auto outputs = dict.getAs<BoolAttr>("pack_outputs"))
          blockScales.packOutputs = outputs.getValue();
        if (auto order = dict.getAs<DenseI64ArrayAttr>("pack_order"))
          blockScales.packOrder.assign(order.asArrayRef().begin(),
                                       order.asArrayRef().end());
        if (auto globals = dict.getAs<ArrayAttr>("global_scales"))
          for (auto name : globals.getAsRange<StringAttr>())
            blockScales.globals.push_back(name.str());
        if (auto inverse = dict.getAs<BoolAttr>("global_scales_inverse"))
          blockScales.globalsInverse = inverse.getValue();
        entry.scales = std::move(blockScales);
      }
      if (auto bnb = dict.getAs<BoolAttr>("bitsandbytes"))
        entry.bitsandbytes = bnb.getValue();
      if (auto transposed = dict.getAs<BoolAttr>("transposed"))
        entry.transposed = transposed.getValue();
      if (auto interleaved = dict.getAs<BoolAttr>("interleaved"))
        entry.interleaved = interleaved.getValue();
      entry.shape.assign(type.getShape().begin(), type.getShape().end());
      if (auto packing = dict.getAs<PackingAttr>("packing")) {
        auto packed = cast<RankedTensorType>(
            dict.getAs<TypeAttr>("packed").getValue());
        entry.packing = ::moe::rt::Packing{
            packing.getFirstRow(), packing.getRows(),
            packed.getElementType().isBF16() ? MOE_DTYPE_BF16 : MOE_DTYPE_F32,
            packed.getDimSize(0)};
      }
      manifest.weights.push_back(std::move(entry));
    }
  }
  if (auto stats = module->getAttrOfType<ArrayAttr>("moe.stats"))
    for (auto dict : stats.getAsRange<DictionaryAttr>()) {
      auto pairs = dict.getAs<BoolAttr>("coactivation");
      manifest.stats.push_back({dict.getAs<IntegerAttr>("id").getInt(),
                                dict.getAs<StringAttr>("layer").str(),
                                dict.getAs<IntegerAttr>("experts").getInt(),
                                pairs && pairs.getValue()});
    }
  if (auto knobs = module->getAttrOfType<ArrayAttr>("moe.knobs"))
    for (auto dict : knobs.getAsRange<DictionaryAttr>()) {
      auto device = dict.getAs<BoolAttr>("device");
      manifest.knobs.push_back(
          {dict.getAs<IntegerAttr>("id").getInt(),
           dict.getAs<StringAttr>("layer").str(),
           dict.getAs<StringAttr>("name").str(),
           dict.getAs<FloatAttr>("default").getValueAsDouble(),
           device && device.getValue()});
    }
  return llvm::Error::success();
}

void mlir::moe::registerRunnerDialects(DialectRegistry &registry) {
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registerAllToLLVMIRTranslations(registry);
  registerAllGPUToLLVMIRTranslations(registry);
  registerAllMoEDialects(registry);
}
