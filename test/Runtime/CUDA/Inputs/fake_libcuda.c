/*===- fake_libcuda.c - a CUDA driver stand-in that logs its calls --------===*\
|*                                                                            *|
|* Part of the moe-mlir project, under the Apache License v2.0 with LLVM      *|
|* Exceptions. See LICENSE for license information.                           *|
|* SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception                    *|
|*                                                                            *|
|*===----------------------------------------------------------------------===*|
|*                                                                            *|
|* Built as libcuda.so.1 and put first on LD_LIBRARY_PATH, it lets the tests  *|
|* drive libmoe_cuda_runtime on machines without a GPU. "Device" memory is    *|
|* host memory, so copies and memsets really happen; kernels do not run.      *|
|* Every call prints one line to stdout. The environment shapes it:           *|
|*   FAKE_CUDA_VERSION  cuDriverGetVersion's answer (default 12040)           *|
|*   FAKE_CUDA_DEVICES  the device count (default 1; 0: cuInit fails)         *|
|*   FAKE_CUDA_FAIL     "symbol:code": that entry point returns code;         *|
|*                      "symbol:code:n": only its n-th call does              *|
|*   FAKE_CUDA_CC       the compute capability, 10 major + minor (default 90) *|
|*   FAKE_CUDA_CAPTURING  1: every stream is being captured (default 0)       *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;

static int envInt(const char *name, int fallback) {
  const char *value = getenv(name);
  return value && *value ? atoi(value) : fallback;
}

/* Logs the call and returns the error FAKE_CUDA_FAIL asks for, or 0. */
__attribute__((format(printf, 2, 3))) static CUresult
enter(const char *symbol, const char *format, ...) {
  va_list args;
  printf("cuda: %s(", symbol);
  va_start(args, format);
  vprintf(format, args);
  va_end(args);
  printf(")\n");
  fflush(stdout);
  const char *fail = getenv("FAKE_CUDA_FAIL");
  size_t n = strlen(symbol);
  if (!fail || strncmp(fail, symbol, n) != 0 || fail[n] != ':')
    return 0;
  char *end = NULL;
  CUresult code = (CUresult)strtol(fail + n + 1, &end, 10);
  static long calls;
  ++calls;
  return *end != ':' || calls == strtol(end + 1, NULL, 10) ? code : 0;
}

