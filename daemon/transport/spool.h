/*
 * spool.h - the spool transport: the file-drop convention EDI clients use.
 *
 * Inbound (spool_in.c): the endpoint writes a file and renames it into its
 * inbox; names starting with "." or ending in ".tmp" are incomplete and
 * ignored. Pick-up is inotify-driven with a periodic rescan; a file leaves
 * the inbox only after the commit that holds it.
 *
 * Outbound (spool_out.c): each message is written under a temporary name
 * starting with ".", one syncfs() covers the batch, then each is renamed to
 * its final name "<store instance>-<id>.<ext>" and the folder is synced.
 * Only then is the batch delivered. A re-delivery after a crash replaces
 * its own file; the delivered file holds exactly the received bytes.
 *
 * Internal to the spool transport; the broker sees `spool_transport`.
 */
#ifndef EDIBROKER_SPOOL_H
#define EDIBROKER_SPOOL_H

#include "base/strset.h"
#include "transport/transport.h"

#include <event2/event.h>
#include <sys/stat.h>

extern const struct transport_ops spool_transport;

/* What an [endpoint NAME] with transport = spool sets (spool.c's keys). */
struct spool_conf {
	char *inbox;               /* inbox: the endpoint drops files here */
	char *outbox;              /* outbox: the broker delivers files here */
	char *quarantine;          /* quarantine: unparseable inbound files; default
				      <state_dir>/quarantine/<name> */
	bool create_dirs;          /* create_dirs = yes: make missing inbox/outbox at start */
	int64_t pickup_timeout_ms; /* pickup_timeout: outbox files not collected by then =
				      down; 0 = off */
	char *file_group;          /* file_group: delivered files get this group; NULL =
				      the daemon's (or the outbox's, when it is setgid) */
	char *file_mode;           /* file_mode: octal mode of delivered files ("0640") */
};

/* The [spool] section. */
struct spool_section {
	int64_t rescan_interval_ms; /* rescan_interval: periodic inbox rescan (default 30s) */
};

struct spool_name {
	struct spool_name *next;
	char name[];
};

/* What identifies a file's content for "until it changes". */
struct file_id {
	uint64_t ino, size;
	int64_t mtime_ns;
};

static inline struct file_id file_id_of(const struct stat *st)
{
	return (struct file_id){ (uint64_t)st->st_ino, (uint64_t)st->st_size,
				 (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec };
}

/* An inbox entry the spool will not pick up again until it changes. */
struct refused {
	char *name;
	struct file_id id;
};

struct spool {
	/* configuration (copied at create; a changed endpoint gets a new spool) */
	char *endpoint;
	char *inbox, *outbox, *quarantine;
	char *instance;
	bool create_dirs;
	int64_t pickup_timeout_ms;
	char *file_group;                /* NULL: delivered files keep the group they get */
	mode_t file_mode;
	char *file_group_at;             /* "FILE:LINE" of file_group, for messages */
	size_t max_bytes;
	size_t batch_max;
	int64_t rescan_ms;
	struct transport_env env;

	/* inbound, loop thread only (the lane jobs get copies and dups) */
	bool running;
	int inbox_fd, ino_fd, wd;
	struct event *ino_ev, *rescan_ev, *work_ev, *retry_ev, *busy_ev;
	struct strset *known;            /* names queued, being read, with ingest, or
					    waiting to leave the inbox */
	struct spool_name *todo, *todo_tail;
	size_t ntodo;
	bool listed;                     /* the first scan since opening is in */
	bool scan_again;                 /* a file went back while a scan ran */
	struct spool_name *events, *events_tail; /* inotify names until then */
	bool opening, scanning, reading, cleaning; /* a job of that kind is out */
	bool open_tried;                 /* the inbox was opened once, or failed to */
	bool preparing;                  /* the outbox is being made (create_dirs) */
	size_t held_bytes;               /* bytes read and not yet committed */
	struct event *clean_ev;          /* starts a clean job at the end of the turn */
	struct in_file *clean;           /* removals and quarantines waiting for it */
	size_t nclean, capclean;
	struct refused *refused;         /* could not be quarantined, or a folder */
	size_t nrefused;
	bool paused, pause_logged;
	int64_t retry_ms;
	bool inbox_error_logged;

	struct strset *unreadable;       /* inbox names the broker may not read */
	size_t unreadable_told;          /* their count as last reported */
	bool unreadable_scanned;         /* the first scan reported it */

	/* outbound lane only: file_group looked up by the first job */
	bool gid_done;
	gid_t gid;                       /* (gid_t)-1: no file_group */
	char gid_error[160];             /* why file_group cannot be used, or "" */

	size_t inflight;                 /* lane jobs and ingest submissions out */
	bool destroyed;                  /* freed when inflight drops to 0 */
};

/* spool_in.c */
int spool_in_start(struct spool *sp);
void spool_in_stop(struct spool *sp);
void spool_in_resume(struct spool *sp);
/* Frees the spool now, or when its last submission completes. */
void spool_release(struct spool *sp);

/* spool_out.c: each runs its blocking part on the endpoint's outbound lane
 * and completes through done() on the loop (transport.h). */
void spool_out_deliver(struct spool *sp, const struct out_msg *msgs, size_t n,
		       transport_done_fn done, void *arg);
void spool_out_probe(struct spool *sp, transport_done_fn done, void *arg);
/* Creates the outbox on the outbound lane (create_dirs = yes). */
void spool_out_prepare(struct spool *sp);
/* Called by spool_in.c and spool_out.c when a job or submission ends. */
void spool_job_finished(struct spool *sp);
/* The final file name of message id ("<instance>-<id>.<ext>"). */
void spool_final_name(const struct spool *sp, int64_t id, const char *ext, char *buf,
		      size_t len);
/* spool.c: looks group name up (NSS: blocking) and checks that this process
 * may give files to it (it is root, or the group is its primary or one of
 * its supplementary groups). 0 with *gid set, or -errno and why. */
int spool_group_usable(const char *name, gid_t *gid, char *why, size_t len);
/* Maps an errno to a transport fault. */
enum transport_fault spool_fault(int err);

#endif
