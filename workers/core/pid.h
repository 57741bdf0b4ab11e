/* getpid() without a system call per use: cached, and forgotten in the
 * child of every fork (pthread_atfork), so a worker never sees its master's. */
#ifndef BW_PID_H
#define BW_PID_H

#include <sys/types.h>

pid_t bw_pid(void);

#endif
