# Findnuma: libnuma (Debian: libnuma-dev) as `numa::numa`.   numa_FOUND, numa_INCLUDE_DIR, numa_LIBRARY
find_path(numa_INCLUDE_DIR numa.h)
find_library(numa_LIBRARY NAMES numa)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(numa REQUIRED_VARS numa_LIBRARY numa_INCLUDE_DIR)
if(numa_FOUND AND NOT TARGET numa::numa)
  add_library(numa::numa UNKNOWN IMPORTED)
  set_target_properties(numa::numa PROPERTIES
    IMPORTED_LOCATION "${numa_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${numa_INCLUDE_DIR}")
endif()
mark_as_advanced(numa_INCLUDE_DIR numa_LIBRARY)
