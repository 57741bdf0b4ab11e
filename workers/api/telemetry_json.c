/* BSON to JSON for stored readings (see telemetry_json.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/telemetry_json.h"
#include "core/time.h"

void
bw_tel_json_double(struct bw_buf *b, double d)
{
	char s[40];

	if (!isfinite(d)) {
		bw_buf_puts(b, "null");
		return;
	}
	/* 17 significant digits always read back exactly; fewer usually do. */
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(s, sizeof(s), "%.*g", prec, d);
		if (prec == 17 || strtod(s, NULL) == d)
			break;
	}
	bw_buf_puts(b, s);
	if (strpbrk(s, ".eE") == NULL)
		bw_buf_puts(b, ".0");
}

static void
put_iter(struct bw_buf *b, bson_iter_t *it, bool array)
{
	bool first = true;

	bw_buf_putc(b, array ? '[' : '{');
	while (bson_iter_next(it)) {
		if (!first)
			bw_buf_putc(b, ',');
		first = false;
		if (!array) {
			bw_json_strn(b, bson_iter_key(it), bson_iter_key_len(it));
			bw_buf_putc(b, ':');
		}
		bw_tel_json_value(b, it);
	}
	bw_buf_putc(b, array ? ']' : '}');
}

void
bw_tel_json_value(struct bw_buf *b, const bson_iter_t *it)
{
	bson_iter_t child;
	uint32_t len;
	const char *s;
	char t[BW_TIME_LEN];

	switch (bson_iter_type(it)) {
	case BSON_TYPE_DOCUMENT:
	case BSON_TYPE_ARRAY:
		if (!bson_iter_recurse(it, &child)) {
			bw_buf_puts(b, "null");
			break;
		}
		put_iter(b, &child, bson_iter_type(it) == BSON_TYPE_ARRAY);
		break;
	case BSON_TYPE_UTF8:
		s = bson_iter_utf8(it, &len);
		bw_json_strn(b, s, len);
		break;
	case BSON_TYPE_INT32:
		bw_buf_printf(b, "%d", bson_iter_int32(it));
		break;
	case BSON_TYPE_INT64:
		bw_buf_printf(b, "%lld", (long long)bson_iter_int64(it));
		break;
	case BSON_TYPE_DOUBLE:
		bw_tel_json_double(b, bson_iter_double(it));
		break;
	case BSON_TYPE_BOOL:
		bw_buf_puts(b, bson_iter_bool(it) ? "true" : "false");
		break;
	case BSON_TYPE_DATE_TIME:
		bw_time_format(bson_iter_date_time(it), t);
		bw_json_str(b, t);
		break;
	case BSON_TYPE_OID: {
		char hex[25];
		bson_oid_to_string(bson_iter_oid(it), hex);
		bw_json_str(b, hex);
		break;
	}
	default:
		bw_buf_puts(b, "null");
		break;
	}
}

void
bw_tel_json_object(struct bw_buf *b, const bson_t *doc)
{
	bson_iter_t it;

	if (!bson_iter_init(&it, doc)) {
		bw_buf_puts(b, "null");
		return;
	}
	put_iter(b, &it, false);
}
