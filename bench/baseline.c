// The usage table below is laid out by hand: reflowing it ran its rows together.
// clang-format off
/*
 * The physical limit the addon is measured against: the same system calls the addon makes for one
 * operation, issued from a tight C loop with no runtime in between. Every sample is one cycle
 * (mount + umount, or one sysfs walk) in nanoseconds, printed as one JSON object so the Node
 * harness computes median and p99 the same way for both sides.
 *
 *   kata_bench_baseline <op> <iterations> <warmup> args...
 *     tmpfs   <target>                 mount("tmpfs", target, "tmpfs", 0, NULL) + umount2
 *     bind    <source> <target>        mount(MS_BIND) + umount2
 *     bind-ro <source> <target>        mount(MS_BIND|MS_RDONLY) + remount(MS_BIND|MS_RDONLY)
 *                                      + umount2
 *     ext4-ro <device> <target>        mount(device, "ext4", MS_RDONLY) + umount2
 *     pci     <sysfs> <dev> <pci-path> resolve a PCI path to its virtio block node, as
 *                                      findPciBlockDevice
 *     sandbox <root> <n>               one request of n ephemeral tmpfs storages added and released
 *                                      the way Sandbox does: per storage an O_NOFOLLOW walk to the
 *                                      parent, mkdirat, mount; then per storage (last first)
 *                                      umount2, rmdir
 *     handoff <target>                 the tmpfs cycle with each call handed to a worker thread and
 *                                      its completion signalled back through an eventfd the main
 *                                      thread waits on with epoll: the floor of any async design
 *     sandbox-floor <root> <n>         the sandbox request as the addon carries it out on a kernel
 *                                      with openat2 (5.6+), with nothing else of it: the root opened
 *                                      once, each mount onto an O_NOFOLLOW fd of its directory
 *                                      (openat, mount on /proc/self/fd/N, close), and the add and
 *                                      the release each run on a worker thread that polls 100 µs
 *                                      before it sleeps (with a second CPU, as the addon's pool
 *                                      threads do), completion signalled through an eventfd
 */
// clang-format on
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef UMOUNT_NOFOLLOW
#define UMOUNT_NOFOLLOW 8
#endif

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* CPU time of this process (user + kernel): what the loop costs, whoever else wants the CPUs. */
static long long cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what, const char *arg) {
  fprintf(stderr, "kata_bench_baseline: %s %s: %s\n", what, arg, strerror(errno));
  exit(1);
}

/* The addon always unmounts with UMOUNT_NOFOLLOW; so does the baseline. */
static void do_umount(const char *target) {
  if (umount2(target, UMOUNT_NOFOLLOW) != 0) die("umount2", target);
}

static void cycle_tmpfs(char **argv) {
  if (mount("tmpfs", argv[0], "tmpfs", 0, NULL) != 0) die("mount tmpfs", argv[0]);
  do_umount(argv[0]);
}

static void cycle_bind(char **argv) {
  if (mount(argv[0], argv[1], NULL, MS_BIND, NULL) != 0) die("mount bind", argv[1]);
  do_umount(argv[1]);
}

/* A bind ignores MS_RDONLY on its first mount(2); the remount is what makes it read-only. */
static void cycle_bind_ro(char **argv) {
  if (mount(argv[0], argv[1], NULL, MS_BIND | MS_RDONLY, NULL) != 0) die("mount bind", argv[1]);
  if (mount(NULL, argv[1], NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) != 0)
    die("remount", argv[1]);
  do_umount(argv[1]);
}

static void cycle_ext4_ro(char **argv) {
  if (mount(argv[0], argv[1], "ext4", MS_RDONLY, NULL) != 0) die("mount ext4", argv[0]);
  do_umount(argv[1]);
}

/* The one entry of `dir` whose name starts with `prefix`; exactly one must exist. */
static int only_entry(const char *dir, const char *prefix, char *out, size_t len) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  size_t plen = strlen(prefix);
  int found = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    if (strncmp(e->d_name, prefix, plen) != 0) continue;
    if (found++ == 0 && (size_t)snprintf(out, len, "%s", e->d_name) >= len) found = -1;
  }
  closedir(d);
  return found == 1 ? 0 : -1; /* none, several, or a name too long */
}

