/* The command adnanh/webhook runs for each delivery in the benchmark: it
 * appends one byte to COUNT_FILE, so bench/run can tell how many commands
 * have finished (webhook answers before its command runs).
 * Built by bench/run:  cc -O2 -o counter counter.c
 */
#include <fcntl.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    return fd >= 0 && write(fd, "x", 1) == 1 ? 0 : 1;
}
