/* The architecture's ceiling: the least a prefork libfcgi responder can do per request.
 *
 *   minimal_responder N SOCKET_PATH
 *
 * Makes its own unix socket (socket/bind/listen 511, never FCGX_OpenSocket), forks N
 * children that each loop FCGX_Accept_r -> fixed 200 JSON -> FCGX_Finish_r, and waits.
 * SIGTERM/SIGINT to the parent stops the children and removes the socket. bench/run
 * compares bulwark's GET /healthz (same pool size, same nginx) against this.
 *
 * Build: cc -O2 -o minimal_responder minimal_responder.c $(pkg-config --cflags --libs fcgi)
 */
#include <errno.h>
#include <fcgiapp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static const char response[] = "Status: 200 OK\r\n"
                               "Content-Type: application/json\r\n"
                               "\r\n"
                               "{\"status\":\"ok\"}";

static volatile sig_atomic_t stop;

static void
on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static int
make_socket(const char *path)
{
	struct sockaddr_un sa;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "minimal_responder: socket path too long: %s\n", path);
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, path);

	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0) {
		perror("minimal_responder: socket");
		return -1;
	}
	unlink(path); /* our own bench socket; a stale one from an earlier run may remain */
	mode_t old = umask(0117);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0) {
		perror("minimal_responder: bind");
		close(fd);
		return -1;
	}
	if (listen(fd, 511) < 0) {
		perror("minimal_responder: listen");
		close(fd);
		return -1;
	}
	return fd;
}

static void
child(int fd)
{
	FCGX_Request req;

	/* Die with the parent, whatever killed it. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		_exit(0);

	/* Read by OS_LibInit inside FCGX_Init: the 2 s defaults stall every accept/close. */
	setenv("LIBFCGI_IS_AF_UNIX_KEEPER_POLL_TIMEOUT", "200", 1);
	setenv("LIBFCGI_OS_CLOSE_POLL_TIMEOUT", "500", 1);

	signal(SIGTERM, SIG_DFL); /* libfcgi installs its shutdown handler over SIG_DFL */
	signal(SIGINT, SIG_DFL);
	if (FCGX_Init() != 0) {
		fprintf(stderr, "minimal_responder: FCGX_Init failed\n");
		_exit(1);
	}
	if (FCGX_InitRequest(&req, fd, 0) != 0) {
		fprintf(stderr, "minimal_responder: FCGX_InitRequest failed\n");
		_exit(1);
	}
	while (FCGX_Accept_r(&req) == 0) {
		FCGX_PutStr(response, (int)sizeof(response) - 1, req.out);
		FCGX_Finish_r(&req);
	}
	_exit(0);
}

int
main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: minimal_responder N SOCKET_PATH\n");
		return 2;
	}
	int n = atoi(argv[1]);
	if (n < 1 || n > 256) {
		fprintf(stderr, "minimal_responder: N must be 1..256\n");
		return 2;
	}
	const char *path = argv[2];

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	int fd = make_socket(path);
	if (fd < 0)
		return 1;

	pid_t *pids = calloc((size_t)n, sizeof(*pids));
	if (pids == NULL)
		return 1;
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("minimal_responder: fork");
			stop = 1;
			break;
		}
		if (pid == 0)
			child(fd);
		pids[i] = pid;
	}

	int alive = n;
	while (!stop && alive > 0) {
		pid_t pid = wait(NULL);
		if (pid > 0) {
			alive--;
			fprintf(stderr, "minimal_responder: child %d exited\n", (int)pid);
		} else if (errno != EINTR) {
			break;
		}
	}
	for (int i = 0; i < n; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGTERM);
	while (wait(NULL) > 0 || errno == EINTR)
		;
	unlink(path);
	free(pids);
	return 0;
}
