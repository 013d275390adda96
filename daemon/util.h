/*
 * util.h - small helpers every module uses: allocation that aborts on
 * out-of-memory, __attribute__((cleanup)) helpers, bounded string copies.
 *
 * Out of memory aborts (house style rule 11): the durable store makes a
 * restart safe, and hard input limits keep outsiders from causing it.
 */
#ifndef EDIBROKER_UTIL_H
#define EDIBROKER_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define UNUSED __attribute__((unused))

/* Allocation: never returns NULL; aborts the process when memory runs out. */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* xstrdup of NULL is NULL. */
char *xstrdup_or_null(const char *s);
/* Formatted allocation; aborts on out-of-memory. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Copies at most dstsz-1 bytes and always terminates; returns strlen(src)
 * so a caller can detect truncation (like strlcpy). */
size_t str_copy(char *dst, const char *src, size_t dstsz);
/* True when s is NULL or "". */
static inline bool str_empty(const char *s) { return s == NULL || *s == '\0'; }

/* Cleanup helpers (systemd style). Each accepts NULL / -1. */
static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
static inline void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Take ownership out of a cleanup variable. */
#define TAKE_PTR(p)                                                                                \
	({                                                                                         \
		__typeof__(p) _p = (p);                                                            \
		(p) = NULL;                                                                        \
		_p;                                                                                \
	})
#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _fd = (fd);                                                                    \
		(fd) = -1;                                                                         \
		_fd;                                                                               \
	})

/* A growable, always NUL-terminated string. limit 0 means none; otherwise
 * appends stop at limit bytes, never inside a UTF-8 sequence, and cut is
 * set. Zero-initialise to start. */
struct strbuf {
	char *p;
	size_t len, cap;
	size_t limit;
	bool cut;
};
void strbuf_add(struct strbuf *b, const char *s, size_t n);
void strbuf_puts(struct strbuf *b, const char *s);
void strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The text so far (never NULL, caller frees); b is empty afterwards and
 * keeps its limit. */
char *strbuf_take(struct strbuf *b);

/* Reads a whole file of at most max bytes. Returns 0, -EFBIG when the file
 * is larger than max, or another negative errno. *out is NUL-terminated
 * (one byte past *len) for convenience; free it with free(). */
int read_file_at(int dirfd, const char *name, size_t max, uint8_t **out, size_t *len);

/* Writes all of buf, retrying on EINTR and short writes. 0 or -errno. */
int write_all(int fd, const void *buf, size_t len);

/* fsync(2) of a directory by path. 0 or -errno. */
int fsync_dir(const char *path);

/* Creates a directory and its parents (mode for new ones). 0 or -errno. */
int mkdir_p(const char *path, unsigned mode);

#endif
