# Extracts the C++ snippets of Markdown files into translation units (tests/snippets/, the
# `docs.snippets` test). The rules a doc writer follows:
#
# - Every ```cpp block (fence at column 0) is compiled, against the installed-style package
#   (`find_package(xsn)`, `xsn::core`), at -O0 -g0, as its own translation unit: the headers it
#   uses are included by the block itself. Errors point at the Markdown file and line.
# - A block that defines `int main(` is a program: it is linked and run (exit status 0 expected),
#   in a directory holding the files of its page (see `file` below). Keep it fast and offline.
# - Any other block needs a marker, an HTML comment (invisible on GitHub) on the line right before
#   its fence:
#
#     <!-- snippet: fragment -->          the block is a function body; its `#include` lines
#                                         move to the top of the file
#     <!-- snippet: fragment advanced     the same, built only when xsn::advanced is; lines after
#     #include <xsn/store/state_store.hpp>  the first are hidden code: `#include`s go to the top,
#     struct my_type {};                    other lines to file scope until a line `---`, and the
#     ---                                   lines after `---` into the function, before the block
#     boost::asio::io_context io;
#     -->
#
#   In a fragment, a line that is exactly `// becomes` (a before/after pair) closes the part
#   before it into its own block scope, so both parts may declare the same names.
#
#     <!-- snippet: file door.scxml -->   (before a block of any language) the block is written
#                                         as `door.scxml` beside the programs of the same page
#     <!-- snippet: example orchestrated_orders/main.cpp -->
#                                         the block must equal `examples/<path>` (the example is
#                                         built and run as its own test); not compiled again
#
# xsn_extract_snippets(<markdown file> <name> <output dir>) appends to the caller's lists
# `snippet_units` (fragments and other non-programs), `snippet_advanced_units`, `snippet_programs`
# (the program sources) and sets `snippet_files_dir_<name>` (where its `file` blocks went).
# Generated files are rewritten only when their content changes, so re-configuring rebuilds
# nothing that did not change.

# Characters CMake lists treat specially, carried through as placeholders while a file is a list.
string(ASCII 1 _xsn_semi)
string(ASCII 2 _xsn_lbr)
string(ASCII 3 _xsn_rbr)
string(ASCII 4 _xsn_bsl)

function(_xsn_snippet_decode var text)
  string(REPLACE "${_xsn_semi}" ";" text "${text}")
  string(REPLACE "${_xsn_lbr}" "[" text "${text}")
  string(REPLACE "${_xsn_rbr}" "]" text "${text}")
  string(REPLACE "${_xsn_bsl}" "\\" text "${text}")
  set(${var} "${text}" PARENT_SCOPE)
endfunction()

function(_xsn_snippet_write path content)
  if(EXISTS "${path}")
    file(READ "${path}" old)
    if(old STREQUAL content)
      return()
    endif()
  endif()
  file(WRITE "${path}" "${content}")
endfunction()

function(xsn_extract_snippets md name out_dir)
  file(READ "${md}" text)
  string(REPLACE "\\" "${_xsn_bsl}" text "${text}")
  string(REPLACE ";" "${_xsn_semi}" text "${text}")
  string(REPLACE "[" "${_xsn_lbr}" text "${text}")
  string(REPLACE "]" "${_xsn_rbr}" text "${text}")
  string(REPLACE "\n" ";" lines "${text}")

  set(files_dir "${out_dir}/files/${name}")
  file(MAKE_DIRECTORY "${files_dir}")
  set(units ${snippet_units})
  set(advanced_units ${snippet_advanced_units})
  set(programs ${snippet_programs})

  set(n 0)               # line number
  set(in_block FALSE)
  set(in_marker FALSE)
  set(marker "")         # kind and arguments of the marker before the next fence
  set(marker_line 0)     # the line the marker ended on
  set(hidden_top "")     # hidden code: file scope
  set(hidden_fn "")      # hidden code: function scope
  foreach(line IN LISTS lines)
    math(EXPR n "${n} + 1")
    if(in_block)
      if(line MATCHES "^```[ \t]*$")
        set(in_block FALSE)
        _xsn_snippet_emit()
        set(marker "")
        set(hidden_top "")
        set(hidden_fn "")
      else()
        string(APPEND body "${line}\n")
      endif()
      continue()
    endif()
    if(in_marker)
      if(line MATCHES "^[ \t]*-->[ \t]*$")
        set(in_marker FALSE)
        set(marker_line ${n})
      elseif(line STREQUAL "---")
        set(hidden_scope fn)
      elseif(hidden_scope STREQUAL "fn")
        string(APPEND hidden_fn "${line}\n")
      else()
        string(APPEND hidden_top "${line}\n")
      endif()
      continue()
    endif()
    if(line MATCHES "^<!-- snippet: *([^>]*[^ >-])[ ]*(-->)?[ \t]*$")
      set(marker "${CMAKE_MATCH_1}")
      set(hidden_scope top)
      if(CMAKE_MATCH_2)
        set(marker_line ${n})
      else()
        set(in_marker TRUE)
      endif()
      continue()
    endif()
    if(line MATCHES "^```([A-Za-z0-9+-]*)")
      set(lang "${CMAKE_MATCH_1}")
      set(in_block TRUE)
      set(body "")
      set(start ${n})
      math(EXPR before "${n} - 1")
      if(marker AND NOT marker_line EQUAL before)
        message(FATAL_ERROR "${md}:${marker_line}: a snippet marker must be on the line right before its fence")
      endif()
      continue()
    endif()
    if(marker AND NOT line STREQUAL "")
      message(FATAL_ERROR "${md}:${marker_line}: snippet marker '${marker}' is not followed by a fenced block")
    endif()
  endforeach()
  if(in_block)
    message(FATAL_ERROR "${md}:${start}: unterminated code block")
  endif()
  set(snippet_units ${units} PARENT_SCOPE)
  set(snippet_advanced_units ${advanced_units} PARENT_SCOPE)
  set(snippet_programs ${programs} PARENT_SCOPE)
  set(snippet_files_dir_${name} "${files_dir}" PARENT_SCOPE)
