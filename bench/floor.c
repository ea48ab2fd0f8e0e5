/* The floor: an empty FastCGI responder on libfcgi, the cost of the FastCGI
 * hop itself. It reads the body (as any responder must) and answers 200 with
 * no content. Built by bench/run:  cc -O2 -o floor floor.c -lfcgi -lpthread
 *
 *   floor SOCKET_PATH THREADS      (stops on SIGTERM or SIGINT)
 */
#include <fcgiapp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int listen_fd;

static void *serve(void *unused) {
    (void)unused;
    static __thread char body[64 * 1024];
    FCGX_Request request;
    FCGX_InitRequest(&request, listen_fd, 0);
    while (FCGX_Accept_r(&request) >= 0) {
        while (FCGX_GetStr(body, sizeof body, request.in) > 0) {}
        FCGX_PutS("Status: 200 OK\r\nContent-Length: 0\r\n\r\n", request.out);
        FCGX_Finish_r(&request);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: floor SOCKET_PATH THREADS\n");
        return 2;
    }
    int threads = atoi(argv[2]);
    /* Blocked in every thread, taken by sigwait below: libfcgi's own SIGTERM
     * handler only marks a shutdown that threads blocked in accept never see. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
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
