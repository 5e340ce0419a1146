//===- CudaApi.h - The CUDA driver and cuBLAS, opened at run time -*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// What moe-gpu-check and moe-gpu-bench need of the CUDA driver and cuBLAS,
// loaded with dlopen so that both programs start on a machine without
// either (and say so, exiting with 77). The toolkit's headers give the
// types; the names are those the headers map the API to (cuMemAlloc is
// cuMemAlloc_v2, and so on).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_BENCH_GPU_CUDAAPI_H
#define MOE_BENCH_GPU_CUDAAPI_H

#include "moe/Support/Random.h"

#include <cublas_v2.h>
#include <cuda.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <string>
#include <vector>

namespace moe::gpubench {

#define MOE_STR2(x) #x
#define MOE_STR(x) MOE_STR2(x)

// clang-format off
#define MOE_DRIVER_FUNCTIONS(X)                                                \
  X(cuGetErrorString) X(cuInit) X(cuDeviceGet) X(cuDeviceGetName)              \
  X(cuDevicePrimaryCtxRetain) X(cuCtxSetCurrent) X(cuMemAlloc) X(cuMemFree)    \
  X(cuMemcpyHtoD) X(cuMemcpyDtoH) X(cuMemcpyDtoDAsync) X(cuMemsetD32Async)     \
  X(cuStreamCreate) X(cuStreamDestroy) X(cuStreamSynchronize)                  \
  X(cuEventCreate) X(cuEventDestroy) X(cuEventRecord) X(cuEventSynchronize)    \
  X(cuEventElapsedTime) X(cuStreamBeginCapture) X(cuStreamEndCapture)          \
  X(cuGraphInstantiateWithFlags) X(cuGraphLaunch) X(cuGraphExecDestroy)        \
  X(cuGraphDestroy)

#define MOE_CUBLAS_FUNCTIONS(X)                                                \
  X(cublasCreate) X(cublasDestroy) X(cublasSetStream)                          \
  X(cublasGemmGroupedBatchedEx)
// clang-format on

/// A library opened with dlopen and the functions taken from it.
struct Driver {
#define MOE_MEMBER(name) decltype(&::name) name = nullptr;
  MOE_DRIVER_FUNCTIONS(MOE_MEMBER)
  /// Opens libcuda.so.1; on failure returns false with `error` set.
  bool open(std::string &error) {
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      error = std::string("libcuda.so.1 not found: ") + dlerror();
      return false;
    }
#define MOE_LOAD(name)                                                         \
  name = reinterpret_cast<decltype(name)>(dlsym(lib, MOE_STR(name)));          \
  if (!name) {                                                                 \
    error = "the CUDA driver has no " MOE_STR(name);                           \
    return false;                                                              \
  }
    MOE_DRIVER_FUNCTIONS(MOE_LOAD)
    return true;
  }
};

struct Cublas {
  MOE_CUBLAS_FUNCTIONS(MOE_MEMBER)
  // C++ overloads it: the C function's type.
  using GemmEx = cublasStatus_t (*)(cublasHandle_t, cublasOperation_t,
                                    cublasOperation_t, int, int, int,
                                    const void *, const void *, cudaDataType,
                                    int, const void *, cudaDataType, int,
                                    const void *, void *, cudaDataType, int,
                                    cublasComputeType_t, cublasGemmAlgo_t);
  GemmEx cublasGemmEx = nullptr;
  bool open(std::string &error) {
    void *lib = dlopen("libcublas.so.13", RTLD_NOW | RTLD_LOCAL);
    if (!lib)
      lib = dlopen("libcublas.so", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      error = std::string("libcublas.so.13 not found: ") + dlerror();
      return false;
    }
    MOE_CUBLAS_FUNCTIONS(MOE_LOAD)
    MOE_LOAD(cublasGemmEx)
    return true;
  }
};
#undef MOE_LOAD
#undef MOE_MEMBER

/// The process's driver; `check` aborts with the call's text on an error.
inline Driver &cu() {
  static Driver d;
  return d;
}

