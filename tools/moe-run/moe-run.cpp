//===- moe-run.cpp - compile and run moe functions on .npy inputs ---------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
//   moe-run FILE.mlir --entry NAME [--input A.npy ...] [--output-dir DIR]
//           [--case-dir DIR ...] [--random-inputs [--seed S]
//           [--dynamic-size N[,N...]]] [--repeat N]
//           [--pipeline cpu|cuda|cuda-emu] [--cuda-chip SM]
//           [--narrow-to-bf16] [--checkpoint DIR] [--stats] [--stats-json FILE]
//           [--stats-history FILE] [--stats-coactivation]
//           [--knob LAYER:NAME=VALUE ...]
//
// JIT-compiles the module for the host with moe-cpu-pipeline (or, with
// --pipeline cuda, moe-cuda-pipeline and the CUDA runtime; with
// --pipeline cuda-emu, the same kernels run by the SIMT emulator on the host)
// and calls NAME. Inputs come from .npy files (--input, in argument order),
// from case directories (DIR/arg0.npy ... in, DIR/out0.npy ... out), or are
// generated. One compilation serves every call, whatever the dynamic sizes.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"
#include "moe/Runner/Runner.h"
#include "moe/Support/Npy.h"
#include "moe/Support/Random.h"

#include "Model.h"
#include "Stats.h"
#include "cpu/ThreadPool.h"
#include "cuda/KernelChoices.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <dlfcn.h>

using namespace mlir;
using namespace mlir::moe;
namespace cl = llvm::cl;

static cl::OptionCategory category("moe-run options");

static cl::opt<std::string> inputFile(cl::Positional, cl::desc("<file.mlir>"),
                                      cl::Required, cl::cat(category));
static cl::opt<std::string> entry("entry", cl::desc("Function to call"),
                                  cl::Required, cl::cat(category));
static cl::list<std::string>
    inputs("input", cl::desc("An .npy file per argument, in order"),
           cl::cat(category));
static cl::opt<std::string>
    outputDir("output-dir",
              cl::desc("Write the results as DIR/out0.npy, out1.npy, ..."),
              cl::cat(category));
static cl::list<std::string> caseDirs(
    "case-dir",
    cl::desc("Call once per DIR with DIR/arg<i>.npy, writing DIR/out<i>.npy"),
    cl::cat(category));
static cl::opt<bool>
    randomInputs("random-inputs",
                 cl::desc("Generate the inputs (seeded, deterministic)"),
                 cl::cat(category));
static cl::opt<uint64_t> seed("seed", cl::desc("Seed of --random-inputs"),
                              cl::init(1), cl::cat(category));
static cl::list<int64_t> dynamicSizes(
    "dynamic-size",
    cl::desc("Size of every dynamic dimension of generated inputs; several "
             "values call the same compiled function once per size"),
    cl::CommaSeparated, cl::cat(category));
static cl::opt<unsigned>
    repeat("repeat",
           cl::desc("After one warm-up call, time N calls and print "
                    "median_ms=... min_ms=... max_ms=..."),
           cl::init(0), cl::cat(category));
static cl::opt<std::string>
    pipeline("pipeline",
             cl::desc("Target: cpu (default), cuda (moe-cuda-pipeline; "
                      "exits with 77 without a usable GPU) or cuda-emu "
                      "(moe-cuda-pipeline with its kernels run by the SIMT "
                      "emulator on the host, no GPU needed)"),
             cl::init("cpu"), cl::cat(category));
static cl::opt<std::string> cudaChip(
    "cuda-chip",
    cl::desc("With --pipeline cuda or cuda-emu: the GPU architecture whose "
             "PTX the kernels are compiled as (default sm_80, which every "
             "supported GPU runs; sm_90 or newer also lets the kernels "
             "overlap their launches, MOE_GPU_DEPENDENT_LAUNCH=1)"),
    cl::init("sm_80"), cl::cat(category));
static cl::opt<bool> narrowToBF16(
    "narrow-to-bf16",
    cl::desc("Compute f32 and f16 layers in bf16, their checkpoint weights "
             "rounded at load time (moe-narrow-to-bf16; the CUDA kernels "
             "compute only in bf16)"),
    cl::cat(category));
