// editlab's tests run in the modes editlab's main sets: subnormal floats flushed to zero
// (tensortape/backend/cpu_denormals.hpp) and OpenBLAS on kernels this CPU runs
// (tensortape/backend/cpu_blas_kernels.hpp). Set during static initialisation, before main and
// before any thread exists, so every thread a test makes inherits the first; OpenBLAS has
// picked its kernels by then (a shared library initialises before the program that loads it).
#include "tensortape/backend/cpu_blas_kernels.hpp"
#include "tensortape/backend/cpu_denormals.hpp"

namespace {
[[maybe_unused]] const bool flushing_denormals = tensortape::backend::cpu::set_flush_denormal_this_thread(true);
[[maybe_unused]] const auto blas_kernels = tensortape::backend::cpu::fit_blas_kernels();
}  // namespace
