# Finds what tensortape's CPU backends need and attaches it to a target. Used both by the
# source tree and by the installed package config, so consumers get the same setup.
include(CMakeFindDependencyMacro)

set(BLA_VENDOR OpenBLAS)
find_package(Eigen3 3.4 REQUIRED NO_MODULE)
find_package(BLAS REQUIRED)
find_package(Threads REQUIRED)
# io/ (safetensors headers, HF config.json) parses JSON with nlohmann-json (nlohmann-json3-dev).
# Found here at file scope so the installed package config finds it too.
find_package(nlohmann_json 3 REQUIRED)

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

function(tensortape_link_dependencies target)
  target_link_libraries(${target} INTERFACE Eigen3::Eigen BLAS::BLAS Threads::Threads)
  target_link_libraries(${target} INTERFACE nlohmann_json::nlohmann_json)
  # Eigen's own GEMM reaches 0.4-0.75x OpenBLAS here; this sends Eigen products to BLAS.
  target_compile_definitions(${target} INTERFACE EIGEN_USE_BLAS)
  if(TENSORTAPE_HAS_XTENSOR)
    target_link_libraries(${target} INTERFACE xtensor xtensor-blas)
    target_compile_definitions(${target} INTERFACE TENSORTAPE_HAS_XTENSOR=1)
  endif()
  if(TENSORTAPE_HAS_SENTENCEPIECE)
    target_link_libraries(${target} INTERFACE PkgConfig::TENSORTAPE_SENTENCEPIECE)
    target_compile_definitions(${target} INTERFACE TENSORTAPE_HAS_SENTENCEPIECE=1)
  endif()
endfunction()