static cl::opt<bool> reference(
    "reference",
    cl::desc("Compile with the reference lowering only (no CPU kernels)"),
    cl::cat(category));
static cl::opt<int> numThreads(
    "num-threads",
    cl::desc("Threads of the CPU kernels (default: MOE_NUM_THREADS, else one "
             "per core)"),
    cl::init(0), cl::cat(category));
static cl::opt<unsigned> optLevel("O", cl::desc("LLVM optimization level"),
                                  cl::init(3), cl::cat(category));
static cl::opt<bool> quiet("quiet", cl::desc("Do not print output summaries"),
                           cl::cat(category));
static cl::opt<std::string> checkpointDir(
    "checkpoint",
    cl::desc("Bind moe.weight tensors from DIR (default: the module's "
             "moe.checkpoint)"),
    cl::cat(category));
static cl::opt<std::string> statsHistory(
    "stats-history",
    cl::desc("Write a statistics snapshot to FILE after every call (JSON "
             "Lines)"),
    cl::value_desc("FILE"), cl::cat(category));
static cl::opt<bool> statsCoactivation(
    "stats-coactivation",
    cl::desc("Also count co-activated expert pairs"), cl::cat(category));
static cl::opt<bool> noStats("no-stats",
                             cl::desc("Do not record expert statistics"),
                             cl::cat(category));
static cl::opt<bool>
    noKnobs("no-knobs",
            cl::desc("Compile tau and capacity factors as constants instead "
                     "of run-time knobs"),
            cl::cat(category));
static cl::list<std::string>
    knobSettings("knob",
                 cl::desc("Set a run-time knob before the calls, e.g. "
                          "moe_layer_0:tau=0.2"),
                 cl::value_desc("LAYER:NAME=VALUE"), cl::cat(category));
// `--stats` and `--stats-json` are also the names of LLVM's own statistics
// options, registered in libLLVM: moe-run takes them off the command line
// before LLVM parses it.
static bool printStats = false;
static std::string statsJSON;

