#ifndef HOOKGUARD_CFASTCGI_SHIM_H
#define HOOKGUARD_CFASTCGI_SHIM_H
#include <fcgiapp.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/socket.h>
#include <fcntl.h>

/* prctl is variadic, which Swift cannot call: the one use the server needs. */
static inline int hookguard_die_with_parent(void) {
    return prctl(PR_SET_PDEATHSIG, SIGKILL);
}

/* accept4 and pipe2 are GNU extensions Swift's Glibc module does not declare. */
static inline int hookguard_accept_cloexec(int listening) {
    extern int accept4(int, struct sockaddr *, socklen_t *, int);
    return accept4(listening, 0, 0, SOCK_CLOEXEC);
}

static inline int hookguard_pipe_cloexec(int fds[2], int nonblocking) {
    extern int pipe2(int *, int);
    return pipe2(fds, O_CLOEXEC | (nonblocking ? O_NONBLOCK : 0));
}
#endif
