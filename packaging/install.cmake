# install.cmake: what `cmake --install build [--prefix P]` puts where, and the Debian package
# `cpack -G DEB` makes of it. The layout is the one common/install_paths.h looks for beside the
# installed cnnc, so the installed compiler needs no setting and no file of the source tree:
#   bin/cnnc
#   lib/cnnc/libcnnc_runtime.a, libcnnc_capi.a     linked into executables and --emit=lib libraries
#   lib/cnnc/aarch64/...                           the same for --target arm-64-linux (when built)
#   include/cnnc/capi.h                            the C API
#   include/cnnc/common/                           weight layouts and the kernel allocator, for `cnnc tune --remote`'s measurement programs
#   share/cnnc/python/cnnc_net.py                  the module that --emit=python writes beside lib<net>.so
#   lib/cmake/cnnc/                                find_package(cnnc): cnnc_add_network()
#   share/cnnc/nets/                               the network library that `import` searches
#   share/doc/cnnc/, share/man/man1/cnnc.1
# Halide's runtime is compiled into every executable by cnnc itself; the compiler links Debian's
# libHalide14, which the package depends on.
install(TARGETS cnnc RUNTIME DESTINATION bin)
install(FILES $<TARGET_FILE:cnnc_runtime> $<TARGET_FILE:cnnc_capi> DESTINATION lib/cnnc)
if(CNNC_RUNTIME_AARCH64_LIB)
  install(FILES ${CNNC_RUNTIME_AARCH64_LIB} DESTINATION lib/cnnc/aarch64 RENAME libcnnc_runtime.a)
  install(FILES ${CNNC_CAPI_AARCH64_LIB} DESTINATION lib/cnnc/aarch64 RENAME libcnnc_capi.a)
endif()
install(FILES ${PROJECT_SOURCE_DIR}/runtime/capi.h DESTINATION include/cnnc)
install(FILES ${PROJECT_SOURCE_DIR}/common/packed_layout.h ${PROJECT_SOURCE_DIR}/common/winograd_weights.h
              ${PROJECT_SOURCE_DIR}/common/kernel_alloc.h ${PROJECT_SOURCE_DIR}/common/huge_alloc.h DESTINATION include/cnnc/common)
install(FILES ${PROJECT_SOURCE_DIR}/runtime/python/cnnc_net.py DESTINATION share/cnnc/python)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/nets/ DESTINATION share/cnnc/nets)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION share/doc/cnnc)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/BENCHMARKS.md DESTINATION share/doc/cnnc)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/cnnc.1 DESTINATION share/man/man1)

include(CMakePackageConfigHelpers)
configure_file(${CMAKE_CURRENT_LIST_DIR}/cnncConfig.cmake.in ${CMAKE_BINARY_DIR}/packaging/cnncConfig.cmake @ONLY)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/packaging/cnncConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/packaging/cnncConfig.cmake ${CMAKE_BINARY_DIR}/packaging/cnncConfigVersion.cmake
        DESTINATION lib/cmake/cnnc)

# The Debian package. dpkg-shlibdeps finds the shared libraries cnnc links (Halide, ANTLR, ONNX,
# protobuf); the rest is what cnnc runs or links at compile time: a C++ compiler and zlib for
# every executable, Open MPI's development files when the runtime was built with MPI.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME cnnc)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "cnnc developers <cnnc@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "compiler from a declarative CNN language to native training executables (Halide)")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_COMPRESSION_TYPE gzip)  # xz takes minutes on 2 cores for a few seconds saved on disk
set(_deps "g++, zlib1g-dev")
if(CNNC_RUNTIME_LINK_EXTRA)
  string(APPEND _deps ", libopenmpi-dev")
endif()
set(CPACK_DEBIAN_PACKAGE_DEPENDS "${_deps}")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "graphviz")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "g++-aarch64-linux-gnu, zlib1g-dev:arm64, qemu-user, openmpi-bin")
include(CPack)
