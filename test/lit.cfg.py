# -*- Python -*-
# lit configuration of the moe-mlir test suite.

import os
import shutil
import subprocess

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "MOE"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.moe_obj_root, "test")
config.excludes = ["Inputs", "CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py",
                   "consumer", "unit", "reference"]

config.substitutions.append(("%shlibext", config.llvm_shlib_ext))
config.substitutions.append(("%mlir_lib_dir", config.llvm_lib_dir))
config.substitutions.append(("%moe_src_root", config.moe_src_root))
config.substitutions.append(("%moe_obj_root", config.moe_obj_root))
config.substitutions.append(("%cc", config.c_compiler))
config.substitutions.append(("%moe_runtime_include",
                             os.path.join(config.moe_src_root, "runtime",
                                          "include")))
config.substitutions.append(("%moe_lib_dir",
                             os.path.join(config.moe_obj_root, "lib")))

llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

# `lit --param moe_pipeline=reference` compiles every executed test with the
# reference lowering instead of the CPU kernels (moe-run and moe-compile
# get --reference), so that both lowerings meet the same f64 references.
pipeline = lit_config.params.get("moe_pipeline", "fast")
if pipeline not in ("fast", "reference"):
    lit_config.fatal("moe_pipeline must be 'fast' or 'reference'")
if pipeline == "reference":
    config.name = "MOE-reference"
    # Tests of targets without a reference mode (CUDA) say
    # `UNSUPPORTED: reference-pipeline`.
    config.available_features.add("reference-pipeline")
compile_args = ["--reference"] if pipeline == "reference" else []
# The same option for scripts that run moe-run themselves (empty: none).
config.substitutions.append(("%moe_run_args", " ".join(compile_args)))

tool_dirs = [os.path.join(config.moe_obj_root, "bin"), config.llvm_tools_dir]
tools = ["moe-opt", ToolSubst("moe-run", extra_args=compile_args),
         "moe-reference", "moe-capi-test", "moe-gen-checkpoint",
         "moe-checkpoint-info", "moe-import", "moe-stats-report", "moe-place",
         ToolSubst("moe-compile", extra_args=compile_args),
         "moe-cuda-info", "mlir-opt", "mlir-runner", "mlir-translate"]
llvm_config.add_tool_substitutions(tools, tool_dirs)

# Code generation for NVIDIA GPUs needs ptxas (and libdevice) from a CUDA
# toolkit; tests that assemble PTX say `REQUIRES: ptxas`.
cuda_root = os.environ.get("CUDA_ROOT", "/usr/local/cuda")
if os.path.exists(os.path.join(cuda_root, "bin", "ptxas")):
    config.environment["CUDA_ROOT"] = cuda_root
    config.available_features.add("ptxas")
elif shutil.which("ptxas"):
    config.available_features.add("ptxas")

# Programs that use the CUDA runtime API (examples/cuda) build against the
# toolkit's headers and static cudart: `REQUIRES: cuda-toolkit`.
if os.path.exists(os.path.join(cuda_root, "include", "cuda_runtime.h")) and \
        os.path.exists(os.path.join(cuda_root, "lib64", "libcudart_static.a")):
    config.available_features.add("cuda-toolkit")
    config.substitutions.append(("%cuda_root", cuda_root))

# libmoe_gpu_kernels is built where a CUDA toolkit is (runtime/CMakeLists.txt).
if os.path.exists(os.path.join(config.moe_obj_root, "lib",
                               "libmoe_gpu_kernels" + config.llvm_shlib_ext)):
    config.available_features.add("gpu-kernels-lib")
    llvm_config.add_tool_substitutions(["moe-gpu-check", "moe-gpu-bench"],
                                       tool_dirs)

# GPU tests run only where the CUDA runtime finds a driver and a device;
# moe-cuda-info exits with 0 exactly then (77 without a usable GPU).
cuda_info = os.path.join(config.moe_obj_root, "bin", "moe-cuda-info")
try:
    if subprocess.run([cuda_info], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL, timeout=60).returncode == 0:
        config.available_features.add("cuda-gpu")
except (OSError, subprocess.TimeoutExpired):
    pass
