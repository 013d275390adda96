/*
 * quarantine.h - moves an inbound file the broker cannot accept out of the
 * inbox, into a quarantine folder, with a ".reason" file beside it.
 *
 * The reason file is written and synced first, then the file is moved
 * (renamed, or copied, synced and unlinked when the folder is on another
 * file system), then the folder is synced. A crash in between leaves the
 * file in the inbox, where it is simply quarantined again.
 */
#ifndef EDIBROKER_QUARANTINE_H
#define EDIBROKER_QUARANTINE_H

#include <stddef.h>
#include <stdint.h>

struct quarantine_info {
	const char *endpoint;   /* the endpoint whose inbox held the file */
	const char *error;      /* short class, e.g. "syntax", "encoding", "too-big" */
	const char *reason;     /* one line, no message content */
	int64_t received_at;    /* wall ms */
	uint64_t max_copy;      /* largest file copied across file systems; 0 = no cap */
};

/* Moves name from the directory open at inbox_fd into dir (created when
 * missing) as "<UTC timestamp>-<name>" with "<...>.reason" beside it.
 * Writes the final path into out when out is not NULL. 0 or -errno:
 * -EFBIG / -EXDEV when it would have to be copied across file systems and
 * is larger than info->max_copy or not a regular file; it then stays. */
int quarantine_file(int inbox_fd, const char *name, const char *dir,
		    const struct quarantine_info *info, char *out, size_t outlen);

#endif
