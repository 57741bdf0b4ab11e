/* bulwark tenant create NAME [--rate R --burst B]
 * bulwark key create --tenant ID [--scopes a,b] [--rate R --burst B]
 * bulwark key revoke KEY_ID
 * They connect as the schema owner (postgres_owner) and still set
 * bulwark.tenant_id / bulwark.key_id, so they work under FORCE row-level
 * security for a non-superuser owner too. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "api/keys.h"
#include "cli/cli.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/log.h"
#include "core/secret.h"
#include "store/pg.h"
#include "store/store.h"

#define DEFAULT_RATE  "100"
#define DEFAULT_BURST "200"

struct cli {
	struct bw_config cfg;
	struct bw_arena *arena;
	bool loaded;
};

static int
cli_open(struct cli *c, const char *file)
{
	char err[512];

	memset(c, 0, sizeof(*c));
	if (bw_config_load(&c->cfg, file, err, sizeof(err)) < 0) {
		fprintf(stderr, "bulwark: %s\n", err);
		return EX_CONFIG;
	}
	c->loaded = true;
	/* A command prints its result; the store's info lines are noise here. */
	bw_log_setup(c->cfg.log_level > BW_LOG_WARN ? c->cfg.log_level : BW_LOG_WARN, NULL);
	c->arena = bw_arena_new(8192);
	if (c->arena == NULL || bw_store_init(&c->cfg) < 0) {
		fprintf(stderr, "bulwark: out of memory\n");
		return 1;
	}
	bw_pg_use_conninfo(c->cfg.postgres_owner);
	return 0;
}

static void
cli_close(struct cli *c)
{
	bw_store_close();
	bw_arena_free(c->arena);
	if (c->loaded)
		bw_config_free(&c->cfg);
}

/* A rate: a decimal > 0 with at most 3 decimals, up to 1e6 per second. */
static bool
valid_rate(const char *s)
{
	char *end;
	const char *dot = strchr(s, '.');
	double v = strtod(s, &end);

	if (*s == '\0' || *end != '\0' || strspn(s, "0123456789.") != strlen(s))
		return false;
	if (dot != NULL && strlen(dot + 1) > 3)
		return false;
	return v >= 0.001 && v <= 1000000;
}

static bool
valid_burst(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);
	return *s != '\0' && *end == '\0' && v >= 1 && v <= 1000000;
}

static int
query(struct cli *c, const char *sql, int n, const char *const *params, struct bw_pg_result *r)
{
	struct bw_err e;

	if (bw_pg_query(c->arena, sql, n, params, 0, r, &e) == 0)
		return 0;
	fprintf(stderr, "bulwark: postgres: %s%s%s\n", e.message, e.code[0] != '\0' ? " " : "",
	        e.code);
	return -1;
}

/* query() for a statement of one parameter that must find one row: else
 * "no WHAT PARAM" on stderr. */
static int
query_one(struct cli *c, const char *sql, const char *param, struct bw_pg_result *r,
          const char *what)
{
	const char *p[] = {param};

	if (query(c, sql, 1, p, r) < 0)
		return -1;
	if (r->nrows != 1) {
		fprintf(stderr, "bulwark: no %s %s\n", what, param);
		return -1;
	}
	return 0;
}

/* Inserts a key for tenant inside the caller's transaction and prints
 * {tenant_id, key_id, api_key}. */
static int
insert_key(struct cli *c, const char *tenant, const char *scopes, const char *rate,
           const char *burst)
{
	struct bw_pg_result r;
	char id[BW_KEY_ID_LEN + 1], secret[BW_SECRET_B64_LEN + 1], sha[BW_SHA256_HEX_LEN + 1];
	struct bw_err err;

	if (bw_key_generate(id, secret) < 0) {
		fprintf(stderr, "bulwark: no randomness from the kernel\n");
		return -1;
	}
	bw_sha256_hex(secret, strlen(secret), sha);
	const char *p[] = {id, tenant, sha, scopes, rate, burst};
	if (query(c,
	          "INSERT INTO api_keys (key_id, tenant_id, secret_sha256, scopes, rate, burst) "
	          "VALUES ($1, $2, decode($3, 'hex'), string_to_array($4, ','), $5, $6)",
	          6, p, &r) < 0 ||
	    query(c, "COMMIT", 0, NULL, &r) < 0)
		return -1;
	/* Not fatal: the negative cache entry expires by itself. */
	if (bw_keys_created(c->arena, id, &err) < 0)
		fprintf(stderr, "bulwark: redis: %s\n", err.message);
	struct bw_buf out;
	bw_buf_init(&out, c->arena);
	bw_buf_puts(&out, "{");
	bw_json_kv_str(&out, "tenant_id", tenant, true);
	bw_json_kv_str(&out, "key_id", id, false);
	bw_json_kv_str(&out, "api_key", bw_arena_printf(c->arena, "bk_%s_%s", id, secret), false);
	bw_buf_puts(&out, "}\n");
	fputs(bw_buf_cstr(&out), stdout);
	return 0;
}

