/* The floor: an empty FastCGI responder on libfcgi, the cost of the FastCGI
 * hop itself. It reads the body (as any responder must) and answers 200 with
 * no content. Built by bench/run:  cc -O2 -o floor floor.c -lfcgi -lpthread
 *
 *   floor SOCKET_PATH THREADS [READER_SOCKET]   (stops on SIGTERM or SIGINT)
 *
 * With READER_SOCKET it is the floor of socket forwarding: each thread keeps
 * one connection to the reader, writes every body there as a line and waits
 * for the reader's "ok" line before it answers, as hookguard does with an
 * acknowledging reader. Bodies must hold no newline (the benchmark's do not).
 */
#include <fcgiapp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int listen_fd;
static const char *reader_path;

static int connect_reader(void) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, reader_path, sizeof addr.sun_path - 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror(reader_path);
        exit(1);
    }
    return fd;
}

static int write_all(int fd, const char *data, size_t length) {
    while (length > 0) {
        ssize_t n = write(fd, data, length);
        if (n <= 0) return -1;
        data += n;
        length -= (size_t)n;
    }
    return 0;
}

/* Reads up to and including the reader's next newline; 0 when it starts with "ok". */
static int read_ack(int fd) {
    char line[64];
    size_t used = 0;
    while (used < sizeof line) {
        ssize_t n = read(fd, line + used, 1);
        if (n <= 0) return -1;
        if (line[used++] == '\n') return (used >= 3 && memcmp(line, "ok", 2) == 0) ? 0 : -1;
    }
    return -1;
}

static void *serve(void *unused) {
    (void)unused;
    size_t capacity = 64 * 1024;
    char *body = malloc(capacity);
    int reader = reader_path ? connect_reader() : -1;
    FCGX_Request request;
    FCGX_InitRequest(&request, listen_fd, 0);
    while (FCGX_Accept_r(&request) >= 0) {
        size_t used = 0;
        int got;
        for (;;) {
            if (capacity - used < 64 * 1024) body = realloc(body, capacity *= 2);
            if ((got = FCGX_GetStr(body + used, (int)(capacity - used - 1), request.in)) <= 0) break;
            used += (size_t)got;
        }
        const char *status = "Status: 200 OK\r\nContent-Length: 0\r\n\r\n";
        if (reader >= 0) {
            body[used++] = '\n';
            if (write_all(reader, body, used) != 0 || read_ack(reader) != 0)
                status = "Status: 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
        }
        FCGX_PutS(status, request.out);
        FCGX_Finish_r(&request);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: floor SOCKET_PATH THREADS [READER_SOCKET]\n");
        return 2;
    }
    int threads = atoi(argv[2]);
    reader_path = argc == 4 ? argv[3] : NULL;
    /* Blocked in every thread, taken by sigwait below: libfcgi's own SIGTERM
     * handler only marks a shutdown that threads blocked in accept never see. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    FCGX_Init();
    unlink(argv[1]);
    listen_fd = FCGX_OpenSocket(argv[1], 1024);
    if (listen_fd < 0) {
        perror("FCGX_OpenSocket");
        return 1;
    }
    chmod(argv[1], 0600);
    pthread_t ids[threads];
    for (int i = 0; i < threads; i++) pthread_create(&ids[i], NULL, serve, NULL);
    int received;
    sigwait(&stop, &received);
    unlink(argv[1]);
    return 0;
}
