//===- moe-compile.cpp - ahead-of-time compilation of moe modules ---------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
//   moe-compile IN.mlir -o OUT.(o|so) [--header OUT.h]
//               [--target cpu|cuda|cuda-emu]
//               [--mcpu NAME] [--cuda-chip SM] [--cuda-format isa|bin|fatbin]
//               [--narrow-to-bf16]
//
// Compiles every layer function of the module (one [T, d] tensor in, one
// [T, d_out] tensor out) for the host, or with --target cuda for the host
// and a GPU (moe-cuda-pipeline), and emits an object file, or a shared
// library that also holds the runtime: the C API of moe_runtime.h loads the
// weights from a checkpoint, runs the layers and reads their statistics.
// CUDA libraries also link libmoe_cuda_runtime, found through their RUNPATH
// in the lib/ directory beside moe-compile's bin/; with --target cuda-emu
// they link libmoe_cuda_emulator instead and run their kernels on the host
// (moe-cuda-pipeline{emulate=1}).
//
//===----------------------------------------------------------------------===//

#include "moe/Pipelines/Pipelines.h"
#include "moe/Runner/Runner.h"

#include "Manifest.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"

using namespace mlir;
using namespace mlir::moe;
namespace cl = llvm::cl;

static cl::OptionCategory category("moe-compile options");
static cl::opt<std::string> inputFile(cl::Positional, cl::desc("<in.mlir>"),
                                      cl::Required, cl::cat(category));
static cl::opt<std::string>
    outputFile("o", cl::desc("Output: an object file (.o) or a shared "
                             "library (.so) with the runtime"),
               cl::Required, cl::cat(category));
static cl::opt<std::string> headerFile("header",
                                       cl::desc("Write the C header here"),
                                       cl::cat(category));
static cl::opt<std::string>
    target("target",
           cl::desc("Target: cpu, cuda (moe-cuda-pipeline; the library "
                    "also links libmoe_cuda_runtime) or cuda-emu (the same "
                    "kernels run on the host by the SIMT emulator, "
                    "libmoe_cuda_emulator)"),
           cl::init("cpu"), cl::cat(category));
static cl::opt<std::string>
    cudaChip("cuda-chip",
             cl::desc("With --target cuda: the GPU to compile for"),
             cl::init("sm_90"), cl::cat(category));
static cl::opt<CUDAPipelineOptions::Format> cudaFormat(
    "cuda-format",
    cl::desc("With --target cuda: the device code embedded in the output"),
    cl::init(CUDAPipelineOptions::Format::Bin),
    cl::values(clEnumValN(CUDAPipelineOptions::Format::Isa, "isa",
                          "PTX, compiled by the driver when the library "
                          "loads"),
               clEnumValN(CUDAPipelineOptions::Format::Bin, "bin",
                          "a cubin for --cuda-chip (needs ptxas)"),
               clEnumValN(CUDAPipelineOptions::Format::Fatbin, "fatbin",
                          "a fatbin for --cuda-chip (needs ptxas and "
                          "fatbinary)")),
    cl::cat(category));
static cl::opt<std::string>
    mcpu("mcpu",
         cl::desc("CPU to compile for (default: this host's, e.g. znver5; "
                  "x86-64-v3 for any AVX2 machine)"),
         cl::cat(category));
static cl::opt<bool> noStats("no-stats",
                             cl::desc("Do not record expert statistics"),
                             cl::cat(category));
static cl::opt<bool> statsCoactivation(
    "stats-coactivation",
    cl::desc("Also count co-activated expert pairs (for moe-place)"),
    cl::cat(category));
static cl::opt<bool> narrowToBF16(
    "narrow-to-bf16",
    cl::desc("Compute f32 and f16 layers in bf16, their checkpoint weights "
             "rounded at load time (moe-narrow-to-bf16; the CUDA kernels "
             "compute only in bf16); the layers keep their f32 or f16 "
             "inputs and outputs"),
    cl::cat(category));
