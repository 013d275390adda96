/*
 * store.h - the durable message store: what "accepted" and "delivered" mean.
 *
 * A message is accepted when the transaction that inserts it commits (with
 * fsync); delivered when the transaction that marks it so commits. All
 * writes raised in one loop turn go into one store_batch and one
 * transaction (group commit, see commit.h).
 *
 * Duplicate policy (issue 2 point 9), applied inside the transaction so it
 * also holds when several daemons share one database:
 *   - every letter key (sender GLN, letter id) already known -> the message
 *     is a duplicate: not stored, outcome STORE_DUPLICATE, id = the earlier
 *     message's id;
 *   - some keys known, some new -> stored as a dead letter with reason
 *     "partial duplicate" (delivering it would deliver a letter twice;
 *     dropping it would lose the new letters);
 *   - none known -> stored as given, and its keys recorded.
 * Dead letters (endpoint NULL) record no keys.
 *
 * Backends sit behind `struct store_backend_ops`; nothing outside a backend
 * file knows which database is used.
 */
#ifndef EDIBROKER_STORE_H
#define EDIBROKER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum msg_state { MSG_QUEUED = 0, MSG_DELIVERED = 1, MSG_DEAD = 2 };

/* The source of messages the broker itself issues (negative receipts). */
#define STORE_SOURCE_BROKER "(broker)"

struct store_key {
	const char *sender;    /* sender GLN */
	const char *letter_id; /* letter id */
};

/* A message to insert. Input fields are borrowed for the call. */
struct store_new {
	const char *source;      /* endpoint it arrived from */
	const char *endpoint;    /* destination endpoint; NULL = dead letter */
	const char *reason;      /* dead-letter reason (required when endpoint is NULL) */
	const char *format;      /* codec name, e.g. "oioxml" */
	const char *ext;         /* file extension for delivery, e.g. "xml" */
	const char *type;        /* first letter's type, e.g. "XDIS20" */
	const char *envelope_id;
	const char *sender;      /* first letter's sender GLN */
	const char *receiver;    /* first letter's receiver GLN */
	int nletters;
	const struct store_key *keys;
	size_t nkeys;
	const void *body;
	size_t size;
	int64_t received_at;     /* wall ms */
	/* outputs of store_commit() */
	enum { STORE_STORED, STORE_DUPLICATE, STORE_DEAD } outcome;
	int64_t id;              /* new id; for a duplicate, the earlier message's id
				  * (the one that recorded its first key) */
};

/* A delivery attempt that failed (attempts += 1, last_error = error). */
struct store_attempt {
	int64_t id;
	const char *error;
};

/* All writes of one loop turn. The arrays are owned by the caller. */
struct store_batch {
	struct store_new *msgs;
	size_t nmsgs;
	const int64_t *delivered; /* ids delivered (confirmed by the receiver) */
	size_t ndelivered;
	const struct store_attempt *attempts;
	size_t nattempts;
	int64_t now;              /* wall ms for delivered_at / seen_at */
};

/* A stored message as read back (metadata; body only from fetch_queued). */
struct store_msg {
	int64_t id;
	enum msg_state state;
	const char *source, *endpoint, *format, *ext, *type;
	const char *envelope_id, *sender, *receiver, *reason, *last_error;
	int nletters;
	int attempts;
	int64_t received_at, delivered_at; /* delivered_at 0 when not delivered */
	size_t size;
	const void *body;                  /* NULL unless requested and still kept */
};

/* Per-endpoint queue summary. */
struct store_depth {
	const char *endpoint;
	int64_t queued;
	int64_t oldest_received_at; /* 0 when queued == 0 */
};

/* Row callbacks: non-zero stops. Strings and body are valid only during the
 * call, and the callback must not call into the store. A query returns the
 * number of rows passed to cb, or cb's negative return. */
typedef int (*store_msg_cb)(const struct store_msg *m, void *arg);    /* non-zero stops */
typedef int (*store_depth_cb)(const struct store_depth *d, void *arg);

/* ---- the outage procedure's records (issue 3; see outage.h) ---------- */

