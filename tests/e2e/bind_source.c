/* LD_PRELOAD shim for the end-to-end world: every IPv4 TCP socket this
 * process connects leaves from $SLURM_EC2_SOURCE_ADDR, as it would from an
 * EC2 instance of its own. Slurm 23.11+ takes a node's NodeAddr from the
 * source address of its registration; without this every emulated slurmd
 * would register from 127.0.0.1. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);

int connect(int fd, const struct sockaddr *address, socklen_t length) {
    static connect_fn real_connect;
    if (!real_connect)
        real_connect = (connect_fn)dlsym(RTLD_NEXT, "connect");
    const char *source = getenv("SLURM_EC2_SOURCE_ADDR");
    if (source && address && address->sa_family == AF_INET) {
        struct sockaddr_in bound;
        socklen_t bound_length = sizeof bound;
        int type = 0;
        socklen_t type_length = sizeof type;
        /* Only sockets not bound yet, and only stream sockets. */
        if (getsockname(fd, (struct sockaddr *)&bound, &bound_length) == 0 && bound.sin_port == 0 &&
            getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_length) == 0 && type == SOCK_STREAM) {
            struct sockaddr_in local;
            memset(&local, 0, sizeof local);
            local.sin_family = AF_INET;
            local.sin_port = 0;
            if (inet_pton(AF_INET, source, &local.sin_addr) == 1) {
                int saved = errno;
                (void)bind(fd, (struct sockaddr *)&local, sizeof local);
                errno = saved;
            }
        }
    }
    return real_connect(fd, address, length);
}
