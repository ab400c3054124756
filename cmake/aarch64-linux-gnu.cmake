# Cross build for aarch64 Linux with Debian's g++-aarch64-linux-gnu (used by scripts/prebuild.sh and by the
# native test program: cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake).
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(KATA_TRIPLET aarch64-linux-gnu)
include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
