//===- CudaRuntime.cpp - the mgpu* functions on the CUDA driver -----------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The host side of code lowered by MLIR's GPU pipeline calls these: the
// gpu-to-llvm conversion emits the stream, event, memory and host-register
// calls, the gpu.binary / gpu.launch_func translation the module and launch
// calls, and the nvgpu-to-nvvm conversion the TMA descriptor call. Their
// signatures follow the LLVM types MLIR 22 declares them with (index is
// intptr_t, i8 is int8_t).
//
// The ABI has no status, so a failure prints one line,
//   moe cuda runtime: <call> failed: <why>
// and aborts, unless the calling thread catches failures
// (moe_cuda_catch_begin, for C APIs that return a status): then the first
// failure is kept for moe_cuda_catch_end, and the thread's later calls that
// enqueue or allocate do nothing (those that release still run). Every call
// runs with the primary context of the default device current on the
// calling thread.
//
//===----------------------------------------------------------------------===//

#include "CudaDriver.h"
#include "KernelChoices.h"
#include "moe_cuda.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#define MOE_CUDA_EXPORT extern "C" __attribute__((visibility("default")))

using namespace moe::rt::cuda;

namespace {

[[noreturn]] void fatal(const std::string &call, const std::string &why) {
  std::fprintf(stderr, "moe cuda runtime: %s failed: %s\n", call.c_str(),
               why.c_str());
  std::fflush(stderr);
  std::abort();
}

/// What a thread that catches failures keeps of the first one.
struct CaughtFailures {
  int depth = 0; // open moe_cuda_catch_begin scopes
  bool failed = false;
  int32_t code = 0; // the CUresult, or -1
  std::string message;
};
thread_local CaughtFailures caught;

/// Thrown by `fail` on a thread that catches failures, and caught by the
/// exported function it happened in (`work`, `release`): the failure never
/// unwinds through the caller's frames, which the lowering generated.
struct Failure {};

/// `call` failed because of `why` (a driver call's result `code`, or -1):
/// fatal, unless the thread catches failures.
[[noreturn]] void fail(const std::string &call, const std::string &why,
                       int32_t code = -1) {
  if (caught.depth == 0)
    fatal(call, why);
  if (!caught.failed) {
    caught.failed = true;
    caught.code = code;
    caught.message = call + " failed: " + why;
  }
  throw Failure();
}

/// Runs `body`, the work of an exported function that enqueues or
/// allocates: not at all after a caught failure on this thread, whose
/// later work would only fail or compute with what is missing. Then, or
/// when `body` fails, the function returns a null or zero result.
template <typename Body> auto work(Body body) -> decltype(body()) {
  using Result = decltype(body());
  if (caught.failed)
    return Result();
  try {
    return body();
  } catch (const Failure &) {
    return Result();
  }
}

/// Runs `body`, the work of an exported function that releases a resource,
/// after a caught failure too: a failed call must not leak what the calls
/// before it made.
template <typename Body> void release(Body body) {
  try {
    body();
  } catch (const Failure &) {
  }
}

/// Aborts naming `call` when `result` is an error. `call` is a string, or
/// a function that builds one: the checks on every launch, allocation and
/// entry build their message only on a failure.
template <typename Call>
void check(const Driver &d, CUresult result, const Call &call) {
  if (result == CUDA_SUCCESS)
    return;
  if constexpr (std::is_invocable_v<Call>)
    fail(call(), describeError(d, result), result);
  else
    fail(call, describeError(d, result), result);
}

/// Calls driver entry point `fn` and aborts when it fails.
#define MOE_CU(d, fn, ...) check(d, (d).fn(__VA_ARGS__), #fn)

const Driver &driverFor(const char *entry) {
  const char *reason = nullptr;
  if (const Driver *d = loadDriver(&reason))
    return *d;
  fail(entry, std::string("no usable CUDA GPU: ") + reason);
}

/// The primary context of each device, retained on first use and kept for
/// the life of the process (never destroyed, like the driver: module unloads
/// run from global destructors).
CUresult primaryContext(const Driver &d, int device, CUcontext &context) {
  static auto *contexts = new std::atomic<CUcontext>[d.deviceCount]();
  static std::mutex mutex;
  context = contexts[device].load();
  if (context)
    return CUDA_SUCCESS;
  std::lock_guard<std::mutex> lock(mutex);
  context = contexts[device].load();
  if (context)
    return CUDA_SUCCESS;
  CUdevice handle = 0;
  if (CUresult result = d.cuDeviceGet(&handle, device))
    return result;
  if (CUresult result = d.cuDevicePrimaryCtxRetain(&context, handle))
    return result;
  contexts[device].store(context);
  return CUDA_SUCCESS;
}

/// Makes the default device's primary context current on this thread
/// (cheap when it already is: other code on the thread may have changed it).
CUresult makeCurrent(const Driver &d) {
  CUcontext wanted = nullptr, current = nullptr;
  if (CUresult result = primaryContext(d, defaultDevice(), wanted))
    return result;
  if (CUresult result = d.cuCtxGetCurrent(&current))
    return result;
  return current == wanted ? CUDA_SUCCESS : d.cuCtxSetCurrent(wanted);
}

/// The driver, ready for `entry` to use on this thread.
const Driver &enter(const char *entry) {
  const Driver &d = driverFor(entry);
  check(d, makeCurrent(d), [&] {
    return std::string(entry) + ": making the context current";
  });
  return d;
}

CUdeviceptr devicePtr(const void *ptr) {
  return reinterpret_cast<CUdeviceptr>(ptr);
}

/// Launch dimensions arrive as intptr_t; the driver takes unsigned.
/// Returns false for an empty launch (a zero dimension).
bool launchDims(const char *entry, const char *what, const intptr_t dims[3],
                unsigned out[3]) {
  bool empty = false;
  for (int i = 0; i < 3; ++i) {
    if (dims[i] < 0 || uint64_t(dims[i]) > 0xffffffffu)
      fail(entry, std::string(what) + " size " + std::to_string(dims[0]) + "x" +
                      std::to_string(dims[1]) + "x" + std::to_string(dims[2]) +
                      " out of range [0, 2^32)");
    out[i] = unsigned(dims[i]);
    empty = empty || dims[i] == 0;
  }
  return !empty;
}

std::string dimsString(const unsigned dims[3]) {
  return std::to_string(dims[0]) + "x" + std::to_string(dims[1]) + "x" +
         std::to_string(dims[2]);
}

/// Allows `smem` bytes of dynamic shared memory for `function`: above the
/// default 48 KiB a kernel has to opt in, up to the device's limit.
void allowSharedMemory(const Driver &d, const char *entry, CUfunction function,
                       int32_t smem) {
  if (smem < 0)
    fail(entry, "negative dynamic shared memory size " + std::to_string(smem));
  if (smem <= 48 * 1024)
    return;
  CUdevice device = 0;
  int limit = 0;
  MOE_CU(d, cuDeviceGet, &device, defaultDevice());
  MOE_CU(d, cuDeviceGetAttribute, &limit,
         CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, device);
  if (smem > limit)
    fail(entry, "dynamic shared memory of " + std::to_string(smem) +
                    " bytes exceeds the device's limit of " +
                    std::to_string(limit) + " bytes");
  MOE_CU(d, cuFuncSetAttribute, function,
         CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem);
}

/// The ranked memref descriptor that MLIR passes by pointer: allocated and
/// aligned pointers, offset, then `rank` sizes and `rank` strides.
struct MemRefView {
  char *aligned;
  int64_t offset;
  const int64_t *sizes; // then the strides
};

MemRefView viewMemRef(const void *descriptor) {
  auto *bytes = static_cast<const char *>(descriptor);
  MemRefView view;
  std::memcpy(&view.aligned, bytes + sizeof(void *), sizeof(void *));
  std::memcpy(&view.offset, bytes + 2 * sizeof(void *), sizeof(int64_t));
  view.sizes = reinterpret_cast<const int64_t *>(bytes + 2 * sizeof(void *) +
                                                 sizeof(int64_t));
  return view;
}

/// The bytes a memref spans from its first element; 0 when it is empty.
uint64_t memRefSpan(const char *entry, int64_t rank, const MemRefView &view,
                    int64_t elementSize) {
  uint64_t lastIndex = 0;
  for (int64_t i = 0; i < rank; ++i) {
    int64_t size = view.sizes[i], stride = view.sizes[rank + i];
    if (size == 0)
      return 0;
    if (size < 0 || stride < 0)
      fail(entry, "memref dimension " + std::to_string(i) + " has size " +
                      std::to_string(size) + " and stride " +
                      std::to_string(stride) + ", expected both >= 0");
    lastIndex += uint64_t(size - 1) * uint64_t(stride);
  }
  return (lastIndex + 1) * uint64_t(elementSize);
}

char *memRefStart(const MemRefView &view, int64_t elementSize) {
  return view.aligned + view.offset * elementSize;
}

} // namespace