inline void checkCu(CUresult r, const char *what, const char *file, int line) {
  if (r == CUDA_SUCCESS)
    return;
  const char *message = "unknown error";
  if (cu().cuGetErrorString)
    cu().cuGetErrorString(r, &message);
  std::fprintf(stderr, "%s:%d: %s failed: %s (%d)\n", file, line, what, message,
               static_cast<int>(r));
  std::exit(1);
}
#define CU_CHECK(call)                                                         \
  ::moe::gpubench::checkCu((call), #call, __FILE__, __LINE__)

/// Opens the driver and makes device 0's primary context current (the one
/// libmoe_cuda_runtime and cuBLAS use). Exits with 77 when there is no
/// usable GPU. Returns the device's name.
inline std::string initDevice(const char *program) {
  std::string error;
  if (!cu().open(error)) {
    std::fprintf(stderr, "%s: no usable CUDA GPU: %s\n", program,
                 error.c_str());
    std::exit(77);
  }
  CUresult r = cu().cuInit(0);
  if (r != CUDA_SUCCESS) {
    const char *message = "unknown error";
    cu().cuGetErrorString(r, &message);
    std::fprintf(stderr, "%s: no usable CUDA GPU: cuInit: %s\n", program,
                 message);
    std::exit(77);
  }
  CUdevice device;
  CU_CHECK(cu().cuDeviceGet(&device, 0));
  char name[256] = {};
  CU_CHECK(cu().cuDeviceGetName(name, sizeof(name), device));
  CUcontext ctx;
  CU_CHECK(cu().cuDevicePrimaryCtxRetain(&ctx, device));
  CU_CHECK(cu().cuCtxSetCurrent(ctx));
  return name;
}

/// Whether libmoe_gpu_kernels takes its wgmma (sm_90a) kernels: the
/// moe_gpu_use_wgmma of whichever library it resolves to, the CUDA runtime
/// or, with the emulated kernel library, the SIMT emulator (so it is looked
/// up rather than linked).
inline bool kernelsUseWgmma() {
  using Fn = int32_t (*)();
  auto fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "moe_gpu_use_wgmma"));
  return fn && fn() != 0;
}

/// The row threshold of gemv_experts that libmoe_gpu_kernels applies for
/// `experts` experts (moe_gpu_gemv_max_rows, looked up as above).
inline int64_t kernelsGemvMaxRows(int64_t experts) {
  using Fn = int64_t (*)(int64_t);
  auto fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "moe_gpu_gemv_max_rows"));
  return fn ? fn(experts) : -1;
}

/// Whether libmoe_gpu_kernels' GEMVs without a gated activation on rows of
/// `rowBytes` bytes take gemv_pairs (moe_gpu_gemv_pairs, looked up as
/// above).
inline bool kernelsGemvPairs(int64_t rowBytes) {
  using Fn = int32_t (*)(int64_t);
  auto fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "moe_gpu_gemv_pairs"));
  return fn && fn(rowBytes) != 0;
}

/// A device allocation of `count` elements of T.
template <typename T> struct DeviceArray {
  CUdeviceptr ptr = 0;
  size_t count = 0;
  DeviceArray() = default;
  explicit DeviceArray(size_t n) : count(n) {
    CU_CHECK(cu().cuMemAlloc(&ptr, std::max<size_t>(n, 1) * sizeof(T)));
  }
  DeviceArray(const DeviceArray &) = delete;
  DeviceArray &operator=(const DeviceArray &) = delete;
  DeviceArray(DeviceArray &&o) noexcept : ptr(o.ptr), count(o.count) {
    o.ptr = 0;
  }
  ~DeviceArray() {
    if (ptr)
      cu().cuMemFree(ptr);
  }
  T *get() const { return reinterpret_cast<T *>(ptr); }
  void upload(const std::vector<T> &v) {
    if (!v.empty())
      CU_CHECK(cu().cuMemcpyHtoD(ptr, v.data(), v.size() * sizeof(T)));
  }
  std::vector<T> download() const {
    std::vector<T> v(count);
    CU_CHECK(cu().cuMemcpyDtoH(v.data(), ptr, count * sizeof(T)));
    return v;
  }
};

/// bf16 as its 16 bits; round to nearest even from f32.
inline uint16_t toBF16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float fromBF16(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

/// Fixed-seed bf16 values uniform in [-scale, scale).
inline std::vector<uint16_t> randomBF16(mlir::moe::Random &random, size_t n,
                                        double scale) {
  std::vector<uint16_t> v(n);
  for (auto &x : v)
    x = toBF16(static_cast<float>((2.0 * random.uniform() - 1.0) * scale));
  return v;
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

} // namespace moe::gpubench

#endif // MOE_BENCH_GPU_CUDAAPI_H
