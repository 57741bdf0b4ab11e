/* MongoDB indexes for `bulwark migrate up`: a spec file (JSON) becomes
 * createIndexes, listIndexes and collMod commands, run through the
 * adapter's bw_mongo_command. All of its BSON work stays here, in store/. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <bson/bson.h>

#include "core/config.h"
#include "store/mongo.h"
#include "store/mongo_index.h"

static struct {
	const struct bw_config *cfg; /* for ttl_days_key */
} ix;

void
bw_mongo_index_open(const struct bw_config *cfg)
{
	ix.cfg = cfg;
	/* A command that gives up at the first outage: no growing backoff. */
	bw_mongo_init(cfg, cfg->breaker_cooldown_ms);
}

void
bw_mongo_index_close(void)
{
	bw_mongo_close();
	ix.cfg = NULL;
}

/* An integer config key by name (for ttl_days_key), or -1. */
static int64_t
config_int(const char *name)
{
	for (size_t i = 0; i < bw_config_nkeys; i++) {
		const struct bw_config_key *k = &bw_config_keys[i];
		const char *field = (const char *)ix.cfg + k->offset;
		if (strcmp(k->name, name) != 0)
			continue;
		if (k->type == BW_CONF_INT)
			return *(const int *)field;
		if (k->type == BW_CONF_LONG || k->type == BW_CONF_SIZE)
			return *(const long *)field;
	}
	return -1;
}

/* The expireAfterSeconds of index name on coll: -1 when it has none, -2
 * when there is no such index. */
static enum bw_rc
index_ttl(const char *coll, const char *name, int timeout_ms, int64_t *ttl, struct bw_err *err)
{
	bson_t *cmd = BCON_NEW("listIndexes", BCON_UTF8(coll));
	bson_t reply;
	bson_iter_t it, idx, f;
	enum bw_rc rc = bw_mongo_command(cmd, &reply, timeout_ms, err);

	*ttl = -2;
	if (rc == BW_OK && bson_iter_init(&it, &reply) &&
	    bson_iter_find_descendant(&it, "cursor.firstBatch", &idx) &&
	    BSON_ITER_HOLDS_ARRAY(&idx) && bson_iter_recurse(&idx, &it))
		while (bson_iter_next(&it)) {
			if (!BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &f) ||
			    !bson_iter_find(&f, "name") || !BSON_ITER_HOLDS_UTF8(&f) ||
			    strcmp(bson_iter_utf8(&f, NULL), name) != 0)
				continue;
			*ttl = -1;
			bson_iter_recurse(&it, &f);
			if (bson_iter_find(&f, "expireAfterSeconds"))
				*ttl = bson_iter_as_int64(&f);
		}
	bson_destroy(cmd);
	bson_destroy(&reply);
	return rc;
}

struct ttl_want {
	const char *name;
	int32_t seconds;
};

/* Builds createIndexes from the spec; fills wants (at most nwant). -1
 * with err filled (BW_INVALID) for a bad spec. */
static int
build_create(const bson_t *spec, bson_t *cmd, const char **coll, struct ttl_want *wants,
             size_t nwant, size_t *nttl, struct bw_err *err)
{
	bson_iter_t it, list, one, f;
	bson_t arr, doc;
	char numbuf[16];
	const char *key;
	uint32_t i = 0;

	*nttl = 0;
	if (!bson_iter_init_find(&it, spec, "collection") || !BSON_ITER_HOLDS_UTF8(&it)) {
		bw_err_set(err, BW_INVALID, "\"collection\" must be a string");
		return -1;
	}
	*coll = bson_iter_utf8(&it, NULL);
	if (!bson_iter_init_find(&list, spec, "indexes") || !BSON_ITER_HOLDS_ARRAY(&list) ||
	    !bson_iter_recurse(&list, &one)) {
		bw_err_set(err, BW_INVALID, "\"indexes\" must be an array");
		return -1;
	}
	BSON_APPEND_UTF8(cmd, "createIndexes", *coll);
	BSON_APPEND_ARRAY_BEGIN(cmd, "indexes", &arr);
	for (; bson_iter_next(&one); i++) {
		const char *name = NULL;
		if (!BSON_ITER_HOLDS_DOCUMENT(&one) || !bson_iter_recurse(&one, &f)) {
			bw_err_set(err, BW_INVALID, "indexes[%u] must be an object", i);
			goto fail;
		}
		bson_uint32_to_string(i, &key, numbuf, sizeof(numbuf));
		BSON_APPEND_DOCUMENT_BEGIN(&arr, key, &doc);
		while (bson_iter_next(&f)) {
			if (strcmp(bson_iter_key(&f), "ttl_days_key") != 0) {
				if (strcmp(bson_iter_key(&f), "name") == 0 &&
				    BSON_ITER_HOLDS_UTF8(&f))
					name = bson_iter_utf8(&f, NULL);
				bson_append_iter(&doc, NULL, 0, &f);
				continue;
			}
			int64_t days =
			    BSON_ITER_HOLDS_UTF8(&f) ? config_int(bson_iter_utf8(&f, NULL)) : -1;
			/* MongoDB keeps expireAfterSeconds in an int32. */
			if (days < 0 || days > INT32_MAX / 86400) {
				bw_err_set(
				    err, BW_INVALID,
				    "indexes[%u].ttl_days_key: not an integer key of 0 to %d days",
				    i, INT32_MAX / 86400);
				bson_append_document_end(&arr, &doc);
				goto fail;
			}
			BSON_APPEND_INT32(&doc, "expireAfterSeconds", (int32_t)(days * 86400));
			if (*nttl < nwant)
				wants[(*nttl)++] = (struct ttl_want){NULL, (int32_t)(days * 86400)};
		}
		bson_append_document_end(&arr, &doc);
		if (name == NULL) {
			bw_err_set(err, BW_INVALID, "indexes[%u].name must be a string", i);
			goto fail;
		}
		if (*nttl > 0 && wants[*nttl - 1].name == NULL)
			wants[*nttl - 1].name = name;
	}
	bson_append_array_end(cmd, &arr);
	return 0;
fail:
	bson_append_array_end(cmd, &arr);
	return -1;
}

