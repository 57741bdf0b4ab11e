/* BSON to JSON for readings read back from MongoDB: the inverse of the
 * validator for every type it writes (objects, arrays, strings, int32,
 * int64, doubles, booleans, null), so a reading comes back as it was sent
 * (a double stays a double: 1.0, not 1). Dates become RFC 3339 strings and
 * ObjectIds hex strings; any other type (none is ever written) is null. */
#ifndef BW_TELEMETRY_JSON_H
#define BW_TELEMETRY_JSON_H

#include <bson/bson.h>

#include "core/buf.h"

/* Writes doc as a JSON object. */
void bw_tel_json_object(struct bw_buf *b, const bson_t *doc);
/* Writes the value under the iterator. */
void bw_tel_json_value(struct bw_buf *b, const bson_iter_t *it);
/* The shortest decimal form that reads back as the same double, with ".0"
 * added to integral values; null for NaN and infinities. */
void bw_tel_json_double(struct bw_buf *b, double d);

#endif
