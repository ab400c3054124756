// The glibc floor. Node's own Linux builds run on glibc 2.28, so the addon must too, but it is
// built on Debian 12 (glibc 2.36) with libstdc++ and libgcc linked in statically, and those (and
// the inline parts of the C++ headers) bind to symbol versions a 2.28 libc does not have:
// pthread_* (including pthread_setname_np) moved into libc at 2.34 with new default versions,
// pthread_cond_clockwait (2.30),
// __libc_single_threaded (2.32), stat/lstat/fstat/fstatat (2.33, inline __xstat calls before),
// _dl_find_object (2.35, the unwinder), arc4random (2.36, std::random_device). CMake links with
// -Wl,--wrap=<each> (KATA_GLIBC_WRAPPED) so every reference, including those inside the static
// archives, lands here instead, and each is served through an interface 2.28 already has.
// scripts/verify-prebuilds.js proves the result symbol by symbol.
#if defined(KATA_GLIBC_COMPAT)

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

// KATA_GLIBC_2_12: the version of functions added in glibc 2.12, or the arch's base if younger.
#if defined(__x86_64__)
#define KATA_GLIBC_BASE "GLIBC_2.2.5"
#define KATA_GLIBC_2_12 "GLIBC_2.12"
#elif defined(__aarch64__)
#define KATA_GLIBC_BASE "GLIBC_2.17"
#define KATA_GLIBC_2_12 "GLIBC_2.17"
#elif defined(__s390x__)
#define KATA_GLIBC_BASE "GLIBC_2.2"
#define KATA_GLIBC_2_12 "GLIBC_2.12"
#else
#error "KATA_GLIBC_COMPAT: no base glibc symbol version known for this architecture"
#endif

#define KATA_HIDDEN __attribute__((visibility("hidden")))

