/* API key material: kernel randomness, SHA-256, constant-time compare.
 * Keys look like bk_<key_id>_<secret>; only SHA-256(secret) is stored. */
#ifndef BW_SECRET_H
#define BW_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#define BW_KEY_ID_LEN     12 /* [a-z0-9] */
#define BW_SECRET_BYTES   32
#define BW_SECRET_B64_LEN 43 /* base64url, no padding */
#define BW_SHA256_LEN     32
#define BW_SHA256_HEX_LEN 64

/* n bytes from getrandom(2); -1 if the kernel cannot give them. */
int bw_random_bytes(void *buf, size_t n);
/* A fresh key id (BW_KEY_ID_LEN chars + NUL) and secret (base64url + NUL). */
int bw_key_generate(char id[BW_KEY_ID_LEN + 1], char secret[BW_SECRET_B64_LEN + 1]);
/* SHA-256(data): the one digest of the program (keys, migrations, reading ids). */
void bw_sha256(const void *data, size_t n, unsigned char out[BW_SHA256_LEN]);
/* Lower-case hex of SHA-256(data), 64 chars + NUL. */
void bw_sha256_hex(const void *data, size_t n, char out[BW_SHA256_HEX_LEN + 1]);
bool bw_ct_equal(const void *a, const void *b, size_t n);
/* Splits "bk_<id>_<secret>" (pointers into a copy in buf); false when the
 * shape is wrong: id of 8..32 [a-z0-9], secret of 1..128 url-safe chars. */
bool bw_key_parse(const char *token, char *buf, size_t buflen, const char **id,
                  const char **secret);

#endif
