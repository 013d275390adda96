/*
 * fileio.h - file helpers of the daemon: read a bounded file, write all of a
 * buffer, replace a file atomically, sync a folder, create folders.
 *
 * These helpers do not log: they return 0 or a negative errno and let the
 * caller decide what the failure means.
 */
#ifndef EDIBROKER_FILEIO_H
#define EDIBROKER_FILEIO_H

#include <stddef.h>
#include <stdint.h>

/* Reads a whole regular file of at most max bytes, never following a
 * symlink (-ELOOP) nor waiting on a FIFO (-EINVAL: not a regular file;
 * -EISDIR for a folder).
 * Returns 0, -EFBIG when the file is larger than max (checked before
 * reading), or another negative errno. *out is NUL-terminated (one byte
 * past *len) for convenience; free it with free(). */
int read_file_at(int dirfd, const char *name, size_t max, uint8_t **out, size_t *len);
/* The same, with the status of the file read (the very inode, not a file
 * renamed over the name meanwhile) into *st. */
struct stat;
int read_file_stat_at(int dirfd, const char *name, size_t max, uint8_t **out, size_t *len,
		      struct stat *st);

/* Writes all of buf, retrying on EINTR and short writes. 0 or -errno. */
int write_all(int fd, const void *buf, size_t len);

/* write_file_atomic_at() flags. */
enum {
	WRITE_ATOMIC_NOREPLACE = 1 << 0, /* an existing name is kept: -EEXIST */
};

/* Makes name in the folder open at dirfd hold exactly data[0..len), with
 * exactly mode (the umask does not apply), durably: written to ".<name>.tmp",
 * fsynced, renamed over name, then the folder fsynced. A reader sees the old
 * file or the new one, whole. 0 or -errno; on failure no temporary file is
 * left and name is untouched, unless only the final folder fsync failed.
 * One writer at a time per name: the temporary name is fixed. */
int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t len,
			 unsigned mode, unsigned flags);

/* fsync(2) of a directory by path. 0 or -errno. */
int fsync_dir(const char *path);

/* Creates a directory and its parents (mode for new ones). 0 or -errno. */
int mkdir_p(const char *path, unsigned mode);

#endif
