/*===- mgpu_calls.c - calls the mgpu* functions as MLIR's code does -------===*\
|*                                                                            *|
|* Part of the moe-mlir project, under the Apache License v2.0 with LLVM      *|
|* Exceptions. See LICENSE for license information.                           *|
|* SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception                    *|
|*                                                                            *|
|*===----------------------------------------------------------------------===*|
|*                                                                            *|
|* The prototypes spell the LLVM types MLIR 22 declares the functions with    *|
|* (ptr, i64 for index, i32, i16, i8). argv[1] picks a scenario; the fake     *|
|* driver logs what reaches it.                                               *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#include "moe_cuda.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

void *mgpuModuleLoad(void *data, int64_t size);
void *mgpuModuleLoadJIT(void *data, int32_t optLevel);
void mgpuModuleUnload(void *module);
void *mgpuModuleGetFunction(void *module, void *name);
void mgpuLaunchKernel(void *f, int64_t gx, int64_t gy, int64_t gz, int64_t bx,
                      int64_t by, int64_t bz, int32_t smem, void *stream,
                      void *params, void *extra, int64_t nparams);
void mgpuLaunchClusterKernel(void *f, int64_t cx, int64_t cy, int64_t cz,
                             int64_t gx, int64_t gy, int64_t gz, int64_t bx,
                             int64_t by, int64_t bz, int32_t smem, void *stream,
                             void *params, void *extra);
void *mgpuStreamCreate(void);
void mgpuStreamDestroy(void *stream);
void mgpuStreamSynchronize(void *stream);
void mgpuStreamWaitEvent(void *stream, void *event);
void *mgpuEventCreate(void);
void mgpuEventDestroy(void *event);
void mgpuEventSynchronize(void *event);
void mgpuEventRecord(void *event, void *stream);
void *mgpuMemAlloc(int64_t size, void *stream, int8_t hostShared);
void mgpuMemFree(void *ptr, void *stream);
void mgpuMemcpy(void *dst, void *src, int64_t size, void *stream);
void mgpuMemset32(void *dst, int32_t value, int64_t count, void *stream);
void mgpuMemset16(void *dst, int16_t value, int64_t count, void *stream);
void mgpuMemHostRegisterMemRef(int64_t rank, void *descriptor,
                               int64_t elementSize);
void mgpuMemHostUnregisterMemRef(int64_t rank, void *descriptor,
                                 int64_t elementSize);
void mgpuSetDefaultDevice(int32_t device);
void *mgpuTensorMapEncodeTiledMemref(int64_t rank, void *descriptor,
                                     int64_t type, int64_t interleave,
                                     int64_t swizzle, int64_t l2, int64_t oob,
                                     void *box);

/* A rank-2 memref descriptor, as MLIR lays it out. */
typedef struct {
  void *allocated, *aligned;
  int64_t offset, sizes[2], strides[2];
} MemRef2;

static const char kPtx[] = "//\n.version 8.0\n.target sm_90\n"
                           ".visible .entry scale(\n.param .u64 p\n)\n{\n}\n";

static void info(void) {
  const char *reason = NULL;
  int available = moe_cuda_available(&reason);
  printf("available %d, reason \"%s\", devices %d\n", available, reason,
         moe_cuda_device_count());
  char name[8];
  int named = moe_cuda_device_name(name, sizeof(name));
  printf("name %d \"%s\"\n", named, name);
  moe_cuda_device_props props;
  int ok = moe_cuda_device_info(0, &props);
  printf("info %d: sm_%d%d, %d SMs, %llu GiB, driver %d\n", ok,
         props.compute_capability_major, props.compute_capability_minor,
         props.multiprocessor_count,
         (unsigned long long)(props.total_memory_bytes >> 30),
         props.driver_version);
  printf("info(7) %d, info(-1) %d, info(NULL) %d\n",
         moe_cuda_device_info(7, &props), moe_cuda_device_info(-1, &props),
         moe_cuda_device_info(0, NULL));
}

