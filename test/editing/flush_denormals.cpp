// editlab's tests run in the floating-point mode editlab's main sets: subnormal floats flushed to
// zero (tensortape/backend/cpu_denormals.hpp). Set during static initialisation, before main and
// before any thread exists, so every thread a test makes inherits it.
#include "tensortape/backend/cpu_denormals.hpp"

namespace {
[[maybe_unused]] const bool flushing_denormals = tensortape::backend::cpu::set_flush_denormal_this_thread(true);
}  // namespace
