/* A trivial reader for hookguard's socket forwarding: accepts any number of
 * connections, reads newline-delimited envelopes and throws them away,
 * counting complete lines and acknowledging each with "ok\n" (hookguard waits
 * for that by default). One thread, epoll. On SIGUSR1 it writes the count
 * so far to COUNT_FILE (bench/run reads it before and after a row).
 * Built by bench/run:  cc -O2 -o socket-reader socket-reader.c
 *
 *   socket-reader SOCKET_PATH COUNT_FILE
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: socket-reader SOCKET_PATH COUNT_FILE\n");
        return 2;
    }
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, argv[1], sizeof addr.sun_path - 1);
    unlink(argv[1]);
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(listener, 1024) != 0) {
        perror(argv[1]);
        return 1;
    }
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int signals = signalfd(-1, &mask, SFD_CLOEXEC);

    int poll = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event event = {.events = EPOLLIN, .data.fd = listener};
    epoll_ctl(poll, EPOLL_CTL_ADD, listener, &event);
    event.data.fd = signals;
    epoll_ctl(poll, EPOLL_CTL_ADD, signals, &event);

    unsigned long long lines = 0;
    static char buffer[256 * 1024];
    struct epoll_event ready[64];
    for (;;) {
        int n = epoll_wait(poll, ready, 64, -1);
        if (n < 0 && errno == EINTR) continue;
        for (int i = 0; i < n; i++) {
            int fd = ready[i].data.fd;
            if (fd == listener) {
                int client;
                while ((client = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    struct epoll_event in = {.events = EPOLLIN, .data.fd = client};
                    epoll_ctl(poll, EPOLL_CTL_ADD, client, &in);
                }
            } else if (fd == signals) {
                struct signalfd_siginfo info;
                if (read(signals, &info, sizeof info) != sizeof info) continue;
                FILE *out = fopen(argv[2], "w");
                if (out) {
                    fprintf(out, "%llu\n", lines);
                    fclose(out);
                }
                if (info.ssi_signo != SIGUSR1) {
                    unlink(argv[1]);
                    return 0;
                }
            } else {
                ssize_t got;
                while ((got = read(fd, buffer, sizeof buffer)) > 0) {
                    for (char *p = buffer; (p = memchr(p, '\n', buffer + got - p)) != NULL; p++) {
                        lines++;
                        /* A sender waits for this before its next line: the socket buffer has room. */
                        if (send(fd, "ok\n", 3, MSG_NOSIGNAL) != 3) break;
                    }
                }
                if (got == 0 || (got < 0 && errno != EAGAIN)) close(fd);
            }
        }
    }
}
