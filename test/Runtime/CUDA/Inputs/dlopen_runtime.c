/*===- dlopen_runtime.c - open the CUDA runtime as a JIT would ------------===*\
|*                                                                            *|
|* Part of the moe-mlir project, under the Apache License v2.0 with LLVM      *|
|* Exceptions. See LICENSE for license information.                           *|
|* SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception                    *|
|*                                                                            *|
|*===----------------------------------------------------------------------===*|
|*                                                                            *|
|* Opens the library named by argv[1] with dlopen (loading must not need a    *|
|* GPU driver), prints what moe_cuda_available says, then looks up each      *|
|* further argument as a symbol.                                              *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: dlopen_runtime LIBRARY [SYMBOL...]\n");
    return 2;
  }
  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    printf("dlopen failed: %s\n", dlerror());
    return 1;
  }
  typedef int (*Available)(const char **);
  Available available = (Available)dlsym(lib, "moe_cuda_available");
  if (!available) {
    printf("no moe_cuda_available\n");
    return 1;
  }
  const char *reason = NULL;
  int usable = available(&reason);
  printf("available=%d reason=%s\n", usable, reason ? reason : "(null)");
  /* The answer is computed once; asking again gives the same. */
  const char *again = NULL;
  if (available(&again) != usable || again != reason) {
    printf("moe_cuda_available changed its answer\n");
    return 1;
  }
  int missing = 0;
  for (int i = 2; i < argc; ++i)
    if (!dlsym(lib, argv[i])) {
      printf("missing %s\n", argv[i]);
      missing = 1;
    }
  printf("symbols %s\n", missing ? "missing" : "found");
  return missing;
}