/* An outage of one endpoint, as stored. Strings are borrowed for a call. */
struct store_outage {
	int64_t id;               /* 0 = not stored yet (outage_save assigns it) */
	const char *endpoint;
	const char *state;        /* "open", "announced", "recovering", "resolved", "closed" */
	bool manual;              /* opened by an operator */
	int64_t started_at;       /* first failure (or window end / operator's open) */
	int64_t declared_at;      /* when the endpoint was declared DOWN */
	int64_t ended_at;         /* endpoint back up; 0 while down */
	int64_t resolved_at;      /* backlog drained; 0 before */
	int64_t closed_at;        /* no more notices; 0 before */
	int64_t announced_at;     /* first notice sent; 0 = never */
	int64_t last_notice_at;   /* last notice sent; 0 = never */
	int64_t due_at;           /* next notice falls due (may be held); 0 = none */
	int64_t expected_end;     /* operator's expected end; 0 = unknown */
	const char *cause_fault;  /* transport fault class, e.g. "refused" */
	const char *cause_error;  /* last error, one line, no content */
	const char *cause_override;   /* operator's cause; NULL = none */
	const char *contact_override; /* operator's contact; NULL = none */
	int64_t maintenance_id;   /* the planned window it followed; 0 = none */
	int64_t delivered_late;   /* messages delivered after the outage began */
};

/* A notice composed for an outage or a maintenance window. */
struct store_notice {
	int64_t id;               /* 0 = not stored yet */
	int64_t outage_id;        /* 0 when for a maintenance window */
	int64_t maintenance_id;   /* 0 when for an outage */
	const char *kind;         /* "initial", "update", "allclear", "summary", "planned" */
	const char *audience;     /* "support" or "oncall" */
	const char *recipients;   /* comma-separated mail addresses */
	const char *subject;
	const char *body;         /* plain text */
	const char *payload;      /* JSON for the webhook */
	int64_t created_at;       /* when it was composed (= sent the first time) */
	const char *pending;      /* channels still to carry it: "email,webhook"; "" = done */
	int attempts;             /* send rounds so far */
	int64_t next_attempt_at;  /* 0 when nothing is pending */
};

/* One attempt to carry a notice over one channel. */
struct store_send {
	int64_t notice_id;
	const char *channel;      /* "email", "webhook", "fallback" */
	int64_t at;
	bool ok;
	const char *recipients;   /* who it went to (mail addresses, URL, command) */
	const char *error;        /* "" when ok */
};

/* A planned shutdown of an endpoint. */
struct store_maintenance {
	int64_t id;               /* 0 = not stored yet */
	const char *endpoint;
	int64_t from, to;         /* [from, to) wall ms */
	const char *reason;
	const char *contact;      /* NULL = the endpoint's configured contact */
	int64_t created_at;
	int64_t removed_at;       /* 0 = in force */
	int64_t announced_at;     /* planned notice sent; 0 = not (yet) */
	int64_t ended_at;         /* end handled (acute procedure checked); 0 = not yet */
};

/* Queued messages of one endpoint, grouped by type and source. */
struct store_summary {
	const char *type;
	const char *source;
	int64_t count;
	int64_t oldest_received_at;
};

typedef int (*store_outage_cb)(const struct store_outage *o, void *arg);
typedef int (*store_notice_cb)(const struct store_notice *n, void *arg);
typedef int (*store_send_cb)(const struct store_send *s, void *arg);
typedef int (*store_maintenance_cb)(const struct store_maintenance *m, void *arg);
typedef int (*store_summary_cb)(const struct store_summary *s, void *arg);
typedef int (*store_name_cb)(const char *name, void *arg);

struct store_options {
	bool read_only;     /* open for inspection only (tests, offline tools) */
	uint64_t max_bytes; /* refuse growth beyond this size (-ENOSPC); 0 = no cap */
};

/* Backend primitives. Every function returns 0 (or a count) or a negative
 * errno: -ENOSPC disk full, -EIO I/O error, -EBUSY locked, -EBADMSG corrupt,
 * -EROFS opened read-only. last_error() describes the most recent failure;
 * last_error(NULL) why the most recent open() failed (*be untouched then). */
struct store_backend_ops {
	const char *name;
	int (*open)(const char *state_dir, const struct store_options *opt, void **be);
	void (*close)(void *be);
	const char *(*last_error)(void *be);
	/* Random id of this store (8 lowercase hex chars), made when it was created. */
	const char *(*instance)(void *be);

	int (*begin)(void *be);
	int (*commit)(void *be);
	void (*rollback)(void *be);

	/* 1 and *msg_id when the key is known, 0 when not. */
	int (*key_lookup)(void *be, const struct store_key *key, int64_t *msg_id);
	/* -EEXIST when the key is already recorded (another writer was first). */
	int (*key_insert)(void *be, const struct store_key *key, int64_t msg_id, int64_t now);
	/* Inserts m in state QUEUED (endpoint set) or DEAD (endpoint NULL). */
	int (*msg_insert)(void *be, const struct store_new *m, int64_t *id);
	/* Only a QUEUED message changes: 1 when it did, 0 when id is not queued
	 * (already delivered, dead or unknown), so a retried mark is harmless. */
	int (*msg_delivered)(void *be, int64_t id, int64_t at);
	int (*msg_attempt)(void *be, int64_t id, const char *error);