static const struct option policy_opts[] = {
    {"rate", required_argument, NULL, 'r'},   {"burst", required_argument, NULL, 'b'},
    {"tenant", required_argument, NULL, 't'}, {"scopes", required_argument, NULL, 's'},
    {"config", required_argument, NULL, 'c'}, {NULL, 0, NULL, 0},
};

struct opts {
	const char *rate, *burst, *tenant, *scopes, *config;
	const char *arg; /* the operand: NAME or KEY_ID */
};

static int
parse_opts(int argc, char **argv, struct opts *o)
{
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:", policy_opts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			o->rate = optarg;
			break;
		case 'b':
			o->burst = optarg;
			break;
		case 't':
			o->tenant = optarg;
			break;
		case 's':
			o->scopes = optarg;
			break;
		case 'c':
			o->config = optarg;
			break;
		default:
			return -1;
		}
	}
	if (o->rate != NULL && !valid_rate(o->rate)) {
		fprintf(stderr,
		        "bulwark: --rate: a number of requests per second, 0.001 to 1000000, "
		        "at most 3 decimals (got \"%s\")\n",
		        o->rate);
		return -1;
	}
	if (o->burst != NULL && !valid_burst(o->burst)) {
		fprintf(stderr, "bulwark: --burst: an integer from 1 to 1000000 (got \"%s\")\n",
		        o->burst);
		return -1;
	}
	if (o->scopes != NULL && !bw_scopes_valid(o->scopes)) {
		char names[128];
		bw_scopes_join(names, sizeof(names), ", ");
		fprintf(stderr, "bulwark: --scopes: a comma list of %s (got \"%s\")\n", names,
		        o->scopes);
		return -1;
	}
	return 0;
}

/* The work of one command inside its transaction. Returns 0 when done,
 * having printed the result; else the error has been printed. */
typedef int (*command_fn)(struct cli *c, const char *setting_value, const struct opts *o);

/* Loads the configuration, connects as the schema owner, and runs fn in a
 * transaction whose row-level security setting (bulwark.tenant_id or
 * bulwark.key_id) is value, or a new tenant id when value is NULL. Returns
 * the exit status. */
static int
run_command(const struct opts *o, const char *setting, const char *value, command_fn fn)
{
	struct cli c;
	struct bw_pg_result r;
	const char *p[] = {setting, value};
	int rc = cli_open(&c, o->config);

	if (rc != 0)
		goto out;
	rc = 1;
	if (query(&c, "BEGIN", 0, NULL, &r) < 0 ||
	    query(&c, "SELECT set_config($1, coalesce($2, gen_random_uuid()::text), true)", 2, p,
	          &r) < 0)
		goto out;
	if (fn(&c, bw_arena_strdup(c.arena, bw_pg_get(&r, 0, 0)), o) == 0)
		rc = 0;
out:
	cli_close(&c);
	return rc;
}

static int
tenant_create(struct cli *c, const char *tenant, const struct opts *o)
{
	struct bw_pg_result r;
	char scopes[128];
	const char *rate = o->rate ? o->rate : DEFAULT_RATE;
	const char *burst = o->burst ? o->burst : DEFAULT_BURST;
	const char *p[] = {tenant, o->arg, rate, burst};

	bw_scopes_join(scopes, sizeof(scopes), ",");
	if (query(c, "INSERT INTO tenants (id, name, rate, burst) VALUES ($1, $2, $3, $4)", 4, p,
	          &r) < 0)
		return -1;
	return insert_key(c, tenant, scopes, rate, burst);
}

