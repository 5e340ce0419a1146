//===- CudaDriver.cpp - loading the CUDA driver; the moe_cuda API ---------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Opens libcuda.so.1 once, checks its version, resolves every entry point
// and initializes it. Any failure leaves a reason instead of a driver; only
// the mgpu* functions (CudaRuntime.cpp) turn that into an abort.
//
//===----------------------------------------------------------------------===//

#include "CudaDriver.h"

#include "moe_cuda.h"

#include <atomic>
#include <cstring>
#include <dlfcn.h>
#include <mutex>

#define MOE_CUDA_EXPORT extern "C" __attribute__((visibility("default")))

using namespace moe::rt::cuda;

namespace {

struct LoadedDriver {
  Driver driver;
  bool usable = false;
  std::string reason;
};

std::string versionString(int version) {
  return std::to_string(version / 1000) + "." +
         std::to_string(version % 1000 / 10);
}

/// Fills `state`; returns the reason it is unusable, or "" when it is.
std::string load(LoadedDriver &state) {
  dlerror();
  void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib)
    return std::string("libcuda.so.1 not found: ") + dlerror();

  // The version first: an old driver lacks some of the entry points below,
  // and "too old" says more than a missing symbol.
  using GetVersion = CUresult (*)(int *);
  auto getVersion =
      reinterpret_cast<GetVersion>(dlsym(lib, "cuDriverGetVersion"));
  if (!getVersion)
    return "libcuda.so.1 has no cuDriverGetVersion";
  Driver &d = state.driver;
  // The toolkit's link-time stub answers every call with this error.
  CUresult result = getVersion(&d.version);
  if (result == CUDA_ERROR_STUB_LIBRARY)
    return "libcuda.so.1 is the CUDA toolkit's stub library, not a driver";
  if (result != CUDA_SUCCESS)
    return "cuDriverGetVersion failed with error " + std::to_string(result);
  if (d.version < kMinDriverVersion)
    return "driver too old: needs CUDA " + versionString(kMinDriverVersion) +
           "+, has " + versionString(d.version);

#define MOE_CUDA_RESOLVE(member, symbol, ret, params)                          \
  d.member = reinterpret_cast<decltype(d.member)>(dlsym(lib, symbol));         \
  if (!d.member)                                                               \
    return "libcuda.so.1 (CUDA " + versionString(d.version) + ") has no " +    \
           symbol;
  MOE_CUDA_DRIVER_FUNCTIONS(MOE_CUDA_RESOLVE)
#undef MOE_CUDA_RESOLVE

  result = d.cuInit(0);
  if (result == CUDA_ERROR_NO_DEVICE)
    return "no CUDA device";
  if (result != CUDA_SUCCESS)
    return "cuInit failed: " + describeError(d, result);
  result = d.cuDeviceGetCount(&d.deviceCount);
  if (result != CUDA_SUCCESS)
    return "cuDeviceGetCount failed: " + describeError(d, result);
  if (d.deviceCount <= 0)
    return "no CUDA device";
  return "";
}

/// Never destroyed: the global destructors of compiled code (module
/// unloads) run after those of this library's statics.
const LoadedDriver &loaded() {
  static LoadedDriver *state = new LoadedDriver;
  static std::once_flag once;
  std::call_once(once, [] {
    state->reason = load(*state);
    state->usable = state->reason.empty();
  });
  return *state;
}

std::atomic<int> theDefaultDevice{0};

} // namespace

const Driver *moe::rt::cuda::loadDriver(const char **reason) {
  const LoadedDriver &state = loaded();
  if (reason)
    *reason = state.reason.c_str();
  return state.usable ? &state.driver : nullptr;
}

std::string moe::rt::cuda::describeError(const Driver &driver,
                                         CUresult result) {
  const char *text = nullptr;
  const char *name = nullptr;
  if (driver.cuGetErrorString(result, &text) != CUDA_SUCCESS || !text)
    text = "unknown error";
  if (driver.cuGetErrorName(result, &name) != CUDA_SUCCESS || !name)
    return std::string(text) + " (error " + std::to_string(result) + ")";
  return std::string(text) + " (" + name + ")";
}

int moe::rt::cuda::defaultDevice() { return theDefaultDevice.load(); }

void moe::rt::cuda::setDefaultDevice(int device) {
  theDefaultDevice.store(device);
}

MOE_CUDA_EXPORT int moe_cuda_available(const char **reason) {
  return loadDriver(reason) ? 1 : 0;
}

MOE_CUDA_EXPORT int moe_cuda_device_count(void) {
  const Driver *d = loadDriver();
  return d ? d->deviceCount : 0;
}

MOE_CUDA_EXPORT int moe_cuda_device_info(int device,
                                         moe_cuda_device_props *info) {
  if (!info)
    return 0;
  std::memset(info, 0, sizeof(*info));
  const Driver *d = loadDriver();
  if (!d || device < 0 || device >= d->deviceCount)
    return 0;
  CUdevice handle = 0;
  if (d->cuDeviceGet(&handle, device) != CUDA_SUCCESS)
    return 0;
  struct {
    int attribute;
    int *value;
  } attributes[] = {
      {CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
       &info->compute_capability_major},
      {CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
       &info->compute_capability_minor},
      {CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, &info->multiprocessor_count},
      {CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, &info->max_threads_per_block},
      {CU_DEVICE_ATTRIBUTE_WARP_SIZE, &info->warp_size},
      {CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
       &info->max_shared_memory_per_block},
      {CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, &info->l2_cache_bytes},
  };
  size_t totalMemory = 0;
  bool ok = d->cuDeviceGetName(info->name, sizeof(info->name), handle) ==
                CUDA_SUCCESS &&
            d->cuDeviceTotalMem(&totalMemory, handle) == CUDA_SUCCESS;
  for (auto &a : attributes)
    ok = ok &&
         d->cuDeviceGetAttribute(a.value, a.attribute, handle) == CUDA_SUCCESS;
  if (!ok) {
    std::memset(info, 0, sizeof(*info));
    return 0;
  }
  info->name[sizeof(info->name) - 1] = '\0';
  info->total_memory_bytes = totalMemory;
  info->driver_version = d->version;
  return 1;
}

MOE_CUDA_EXPORT int moe_cuda_device_name(char *buf, int len) {
  if (!buf)
    return 0;
  if (len > 0)
    buf[0] = '\0';
  moe_cuda_device_props info;
  if (len <= 0 || !moe_cuda_device_info(defaultDevice(), &info))
    return 0;
  std::strncpy(buf, info.name, len - 1);
  buf[len - 1] = '\0';
  return 1;
}
