# Runs every automated W3C SCXML test through `xsn test-script` and prints the counts.
#
#   cmake -DXSN=<xsn tool> -DSUITE=<test/w3c-ecma dir> -DLIST=<w3c-tests.txt>
#         [-DREPORT=<file>] [-DMANUAL=<count>] [-DTIMEOUT=<seconds per test>] -P w3c_summary.cmake
#
# LIST has one `id|mandatory-or-optional|status` line per case, written at configure time;
# status `run`, or `needs-http`/`no-script` for cases that are reported as not run.
# Fails (exit 1) when any mandatory test fails; optional failures are listed, not fatal
# (their own w3c.NNN cases fail in ctest all the same).
# `xsn test-script` exit codes: 0 all configurations match, 1 mismatch, 2 document not loaded.

foreach(var XSN SUITE LIST)
  if(NOT ${var})
    message(FATAL_ERROR "w3c_summary.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT TIMEOUT)
  set(TIMEOUT 60)
endif()
if(NOT MANUAL)
  set(MANUAL 0)
endif()

file(STRINGS ${LIST} rows)
foreach(conf mandatory optional)
  set(${conf}_total 0)
  set(${conf}_passed 0)
  set(${conf}_failed "")
  set(${conf}_not_run "")
endforeach()
set(details "")

foreach(row IN LISTS rows)
  string(REPLACE "|" ";" fields "${row}")
  list(GET fields 0 id)
  list(GET fields 1 conf)
  list(GET fields 2 status)
  if(NOT conf STREQUAL "mandatory")
    set(conf optional)
  endif()
  if(NOT status STREQUAL "run")
    list(APPEND ${conf}_not_run "${id}(${status})")
    continue()
  endif()
  math(EXPR ${conf}_total "${${conf}_total} + 1")
  execute_process(
    COMMAND ${XSN} test-script ${SUITE}/test${id}.txml.scxml ${SUITE}/test${id}.txml.json
    WORKING_DIRECTORY ${SUITE}
    RESULT_VARIABLE rc
    OUTPUT_VARIABLE out
    ERROR_VARIABLE out
    TIMEOUT ${TIMEOUT})
  if(rc STREQUAL "0")
    math(EXPR ${conf}_passed "${${conf}_passed} + 1")
    continue()
  endif()
  if(rc STREQUAL "1")
    set(why "mismatch")
  elseif(rc STREQUAL "2")
    set(why "not loaded")
  elseif(rc MATCHES "^[0-9]+$")
    set(why "exit ${rc}")
  else()
    set(why "${rc}")  # e.g. "Process terminated due to timeout", "Segmentation fault"
  endif()
  list(APPEND ${conf}_failed "${id}")
  # The first lines of the tool's output say what went wrong.
  string(REGEX REPLACE "\n$" "" out "${out}")
  string(REPLACE "\n" ";" lines "${out}")
  list(SUBLIST lines 0 6 lines)
  list(JOIN lines "\n      " first)
  string(APPEND details "  w3c.${id} (${conf}, ${why})\n")
  if(first)
    string(APPEND details "      ${first}\n")
  endif()
endforeach()

list(SORT mandatory_failed COMPARE NATURAL)
list(SORT optional_failed COMPARE NATURAL)
list(JOIN mandatory_failed " " mf)
list(JOIN optional_failed " " of)
list(JOIN mandatory_not_run " " mn)
list(JOIN optional_not_run " " on)
list(LENGTH mandatory_not_run mandatory_nr)
list(LENGTH optional_not_run optional_nr)
set(report "W3C SCXML conformance (IRP, ecmascript), ${SUITE}\n")
string(APPEND report "  mandatory: ${mandatory_passed}/${mandatory_total} passed")
if(mandatory_nr GREATER 0)
  string(APPEND report ", ${mandatory_nr} not run: ${mn}")
endif()
string(APPEND report "\n  optional:  ${optional_passed}/${optional_total} passed")
if(optional_nr GREATER 0)
  string(APPEND report ", ${optional_nr} not run: ${on}")
endif()
string(APPEND report "\n  manual tests (not automated): ${MANUAL}\n")
if(mf)
  string(APPEND report "  failing mandatory: ${mf}\n")
endif()
if(of)
  string(APPEND report "  failing optional: ${of}\n")
endif()
if(NOT mf AND NOT of)
  string(APPEND report "  failing: none\n")
endif()
if(details)
  string(APPEND report "\nfailures:\n${details}")
endif()

if(REPORT)
  file(WRITE ${REPORT} "${report}")
endif()
# Printed on stdout, so `ctest -V` and `--output-on-failure` show it.
execute_process(COMMAND ${CMAKE_COMMAND} -E echo "${report}")
if(mf OR mandatory_nr GREATER 0)
  message(FATAL_ERROR "W3C SCXML: mandatory tests fail or were not run")
endif()
