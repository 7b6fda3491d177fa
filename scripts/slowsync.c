/* An LD_PRELOAD shim for scripts/bench-slowsync.sh: every fsync and fdatasync of the
 * process takes SLOWSYNC_US microseconds longer than the disk makes it, as on network block
 * storage or a spinning disk. For benchmarks only. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

static void slow_down(void) {
    const char *v = getenv("SLOWSYNC_US");
    long us = v ? atol(v) : 0;
    if (us > 0) {
        struct timespec t = {us / 1000000, (us % 1000000) * 1000};
        nanosleep(&t, NULL);
    }
}

/* Calls the C library's own `name`, then waits. */
static int slowed(const char *name, int fd) {
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, name);
    int r = real(fd);
    slow_down();
    return r;
}

int fsync(int fd) { return slowed("fsync", fd); }

int fdatasync(int fd) { return slowed("fdatasync", fd); }