//===----------------------------------------------------------------------===//
// Kernel times (MOE_CUDA_PROFILE)
//===----------------------------------------------------------------------===//

namespace {
/// MOE_CUDA_PROFILE: unset, empty or 0, off; 1, the report goes to stderr;
/// anything else is the path of a file the report is appended to.
struct ProfileSettings {
  bool on = false;
  std::string path;
};

const ProfileSettings &profileSettings() {
  static const ProfileSettings settings = [] {
    const char *env = std::getenv("MOE_CUDA_PROFILE");
    std::string value = env ? env : "";
    ProfileSettings s;
    s.on = !value.empty() && value != "0";
    if (s.on && value != "1")
      s.path = value;
    return s;
  }();
  return settings;
}

bool profiling() { return profileSettings().on; }

/// The GPU time of every kernel launch, from a pair of events recorded
/// around it on its stream, by kernel and grid. Launches on a stream that is
/// being captured are not timed: a graph runs later, and its kernels are
/// timed by whoever replays it. The events are read when the report is
/// written, or when many launches wait to be read, which synchronizes with
/// their streams: profiling changes the timing of the host, not what a
/// kernel takes.
class Profile {
public:
  static Profile &get() {
    static Profile *profile = new Profile;
    return *profile;
  }

  void name(CUfunction function, const char *name) {
    std::lock_guard<std::mutex> lock(mutex);
    names.emplace(function, name ? name : "?");
  }

  /// Before a launch on `stream`: its start event, or null when the launch
  /// is not timed.
  CUevent begin(const Driver &d, CUstream stream) {
    int status = 0;
    CUresult result = d.cuStreamIsCapturing(stream, &status);
    if (result == CUDA_ERROR_STREAM_CAPTURE_IMPLICIT || status != 0)
      return nullptr;
    check(d, result, "cuStreamIsCapturing");
    std::lock_guard<std::mutex> lock(mutex);
    if (!reportAtExit) {
      reportAtExit = true;
      std::atexit([] { Profile::get().report(); });
    }
    CUevent start = event(d);
    MOE_CU(d, cuEventRecord, start, stream);
    return start;
  }

  /// After the launch that `begin` gave `start` for.
  void end(const Driver &d, CUstream stream, CUevent start, CUfunction function,
           const unsigned grid[3]) {
    std::lock_guard<std::mutex> lock(mutex);
    CUevent stop = event(d);
    MOE_CU(d, cuEventRecord, stop, stream);
    auto it = names.find(function);
    pending.push_back({(it == names.end() ? std::string("?") : it->second) +
                           " " + dimsString(grid),
                       start, stop});
    // Bounded: read the oldest launches' times once many wait.
    if (pending.size() >= kMaxPending)
      check(d, drain(d), "MOE_CUDA_PROFILE: reading kernel times");
  }

  /// Writes the times of the launches since the last report and forgets
  /// them; the launches reported.
  int64_t report() {
    const Driver *d = loadDriver();
    if (!d)
      return 0;
    std::lock_guard<std::mutex> lock(mutex);
    // Also at exit, where a failure is reported rather than fatal.
    CUresult result = makeCurrent(*d);
    if (result == CUDA_SUCCESS)
      result = drain(*d);
    if (result != CUDA_SUCCESS)
      std::fprintf(stderr,
                   "moe cuda runtime: MOE_CUDA_PROFILE: reading kernel times "
                   "failed: %s\n",
                   describeError(*d, result).c_str());
    int64_t launches = 0;
    double totalMs = 0;
    struct Line {
      std::string key;
      size_t count;
      double total, median, mean;
    };
    std::vector<Line> lines;
    for (auto &[key, ms] : times) {
      std::sort(ms.begin(), ms.end());
      double total = 0;
      for (float t : ms)
        total += t;
      size_t n = ms.size();
      double median = n % 2 ? ms[n / 2] : (ms[n / 2 - 1] + ms[n / 2]) / 2.0;
      lines.push_back({key, n, total, median, total / n});
      launches += n;
      totalMs += total;
    }
    times.clear();
    if (!launches)
      return 0;
    // The most time first; ties by name, so that the report is stable.
    std::sort(lines.begin(), lines.end(), [](const Line &a, const Line &b) {
      return a.total != b.total ? a.total > b.total : a.key < b.key;
    });
    const std::string &path = profileSettings().path;
    FILE *out = path.empty() ? stderr : std::fopen(path.c_str(), "a");
    if (!out) {
      std::fprintf(stderr,
                   "moe cuda runtime: MOE_CUDA_PROFILE: cannot open '%s': "
                   "%s\n",
                   path.c_str(), std::strerror(errno));
      out = stderr;
    }
    std::fprintf(out,
                 "moe cuda profile: %lld kernel launch%s, %.3f ms\n"
                 "%-40s %10s %12s %12s %12s\n",
                 static_cast<long long>(launches), launches == 1 ? "" : "es",
                 totalMs, "kernel grid", "launches", "total ms", "median us",
                 "mean us");
    for (const Line &line : lines)
      std::fprintf(out, "%-40s %10zu %12.4f %12.2f %12.2f\n", line.key.c_str(),
                   line.count, line.total, line.median * 1000.0,
                   line.mean * 1000.0);
    std::fflush(out);
    if (out != stderr)
      std::fclose(out);
    return launches;
  }

private:
  static constexpr size_t kMaxPending = 4096;

