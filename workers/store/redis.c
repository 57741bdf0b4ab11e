/* Redis adapter: blocking hiredis 0.14 contexts with a connect timeout and a
 * socket timeout per command (SO_RCVTIMEO/SO_SNDTIMEO via redisSetTimeout,
 * set again after every connect), each behind a circuit breaker. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "core/pid.h"
#include "core/arena.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "store/redis.h"

/* The function library (workers/lua/bulwark.lua), generated at build time. */
#include "lua/bulwark_lua.h"

#define STR_(x) #x
#define STR(x)  STR_(x)

struct redis_link {
	const char *name; /* dependency name, for logs */
	const char *addr; /* "host:port", "[v6]:port" or "/unix/path" */
	redisContext *ctx;
	pid_t pid; /* process that opened ctx */
	struct bw_breaker breaker;
};

static struct {
	const struct bw_config *cfg;
	struct redis_link link[2]; /* BW_DEP_REDIS, BW_DEP_REDIS_CACHE */
} rd;

static struct redis_link *
link_of(enum bw_dep dep)
{
	if (dep == BW_DEP_REDIS)
		return &rd.link[0];
	if (dep == BW_DEP_REDIS_CACHE)
		return &rd.link[1];
	return NULL;
}

static struct timeval
ms_to_tv(int64_t ms)
{
	struct timeval tv;

	if (ms < 1)
		ms = 1;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000 * 1000);
	return tv;
}

static void
link_drop(struct redis_link *l)
{
	if (l->ctx != NULL)
		redisFree(l->ctx);
	l->ctx = NULL;
}

/* A context opened by another process shares its socket with the parent:
 * never use it. redisFree only closes our copy of the fd (hiredis sends no
 * QUIT), which leaves the parent's connection alone. */
static void
link_forget_foreign(struct redis_link *l)
{
	if (l->ctx != NULL && l->pid != bw_pid()) {
		bw_warn("%s: connection inherited over fork, opening a new one", l->name);
		link_drop(l);
	}
}

/* Splits "host:port" or "[v6addr]:port"; no port means 6379. */
static int
parse_addr(const char *addr, char *host, size_t hostlen, int *port, struct bw_err *err)
{
	const char *colon, *h = addr;
	size_t n;
	char *end;
	long p = 6379;

	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');
		if (rb == NULL)
			goto fail;
		h = addr + 1;
		n = (size_t)(rb - h);
		colon = rb[1] == ':' ? rb + 1 : NULL;
		if (rb[1] != '\0' && colon == NULL)
			goto fail;
	} else {
		colon = strrchr(addr, ':');
		n = colon != NULL ? (size_t)(colon - addr) : strlen(addr);
	}
	if (colon != NULL) {
		errno = 0;
		p = strtol(colon + 1, &end, 10);
		if (errno != 0 || end == colon + 1 || *end != '\0' || p < 1 || p > 65535)
			goto fail;
	}
	if (n == 0 || n >= hostlen)
		goto fail;
	memcpy(host, h, n);
	host[n] = '\0';
	*port = (int)p;
	return 0;
fail:
	bw_err_set(err, BW_ERR, "bad address \"%s\" (want host:port or /unix/path)", addr);
	return -1;
}

