// Compiled mode for the CPU backends' kernels, beside the header-only default (as fmt and
// spdlog offer one).
//
// Header-only, every file that calls backend::Eigen's or backend::Xtensor's kernels compiles
// them itself: with xtensor's expressions that is most of a small program's compile time. A
// target that links the CMake target tensortape::kernels (a static library built from
// cmake/cpu_kernels_*.cpp) gets TENSORTAPE_COMPILED_KERNELS defined; each backend header then
// declares its float and double kernels `extern template`, so files call the library's one
// compiled copy. Other element types, and backend::Reference (the oracle, plain loops), still
// compile where they are used.
//
//   target_link_libraries(app PRIVATE tensortape::kernels)   # instead of tensortape::tensortape
#pragma once

// One explicit instantiation of each kernel every CPU backend defines itself, for backend B and
// element type T: `extern` declares them, an empty prefix defines them.
#define TENSORTAPE_CPU_KERNELS(prefix, B, T)                                                                      \
  prefix template void B::copy_strided<T>(ConstView<T>, StridedView<T>);                                         \
  prefix template void B::unary<T>(UnaryArgs, ConstView<T>, T*);                                                 \
  prefix template void B::binary<T>(Binary, ConstView<T>, ConstView<T>, T*);                                     \
  prefix template void B::where<T>(ConstView<T>, ConstView<T>, ConstView<T>, T*);                                \
  prefix template void B::reduce<T>(Reduce, const T*, std::int64_t, std::int64_t, std::int64_t, T*);             \
  prefix template void B::softmax<T>(const T*, std::int64_t, std::int64_t, T*, bool);                            \
  prefix template void B::gemm<T>(const GemmArgs&, const T*, const T*, T*);                                      \
  prefix template void B::index_select<T>(const T*, std::int64_t, std::int64_t, std::int64_t, const std::int64_t*, \
                                          std::int64_t, T*);                                                     \
  prefix template void B::index_add<T>(const T*, std::int64_t, std::int64_t, std::int64_t, const std::int64_t*,  \
                                       std::int64_t, T*);