static bool takeStatsFlags(int &argc, char **argv) {
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    llvm::StringRef arg(argv[i]);
    if (arg == "--stats" || arg == "-stats") {
      printStats = true;
    } else if (arg == "--stats-json" || arg == "-stats-json") {
      if (i + 1 == argc) {
        llvm::errs() << "moe-run: error: --stats-json expects a file name\n";
        return false;
      }
      statsJSON = argv[++i];
    } else if (arg.consume_front("--stats-json=") ||
               arg.consume_front("-stats-json=")) {
      statsJSON = arg.str();
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  return true;
}

static int fail(const llvm::Twine &message) {
  llvm::errs() << "moe-run: error: " << message << "\n";
  return 1;
}

static int fail(llvm::Error error) {
  std::string message = llvm::toString(std::move(error));
  return fail(message);
}

//===----------------------------------------------------------------------===//
// Generated inputs
//===----------------------------------------------------------------------===//

using mlir::moe::Random;

/// Floats of rank >= 2 are N(0, 1/n) with n their last size (weights and
/// activations then give O(1) products); rank <= 1 floats are N(0, 1);
/// scalars are uniform in [0, 0.5) (thresholds); integers uniform in [0, 8).
static npy::Array generate(const ValueSpec &spec, int64_t dynamicSize,
                           Random &random) {
  SmallVector<int64_t> shape;
  for (int64_t d : spec.shape)
    shape.push_back(ShapedType::isDynamic(d) ? dynamicSize : d);
  npy::Array array(spec.dtype, shape);
  bool isFloat = isa<FloatType>(spec.elementType);
  double scale = 1.0;
  if (shape.size() >= 2 && shape.back() > 0)
    scale = 1.0 / std::sqrt(static_cast<double>(shape.back()));
  for (int64_t i = 0, e = array.numElements(); i < e; ++i) {
    double value;
    if (spec.isScalar)
      value = isFloat ? 0.5 * random.uniform()
                      : std::floor(8 * random.uniform());
    else if (isFloat)
      value = scale * random.normal();
    else
      value = std::floor(8 * random.uniform());
    array.setFromDouble(i, value);
  }
  return array;
}

//===----------------------------------------------------------------------===//
// Reporting
//===----------------------------------------------------------------------===//

static bool isFloatDType(npy::DType type) {
  return type == npy::DType::F32 || type == npy::DType::F64 ||
         type == npy::DType::F16 || type == npy::DType::BF16;
}

static int64_t countNonFinite(const npy::Array &array) {
  if (!isFloatDType(array.type()))
    return 0;
  int64_t count = 0;
  for (int64_t i = 0, e = array.numElements(); i < e; ++i)
    count += !std::isfinite(array.getAsDouble(i));
  return count;
}

static std::string shapeString(ArrayRef<int64_t> shape) {
  std::string s = "(";
  for (auto [i, d] : llvm::enumerate(shape))
    s += (i ? ", " : "") + std::to_string(d);
  return s + (shape.size() == 1 ? ",)" : ")");
}

static void printSummary(StringRef label, const npy::Array &array) {
  llvm::outs() << label << ": " << npy::name(array.type()) << " "
               << shapeString(array.shape());
  int64_t n = array.numElements();
  if (!isFloatDType(array.type())) {
    llvm::outs() << " [";
    for (int64_t i = 0; i < std::min<int64_t>(n, 16); ++i)
      llvm::outs() << (i ? ", " : "")
                   << static_cast<int64_t>(array.getAsDouble(i));
    llvm::outs() << (n > 16 ? ", ...]" : "]") << "\n";
    return;
  }
  double sum = 0, absMax = 0;
  int64_t finite = 0;
  for (int64_t i = 0; i < n; ++i) {
    double v = array.getAsDouble(i);
    if (!std::isfinite(v))
      continue;
    sum += v;
    absMax = std::max(absMax, std::fabs(v));
    ++finite;
  }
  llvm::outs() << llvm::format(" mean %.6g absmax %.6g", finite ? sum / finite
                                                                : 0.0,
                               absMax);
  if (finite != n)
    llvm::outs() << " non-finite " << (n - finite);
  llvm::outs() << "\n";
}

/// Non-finite inputs are legal (see docs/semantics.md) but never silent.
static void warnNonFinite(StringRef what, const npy::Array &array) {
  if (int64_t count = countNonFinite(array))
    llvm::errs() << "moe-run: warning: " << what << " holds " << count
                 << " NaN or infinite values; tokens with non-finite router "
                    "logits produce NaN outputs\n";
}

//===----------------------------------------------------------------------===//
// Statistics and knobs
//===----------------------------------------------------------------------===//

namespace {
/// Where --stats-history goes; open for the whole run.
std::unique_ptr<llvm::raw_fd_ostream> historyStream;
} // namespace

/// After every call: one more line of --stats-history.
static void afterCall(const CompiledFunction &function) {
  if (!historyStream || !function.model())
    return;
  *historyStream << ::moe::rt::statsToJSON(
                        ::moe::rt::snapshotStats(*function.model()))
                 << "\n";
}

/// Applies every --knob LAYER:NAME=VALUE.
static llvm::Error applyKnobs(const CompiledFunction &function) {
  ::moe::rt::Model *model = function.model();
  for (const std::string &setting : knobSettings) {
    StringRef text(setting);
    auto [target, valueText] = text.rsplit('=');
    auto [layer, name] = target.rsplit(':');
    double value;
    if (valueText.empty() || name.empty() || layer.empty() ||
        valueText.getAsDouble(value))
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          "--knob expects LAYER:NAME=VALUE (e.g. moe_layer_0:tau=0.2), "
          "found '" + setting + "'");
    int64_t id = model ? model->knobFor(layer, name) : -1;
    if (id < 0) {
      std::string known;
      if (model)
        for (const ::moe::rt::KnobEntry &knob : model->manifest().knobs)
          known += (known.empty() ? "" : ", ") + knob.layer + ":" + knob.name;
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          "--knob " + setting + ": the module has no knob " + name +
              " of layer " + layer + " (knobs: " +
              (known.empty() ? "none" : known) + ")");
    }
    if (llvm::Error error = model->setKnob(id, value))
      return error;
  }
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// Calls
//===----------------------------------------------------------------------===//

