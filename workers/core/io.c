/* Writing a whole buffer to a file descriptor, with an optional bound on
 * each wait for the peer. */
#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include "core/io.h"

int
bw_write_all(int fd, const void *p, size_t len, int wait_ms)
{
	const char *s = p;

	while (len > 0) {
		if (wait_ms >= 0) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			if (poll(&pfd, 1, wait_ms) <= 0)
				return -1;
		}
		ssize_t n = write(fd, s, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		s += n;
		len -= (size_t)n;
	}
	return 0;
}
