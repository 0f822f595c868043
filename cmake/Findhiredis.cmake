# Findhiredis: hiredis (Debian: libhiredis-dev, 0.14 ships no CMake package) as `hiredis::hiredis`.
#   hiredis_FOUND, hiredis_INCLUDE_DIR, hiredis_LIBRARY, hiredis_VERSION
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_hiredis QUIET hiredis)
endif()
find_path(hiredis_INCLUDE_DIR hiredis/hiredis.h HINTS ${PC_hiredis_INCLUDE_DIRS})
find_library(hiredis_LIBRARY NAMES hiredis HINTS ${PC_hiredis_LIBRARY_DIRS})
if(hiredis_INCLUDE_DIR AND EXISTS "${hiredis_INCLUDE_DIR}/hiredis/hiredis.h")
  file(STRINGS "${hiredis_INCLUDE_DIR}/hiredis/hiredis.h" _hr REGEX "^#define HIREDIS_(MAJOR|MINOR|PATCH) ")
  string(REGEX REPLACE ".*MAJOR ([0-9]+).*" "\\1" _maj "${_hr}")
  string(REGEX REPLACE ".*MINOR ([0-9]+).*" "\\1" _min "${_hr}")
  string(REGEX REPLACE ".*PATCH ([0-9]+).*" "\\1" _pat "${_hr}")
  set(hiredis_VERSION "${_maj}.${_min}.${_pat}")
  unset(_hr)
endif()
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(hiredis
  REQUIRED_VARS hiredis_LIBRARY hiredis_INCLUDE_DIR VERSION_VAR hiredis_VERSION)
if(hiredis_FOUND AND NOT TARGET hiredis::hiredis)
  add_library(hiredis::hiredis UNKNOWN IMPORTED)
  set_target_properties(hiredis::hiredis PROPERTIES
    IMPORTED_LOCATION "${hiredis_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${hiredis_INCLUDE_DIR}")
endif()
mark_as_advanced(hiredis_INCLUDE_DIR hiredis_LIBRARY)
