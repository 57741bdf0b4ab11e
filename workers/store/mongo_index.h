/* MongoDB indexes from the spec files of `bulwark migrate up`
 * (schema/mongo/NAME.json). The BSON work is done in store/mongo_index.c;
 * this interface speaks plain C, so the command line needs no libbson. */
#ifndef BW_MONGO_INDEX_H
#define BW_MONGO_INDEX_H

#include <stddef.h>

#include "core/err.h"
#include "core/rc.h"

struct bw_config;

/* Sets the MongoDB adapter up for index work. cfg must outlive it (spec
 * files name config keys); its mongo_timeout_ms bounds each socket read,
 * so it must be at least the timeout_ms given below. The breaker does not
 * back off further than breaker_cooldown_ms. No I/O. */
void bw_mongo_index_open(const struct bw_config *cfg);

/* Ensures the indexes of one spec file: {"collection": C, "indexes":
 * [{"name", "key", "ttl_days_key"?, any other createIndexes option}]},
 * where ttl_days_key names an integer config key whose value in days
 * becomes expireAfterSeconds. createIndexes (a no-op for indexes that
 * exist), then listIndexes to check each TTL, and collMod where one
 * differs. Each server call is bounded by timeout_ms. Sets *changed to the
 * number of indexes created or changed. BW_OK, or with err filled
 * (core/err.h): BW_ERR or BW_REFUSED when MongoDB is unavailable;
 * BW_INVALID for a bad spec or an index the server refuses or does not
 * apply. */
enum bw_rc bw_mongo_ensure_indexes(const char *spec, size_t len, int timeout_ms, int *changed,
                                   struct bw_err *err);

/* Closes the adapter (mongoc_cleanup): MongoDB cannot be used again in
 * this process. */
void bw_mongo_index_close(void);

#endif
