#ifndef HOOKGUARD_CLINUX_H
#define HOOKGUARD_CLINUX_H

// Linux calls that Swift's Glibc module does not declare (they need
// _GNU_SOURCE, which it is built without). Each returns what the call returns,
// with errno set.

// syncfs(2): flush every dirty file of the filesystem holding fd, then the device cache.
int hookguard_syncfs(int fd);

// sync_file_range(2) over the whole file with WAIT_BEFORE | WRITE | WAIT_AFTER:
// its data is written to the device (no cache flush, no metadata).
int hookguard_write_file_data(int fd);

// mallopt(M_MMAP_THRESHOLD, bytes): blocks from `bytes` up get mappings of
// their own, unmapped when freed (and the threshold stops adapting).
int hookguard_set_mmap_threshold(int bytes);

// pthread_setname_np(pthread_self(), name): names the calling thread for
// top -H, gdb and sanitizer reports (at most 15 bytes; longer is cut).
// Returns an error number, 0 on success.
int hookguard_name_this_thread(const char *name);

// signalfd(2) for `count` signals (which the caller has blocked), close-on-exec:
// the signals are read from it while they stay blocked in every thread.
int hookguard_signalfd(const int *signals, int count);

// Reads the next signal from a signalfd made by hookguard_signalfd; its
// number, or -1 with errno set.
int hookguard_read_signal(int fd);

// epoll_create1(EPOLL_CLOEXEC).
int hookguard_epoll_create(void);

// epoll_ctl(EPOLL_CTL_ADD) of `fd` for input (level-triggered); with
// `wake_one`, EPOLLEXCLUSIVE: input on `fd` wakes one of the epoll instances
// sleeping on it rather than all.
int hookguard_epoll_watch_input(int epoll, int fd, int wake_one);

// epoll_wait: writes up to `capacity` descriptors with input to `fds` and
// returns how many, waiting at most `timeout_ms` (-1: no limit).
int hookguard_epoll_wait_input(int epoll, int *fds, int capacity, int timeout_ms);

#endif
