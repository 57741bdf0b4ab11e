/* bulwark: one binary, subcommands in the style of git. */
#ifdef HAVE_CONFIG_H
#include "autoconf.h"
#endif

#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "cli/cli.h"

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage;
} commands[] = {
    {"serve", bw_cmd_serve,
     "serve [-c FILE] [-t]   run the master and its workers; -t checks the config"},
    {"migrate", bw_cmd_migrate,
     "migrate [-c FILE] up|status|lint [--dir DIR]   apply, list or lint schema/ migrations"},
    {"tenant", bw_cmd_tenant,
     "tenant create NAME [--rate R --burst B]   a tenant and its first API key"},
    {"key", bw_cmd_key,
     "key create --tenant ID [--scopes a,b] [--rate R --burst B] | key revoke KEY_ID"},
    {"version", bw_cmd_version, "version                this version and the library versions"},
    {"config-keys", bw_cmd_config_keys,
     "config-keys            the configuration keys as a Markdown table"},
};

static int
usage(FILE *out)
{
	fprintf(out, "usage: bulwark COMMAND [ARGS]\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  bulwark %s\n", commands[i].usage);
	return out == stderr ? EX_USAGE : 0;
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		return usage(stderr);
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0)
		return usage(stdout);
	if (strcmp(argv[1], "--version") == 0)
		return bw_cmd_version(argc - 1, argv + 1);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "bulwark: unknown command \"%s\"\n", argv[1]);
	return usage(stderr);
}
