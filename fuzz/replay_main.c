/*
 * A main() for a fuzz target in ordinary builds: replays the target's seed
 * corpus (fuzz/corpus/NAME/) and its regression inputs (fuzz/regress/NAME/,
 * one file per fixed finding) through LLVMFuzzerTestOneInput, printing
 * TAP. A finding aborts inside the target, which fails the test; under
 * --enable-sanitizers the sanitizers watch every replay.
 *
 * FUZZ_NAME is the target's name, set by fuzz/fuzz.am. The source tree
 * comes from MYXID_SRCDIR (Makefile.am exports it to tests), or argv[1].
 */
#include "fuzz_check.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>

#ifndef FUZZ_NAME
#error "FUZZ_NAME must be defined"
#endif

#define REPLAY_MAX_INPUT (1 << 20)

static int n_tests;

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void replay_file(const char *path, const char *label)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = malloc(REPLAY_MAX_INPUT);
	size_t n;

	FUZZ_CHECK(buf != NULL);
	if (f == NULL) {
		printf("not ok %d - %s: %s\n", ++n_tests, label, strerror(errno));
		free(buf);
		return;
	}
	n = fread(buf, 1, REPLAY_MAX_INPUT, f);
	fclose(f);
	printf("# %s (%zu bytes)\n", label, n);
	fflush(stdout);
	LLVMFuzzerTestOneInput(buf, n);
	printf("ok %d - %s\n", ++n_tests, label);
	free(buf);
}

/* Replay every file of dir in name order; a missing dir is fine only for
 * the regressions (a target may have none yet). */
static void replay_dir(const char *srcdir, const char *kind, int required)
{
	char dir[4096], path[8192], label[512];
	char **names = NULL;
	size_t n = 0;
	struct dirent *e;
	DIR *d;

	snprintf(dir, sizeof dir, "%s/fuzz/%s/%s", srcdir, kind, FUZZ_NAME);
	d = opendir(dir);
	if (d == NULL) {
		if (required)
			printf("not ok %d - %s: %s\n", ++n_tests, dir, strerror(errno));
		return;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		names = realloc(names, (n + 1) * sizeof *names);
		FUZZ_CHECK(names != NULL);
		names[n] = strdup(e->d_name);
		FUZZ_CHECK(names[n] != NULL);
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof *names, by_name);
	if (required && n == 0)
		printf("not ok %d - %s is empty\n", ++n_tests, dir);
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		snprintf(label, sizeof label, "%s/%s/%s", kind, FUZZ_NAME, names[i]);
		replay_file(path, label);
		free(names[i]);
	}
	free(names);
}

int main(int argc, char **argv)
{
	const char *srcdir = argc > 1 ? argv[1] : getenv("MYXID_SRCDIR");

	if (srcdir == NULL)
		srcdir = ".";
	replay_dir(srcdir, "corpus", 1);
	replay_dir(srcdir, "regress", 0);
	printf("1..%d\n", n_tests);
	return 0;
}
