/*
 * mem.h - the lowest layer every module stands on: allocation that aborts on
 * out-of-memory, __attribute__((cleanup)) helpers, bounded string copies.
 *
 * Out of memory aborts (house style rule 11): the durable store makes a
 * restart safe, and hard input limits keep outsiders from causing it.
 */
#ifndef EDIBROKER_MEM_H
#define EDIBROKER_MEM_H

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

#endif
