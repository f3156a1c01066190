# Finds what tensortape's CPU backends need and attaches it to a target. Used both by the
# source tree and by the installed package config, so consumers get the same setup.
include(CMakeFindDependencyMacro)

# The CPU backends split their non-GEMM kernels over OpenMP threads (backend/cpu_parallel.hpp),
# sharing one thread team with OpenBLAS's OpenMP build (Debian: libopenblas-openmp-dev), which
# is looked for first. That build is required for it: OpenMP threads beside OpenBLAS's pthread
# build spin against each other on the same cores (TS-1 ran 2.9x slower; docs/benchmarks.md).
# Without both, the kernels run on one thread and BLAS is whatever FindBLAS finds.
if(NOT DEFINED TENSORTAPE_WITH_OPENMP)
  set(TENSORTAPE_WITH_OPENMP ON)
endif()
set(_tensortape_library_path "${CMAKE_LIBRARY_PATH}")
if(TENSORTAPE_WITH_OPENMP)
  find_package(OpenMP QUIET COMPONENTS CXX)
  list(PREPEND CMAKE_LIBRARY_PATH /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp)
endif()

set(BLA_VENDOR OpenBLAS)
find_package(Eigen3 3.4 REQUIRED NO_MODULE)
find_package(BLAS REQUIRED)
find_package(Threads REQUIRED)
# io/ (safetensors headers, HF config.json) parses JSON with nlohmann-json (nlohmann-json3-dev).
# Found here at file scope so the installed package config finds it too.
find_package(nlohmann_json 3 REQUIRED)

set(TENSORTAPE_HAS_OPENMP OFF)
if(TENSORTAPE_WITH_OPENMP)
  # One team needs one runtime: Debian's OpenBLAS OpenMP build uses GCC's libgomp, so a
  # compiler whose OpenMP is another runtime (clang: LLVM's libomp) keeps the kernels on one thread.
  if(OpenMP_CXX_FOUND AND "${OpenMP_CXX_LIB_NAMES}" MATCHES "gomp" AND BLAS_LIBRARIES MATCHES "openblas-openmp")
    set(TENSORTAPE_HAS_OPENMP ON)
  else()
    message(STATUS "tensortape: no OpenMP on libgomp, or no OpenBLAS OpenMP build (libopenblas-openmp-dev; "
                   "BLAS: ${BLAS_LIBRARIES}); the CPU backends' non-GEMM kernels run on one thread")
  endif()
endif()

# backend::Eigen's float GEMMs go to oneDNN's sgemm (Debian: libdnnl-dev) where it is found and
# built on the same OpenMP runtime as the kernels' team (Debian's: libgomp), so that its threads
# are that team; double GEMMs, and every GEMM without it, go to BLAS. docs/benchmarks.md has the
# measurements behind the choice.
if(NOT DEFINED TENSORTAPE_WITH_ONEDNN)
  set(TENSORTAPE_WITH_ONEDNN ON)
endif()
set(TENSORTAPE_HAS_ONEDNN OFF)
if(TENSORTAPE_WITH_ONEDNN AND TENSORTAPE_HAS_OPENMP)
  # Debian's oneDNN config asks for OpenCL (its GPU runtime) as REQUIRED, which would stop the
  # configure where OpenCL's development files are missing (libdnnl-dev only recommends them):
  # look first, and fall back to BLAS with a message instead.
  find_file(TENSORTAPE_DNNL_CONFIG_FILE dnnl-config.cmake
            PATH_SUFFIXES lib/${CMAKE_LIBRARY_ARCHITECTURE}/cmake/dnnl lib/cmake/dnnl lib64/cmake/dnnl)
  set(tensortape_dnnl_loadable ON)
  if(TENSORTAPE_DNNL_CONFIG_FILE)
    file(STRINGS "${TENSORTAPE_DNNL_CONFIG_FILE}" tensortape_dnnl_gpu_runtime
         REGEX "set\\(DNNL_GPU_RUNTIME \"OCL\"\\)")
    if(tensortape_dnnl_gpu_runtime)
      find_package(OpenCL QUIET)
      if(NOT OpenCL_FOUND)
        set(tensortape_dnnl_loadable OFF)
        message(STATUS "tensortape: oneDNN's CMake config needs OpenCL's development files "
                       "(ocl-icd-opencl-dev), not found; float GEMMs go to BLAS")
      endif()
    endif()
  endif()
  if(tensortape_dnnl_loadable)
    find_package(dnnl CONFIG QUIET)
  endif()
  if(dnnl_FOUND AND DNNL_CPU_RUNTIME STREQUAL "OMP")
    set(TENSORTAPE_HAS_ONEDNN ON)
  elseif(tensortape_dnnl_loadable)
    message(STATUS "tensortape: oneDNN with an OpenMP runtime not found (libdnnl-dev); float GEMMs go to BLAS")
  endif()
