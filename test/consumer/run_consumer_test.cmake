# consumer_find_package: checks that an installed tensortape works from another CMake project.
#
#   cmake -DBUILD_DIR=<tensortape build> -DSOURCE_DIR=<this folder> -DWORK_DIR=<scratch>
#         -DREADME=<README.md> [-DCXX_COMPILER=...] [-DGENERATOR=...] [-DEXPECT_KERNELS=ON]
#         -P run_consumer_test.cmake
#
# 1. cmake --install BUILD_DIR --prefix WORK_DIR/prefix
# 2. configure SOURCE_DIR with -DCMAKE_PREFIX_PATH=WORK_DIR/prefix, and check that
#    find_package picked the package from that prefix (not the source or build tree)
# 3. build it, run both programs
# 4. check README.md's usage example is byte-for-byte usage_example.cpp
cmake_minimum_required(VERSION 3.22)

foreach(var BUILD_DIR SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_consumer_test.cmake: pass -D${var}=...")
  endif()
endforeach()

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc COMMAND_ECHO STDOUT)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer_find_package: ${what} failed (${rc})")
  endif()
endfunction()

set(prefix "${WORK_DIR}/prefix")
set(consumer_build "${WORK_DIR}/build")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

run_step("install" "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}")

set(configure_args -S "${SOURCE_DIR}" -B "${consumer_build}" -DCMAKE_BUILD_TYPE=Release
    "-DCMAKE_PREFIX_PATH=${prefix}"
    # Look only where we installed: no package registries, no system-wide tensortape.
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
if(DEFINED CXX_COMPILER AND NOT CXX_COMPILER STREQUAL "")
  list(APPEND configure_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()
if(EXPECT_KERNELS)  # the build made tensortape::kernels: the consumer must find and link it
  list(APPEND configure_args -DEXPECT_KERNELS=ON)
endif()
if(DEFINED GENERATOR AND NOT GENERATOR STREQUAL "")
  list(APPEND configure_args -G "${GENERATOR}")
endif()
run_step("configure" "${CMAKE_COMMAND}" ${configure_args})

file(STRINGS "${consumer_build}/CMakeCache.txt" found_dir REGEX "^tensortape_DIR:")
string(REGEX REPLACE "^tensortape_DIR:[A-Z]+=" "" found_dir "${found_dir}")
file(REAL_PATH "${prefix}" real_prefix)
file(REAL_PATH "${found_dir}" real_found_dir)
string(FIND "${real_found_dir}/" "${real_prefix}/" at)
if(NOT at EQUAL 0)
  message(FATAL_ERROR "consumer_find_package: find_package used ${found_dir}, not the install prefix ${prefix}")
endif()

run_step("build" "${CMAKE_COMMAND}" --build "${consumer_build}")
run_step("consumer" "${consumer_build}/consumer")
run_step("usage_example" "${consumer_build}/usage_example")

if(DEFINED README)
  file(READ "${README}" readme)
  file(READ "${SOURCE_DIR}/usage_example.cpp" example)
  set(marker "<!-- test/consumer/usage_example.cpp -->\n```cpp\n")
  string(FIND "${readme}" "${marker}" start)
  if(start EQUAL -1)
    message(FATAL_ERROR "consumer_find_package: README.md lacks the usage example block (a line '<!-- test/consumer/usage_example.cpp -->' then a ```cpp fence)")
  endif()
  string(LENGTH "${marker}" marker_length)
  math(EXPR start "${start} + ${marker_length}")
  string(SUBSTRING "${readme}" ${start} -1 rest)
  string(FIND "${rest}" "```" end)
  string(SUBSTRING "${rest}" 0 ${end} block)
  if(NOT block STREQUAL example)
    message(FATAL_ERROR "consumer_find_package: the usage example in README.md differs from test/consumer/usage_example.cpp; keep them identical")
  endif()
endif()
message(STATUS "consumer_find_package: OK")