static enum bw_rc
set_ttl(const char *coll, const struct ttl_want *w, int timeout_ms, struct bw_err *err)
{
	bson_t *cmd = BCON_NEW("collMod", BCON_UTF8(coll), "index", "{", "name", BCON_UTF8(w->name),
	                       "expireAfterSeconds", BCON_INT32(w->seconds), "}");
	bson_t reply;
	enum bw_rc rc = bw_mongo_command(cmd, &reply, timeout_ms, err);

	bson_destroy(cmd);
	bson_destroy(&reply);
	return rc;
}

enum bw_rc
bw_mongo_ensure_indexes(const char *spec, size_t len, int timeout_ms, int *changed,
                        struct bw_err *err)
{
	bson_t doc = BSON_INITIALIZER, cmd = BSON_INITIALIZER, reply = BSON_INITIALIZER;
	struct ttl_want wants[16];
	const char *coll = NULL;
	size_t nttl = 0;
	bson_error_t e;
	bson_iter_t it;
	enum bw_rc rc = BW_INVALID;
	int64_t ttl, before = 0, after = 0;

	*changed = 0;
	bw_err_clear(err);
	if (!bson_init_from_json(&doc, spec, (ssize_t)len, &e)) {
		bw_err_set(err, BW_INVALID, "not JSON: %s", e.message);
		goto done;
	}
	if (build_create(&doc, &cmd, &coll, wants, 16, &nttl, err) < 0)
		goto done;
	bson_destroy(&reply);
	rc = bw_mongo_command(&cmd, &reply, timeout_ms, err);
	/* IndexOptionsConflict / IndexKeySpecsConflict: an index of that name
	 * exists with another TTL; change it in place, then try again. */
	if (rc != BW_OK && (strcmp(err->code, "85") == 0 || strcmp(err->code, "86") == 0)) {
		for (size_t i = 0; i < nttl; i++)
			if (set_ttl(coll, &wants[i], timeout_ms, err) == BW_OK)
				(*changed)++;
		bson_destroy(&reply);
		rc = bw_mongo_command(&cmd, &reply, timeout_ms, err);
	}
	if (rc != BW_OK)
		goto done;
	if (bson_iter_init_find(&it, &reply, "numIndexesBefore"))
		before = bson_iter_as_int64(&it);
	if (bson_iter_init_find(&it, &reply, "numIndexesAfter"))
		after = bson_iter_as_int64(&it);
	if (after > before)
		*changed += (int)(after - before);
	/* Some servers (jongodb) accept a changed TTL silently: check it. */
	for (size_t i = 0; i < nttl; i++) {
		rc = index_ttl(coll, wants[i].name, timeout_ms, &ttl, err);
		if (rc == BW_OK && ttl != wants[i].seconds) {
			rc = set_ttl(coll, &wants[i], timeout_ms, err);
			if (rc == BW_OK)
				rc = index_ttl(coll, wants[i].name, timeout_ms, &ttl, err);
			if (rc == BW_OK && ttl != wants[i].seconds) {
				rc = bw_err_set(
				    err, BW_INVALID,
				    "index %s.%s keeps expireAfterSeconds %lld instead of %d", coll,
				    wants[i].name, (long long)ttl, wants[i].seconds);
			} else if (rc != BW_OK) {
				size_t l = strlen(err->message);
				snprintf(err->message + l, sizeof(err->message) - l,
				         " (changing the TTL of %s.%s)", coll, wants[i].name);
			}
			if (rc == BW_OK)
				(*changed)++;
		}
		if (rc != BW_OK)
			goto done;
	}
	rc = BW_OK;
done:
	bson_destroy(&doc);
	bson_destroy(&cmd);
	bson_destroy(&reply);
	return rc;
}