static llvm::Expected<std::vector<npy::Array>>
callChecked(const CompiledFunction &function,
            const std::vector<npy::Array> &arrays,
            ArrayRef<std::string> names) {
  std::vector<const npy::Array *> pointers;
  for (const npy::Array &a : arrays)
    pointers.push_back(&a);
  if (llvm::Error error = function.checkInputs(pointers, names))
    return std::move(error);
  for (auto [i, a] : llvm::enumerate(arrays))
    warnNonFinite(("input " + llvm::Twine(i) + " (" + names[i] + ")").str(),
                  a);
  auto outputs = function.call(pointers);
  afterCall(function);
  return outputs;
}

static llvm::Error writeOutputs(StringRef dir,
                                const std::vector<npy::Array> &outputs) {
  if (std::error_code ec = llvm::sys::fs::create_directories(dir))
    return llvm::createStringError(ec, "cannot create " + dir + ": " +
                                           ec.message());
  for (auto [i, out] : llvm::enumerate(outputs)) {
    llvm::SmallString<256> path(dir);
    llvm::sys::path::append(path, "out" + std::to_string(i) + ".npy");
    if (llvm::Error error = npy::write(path, out))
      return error;
  }
  return llvm::Error::success();
}

static void report(StringRef prefix, const std::vector<npy::Array> &outputs) {
  for (auto [i, out] : llvm::enumerate(outputs)) {
    std::string label = (prefix + "out" + llvm::Twine(i)).str();
    warnNonFinite("output " + label, out);
    if (!quiet)
      printSummary(label, out);
  }
}

static double millisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now() - start)
      .count();
}

/// One warm-up call, then `repeat` timed calls.
static llvm::Error timeCalls(const CompiledFunction &function,
                             const std::vector<npy::Array> &arrays) {
  std::vector<const npy::Array *> pointers;
  for (const npy::Array &a : arrays)
    pointers.push_back(&a);
  if (auto warmup = function.call(pointers); !warmup)
    return warmup.takeError();
  afterCall(function);
  std::vector<double> times;
  for (unsigned i = 0; i < repeat; ++i) {
    auto start = std::chrono::steady_clock::now();
    auto outputs = function.call(pointers);
    times.push_back(millisecondsSince(start));
    if (!outputs)
      return outputs.takeError();
    afterCall(function);
  }
  std::sort(times.begin(), times.end());
  size_t n = times.size();
  double median =
      n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
  llvm::outs() << llvm::format("median_ms=%.4f min_ms=%.4f max_ms=%.4f\n",
                               median, times.front(), times.back());
  return llvm::Error::success();
}

static int runCaseDirs(const CompiledFunction &function) {
  for (const std::string &dir : caseDirs) {
    std::vector<npy::Array> arrays;
    std::vector<std::string> names;
    for (size_t i = 0; i < function.arguments().size(); ++i) {
      llvm::SmallString<256> path(dir);
      llvm::sys::path::append(path, "arg" + std::to_string(i) + ".npy");
      auto array = npy::read(path);
      if (!array)
        return fail(array.takeError());
      arrays.push_back(std::move(*array));
      names.push_back(std::string(path));
    }
    auto start = std::chrono::steady_clock::now();
    auto outputs = callChecked(function, arrays, names);
    if (!outputs)
      return fail(outputs.takeError());
    double ms = millisecondsSince(start);
    if (llvm::Error error = writeOutputs(dir, *outputs))
      return fail(std::move(error));
    report(dir + ": ", *outputs);
    llvm::outs() << llvm::format("%s: %zu outputs in %.3f ms\n", dir.c_str(),
                                 outputs->size(), ms);
  }
  return 0;
}