static int
link_connect(struct redis_link *l, int64_t timeout_ms, struct bw_err *err)
{
	redisContext *c = NULL;
	char host[256];
	int port;

	if (l->addr == NULL || l->addr[0] == '\0') {
		bw_err_set(err, BW_ERR, "no address configured");
		goto fail;
	}
	if (l->addr[0] == '/') {
		c = redisConnectUnixWithTimeout(l->addr, ms_to_tv(timeout_ms));
	} else {
		if (parse_addr(l->addr, host, sizeof(host), &port, err) < 0)
			goto fail;
		c = redisConnectWithTimeout(host, port, ms_to_tv(timeout_ms));
	}
	if (c == NULL) {
		bw_err_set(err, BW_ERR, "connect: out of memory");
		goto fail;
	}
	if (c->err != 0) {
		bw_err_set(err, BW_ERR, "connect %s: %s", l->addr, c->errstr);
		goto fail;
	}
	/* hiredis 0.14 forgets the timeout on reconnect: every context we
	 * open gets the command timeout here, before its first use. */
	if (redisSetTimeout(c, ms_to_tv(rd.cfg->redis_timeout_ms)) != REDIS_OK) {
		bw_err_set(err, BW_ERR, "set timeout: %s", c->errstr);
		goto fail;
	}
	/* Our library, not whatever an older bulwark left in Redis: loaded on
	 * every connect (cheap, atomic), and again on "Function not found". */
	redisReply *lr = redisCommand(c, "FUNCTION LOAD REPLACE %s", bw_lua_library);
	if (lr == NULL) {
		bw_err_set(err, BW_ERR, "FUNCTION LOAD: %s", c->errstr);
		goto fail;
	}
	if (lr->type == REDIS_REPLY_ERROR)
		bw_warn("%s: cannot load the function library: %s", l->name, lr->str);
	freeReplyObject(lr);
	l->ctx = c;
	l->pid = bw_pid();
	return 0;
fail:
	if (c != NULL)
		redisFree(c);
	return -1;
}

/* The ping of bw_redis_ops and bw_redis_cache_ops: one PING on the link
 * arg, connecting first if needed; the command is bounded by
 * min(redis_timeout_ms, what is left). */