/*
 * The walk findPciBlockDevice does for a device that is already there: PCI path "SS[.F]/SS[.F]..."
 * to its sysfs directory (each bridge's pci_bus/ entry names the next bus), then
 * <device>/virtio*\/block/<name>, the one disk there.
 */
static char pci_result[512];
static void cycle_pci(char **argv) {
  const char *sysfs = argv[0], *dev = argv[1], *pci = argv[2];
  char path[4096], bus[64] = "0000:00", name[256];
  int n = snprintf(path, sizeof path, "%s/devices/pci0000:00", sysfs);
  const char *p = pci;
  while (*p) {
    char *end;
    unsigned long slot = strtoul(p, &end, 16), fn = 0;
    if (end == p || slot > 0x1f) die("pci path", pci);
    if (*end == '.') {
      p = end + 1;
      fn = strtoul(p, &end, 16);
      if (end == p || fn > 7) die("pci path", pci);
    }
    n += snprintf(path + n, sizeof path - n, "/%s:%02lx.%lx", bus, slot, fn);
    p = end;
    if (*p == '/') {
      p++;
      char bridge[4096];
      if ((size_t)snprintf(bridge, sizeof bridge, "%s/pci_bus", path) >= sizeof bridge)
        die("path", path);
      if (only_entry(bridge, "", bus, sizeof bus) != 0) die("pci_bus", bridge);
    } else if (*p) {
      die("pci path", pci);
    }
  }
  char virtio[256];
  if (only_entry(path, "virtio", virtio, sizeof virtio) != 0) die("virtio", path);
  n += snprintf(path + n, sizeof path - n, "/%s/block", virtio);
  if (only_entry(path, "", name, sizeof name) != 0) die("block", path);
  /* Like findPciBlockDevice, name the node without a stat: the blk driver checks it afterwards. */
  if ((size_t)snprintf(pci_result, sizeof pci_result, "%s/%s", dev, name) >= sizeof pci_result)
    die("name", name);
}

/*
 * sandbox: what Sandbox.addStorages + removeContainer do for n ephemeral tmpfs storages, in
 * system calls only. The walk opens each component of the parent with O_NOFOLLOW (the sandbox
 * refuses symlinks on the way); here the parent is the root itself, as for the bench's storages.
 */
#define SANDBOX_MAX 1000
static char sandbox_paths[SANDBOX_MAX][4096];
static struct {
  const char *root;
  long n;
  int safe; /* mount onto an O_NOFOLLOW fd of the directory through /proc/self/fd */
} sandbox_request;

