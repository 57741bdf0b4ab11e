#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "pool/listen.h"

/* Is a server accepting on this unix path right now? */
static bool
unix_path_live(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool live = false;

	if (fd < 0)
		return false;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EAGAIN)
		live = true;
	close(fd);
	return live;
}

int
bw_listen_unix(const char *path, int backlog, int mode, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd = -1;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "%s: exists and is not a socket", path);
			return -1;
		}
		if (unix_path_live(path)) {
			snprintf(err, errlen, "%s: socket in use by a running server", path);
			return -1;
		}
		unlink(path); /* stale: nobody answers on it */
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	/* Bind under a tight umask so the socket never exists with a wider mode. */
	mode_t old = umask(0777 & ~(mode_t)mode);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || chmod(path, (mode_t)mode) < 0 || listen(fd, backlog) < 0)
		goto fail;
	return fd;
fail:
	snprintf(err, errlen, "%s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static int
listen_tcp(const char *spec, int backlog, char *err, size_t errlen)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res = NULL;
	int fd = -1, one = 1;

	if (colon == NULL || (size_t)(colon - spec) >= sizeof(host)) {
		snprintf(err, errlen, "listen: expected a unix path or host:port (got \"%s\")",
		         spec);
		return -1;
	}
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	/* [::1]:9000 */
	char *h = host;
	if (h[0] == '[' && h[strlen(h) - 1] == ']') {
		h[strlen(h) - 1] = '\0';
		h++;
	}
	int gai = getaddrinfo(h[0] ? h : NULL, colon + 1, &hints, &res);
	if (gai != 0) {
		snprintf(err, errlen, "listen: %s: %s", spec, gai_strerror(gai));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
		snprintf(err, errlen, "listen: %s: %s", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

int
bw_listen_open(struct bw_listener *l, const char *spec, int backlog, char *err, size_t errlen)
{
	memset(l, 0, sizeof(*l));
	l->fd = -1;
	l->backlog = backlog;
	int n = sd_listen_fds(1); /* unsets LISTEN_* so workers do not see them */
	if (n > 0) {
		l->fd = SD_LISTEN_FDS_START;
		l->inherited = true;
		l->is_unix = sd_is_socket(l->fd, AF_UNIX, SOCK_STREAM, 1) > 0;
		if (!l->is_unix && sd_is_socket(l->fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
			snprintf(err, errlen,
			         "listen: fd 3 from systemd is not a listening stream socket");
			return -1;
		}
		fcntl(l->fd, F_SETFD, FD_CLOEXEC);
		return 0;
	}
	if (spec[0] == '/') {
		l->is_unix = true;
		l->fd = bw_listen_unix(spec, backlog, 0660, err, errlen);
		/* Remember the path only once it is ours: never unlink another server's socket. */
		if (l->fd >= 0)
			snprintf(l->path, sizeof(l->path), "%s", spec);
	} else {
		l->fd = listen_tcp(spec, backlog, err, errlen);
	}
	return l->fd < 0 ? -1 : 0;
}

void
bw_listen_close(struct bw_listener *l)
{
	if (l->fd >= 0)
		close(l->fd);
	if (!l->inherited && l->is_unix && l->path[0] != '\0')
		unlink(l->path);
	l->fd = -1;
}

/* Unix sockets: ask sock_diag for the listener's receive queue, which for a
 * listening socket is the number of connections waiting to be accepted. */
static int
unix_queue_depth(int fd)
{
	struct stat st;
	int nl = -1, depth = -1;

	if (fstat(fd, &st) < 0)
		return -1;
	nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (nl < 0)
		return -1;
	struct {
		struct nlmsghdr nlh;
		struct unix_diag_req udr;
	} req = {
	    .nlh = {.nlmsg_len = sizeof(req),
	            .nlmsg_type = SOCK_DIAG_BY_FAMILY,
	            .nlmsg_flags = NLM_F_REQUEST},
	    .udr = {.sdiag_family = AF_UNIX,
	            .udiag_states = -1,
	            .udiag_ino = (__u32)st.st_ino,
	            .udiag_show = UDIAG_SHOW_RQLEN,
	            .udiag_cookie = {(__u32)~0U, (__u32)~0U}},
	};
	struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
	setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (send(nl, &req, sizeof(req), 0) < 0)
		goto out;
	long buf[1024];
	ssize_t n = recv(nl, buf, sizeof(buf), 0);
	if (n <= 0)
		goto out;
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	if (!NLMSG_OK(h, (size_t)n) || h->nlmsg_type != SOCK_DIAG_BY_FAMILY)
		goto out;
	struct unix_diag_msg *m = NLMSG_DATA(h);
	struct rtattr *a = (struct rtattr *)(m + 1);
	int alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
	for (; RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
		if (a->rta_type == UNIX_DIAG_RQLEN &&
		    RTA_PAYLOAD(a) >= sizeof(struct unix_diag_rqlen)) {
			struct unix_diag_rqlen *rq = RTA_DATA(a);
			depth = (int)rq->udiag_rqueue;
		}
	}
out:
	close(nl);
	return depth;
}

int
bw_listen_queue_depth(const struct bw_listener *l)
{
	if (l->fd < 0)
		return -1;
	if (l->is_unix)
		return unix_queue_depth(l->fd);
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	if (getsockopt(l->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return -1;
	return (int)ti.tcpi_unacked; /* for a listener: the accept queue length */
}