static enum bw_rc
ping_once(void *arg, int64_t deadline, struct bw_err *err)
{
	struct redis_link *l = arg;
	redisReply *reply;
	enum bw_rc rc = BW_ERR;
	bool reused, timed_out;
	int64_t now;
	int cmd_ms, saved;

	link_forget_foreign(l);
	reused = l->ctx != NULL;
	if (!reused) {
		int64_t ct = rd.cfg->connect_timeout_ms;
		now = bw_now_ms();
		if (ct > deadline - now)
			ct = deadline - now;
		if (link_connect(l, ct, err) < 0)
			return BW_ERR;
	}
	now = bw_now_ms();
	cmd_ms = rd.cfg->redis_timeout_ms;
	if (cmd_ms > deadline - now)
		cmd_ms = (int)(deadline - now);
	if (redisSetTimeout(l->ctx, ms_to_tv(cmd_ms)) != REDIS_OK) {
		bw_err_set(err, BW_ERR, "set timeout: %s", l->ctx->errstr);
		link_drop(l);
		return BW_ERR;
	}
	reply = redisCommand(l->ctx, "PING");
	saved = errno;
	if (reply == NULL) {
		/* hiredis 0.14 reports a socket timeout as an I/O error with
		 * EAGAIN left in errno. */
		timed_out =
		    l->ctx->err == REDIS_ERR_IO && (saved == EAGAIN || saved == EWOULDBLOCK);
		if (timed_out)
			bw_err_set(err, BW_ERR, "PING: timed out after %d ms", cmd_ms);
		else
			bw_err_set(err, BW_ERR, "PING: %s", l->ctx->errstr);
		link_drop(l);
		err->rc = reused && !timed_out ? BW_RETRY : BW_ERR;
		return err->rc;
	}
	/* Back to the command timeout for whatever uses the context next. */
	if (redisSetTimeout(l->ctx, ms_to_tv(rd.cfg->redis_timeout_ms)) != REDIS_OK) {
		bw_err_set(err, BW_ERR, "set timeout: %s", l->ctx->errstr);
		link_drop(l);
	} else if (reply->type != REDIS_REPLY_STATUS || strcmp(reply->str, "PONG") != 0) {
		/* An error reply (LOADING, NOAUTH…) on a healthy socket: down,
		 * but the connection stays. */
		bw_err_set(err, BW_ERR, "PING: %s",
		           reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
	} else {
		rc = BW_OK;
	}
	freeReplyObject(reply);
	return rc;
}

/* Deep copy of a hiredis reply into the arena. */
static struct bw_redis_reply *
copy_reply(struct bw_arena *a, const redisReply *r)
{
	struct bw_redis_reply *out = bw_arena_calloc(a, 1, sizeof(*out));

	if (out == NULL)
		return NULL;
	switch (r->type) {
	case REDIS_REPLY_INTEGER:
		out->type = BW_REDIS_INTEGER;
		out->integer = r->integer;
		break;
	case REDIS_REPLY_STRING:
	case REDIS_REPLY_STATUS:
	case REDIS_REPLY_ERROR:
		out->type = r->type == REDIS_REPLY_ERROR ? BW_REDIS_ERROR : BW_REDIS_STRING;
		out->str = bw_arena_strndup(a, r->str, r->len);
		out->len = r->len;
		if (out->str == NULL)
			return NULL;
		break;
	case REDIS_REPLY_ARRAY:
		out->type = BW_REDIS_ARRAY;
		out->n = r->elements;
		out->elem = bw_arena_calloc(a, r->elements ? r->elements : 1, sizeof(*out->elem));
		if (out->elem == NULL)
			return NULL;
		for (size_t i = 0; i < r->elements; i++) {
			struct bw_redis_reply *e = copy_reply(a, r->element[i]);
			if (e == NULL)
				return NULL;
			out->elem[i] = *e;
		}
		break;
	default:
		out->type = BW_REDIS_NIL;
		break;
	}
	return out;
}

/* One command on l with the link's command timeout. NULL on an I/O failure
 * (err filled, context dropped). */
static redisReply *
link_command(struct redis_link *l, int argc, const char **argv, struct bw_err *err)
{
	redisReply *r = redisCommandArgv(l->ctx, argc, argv, NULL);
	int saved = errno;

	if (r != NULL)
		return r;
	if (l->ctx->err == REDIS_ERR_IO && (saved == EAGAIN || saved == EWOULDBLOCK))
		bw_err_set(err, BW_ERR, "%s: timed out after %d ms", argv[0],
		           rd.cfg->redis_timeout_ms);
	else
		bw_err_set(err, BW_ERR, "%s: %s", argv[0], l->ctx->errstr);
	link_drop(l);
	return NULL;
}

static bool
function_missing(const redisReply *r)
{
	return r->type == REDIS_REPLY_ERROR && strstr(r->str, "Function not found") != NULL;
}

enum bw_rc
bw_redis_fcall(struct bw_arena *a, enum bw_dep dep, const char *fn, int nkeys,
               const char *const *keys, int nargs, const char *const *args,
               struct bw_redis_reply **out, struct bw_err *err)
{
	struct redis_link *l = link_of(dep);
	int64_t now = bw_now_ms();
	const char *argv[3 + BW_REDIS_MAX_KEYS + BW_REDIS_MAX_ARGS];
	char nk[16];
	redisReply *r = NULL;

	*out = NULL;
	bw_err_clear(err);
	if (rd.cfg == NULL || l == NULL || nkeys > BW_REDIS_MAX_KEYS || nargs > BW_REDIS_MAX_ARGS)
		return bw_err_set(err, BW_ERR, "%s: too many keys or arguments", fn);
	if (!bw_breaker_allow(&l->breaker, now)) {
		bw_err_set(err, BW_REFUSED, "breaker open");
		err->retry_after_ms = bw_breaker_retry_after_ms(&l->breaker, now);
		return BW_REFUSED;
	}
	link_forget_foreign(l);
	snprintf(nk, sizeof(nk), "%d", nkeys);
	int argc = 0;
	argv[argc++] = "FCALL";
	argv[argc++] = fn;
	argv[argc++] = nk;
	for (int i = 0; i < nkeys; i++)
		argv[argc++] = keys[i];
	for (int i = 0; i < nargs; i++)
		argv[argc++] = args[i];

	for (int attempt = 0; attempt < 2; attempt++) {
		bool reused = l->ctx != NULL;
		if (!reused) {
			if (link_connect(l, rd.cfg->connect_timeout_ms, err) < 0)
				goto fail;
		}
		r = link_command(l, argc, argv, err);
		if (r == NULL) {
			/* A kept connection may be stale after a server restart. */
			if (reused && attempt == 0)
				continue;
			goto fail;
		}
		if (!function_missing(r))
			break;
		freeReplyObject(r);
		r = NULL;
		const char *load[] = {"FUNCTION", "LOAD", "REPLACE", bw_lua_library};
		redisReply *lr = link_command(l, 4, load, err);
		if (lr == NULL)
			goto fail;
		bool failed = lr->type == REDIS_REPLY_ERROR;
		if (failed)
			bw_err_set(err, BW_ERR, "FUNCTION LOAD: %s", lr->str);
		freeReplyObject(lr);
		if (failed)
			goto fail;
		bw_info("%s: loaded the bulwark function library", l->name);
	}
	if (r == NULL) {
		bw_err_set(err, BW_ERR, "%s: function library could not be loaded", fn);
		goto fail;
	}
	*out = copy_reply(a, r);
	freeReplyObject(r);
	if (*out == NULL)
		return bw_err_set(err, BW_ERR, "out of memory");
	/* A stale connection's failure, replaced since, is no error of this call. */
	bw_err_clear(err);
	bw_breaker_note(&l->breaker, l->name, NULL);
	return BW_OK;
fail:
	bw_breaker_note(&l->breaker, l->name, err->message);
	err->retry_after_ms = bw_breaker_retry_after_ms(&l->breaker, bw_now_ms());
	return BW_ERR;
}

int64_t
bw_redis_retry_after_ms(enum bw_dep dep)
{
	struct redis_link *l = link_of(dep);

	return l != NULL ? bw_breaker_retry_after_ms(&l->breaker, bw_now_ms()) : 0;
}

const struct bw_breaker *
bw_redis_breaker(enum bw_dep dep)
{
	struct redis_link *l = link_of(dep);

	return l != NULL ? &l->breaker : NULL;
}

/* ---- the two dependencies ---- */

static void
link_init(struct redis_link *l, const char *name, const char *addr, const struct bw_config *cfg,
          int64_t max_cooldown_ms)
{
	rd.cfg = cfg;
	*l = (struct redis_link){.name = name, .addr = addr};
	bw_breaker_init(&l->breaker, cfg->breaker_threshold, cfg->breaker_cooldown_ms,
	                max_cooldown_ms);
}

static void
link_close(struct redis_link *l)
{
	link_forget_foreign(l);
	link_drop(l);
}

static void
redis_init(const struct bw_config *cfg, int64_t max_cooldown_ms)
{
	link_init(&rd.link[0], bw_redis_ops.name, cfg->redis, cfg, max_cooldown_ms);
}

static void
cache_init(const struct bw_config *cfg, int64_t max_cooldown_ms)
{
	const char *addr = cfg->redis_cache;

	/* Empty means "the same server": still a separate connection and
	 * breaker, so the two dependencies report independently. */
	if (addr == NULL || addr[0] == '\0')
		addr = cfg->redis;
	link_init(&rd.link[1], bw_redis_cache_ops.name, addr, cfg, max_cooldown_ms);
}

static void
redis_close(void)
{
	link_close(&rd.link[0]);
}

static void
cache_close(void)
{
	link_close(&rd.link[1]);
}

const struct bw_dep_ops bw_redis_ops = {
    .name = "redis",
    .init = redis_init,
    .close = redis_close,
    .ping = ping_once,
    .ping_arg = &rd.link[0],
    .breaker = &rd.link[0].breaker,
};

const struct bw_dep_ops bw_redis_cache_ops = {
    .name = "redis_cache",
    .init = cache_init,
    .close = cache_close,
    .ping = ping_once,
    .ping_arg = &rd.link[1],
    .breaker = &rd.link[1].breaker,
};

const char *
bw_redis_lib_version(void)
{
	return STR(HIREDIS_MAJOR) "." STR(HIREDIS_MINOR) "." STR(HIREDIS_PATCH);
}
