#include <stdio.h>
#include <string.h>

#include "../unit.h"
#include "core/secret.h"

static void
test_generate_shapes_and_uniqueness(void **state)
{
	char id[BW_KEY_ID_LEN + 1], secret[BW_SECRET_B64_LEN + 1];
	char id2[BW_KEY_ID_LEN + 1], secret2[BW_SECRET_B64_LEN + 1];

	assert_int_equal(bw_key_generate(id, secret), 0);
	assert_int_equal(bw_key_generate(id2, secret2), 0);
	assert_int_equal(strlen(id), BW_KEY_ID_LEN);
	assert_int_equal(strlen(secret), BW_SECRET_B64_LEN);
	assert_int_equal(strspn(id, "abcdefghijklmnopqrstuvwxyz0123456789"), BW_KEY_ID_LEN);
	assert_string_not_equal(id, id2);
	assert_string_not_equal(secret, secret2);
	/* What we generate, we parse back. */
	char token[100], buf[200];
	const char *pid, *psecret;
	snprintf(token, sizeof(token), "bk_%s_%s", id, secret);
	assert_true(bw_key_parse(token, buf, sizeof(buf), &pid, &psecret));
	assert_string_equal(pid, id);
	assert_string_equal(psecret, secret);
}

static void
test_parse_rejects_bad_shapes(void **state)
{
	static const char *const bad[] = {
	    "",
	    "bk_",
	    "bk_abcdefgh",
	    "bk_abcdefgh_",
	    "xx_abcdefgh_secret",
	    "bk_ABCDEFGH_secret",
	    "bk_abc_secret",
	    "bk_abcdefgh_sec ret",
	    "bk_abcdefgh_sec%ret",
	    "bk_abcdefghijklmnopqrstuvwxyz0123456789_secret",
	};
	char buf[200];
	const char *id, *secret;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (bw_key_parse(bad[i], buf, sizeof(buf), &id, &secret))
			fail_msg("accepted \"%s\"", bad[i]);
	/* The secret may itself hold '_' (base64url): only the first one splits. */
	assert_true(bw_key_parse("bk_abcdefgh_a_b-c", buf, sizeof(buf), &id, &secret));
	assert_string_equal(secret, "a_b-c");
}

static void
test_sha256_known_answer(void **state)
{
	char hex[BW_SHA256_HEX_LEN + 1];
	bw_sha256_hex("abc", 3, hex);
	assert_string_equal(hex,
	                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	unsigned char md[BW_SHA256_LEN];
	bw_sha256("abc", 3, md);
	assert_int_equal(md[0], 0xba);
	assert_int_equal(md[31], 0xad);
	assert_true(bw_ct_equal("same", "same", 4));
	assert_false(bw_ct_equal("same", "sane", 4));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_generate_shapes_and_uniqueness),
	    cmocka_unit_test(test_parse_rejects_bad_shapes),
	    cmocka_unit_test(test_sha256_known_answer),
	};
	return cmocka_run_group_tests_name("secret", tests, NULL, NULL);
}
