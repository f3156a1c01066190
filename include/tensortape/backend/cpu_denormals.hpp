// Flushing subnormal floats to zero on the CPU, as torch.set_flush_denormal(True) does.
//
// Training produces subnormal floats (|x| < 2^-126: far tails of softmax, tiny gradients and
// Adam moments). Intel cores compute an SSE/AVX multiply with a subnormal operand through a
// microcode assist, so a GEMM whose inputs hold them runs up to two orders of magnitude slower
// (docs/benchmarks.md, "Subnormal floats"); AMD's Zen cores pay almost nothing. With the
// x86 MXCSR bits FTZ (results that would be subnormal become 0) and DAZ (subnormal inputs read
// as 0) set, every float op and every OpenBLAS kernel runs at full speed; values below 2^-126
// are lost, which no float32 training result depends on.
//
//   tensortape::backend::cpu::set_flush_denormal(true);   // at the start of main, before threads
//
// The mode is per thread. set_flush_denormal sets it on the calling thread and on the OpenMP
// threads of its team (the non-GEMM kernels' and, with OpenBLAS's OpenMP variant, the GEMMs');
// threads created afterwards inherit their creator's mode (pthread_create copies the floating-
// point environment), so calling it first thing in main covers every thread the program makes.
// Not OpenBLAS's pthread build, though (a build without OpenMP, TENSORTAPE_HAS_OPENMP off): its
// own threads start when the library loads, before main, and keep IEEE mode.
#pragma once

#if defined(__x86_64__) || defined(_M_X64) || defined(__SSE__)
#include <xmmintrin.h>
#define TENSORTAPE_HAS_MXCSR 1
#endif

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace tensortape::backend::cpu {

#if defined(TENSORTAPE_HAS_MXCSR)
inline constexpr unsigned kMxcsrFlushToZero = 1u << 15;
inline constexpr unsigned kMxcsrDenormalsAreZero = 1u << 6;
inline constexpr unsigned kMxcsrFlushDenormal = kMxcsrFlushToZero | kMxcsrDenormalsAreZero;
#endif

// Sets or clears flush-to-zero and denormals-are-zero on the calling thread only. Returns false
// where this build has no such mode (not x86): nothing changes there.
inline bool set_flush_denormal_this_thread(bool on) {
#if defined(TENSORTAPE_HAS_MXCSR)
  const unsigned csr = _mm_getcsr();
  _mm_setcsr(on ? (csr | kMxcsrFlushDenormal) : (csr & ~kMxcsrFlushDenormal));
  return true;
#else
  (void)on;
  return false;
#endif
}

// Whether the calling thread flushes subnormals (both bits set).
inline bool flushes_denormals_this_thread() {
#if defined(TENSORTAPE_HAS_MXCSR)
  return (_mm_getcsr() & kMxcsrFlushDenormal) == kMxcsrFlushDenormal;
#else
  return false;
#endif
}

// Sets or clears the mode on the calling thread and on every thread of its OpenMP team. Returns
// false where this build has no such mode.
inline bool set_flush_denormal(bool on) {
#if defined(_OPENMP)
  const int team = omp_get_max_threads();
#pragma omp parallel num_threads(team)
  set_flush_denormal_this_thread(on);
#endif
  return set_flush_denormal_this_thread(on);
}

}  // namespace tensortape::backend::cpu
