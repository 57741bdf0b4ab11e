/* The FastCGI listening socket: inherited from systemd or made here. */
#ifndef BW_LISTEN_H
#define BW_LISTEN_H

#include <stdbool.h>

struct bw_listener {
	int fd;
	bool inherited; /* from systemd: never unlink its path */
	bool is_unix;
	char path[108];
	int backlog;
};

/* Inherits LISTEN_FDS when present, else binds `spec` (unix path or
 * host:port). A unix path where a live server answers is refused. */
int bw_listen_open(struct bw_listener *l, const char *spec, int backlog, char *err, size_t errlen);
void bw_listen_close(struct bw_listener *l);
/* A plain unix stream listener (the status socket), same live-socket check. */
int bw_listen_unix(const char *path, int backlog, int mode, char *err, size_t errlen);
/* Connections waiting in the accept queue, or -1 when unknown. */
int bw_listen_queue_depth(const struct bw_listener *l);

#endif