endfunction()

# One block (variables of xsn_extract_snippets: md, name, lang, start, body and hidden_* still
# encoded, marker).
macro(_xsn_snippet_emit)
  set(_where "${md}:${start}")
  math(EXPR _line "${start} + 1")  # the block's first line
  set(_kind "")
  set(_args "")
  if(marker MATCHES "^([a-z]+) *(.*)$")
    set(_kind "${CMAKE_MATCH_1}")
    set(_args "${CMAKE_MATCH_2}")
  endif()
  _xsn_snippet_decode(_text "${body}")
  if(_kind STREQUAL "file")
    if(NOT _args MATCHES "^[A-Za-z0-9_.-]+$")
      message(FATAL_ERROR "${_where}: `snippet: file` needs a plain file name, got '${_args}'")
    endif()
    _xsn_snippet_write("${files_dir}/${_args}" "${_text}")
  elseif(NOT lang STREQUAL "cpp")
    if(_kind)
      message(FATAL_ERROR "${_where}: `snippet: ${_kind}` is for ```cpp blocks")
    endif()
  elseif(_kind STREQUAL "example")
    set(_example "${XSN_SOURCE_DIR}/examples/${_args}")
    if(NOT EXISTS "${_example}")
      message(FATAL_ERROR "${_where}: `snippet: example`: no file examples/${_args}")
    endif()
    file(READ "${_example}" _example_text)
    if(NOT _example_text STREQUAL _text)
      message(FATAL_ERROR "${_where}: the block differs from examples/${_args}: copy the example again")
    endif()
  elseif(_kind STREQUAL "")
    if(NOT _text MATCHES "int main\\(")
      message(FATAL_ERROR "${_where}: a ```cpp block without `int main(` needs a marker, e.g. "
                          "`<!-- snippet: fragment -->` (see tests/snippets/extract.cmake)")
    endif()
    set(_unit "${out_dir}/units/${name}_${_line}.cpp")
    _xsn_snippet_write("${_unit}" "#line ${_line} \"${md}\"\n${_text}")
    list(APPEND programs "${_unit}")
  elseif(_kind STREQUAL "fragment")
    if(NOT _args STREQUAL "" AND NOT _args STREQUAL "advanced")
      message(FATAL_ERROR "${_where}: unknown fragment option '${_args}' (known: advanced)")
    endif()
    # `#include` lines of the block and of the hidden code go first; the other lines stay in
    # order (a `#line` only where the numbering jumps: never inside a raw string literal).
    set(_includes "")
    set(_code "#line ${_line} \"${md}\"\n")
    string(REPLACE "\n" ";" _lines "${body}")
    set(_k ${_line})
    set(_jump FALSE)
    foreach(_l IN LISTS _lines)
      _xsn_snippet_decode(_l "${_l}")
      if(_l MATCHES "^[ \t]*#[ \t]*include")
        string(APPEND _includes "#line ${_k} \"${md}\"\n${_l}\n")
        set(_jump TRUE)
      elseif(_l STREQUAL "// becomes")
        string(APPEND _code "}  // becomes\n{\n")
        set(_jump TRUE)
      else()
        if(_jump)
          string(APPEND _code "#line ${_k} \"${md}\"\n")
          set(_jump FALSE)
        endif()
        string(APPEND _code "${_l}\n")
      endif()
      math(EXPR _k "${_k} + 1")
    endforeach()
    set(_top "")
    string(REPLACE "\n" ";" _lines "${hidden_top}")
    foreach(_l IN LISTS _lines)
      _xsn_snippet_decode(_l "${_l}")
      if(_l MATCHES "^[ \t]*#[ \t]*include")
        string(APPEND _includes "${_l}\n")
      else()
        string(APPEND _top "${_l}\n")
      endif()
    endforeach()
    _xsn_snippet_decode(_fn "${hidden_fn}")
    set(_unit "${out_dir}/units/${name}_${_line}.cpp")
    string(CONCAT _content "// Generated from ${md}:${start} by tests/snippets/extract.cmake\n"
      "${_includes}\n${_top}\nnamespace {\n[[maybe_unused]] void snippet() {\n${_fn}{\n${_code}}\n}\n"
      "}  // namespace\n")
    _xsn_snippet_write("${_unit}" "${_content}")
    if(_args STREQUAL "advanced")
      list(APPEND advanced_units "${_unit}")
    else()
      list(APPEND units "${_unit}")
    endif()
  else()
    message(FATAL_ERROR "${_where}: unknown snippet marker '${marker}' (known: fragment, file, example)")
  endif()
endmacro()
