/* libFuzzer target for the telemetry validator (workers/api/telemetry_validate.c)
 * and the strict JSON reader under it (workers/core/json.c, json_tree.c).
 * Beyond "no crash, no leak, no UB" it checks what the daemon relies on:
 * - an accepted body gives 1..500 readings whose BSON passes libbson's own
 *   validation (UTF-8, no "$" / "." / empty keys), nests at most 32 levels
 *   and carries a ts inside the skew window;
 * - each accepted reading written back as JSON (telemetry_json.c) parses
 *   again to the very same BSON bytes;
 * - a refused body names a known code, a status of 400 or 413, a pointer
 *   and an offset inside the body;
 * - the same bytes read as a tree: what telemetry accepts reads too (one
 *   node per reading), and a refusal points inside the body.
 * Built with clang -fsanitize=fuzzer by tests/fuzz/run.sh; replayed over the
 * committed corpus by tests/fuzz/replay.c under `make check`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/telemetry_json.h"
#include "api/telemetry_validate.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/json_tree.h"

#define NOW_MS    1700000000000LL
#define PAST_MS   (7LL * 86400 * 1000)
#define FUTURE_MS (300LL * 1000)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
broken(const char *what)
{
	fprintf(stderr, "fuzz_telemetry: invariant broken: %s\n", what);
	abort();
}

static int
depth_of(bson_iter_t *it)
{
	int max = 0;

	while (bson_iter_next(it)) {
		bson_iter_t child;
		if (!BSON_ITER_HOLDS_DOCUMENT(it) && !BSON_ITER_HOLDS_ARRAY(it))
			continue;
		if (!bson_iter_recurse(it, &child))
			broken("bad nested document");
		int d = depth_of(&child);
		if (d > max)
			max = d;
	}
	return max + 1;
}

static const char *const codes[] = {"invalid_json", "invalid_reading", "clock_skew",
                                    "payload_too_large"};

static void
check_error(const struct bw_tel_error *e, size_t size)
{
	bool known = false;

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		known = known || (e->code != NULL && strcmp(e->code, codes[i]) == 0);
	if (!known)
		broken("unknown error code");
	if (e->status != 400 && e->status != 413)
		broken("status is neither 400 nor 413");
	if ((e->status == 413) != (strcmp(e->code, "payload_too_large") == 0))
		broken("413 and payload_too_large go together");
	if (e->pointer == NULL || (e->pointer[0] != '\0' && e->pointer[0] != '/'))
		broken("pointer is not an RFC 6901 pointer");
	if (e->offset > size)
		broken("offset past the end of the body");
	if (e->index < -1 || e->index > BW_TEL_MAX_READINGS)
		broken("index out of range");
	if (e->detail[0] == '\0')
		broken("empty detail");
}

static void
round_trip(const struct bw_tel_reading *r)
{
	struct bw_arena *a = bw_arena_new(65536);
	struct bw_tel_limits lim = {NOW_MS, PAST_MS, FUTURE_MS};
	struct bw_tel_reading *again;
	struct bw_tel_error err;
	struct bw_buf b;
	size_t n;

	if (a == NULL)
		broken("out of memory");
	bw_buf_init(&b, a);
	bw_tel_json_object(&b, r->data);
	/* Shortest doubles can still be longer than what was sent ("1E5"):
	 * a reading near the size limit may not fit once rewritten. */
	if (b.len <= BW_TEL_MAX_READING_BYTES) {
		if (bw_tel_parse(a, b.data, b.len, &lim, &again, &n, &err) != 0) {
			fprintf(stderr, "rewritten: %.300s\nerror: %s %s at %s\n", b.data, err.code,
			        err.detail, err.pointer);
			broken("a rewritten reading is refused");
		}
		if (n != 1 || !bson_equal(again[0].data, r->data))
			broken("a rewritten reading parses to other BSON");
		if (again[0].ts_ms != r->ts_ms || again[0].has_ts != r->has_ts)
			broken("a rewritten reading has another ts");
		if ((again[0].msg_id == NULL) != (r->msg_id == NULL) ||
		    (r->msg_id != NULL && strcmp(again[0].msg_id, r->msg_id) != 0))
			broken("a rewritten reading has another msg_id");
	}
	bw_arena_free(a);
}

/* The reader again, into the tree sink: n readings accepted (0: refused). */
static void
tree_agrees(const uint8_t *data, size_t size, size_t n)
{
	struct bw_arena *a = bw_arena_new(65536);
	struct bw_json_error e;
	const struct bw_json_node *t;

	if (a == NULL)
		broken("out of memory");
	/* A batch puts the readings one level down. */
	t = bw_json_tree(a, (const char *)data, size, BW_TEL_MAX_DEPTH + 1, true, &e);
	if (t == NULL && e.code == BW_JSON_ENOMEM)
		broken("the tree ran out of memory");
	if (t == NULL && (e.offset > size || (e.pointer_len > 0 && e.pointer[0] != '/')))
		broken("a tree error points outside the body");
	if (n > 0 && t == NULL)
		broken("the tree refuses a body telemetry accepts");
	if (n > 0 && (t->type == BW_JSON_ARRAY ? t->len : 1) != n)
		broken("the tree holds another number of readings");
	bw_arena_free(a);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bw_arena *a = bw_arena_new(65536);
	struct bw_tel_limits lim = {NOW_MS, PAST_MS, FUTURE_MS};
	struct bw_tel_reading *rs;
	struct bw_tel_error err;
	size_t n;

	if (a == NULL)
		return 0;
	if (bw_tel_parse(a, (const char *)data, size, &lim, &rs, &n, &err) != 0) {
		check_error(&err, size);
		tree_agrees(data, size, 0);
		bw_arena_free(a);
		return 0;
	}
	tree_agrees(data, size, n);
	if (n < 1 || n > BW_TEL_MAX_READINGS)
		broken("accepted a batch of a wrong size");
	for (size_t i = 0; i < n; i++) {
		size_t off;
		if (!bson_validate(rs[i].data,
		                   BSON_VALIDATE_UTF8 | BSON_VALIDATE_UTF8_ALLOW_NULL |
		                       BSON_VALIDATE_DOLLAR_KEYS | BSON_VALIDATE_DOT_KEYS |
		                       BSON_VALIDATE_EMPTY_KEYS,
		                   &off))
			broken("libbson refuses an accepted reading");
		bson_iter_t it;
		if (!bson_iter_init(&it, rs[i].data) || depth_of(&it) > BW_TEL_MAX_DEPTH)
			broken("an accepted reading nests too deep");
		if (rs[i].ts_ms < NOW_MS - PAST_MS || rs[i].ts_ms > NOW_MS + FUTURE_MS)
			broken("an accepted ts is outside the window");
		round_trip(&rs[i]);
	}
	bw_arena_free(a);
	return 0;
}