static cl::opt<bool>
    noKnobs("no-knobs",
            cl::desc("Compile tau and capacity factors as constants instead "
                     "of run-time knobs"),
            cl::cat(category));

static cl::opt<bool> noDeviceEntries(
    "no-device-entries",
    cl::desc("With --target cuda or cuda-emu: no device entry points "
             "(moe_model_run_layer_async), and no warning for the functions "
             "that cannot have one"),
    cl::cat(category));

static cl::opt<bool>
    reference("reference",
              cl::desc("Compile with the reference lowering only (no CPU "
                       "kernels)"),
              cl::cat(category));

static int fail(const llvm::Twine &message) {
  llvm::errs() << "moe-compile: error: " << message << "\n";
  return 1;
}

//===----------------------------------------------------------------------===//
// The model descriptor
//===----------------------------------------------------------------------===//

/// A private constant C string.
static llvm::Constant *cString(llvm::Module &module, llvm::StringRef text,
                               const llvm::Twine &name) {
  llvm::Constant *data =
      llvm::ConstantDataArray::getString(module.getContext(), text, true);
  auto *global = new llvm::GlobalVariable(
      module, data->getType(), /*isConstant=*/true,
      llvm::GlobalValue::PrivateLinkage, data, name);
  global->setUnnamedAddr(llvm::GlobalValue::UnnamedAddr::Global);
  return global;
}

/// Emits `moe_compiled_model_descriptor()` (runtime/CompiledModel.h): the
/// manifest and, per layer, its name, C-interface entry point and device
/// entry point (CUDA libraries; null when the layer has none).
static llvm::Error addDescriptor(llvm::Module &module,
                                 const ::moe::rt::Manifest &manifest) {
  llvm::LLVMContext &ctx = module.getContext();
  llvm::Type *i64 = llvm::Type::getInt64Ty(ctx);
  llvm::PointerType *ptr = llvm::PointerType::getUnqual(ctx);
  auto *layerType = llvm::StructType::get(ctx, {ptr, ptr, ptr});

  SmallVector<llvm::Constant *> layers;
  for (const ::moe::rt::LayerEntry &layer : manifest.layers) {
    std::string symbol = "_mlir_ciface_" + layer.name;
    llvm::Function *entry = module.getFunction(symbol);
    if (!entry)
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          "layer " + layer.name + " has no C-interface entry point " + symbol);
    llvm::Constant *device = module.getFunction(symbol + ".device");
    if (!device)
      device = llvm::ConstantPointerNull::get(ptr);
    layers.push_back(llvm::ConstantStruct::get(
        layerType,
        {cString(module, layer.name, "moe.layer.name"), entry, device}));
  }
  auto *layerArrayType = llvm::ArrayType::get(layerType, layers.size());
  auto *layerArray = new llvm::GlobalVariable(
      module, layerArrayType, true, llvm::GlobalValue::PrivateLinkage,
      llvm::ConstantArray::get(layerArrayType, layers), "moe.layers");

  auto *descriptorType = llvm::StructType::get(ctx, {i64, ptr, i64, ptr});
  auto *descriptor = new llvm::GlobalVariable(
      module, descriptorType, true, llvm::GlobalValue::PrivateLinkage,
      llvm::ConstantStruct::get(
          descriptorType,
          {llvm::ConstantInt::get(i64, MOE_RUNTIME_ABI_VERSION),
           cString(module, manifest.toJSON(), "moe.manifest"),
           llvm::ConstantInt::get(i64, layers.size()), layerArray}),
      "moe.descriptor");

  auto *function = llvm::Function::Create(
      llvm::FunctionType::get(ptr, false), llvm::GlobalValue::ExternalLinkage,
      "moe_compiled_model_descriptor", module);
  llvm::IRBuilder<> builder(llvm::BasicBlock::Create(ctx, "entry", function));
  builder.CreateRet(descriptor);
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// Code generation and linking
//===----------------------------------------------------------------------===//

