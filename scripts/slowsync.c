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

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    int r = real(fd);
    slow_down();
    return r;
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    int r = real(fd);
    slow_down();
    return r;
}