  struct Pending {
    std::string key;
    CUevent start, stop;
  };

  /// An event with timing, from the ones already read or a new one.
  CUevent event(const Driver &d) {
    if (!spare.empty()) {
      CUevent e = spare.back();
      spare.pop_back();
      return e;
    }
    CUevent e = nullptr;
    MOE_CU(d, cuEventCreate, &e, CU_EVENT_DEFAULT);
    return e;
  }

  /// Reads the time of every pending launch (waiting for it to finish);
  /// on a failure the launches not read yet are dropped.
  CUresult drain(const Driver &d) {
    CUresult result = CUDA_SUCCESS;
    for (const Pending &p : pending) {
      float ms = 0;
      if (result == CUDA_SUCCESS)
        result = d.cuEventSynchronize(p.stop);
      if (result == CUDA_SUCCESS)
        result = d.cuEventElapsedTime(&ms, p.start, p.stop);
      if (result == CUDA_SUCCESS)
        times[p.key].push_back(ms);
      spare.push_back(p.start);
      spare.push_back(p.stop);
    }
    pending.clear();
    return result;
  }

  std::mutex mutex;
  std::unordered_map<CUfunction, std::string> names;
  std::vector<Pending> pending;
  std::vector<CUevent> spare;
  std::map<std::string, std::vector<float>> times;
  bool reportAtExit = false;
};
} // namespace

//===----------------------------------------------------------------------===//
// Caught failures
//===----------------------------------------------------------------------===//

MOE_CUDA_EXPORT void moe_cuda_catch_begin(void) { ++caught.depth; }

MOE_CUDA_EXPORT int32_t moe_cuda_caught(void) {
  return caught.failed ? caught.code : 0;
}

MOE_CUDA_EXPORT int32_t moe_cuda_catch_end(char *message, int32_t size) {
  if (caught.depth == 0)
    fatal("moe_cuda_catch_end", "no moe_cuda_catch_begin before it");
  int32_t code = caught.failed ? caught.code : 0;
  if (message && size > 0)
    std::snprintf(message, static_cast<size_t>(size), "%s",
                  caught.failed ? caught.message.c_str() : "");
  if (--caught.depth == 0)
    caught = CaughtFailures();
  return code;
}

MOE_CUDA_EXPORT int64_t moe_cuda_profile_report(void) {
  return profiling() ? Profile::get().report() : 0;
}

//===----------------------------------------------------------------------===//
// Modules and launches
//===----------------------------------------------------------------------===//

/// A cubin or fatbin; `size` is not needed by the driver.
/// Whether there is no usable GPU: modules are loaded by global constructors,
/// and a program (or a library it links) must still start without one. Such
/// a load returns NULL, and the first use of the module reports why.
static bool noGPU() {
  const char *reason = nullptr;
  return loadDriver(&reason) == nullptr;
}

/// Why modules were not loaded: a binary for another architecture (the
/// kernel library's sm_90a kernels on any other device) is loaded at
/// startup like the others, but the host code never launches its kernels
/// there; a launch that does reports these reasons. Any other load failure
/// is an error at once.
static std::mutex foreignMutex;
static std::string foreignModules;

static CUmodule foreignModule(const std::string &why) {
  std::lock_guard<std::mutex> lock(foreignMutex);
  foreignModules += (foreignModules.empty() ? "" : "; ") + why;
  return nullptr;
}

/// "compute capability 9.0" for architecture `arch` (10 major + minor).
static std::string capabilityName(int arch) {
  return "compute capability " + std::to_string(arch / 10) + "." +
         std::to_string(arch % 10);
}

/// The architecture of GPU code named `sm_<arch>[a|f]` (`name` after its
/// "sm_"): its number, and in `specific` whether it is an
/// architecture-specific target (sm_90a); 0 when `name` is not one.
static long parseArchitecture(const char *name, bool &specific,
                              const char **rest = nullptr) {
  char *end = nullptr;
  long arch = std::strtol(name, &end, 10);
  if (end == name || arch <= 0)
    return 0;
  specific = *end == 'a';
  if (rest)
    *rest = end;
  return arch;
}

/// Whether a device of architecture `device` runs code for architecture
/// `arch`: PTX (`ptx`) is compiled by the driver for its architecture or a
/// newer one, a cubin runs on its major architecture from its minor one up,
/// and code for an architecture-specific target (`specific`, sm_90a) runs
/// on that architecture only.
static bool runsOn(long arch, bool specific, bool ptx, int device) {
  if (specific)
    return arch == device;
  return arch <= device && (ptx || arch / 10 == device / 10);
}

/// The compute capability (10 major + minor) of the current device, asked
/// of the driver once per device (the kernel library asks on every layer).
static int deviceArchitecture(const Driver &d) {
  static constexpr int kCachedDevices = 64;
  static std::atomic<int> cached[kCachedDevices] = {};
  int ordinal = defaultDevice();
  if (ordinal >= 0 && ordinal < kCachedDevices)
    if (int arch = cached[ordinal].load(std::memory_order_relaxed))
      return arch;
  CUdevice device = 0;
  int major = 0, minor = 0;
  MOE_CU(d, cuDeviceGet, &device, ordinal);
  MOE_CU(d, cuDeviceGetAttribute, &major,
         CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device);
  MOE_CU(d, cuDeviceGetAttribute, &minor,
         CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device);
  int arch = 10 * major + minor;
  if (ordinal >= 0 && ordinal < kCachedDevices)
    cached[ordinal].store(arch, std::memory_order_relaxed);
  return arch;
}

namespace {
/// The functions cuModuleGetFunction found, by module and name. The host
/// code of a kernel library asks for its function before every launch
/// (and before every launch on an empty grid, which it skips), 48 times for
/// the 8 launches of a dropless decoding layer; the driver takes its locks
/// for each lookup. Also which modules' kernels wait for the kernel before
/// them (moe-gpu-dependent-launch marked them), and their functions. Entries
/// of a module go with it at mgpuModuleUnload, before the driver may reuse
/// the handles.
class FunctionCache {
public:
  static FunctionCache &get() {
    // Never destroyed: modules are unloaded by destructors at exit too.
    static FunctionCache *cache = new FunctionCache;
    return *cache;
  }