static llvm::Expected<std::unique_ptr<llvm::TargetMachine>>
hostTargetMachine() {
  llvm::Triple triple(llvm::sys::getProcessTriple());
  std::string error;
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return llvm::createStringError(llvm::inconvertibleErrorCode(), error);
  std::string cpu = mcpu.empty() ? llvm::sys::getHostCPUName().str() : mcpu;
  std::string features;
  if (mcpu.empty()) {
    for (const auto &feature : llvm::sys::getHostCPUFeatures())
      features += (feature.second ? "+" : "-") + feature.first().str() + ",";
  }
  llvm::TargetOptions options;
  std::unique_ptr<llvm::TargetMachine> machine(target->createTargetMachine(
      triple, cpu, features, options, llvm::Reloc::PIC_,
      std::nullopt, llvm::CodeGenOptLevel::Aggressive));
  if (!machine)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "cannot create a target machine for " +
                                       triple.str() + " (" + cpu + ")");
  return machine;
}

static llvm::Error writeObject(llvm::Module &module,
                               llvm::TargetMachine &machine,
                               llvm::StringRef path) {
  std::error_code ec;
  llvm::ToolOutputFile out(path, ec, llvm::sys::fs::OF_None);
  if (ec)
    return llvm::createStringError(ec, "cannot write " + path + ": " +
                                           ec.message());
  llvm::legacy::PassManager pm;
  if (machine.addPassesToEmitFile(pm, out.os(), nullptr,
                                  llvm::CodeGenFileType::ObjectFile))
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "the target cannot emit object files");
  pm.run(module);
  out.keep();
  return llvm::Error::success();
}

/// Links `object` with the runtime into a shared library that exports the
/// C API only; with `gpuLibrary` (libmoe_cuda_runtime or
/// libmoe_cuda_emulator), also with that, which the library finds through
/// its RUNPATH.
static llvm::Error linkSharedLibrary(llvm::StringRef object,
                                     llvm::StringRef output,
                                     llvm::StringRef argv0,
                                     llvm::StringRef gpuLibrary) {
  auto driver = llvm::sys::findProgramByName("c++");
  if (!driver)
    driver = llvm::sys::findProgramByName("g++");
  if (!driver)
    return llvm::createStringError(driver.getError(),
                                   "no C++ compiler driver (c++ or g++) in "
                                   "PATH to link the shared library");

  // The runtime archives sit in ../lib next to bin/ (build and install
  // trees alike); LLVM's Support library comes from the LLVM installation.
  std::string exe = llvm::sys::fs::getMainExecutable(
      argv0.data(), reinterpret_cast<void *>(&linkSharedLibrary));
  llvm::SmallString<256> libDir(llvm::sys::path::parent_path(exe));
  llvm::sys::path::append(libDir, "..", "lib");
  llvm::sys::path::remove_dots(libDir, /*remove_dot_dot=*/true);
  auto archive = [&](llvm::StringRef name) {
    llvm::SmallString<256> path(libDir);
    llvm::sys::path::append(path, "lib" + name + ".a");
    return std::string(path);
  };
  std::vector<std::string> archives = {
      archive("MoERuntime"), archive("MoECheckpoint"), archive("MoESupport"),
      MOE_LLVM_LIBRARY_DIR "/libLLVMSupport.a",
      MOE_LLVM_LIBRARY_DIR "/libLLVMDemangle.a"};
  std::string capi = archive("MoERuntimeCApi");
  if (!gpuLibrary.empty()) {
    llvm::SmallString<256> path(libDir);
    llvm::sys::path::append(path, gpuLibrary);
    archives.push_back(std::string(path));
  }
  for (const std::string &path : archives)
    if (!llvm::sys::fs::exists(path))
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     "runtime library " + path + " not found");

  // Export the C API only; keep everything else (LLVM's Support, the
  // generated code) private to the library.
  llvm::SmallString<256> script;
  if (std::error_code ec =
          llvm::sys::fs::createTemporaryFile("moe-exports", "map", script))
    return llvm::createStringError(ec, "cannot create a temporary file");
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(script, ec);
    os << "{ global: moe_*; local: *; };\n";
  }

  std::vector<std::string> args = {*driver, "-shared", "-o", output.str(),
                                   object.str(), "-Wl,--whole-archive", capi,
                                   "-Wl,--no-whole-archive"};
  args.insert(args.end(), archives.begin(), archives.end());
  if (!gpuLibrary.empty())
    args.push_back(("-Wl,-rpath," + libDir).str());
  for (const char *flag : {"-lpthread", "-lm", "-ldl", "-Wl,--no-undefined"})
    args.push_back(flag);
  args.push_back(("-Wl,--version-script=" + script).str());
  SmallVector<llvm::StringRef> refs(args.begin(), args.end());
  std::string message;
  int status = llvm::sys::ExecuteAndWait(*driver, refs, std::nullopt, {}, 0,
                                         0, &message);
  llvm::sys::fs::remove(script);
  if (status != 0)
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        "linking " + output + " failed" +
            (message.empty() ? "" : ": " + message));
  return llvm::Error::success();
}

