# Shared body of the cross toolchain files: Debian's <triplet>-gcc/g++ and its sysroot under
# /usr/<triplet>. The including file sets CMAKE_SYSTEM_PROCESSOR and KATA_TRIPLET first.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_C_COMPILER ${KATA_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${KATA_TRIPLET}-g++)
# The host's strip cannot read a foreign ELF.
set(CMAKE_STRIP ${KATA_TRIPLET}-strip)
set(CMAKE_FIND_ROOT_PATH /usr/${KATA_TRIPLET})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
