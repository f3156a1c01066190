# Finds what tensortape's CPU backends need and attaches it to a target. Used both by the
# source tree and by the installed package config, so consumers get the same setup.
include(CMakeFindDependencyMacro)

set(BLA_VENDOR OpenBLAS)
find_package(Eigen3 3.4 REQUIRED NO_MODULE)
find_package(BLAS REQUIRED)
find_package(Threads REQUIRED)

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

function(tensortape_link_dependencies target)
  target_link_libraries(${target} INTERFACE Eigen3::Eigen BLAS::BLAS Threads::Threads)
  # Eigen's own GEMM reaches 0.4-0.75x OpenBLAS here; this sends Eigen products to BLAS.
  target_compile_definitions(${target} INTERFACE EIGEN_USE_BLAS)
  if(TENSORTAPE_HAS_XTENSOR)
    target_link_libraries(${target} INTERFACE xtensor xtensor-blas)
    target_compile_definitions(${target} INTERFACE TENSORTAPE_HAS_XTENSOR=1)
  endif()
endfunction()
