# embed_cl.cmake - turns the OpenCL C sources kernels/*.cl into a C file of byte arrays,
# so that the library carries its kernels and finds them by name (GCC 12 has no #embed).
# Run as a build step:  cmake -DOUT=<file.c> -DSOURCES=<a.cl;b.cl> -P embed_cl.cmake
# The generated file defines lm__cl_sources[] (declared in kernels/cl_runtime.h), one
# entry per file in the order given, ended by an entry whose name is NULL.
set(body "/* Generated from the kernels/ .cl files by kernels/embed_cl.cmake: do not edit. */\n")
string(APPEND body "#include <stddef.h>\n\n#include \"cl_runtime.h\"\n\n")
set(table "")
set(i 0)
foreach(src IN LISTS SOURCES)
  get_filename_component(name ${src} NAME)
  file(READ ${src} hex HEX)
  string(LENGTH "${hex}" nhex)
  math(EXPR nbytes "${nhex} / 2")
  # 0xNN, per byte, 24 to a line
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(REGEX REPLACE "((0x..,){24})" "\\1\n    " bytes "${bytes}")
  string(APPEND body "static const char src_${i}[] = {\n    ${bytes}0x00};\n\n")
  string(APPEND table "    {\"${name}\", src_${i}, ${nbytes}},\n")
  math(EXPR i "${i} + 1")
endforeach()
string(APPEND body "const struct lm__cl_source lm__cl_sources[] = {\n${table}    {NULL, NULL, 0},\n};\n")
# Rewrite only on change, so that an unchanged kernel set does not rebuild the library.
if(EXISTS ${OUT})
  file(READ ${OUT} old)
  if(old STREQUAL body)
    return()
  endif()
endif()
file(WRITE ${OUT} "${body}")
