/* The floor: an empty FastCGI responder on libfcgi, the cost of the FastCGI
 * hop itself. It reads the body (as any responder must) and answers 200 with
 * no content. Built by bench/run:  cc -O2 -o floor floor.c -lfcgi -lpthread
 *
 *   floor SOCKET_PATH THREADS [READER_SOCKET | spool:DIR]   (stops on SIGTERM or SIGINT)
 *
 * With READER_SOCKET it is the floor of socket forwarding: each thread keeps
 * one connection to the reader, writes every body there as a line and waits
 * for the reader's "ok" line before it answers, as hookguard does with an
 * acknowledging reader. Bodies must hold no newline (the benchmark's do not).
 *
 * With spool:DIR it is the floor of the durable spool: each body becomes a
 * file the way hookguard makes one, durable before the answer. The file is
 * created in DIR/tmp, written, its data written out (sync_file_range); then
 * the threads commit together: whichever finds no commit under way makes the
 * files of every thread waiting durable with one syncfs, renames them into
 * DIR/new and makes the renames durable with one fsync of DIR/new (a group
 * commit, not pipelined). A failure answers 503.
 */
#define _GNU_SOURCE
#include <fcgiapp.h>
#include <fcntl.h>
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
static const char *spool_dir;
static int write_all(int fd, const char *data, size_t length);

/* The group commit: entries join `forming`; the first thread to find no
 * commit under way takes the batch and commits it while others form the next. */
enum { MAX_BATCH = 1024 };
struct entry {
    char staged[512], final[512];
    int result;
};
static pthread_mutex_t commit_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t committed = PTHREAD_COND_INITIALIZER;
static struct entry *forming[MAX_BATCH];
static int forming_count;
static long forming_batch, done_batch = -1;
static int committing;
static unsigned long next_name;

static int sync_dir(const char *path, int whole_filesystem) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int result = whole_filesystem ? syncfs(fd) : fsync(fd);
    close(fd);
    return result;
}

static void commit_batch(struct entry **batch, int count) {
    char path[512];
    snprintf(path, sizeof path, "%s/tmp", spool_dir);
    int failed = sync_dir(path, 1);
    for (int i = 0; i < count; i++) {
        batch[i]->result = failed ? -1 : rename(batch[i]->staged, batch[i]->final);
        if (batch[i]->result != 0) unlink(batch[i]->staged);
    }
    snprintf(path, sizeof path, "%s/new", spool_dir);
    if (sync_dir(path, 0) != 0)
        for (int i = 0; i < count; i++) batch[i]->result = -1;
}

/* 0 once the body is a durable file in DIR/new. */
static int spool(const char *body, size_t length) {
    struct entry e = {.result = -1};
    pthread_mutex_lock(&commit_lock);
    unsigned long name = next_name++;
    pthread_mutex_unlock(&commit_lock);
    snprintf(e.staged, sizeof e.staged, "%s/tmp/%d-%lu", spool_dir, getpid(), name);
    snprintf(e.final, sizeof e.final, "%s/new/%d-%lu", spool_dir, getpid(), name);
    int fd = open(e.staged, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) return -1;
    int written = write_all(fd, body, length) == 0 &&
                  sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                                SYNC_FILE_RANGE_WAIT_AFTER) == 0;
    if (close(fd) != 0 || !written) {
        unlink(e.staged);
        return -1;
    }
    pthread_mutex_lock(&commit_lock);
    while (forming_count == MAX_BATCH) pthread_cond_wait(&committed, &commit_lock);
    long mine = forming_batch;
    forming[forming_count++] = &e;
    while (done_batch < mine) {
        if (!committing && forming_batch == mine) {
            struct entry *batch[MAX_BATCH];
            int count = forming_count;
            memcpy(batch, forming, sizeof batch[0] * (size_t)count);
            forming_count = 0;
            forming_batch++;
            committing = 1;
            pthread_mutex_unlock(&commit_lock);
            commit_batch(batch, count);
            pthread_mutex_lock(&commit_lock);
            committing = 0;
            done_batch = mine;
            pthread_cond_broadcast(&committed);
        } else {
            pthread_cond_wait(&committed, &commit_lock);
        }
    }
    pthread_mutex_unlock(&commit_lock);
    return e.result;
}

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
        if (spool_dir) {
            if (spool(body, used) != 0) status = "Status: 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
        } else if (reader >= 0) {
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
        fprintf(stderr, "usage: floor SOCKET_PATH THREADS [READER_SOCKET | spool:DIR]\n");
        return 2;
    }
    int threads = atoi(argv[2]);
    if (argc == 4 && strncmp(argv[3], "spool:", 6) == 0)
        spool_dir = argv[3] + 6;
    else if (argc == 4)
        reader_path = argv[3];
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
