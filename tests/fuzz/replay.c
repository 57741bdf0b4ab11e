/* Replays a fuzz target over its committed corpus without libFuzzer, so a
 * plain `make check` (gcc, with or without sanitizers) keeps every input
 * the fuzzer ever found fixed. TAP: one result for the whole corpus.
 *   replay_telemetry [DIR|FILE ...]   (default: $srcdir/tests/fuzz/corpus/telemetry) */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FILES 100000

static char *paths[MAX_FILES];
static size_t npaths;

static int
by_name(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

static int
collect(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;

	if (d == NULL) {
		if (errno != ENOTDIR)
			return -1;
		if (npaths < MAX_FILES)
			paths[npaths++] = strdup(path);
		return 0;
	}
	while ((e = readdir(d)) != NULL) {
		char *p;
		if (e->d_name[0] == '.' || npaths == MAX_FILES)
			continue;
		if (asprintf(&p, "%s/%s", path, e->d_name) < 0)
			continue;
		paths[npaths++] = p;
	}
	closedir(d);
	return 0;
}

static int
run_one(const char *path)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	size_t len = 0, cap = 0, got;

	if (f == NULL)
		return -1;
	do {
		if (len == cap) {
			unsigned char *nb = realloc(buf, cap ? cap * 2 : 4096);
			if (nb == NULL) {
				free(buf);
				fclose(f);
				return -1;
			}
			buf = nb;
			cap = cap ? cap * 2 : 4096;
		}
		got = fread(buf + len, 1, cap - len, f);
		len += got;
	} while (got > 0);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *srcdir = getenv("srcdir");
	char def[4096];
	int bad = 0;

	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			if (collect(argv[i]) < 0) {
				fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
				return 1;
			}
	} else {
		snprintf(def, sizeof(def), "%s/tests/fuzz/corpus/telemetry",
		         srcdir != NULL ? srcdir : ".");
		if (collect(def) < 0) {
			printf("1..0 # SKIP no corpus at %s\n", def);
			return 0;
		}
	}
	qsort(paths, npaths, sizeof(paths[0]), by_name);
	/* One TAP result for the whole corpus: a crash aborts the run (the TAP
	 * driver reports it) and names the input on stderr first. */
	printf("1..1\n");
	fflush(stdout);
	for (size_t i = 0; i < npaths; i++) {
		fprintf(stderr, "replay: %s\n", paths[i]);
		if (run_one(paths[i]) < 0) {
			printf("# %s: %s\n", paths[i], strerror(errno));
			bad++;
		}
		free(paths[i]);
	}
	printf("%s 1 - %zu corpus inputs replayed%s\n", bad ? "not ok" : "ok", npaths,
	       bad ? " (some could not be read)" : "");
	return bad > 0;
}
