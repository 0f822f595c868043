/// \file `main` for Catch2 v2 test executables (v3 links `Catch2::Catch2WithMain` instead).
/// Compiled once into the `xsn_catch_main` library so no test file pays for it.
#define CATCH_CONFIG_MAIN
#include "catch.hpp"

#if XSN_CATCH2_MAJOR >= 3
#  error "catch_main.cpp is for Catch2 v2 only; v3 provides Catch2::Catch2WithMain"
#endif
