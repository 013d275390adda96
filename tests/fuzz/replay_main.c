/*
 * replay_main.c - runs a libFuzzer target over a checked-in corpus without
 * libFuzzer, so `make check` replays every seed and past crash with gcc.
 *
 * Usage: fuzz_<name> <corpus-dir>. Feeds every regular file in the
 * directory, in sorted order, to LLVMFuzzerTestOneInput (which aborts on a
 * broken invariant), prints how many it replayed, and fails when the
 * directory is missing, unreadable or holds no input (a silently empty
 * corpus would make the replay pass vacuously).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "codecs/base/mem.h"
#include "base/fileio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_BYTES (64u * 1024u * 1024u)

/* Replays dir/name if it is a regular file: 1 replayed, 0 skipped, -errno. */
static int replay_one(int dirfd, const char *name)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	int r = read_file_at(dirfd, name, REPLAY_MAX_BYTES, &buf, &len);
	if (r == -EINVAL || r == -EISDIR)
		return 0; /* ".", "..", subdirectories, anything not a regular file */
	if (r < 0)
		return r;
	LLVMFuzzerTestOneInput(buf, len);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s <corpus-dir>\n", argv[0]);
		return 2;
	}
	_cleanup_close_ int dirfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent **ents;
	int n = dirfd < 0 ? -1 : scandirat(dirfd, ".", &ents, NULL, alphasort);
	if (n < 0) {
		fprintf(stderr, "%s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	size_t count = 0;
	int failed = 0;
	for (int i = 0; i < n; i++) {
		int r = replay_one(dirfd, ents[i]->d_name);
		if (r < 0) {
			fprintf(stderr, "%s/%s: %s\n", argv[1], ents[i]->d_name, strerror(-r));
			failed = 1;
		}
		count += r > 0;
		free(ents[i]);
	}
	free(ents);
	printf("replayed %zu inputs from %s\n", count, argv[1]);
	if (count == 0)
		fprintf(stderr, "%s: no inputs to replay\n", argv[1]);
	return failed || count == 0;
}