  /// A module was loaded; `waits`: its kernels wait for the kernel before
  /// them.
  void loaded(CUmodule module, bool waits) {
    std::lock_guard<std::mutex> lock(mutex);
    modules[module].waits = waits;
  }

  CUfunction find(CUmodule module, const char *name) {
    std::lock_guard<std::mutex> lock(mutex);
    auto m = modules.find(module);
    if (m == modules.end())
      return nullptr;
    auto f = m->second.functions.find(name);
    return f == m->second.functions.end() ? nullptr : f->second;
  }

  void add(CUmodule module, const char *name, CUfunction function) {
    std::lock_guard<std::mutex> lock(mutex);
    Module &m = modules[module];
    m.functions.emplace(name, function);
    if (m.waits)
      waiting.insert(function);
  }

  /// The name `function` was found by, for messages ("?" when unknown).
  std::string name(CUfunction function) {
    std::lock_guard<std::mutex> lock(mutex);
    for (const auto &module : modules)
      for (const auto &entry : module.second.functions)
        if (entry.second == function)
          return entry.first;
    return "?";
  }

  /// Whether `function` is a kernel that waits for the kernel before it.
  bool waits(CUfunction function) {
    std::lock_guard<std::mutex> lock(mutex);
    return waiting.count(function) != 0;
  }

  void forget(CUmodule module) {
    std::lock_guard<std::mutex> lock(mutex);
    auto m = modules.find(module);
    if (m == modules.end())
      return;
    for (const auto &entry : m->second.functions)
      waiting.erase(entry.second);
    modules.erase(m);
  }

private:
  struct Module {
    bool waits = false;
    std::map<std::string, CUfunction, std::less<>> functions;
  };
  std::mutex mutex;
  std::unordered_map<CUmodule, Module> modules;
  std::unordered_set<CUfunction> waiting;
};
} // namespace

/// The global with which moe-gpu-dependent-launch marks a module whose
/// kernels all begin by waiting for the kernel before them.
static constexpr const char *kDependentLaunchMarker = "moe_dependent_launch";

/// Records `module`, just loaded, and whether its kernels wait for the
/// kernel before them.
static void recordModule(const Driver &d, CUmodule module) {
  CUdeviceptr marker = 0;
  size_t bytes = 0;
  CUresult result =
      d.cuModuleGetGlobal(&marker, &bytes, module, kDependentLaunchMarker);
  if (result != CUDA_ERROR_NOT_FOUND)
    check(d, result, [] {
      return std::string("cuModuleGetGlobal(\"") + kDependentLaunchMarker +
             "\")";
    });
  FunctionCache::get().loaded(module, result == CUDA_SUCCESS);
}

MOE_CUDA_EXPORT CUmodule mgpuModuleLoad(void *data, size_t size) {
  return work([&]() -> CUmodule {
    if (noGPU())
      return nullptr;
    const Driver &d = enter("mgpuModuleLoad");
    CUmodule module = nullptr;
    CUresult result = d.cuModuleLoadData(&module, data);
    if (result == CUDA_ERROR_NO_BINARY_FOR_GPU)
      return foreignModule("cuModuleLoadData: " + describeError(d, result));
    check(d, result, "cuModuleLoadData");
    recordModule(d, module);
    return module;
  });
}

/// NUL-terminated PTX, compiled by the driver at optimization level
/// `optLevel` (0-4). PTX the device cannot run is not loaded (the driver
/// would fail to compile it, in a global constructor): PTX for an
/// architecture-specific target (`.target sm_90a`) of another device, and
/// PTX for a newer architecture than the device's (a library built for
/// sm_90 on an sm_80 device).
MOE_CUDA_EXPORT CUmodule mgpuModuleLoadJIT(void *data, int optLevel) {
  return work([&]() -> CUmodule {
    if (noGPU())
      return nullptr;
    const Driver &d = enter("mgpuModuleLoadJIT");
    const char *ptx = static_cast<const char *>(data);
    if (const char *target =
            ptx ? std::strstr(ptx, "\n.target sm_") : nullptr) {
      bool specific = false;
      long arch =
          parseArchitecture(target + std::strlen("\n.target sm_"), specific);
      int device = deviceArchitecture(d);
      if (arch && !runsOn(arch, specific, /*ptx=*/true, device))
        return foreignModule("PTX for sm_" + std::to_string(arch) +
                             (specific ? "a" : "") + " on a device of " +
                             capabilityName(device));
    }
    static constexpr size_t kLogSize = 8192;
    std::unique_ptr<char[]> log(new char[kLogSize]());
    int options[] = {CU_JIT_ERROR_LOG_BUFFER,
                     CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
                     CU_JIT_OPTIMIZATION_LEVEL};
    intptr_t level = optLevel < 0 ? 0 : optLevel > 4 ? 4 : optLevel;
    void *values[] = {log.get(), reinterpret_cast<void *>(kLogSize),
                      reinterpret_cast<void *>(level)};
    CUmodule module = nullptr;
    CUresult result = d.cuModuleLoadDataEx(&module, data, 3, options, values);
    if (result != CUDA_SUCCESS) {
      log[kLogSize - 1] = '\0';
      std::string why = describeError(d, result);
      if (log[0])
        why += "\n" + std::string(log.get());
      fail("cuModuleLoadDataEx", why, result);
    }
    recordModule(d, module);
    return module;
  });
}

/// Runs from global destructors too, possibly after the driver shut down.
MOE_CUDA_EXPORT void mgpuModuleUnload(CUmodule module) {
  release([&] {
    if (!module)
      return;
    FunctionCache::get().forget(module);
    const Driver &d = driverFor("mgpuModuleUnload");
    CUresult result = makeCurrent(d);
    if (result == CUDA_SUCCESS)
      result = d.cuModuleUnload(module);
    if (result != CUDA_ERROR_DEINITIALIZED)
      check(d, result, "cuModuleUnload");
  });
}

/// A kernel about to run must come from a module that was loaded.
static void requireLoaded(const char *entry, CUfunction function) {
  if (function)
    return;
  std::lock_guard<std::mutex> lock(foreignMutex);
  fail(entry, "the kernel's module is not for this device: " +
                  foreignModules);
}

/// NULL for a module for another architecture: mgpuLaunchKernel reports it
/// unless the grid is empty (a kernel the host code chose not to run).
MOE_CUDA_EXPORT CUfunction mgpuModuleGetFunction(CUmodule module,
                                                 const char *name) {
  return work([&]() -> CUfunction {
    const Driver &d = enter("mgpuModuleGetFunction");
    if (!module)
      return nullptr;
    if (name)
      if (CUfunction function = FunctionCache::get().find(module, name))
        return function;
    CUfunction function = nullptr;
    check(d, d.cuModuleGetFunction(&function, module, name), [&] {
      return std::string("cuModuleGetFunction(\"") + (name ? name : "") + "\")";
    });
    FunctionCache::get().add(module, name, function);
    if (profiling())
      Profile::get().name(function, name);
    return function;
  });
}

