# cmake -DSYSTEMD_ANALYZE=... -DUNIT=xsn@.service -DXSN=<built xsn> -DWORK=<dir> -P verify_unit.cmake
#
# Instantiates the template as WORK/xsn@a.service with ExecStart on the built binary and runs
# `systemd-analyze verify` on it. Fails on a non-zero exit and on any message about the unit:
# verify only warns (exit 0) about unknown keys and bad values, which systemd then ignores.
# Also fails when the unit lacks what docs/deployment.md promises of it.
foreach(var SYSTEMD_ANALYZE UNIT XSN WORK)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "verify_unit.cmake: -D${var}=... is required")
  endif()
endforeach()

file(READ "${UNIT}" text)
foreach(required
    "\nExecStart=/usr/local/bin/xsn serve /etc/xsn/serve.json --node-id %i --http "
    "\nRestart=always\n" "\nKillSignal=SIGTERM\n" "\nTimeoutStopSec=" "\nNoNewPrivileges=yes\n")
  string(FIND "${text}" "${required}" at)
  if(at EQUAL -1)
    string(STRIP "${required}" shown)
    message(FATAL_ERROR "${UNIT}: no line '${shown}'")
  endif()
endforeach()

string(REPLACE "ExecStart=/usr/local/bin/xsn " "ExecStart=${XSN} " text "${text}")
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
file(WRITE "${WORK}/xsn@a.service" "${text}")

execute_process(
  COMMAND "${SYSTEMD_ANALYZE}" verify --man=no "${WORK}/xsn@a.service"
  RESULT_VARIABLE rc
  OUTPUT_VARIABLE out
  ERROR_VARIABLE err)
set(all "${out}${err}")
# Messages about other units of this machine (its own broken units) are not ours.
string(FIND "${all}" "xsn@a.service" ours)
if(NOT rc EQUAL 0 OR NOT ours EQUAL -1)
  message(FATAL_ERROR "systemd-analyze verify ${WORK}/xsn@a.service (exit ${rc}):\n${all}")
endif()
message(STATUS "systemd-analyze verify: xsn@a.service is valid")
