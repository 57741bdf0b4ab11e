/* Key material, SHA-256 and constant-time compare (secret.h): the one file
 * that includes OpenSSL. */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <string.h>
#include <sys/random.h>

#include "core/secret.h"

_Static_assert(SHA256_DIGEST_LENGTH == BW_SHA256_LEN, "SHA-256 is 32 bytes");

int
bw_random_bytes(void *buf, size_t n)
{
	unsigned char *p = buf;

	while (n > 0) {
		ssize_t got = getrandom(p, n, 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += got;
		n -= (size_t)got;
	}
	return 0;
}

int
bw_key_generate(char id[BW_KEY_ID_LEN + 1], char secret[BW_SECRET_B64_LEN + 1])
{
	static const char idchars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char raw[BW_SECRET_BYTES], idraw[BW_KEY_ID_LEN];

	if (bw_random_bytes(raw, sizeof(raw)) < 0 || bw_random_bytes(idraw, sizeof(idraw)) < 0)
		return -1;
	/* 256 = 7 × 36 + 4: drop the top of the range so every char is equally likely. */
	for (size_t i = 0; i < BW_KEY_ID_LEN; i++) {
		while (idraw[i] >= 252)
			if (bw_random_bytes(&idraw[i], 1) < 0)
				return -1;
		id[i] = idchars[idraw[i] % 36];
	}
	id[BW_KEY_ID_LEN] = '\0';
	size_t o = 0;
	unsigned acc = 0;
	int bits = 0;
	for (size_t i = 0; i < sizeof(raw); i++) {
		acc = (acc << 8) | raw[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			secret[o++] = b64[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		secret[o++] = b64[(acc << (6 - bits)) & 63];
	secret[o] = '\0';
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}

void
bw_sha256(const void *data, size_t n, unsigned char out[BW_SHA256_LEN])
{
	SHA256(data, n, out);
}

void
bw_sha256_hex(const void *data, size_t n, char out[BW_SHA256_HEX_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[BW_SHA256_LEN];

	bw_sha256(data, n, md);
	for (size_t i = 0; i < sizeof(md); i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[BW_SHA256_HEX_LEN] = '\0';
}

bool
bw_ct_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

bool
bw_key_parse(const char *token, char *buf, size_t buflen, const char **id, const char **secret)
{
	size_t len = strlen(token);

	if (len < 3 || len >= buflen || strncmp(token, "bk_", 3) != 0)
		return false;
	memcpy(buf, token, len + 1);
	char *sep = strchr(buf + 3, '_');
	if (sep == NULL)
		return false;
	*sep = '\0';
	*id = buf + 3;
	*secret = sep + 1;
	size_t idlen = strlen(*id), slen = strlen(*secret);
	if (idlen < 8 || idlen > 32 || strspn(*id, "abcdefghijklmnopqrstuvwxyz0123456789") != idlen)
		return false;
	if (slen < 1 || slen > 128 ||
	    strspn(*secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") !=
	        slen)
		return false;
	return true;
}
