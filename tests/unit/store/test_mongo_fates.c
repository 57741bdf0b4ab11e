/* Unit tests of workers/store/mongo.c (included here for its statics):
 * the fate of each reading of a telemetry bulk write, read from the
 * server's reply by read_bulk_reply. jongodb answers only some of these
 * shapes; the replies below are MongoDB's: partial success with
 * duplicate-key write errors, a write concern error after the writes, a
 * connection lost between two batches of one bulk. */
#include "../unit.h"

#include "../../../workers/store/mongo.c"

#define S BW_MONGO_STORED
#define D BW_MONGO_DUPLICATE
#define U BW_MONGO_UNKNOWN
#define F BW_MONGO_FAILED

static bool wc_error;
static size_t hard;
static enum bw_mongo_fate fates[8];

static bool
read_reply(bson_t *reply, size_t n, bool insert)
{
	for (size_t i = 0; i < n; i++)
		fates[i] = BW_MONGO_UNKNOWN;
	bool answered = read_bulk_reply(reply, n, insert, &wc_error, &hard, fates);
	bson_destroy(reply);
	return answered;
}

static void
expect(size_t n, const enum bw_mongo_fate *want)
{
	for (size_t i = 0; i < n; i++)
		if (fates[i] != want[i])
			fail_msg("reading %zu: fate %d, want %d", i, fates[i], want[i]);
}

static void
test_upserts_all_new(void **state)
{
	bson_t *r = BCON_NEW("nMatched", BCON_INT32(0), "nUpserted", BCON_INT32(3), "upserted", "[",
	                     "{", "index", BCON_INT32(0), "}", "{", "index", BCON_INT32(1), "}",
	                     "{", "index", BCON_INT32(2), "}", "]", "writeErrors", "[", "]");
	assert_true(read_reply(r, 3, false));
	expect(3, (enum bw_mongo_fate[]){S, S, S});
	assert_false(wc_error);
	assert_int_equal(hard, 0);
}

static void
test_upserts_some_existing(void **state)
{
	/* What was not upserted matched a document that was already there. */
	bson_t *r =
	    BCON_NEW("nMatched", BCON_INT32(2), "nUpserted", BCON_INT32(2), "upserted", "[", "{",
	             "index", BCON_INT32(1), "}", "{", "index", BCON_INT64(3), "}", "]");
	assert_true(read_reply(r, 4, false));
	expect(4, (enum bw_mongo_fate[]){D, S, D, S});
}

static void
test_upsert_race_and_refusal(void **state)
{
	/* 11000: a concurrent upsert of the same _id won; code 2: refused. */
	bson_t *r = BCON_NEW("nMatched", BCON_INT32(0), "nUpserted", BCON_INT32(1), "upserted", "[",
	                     "{", "index", BCON_INT32(0), "}", "]", "writeErrors", "[", "{",
	                     "index", BCON_INT32(1), "code", BCON_INT32(11000), "}", "{", "index",
	                     BCON_INT32(2), "code", BCON_INT32(2), "}", "]");
	assert_true(read_reply(r, 3, false));
	expect(3, (enum bw_mongo_fate[]){S, D, F});
	assert_int_equal(hard, 1);
}

static void
test_upserts_write_concern_error(void **state)
{
	/* Written on the primary, not confirmed: the new ones are unknown. */
	bson_t *r =
	    BCON_NEW("nMatched", BCON_INT32(1), "nUpserted", BCON_INT32(1), "upserted", "[", "{",
	             "index", BCON_INT32(0), "}", "]", "writeConcernErrors", "[", "{", "code",
	             BCON_INT32(64), "errmsg", "waiting for replication timed out", "}", "]");
	assert_true(read_reply(r, 2, false));
	expect(2, (enum bw_mongo_fate[]){U, D});
	assert_true(wc_error);
}

static void
test_upserts_connection_lost(void **state)
{
	/* The first command of a split bulk answered, the second never did. */
	bson_t *r = BCON_NEW("nMatched", BCON_INT32(1), "nUpserted", BCON_INT32(1), "upserted", "[",
	                     "{", "index", BCON_INT32(0), "}", "]");
	assert_false(read_reply(r, 4, false));
	expect(4, (enum bw_mongo_fate[]){S, U, U, U});
}

static void
test_insert_partial_success(void **state)
{
	/* MongoDB: an unordered insert_many stores what is new and names each
	 * duplicate; nothing is left unknown. */
	bson_t *r = BCON_NEW("nInserted", BCON_INT32(2), "writeErrors", "[", "{", "index",
	                     BCON_INT32(1), "code", BCON_INT32(11000), "}", "]");
	assert_true(read_reply(r, 3, true));
	expect(3, (enum bw_mongo_fate[]){S, D, S});
	assert_int_equal(hard, 0);
}

static void
test_insert_refused_whole(void **state)
{
	/* jongodb: the command fails over one duplicate and inserts nothing;
	 * the reply accounts for no reading, so the upsert bulk follows. */
	bson_t *r = BCON_NEW("nInserted", BCON_INT32(0));
	assert_false(read_reply(r, 3, true));
	expect(3, (enum bw_mongo_fate[]){U, U, U});
}

static void
test_insert_write_concern_error(void **state)
{
	bson_t *r = BCON_NEW("nInserted", BCON_INT32(1), "writeErrors", "[", "{", "index",
	                     BCON_INT32(0), "code", BCON_INT32(11000), "}", "]",
	                     "writeConcernErrors", "[", "{", "code", BCON_INT32(64), "}", "]");
	assert_true(read_reply(r, 2, true));
	expect(2, (enum bw_mongo_fate[]){D, U});
	assert_true(wc_error);
}

static void
test_indexes_out_of_range_ignored(void **state)
{
	bson_t *r = BCON_NEW("nMatched", BCON_INT32(0), "nUpserted", BCON_INT32(1), "upserted", "[",
	                     "{", "index", BCON_INT32(7), "}", "{", "index", BCON_INT32(-1), "}",
	                     "{", "index", BCON_INT32(0), "}", "]");
	assert_true(read_reply(r, 1, false));
	expect(1, (enum bw_mongo_fate[]){S});
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_upserts_all_new),
	    cmocka_unit_test(test_upserts_some_existing),
	    cmocka_unit_test(test_upsert_race_and_refusal),
	    cmocka_unit_test(test_upserts_write_concern_error),
	    cmocka_unit_test(test_upserts_connection_lost),
	    cmocka_unit_test(test_insert_partial_success),
	    cmocka_unit_test(test_insert_refused_whole),
	    cmocka_unit_test(test_insert_write_concern_error),
	    cmocka_unit_test(test_indexes_out_of_range_ignored),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