static int runInputs(const CompiledFunction &function) {
  SmallVector<int64_t> sizes(dynamicSizes.begin(), dynamicSizes.end());
  if (sizes.empty())
    sizes.push_back(16);
  if (!randomInputs && sizes.size() > 1)
    return fail("--dynamic-size with several values needs --random-inputs");
  if (!randomInputs)
    sizes.resize(1);
  for (int64_t size : sizes) {
    if (size < 0)
      return fail("--dynamic-size must be >= 0, found " + llvm::Twine(size));
    std::vector<npy::Array> arrays;
    std::vector<std::string> names;
    if (randomInputs) {
      Random random(seed);
      for (auto [i, spec] : llvm::enumerate(function.arguments())) {
        arrays.push_back(generate(spec, size, random));
        names.push_back("generated " + spec.str());
      }
    } else {
      for (const std::string &path : inputs) {
        auto array = npy::read(path);
        if (!array)
          return fail(array.takeError());
        arrays.push_back(std::move(*array));
        names.push_back(path);
      }
    }
    std::string prefix = sizes.size() > 1
                             ? ("size" + llvm::Twine(size) + "/").str()
                             : std::string();
    auto start = std::chrono::steady_clock::now();
    auto outputs = callChecked(function, arrays, names);
    if (!outputs)
      return fail(outputs.takeError());
    double ms = millisecondsSince(start);
    if (!outputDir.empty()) {
      llvm::SmallString<256> dir(outputDir);
      if (!prefix.empty())
        llvm::sys::path::append(dir, "size" + std::to_string(size));
      if (llvm::Error error = writeOutputs(dir, *outputs))
        return fail(std::move(error));
    }
    report(prefix, *outputs);
    if (!quiet)
      llvm::outs() << llvm::format("%scall: %.3f ms (first call)\n",
                                   prefix.c_str(), ms);
    if (repeat > 0)
      if (llvm::Error error = timeCalls(function, arrays))
        return fail(std::move(error));
  }
  return 0;
}

/// Per layer, the derived metrics and one row per expert.
static void printStatistics(const CompiledFunction &function) {
  ::moe::rt::Model *model = function.model();
  if (!model || model->manifest().stats.empty()) {
    llvm::outs() << "no expert statistics were recorded\n";
    return;
  }
  for (const ::moe::rt::LayerStats &layer : ::moe::rt::snapshotStats(*model)) {
    const ::moe::rt::Counters &counters = layer.counters;
    const ::moe::rt::LoadMetrics &m = layer.metrics;
    llvm::outs() << llvm::format("layer %s: %lld calls, %lld tokens\n",
                                 layer.function.c_str(),
                                 static_cast<long long>(counters.calls),
                                 static_cast<long long>(counters.tokens));
    llvm::outs() << llvm::format(
        "  experts/token %.4f  max/mean load %.4f  cv %.4f  entropy %.4f  "
        "jain %.4f  drop rate %.4f\n",
        m.meanExpertsPerToken, m.maxLoadRatio, m.loadCV, m.normalizedEntropy,
        m.jainFairness, m.dropRate);
    llvm::outs() << "  expert  assignments  dropped\n";
    for (size_t e = 0; e < counters.assignments.size(); ++e)
      llvm::outs() << llvm::format(
          "  %6lld  %11lld  %7lld\n", static_cast<long long>(e),
          static_cast<long long>(counters.assignments[e]),
          static_cast<long long>(counters.dropped[e]));
  }
}

static llvm::Error writeStatisticsJSON(const CompiledFunction &function) {
  std::error_code ec;
  llvm::raw_fd_ostream os(statsJSON, ec);
  if (ec)
    return llvm::createStringError(ec, "cannot write " + statsJSON + ": " +
                                           ec.message());
  std::vector<::moe::rt::LayerStats> layers;
  if (function.model())
    layers = ::moe::rt::snapshotStats(*function.model());
  os << ::moe::rt::statsToJSON(layers) << "\n";
  return llvm::Error::success();
}

/// `library` next to this program: lib/ beside its bin/, as in the build
/// and install trees.
static std::string runtimeLibraryPath(const char *argv0, StringRef library) {
  std::string exe = llvm::sys::fs::getMainExecutable(
      argv0, reinterpret_cast<void *>(&runtimeLibraryPath));
  llvm::SmallString<256> path(llvm::sys::path::parent_path(
      llvm::sys::path::parent_path(exe)));
  llvm::sys::path::append(path, "lib", library);
  return std::string(path);
}

/// The exit code without a usable GPU, as moe-cuda-info's: the "skipped"
/// code of test harnesses.
static constexpr int kExitNoGpu = 77;