int
bw_cmd_tenant(int argc, char **argv)
{
	struct opts o = {0};

	if (argc < 3 || strcmp(argv[1], "create") != 0 || parse_opts(argc - 1, argv + 1, &o) < 0 ||
	    optind != argc - 2) {
		fprintf(stderr,
		        "usage: bulwark tenant create NAME [--rate R --burst B] [-c FILE]\n");
		return EX_USAGE;
	}
	o.arg = argv[argc - 1];
	if (strlen(o.arg) < 1 || strlen(o.arg) > 200) {
		fprintf(stderr, "bulwark: NAME: 1 to 200 characters\n");
		return EX_USAGE;
	}
	return run_command(&o, "bulwark.tenant_id", NULL, tenant_create);
}

static int
key_create_in(struct cli *c, const char *tenant, const struct opts *o)
{
	struct bw_pg_result r;
	char scopes[128];

	if (query_one(c,
	              "SELECT rate::text, burst::text FROM tenants "
	              "WHERE $1 ~ '^[0-9a-fA-F-]{36}$' AND id = $1::uuid",
	              tenant, &r, "tenant") < 0)
		return -1;
	bw_scopes_join(scopes, sizeof(scopes), ",");
	return insert_key(c, tenant, o->scopes ? o->scopes : scopes,
	                  o->rate ? o->rate : bw_pg_get(&r, 0, 0),
	                  o->burst ? o->burst : bw_pg_get(&r, 0, 1));
}

static int
key_create(int argc, char **argv)
{
	struct opts o = {0};

	if (parse_opts(argc, argv, &o) < 0 || optind != argc || o.tenant == NULL) {
		fprintf(stderr, "usage: bulwark key create --tenant ID [--scopes a,b] [--rate R "
		                "--burst B] [-c FILE]\n");
		return EX_USAGE;
	}
	return run_command(&o, "bulwark.tenant_id", o.tenant, key_create_in);
}

static int
key_revoke_in(struct cli *c, const char *id, const struct opts *o)
{
	struct bw_pg_result r;
	struct bw_err err;

	if (query_one(
	        c,
	        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE key_id = $1 "
	        "RETURNING to_char(revoked_at AT TIME ZONE 'UTC', "
	        "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
	        id, &r, "key") < 0)
		return -1;
	const char *at = bw_arena_strdup(c->arena, bw_pg_get(&r, 0, 0));
	if (query(c, "COMMIT", 0, NULL, &r) < 0)
		return -1;
	/* Without the tombstone a cached record would stay valid until it
	 * expires: fail loudly, and a second run repeats it. */
	if (bw_keys_revoke(c->arena, id, c->cfg.revoked_ttl_s, &err) < 0) {
		fprintf(stderr, "bulwark: redis: %s\n", err.message);
		fprintf(stderr, "bulwark: revoked in PostgreSQL, but the cached key could not be "
		                "invalidated; run the command again\n");
		return -1;
	}
	printf("{\"key_id\":\"%s\",\"revoked_at\":\"%s\"}\n", id, at);
	return 0;
}

static int
key_revoke(int argc, char **argv)
{
	struct opts o = {0};

	if (parse_opts(argc, argv, &o) < 0 || optind != argc - 1) {
		fprintf(stderr, "usage: bulwark key revoke KEY_ID [-c FILE]\n");
		return EX_USAGE;
	}
	const char *id = argv[argc - 1];
	char buf[64];
	const char *pid, *psecret;
	/* Same shape check as a presented key, with a dummy secret. */
	snprintf(buf, sizeof(buf), "bk_%.40s_x", id);
	if (strlen(id) > 32 || !bw_key_parse(buf, buf, sizeof(buf), &pid, &psecret)) {
		fprintf(stderr, "bulwark: KEY_ID: 8 to 32 characters of a-z and 0-9 (got \"%s\")\n",
		        id);
		return EX_USAGE;
	}
	return run_command(&o, "bulwark.key_id", id, key_revoke_in);
}

int
bw_cmd_key(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "create") == 0)
		return key_create(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "revoke") == 0)
		return key_revoke(argc - 1, argv + 1);
	fprintf(stderr,
	        "usage: bulwark key create --tenant ID [--scopes a,b] [--rate R --burst B]\n"
	        "       bulwark key revoke KEY_ID\n");
	return EX_USAGE;
}