endif()

if(NOT DEFINED TENSORTAPE_WITH_XTENSOR)
  set(TENSORTAPE_WITH_XTENSOR ON)
endif()
set(TENSORTAPE_HAS_XTENSOR OFF)
if(TENSORTAPE_WITH_XTENSOR)
  find_package(xtensor QUIET)
  find_package(xtensor-blas QUIET)
  if(xtensor_FOUND AND xtensor-blas_FOUND)
    set(TENSORTAPE_HAS_XTENSOR ON)
  else()
    message(STATUS "tensortape: xtensor or xtensor-blas not found; backend::Xtensor disabled")
  endif()
endif()

# text::SentencePiece (include/tensortape/text/sentencepiece.hpp) needs the system
# libsentencepiece; Debian's libsentencepiece-dev ships sentencepiece.pc.
if(NOT DEFINED TENSORTAPE_WITH_SENTENCEPIECE)
  set(TENSORTAPE_WITH_SENTENCEPIECE ON)
endif()
set(TENSORTAPE_HAS_SENTENCEPIECE OFF)
if(TENSORTAPE_WITH_SENTENCEPIECE)
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(TENSORTAPE_SENTENCEPIECE QUIET IMPORTED_TARGET sentencepiece)
  endif()
  if(TENSORTAPE_SENTENCEPIECE_FOUND)
    set(TENSORTAPE_HAS_SENTENCEPIECE ON)
  else()
    message(STATUS "tensortape: sentencepiece not found (pkg-config sentencepiece); text::SentencePiece disabled")
  endif()
endif()
set(CMAKE_LIBRARY_PATH "${_tensortape_library_path}")  # xtensor-blas found the same BLAS

function(tensortape_link_dependencies target)
  # BLAS from a directory of its own (the OpenMP build's) lands in the RUNPATH, so it is the
  # libopenblas.so.0 loaded whichever variant the system's alternative points to.
  target_link_libraries(${target} INTERFACE Eigen3::Eigen BLAS::BLAS Threads::Threads)
  if(TENSORTAPE_HAS_OPENMP)
    target_link_libraries(${target} INTERFACE OpenMP::OpenMP_CXX)
  endif()
  target_link_libraries(${target} INTERFACE nlohmann_json::nlohmann_json)
  # Eigen's own GEMM reaches 0.4-0.75x OpenBLAS here; this sends Eigen products to BLAS.
  target_compile_definitions(${target} INTERFACE EIGEN_USE_BLAS)
  if(TENSORTAPE_HAS_ONEDNN)
    target_link_libraries(${target} INTERFACE DNNL::dnnl)
    target_compile_definitions(${target} INTERFACE TENSORTAPE_HAS_ONEDNN=1)
  endif()
  if(TENSORTAPE_HAS_XTENSOR)
    target_link_libraries(${target} INTERFACE xtensor xtensor-blas)
    target_compile_definitions(${target} INTERFACE TENSORTAPE_HAS_XTENSOR=1)
  endif()
  if(TENSORTAPE_HAS_SENTENCEPIECE)
    target_link_libraries(${target} INTERFACE PkgConfig::TENSORTAPE_SENTENCEPIECE)
    target_compile_definitions(${target} INTERFACE TENSORTAPE_HAS_SENTENCEPIECE=1)
  endif()
endfunction()