/// Whether `function` is launched with programmatic stream serialization,
/// overlapping its launch with the kernel before it on its stream: when
/// MOE_GPU_DEPENDENT_LAUNCH=1, the kernel waits for that kernel
/// (moe-gpu-dependent-launch) and the device has compute capability 9.0 or
/// newer. Any other kernel may read what the kernel before it wrote at once.
static bool dependentLaunch(const Driver &d, const char *entry,
                            CUfunction function) {
  return readChoice(entry, moe::rt::cuda::dependentLaunch) &&
         FunctionCache::get().waits(function) && deviceArchitecture(d) >= 90;
}

/// cuLaunchKernelEx's configuration of a launch, with `attributes`; the
/// programmatic stream serialization of dependentLaunch is added in
/// `spare`, when `dependent`.
static CUlaunchConfig launchConfig(const unsigned grid[3],
                                   const unsigned block[3], int32_t smem,
                                   CUstream stream,
                                   CUlaunchAttribute *attributes,
                                   unsigned count, bool dependent) {
  if (dependent) {
    CUlaunchAttribute &spare = attributes[count++];
    spare = {};
    spare.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
    spare.value.programmaticStreamSerializationAllowed = 1;
  }
  CUlaunchConfig config = {};
  config.gridDimX = grid[0];
  config.gridDimY = grid[1];
  config.gridDimZ = grid[2];
  config.blockDimX = block[0];
  config.blockDimY = block[1];
  config.blockDimZ = block[2];
  config.sharedMemBytes = unsigned(smem);
  config.hStream = stream;
  config.attrs = attributes;
  config.numAttrs = count;
  return config;
}

MOE_CUDA_EXPORT void mgpuLaunchKernel(CUfunction function, intptr_t gridX,
                                      intptr_t gridY, intptr_t gridZ,
                                      intptr_t blockX, intptr_t blockY,
                                      intptr_t blockZ, int32_t smem,
                                      CUstream stream, void **params,
                                      void **extra, size_t paramsCount) {
  work([&] {
    const char *entry = "mgpuLaunchKernel";
    const Driver &d = enter(entry);
    const intptr_t gridIn[3] = {gridX, gridY, gridZ};
    const intptr_t blockIn[3] = {blockX, blockY, blockZ};
    unsigned grid[3], block[3];
    bool gridOk = launchDims(entry, "grid", gridIn, grid);
    bool blockOk = launchDims(entry, "block", blockIn, block);
    // No blocks or no threads: nothing to run (an empty batch of tokens).
    if (!gridOk || !blockOk)
      return;
    requireLoaded(entry, function);
    allowSharedMemory(d, entry, function, smem);
    CUevent start = profiling() ? Profile::get().begin(d, stream) : nullptr;
    bool dependent = dependentLaunch(d, entry, function);
    CUresult result;
    if (dependent) {
      CUlaunchAttribute attribute;
      CUlaunchConfig config =
          launchConfig(grid, block, smem, stream, &attribute, 0, dependent);
      result = d.cuLaunchKernelEx(&config, function, params, extra);
    } else {
      result = d.cuLaunchKernel(function, grid[0], grid[1], grid[2], block[0],
                                block[1], block[2], unsigned(smem), stream,
                                params, extra);
    }
    check(d, result, [&] {
      return std::string(dependent ? "cuLaunchKernelEx(dependent launch, "
                                   : "cuLaunchKernel(") +
             FunctionCache::get().name(function) + ", grid " +
             dimsString(grid) + ", block " + dimsString(block) + ")";
    });
    if (start)
      Profile::get().end(d, stream, start, function, grid);
  });
}

/// A bad setting of the kernel library's choices (KernelChoices.cpp).
/// Fatal even where failures are caught: KernelChoices' exported functions
/// do not catch, and the C APIs check the settings before the first GPU
/// operation (moe_cuda_check).
void moe::rt::cuda::failKernelChoice(const char *entry,
                                     const std::string &bad) {
  fatal(entry, bad);
}

/// Why MOE_GPU_WGMMA=1 cannot be had on the default device, of
/// architecture `arch` (an empty string on compute capability 9.0).
static std::string wgmmaDeviceError(int arch) {
  if (arch == 90)
    return "";
  return "MOE_GPU_WGMMA=1 asks for the sm_90a kernels, but device " +
         std::to_string(defaultDevice()) + " has " + capabilityName(arch);
}

/// Whether the expert GEMMs of the kernel library take their sm_90a
/// kernels (wgmma): on a device of compute capability 9.0, the only one
/// that runs sm_90a code, unless MOE_GPU_WGMMA=0; MOE_GPU_WGMMA=1 asks for
/// them and fails on any other device.
MOE_CUDA_EXPORT int32_t moe_gpu_use_wgmma(void) {
  return work([&]() -> int32_t {
    const char *entry = "moe_gpu_use_wgmma";
    std::optional<int> choice = readChoice(entry, wgmmaChoice);
    if (choice == 0)
      return 0;
    int arch = deviceArchitecture(enter(entry));
    if (!choice)
      return arch == 90;
    std::string bad = wgmmaDeviceError(arch);
    if (!bad.empty())
      fail(entry, bad);
    return 1;
  });
}

MOE_CUDA_EXPORT int32_t moe_cuda_check(char *message, int32_t size) {
  return work([&]() -> int32_t {
    const char *reason = nullptr;
    int32_t status = 0;
    std::string why;
    if (!moe_cuda_available(&reason)) {
      status = 1;
      why = reason && *reason ? reason : "unknown reason";
    } else {
      why = kernelChoicesError();
      if (why.empty() && readChoice("moe_cuda_check", wgmmaChoice) == 1)
        why = wgmmaDeviceError(deviceArchitecture(enter("moe_cuda_check")));
      status = why.empty() ? 0 : 2;
    }
    if (message && size > 0)
      std::snprintf(message, static_cast<size_t>(size), "%s", why.c_str());
    return status;
  });
}

