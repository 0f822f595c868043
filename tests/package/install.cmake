# Installs the build tree BUILD_DIR into a fresh PREFIX (the setup step of the packaging test).
# Starting from an empty prefix (and empty consumer build dirs CLEAN, a list) keeps a stale
# install from hiding a packaging bug.
#   cmake -DBUILD_DIR=... -DPREFIX=... [-DCONFIG=...] [-DCLEAN=...] -P install.cmake
foreach(var BUILD_DIR PREFIX)
  if(NOT ${var})
    message(FATAL_ERROR "install.cmake: ${var} is required")
  endif()
endforeach()
file(REMOVE_RECURSE "${PREFIX}")
if(CLEAN)
  file(REMOVE_RECURSE ${CLEAN})
endif()
set(config_args)
if(CONFIG)
  set(config_args --config "${CONFIG}")
endif()
execute_process(
  COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}" ${config_args}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install ${BUILD_DIR} --prefix ${PREFIX} failed (${rc})")
endif()