/// 0 when the CUDA runtime at `path` finds a usable GPU for which the
/// MOE_GPU_* settings are valid; otherwise says why and returns the exit
/// code (the runtime would abort at the first GPU operation).
static int requireGpu(const std::string &path) {
  void *library = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (!library)
    return fail("cannot load the CUDA runtime: " + llvm::Twine(dlerror()));
  auto check = reinterpret_cast<int32_t (*)(char *, int32_t)>(
      dlsym(library, "moe_cuda_check"));
  if (!check)
    return fail(path + " has no moe_cuda_check");
  char why[512] = "";
  switch (check(why, sizeof(why))) {
  case 0:
    return 0;
  case 1:
    llvm::errs() << "moe-run: error: --pipeline cuda needs a usable CUDA GPU: "
                 << why
                 << " (--pipeline cuda-emu runs the same kernels on the "
                    "host's SIMT emulator)\n";
    return kExitNoGpu;
  default:
    return fail(why);
  }
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  if (!takeStatsFlags(argc, argv))
    return 1;
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv,
      "moe-run: compile an moe module for the host and call one of its "
      "functions on .npy inputs\n\n"
      "  --stats              print each layer's expert statistics after the "
      "calls\n"
      "  --stats-json FILE    write them to FILE as JSON (docs/monitoring.md)"
      "\n");

  if (pipeline != "cpu" && pipeline != "cuda" && pipeline != "cuda-emu")
    return fail("--pipeline=" + pipeline + " is not available in this build "
                "(supported: cpu, cuda, cuda-emu)");
  bool cuda = pipeline != "cpu";
  if (!cuda && cudaChip.getNumOccurrences())
    return fail("--cuda-chip needs --pipeline=cuda or cuda-emu");
  // The kernel library needs sm_80 (bf16 mma.sync, cp.async).
  if (cuda && mlir::moe::cudaChipArchitecture(cudaChip) < 80)
    return fail("--cuda-chip=" + cudaChip +
                ": expected sm_80 or a newer architecture, such as sm_90 or "
                "sm_90a");
  if (cuda) {
    std::string bad = ::moe::rt::cuda::kernelChoicesError();
    if (!bad.empty())
      return fail(bad);
  }
  if (cuda && reference)
    return fail("--pipeline=" + pipeline +
                " has no reference mode: drop --reference");
  int modes = !inputs.empty() + !caseDirs.empty() + randomInputs;
  if (modes > 1)
    return fail("give only one of --input FILE..., --case-dir DIR... and "
                "--random-inputs");
  if (!caseDirs.empty() && (!outputDir.empty() || repeat > 0))
    return fail("--case-dir writes next to its inputs and does not time; "
                "drop --output-dir and --repeat");

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

  RunnerOptions options;
  options.optLevel = std::min(optLevel.getValue(), 3u);
  options.checkpoint = checkpointDir;
  options.reference = reference;
  options.stats = !noStats;
  options.coactivation = statsCoactivation;
  options.knobs = !noKnobs;
  options.narrowToBF16 = narrowToBF16;
  if (cuda) {
    options.cudaEmulate = pipeline == "cuda-emu";
    options.cudaChip = cudaChip;
    options.cudaRuntime = runtimeLibraryPath(
        argv[0], options.cudaEmulate ? "libmoe_cuda_emulator.so"
                                     : "libmoe_cuda_runtime.so");
  }
  if (noStats && (printStats || !statsJSON.empty() || !statsHistory.empty() ||
                  statsCoactivation))
    return fail("--no-stats contradicts --stats, --stats-json, "
                "--stats-history and --stats-coactivation");
  if (numThreads > 0)
    ::moe::rt::cpu::setNumThreads(numThreads);
  auto function = CompiledFunction::compile(*module, entry, options);
  if (!function)
    return fail(function.takeError());
  // After the compilation, whose diagnostics do not depend on the machine;
  // before the first GPU operation, which would abort without a GPU.
  if (cuda && !options.cudaEmulate)
    if (int code = requireGpu(options.cudaRuntime))
      return code;

  if (llvm::Error error = applyKnobs(**function))
    return fail(std::move(error));
  if (!statsHistory.empty()) {
    std::error_code ec;
    historyStream = std::make_unique<llvm::raw_fd_ostream>(statsHistory, ec);
    if (ec)
      return fail("cannot write " + statsHistory + ": " + ec.message());
  }

  int status =
      caseDirs.empty() ? runInputs(**function) : runCaseDirs(**function);
  if (status == 0 && printStats)
    printStatistics(**function);
  if (status == 0 && !statsJSON.empty())
    if (llvm::Error error = writeStatisticsJSON(**function))
      return fail(std::move(error));
  return status;
}
