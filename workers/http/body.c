/* JSON bodies of the plain API routes (body.h): read by the strict reader
 * into a tree in the request arena, then held to the routes' rules. */
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/json_tree.h"
#include "http/body.h"
#include "http/response.h"

/* As deep as bodies were ever read (libbson's limit, the reader before
 * this one): no body that was taken is refused for its depth. */
#define BODY_MAX_DEPTH 99

struct bw_body {
	const struct bw_json_node *root;
};

/* A member name the API does not take anywhere in the body: "$…" (what
 * MongoDB reads as an operator or extended JSON) or one holding NUL. */
static const char *
bad_name(const struct bw_json_node *v)
{
	for (const struct bw_json_node *c = v->child; c != NULL; c = c->next) {
		if (v->type == BW_JSON_OBJECT && c->name_len > 0 && c->name[0] == '$')
			return "member names may not start with $";
		if (v->type == BW_JSON_OBJECT && memchr(c->name, '\0', c->name_len) != NULL)
			return "member names may not hold NUL";
		const char *why = bad_name(c);
		if (why != NULL)
			return why;
	}
	return NULL;
}

static bool
allowed_key(const char *key, const char *const *allowed)
{
	for (; *allowed != NULL; allowed++)
		if (strcmp(key, *allowed) == 0)
			return true;
	return false;
}

struct bw_body *
bw_body_parse(struct bw_request *req, const char *const *allowed)
{
	const char *text = req->body != NULL ? req->body : "";
	size_t len = req->body != NULL ? req->body_len : 0, i = 0;
	struct bw_json_error err;

	while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
		i++;
	if (i >= len || text[i] != '{') {
		bw_resp_problem(req, 400, "invalid_json", "the body must be a JSON object");
		return NULL;
	}
	struct bw_body *b = bw_arena_alloc(req->arena, sizeof(*b));
	if (b == NULL ||
	    (b->root = bw_json_tree(req->arena, text, len, BODY_MAX_DEPTH, false, &err)) == NULL) {
		if (b == NULL || err.code == BW_JSON_ENOMEM)
			bw_resp_problem(req, 500, "internal_error", "out of memory");
		else
			bw_resp_problem(req, 400, "invalid_json", "the body is not %s JSON: %s",
			                err.code == BW_JSON_ESYNTAX ? "valid" : "acceptable",
			                err.detail);
		return NULL;
	}
	const char *why = bad_name(b->root);
	if (why != NULL) {
		bw_resp_problem(req, 400, "invalid_json", "the body is not acceptable JSON: %s",
		                why);
		return NULL;
	}
	/* In the order written: the first unknown or repeated member is named.
	 * Members before it are distinct known ones, so the search for an
	 * earlier one of the same name is short. */
	for (const struct bw_json_node *m = b->root->child; m != NULL; m = m->next) {
		if (!allowed_key(m->name, allowed)) {
			bw_resp_problem_member(req, 400, "unknown_field", m->name,
			                       "unknown member \"%s\"", m->name);
			return NULL;
		}
		if (bw_json_member(b->root, m->name) != m) {
			bw_resp_problem(req, 400, "invalid_json", "member \"%s\" appears twice",
			                m->name);
			return NULL;
		}
	}
	return b;
}

struct bw_body_value
bw_body_get(const struct bw_body *b, const char *key)
{
	struct bw_body_value v = {.type = BW_BODY_ABSENT};
	const struct bw_json_node *m = bw_json_member(b->root, key);

	if (m == NULL)
		return v;
	switch (m->type) {
	case BW_JSON_NULL:
		v.type = BW_BODY_NULL;
		break;
	case BW_JSON_STRING:
		v.type = memchr(m->str, '\0', m->len) == NULL ? BW_BODY_STRING : BW_BODY_OTHER;
		v.str = m->str;
		v.len = m->len;
		break;
	case BW_JSON_INTEGER:
		v.type = BW_BODY_INTEGER;
		v.integer = m->integer;
		break;
	case BW_JSON_BOOL:
		v.type = BW_BODY_BOOL;
		v.boolean = m->boolean;
		break;
	case BW_JSON_REAL:
	case BW_JSON_ARRAY:
	case BW_JSON_OBJECT:
		v.type = BW_BODY_OTHER;
		break;
	}
	return v;
}
