/* LD_PRELOAD shim for the corpus recorder: binds every IPv4 socket that connects to
 * 127.0.0.0/8 to the source address in $BIND_ADDR first, so that a tool with no option for
 * it (hydra, medusa, ncrack, psql, sqlmap's driver, pgbouncer) looks like another host to the
 * server. Loopback only: the recorder never talks to any other address. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/socket.h>
int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    static int (*real)(int, const struct sockaddr *, socklen_t);
    if (!real) real = dlsym(RTLD_NEXT, "connect");
    const char *src = getenv("BIND_ADDR");
    if (src && addr && addr->sa_family == AF_INET) {
        const struct sockaddr_in *to = (const struct sockaddr_in *)addr;
        if ((ntohl(to->sin_addr.s_addr) >> 24) == 127) {
            struct sockaddr_in me = {0};
            me.sin_family = AF_INET;
            inet_pton(AF_INET, src, &me.sin_addr);
            bind(fd, (struct sockaddr *)&me, sizeof me);
        }
    }
    return real(fd, addr, len);
}
