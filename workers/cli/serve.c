/* bulwark serve [-c FILE] [-t] */
#ifdef HAVE_CONFIG_H
#include "autoconf.h"
#endif

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sysexits.h>

#include "cli/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "pool/master.h"

int
bw_cmd_serve(int argc, char **argv)
{
	const char *file = NULL;
	int test_only = 0, opt;
	char err[512];
	struct bw_config cfg;

	optind = 1;
	while ((opt = getopt(argc, argv, "c:th")) != -1) {
		switch (opt) {
		case 'c':
			file = optarg;
			break;
		case 't':
			test_only = 1;
			break;
		default:
			fprintf(stderr, "usage: bulwark serve [-c FILE] [-t]\n");
			return opt == 'h' ? 0 : EX_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "usage: bulwark serve [-c FILE] [-t]\n");
		return EX_USAGE;
	}
	if (bw_config_load(&cfg, file, err, sizeof(err)) < 0) {
		fprintf(stderr, "bulwark: %s\n", err);
		return EX_CONFIG;
	}
	if (test_only) {
		printf("configuration ok\n");
		bw_config_free(&cfg);
		return 0;
	}
	bw_log_setup(cfg.log_level, cfg.log_file);
	return bw_master_run(file, &cfg);
}
