# Cross build for aarch64 Linux with Debian's g++-aarch64-linux-gnu (used by scripts/prebuild.sh and by the
# native test program: cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(KATA_TRIPLET aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${KATA_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${KATA_TRIPLET}-g++)
# The host's strip cannot read a foreign ELF.
set(CMAKE_STRIP ${KATA_TRIPLET}-strip)
set(CMAKE_FIND_ROOT_PATH /usr/${KATA_TRIPLET})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
