# Benchmarks: bench/bench_*.c are programs that print tables; bench/anchor_*.cpp are
# small C++ shims around the libraries a user would pick instead (nanoflann, OpenVDB,
# SQLite R*Tree), called from C through bench/anchors.h. Built only with
# -DLUMADB_BENCH=ON (tools/setup.sh bench installs the anchor libraries).
enable_language(CXX)
set(CMAKE_CXX_STANDARD 17)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
list(APPEND CMAKE_MODULE_PATH /usr/lib/x86_64-linux-gnu/cmake/OpenVDB)
find_package(OpenVDB REQUIRED)
pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)

file(GLOB ANCHOR_SRC CONFIGURE_DEPENDS bench/anchor_*.cpp bench/anchor_*.c)
add_library(lm_anchors STATIC ${ANCHOR_SRC})
target_include_directories(lm_anchors PUBLIC bench)
target_link_libraries(lm_anchors PUBLIC OpenVDB::openvdb PkgConfig::SQLITE3)

file(GLOB BENCH_SRC CONFIGURE_DEPENDS bench/bench_*.c)
list(REMOVE_ITEM BENCH_SRC ${CMAKE_SOURCE_DIR}/bench/bench_util.c)
foreach(src ${BENCH_SRC})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src} bench/bench_util.c)
  target_link_libraries(${name} PRIVATE lm_tools lumadb lm_anchors lm_warnings)
  set_target_properties(${name} PROPERTIES LINKER_LANGUAGE CXX)
endforeach()