static void sandbox_add(void) {
  const char *root = sandbox_request.root;
  /* The addon's job opens each root once per request; the plain loop opens it per storage. */
  int parent = -1;
  for (long i = 0; i < sandbox_request.n; i++) {
    char name[32];
    snprintf(name, sizeof name, "e%ld", i);
    if ((size_t)snprintf(sandbox_paths[i], sizeof sandbox_paths[i], "%s/%s", root, name) >=
        sizeof sandbox_paths[i])
      die("path", root);
    if (parent < 0 || !sandbox_request.safe) {
      parent = open(root, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (parent < 0) die("open", root);
    }
    if (mkdirat(parent, name, 0755) != 0) die("mkdirat", name);
    if (sandbox_request.safe) {
      /* A name swapped for a symlink after mkdirat cannot redirect the mount: it goes onto the
       * directory the fd holds (the addon's legacy path under a root does the same). */
      int dir = openat(parent, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (dir < 0) die("openat", name);
      char at[64];
      snprintf(at, sizeof at, "/proc/self/fd/%d", dir);
      if (mount("tmpfs", at, "tmpfs", 0, "size=1m") != 0) die("mount tmpfs", sandbox_paths[i]);
      close(dir);
    } else {
      if (mount("tmpfs", sandbox_paths[i], "tmpfs", 0, "size=1m") != 0)
        die("mount tmpfs", sandbox_paths[i]);
      close(parent);
    }
  }
  if (sandbox_request.safe) close(parent);
}

static void sandbox_release(void) {
  for (long i = sandbox_request.n - 1; i >= 0; i--) {
    do_umount(sandbox_paths[i]);
    if (rmdir(sandbox_paths[i]) != 0) die("rmdir", sandbox_paths[i]);
  }
}

static void sandbox_args(char **argv, int safe) {
  sandbox_request.root = argv[0];
  sandbox_request.n = atol(argv[1]);
  sandbox_request.safe = safe;
  if (sandbox_request.n < 1 || sandbox_request.n > SANDBOX_MAX)
    die("storages per request", argv[1]);
}

static void cycle_sandbox(char **argv) {
  sandbox_args(argv, 0);
  sandbox_add();
  sandbox_release();
}

/*
 * handoff: the async API's shape with nothing of ours in it. The main thread hands each call to a
 * worker waiting on a condition variable (as the addon's pool threads do), and the worker signals
 * completion through an eventfd that the main thread waits for in epoll_wait (as libuv's loop does
 * for a threadsafe function's uv_async). Two wake-ups per call, two calls (mount, umount) per
 * cycle.
 */
static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  /* The call to make, or NULL; set under mu, also read without it by the polling worker. */
  void (*_Atomic request)(void);
  int stop;
  int poll;    /* the worker polls 100 µs for the next call before it sleeps */
  int polling; /* under mu: the worker polls, so a call needs no signal */
  const char *target;
  int done_fd, epoll_fd;
  pthread_t thread;
} handoff = {.mu = PTHREAD_MUTEX_INITIALIZER,
             .cv = PTHREAD_COND_INITIALIZER,
             .done_fd = -1,
             .epoll_fd = -1}; /* the rest zero: no call, no target */

static void handoff_mount(void) {
  if (mount("tmpfs", handoff.target, "tmpfs", 0, NULL) != 0) die("mount tmpfs", handoff.target);
}
static void handoff_umount(void) { do_umount(handoff.target); }

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static void *handoff_worker(void *arg) {
  (void)arg;
  for (;;) {
    pthread_mutex_lock(&handoff.mu);
    if (handoff.poll && atomic_load_explicit(&handoff.request, memory_order_relaxed) == NULL) {
      /* As the addon's pool threads do (workpool.cc): a call that follows within 100 µs needs
       * no wake-up. The clock is read every 64 turns, as there. */
      handoff.polling = 1;
      pthread_mutex_unlock(&handoff.mu);
      long long until = now_ns() + 100000;
      for (unsigned i = 1; atomic_load_explicit(&handoff.request, memory_order_acquire) == NULL;
           ++i) {
        cpu_relax();
        if (i % 64 == 0 && now_ns() > until) break;
      }
      pthread_mutex_lock(&handoff.mu);
      handoff.polling = 0;
    }
    while (atomic_load_explicit(&handoff.request, memory_order_relaxed) == NULL && !handoff.stop)
      pthread_cond_wait(&handoff.cv, &handoff.mu);
    void (*req)(void) = atomic_exchange_explicit(&handoff.request, NULL, memory_order_relaxed);
    const int stop = handoff.stop;
    pthread_mutex_unlock(&handoff.mu);
    if (stop) return NULL;
    req();
    uint64_t one = 1;
    if (write(handoff.done_fd, &one, sizeof one) != sizeof one) die("write", "eventfd");
  }
}

static void handoff_call(void (*req)(void)) {
  pthread_mutex_lock(&handoff.mu);
  atomic_store_explicit(&handoff.request, req, memory_order_release);
  if (!handoff.polling) pthread_cond_signal(&handoff.cv);
  pthread_mutex_unlock(&handoff.mu);
  struct epoll_event ev;
  int r;
  do r = epoll_wait(handoff.epoll_fd, &ev, 1, -1);
  while (r < 0 && errno == EINTR);
  if (r != 1) die("epoll_wait", "eventfd");
  uint64_t count;
  if (read(handoff.done_fd, &count, sizeof count) != sizeof count) die("read", "eventfd");
}

static void handoff_start(void) {
  handoff.done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  handoff.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (handoff.done_fd < 0 || handoff.epoll_fd < 0) die("eventfd/epoll", "");
  struct epoll_event ev = {.events = EPOLLIN, .data = {.fd = handoff.done_fd}};
  if (epoll_ctl(handoff.epoll_fd, EPOLL_CTL_ADD, handoff.done_fd, &ev) != 0) die("epoll_ctl", "");
  if (pthread_create(&handoff.thread, NULL, handoff_worker, NULL) != 0) die("pthread_create", "");
}

static void handoff_stop(void) {
  pthread_mutex_lock(&handoff.mu);
  handoff.stop = 1;
  pthread_cond_signal(&handoff.cv);
  pthread_mutex_unlock(&handoff.mu);
  pthread_join(handoff.thread, NULL);
}

static void cycle_handoff(char **argv) {
  handoff.target = argv[0];
  handoff_call(handoff_mount);
  handoff_call(handoff_umount);
}

/* One hand-off for the request's adds and one for its releases, as the addon's one job each. */
static void cycle_sandbox_floor(char **argv) {
  sandbox_args(argv, 1);
  handoff_call(sandbox_add);
  handoff_call(sandbox_release);
}

struct op {
  const char *name;
  int nargs;
  void (*cycle)(char **argv);
};

static const struct op ops[] = {
    {"tmpfs", 1, cycle_tmpfs},     {"bind", 2, cycle_bind},
    {"bind-ro", 2, cycle_bind_ro}, {"ext4-ro", 2, cycle_ext4_ro},
    {"pci", 3, cycle_pci},         {"sandbox", 2, cycle_sandbox},
    {"handoff", 1, cycle_handoff}, {"sandbox-floor", 2, cycle_sandbox_floor},
};

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s <op> <iterations> <warmup> args...\n", argv[0]);
    return 2;
  }
  const struct op *op = NULL;
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    if (strcmp(ops[i].name, argv[1]) == 0) op = &ops[i];
  }
  if (!op || argc != 4 + op->nargs) {
    fprintf(stderr, "kata_bench_baseline: unknown op or wrong arguments: %s\n", argv[1]);
    return 2;
  }
  long iterations = atol(argv[2]), warmup = atol(argv[3]);
  char **args = argv + 4;
  long long *samples = calloc(iterations > 0 ? (size_t)iterations : 1, sizeof *samples);
  if (!samples) die("calloc", "");

  const int handed_off = op->cycle == cycle_handoff || op->cycle == cycle_sandbox_floor;
  /* The floor's worker polls as the addon's pool threads do, and like them only with a second
   * CPU to poll on (CanPoll in workpool.cc); handoff's sleeps, as it always has
   * (async1_vs_handoff is measured against it). */
  cpu_set_t cpus;
  handoff.poll = op->cycle == cycle_sandbox_floor &&
                 sched_getaffinity(0, sizeof cpus, &cpus) == 0 && CPU_COUNT(&cpus) >= 2;
  if (handed_off) handoff_start();
  for (long i = 0; i < warmup; i++) op->cycle(args);
  long long cpu0 = cpu_ns();
  for (long i = 0; i < iterations; i++) {
    long long t0 = now_ns();
    op->cycle(args);
    samples[i] = now_ns() - t0;
  }
  long long cpu = cpu_ns() - cpu0;
  if (handed_off) handoff_stop();

  printf("{\"op\":\"%s\",\"cpu_ns\":%lld,", op->name, cpu);
  if (op->cycle == cycle_pci) printf("\"result\":\"%s\",", pci_result);
  printf("\"samples_ns\":[");
  for (long i = 0; i < iterations; i++) printf(i ? ",%lld" : "%lld", samples[i]);
  printf("]}\n");
  free(samples);
  return 0;
}
