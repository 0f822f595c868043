# xsn_warnings(target): the warning set every xsn target builds with. GCC's -Wshadow=local (a
# local hiding another local or a parameter) is spelled -Wshadow-uncaptured-local by Clang.
function(xsn_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wnon-virtual-dtor
    $<$<CXX_COMPILER_ID:GNU>:-Wshadow=local>
    $<$<CXX_COMPILER_ID:Clang>:-Wshadow-uncaptured-local>)
endfunction()
