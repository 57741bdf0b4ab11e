/* Small file-descriptor helpers shared by the log and the status socket. */
#ifndef BW_IO_H
#define BW_IO_H

#include <stddef.h>

/* Writes all len bytes to fd, retrying short writes and EINTR. With
 * wait_ms >= 0, each write first waits up to wait_ms for fd to become
 * writable and gives up when it does not (a slow reader cannot hold the
 * caller); with wait_ms < 0 it simply writes. Returns 0 when everything
 * was written, -1 otherwise. */
int bw_write_all(int fd, const void *p, size_t len, int wait_ms);

#endif
