/*
 * Fuzz target: the configuration file, through both layers: the syntax
 * (conf_parse.c: words, quotes, ${NAME}, blocks) and the meaning
 * (config.c: every directive, sizes, times, listen addresses, blocks).
 * Config files are written by admins, not attackers, but "myxid -t" must
 * answer any file with a verdict, never a crash, and a config management
 * tool may template values from less trusted sources.
 *
 * The input becomes the file's contents through a memfd, so nothing is
 * written to disk. Checks: a failure names the file and a line; a success
 * yields a tree whose every directive has a name and a line.
 */
#include "fuzz_check.h"
#include "conf_parse.h"
#include "config.h"

#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int fd = -1;
static char path[64];

static void setup(void)
{
	fd = memfd_create("myxid-fuzz.conf", 0);
	FUZZ_CHECK(fd >= 0);
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	/* For "${FUZZ_VAR}" in seeds; an unset name is a tested error too. */
	setenv("FUZZ_VAR", "127.0.0.1:5005", 1);
	setenv("FUZZ_EMPTY", "", 1);
}

static void write_file(const uint8_t *data, size_t size)
{
	size_t done = 0;

	FUZZ_CHECK(ftruncate(fd, 0) == 0);
	while (done < size) {
		ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);
		FUZZ_CHECK(n > 0);
		done += (size_t)n;
	}
}

static void check_err(const char *err, size_t size)
{
	size_t len = strnlen(err, size);

	FUZZ_CHECK(len > 0 && len < size);
	FUZZ_CHECK(strncmp(err, path, strlen(path)) == 0);
}

static void check_node(const struct conf_node *n, unsigned depth)
{
	FUZZ_CHECK(depth <= CONF_MAX_DEPTH + 1);
	for (size_t i = 0; i < n->n_kids; i++) {
		const struct conf_node *k = n->kids[i];
		FUZZ_CHECK(k->n_args >= 1 && k->line >= 1 && k->file != NULL);
		for (size_t j = 0; j < k->n_args; j++)
			FUZZ_CHECK(k->args[j] != NULL);
		FUZZ_CHECK(k->block || k->n_kids == 0);
		check_node(k, depth + 1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf_tree *tree = NULL;
	struct myxid_config *cfg = NULL;
	char err[512];

	if (fd < 0)
		setup();
	write_file(data, size);

	err[0] = '\0';
	if (conf_parse_file(path, &tree, err, sizeof err) == 0) {
		FUZZ_CHECK(tree != NULL);
		check_node(&tree->root, 0);
		conf_tree_free(&tree);
		FUZZ_CHECK(tree == NULL);
	} else {
		check_err(err, sizeof err);
	}

	err[0] = '\0';
	if (config_load(path, &cfg, err, sizeof err) == 0) {
		FUZZ_CHECK(cfg != NULL && cfg->n_listens >= 1);
		for (size_t i = 0; i < cfg->n_exchanges; i++)
			FUZZ_CHECK(config_exchange(cfg, cfg->exchanges[i].name) != NULL);
		config_free(&cfg);
	} else {
		check_err(err, sizeof err);
	}
	return 0;
}
