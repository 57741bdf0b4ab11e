#include <bson/bson.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "http/body.h"
#include "http/response.h"

/* bson_t wants 128-byte alignment: it lives on the heap, the arena frees it. */
struct bw_body {
	bson_t *doc;
};

static void
destroy(void *p)
{
	bson_destroy(p);
}

static bool
allowed_key(const char *key, const char *const *allowed)
{
	for (; *allowed != NULL; allowed++)
		if (strcmp(key, *allowed) == 0)
			return true;
	return false;
}

/* What libbson would take but we must not: integer literals it would wrap
 * instead of refusing (more than 19 digits), and member names starting with
 * '$', which it reads as extended JSON ({"$numberLong": "5"} is a number to
 * it). A lexical pass over the text; the parse proper is libbson's. */
static const char *
lexical_check(const char *p, size_t n)
{
	size_t digits = 0;
	bool in_number = false;

	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '"') {
			size_t start = ++i;
			while (i < n && p[i] != '"')
				i += p[i] == '\\' ? 2 : 1;
			size_t j = i + 1;
			while (j < n &&
			       (p[j] == ' ' || p[j] == '\t' || p[j] == '\r' || p[j] == '\n'))
				j++;
			if (j < n && p[j] == ':' && start < n && p[start] == '$')
				return "member names may not start with $";
			in_number = false;
			continue;
		}
		if (c >= '0' && c <= '9') {
			if (!in_number)
				digits = 0;
			in_number = true;
			if (++digits > 19)
				return "a number is out of range";
			continue;
		}
		/* A fraction or exponent starts a new run; the type check rejects those. */
		in_number = false;
	}
	return NULL;
}

struct bw_body *
bw_body_parse(struct bw_request *req, const char *const *allowed)
{
	bson_error_t err;
	bson_iter_t it;
	const char *p = req->body != NULL ? req->body : "";

	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	/* libbson takes an array as a document with keys "0", "1", …: refuse it here. */
	if (*p != '{') {
		bw_resp_problem(req, 400, "invalid_json", "the body must be a JSON object");
		return NULL;
	}
	const char *why = lexical_check(req->body, req->body_len);
	if (why != NULL) {
		bw_resp_problem(req, 400, "invalid_json", "the body is not acceptable JSON: %s",
		                why);
		return NULL;
	}
	struct bw_body *b = bw_arena_alloc(req->arena, sizeof(*b));
	if (b == NULL)
		return NULL;
	b->doc = bson_new_from_json((const uint8_t *)req->body, (ssize_t)req->body_len, &err);
	if (b->doc == NULL) {
		bw_resp_problem(req, 400, "invalid_json", "the body is not valid JSON: %s",
		                err.message);
		return NULL;
	}
	if (bw_arena_defer(req->arena, destroy, b->doc) < 0) {
		bson_destroy(b->doc);
		return NULL;
	}
	if (!bson_iter_init(&it, b->doc))
		goto bad;
	while (bson_iter_next(&it)) {
		const char *key = bson_iter_key(&it);
		bson_iter_t dup;
		if (!allowed_key(key, allowed)) {
			struct bw_buf ptr;
			bw_buf_init(&ptr, req->arena);
			bw_json_key(&ptr, "pointer", true);
			bw_json_str(&ptr, bw_arena_printf(req->arena, "/%s", key));
			bw_resp_problem_ex(req, 400, "unknown_field", bw_buf_cstr(&ptr),
			                   "unknown member \"%s\"", key);
			return NULL;
		}
		/* libbson keeps duplicates; the first would silently lose to the last. */
		if (bson_iter_init_find(&dup, b->doc, key) &&
		    bson_iter_offset(&dup) != bson_iter_offset(&it)) {
			bw_resp_problem(req, 400, "invalid_json", "member \"%s\" appears twice",
			                key);
			return NULL;
		}
	}
	return b;
bad:
	bw_resp_problem(req, 400, "invalid_json", "the body is not valid JSON");
	return NULL;
}

struct bw_body_value
bw_body_get(const struct bw_body *b, const char *key)
{
	struct bw_body_value v = {.type = BW_BODY_ABSENT};
	bson_iter_t it;
	uint32_t len;

	if (!bson_iter_init_find(&it, b->doc, key))
		return v;
	switch (bson_iter_type(&it)) {
	case BSON_TYPE_NULL:
		v.type = BW_BODY_NULL;
		break;
	case BSON_TYPE_UTF8:
		v.str = bson_iter_utf8(&it, &len);
		v.type = strlen(v.str) == len ? BW_BODY_STRING : BW_BODY_OTHER;
		break;
	case BSON_TYPE_INT32:
		v.type = BW_BODY_INTEGER;
		v.integer = bson_iter_int32(&it);
		break;
	case BSON_TYPE_INT64:
		v.type = BW_BODY_INTEGER;
		v.integer = bson_iter_int64(&it);
		break;
	case BSON_TYPE_BOOL:
		v.type = BW_BODY_BOOL;
		v.boolean = bson_iter_bool(&it);
		break;
	default:
		v.type = BW_BODY_OTHER;
		break;
	}
	return v;
}
