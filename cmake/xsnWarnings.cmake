# xsn_warnings(target): the warning set every xsn target builds with.
function(xsn_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow=local -Wnon-virtual-dtor)
endfunction()