/// Whether the default device runs GPU code for `chip` embedded as `format`
/// (moe-compile's --cuda-chip and --cuda-format), by the rules of runsOn.
MOE_CUDA_EXPORT int32_t moe_cuda_can_run(const char *chip, const char *format,
                                         char *message, int32_t size) {
  std::string why;
  std::string name = chip ? chip : "", kind = format ? format : "";
  bool specific = false;
  const char *end = "";
  long arch = name.rfind("sm_", 0) == 0
                  ? parseArchitecture(name.c_str() + 3, specific, &end)
                  : 0;
  if (!arch || (*end && std::string(end) != "a" && std::string(end) != "f")) {
    why = "unknown GPU architecture '" + name + "'";
  } else if (kind != "isa" && kind != "bin" && kind != "fatbin") {
    why = "unknown GPU code format '" + kind + "'";
  } else {
    int device =
        work([] { return deviceArchitecture(enter("moe_cuda_can_run")); });
    // A fatbin holds the cubin and its PTX: it runs where the PTX does.
    if (device && !runsOn(arch, specific, kind != "bin", device)) {
      why = std::string(kind == "isa"   ? "PTX"
                        : kind == "bin" ? "a cubin"
                                        : "a fatbin") +
            " for " + name + " does not run on device " +
            std::to_string(defaultDevice()) + " of " + capabilityName(device) +
            ": compile for it with --cuda-chip sm_" + std::to_string(device);
      if (kind == "bin" && !specific && arch <= device)
        why += ", or as a fatbin (--cuda-format fatbin), whose PTX newer "
               "devices compile";
    }
  }
  if (message && size > 0)
    std::snprintf(message, static_cast<size_t>(size), "%s", why.c_str());
  return why.empty();
}

/// Thread-block clusters (sm_90+). The grid counts blocks, and is a
/// multiple of the cluster.
MOE_CUDA_EXPORT void
mgpuLaunchClusterKernel(CUfunction function, intptr_t clusterX,
                        intptr_t clusterY, intptr_t clusterZ, intptr_t gridX,
                        intptr_t gridY, intptr_t gridZ, intptr_t blockX,
                        intptr_t blockY, intptr_t blockZ, int32_t smem,
                        CUstream stream, void **params, void **extra) {
  work([&] {
    const char *entry = "mgpuLaunchClusterKernel";
    const Driver &d = enter(entry);
    const intptr_t clusterIn[3] = {clusterX, clusterY, clusterZ};
    const intptr_t gridIn[3] = {gridX, gridY, gridZ};
    const intptr_t blockIn[3] = {blockX, blockY, blockZ};
    unsigned cluster[3], grid[3], block[3];
    if (!launchDims(entry, "cluster", clusterIn, cluster))
      fail(entry, "empty cluster " + dimsString(cluster));
    bool gridOk = launchDims(entry, "grid", gridIn, grid);
    bool blockOk = launchDims(entry, "block", blockIn, block);
    if (!gridOk || !blockOk)
      return;
    for (int i = 0; i < 3; ++i)
      if (grid[i] % cluster[i] != 0)
        fail(entry, "grid " + dimsString(grid) +
                        " is not a multiple of cluster " + dimsString(cluster));
    requireLoaded(entry, function);
    allowSharedMemory(d, entry, function, smem);
    // Up to 8 blocks is the portable cluster size; beyond, the kernel opts in.
    if (uint64_t(cluster[0]) * cluster[1] * cluster[2] > 8)
      MOE_CU(d, cuFuncSetAttribute, function,
             CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED, 1);

    CUlaunchAttribute attributes[3] = {};
    attributes[0].id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
    attributes[0].value.clusterDim = {cluster[0], cluster[1], cluster[2]};
    attributes[1].id = CU_LAUNCH_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE;
    attributes[1].value.clusterSchedulingPolicyPreference =
        CU_CLUSTER_SCHEDULING_POLICY_SPREAD;
    CUlaunchConfig config =
        launchConfig(grid, block, smem, stream, attributes, 2,
                     dependentLaunch(d, entry, function));
    CUevent start = profiling() ? Profile::get().begin(d, stream) : nullptr;
    check(d, d.cuLaunchKernelEx(&config, function, params, extra), [&] {
      return "cuLaunchKernelEx(" + FunctionCache::get().name(function) +
             ", cluster " + dimsString(cluster) + ", grid " + dimsString(grid) +
             ", block " + dimsString(block) + ")";
    });
    if (start)
      Profile::get().end(d, stream, start, function, grid);
  });
}

//===----------------------------------------------------------------------===//
// Streams and events
//===----------------------------------------------------------------------===//

MOE_CUDA_EXPORT CUstream mgpuStreamCreate(void) {
  return work([&]() -> CUstream {
    const Driver &d = enter("mgpuStreamCreate");
    CUstream stream = nullptr;
    MOE_CU(d, cuStreamCreate, &stream, CU_STREAM_NON_BLOCKING);
    return stream;
  });
}

MOE_CUDA_EXPORT void mgpuStreamDestroy(CUstream stream) {
  release([&] {
    const Driver &d = enter("mgpuStreamDestroy");
    MOE_CU(d, cuStreamDestroy, stream);
  });
}

MOE_CUDA_EXPORT void mgpuStreamSynchronize(CUstream stream) {
  work([&] {
    const Driver &d = enter("mgpuStreamSynchronize");
    MOE_CU(d, cuStreamSynchronize, stream);
  });
}

/// 1 when `stream` is being captured into a CUDA graph (the runtime's C API
/// refuses work that would synchronize inside a capture), else 0. The
/// legacy default stream while a blocking stream captures counts as
/// captured: the driver calls it unusable until that capture ends.
MOE_CUDA_EXPORT int32_t moe_gpu_stream_is_capturing(CUstream stream) {
  return work([&]() -> int32_t {
    const Driver &d = enter("moe_gpu_stream_is_capturing");
    int status = 0; // CU_STREAM_CAPTURE_STATUS_NONE
    CUresult result = d.cuStreamIsCapturing(stream, &status);
    if (result == CUDA_ERROR_STREAM_CAPTURE_IMPLICIT)
      return 1;
    check(d, result, "cuStreamIsCapturing");
    return status != 0;
  });
}

MOE_CUDA_EXPORT void mgpuStreamWaitEvent(CUstream stream, CUevent event) {
  work([&] {
    const Driver &d = enter("mgpuStreamWaitEvent");
    MOE_CU(d, cuStreamWaitEvent, stream, event, 0);
  });
}

MOE_CUDA_EXPORT CUevent mgpuEventCreate(void) {
  return work([&]() -> CUevent {
    const Driver &d = enter("mgpuEventCreate");
    CUevent event = nullptr;
    MOE_CU(d, cuEventCreate, &event, CU_EVENT_DISABLE_TIMING);
    return event;
  });
}

MOE_CUDA_EXPORT void mgpuEventDestroy(CUevent event) {
  release([&] {
    const Driver &d = enter("mgpuEventDestroy");
    MOE_CU(d, cuEventDestroy, event);
  });
}

MOE_CUDA_EXPORT void mgpuEventSynchronize(CUevent event) {
  work([&] {
    const Driver &d = enter("mgpuEventSynchronize");
    MOE_CU(d, cuEventSynchronize, event);
  });
}

MOE_CUDA_EXPORT void mgpuEventRecord(CUevent event, CUstream stream) {
  work([&] {
    const Driver &d = enter("mgpuEventRecord");
    MOE_CU(d, cuEventRecord, event, stream);
  });
}

//===----------------------------------------------------------------------===//
// Memory
//===----------------------------------------------------------------------===//

