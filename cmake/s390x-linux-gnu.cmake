# Cross build for s390x Linux with Debian's g++-s390x-linux-gnu (used by scripts/prebuild.sh and by the
# native test program: cmake -S . -B build-s390x -DCMAKE_TOOLCHAIN_FILE=cmake/s390x-linux-gnu.cmake).
set(CMAKE_SYSTEM_PROCESSOR s390x)
set(KATA_TRIPLET s390x-linux-gnu)
include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
