/* Subcommands of the bulwark binary; bulwark.c holds the table. */
#ifndef BW_CLI_H
#define BW_CLI_H

int bw_cmd_serve(int argc, char **argv);
int bw_cmd_migrate(int argc, char **argv);
int bw_cmd_version(int argc, char **argv);
int bw_cmd_config_keys(int argc, char **argv);
int bw_cmd_tenant(int argc, char **argv);
int bw_cmd_key(int argc, char **argv);

#endif
