// OpenBLAS's kernels fitted to the CPU it runs on, where its own choice fell back to SSE3.
//
// A DYNAMIC_ARCH build of OpenBLAS (Debian's, and most distributions') picks its kernels when it
// loads, from the CPU's vendor, family and model number. Releases before 0.3.25 pick Prescott's
// SSE3 kernels for any Intel model they do not know yet (OpenBLAS issue #4267, fixed by
// PR #4268), whatever vector units it has: Debian 12's 0.3.21 does so on Emerald Rapids
// (family 6, model 207), an AVX-512 machine, so every product below oneDNN's threshold ran on
// 128-bit kernels there (docs/benchmarks.md, "OpenBLAS's fallback kernels on an unknown Intel
// model"). OPENBLAS_CORETYPE names the kernels to use instead, but OpenBLAS reads it when it
// loads, before main.
//
//   tensortape::backend::cpu::fit_blas_kernels();   // at the start of main, before threads
//
// fit_blas_kernels() asks OpenBLAS which kernels it picked; when that is the Prescott fallback
// and the CPU reports AVX or more, it runs OpenBLAS's core selection again with
// OPENBLAS_CORETYPE set to the best family those instructions allow (SkylakeX for AVX-512,
// Haswell for AVX2 and FMA, Sandybridge for AVX), through the two functions a DYNAMIC_ARCH build
// exports for it (gotoblas_dynamic_quit, gotoblas_dynamic_init). It changes nothing where the
// user set OPENBLAS_CORETYPE, where OpenBLAS picked anything else, or where the BLAS in the
// process is not such a build (another BLAS, a build for one target). No BLAS call may run
// while it does: call it before any thread calls one. The environment is left as it was.
#pragma once

#include <cstdlib>
#include <string>
#include <string_view>

#if defined(__linux__) && defined(__GLIBC__)
#include <dlfcn.h>
#define TENSORTAPE_HAS_DLSYM 1
#endif

namespace tensortape::backend::cpu {

// The instruction sets that decide which of OpenBLAS's x86-64 kernel families can run.
struct VectorFeatures {
  bool avx = false, avx2 = false, fma = false;
  bool avx512f = false, avx512dq = false, avx512cd = false, avx512bw = false, avx512vl = false;
};

// What this CPU reports (all false off x86).
inline VectorFeatures this_cpu_vector_features() {
  VectorFeatures f;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  f.avx = __builtin_cpu_supports("avx");
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512dq = __builtin_cpu_supports("avx512dq");
  f.avx512cd = __builtin_cpu_supports("avx512cd");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
#endif
  return f;
}

// The OPENBLAS_CORETYPE of the fastest kernel family that runs with `f` (the instructions
// OpenBLAS's SkylakeX, Haswell and Sandybridge kernels use), or "" where nothing beats the
// Prescott fallback.
inline std::string_view blas_core_for(const VectorFeatures& f) {
  if (f.avx512f && f.avx512dq && f.avx512cd && f.avx512bw && f.avx512vl && f.avx2 && f.fma) return "SkylakeX";
  if (f.avx2 && f.fma) return "Haswell";
  if (f.avx) return "Sandybridge";
  return "";
}

// What fit_blas_kernels() found and did.
struct BlasKernelChoice {
  std::string before;  // OpenBLAS's kernels when called ("" where the process has no OpenBLAS)
  std::string after;   // ... and on return
  bool changed = false;
};

namespace detail {
// The entry points of a DYNAMIC_ARCH OpenBLAS in this process, where there is one.
struct DynamicOpenBlas {
#if defined(TENSORTAPE_HAS_DLSYM)
  using CoreName = char* (*)();
  using Call = void (*)();
  CoreName core_name = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  Call quit = reinterpret_cast<Call>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit"));
  Call init = reinterpret_cast<Call>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init"));
#else
  char* (*core_name)() = nullptr;
  void (*quit)() = nullptr;
  void (*init)() = nullptr;
#endif
  bool present() const { return core_name != nullptr && quit != nullptr && init != nullptr; }
  std::string core() const { return core_name != nullptr ? std::string(core_name()) : std::string(); }
  // Makes OpenBLAS pick its kernels again as if OPENBLAS_CORETYPE were `core` (an unknown name
  // gets the Prescott fallback); the environment is as it was afterwards. Needs present().
  void pick(const std::string& core) const {
#if defined(TENSORTAPE_HAS_DLSYM)
    const char* set = std::getenv("OPENBLAS_CORETYPE");
    const std::string previous = set != nullptr ? set : "";
    setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
    quit();  // forgets the kernels picked, so that init() picks again
    init();
    if (set != nullptr)
      setenv("OPENBLAS_CORETYPE", previous.c_str(), 1);
    else
      unsetenv("OPENBLAS_CORETYPE");
#else
    (void)core;
#endif
  }
};
}  // namespace detail

// OpenBLAS's choice of kernels, refitted as described at the top of this file.
inline BlasKernelChoice fit_blas_kernels() {
  const detail::DynamicOpenBlas openblas;
  BlasKernelChoice choice;
  choice.before = choice.after = openblas.core();
  const auto fitting = blas_core_for(this_cpu_vector_features());
  if (!openblas.present() || fitting.empty() || std::getenv("OPENBLAS_CORETYPE") != nullptr || choice.before != "Prescott")
    return choice;
  openblas.pick(std::string(fitting));
  choice.after = openblas.core();
  choice.changed = choice.after != choice.before;
  return choice;
}

}  // namespace tensortape::backend::cpu