static const struct {
  int code;
  const char *name, *text;
} kErrors[] = {
    {0, "CUDA_SUCCESS", "no error"},
    {1, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {2, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {100, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {209, "CUDA_ERROR_NO_BINARY_FOR_GPU",
     "no kernel image is available for execution on the device"},
    {218, "CUDA_ERROR_INVALID_PTX", "a PTX JIT compilation failed"},
    {500, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {700, "CUDA_ERROR_ILLEGAL_ADDRESS",
     "an illegal memory access was encountered"},
    {801, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported"},
};

static int findError(int code) {
  for (size_t i = 0; i < sizeof(kErrors) / sizeof(kErrors[0]); ++i)
    if (kErrors[i].code == code)
      return (int)i;
  return -1;
}

CUresult cuGetErrorString(CUresult error, const char **text) {
  int i = findError(error);
  *text = i < 0 ? NULL : kErrors[i].text;
  return i < 0 ? 1 : 0;
}

CUresult cuGetErrorName(CUresult error, const char **name) {
  int i = findError(error);
  *name = i < 0 ? NULL : kErrors[i].name;
  return i < 0 ? 1 : 0;
}

CUresult cuDriverGetVersion(int *version) {
  *version = envInt("FAKE_CUDA_VERSION", 12040);
  return 0;
}

CUresult cuInit(unsigned flags) {
  CUresult r = enter("cuInit", "%u", flags);
  return r ? r : envInt("FAKE_CUDA_DEVICES", 1) == 0 ? 100 : 0;
}

CUresult cuDeviceGetCount(int *count) {
  *count = envInt("FAKE_CUDA_DEVICES", 1);
  return enter("cuDeviceGetCount", "");
}

CUresult cuDeviceGet(int *device, int ordinal) {
  *device = ordinal;
  return enter("cuDeviceGet", "%d", ordinal);
}

CUresult cuDeviceGetName(char *name, int len, int device) {
  snprintf(name, (size_t)len, "Fake GPU %d", device);
  return 0;
}

CUresult cuDeviceGetAttribute(int *value, int attribute, int device) {
  switch (attribute) {
  case 1: /* max threads per block */
    *value = 1024;
    break;
  case 10: /* warp size */
    *value = 32;
    break;
  case 16: /* multiprocessors */
    *value = 132;
    break;
  case 38: /* L2 bytes */
    *value = 50 << 20;
    break;
  case 75: /* compute capability, 90 unless FAKE_CUDA_CC says otherwise */
    *value = envInt("FAKE_CUDA_CC", 90) / 10;
    break;
  case 76:
    *value = envInt("FAKE_CUDA_CC", 90) % 10;
    break;
  case 97: /* opt-in shared memory per block */
    *value = 232448;
    break;
  default:
    return 1;
  }
  return 0;
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, int device) {
  *bytes = (size_t)80 << 30;
  return 0;
}

/* One context per device; the current one is per thread. */
static int contexts[16];
static __thread int *current;

CUresult cuDevicePrimaryCtxRetain(void **context, int device) {
  *context = &contexts[device];
  return enter("cuDevicePrimaryCtxRetain", "device %d", device);
}

CUresult cuCtxGetCurrent(void **context) {
  *context = current;
  return 0;
}

CUresult cuCtxSetCurrent(void *context) {
  current = context;
  return enter("cuCtxSetCurrent", "device %d", (int)(current - contexts));
}

/* A module remembers its image, to find kernels in PTX and globals in any
   image, and gives each kernel name a handle of its own (the name, copied),
   as a driver gives each module's functions theirs. */
enum { kMaxFunctions = 64 };
typedef struct {
  const char *ptx;
  const unsigned char *image;
  size_t size;
  int functions;
  char *names[kMaxFunctions];
} Module;

/* The bytes of a cubin (ELF: up to the end of its last section or of its
   section headers) or of a fatbin (its header's sizes); 0 for anything
   else. */
static size_t imageSize(const unsigned char *image) {
  uint64_t end = 0, u64;
  uint16_t u16;
  if (memcmp(image, "\177ELF", 4) == 0) {
    uint64_t shoff;
    uint16_t shentsize, shnum;
    memcpy(&shoff, image + 0x28, 8);
    memcpy(&shentsize, image + 0x3a, 2);
    memcpy(&shnum, image + 0x3c, 2);
    end = shoff + (uint64_t)shentsize * shnum;
    for (uint16_t i = 0; i < shnum; ++i) {
      const unsigned char *header = image + shoff + (uint64_t)i * shentsize;
      uint64_t offset, size;
      uint32_t type;
      memcpy(&type, header + 4, 4);
      memcpy(&offset, header + 0x18, 8);
      memcpy(&size, header + 0x20, 8);
      if (type != 8 /* SHT_NOBITS */ && offset + size > end)
        end = offset + size;
    }
  } else if (image[0] == 0x50 && image[1] == 0xed && image[2] == 0x55 &&
             image[3] == 0xba) {
    memcpy(&u16, image + 6, 2);
    memcpy(&u64, image + 8, 8);
    end = u16 + u64;
  }
  return (size_t)end;
}

/* The module unloaded last, whose handle the next load reuses, as a real
   driver may. */
static Module *unloadedModule;

static Module *newModule(void) {
  Module *m = unloadedModule;
  unloadedModule = NULL;
  if (!m) {
    m = malloc(sizeof(Module));
    memset(m, 0, sizeof(Module));
  }
  /* A reused handle keeps its function handles too, as a driver may. */
  m->ptx = NULL;
  m->image = NULL;
  m->size = 0;
  return m;
}

/* The handle of kernel `name` of `m`. */
static void *functionHandle(Module *m, const char *name) {
  for (int i = 0; i < m->functions; ++i)
    if (strcmp(m->names[i], name) == 0)
      return m->names[i];
  if (m->functions == kMaxFunctions)
    return (void *)name;
  return m->names[m->functions++] = strdup(name);
}

static const char *imageKind(const void *image) {
  const unsigned char *bytes = image;
  if (memcmp(bytes, "\177ELF", 4) == 0)
    return "cubin";
  if (bytes[0] == 0x50 && bytes[1] == 0xed && bytes[2] == 0x55 &&
      bytes[3] == 0xba)
    return "fatbin";
  return "unknown image";
}

CUresult cuModuleLoadData(void **module, const void *image) {
  Module *m = newModule();
  m->image = image;
  m->size = imageSize(image);
  *module = m;
  return enter("cuModuleLoadData", "%s", imageKind(image));
}

CUresult cuModuleLoadDataEx(void **module, const void *image,
                            unsigned numOptions, int *options, void **values) {
  Module *m = newModule();
  m->ptx = image;
  m->image = image;
  m->size = strlen(image);
  *module = m;
  long level = -1, logSize = 0;
  char *log = NULL;
  for (unsigned i = 0; i < numOptions; ++i) {
    if (options[i] == 5)
      log = values[i];
    else if (options[i] == 6)
      logSize = (long)(intptr_t)values[i];
    else if (options[i] == 7)
      level = (long)(intptr_t)values[i];
  }
  const char *target = strstr(m->ptx, ".target ");
  int targetLen = target ? (int)strcspn(target, "\n") : 0;
  CUresult r = enter("cuModuleLoadDataEx", "%.*s, O%ld, log %ld bytes",
                     targetLen, target ? target : "", level, logSize);
  if (r && log && logSize > 0)
    snprintf(log, (size_t)logSize, "ptxas fatal: fake JIT failure");
  return r;
}

CUresult cuModuleUnload(void *module) {
  free(unloadedModule);
  unloadedModule = module;
  return enter("cuModuleUnload", "");
}

CUresult cuModuleGetFunction(void **function, void *module, const char *name) {
  Module *m = module;
  *function = functionHandle(m, name);
  CUresult r = enter("cuModuleGetFunction", "%s", name);
  if (r || !m->ptx)
    return r;
  char entry[256];
  snprintf(entry, sizeof(entry), ".entry %s(", name);
  return strstr(m->ptx, entry) ? 0 : 500;
}

/* Found when the name is in the image (its symbol table, or the PTX). */
CUresult cuModuleGetGlobal_v2(uint64_t *pointer, size_t *bytes, void *module,
                              const char *name) {
  Module *m = module;
  size_t n = strlen(name);
  int found = 0;
  for (size_t i = 0; !found && n && i + n <= m->size; ++i)
    found = memcmp(m->image + i, name, n) == 0;
  CUresult r = enter("cuModuleGetGlobal_v2", "%s: %s", name,
                     found ? "found" : "not found");
  if (pointer)
    *pointer = 0;
  if (bytes)
    *bytes = found ? 4 : 0;
  return r ? r : found ? 0 : 500;
}

CUresult cuFuncSetAttribute(void *function, int attribute, int value) {
  return enter("cuFuncSetAttribute", "attribute %d, %d", attribute, value);
}

CUresult cuLaunchKernel(void *function, unsigned gx, unsigned gy, unsigned gz,
                        unsigned bx, unsigned by, unsigned bz, unsigned smem,
                        void *stream, void **params, void **extra) {
  return enter("cuLaunchKernel",
               "%s, grid %ux%ux%u, block %ux%ux%u, smem %u, %s stream",
               (const char *)function, gx, gy, gz, bx, by, bz, smem,
               stream ? "a" : "null");
}

typedef struct {
  int id;
  char pad[4];
  union {
    char bytes[64];
    struct {
      unsigned x, y, z;
    } clusterDim;
    int policy;
    void *alignment;
  } value;
} LaunchAttribute;

typedef struct {
  unsigned gridDimX, gridDimY, gridDimZ;
  unsigned blockDimX, blockDimY, blockDimZ;
  unsigned sharedMemBytes;
  void *hStream;
  LaunchAttribute *attrs;
  unsigned numAttrs;
} LaunchConfig;

CUresult cuLaunchKernelEx(const LaunchConfig *c, void *function, void **params,
                          void **extra) {
  char attrs[256] = "";
  for (unsigned i = 0; i < c->numAttrs; ++i) {
    const LaunchAttribute *a = &c->attrs[i];
    size_t n = strlen(attrs);
    if (a->id == 4)
      snprintf(attrs + n, sizeof(attrs) - n, ", cluster %ux%ux%u",
               a->value.clusterDim.x, a->value.clusterDim.y,
               a->value.clusterDim.z);
    else if (a->id == 6)
      snprintf(attrs + n, sizeof(attrs) - n,
               ", programmatic stream serialization %d", a->value.policy);
    else
      snprintf(attrs + n, sizeof(attrs) - n, ", attribute %d = %d", a->id,
               a->value.policy);
  }
  return enter("cuLaunchKernelEx", "%s, grid %ux%ux%u, block %ux%ux%u%s",
               (const char *)function, c->gridDimX, c->gridDimY, c->gridDimZ,
               c->blockDimX, c->blockDimY, c->blockDimZ, attrs);
}

CUresult cuStreamCreate(void **stream, unsigned flags) {
  *stream = malloc(1);
  return enter("cuStreamCreate", "flags %u", flags);
}

CUresult cuStreamDestroy_v2(void *stream) {
  free(stream);
  return enter("cuStreamDestroy_v2", "");
}

CUresult cuStreamSynchronize(void *stream) {
  return enter("cuStreamSynchronize", "");
}

/* Streams are being captured (status 1) when FAKE_CUDA_CAPTURING is 1. */
CUresult cuStreamIsCapturing(void *stream, int *status) {
  *status = envInt("FAKE_CUDA_CAPTURING", 0);
  return enter("cuStreamIsCapturing", "");
}

CUresult cuStreamWaitEvent(void *stream, void *event, unsigned flags) {
  return enter("cuStreamWaitEvent", "flags %u", flags);
}

/* An event holds the tick of its last record: the stand-in GPU's clock
 * advances by 10 us at each record. */
static long ticks;

CUresult cuEventCreate(void **event, unsigned flags) {
  *event = calloc(1, sizeof(long));
  return enter("cuEventCreate", "flags %u", flags);
}

CUresult cuEventDestroy_v2(void *event) {
  free(event);
  return enter("cuEventDestroy_v2", "");
}

CUresult cuEventSynchronize(void *event) {
  return enter("cuEventSynchronize", "");
}

CUresult cuEventRecord(void *event, void *stream) {
  *(long *)event = ++ticks;
  return enter("cuEventRecord", "");
}

CUresult cuEventElapsedTime(float *ms, void *start, void *stop) {
  *ms = 0.01f * (float)(*(long *)stop - *(long *)start);
  return enter("cuEventElapsedTime", "%.2f", *ms);
}

typedef unsigned long long CUdeviceptr;

/* "Device" allocations, so that a copy or memset beyond one fails with
 * CUDA_ERROR_INVALID_VALUE instead of corrupting the test's heap. */
static struct {
  CUdeviceptr base;
  size_t size;
  int pooled;
} allocations[256];

/* The one memory pool: the bytes its allocations use, and the bytes it
 * holds (what they used at most since the last trim). */
static size_t poolUsed, poolReserved;

/* A new "device" allocation; `pooled` when it comes from the pool. */
static CUdeviceptr allocate(size_t bytes, int pooled) {
  CUdeviceptr p = (CUdeviceptr)(uintptr_t)malloc(bytes);
  for (size_t i = 0; i < sizeof(allocations) / sizeof(allocations[0]); ++i)
    if (!allocations[i].base) {
      allocations[i].base = p;
      allocations[i].size = bytes;
      allocations[i].pooled = pooled;
      break;
    }
  if (pooled && (poolUsed += bytes) > poolReserved)
    poolReserved = poolUsed;
  return p;
}

/* Forgets the allocation at p, and gives its bytes back to the pool when
 * it came from there. */
static void release(CUdeviceptr p) {
  for (size_t i = 0; i < sizeof(allocations) / sizeof(allocations[0]); ++i)
    if (allocations[i].base == p) {
      if (allocations[i].pooled)
        poolUsed -= allocations[i].size;
      allocations[i].base = 0;
    }
  free((void *)(uintptr_t)p);
}

/* 1 when [p, p + bytes) lies within its allocation, or p is host memory. */
static int fits(CUdeviceptr p, size_t bytes) {
  for (size_t i = 0; i < sizeof(allocations) / sizeof(allocations[0]); ++i)
    if (allocations[i].base && p >= allocations[i].base &&
        p < allocations[i].base + allocations[i].size)
      return bytes <= allocations[i].base + allocations[i].size - p;
  return 1;
}

CUresult cuMemAlloc_v2(CUdeviceptr *ptr, size_t bytes) {
  CUresult r = enter("cuMemAlloc_v2", "%zu", bytes);
  *ptr = r ? 0 : allocate(bytes, 0);
  return r;
}

CUresult cuMemAllocManaged(CUdeviceptr *ptr, size_t bytes, unsigned flags) {
  CUresult r = enter("cuMemAllocManaged", "%zu, flags %u", bytes, flags);
  *ptr = r ? 0 : allocate(bytes, 0);
  return r;
}

CUresult cuMemFree_v2(CUdeviceptr ptr) {
  release(ptr);
  return enter("cuMemFree_v2", "");
}

CUresult cuMemAllocAsync(CUdeviceptr *ptr, size_t bytes, void *stream) {
  CUresult r = enter("cuMemAllocAsync", "%zu", bytes);
  *ptr = r ? 0 : allocate(bytes, 0);
  return r;
}

CUresult cuMemFreeAsync(CUdeviceptr ptr, void *stream) {
  release(ptr);
  return enter("cuMemFreeAsync", "");
}

typedef struct {
  int allocType, handleTypes;
  struct {
    int type, id;
  } location;
  void *win32SecurityAttributes;
  size_t maxSize;
  unsigned short usage;
  unsigned char reserved[54];
} MemPoolProps;

static int thePool;

CUresult cuMemPoolCreate(void **pool, const MemPoolProps *p) {
  CUresult r =
      enter("cuMemPoolCreate",
            "type %d, handles %d, location %d device %d, max %zu", p->allocType,
            p->handleTypes, p->location.type, p->location.id, p->maxSize);
  *pool = r ? NULL : &thePool;
  return r;
}

CUresult cuMemPoolSetAttribute(void *pool, int attribute, void *value) {
  return enter("cuMemPoolSetAttribute", "%s, attribute %d, %llu",
               pool == &thePool ? "the pool" : "another pool", attribute,
               *(unsigned long long *)value);
}

/* Attribute 5 (CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT): the bytes held. */
CUresult cuMemPoolGetAttribute(void *pool, int attribute, void *value) {
  CUresult r = enter("cuMemPoolGetAttribute", "attribute %d = %zu", attribute,
                     poolReserved);
  *(unsigned long long *)value = attribute == 5 ? poolReserved : 0;
  return r;
}

CUresult cuMemPoolTrimTo(void *pool, size_t keep) {
  CUresult r = enter("cuMemPoolTrimTo", "%zu", keep);
  if (!r && poolReserved > keep)
    poolReserved = poolUsed > keep ? poolUsed : keep;
  return r;
}

CUresult cuMemAllocFromPoolAsync(CUdeviceptr *ptr, size_t bytes, void *pool,
                                 void *stream) {
  CUresult r = enter("cuMemAllocFromPoolAsync", "%zu", bytes);
  *ptr = r ? 0 : allocate(bytes, 1);
  return r;
}

CUresult cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t bytes,
                       void *stream) {
  CUresult r = enter("cuMemcpyAsync", "%zu", bytes);
  if (!r && !(fits(dst, bytes) && fits(src, bytes)))
    r = 1;
  if (!r)
    memcpy((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, bytes);
  return r;
}

CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t bytes) {
  CUresult r = enter("cuMemcpyHtoD_v2", "%zu", bytes);
  if (!r && !fits(dst, bytes))
    r = 1;
  if (!r)
    memcpy((void *)(uintptr_t)dst, src, bytes);
  return r;
}

CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned value, size_t count,
                          void *stream) {
  CUresult r = enter("cuMemsetD32Async", "0x%x, %zu", value, count);
  if (!r && !fits(dst, count * 4))
    r = 1;
  for (size_t i = 0; !r && i < count; ++i)
    ((uint32_t *)(uintptr_t)dst)[i] = value;
  return r;
}

CUresult cuMemsetD16Async(CUdeviceptr dst, unsigned short value, size_t count,
                          void *stream) {
  CUresult r = enter("cuMemsetD16Async", "0x%x, %zu", value, count);
  if (!r && !fits(dst, count * 2))
    r = 1;
  for (size_t i = 0; !r && i < count; ++i)
    ((uint16_t *)(uintptr_t)dst)[i] = value;
  return r;
}

CUresult cuMemHostRegister_v2(void *ptr, size_t bytes, unsigned flags) {
  return enter("cuMemHostRegister_v2", "%zu, flags %u", bytes, flags);
}

CUresult cuMemHostUnregister(void *ptr) {
  return enter("cuMemHostUnregister", "");
}

CUresult cuTensorMapEncodeTiled(void *map, int type, unsigned rank,
                                void *address, const uint64_t *dims,
                                const uint64_t *strides, const unsigned *box,
                                const unsigned *elementStrides, int interleave,
                                int swizzle, int l2Promotion, int oobFill) {
  char text[256];
  int n = snprintf(text, sizeof(text), "type %d, dims", type);
  for (unsigned i = 0; i < rank; ++i)
    n += snprintf(text + n, sizeof(text) - n, " %llu",
                  (unsigned long long)dims[i]);
  n += snprintf(text + n, sizeof(text) - n, ", strides");
  for (unsigned i = 0; i + 1 < rank; ++i)
    n += snprintf(text + n, sizeof(text) - n, " %llu",
                  (unsigned long long)strides[i]);
  n += snprintf(text + n, sizeof(text) - n, ", box");
  for (unsigned i = 0; i < rank; ++i)
    n += snprintf(text + n, sizeof(text) - n, " %u", box[i]);
  memset(map, 0xab, 128);
  return enter("cuTensorMapEncodeTiled",
               "%s, interleave %d, swizzle %d, l2 %d, oob %d", text, interleave,
               swizzle, l2Promotion, oobFill);
}
