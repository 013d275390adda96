/*
 * minrelay.c - the least file work any spool relay must do, for `make bench`.
 *
 *   minrelay INBOX OUTBOX JOURNAL COUNT
 *
 * Moves COUNT files from INBOX to OUTBOX in batches of 100, in name order.
 * Per batch: read each inbox file, append it to a journal and write it to
 * the outbox under a temporary name, one fdatasync() of the journal, one
 * syncfs(), rename each, fsync the outbox folder, unlink the inputs. No
 * parsing, routing, database or duplicate check: edibroker's throughput is
 * reported as a fraction of this one's. Prints the elapsed seconds.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BATCH 100

static void die(const char *what, const char *path)
{
	fprintf(stderr, "minrelay: %s %s: ", what, path);
	perror(NULL);
	exit(1);
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char **list(const char *dir, size_t *n)
{
	DIR *d = opendir(dir);
	if (!d)
		die("opendir", dir);
	char **v = NULL;
	size_t cap = 0;
	struct dirent *e;
	*n = 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (*n == cap)
			v = realloc(v, (cap = cap ? cap * 2 : 1024) * sizeof(char *));
		v[(*n)++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(v, *n, sizeof(char *), cmp);
	return v;
}

static void relay_batch(int in, int out, int journal, char **names, size_t n)
{
	static char buf[1 << 20];
	char tmp[600];
	for (size_t i = 0; i < n; i++) {
		int fd = openat(in, names[i], O_RDONLY);
		if (fd < 0)
			die("open", names[i]);
		ssize_t len = read(fd, buf, sizeof(buf));
		close(fd);
		if (len < 0 || write(journal, buf, (size_t)len) != len)
			die("journal", names[i]);
		snprintf(tmp, sizeof(tmp), ".%s.tmp", names[i]);
		fd = openat(out, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0640);
		if (fd < 0 || write(fd, buf, (size_t)len) != len || close(fd) < 0)
			die("write", tmp);
	}
	if (fdatasync(journal) < 0 || syncfs(out) < 0)
		die("sync", "");
	for (size_t i = 0; i < n; i++) {
		snprintf(tmp, sizeof(tmp), ".%s.tmp", names[i]);
		if (renameat(out, tmp, out, names[i]) < 0)
			die("rename", tmp);
	}
	if (fsync(out) < 0)
		die("fsync", "outbox");
	for (size_t i = 0; i < n; i++)
		if (unlinkat(in, names[i], 0) < 0)
			die("unlink", names[i]);
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: minrelay INBOX OUTBOX JOURNAL COUNT\n");
		return 2;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int in = open(argv[1], O_RDONLY | O_DIRECTORY);
	int out = open(argv[2], O_RDONLY | O_DIRECTORY);
	int journal = open(argv[3], O_WRONLY | O_CREAT | O_APPEND, 0640);
	if (in < 0 || out < 0 || journal < 0)
		die("open", "folders");
	size_t want = strtoul(argv[4], NULL, 10), done = 0, n;
	while (done < want) {
		char **names = list(argv[1], &n);
		for (size_t i = 0; i < n; i += BATCH)
			relay_batch(in, out, journal, names + i, n - i < BATCH ? n - i : BATCH);
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
		done += n;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%.6f\n", (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	return 0;
}