namespace {
/// Device memory allocated in stream order: the only memory that is freed
/// in stream order too.
std::mutex streamOrderedMutex;
std::unordered_set<CUdeviceptr> streamOrdered;

/// The bytes a memory pool of the runtime keeps reserved across
/// synchronizations: MOE_CUDA_POOL_RELEASE_THRESHOLD, or all of them. A bad
/// value is an error.
uint64_t poolReleaseThreshold() {
  const char *env = std::getenv("MOE_CUDA_POOL_RELEASE_THRESHOLD");
  std::string value = env ? env : "";
  if (value.empty())
    return UINT64_MAX;
  errno = 0;
  char *end = nullptr;
  unsigned long long bytes = std::strtoull(value.c_str(), &end, 10);
  if (value.find_first_not_of("0123456789") != std::string::npos ||
      errno == ERANGE || *end)
    fail("mgpuMemAlloc",
         "MOE_CUDA_POOL_RELEASE_THRESHOLD must be a number of bytes, found '" +
             value + "'");
  return bytes;
}

/// The pools of the devices, created on first use and kept for the life of
/// the process; a null pool once made means the device has none.
struct Pools {
  std::mutex mutex;
  std::unique_ptr<CUmemoryPool[]> pool;
  std::unique_ptr<bool[]> made;
};

Pools &pools(const Driver &d) {
  static Pools *all = [&] {
    auto *p = new Pools;
    p->pool.reset(new CUmemoryPool[d.deviceCount]());
    p->made.reset(new bool[d.deviceCount]());
    return p;
  }();
  return *all;
}

/// The runtime's memory pool of `device`, from which memory is allocated in
/// stream order; null on a device without memory pools, whose driver's
/// default pool then serves. The driver's pools give their free memory back
/// to the system at every synchronization unless told to keep it; this one
/// keeps it (poolReleaseThreshold), so that a layer called again, after the
/// synchronization of its results, finds its temporaries' memory mapped
/// instead of asking the driver to map it anew. The pool is the runtime's
/// own, so that the settings of the device's default pool, which other code
/// of the process may use, stay as they are.
CUmemoryPool streamPool(const Driver &d, int device) {
  Pools &all = pools(d);
  std::lock_guard<std::mutex> lock(all.mutex);
  if (all.made[device])
    return all.pool[device];
  uint64_t threshold = poolReleaseThreshold();
  CUmemPoolProps props{};
  props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
  props.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  props.location.id = device;
  CUmemoryPool pool = nullptr;
  CUresult result = d.cuMemPoolCreate(&pool, &props);
  if (result == CUDA_ERROR_NOT_SUPPORTED) {
    pool = nullptr;
  } else {
    check(d, result, "cuMemPoolCreate(device " + std::to_string(device) + ")");
    MOE_CU(d, cuMemPoolSetAttribute, pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
           &threshold);
  }
  all.pool[device] = pool;
  all.made[device] = true;
  return pool;
}

/// Gives the free memory of `device`'s pool back to the system; the bytes
/// it released.
uint64_t trimPool(const Driver &d, int device) {
  Pools &all = pools(d);
  CUmemoryPool pool = nullptr;
  {
    std::lock_guard<std::mutex> lock(all.mutex);
    pool = all.pool[device];
  }
  if (!pool)
    return 0;
  uint64_t before = 0, after = 0;
  MOE_CU(d, cuMemPoolGetAttribute, pool, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT,
         &before);
  MOE_CU(d, cuMemPoolTrimTo, pool, 0);
  MOE_CU(d, cuMemPoolGetAttribute, pool, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT,
         &after);
  return before > after ? before - after : 0;
}

/// `allocate()`, and once more after the pool has given its free memory
/// back when the device is out of memory: the memory the pool keeps for
/// later calls must not be what makes an allocation fail.
template <typename Allocate>
CUresult allocateOrTrim(const Driver &d, Allocate allocate) {
  CUresult result = allocate();
  if (result == CUDA_ERROR_OUT_OF_MEMORY && trimPool(d, defaultDevice()) > 0)
    result = allocate();
  return result;
}
} // namespace

/// Device memory, or managed memory that the host can use as well when
/// `isHostShared` (gpu.alloc host_shared). With a stream, device memory is
/// allocated in stream order from the runtime's pool (streamPool), so that
/// a chain of GPU work on one stream needs no synchronization for its
/// temporaries (and a stream capture records them); without one, or for
/// host-shared memory, synchronously, and any stream may use it.
MOE_CUDA_EXPORT void *mgpuMemAlloc(uint64_t sizeBytes, CUstream stream,
                                   int8_t isHostShared) {
  return work([&]() -> void * {
    const Driver &d = enter("mgpuMemAlloc");
    if (sizeBytes == 0)
      return nullptr;
    CUdeviceptr ptr = 0;
    bool ordered = stream && !isHostShared;
    CUmemoryPool pool = ordered ? streamPool(d, defaultDevice()) : nullptr;
    auto allocate = [&] {
      if (isHostShared)
        return d.cuMemAllocManaged(&ptr, sizeBytes, CU_MEM_ATTACH_GLOBAL);
      if (pool)
        return d.cuMemAllocFromPoolAsync(&ptr, sizeBytes, pool, stream);
      if (ordered)
        return d.cuMemAllocAsync(&ptr, sizeBytes, stream);
      return d.cuMemAlloc(&ptr, sizeBytes);
    };
    check(d, allocateOrTrim(d, allocate), [&] {
      return std::string(isHostShared ? "cuMemAllocManaged"
                         : pool       ? "cuMemAllocFromPoolAsync"
                         : ordered    ? "cuMemAllocAsync"
                                      : "cuMemAlloc") +
             "(" + std::to_string(sizeBytes) + " bytes)";
    });
    if (ordered) {
      std::lock_guard<std::mutex> lock(streamOrderedMutex);
      streamOrdered.insert(ptr);
    }
    return reinterpret_cast<void *>(ptr);
  });
}

MOE_CUDA_EXPORT uint64_t moe_cuda_release_memory(void) {
  return work([&]() -> uint64_t {
    // Without a pool there is nothing to give back, and no reason to make a
    // context current (or create one).
    const Driver *d = loadDriver();
    if (!d)
      return 0;
    bool anyPool = false;
    {
      Pools &all = pools(*d);
      std::lock_guard<std::mutex> lock(all.mutex);
      for (int device = 0; device < d->deviceCount; ++device)
        anyPool = anyPool || all.pool[device];
    }
    if (!anyPool || makeCurrent(*d) != CUDA_SUCCESS)
      return 0;
    uint64_t released = 0;
    for (int device = 0; device < d->deviceCount; ++device)
      released += trimPool(*d, device);
    return released;
  });
}