/* What the host code of a lowered function does, in order. */
static void sequence(void) {
  void *module = mgpuModuleLoadJIT((void *)kPtx, 3);
  void *function = mgpuModuleGetFunction(module, "scale");
  printf("-- looked up again: %s\n",
         mgpuModuleGetFunction(module, "scale") == function ? "the same"
                                                            : "another");
  void *stream = mgpuStreamCreate();

  float *device = mgpuMemAlloc(4 * sizeof(float), stream, 0);
  mgpuMemset32(device, 0x3fc00000, 4, stream); /* 1.5f */
  uint16_t *half = mgpuMemAlloc(3 * sizeof(uint16_t), stream, 0);
  mgpuMemset16(half, (int16_t)0x3c00, 3, stream);

  void *arg = device;
  void *params[] = {&arg};
  mgpuLaunchKernel(function, 2, 3, 4, 32, 1, 1, 0, stream, params, NULL, 1);
  printf("-- large shared memory\n");
  mgpuLaunchKernel(function, 1, 1, 1, 1, 1, 1, 100000, stream, params, NULL, 1);
  printf("-- empty grid\n");
  mgpuLaunchKernel(function, 0, 1, 1, 32, 1, 1, 0, stream, params, NULL, 1);
  printf("-- cluster\n");
  mgpuLaunchClusterKernel(function, 2, 1, 1, 4, 1, 1, 128, 1, 1, 0, stream,
                          params, NULL);
  mgpuLaunchClusterKernel(function, 4, 4, 1, 8, 4, 1, 64, 1, 1, 0, stream,
                          params, NULL);

  printf("-- events\n");
  void *other = mgpuStreamCreate();
  void *event = mgpuEventCreate();
  mgpuEventRecord(event, other);
  mgpuStreamWaitEvent(stream, event);
  mgpuEventSynchronize(event);
  mgpuEventDestroy(event);
  mgpuStreamDestroy(other);

  printf("-- copy back\n");
  float host[4] = {0};
  uint16_t hostHalf[3] = {0};
  mgpuMemcpy(host, device, sizeof(host), stream);
  mgpuMemcpy(hostHalf, half, sizeof(hostHalf), stream);
  mgpuStreamSynchronize(stream);
  printf("floats %g %g %g %g, halves 0x%x 0x%x 0x%x\n", host[0], host[1],
         host[2], host[3], hostHalf[0], hostHalf[1], hostHalf[2]);

  printf("-- host register\n");
  float matrix[2][4];
  MemRef2 view = {matrix, matrix, 1, {2, 3}, {4, 1}};
  mgpuMemHostRegisterMemRef(2, &view, sizeof(float));
  mgpuMemHostUnregisterMemRef(2, &view, sizeof(float));
  MemRef2 empty = {matrix, matrix, 0, {0, 3}, {3, 1}};
  mgpuMemHostRegisterMemRef(2, &empty, sizeof(float));

  printf("-- tma\n");
  static uint16_t tile[64][128];
  MemRef2 tensor = {tile, tile, 0, {64, 128}, {128, 1}};
  int64_t box[2] = {64, 32};
  void *map = mgpuTensorMapEncodeTiledMemref(2, &tensor, 6, 0, 3, 0, 0, box);
  printf("map %s\n", map ? "on the device" : "null");

  printf("-- managed\n");
  void *shared = mgpuMemAlloc(64, NULL, 1);
  mgpuMemFree(shared, NULL);
  printf("zero bytes: %s\n", mgpuMemAlloc(0, stream, 0) ? "memory" : "null");

  printf("-- teardown\n");
  mgpuMemFree(half, stream);
  mgpuMemFree(device, stream);
  mgpuStreamDestroy(stream);
  mgpuModuleUnload(module);
  printf("-- loaded again\n");
  module = mgpuModuleLoadJIT((void *)kPtx, 3);
  mgpuModuleGetFunction(module, "scale");
  mgpuModuleUnload(module);
  printf("done\n");
}

/* Failures caught as a C API catches them: the first one is kept, the
 * thread's later work is skipped while its frees still run, and after the
 * scope the runtime works again. Scopes nest. */
