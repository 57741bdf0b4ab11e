/* bulwark version: ours and the libraries we run with. */
#ifdef HAVE_CONFIG_H
#include "autoconf.h"
#endif

#include <stdio.h>
#include <string.h>

#include "core/config.h"

#include "cli/cli.h"
#include "store/store.h"

int
bw_cmd_version(int argc, char **argv)
{
	printf("bulwark %s\n", PACKAGE_VERSION);
	/* libfcgi has no version call; this is the version we were built against. */
	printf("libfcgi %s\n", BW_FCGI_VERSION);
	printf("libpq %s\n", bw_pg_lib_version());
	printf("hiredis %s\n", bw_redis_lib_version());
	printf("libmongoc %s\n", bw_mongo_lib_version());
	return 0;
}

static const char *
type_name(enum bw_config_type t)
{
	/* An enum key is a string to whoever writes the file. */
	static const char *const names[] = {"string", "integer", "integer", "size",
	                                    "bool",   "level",   "string"};
	return names[t];
}

/* The configuration table as Markdown: the README's key list is checked
 * against this output by `make check`, so the two cannot drift apart. */
int
bw_cmd_config_keys(int argc, char **argv)
{
	printf("| key | type | default | range | what it does |\n");
	printf("| --- | --- | --- | --- | --- |\n");
	for (size_t i = 0; i < bw_config_nkeys; i++) {
		const struct bw_config_key *k = &bw_config_keys[i];
		if (strncmp(k->name, "test_", 5) == 0)
			continue; /* test builds only */
		char range[64] = "";
		if (k->type == BW_CONF_INT || k->type == BW_CONF_LONG || k->type == BW_CONF_SIZE)
			snprintf(range, sizeof(range), "%ld … %ld", k->min, k->max);
		printf("| `%s` | %s | `%s` | %s | %s |\n", k->name, type_name(k->type),
		       k->def[0] ? k->def : "\"\"", range, k->help);
	}
	return 0;
}
