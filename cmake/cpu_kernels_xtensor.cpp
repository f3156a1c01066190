// tensortape::kernels: backend::Xtensor's kernels for float and double, compiled once for every
// target that links the library (include/tensortape/backend/compiled_kernels.hpp).
#include "tensortape/backend/xtensor.hpp"

namespace tensortape::backend {
TENSORTAPE_CPU_KERNELS(, Xtensor, float)
TENSORTAPE_CPU_KERNELS(, Xtensor, double)
}  // namespace tensortape::backend
