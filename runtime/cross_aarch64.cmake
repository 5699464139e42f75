# cross_aarch64.cmake: the runtime archives for `cnnc --target arm-64-linux`, built with Debian's
# aarch64-linux-gnu-g++ (package g++-aarch64-linux-gnu) and zlib1g-dev:arm64. Executables for
# aarch64 are linked statically, so they run on any aarch64 Linux, and under qemu-aarch64 here.
#
# The header-only dependencies (nlohmann/json, CLI11, stb, zlib's header) are the host's: a
# staging folder links just those, so no x86 header from /usr/include leaks into the cross build.
find_program(CNNC_AARCH64_CXX aarch64-linux-gnu-g++)
find_program(CNNC_AARCH64_AR aarch64-linux-gnu-ar)
set(CNNC_AARCH64_ZLIB /usr/lib/aarch64-linux-gnu/libz.a)
if(NOT CNNC_AARCH64_CXX OR NOT CNNC_AARCH64_AR OR NOT EXISTS ${CNNC_AARCH64_ZLIB})
  set(CNNC_RUNTIME_AARCH64_LIB "" CACHE INTERNAL "")
  set(CNNC_CAPI_AARCH64_LIB "" CACHE INTERNAL "")
  message(STATUS "aarch64 runtime: off (install g++-aarch64-linux-gnu and zlib1g-dev:arm64 for --target arm-64-linux)")
  return()
endif()

set(stage ${CMAKE_CURRENT_BINARY_DIR}/aarch64-include)
file(MAKE_DIRECTORY ${stage} ${CMAKE_CURRENT_BINARY_DIR}/aarch64)
foreach(h nlohmann CLI stb zlib.h zconf.h)
  file(CREATE_LINK /usr/include/${h} ${stage}/${h} SYMBOLIC)
endforeach()

# Compiles one runtime source for aarch64; appends the object to `objs`.
function(cnnc_aarch64_object src objs)
  get_filename_component(base ${src} NAME_WE)
  set(obj ${CMAKE_CURRENT_BINARY_DIR}/aarch64/${base}.o)
  add_custom_command(OUTPUT ${obj}
    COMMAND ${CNNC_AARCH64_CXX} -std=c++17 -O2 -fPIC -Wall -Wno-unused-parameter -MD -MF ${obj}.d
            -I${CMAKE_CURRENT_SOURCE_DIR} -I${PROJECT_SOURCE_DIR} -isystem ${stage} -isystem ${HALIDE_RUNTIME_INCLUDE}
            -c ${CMAKE_CURRENT_SOURCE_DIR}/${src} -o ${obj}
    DEPENDS ${src} DEPFILE ${obj}.d
    COMMENT "aarch64: ${src}" VERBATIM)
  set(${objs} ${${objs}} ${obj} PARENT_SCOPE)
endfunction()

set(core_objs)
foreach(src ${CNNC_RUNTIME_SOURCES})
  cnnc_aarch64_object(${src} core_objs)
endforeach()
set(runtime_objs)
cnnc_aarch64_object(main.cpp runtime_objs)
cnnc_aarch64_object(comm_mpi.cpp runtime_objs)  # without MPI: single process
cnnc_aarch64_object(big_pages.cpp runtime_objs)
set(capi_objs)
cnnc_aarch64_object(capi.cpp capi_objs)

# Archives: the runtime (core + main) and the C API (core + capi), as for the host.
foreach(lib runtime capi)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/libcnnc_${lib}_aarch64.a)
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -E rm -f ${out}
    COMMAND ${CNNC_AARCH64_AR} rcs ${out} ${core_objs} ${${lib}_objs}
    DEPENDS ${core_objs} ${${lib}_objs} VERBATIM)
  add_custom_target(cnnc_${lib}_aarch64 ALL DEPENDS ${out})
endforeach()
set(CNNC_RUNTIME_AARCH64_LIB ${CMAKE_CURRENT_BINARY_DIR}/libcnnc_runtime_aarch64.a CACHE INTERNAL "")
set(CNNC_CAPI_AARCH64_LIB ${CMAKE_CURRENT_BINARY_DIR}/libcnnc_capi_aarch64.a CACHE INTERNAL "")