/// The text of runtime/include/moe_runtime.h.
static const char *const kRuntimeHeader =
#include "RuntimeHeader.inc"
    ;

/// The C header: the runtime's API and the layers of this model, in one
/// file that needs nothing else.
static llvm::Error writeHeader(llvm::StringRef path,
                               const ::moe::rt::Manifest &manifest) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  if (ec)
    return llvm::createStringError(ec, "cannot write " + path);
  std::string guard = "MOE_MODEL_" +
                      llvm::sys::path::stem(path).upper() + "_H";
  for (char &c : guard)
    if (!llvm::isAlnum(c))
      c = '_';
  os << "/* Generated by moe-compile from " << llvm::sys::path::filename(
                                                  inputFile)
     << ". */\n";
  os << "#ifndef " << guard << "\n#define " << guard << "\n\n";
  os << "/* The C API of moe-compiled models (moe_runtime.h). */\n"
     << kRuntimeHeader << "\n";
  os << "/* Layers of this model, in the order of moe_model_layer_info:\n";
  for (auto [i, layer] : llvm::enumerate(manifest.layers))
    os << " *   " << i << ": " << layer.name << " (" << layer.hidden
       << " -> " << layer.output << ", " << ::moe::rt::dtypeName(layer.dtype)
       << (layer.maxTokens
               ? ", at most " + std::to_string(layer.maxTokens) + " tokens"
               : std::string())
       << ")\n";
  os << " */\n#define MOE_MODEL_NUM_LAYERS " << manifest.layers.size()
     << "\n";
  if (!manifest.checkpoint.empty())
    os << "#define MOE_MODEL_CHECKPOINT \"" << manifest.checkpoint << "\"\n";
  os << "\n#endif /* " << guard << " */\n";
  return llvm::Error::success();
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv,
      "moe-compile: compile an moe module ahead of time into an object file "
      "or a shared library with the C API of moe_runtime.h\n");
  if (target != "cpu" && target != "cuda" && target != "cuda-emu")
    return fail("--target=" + target +
                " is not available in this build (supported: cpu, cuda, "
                "cuda-emu)");
  bool cuda = target != "cpu";
  bool emulate = target == "cuda-emu";
  if (cuda && reference)
    return fail("--target=" + target +
                " has no reference mode: drop --reference");
  if (target != "cuda" &&
      (cudaChip.getNumOccurrences() || cudaFormat.getNumOccurrences()))
    return fail("--cuda-chip and --cuda-format need --target=cuda");
  if (!cuda && noDeviceEntries)
    return fail("--no-device-entries needs --target=cuda or cuda-emu");
  if (noStats && statsCoactivation)
    return fail("--no-stats contradicts --stats-coactivation");
  bool shared = llvm::StringRef(outputFile).ends_with(".so");
  if (!shared && !llvm::StringRef(outputFile).ends_with(".o"))
    return fail("-o must name a .o or a .so file, found " + outputFile);

  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();

  DialectRegistry registry;
  registerRunnerDialects(registry);
  MLIRContext context(registry);
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler handler(sourceMgr, &context);
  OwningOpRef<ModuleOp> module =
      parseSourceFile<ModuleOp>(inputFile, sourceMgr, &context);
  if (!module)
    return fail("cannot parse " + inputFile);

  // The layers the C API exposes: their arguments are the caller's.
  if (failed(formLayers(*module)))
    return fail("moe-form-layers failed (see the diagnostics above)");
  ::moe::rt::Manifest manifest;
  collectLayers(*module, manifest, /*cuda=*/target != "cpu");
  if (manifest.layers.empty())
    return fail(inputFile + " has no layer function: expected public "
                            "functions from one tensor<?xDxT> to one "
                            "tensor<?xD'xT> (T = f32, f16 or bf16)");
  for (const ::moe::rt::LayerEntry &layer : manifest.layers) {
    auto func = module->lookupSymbol<func::FuncOp>(layer.name);
    markArgumentsReadOnly(func);
    func->setAttr("llvm.emit_c_interface", UnitAttr::get(&context));
  }

  PassManager pm(&context, ModuleOp::getOperationName());
  if (cuda) {
    CUDAPipelineOptions options;
    options.chip = cudaChip;
    options.format = cudaFormat;
    // moe_model_load checks that the device runs it (the emulator does).
    if (!emulate) {
      manifest.cudaChip = cudaChip;
      manifest.cudaFormat = CUDAPipelineOptions::formatName(cudaFormat).str();
    }
    options.stats = !noStats;
    options.statsCoactivation = statsCoactivation;
    options.knobs = !noKnobs;
    options.narrowToBF16 = narrowToBF16;
    options.emulate = emulate;
    options.deviceEntries = !noDeviceEntries;
    buildMoECUDAPipeline(pm, options);
  } else {
    CPUPipelineOptions options;
    options.stats = !noStats;
    options.statsCoactivation = statsCoactivation;
    options.knobs = !noKnobs;
    options.narrowToBF16 = narrowToBF16;
    options.reference = reference;
    buildMoECPUPipeline(pm, options);
  }
  if (failed(pm.run(*module)))
    return fail("compilation failed (see the diagnostics above)");
  if (llvm::Error error = collectRuntimeTables(*module, manifest))
    return fail(llvm::toString(std::move(error)));

  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(*module, llvmContext, "moe-model");
  if (!llvmModule)
    return fail("translation to LLVM IR failed");
  auto machine = hostTargetMachine();
  if (!machine)
    return fail(llvm::toString(machine.takeError()));
  llvmModule->setDataLayout((*machine)->createDataLayout());
  llvmModule->setTargetTriple((*machine)->getTargetTriple());
  if (llvm::Error error = addDescriptor(*llvmModule, manifest))
    return fail(llvm::toString(std::move(error)));
  auto optimize = makeOptimizingTransformer(3, 0, machine->get());
  if (llvm::Error error = optimize(llvmModule.get()))
    return fail(llvm::toString(std::move(error)));

  std::string object = outputFile;
  if (shared)
    object = (outputFile + ".o");
  if (llvm::Error error = writeObject(*llvmModule, **machine, object))
    return fail(llvm::toString(std::move(error)));
  if (shared) {
    llvm::StringRef gpuLibrary = !cuda     ? ""
                                 : emulate ? "libmoe_cuda_emulator.so"
                                           : "libmoe_cuda_runtime.so";
    llvm::Error error =
        linkSharedLibrary(object, outputFile, argv[0], gpuLibrary);
    llvm::sys::fs::remove(object);
    if (error)
      return fail(llvm::toString(std::move(error)));
  }
  if (!headerFile.empty())
    if (llvm::Error error = writeHeader(headerFile, manifest))
      return fail(llvm::toString(std::move(error)));
  return 0;
}
