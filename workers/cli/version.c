/* bulwark version: ours and the libraries we run with. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>

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
