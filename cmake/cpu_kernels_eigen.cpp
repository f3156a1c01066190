// tensortape::kernels: backend::Eigen's kernels for float and double, compiled once for every
// target that links the library (include/tensortape/backend/compiled_kernels.hpp).
#include "tensortape/backend/eigen.hpp"

namespace tensortape::backend {
TENSORTAPE_EIGEN_KERNELS(, float)
TENSORTAPE_EIGEN_KERNELS(, double)
}  // namespace tensortape::backend
