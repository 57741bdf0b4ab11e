/* The architecture's ceiling: the least a prefork libfcgi responder can do per request.
 *
 *   minimal_responder N SOCKET_PATH [redis REDIS_SOCKET COMMAND ARG...]
 *   minimal_responder N SOCKET_PATH [pg CONNINFO TENANT_ID ACCOUNTS_FILE]
 *
 * Makes its own unix socket (socket/bind/listen 511, never FCGX_OpenSocket), forks N
 * children that each loop FCGX_Accept_r -> fixed 200 JSON -> FCGX_Finish_r, and waits.
 * SIGTERM/SIGINT to the parent stops the children and removes the socket. bench/run
 * compares bulwark's GET /healthz (same pool size, same nginx) against this.
 *
 * With `redis`, each child keeps one connection and sends the command, waiting for its
 * reply, before every answer (500 on an error reply): the least any responder that makes
 * one Redis call per request can do. bench/run gives it the very FCALL that
 * GET /v1/whoami makes.
 *
 * With `pg`, each child keeps one PostgreSQL connection and runs, before every answer,
 * the statement a bulwark worker sends for POST /v1/transfers (prepared once; two random
 * accounts of the file, a fresh Idempotency-Key; 500 unless it answers 201): the least
 * any responder that does a transfer per request can do, without HTTP parsing, auth or
 * cache upkeep.
 *
 * Build: cc -O2 -I../workers -o minimal_responder minimal_responder.c \
 *            $(pkg-config --cflags --libs fcgi hiredis libpq)
 */
#include <errno.h>
#include <fcgiapp.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/transfer_sql.h"

static const char response[] = "Status: 200 OK\r\n"
                               "Content-Type: application/json\r\n"
                               "\r\n"
                               "{\"status\":\"ok\"}";
static const char failure[] = "Status: 500 Internal Server Error\r\n"
                              "Content-Type: application/json\r\n"
                              "\r\n"
                              "{\"status\":\"the call failed\"}";

/* The optional Redis call: socket path, then the command's words. */
static const char *redis_path;
static int redis_argc;
static const char **redis_argv;

/* The optional transfer: TRANSFER_SQL, what a worker sends. */
static const char *pg_conninfo;
static const char *pg_tenant;
static char **accounts;
static size_t naccounts;

static int
load_accounts(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[64];
	size_t cap = 0;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0')
			continue;
		if (naccounts == cap) {
			cap = cap ? 2 * cap : 1024;
			char **grown = realloc(accounts, cap * sizeof(*accounts));
			if (grown == NULL)
				break;
			accounts = grown;
		}
		accounts[naccounts++] = strdup(line);
	}
	fclose(f);
	return naccounts >= 2 ? 0 : -1;
}

static PGconn *
pg_open(void)
{
	PGconn *c = PQconnectdb(pg_conninfo);
	PGresult *r = NULL;

	if (PQstatus(c) == CONNECTION_OK)
		r = PQprepare(c, "transfer", TRANSFER_SQL, TRANSFER_NPARAMS, NULL);
	if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
		fprintf(stderr, "minimal_responder: postgres: %s", PQerrorMessage(c));
		PQclear(r);
		PQfinish(c);
		return NULL;
	}
	PQclear(r);
	return c;
}

/* One transfer between two random accounts; false unless it answered 201. */
static bool
pg_transfer(PGconn **c, long serial)
{
	char idem[64];
	size_t a = (size_t)random() % naccounts, b = (size_t)random() % (naccounts - 1);

	if (*c == NULL && (*c = pg_open()) == NULL)
		return false;
	if (b >= a)
		b++;
	snprintf(idem, sizeof(idem), "minimal-%d-%ld", (int)getpid(), serial);
	const char *params[TRANSFER_NPARAMS] = {
	    pg_tenant,
	    "minimal",
	    idem,
	    "POST /v1/transfers",
	    "0000000000000000000000000000000000000000000000000000000000000000",
	    "minimal",
	    accounts[a],
	    accounts[b],
	    "1",
	    "EUR",
	    NULL};
	PGresult *r = PQexecPrepared(*c, "transfer", TRANSFER_NPARAMS, params, NULL, NULL, 0);
	bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
	          strcmp(PQgetvalue(r, 0, 1), "201") == 0;
	if (!ok)
		fprintf(stderr, "minimal_responder: transfer: %s", PQresultErrorMessage(r));
	PQclear(r);
	if (PQstatus(*c) != CONNECTION_OK) {
		PQfinish(*c);
		*c = NULL;
	}
	return ok;
}

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

/* One round trip; false on a connection failure or an error reply. */
static bool
redis_call(redisContext *rc)
{
	if (rc == NULL)
		return true;
	redisReply *r = redisCommandArgv(rc, redis_argc, redis_argv, NULL);
	bool ok = r != NULL && r->type != REDIS_REPLY_ERROR;
	if (r != NULL)
		freeReplyObject(r);
	return ok;
}

static void
child(int fd)
{
	FCGX_Request req;
	redisContext *rc = NULL;
	PGconn *pg = NULL;
	long serial = 0;

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
	if (redis_path != NULL) {
		rc = redisConnectUnix(redis_path);
		if (rc == NULL || rc->err) {
			fprintf(stderr, "minimal_responder: redis %s: %s\n", redis_path,
			        rc != NULL ? rc->errstr : "out of memory");
			_exit(1);
		}
	}
	srandom((unsigned)getpid());
	if (pg_conninfo != NULL && (pg = pg_open()) == NULL)
		_exit(1);
	while (FCGX_Accept_r(&req) == 0) {
		if (redis_call(rc) && (pg_conninfo == NULL || pg_transfer(&pg, serial++)))
			FCGX_PutStr(response, (int)sizeof(response) - 1, req.out);
		else
			FCGX_PutStr(failure, (int)sizeof(failure) - 1, req.out);
		FCGX_Finish_r(&req);
	}
	_exit(0);
}

int
main(int argc, char **argv)
{
	if (argc >= 6 && strcmp(argv[3], "redis") == 0) {
		redis_path = argv[4];
		redis_argc = argc - 5;
		redis_argv = (const char **)argv + 5;
	} else if (argc == 7 && strcmp(argv[3], "pg") == 0) {
		pg_conninfo = argv[4];
		pg_tenant = argv[5];
		if (load_accounts(argv[6]) < 0) {
			fprintf(stderr, "minimal_responder: %s: need two account ids or more\n",
			        argv[6]);
			return 2;
		}
	} else if (argc != 3) {
		fprintf(
		    stderr,
		    "usage: minimal_responder N SOCKET_PATH [redis REDIS_SOCKET COMMAND ARG...]\n"
		    "       minimal_responder N SOCKET_PATH [pg CONNINFO TENANT_ID "
		    "ACCOUNTS_FILE]\n");
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