// The arch's first version of a libpthread function: on glibc < 2.34 it lives in libpthread.so.0
// (which Node itself links), on newer glibc libc.so.6 still exports it under that version.
#define KATA_OLD_VERSION(ret, name, params, version) \
  extern "C" ret kata_base_##name params;            \
  __asm__(".symver kata_base_" #name "," #name "@" version)
#define KATA_BASE_VERSION(ret, name, params) KATA_OLD_VERSION(ret, name, params, KATA_GLIBC_BASE)

KATA_BASE_VERSION(int, pthread_create,
                  (pthread_t*, const pthread_attr_t*, void* (*)(void*), void*));
KATA_BASE_VERSION(int, pthread_join, (pthread_t, void**));
KATA_BASE_VERSION(int, pthread_detach, (pthread_t));
KATA_BASE_VERSION(int, pthread_once, (pthread_once_t*, void (*)()));
KATA_BASE_VERSION(int, pthread_key_create, (pthread_key_t*, void (*)(void*)));
KATA_BASE_VERSION(int, __pthread_key_create, (pthread_key_t*, void (*)(void*)));
KATA_BASE_VERSION(int, pthread_key_delete, (pthread_key_t));
KATA_BASE_VERSION(void*, pthread_getspecific, (pthread_key_t));
KATA_BASE_VERSION(int, pthread_setspecific, (pthread_key_t, const void*));
KATA_OLD_VERSION(int, pthread_setname_np, (pthread_t, const char*), KATA_GLIBC_2_12);
KATA_OLD_VERSION(int, pthread_getname_np, (pthread_t, char*, size_t), KATA_GLIBC_2_12);

extern "C" {

KATA_HIDDEN int __wrap_pthread_create(pthread_t* t, const pthread_attr_t* attr, void* (*fn)(void*),
                                      void* arg) {
  return kata_base_pthread_create(t, attr, fn, arg);
}
KATA_HIDDEN int __wrap_pthread_join(pthread_t t, void** ret) {
  return kata_base_pthread_join(t, ret);
}
KATA_HIDDEN int __wrap_pthread_detach(pthread_t t) { return kata_base_pthread_detach(t); }
KATA_HIDDEN int __wrap_pthread_once(pthread_once_t* once, void (*fn)()) {
  return kata_base_pthread_once(once, fn);
}
KATA_HIDDEN int __wrap_pthread_key_create(pthread_key_t* key, void (*dtor)(void*)) {
  return kata_base_pthread_key_create(key, dtor);
}
// libgcc's gthreads test this one's address (a weak reference) to decide whether threads exist;
// Node always has them, and a non-null wrapper says so.
KATA_HIDDEN int __wrap___pthread_key_create(pthread_key_t* key, void (*dtor)(void*)) {
  return kata_base___pthread_key_create(key, dtor);
}
KATA_HIDDEN int __wrap_pthread_key_delete(pthread_key_t key) {
  return kata_base_pthread_key_delete(key);
}
KATA_HIDDEN void* __wrap_pthread_getspecific(pthread_key_t key) {
  return kata_base_pthread_getspecific(key);
}
KATA_HIDDEN int __wrap_pthread_setspecific(pthread_key_t key, const void* value) {
  return kata_base_pthread_setspecific(key, value);
}
KATA_HIDDEN int __wrap_pthread_setname_np(pthread_t t, const char* name) {
  return kata_base_pthread_setname_np(t, name);
}
KATA_HIDDEN int __wrap_pthread_getname_np(pthread_t t, char* name, size_t len) {
  return kata_base_pthread_getname_np(t, name, len);
}

// "Never single-threaded": libstdc++ then always uses atomic reference counts, which is what it
// did before glibc offered the hint.
KATA_HIDDEN char __wrap___libc_single_threaded = 0;

// std::condition_variable waits on steady_clock through this. Without it libstdc++ falls back to a
// CLOCK_REALTIME deadline too; it re-reads steady_clock after every wake-up, so a realtime clock
// step only causes an early (spurious) or late wake-up, never a wrong result.
KATA_HIDDEN int __wrap_pthread_cond_clockwait(pthread_cond_t* cond, pthread_mutex_t* mutex,
                                              clockid_t clock, const struct timespec* abstime) {
  constexpr long kNs = 1000000000L;
  if (abstime->tv_nsec < 0 || abstime->tv_nsec >= kNs) return EINVAL;
  if (clock == CLOCK_REALTIME) return pthread_cond_timedwait(cond, mutex, abstime);
  if (clock != CLOCK_MONOTONIC) return EINVAL;
  struct timespec mono, at;
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_REALTIME, &at);
  // Time left, saturating: callers pass steady_clock::time_point::min()/max() for "already
  // expired" and "never", which would overflow any plain nanosecond arithmetic.
  constexpr time_t kMin = static_cast<time_t>(1) << (sizeof(time_t) * 8 - 1);
  constexpr time_t kMax = ~kMin;
  time_t sec;
  if (__builtin_sub_overflow(abstime->tv_sec, mono.tv_sec, &sec))
    sec = abstime->tv_sec < 0 ? kMin : kMax;
  long nsec = abstime->tv_nsec - mono.tv_nsec;
  if (nsec < 0) {
    nsec += kNs;
    if (sec != kMin) sec--;
  }
  if (sec < 0) return ETIMEDOUT;  // the mutex is held, as after a wait that timed out
  at.tv_nsec += nsec;
  time_t carry = 0;
  if (at.tv_nsec >= kNs) {
    at.tv_nsec -= kNs;
    carry = 1;
  }
  if (__builtin_add_overflow(at.tv_sec, sec, &at.tv_sec) ||
      __builtin_add_overflow(at.tv_sec, carry, &at.tv_sec)) {
    at.tv_sec = kMax;
    at.tv_nsec = kNs - 1;
  }
  return pthread_cond_timedwait(cond, mutex, &at);
}

// On these 64-bit ABIs glibc's struct stat is the kernel's, and glibc >= 2.33 implements the stat
// family as exactly this system call (older ones reach it through __xstat).
KATA_HIDDEN int __wrap_fstatat(int dirfd, const char* path, struct stat* st, int flags) {
  return static_cast<int>(syscall(SYS_newfstatat, dirfd, path, st, flags));
}
KATA_HIDDEN int __wrap_stat(const char* path, struct stat* st) {
  return __wrap_fstatat(AT_FDCWD, path, st, 0);
}
KATA_HIDDEN int __wrap_lstat(const char* path, struct stat* st) {
  return __wrap_fstatat(AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW);
}
KATA_HIDDEN int __wrap_fstat(int fd, struct stat* st) {
  return __wrap_fstatat(fd, "", st, AT_EMPTY_PATH);
}

// std::random_device. arc4random cannot fail, so neither may this: getrandom (2.25), then
// /dev/urandom for kernels older than 3.17, else abort as glibc's own arc4random does.
KATA_HIDDEN uint32_t __wrap_arc4random() {
  uint32_t value;
  unsigned char* p = reinterpret_cast<unsigned char*>(&value);
  size_t have = 0;
  while (have < sizeof value) {
    const ssize_t n = getrandom(p + have, sizeof value - have, 0);
    if (n > 0) {
      have += static_cast<size_t>(n);
    } else if (n < 0 && errno == ENOSYS) {
      const int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
      if (fd < 0) abort();
      while (have < sizeof value) {
        const ssize_t r = read(fd, p + have, sizeof value - have);
        if (r > 0)
          have += static_cast<size_t>(r);
        else if (r == 0 || errno != EINTR)
          abort();
      }
      close(fd);
    } else if (n == 0 || errno != EINTR) {
      abort();
    }
  }
  return value;
}

#if defined(DLFO_STRUCT_HAS_EH_DBASE)
// The unwinder asks which loaded object holds a return address and where its .eh_frame_hdr is.
// dl_iterate_phdr answers the same question (it is what libgcc used before glibc 2.35).
namespace {
struct FindObject {
  uintptr_t pc;
  struct dl_find_object* result;
  bool found;
};

int FindObjectInModule(struct dl_phdr_info* info, size_t, void* data) {
  FindObject* find = static_cast<FindObject*>(data);
  uintptr_t start = UINTPTR_MAX, end = 0;
  bool contains = false;
  void* eh_frame = nullptr;
  for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    const uintptr_t begin = info->dlpi_addr + ph.p_vaddr;
    if (ph.p_type == PT_LOAD) {
      if (find->pc >= begin && find->pc < begin + ph.p_memsz) contains = true;
      if (begin < start) start = begin;
      if (begin + ph.p_memsz > end) end = begin + ph.p_memsz;
    } else if (ph.p_type == PT_GNU_EH_FRAME) {
      eh_frame = reinterpret_cast<void*>(begin);
    }
  }
  if (!contains) return 0;
  *find->result = {};
  find->result->dlfo_map_start = reinterpret_cast<void*>(start);
  find->result->dlfo_map_end = reinterpret_cast<void*>(end);
  find->result->dlfo_eh_frame = eh_frame;
  find->found = true;
  return 1;
}
}  // namespace

KATA_HIDDEN int __wrap__dl_find_object(void* pc, struct dl_find_object* result) {
  FindObject find{reinterpret_cast<uintptr_t>(pc), result, false};
  dl_iterate_phdr(FindObjectInModule, &find);
  return find.found ? 0 : -1;
}
#endif

}  // extern "C"

#endif  // KATA_GLIBC_COMPAT