/// Memory allocated in stream order is freed in stream order on `stream`;
/// any other memory after the work queued on `stream` has finished.
MOE_CUDA_EXPORT void mgpuMemFree(void *ptr, CUstream stream) {
  release([&] {
    if (!ptr)
      return;
    const Driver &d = enter("mgpuMemFree");
    bool ordered = false;
    {
      std::lock_guard<std::mutex> lock(streamOrderedMutex);
      ordered = streamOrdered.erase(devicePtr(ptr)) > 0;
    }
    if (ordered && stream) {
      MOE_CU(d, cuMemFreeAsync, devicePtr(ptr), stream);
      return;
    }
    if (stream)
      MOE_CU(d, cuStreamSynchronize, stream);
    MOE_CU(d, cuMemFree, devicePtr(ptr));
  });
}

MOE_CUDA_EXPORT void mgpuMemcpy(void *dst, void *src, size_t sizeBytes,
                                CUstream stream) {
  work([&] {
    const Driver &d = enter("mgpuMemcpy");
    if (sizeBytes == 0)
      return;
    MOE_CU(d, cuMemcpyAsync, devicePtr(dst), devicePtr(src), sizeBytes, stream);
  });
}

/// `count` is in elements (32-bit here, 16-bit below), not bytes.
MOE_CUDA_EXPORT void mgpuMemset32(void *dst, uint32_t value, size_t count,
                                  CUstream stream) {
  work([&] {
    const Driver &d = enter("mgpuMemset32");
    if (count == 0)
      return;
    MOE_CU(d, cuMemsetD32Async, devicePtr(dst), value, count, stream);
  });
}

MOE_CUDA_EXPORT void mgpuMemset16(void *dst, uint16_t value, size_t count,
                                  CUstream stream) {
  work([&] {
    const Driver &d = enter("mgpuMemset16");
    if (count == 0)
      return;
    MOE_CU(d, cuMemsetD16Async, devicePtr(dst), value, count, stream);
  });
}

/// Page-locks host memory so that copies from and to it run asynchronously.
MOE_CUDA_EXPORT void mgpuMemHostRegister(void *ptr, uint64_t sizeBytes) {
  work([&] {
    const Driver &d = enter("mgpuMemHostRegister");
    if (sizeBytes == 0)
      return;
    MOE_CU(d, cuMemHostRegister, ptr, sizeBytes, 0);
  });
}

MOE_CUDA_EXPORT void mgpuMemHostUnregister(void *ptr) {
  release([&] {
    const Driver &d = enter("mgpuMemHostUnregister");
    MOE_CU(d, cuMemHostUnregister, ptr);
  });
}

/// gpu.host_register: `descriptor` points to a ranked memref descriptor.
/// The whole span the memref addresses is registered, strided or not.
MOE_CUDA_EXPORT void mgpuMemHostRegisterMemRef(int64_t rank, void *descriptor,
                                               int64_t elementSizeBytes) {
  work([&] {
    MemRefView view = viewMemRef(descriptor);
    uint64_t span =
        memRefSpan("mgpuMemHostRegisterMemRef", rank, view, elementSizeBytes);
    if (span != 0)
      mgpuMemHostRegister(memRefStart(view, elementSizeBytes), span);
  });
}

MOE_CUDA_EXPORT void mgpuMemHostUnregisterMemRef(int64_t rank, void *descriptor,
                                                 int64_t elementSizeBytes) {
  release([&] {
    MemRefView view = viewMemRef(descriptor);
    if (memRefSpan("mgpuMemHostUnregisterMemRef", rank, view,
                   elementSizeBytes) != 0)
      mgpuMemHostUnregister(memRefStart(view, elementSizeBytes));
  });
}

//===----------------------------------------------------------------------===//
// Devices and TMA descriptors
//===----------------------------------------------------------------------===//

/// Chooses the device of later calls, for every thread. Set it before the
/// first module loads: a module belongs to the device it was loaded on.
MOE_CUDA_EXPORT void mgpuSetDefaultDevice(int32_t device) {
  work([&] {
    const Driver &d = driverFor("mgpuSetDefaultDevice");
    if (device < 0 || device >= d.deviceCount)
      fail("mgpuSetDefaultDevice", "device " + std::to_string(device) +
                                       " out of range [0, " +
                                       std::to_string(d.deviceCount) + ")");
    setDefaultDevice(device);
  });
}

/// nvgpu.tma.create.descriptor: encodes a tiled TMA descriptor for a
/// row-major memref of `rank` dimensions with box `boxDims` (outermost
/// first), copies it to device memory and returns that copy (it lives as
/// long as the process). The enum arguments carry the driver's values.
MOE_CUDA_EXPORT void *mgpuTensorMapEncodeTiledMemref(
    int64_t rank, void *descriptor, int64_t dataType, int64_t interleave,
    int64_t swizzle, int64_t l2Promotion, int64_t oobFill, int64_t *boxDims) {
  return work([&]() -> void * {
    const char *entry = "mgpuTensorMapEncodeTiledMemref";
    const Driver &d = enter(entry);
    // Bytes per element of CU_TENSOR_MAP_DATA_TYPE_UINT8 ... _TFLOAT32_FTZ.
    static const int kElementSize[] = {1, 2, 4, 4, 8, 8, 2, 4, 8, 2, 4, 4, 4};
    constexpr int64_t kNumTypes = sizeof(kElementSize) / sizeof(int);
    if (rank < 1 || rank > 5)
      fail(entry, "rank " + std::to_string(rank) + ", expected 1 to 5");
    if (dataType < 0 || dataType >= kNumTypes)
      fail(entry, "data type " + std::to_string(dataType) + ", expected 0 to " +
                      std::to_string(kNumTypes - 1));
    int64_t elementSize = kElementSize[dataType];
    MemRefView view = viewMemRef(descriptor);

    // The driver lists dimensions innermost first, and the strides of all
    // but the innermost in bytes.
    uint64_t globalDim[5] = {}, globalStrides[4] = {};
    uint32_t box[5] = {}, elementStrides[5] = {};
    for (int64_t i = 0; i < rank; ++i) {
      int64_t dim = rank - 1 - i;
      globalDim[i] = uint64_t(view.sizes[dim]);
      box[i] = uint32_t(boxDims[dim]);
      elementStrides[i] = 1;
      if (i > 0)
        globalStrides[i - 1] = uint64_t(view.sizes[rank + dim] * elementSize);
    }
    CUtensorMap map;
    check(d,
          d.cuTensorMapEncodeTiled(&map, int(dataType), uint32_t(rank),
                                   memRefStart(view, elementSize), globalDim,
                                   globalStrides, box, elementStrides,
                                   int(interleave), int(swizzle),
                                   int(l2Promotion), int(oobFill)),
          "cuTensorMapEncodeTiled");
    CUdeviceptr copy = 0;
    MOE_CU(d, cuMemAlloc, &copy, sizeof(map));
    MOE_CU(d, cuMemcpyHtoD, copy, &map, sizeof(map));
    return reinterpret_cast<void *>(copy);
  });
}