static void caught(void) {
  char why[256];
  void *stream = mgpuStreamCreate();
  moe_cuda_catch_begin();
  void *kept = mgpuMemAlloc(64, stream, 0);
  void *failed = mgpuMemAlloc(1024, stream, 0);
  printf("failed allocation: %s; caught %d\n", failed ? "a pointer" : "NULL",
         moe_cuda_caught());
  fflush(stdout);
  mgpuMemset32(kept, 7, 16, stream);
  mgpuLaunchKernel(NULL, 1, 1, 1, 32, 1, 1, 0, stream, NULL, NULL, 0);
  printf("stream after the failure: %s\n",
         mgpuStreamCreate() ? "a stream" : "NULL");
  fflush(stdout);
  mgpuMemFree(kept, stream);
  mgpuStreamSynchronize(stream);
  moe_cuda_catch_begin();
  printf("inner end: %d\n", moe_cuda_catch_end(NULL, 0));
  int code = moe_cuda_catch_end(why, sizeof(why));
  printf("end: %d: %s\n", code, why);
  printf("-- after the scope\n");
  fflush(stdout);
  void *again = mgpuMemAlloc(1024, stream, 0);
  mgpuMemset32(again, 7, 16, stream);
  mgpuMemFree(again, stream);
  mgpuStreamDestroy(stream);
  moe_cuda_catch_begin();
  printf("nothing failed: %d\n", moe_cuda_catch_end(why, sizeof(why)));
  fflush(stdout);
  /* An end without a beginning is a bug of the caller. */
  moe_cuda_catch_end(why, sizeof(why));
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  if (!strcmp(mode, "info")) {
    info();
  } else if (!strcmp(mode, "sequence")) {
    sequence();
  } else if (!strcmp(mode, "cubin")) {
    /* An ELF header without sections. */
    static const char elf[64] = "\177ELF";
    mgpuModuleUnload(mgpuModuleLoad((void *)elf, sizeof(elf)));
  } else if (!strcmp(mode, "missing-kernel")) {
    mgpuModuleGetFunction(mgpuModuleLoadJIT((void *)kPtx, 2), "absent");
  } else if (!strcmp(mode, "foreign")) {
    /* PTX for sm_90a: loaded only on a device of compute capability 9.0;
     * elsewhere its kernels may be launched on empty grids only. */
    static const char ptx[] = "//\n.version 8.0\n.target sm_90a\n"
                              ".visible .entry wgmma(\n)\n{\n}\n";
    void *kernel =
        mgpuModuleGetFunction(mgpuModuleLoadJIT((void *)ptx, 2), "wgmma");
    mgpuLaunchKernel(kernel, 0, 1, 1, 128, 1, 1, 0, NULL, NULL, NULL, 0);
    printf("empty grid: launched nothing\n");
    fflush(stdout);
    mgpuLaunchKernel(kernel, 1, 1, 1, 128, 1, 1, 0, NULL, NULL, NULL, 0);
    printf("one block: launched\n");
  } else if (!strcmp(mode, "newer")) {
    /* PTX for sm_90 (kPtx): the driver cannot compile it for an older
     * device, so it is not loaded, and a launch says why. */
    void *kernel =
        mgpuModuleGetFunction(mgpuModuleLoadJIT((void *)kPtx, 2), "scale");
    printf("loaded: %s\n", kernel ? "a kernel" : "nothing");
    fflush(stdout);
    mgpuLaunchKernel(kernel, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL, 0);
  } else if (!strcmp(mode, "dependent")) {
    /* Kernels of a module marked by moe-gpu-dependent-launch, and of one
     * that is not, launched as MOE_GPU_DEPENDENT_LAUNCH says; the marked
     * module is unloaded and another, unmarked, loaded in its place (the
     * stand-in driver reuses the handle). */
    /* For sm_80, so that they load on a device of compute capability 8.0
     * too, where no launch is dependent. */
    static const char marked[] =
        "//\n.version 8.0\n.target sm_80\n"
        ".visible .global .align 4 .u32 moe_dependent_launch = 1;\n"
        ".visible .entry scale(\n.param .u64 p\n)\n{\n}\n";
    static const char unmarked[] =
        "//\n.version 8.0\n.target sm_80\n"
        ".visible .entry scale(\n.param .u64 p\n)\n{\n}\n";
    void *waiting = mgpuModuleLoadJIT((void *)marked, 2);
    void *plain = mgpuModuleLoadJIT((void *)unmarked, 2);
    void *stream = mgpuStreamCreate();
    printf("-- marked\n");
    fflush(stdout);
    void *function = mgpuModuleGetFunction(waiting, "scale");
    mgpuLaunchKernel(function, 2, 1, 1, 32, 1, 1, 0, stream, NULL, NULL, 0);
    mgpuLaunchClusterKernel(function, 2, 1, 1, 4, 1, 1, 128, 1, 1, 0, stream,
                            NULL, NULL);
    printf("-- not marked\n");
    fflush(stdout);
    mgpuLaunchKernel(mgpuModuleGetFunction(plain, "scale"), 2, 1, 1, 32, 1, 1,
                     0, stream, NULL, NULL, 0);
    mgpuModuleUnload(waiting);
    printf("-- another module in the marked one's place\n");
    fflush(stdout);
    void *again = mgpuModuleLoadJIT((void *)unmarked, 2);
    mgpuLaunchKernel(mgpuModuleGetFunction(again, "scale"), 2, 1, 1, 32, 1, 1,
                     0, stream, NULL, NULL, 0);
    mgpuStreamDestroy(stream);
  } else if (!strcmp(mode, "caught")) {
    caught();
  } else if (!strcmp(mode, "alloc")) {
    mgpuMemAlloc(1 << 20, NULL, 0);
  } else if (!strcmp(mode, "profile")) {
    /* Kernel times by kernel and grid: a report now, another at exit. */
    void *function =
        mgpuModuleGetFunction(mgpuModuleLoadJIT((void *)kPtx, 2), "scale");
    void *stream = mgpuStreamCreate();
    float *device = mgpuMemAlloc(4 * sizeof(float), stream, 0);
    void *arg = device;
    void *params[] = {&arg};
    mgpuLaunchKernel(function, 2, 1, 1, 32, 1, 1, 0, stream, params, NULL, 1);
    mgpuLaunchKernel(function, 2, 1, 1, 32, 1, 1, 0, stream, params, NULL, 1);
    mgpuLaunchKernel(function, 3, 1, 1, 32, 1, 1, 0, stream, params, NULL, 1);
    mgpuLaunchClusterKernel(function, 2, 1, 1, 4, 1, 1, 128, 1, 1, 0, stream,
                            params, NULL);
    fflush(stdout);
    printf("reported %lld\n", (long long)moe_cuda_profile_report());
    printf("reported %lld\n", (long long)moe_cuda_profile_report());
    fflush(stdout);
    mgpuLaunchKernel(function, 1, 1, 1, 32, 1, 1, 0, stream, params, NULL, 1);
    mgpuMemFree(device, stream);
    mgpuStreamDestroy(stream);
    printf("-- exit\n");
    fflush(stdout);
  } else if (!strcmp(mode, "pool")) {
    /* Memory allocated on a stream comes from the runtime's pool, which
     * keeps it across a synchronization until asked to give it back. */
    printf("released %llu\n", (unsigned long long)moe_cuda_release_memory());
    fflush(stdout);
    void *stream = mgpuStreamCreate();
    mgpuMemFree(mgpuMemAlloc(4096, stream, 0), stream);
    mgpuStreamSynchronize(stream);
    printf("-- again\n");
    fflush(stdout);
    mgpuMemFree(mgpuMemAlloc(1024, stream, 0), stream);
    printf("-- without a stream\n");
    fflush(stdout);
    mgpuMemFree(mgpuMemAlloc(1 << 20, NULL, 0), NULL);
    printf("released %llu\n", (unsigned long long)moe_cuda_release_memory());
    printf("released %llu\n", (unsigned long long)moe_cuda_release_memory());
    mgpuStreamDestroy(stream);
  } else if (!strcmp(mode, "too-much-shared-memory")) {
    mgpuLaunchKernel(
        mgpuModuleGetFunction(mgpuModuleLoadJIT((void *)kPtx, 2), "scale"), 1,
        1, 1, 1, 1, 1, 300000, NULL, NULL, NULL, 0);
  } else if (!strcmp(mode, "bad-grid")) {
    mgpuLaunchKernel(NULL, 1, -2, 1, 1, 1, 1, 0, NULL, NULL, NULL, 0);
  } else if (!strcmp(mode, "bad-cluster")) {
    mgpuLaunchClusterKernel(NULL, 2, 1, 1, 3, 1, 1, 1, 1, 1, 0, NULL, NULL,
                            NULL);
  } else if (!strcmp(mode, "device")) {
    mgpuSetDefaultDevice(1);
    mgpuStreamDestroy(mgpuStreamCreate());
    mgpuSetDefaultDevice(5);
  } else {
    fprintf(stderr, "unknown scenario '%s'\n", mode);
    return 2;
  }
  return 0;
}