	/* Queued messages of endpoint with id > after_id, oldest first, at most
	 * limit, bodies included. */
	int (*fetch_queued)(void *be, const char *endpoint, int64_t after_id, size_t limit,
			    store_msg_cb cb, void *arg);
	/* Queue depth per endpoint that has queued messages. */
	int (*depths)(void *be, store_depth_cb cb, void *arg);
	/* Metadata (no bodies) of messages in state, for endpoint (NULL = any),
	 * oldest first, at most limit. */
	int (*list)(void *be, enum msg_state state, const char *endpoint, size_t limit,
		    store_msg_cb cb, void *arg);
	/* One message's metadata, with its body when with_body. 1 found, 0 not. */
	int (*get)(void *be, int64_t id, bool with_body, store_msg_cb cb, void *arg);
	/* Count of messages in state (all endpoints). */
	int (*count)(void *be, enum msg_state state, int64_t *n);

	/* Drops bodies of messages delivered before body_before, and whole
	 * delivered records and duplicate keys older than history_before; at
	 * most limit rows per call. Returns rows affected: call again while it
	 * returns limit. Dead letters are never pruned. */
	int (*prune)(void *be, int64_t body_before, int64_t history_before, size_t limit);

	/* The outage procedure's records. Each save is its own transaction
	 * (these are rare); never called inside begin/commit. *_save inserts
	 * when id is 0 (and sets it), else updates that row (-ENOENT when
	 * there is none). A failed save keeps nothing and leaves id as it was. */
	int (*outage_save)(void *be, struct store_outage *o);
	/* Outages not closed, plus those closed at or after closed_since,
	 * newest first, at most limit. */
	int (*outage_list)(void *be, int64_t closed_since, size_t limit, store_outage_cb cb,
			   void *arg);
	/* 1 when found (cb called), 0 when not. */
	int (*outage_get)(void *be, int64_t id, store_outage_cb cb, void *arg);
	int (*notice_save)(void *be, struct store_notice *n);
	/* Notices of an outage (outage_id > 0) or of a maintenance window,
	 * oldest first (by created_at). -EINVAL when neither id is > 0. */
	int (*notice_list)(void *be, int64_t outage_id, int64_t maintenance_id, store_notice_cb cb,
			   void *arg);
	/* Notices with channels still pending (pending neither "" nor NULL),
	 * oldest first. */
	int (*notice_pending)(void *be, store_notice_cb cb, void *arg);
	int (*send_record)(void *be, const struct store_send *s);
	int (*send_list)(void *be, int64_t notice_id, store_send_cb cb, void *arg);
	int (*maintenance_save)(void *be, struct store_maintenance *m);
	/* Windows in force (removed_at == 0) and, with removed, the others too;
	 * ordered by from. */
	int (*maintenance_list)(void *be, bool removed, store_maintenance_cb cb, void *arg);
	/* Queued messages of endpoint grouped by (type, source), in that order. */
	int (*queue_summary)(void *be, const char *endpoint, store_summary_cb cb, void *arg);
	/* Endpoints that ever exchanged messages with endpoint, in either
	 * direction (recorded by msg_insert), excluding the broker itself and
	 * endpoint; each once, by name. Names may outlive the config. */
	int (*partners)(void *be, const char *endpoint, store_name_cb cb, void *arg);
};

struct store;

/* Opens backend `name` ("sqlite"; NULL = the first registered) under
 * state_dir, creating or migrating the schema; on failure returns NULL with
 * a reason in err. opt NULL = defaults. */
struct store *store_open(const char *name, const char *state_dir, const struct store_options *opt,
			 char *err, size_t errlen);
void store_close(struct store *s);
const char *store_instance(struct store *s);
const char *store_last_error(struct store *s);
/* The backend, for the read-only queries that need no policy. */
const struct store_backend_ops *store_ops(struct store *s);
void *store_backend(struct store *s);

/* Applies a whole batch in one transaction with the duplicate policy above.
 * On success every msgs[i].outcome / id is set. On failure nothing of the
 * batch is kept (rolled back) and a negative errno is returned. */
int store_commit(struct store *s, struct store_batch *b);

/* Registered backends (NULL-terminated). */
extern const struct store_backend_ops *const store_backends[];

#endif
