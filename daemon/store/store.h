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
 * Transmission ids (issue 10 point 3). A message's identity is its
 * innermost letters, whatever wrapping it came in; the ids of what carried
 * it (VANS EnvelopeIdentifier, SBDH InstanceIdentifier, FHIR Bundle.id) are
 * only checked for reuse: one already recorded for (scope, sender, id)
 * with another digest of its content makes the message a dead letter
 * ("transmission id reused for other content"), checked before the letter
 * keys, which it then does not record. Otherwise a stored or duplicate
 * message records the txids not yet known, so a resend in a new wrapping
 * is a duplicate and a wrapper id reused later is caught. A dead letter
 * rather than a refusal at the door: like a partial duplicate, it is an
 * identity conflict only the store sees, decided inside the transaction;
 * the message is kept for an operator, and its source is done with it.
 *
 * Acknowledgement tracking (issue 11, medcom.md 9.17). A queued message that
 * asks for an acknowledgement (store_new.ack_requested) is PENDING until it
 * is delivered, then AWAITING ("sent") until the receiver's acknowledgement
 * comes back through the broker as an ordinary message from the endpoint
 * it was delivered to. That acknowledgement names what it acknowledges
 * (store_new.refs: a letter key, an envelope id, or a transmission id);
 * when it is stored, in the same transaction, each named message that
 * went to the acknowledgement's source endpoint moves by the table in
 * store.c to ACKNOWLEDGED, NEGATIVE or TRANSIENT and remembers it
 * (ack_msg), so a duplicate of a letter whose acknowledgement is stored
 * learns it (store_new.ack_id) and the broker can send it again. An
 * acknowledgement from any other endpoint changes nothing: no endpoint
 * can acknowledge what was not delivered to it. Overdue is not stored:
 * it is AWAITING for longer than [delivery] ack_timeout (store_ack_list).
 *
 * This is the front end: callers use the store_...() functions below; the
 * backends sit behind `struct store_backend_ops` (store_backend.h), which
 * only store.c calls through, so nothing else knows which database is used.
 *
 * Blocking. Every call below the asynchronous section completes before it
 * returns: row callbacks run inside it. Each function says what it costs
 * the caller with the SQLite backend: "fsync" is a local transaction that
 * returns once the WAL is on disk (milliseconds; as long as the disk
 * stalls), a read says how many rows it visits. A locked database (another
 * process checkpointing) adds up to 2 s to any call. With PostgreSQL the
 * same call is a round trip to the server; made on the loop's own handle
 * it waits at most STORE_LOOP_WAIT_MS and then fails (-ETIMEDOUT), and
 * after a failure the loop's handle refuses at once (-ENOTCONN) until a
 * background reconnect succeeds: the loop never waits on an unreachable
 * server, only on a slow one, and only that long.
 *
 * The asynchronous seam (section "asynchronous use" below). The hot paths
 * - the group commit, delivery's refill, leases - use store_run(): with a
 * local backend (sqlite) the work runs at once, inside the call, exactly as
 * before; with a server backend it runs on one of the store's lanes, each
 * with a connection of its own, and completes on the loop. Callers keep
 * these rules, so that either way is correct:
 *   - every result is checked (warn_unused_result): a call may fail at any
 *     time, and a record save that failed kept nothing;
 *   - a row callback copies what it keeps (records.h: *_dup) and never
 *     calls into the store;
 *   - nothing holds a transaction across calls: store_commit() is the only
 *     multi-statement write, and each record save is a transaction alone;
 *   - a write is durable when its call returned 0, not before: nothing is
 *     sent or announced about a record before its save succeeded.
 */
#ifndef EDIBROKER_STORE_H
#define EDIBROKER_STORE_H

#include "store/records.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* MSG_QUARANTINED rows stand for inbound files moved to a quarantine
 * folder (no body, never delivered), so operators can name them and
 * retention can remove them. An operator's requeue ends a dead letter or
 * quarantined file as MSG_REQUEUED (its content went on as another
 * message, which its history names); delete ends a dead letter or queued
 * message as MSG_DELETED. Both keep the record without the body. */
enum msg_state { MSG_QUEUED = 0, MSG_DELIVERED = 1, MSG_DEAD = 2, MSG_QUARANTINED = 3,
		 MSG_REQUEUED = 4, MSG_DELETED = 5 };
#define MSG_STATE_LAST MSG_DELETED

/* Where a message is in acknowledgement tracking (see above). Stored as
 * numbers; the order is the lifecycle's. */
enum msg_ack {
	ACK_NONE = 0,         /* asks for none (or is a receipt, or a dead letter) */
	ACK_PENDING = 1,      /* asks for one; not delivered yet */
	ACK_AWAITING = 2,     /* delivered ("sent"); overdue after ack_timeout */
	ACK_ACKNOWLEDGED = 3, /* the receiver acknowledged it (XCTL03, CTL03, ok, ...) */
	ACK_NEGATIVE = 4,     /* the receiver refused it (XCTL02, CTL02, fatal-error, ...) */
	ACK_TRANSIENT = 5,    /* FHIR transient-error: refused for now; a later
			       * acknowledgement replaces it (medcom.md 4.6, KR5) */
};
#define ACK_STATE_LAST ACK_TRANSIENT

/* "-", "pending", "awaiting", "acknowledged", "negative", "transient". */
const char *store_ack_name(enum msg_ack a);

/* A message an acknowledgement names: by letter key (sender, letter_id),
 * else by envelope (sender, envelope_id), or with store_new.refs_scope by
 * transmission id (scope, sender, envelope_id). Borrowed. */
struct store_ackref {
	const char *sender;
	const char *envelope_id; /* "" or NULL: none */
	const char *letter_id;   /* "" or NULL: the whole envelope */
};

/* The source of messages the broker itself issues (negative receipts). */
#define STORE_SOURCE_BROKER "(broker)"

struct store_key {
	const char *sender;    /* sender GLN */
	const char *letter_id; /* letter id */
};

#define STORE_DIGEST_MAX 64

/* A transmission id and a digest of the content it carried. */
struct store_txid {
	const char *scope;  /* the format that names it: "vans", "sbdh", "fhir" */
	const char *sender; /* whose id it is */
	const char *id;
	const void *digest; /* digest_len bytes, 1..STORE_DIGEST_MAX */
	size_t digest_len;
};

/* A lease held at an epoch (several daemons on one database): a write that
 * carries it is applied only while this daemon still holds lease at that
 * epoch, checked in the same transaction (the fencing token). A lease of
 * NULL fences nothing; a single-writer backend (sqlite) ignores fences. */
struct store_fence {
	const char *lease;       /* "ep:NAME", "in:NAME", "procedure" */
	int64_t epoch;
};

/* A message to insert. Input fields are borrowed for the call. */
struct store_new {
	const char *token;       /* names the accepted unit (a spool file by name and
				  * identity, an HTTP or ZeroMQ body by its source and
				  * digest); NULL = none. A token already recorded
				  * makes the message a replay of the one that recorded
				  * it: nothing is stored, and the outcome is that
				  * message's (a dead letter: STORE_DEAD with its
				  * reason in why; else STORE_DUPLICATE), so a commit
				  * replayed after its answer was lost gets the first
				  * answer again. Kept by every backend */
	bool token_is_digest;    /* the token names the bytes, not one delivery of
				  * them: a sender's own resend matches it too, so
				  * a copy with letters that went on is answered as
				  * a resend (the duplicate register: logged, its
				  * receipt sent again). A spool file's token
				  * matches only our own retry. */
	const char *source;      /* endpoint it arrived from */
	const char *endpoint;    /* destination endpoint; NULL = dead letter */
	const char *reason;      /* dead-letter reason (required when endpoint is NULL) */
	const char *format;      /* codec name, e.g. "oioxml" */
	const char *ext;         /* file extension for delivery, e.g. "xml" */
	const char *type;        /* first letter's type, e.g. "XDIS20" */
	const char *envelope_id;
	const char *letter_id;   /* first letter's id (traced also when dead); NULL = none */
	const char *refers;      /* a receipt the broker issues: the envelope id it answers */
	const char *sender;      /* first letter's sender GLN */
	const char *receiver;    /* first letter's receiver GLN */
	int nletters;
	const struct store_key *keys;
	size_t nkeys;
	const struct store_txid *txids; /* checked for reuse, recorded (see above) */
	size_t ntxids;
	const void *body;
	size_t size;
	int64_t received_at;     /* wall ms */
	bool ack_requested;      /* track its acknowledgement (a queued message) */
	/* An acknowledgement (nrefs > 0): what it acknowledges and its verdict. */
	const struct store_ackref *refs;
	size_t nrefs;
	const char *refs_scope;  /* NULL, or the txid scope refs name ("vans") */
	enum msg_ack verdict;    /* ACK_ACKNOWLEDGED, ACK_NEGATIVE or ACK_TRANSIENT */
	const char *verdict_text; /* its verdict as the format words it ("XCTL02
				   * problem_med_version"), kept for operators */
	/* outputs of store_commit() */
	enum { STORE_STORED, STORE_DUPLICATE, STORE_DEAD } outcome;
	int64_t id;              /* new id; for a duplicate, the earlier message's id
				  * (the one that recorded its first key) */
	char why[320];           /* STORE_DEAD the store decided (partial duplicate,
				  * reused txid, a replay of a dead letter): the
				  * reason it stored; else "" */
	int64_t acked;           /* stored acknowledgement: the first message it
				  * moved in tracking; 0 when none */
	size_t nacked;           /* how many it moved */
	size_t nforeign;         /* refs naming a message that went to another
				  * endpoint than this acknowledgement's source */
	int64_t ack_id;          /* STORE_DUPLICATE: the acknowledgement stored for
				  * the earlier message, 0 when none has come */
	bool replay;             /* its token was recorded before: outcome, id and
				  * why are the first copy's, nothing was stored */
};

/* A delivery attempt that failed (attempts += 1, last_error = error, and an
 * "attempt" event in the message's history). */
struct store_attempt {
	int64_t id;
	const char *error;
	const char *fault;       /* its fault class ("refused"); NULL = not known */
	bool refused; /* the receiver refused the message for what it is: it
		       * becomes a dead letter with error as its reason */
	struct store_fence fence; /* the endpoint's lease; zero = unfenced */
};

/* All writes of one loop turn. The arrays are owned by the caller. */
struct store_batch {
	struct store_new *msgs;
	size_t nmsgs;
	const int64_t *delivered; /* ids delivered (confirmed by the receiver) */
	const struct store_fence *delivered_fences; /* one per id, or NULL: unfenced.
						     * A fenced mark whose lease is
						     * gone changes nothing */
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
	const char *letter_id, *refers;    /* as in store_new; NULL when not recorded */
	int nletters;
	int attempts;
	int64_t received_at, delivered_at; /* delivered_at 0 when not delivered */
	size_t size;
	const void *body;                  /* NULL unless requested and still kept */
	/* dead letters and quarantined files */
	bool keep;                         /* exempt from retention (edibrokerctl keep) */
	int64_t removed_at;                /* retention dropped the body / removed the file; 0 = not */
	const char *file;                  /* quarantined: the file's path (source = its endpoint) */
	const char *error_class;           /* quarantined: "syntax", "too-big", ... */
	enum msg_ack ack;                  /* acknowledgement tracking */
	int64_t ack_msg;                   /* the acknowledgement's message id; 0 = none yet */
	int64_t ack_at;                    /* when it was stored; 0 = none yet */
	const char *ack_code;              /* its verdict in the format's words, or NULL */
};

/* An inbound file that was moved to quarantine (store_quarantine_add).
 * Strings are borrowed for the call. */
struct store_quarantined {
	const char *endpoint;    /* whose inbox held it (stored as the row's source) */
	const char *file;        /* its path in the quarantine folder */
	const char *error_class; /* short class, e.g. "syntax" */
	const char *reason;      /* one line, no content */
	size_t size;             /* bytes of the file */
	int64_t at;              /* wall ms it was quarantined (the row's received_at) */
	int64_t id;              /* output: the row's id */
};

/* One entry of a message's history beyond what its row says: failed
 * attempts, duplicates received later, operators' changes. Strings are
 * borrowed for a write, the backend's in a row callback. */
struct store_event {
	int64_t msg_id;
	int64_t at;              /* wall ms */
	const char *kind;        /* "attempt", "duplicate", "requeued", "requeued-from",
				  * "resent", "resent-from", "deleted" */
	const char *fault;       /* attempt: its fault class; else NULL */
	const char *detail;      /* attempt: the error; duplicate: the endpoint it came
				  * from; an operator's change: what came of it or why */
	const char *by;          /* an operator's change: "name (uid N)"; else NULL */
	int64_t ref;             /* the other message it names (the new copy, the
				  * earlier original); 0 = none */
};

/* An endpoint an operator holds (store_hold). */
struct store_hold {
	const char *endpoint;
	int64_t at;              /* wall ms it was held */
	const char *by;          /* who held it */
};

/* What store_find() looks a message up by. */
enum store_find {
	STORE_FIND_ENVELOPE, /* envelope id, a wrapping's transmission id, or the envelope
			      * a receipt the broker issued answers */
	STORE_FIND_LETTER,   /* a letter id (any sender) */
	STORE_FIND_BUNDLE,   /* a FHIR Bundle.id (the envelope of a FHIR message) */
	STORE_FIND_REFERS,   /* receipts the broker issued for an envelope id */
};

/* Per-endpoint queue summary. */
struct store_depth {
	const char *endpoint;
	int64_t queued;
	int64_t oldest_received_at; /* 0 when queued == 0 */
	int64_t bytes;              /* of the queued bodies */
};


/* One attempt to carry a notice over one channel (written once, never kept
 * in memory: its strings are borrowed for the call). */
struct store_send {
	int64_t notice_id;
	const char *channel;      /* "email", "webhook", "fallback" */
	int64_t at;
	bool ok;
	const char *recipients;   /* who it went to (mail addresses, URL, command) */
	const char *error;        /* "" when ok */
};

/* Queued messages of one endpoint, grouped by type and source. */
struct store_summary {
	const char *type;
	const char *source;
	int64_t count;
	int64_t oldest_received_at;
};

/* Row callbacks: non-zero stops. Strings and body are valid only during the
 * call (copy what you keep), and the callback must not call into the
 * store. A query returns the number of rows passed to cb, or cb's negative
 * return, or a negative errno. */
typedef int (*store_msg_cb)(const struct store_msg *m, void *arg);
typedef int (*store_depth_cb)(const struct store_depth *d, void *arg);
typedef int (*store_tally_cb)(const char *endpoint, int64_t n, void *arg);
typedef int (*store_outage_cb)(const struct outage *o, void *arg);
typedef int (*store_notice_cb)(const struct notice_record *n, void *arg);
typedef int (*store_send_cb)(const struct store_send *s, void *arg);
typedef int (*store_maintenance_cb)(const struct maint *m, void *arg);
typedef int (*store_summary_cb)(const struct store_summary *s, void *arg);
typedef int (*store_name_cb)(const char *name, void *arg);
typedef int (*store_event_cb)(const struct store_event *e, void *arg);
typedef int (*store_hold_cb)(const struct store_hold *h, void *arg);
typedef int (*store_id_cb)(int64_t id, void *arg);

struct store_options {
	bool read_only;     /* open for inspection only (tests, offline tools) */
	uint64_t max_bytes; /* refuse growth beyond this size (-ENOSPC); 0 = no cap */
	/* server backends (postgresql) */
	const char *url;      /* libpq URI or connection string */
	const char *password; /* NULL = libpq's own (passfile, PGPASSWORD) */
	const char *node;     /* this daemon's name in the cluster */
	bool check_only;      /* connect and check the schema version; change nothing */
	int64_t wait_ms;      /* how long a call on the loop's handle may wait for the
			       * server; 0 = STORE_LOOP_WAIT_MS */
};

/* How long a call on the loop's own handle of a server backend may wait. */
#define STORE_LOOP_WAIT_MS 500

/* Every result must be looked at: log it once, pass it on, or say in a
 * comment why the caller may go on without it. */
#define STORE_MUST_CHECK __attribute__((warn_unused_result))

struct store;

/* Opens backend `name` ("sqlite", "postgresql"; NULL = the first
 * registered) under state_dir (sqlite) or at opt->url (postgresql),
 * creating or migrating the schema; on failure returns NULL with a reason
 * in err. opt NULL = defaults. Start-up only: blocks for the schema upgrade
 * (fsync; a server: connecting, bounded by its connect timeout). */
struct store *store_open(const char *name, const char *state_dir, const struct store_options *opt,
			 char *err, size_t errlen);
/* Closes; the last connection checkpoints the WAL (fsync). Accepts NULL.
 * True when store_run() work was still running: its thread and connection
 * are abandoned (never freed, never joined), so the caller must not run
 * exit handlers that would wait for them or call them leaks. */
bool store_close(struct store *s);
/* The store's random id (8 hex chars), fixed at creation. No I/O. */
const char *store_instance(struct store *s);
/* What the most recent failed call of s said. No I/O. */
const char *store_last_error(struct store *s);

/* ---- messages ---------------------------------------------------------- */

/* Applies a whole batch in one transaction with the duplicate policy above.
 * On success every msgs[i].outcome / id is set. On failure nothing of the
 * batch is kept (rolled back) and a negative errno is returned. An empty
 * batch writes nothing; a server backend checks that it can reach its
 * database. Blocks: one transaction, fsync; a lookup per letter key. */
int store_commit(struct store *s, struct store_batch *b) STORE_MUST_CHECK;

/* Queued messages of endpoint with id > after_id that are not among
 * except[0..nexcept), oldest first, at most limit, bodies included. A
 * reader that pages by id (after_id) is right only while ids are allocated
 * in commit order (store_ids_in_commit_order); otherwise it passes 0 and
 * the ids it holds, and reads by state. Blocks: reads at most limit rows
 * with bodies. */
int store_fetch_queued(struct store *s, const char *endpoint, int64_t after_id,
		       const int64_t *except, size_t nexcept, size_t limit, store_msg_cb cb,
		       void *arg) STORE_MUST_CHECK;
/* Queue depth per endpoint that has queued messages (by name).
 * Blocks: counts every queued message (an index, no bodies). */
int store_depths(struct store *s, store_depth_cb cb, void *arg) STORE_MUST_CHECK;
/* store_depths() as an array the caller owns (*v, *n: set also on failure,
 * with what was read); store_depths_free() frees it. For work on a lane
 * whose answer is used on the loop. */
int store_depths_copy(struct store *s, struct store_depth **v, size_t *n) STORE_MUST_CHECK;
void store_depths_free(struct store_depth *v, size_t n);
/* Metadata (no bodies) of messages in state, for endpoint (NULL = any; of
 * quarantined rows, the endpoint whose inbox held the file), oldest first,
 * at most limit. Blocks: reads at most limit rows. */
int store_list(struct store *s, enum msg_state state, const char *endpoint, size_t limit,
	       store_msg_cb cb, void *arg) STORE_MUST_CHECK;
/* One message's metadata, with its body when with_body. 1 found, 0 not.
 * Blocks: reads one row. */
int store_get(struct store *s, int64_t id, bool with_body, store_msg_cb cb,
	      void *arg) STORE_MUST_CHECK;
/* Count of messages in state (all endpoints) into *n.
 * Blocks: counts every message in that state (an index, no bodies). */
int store_count(struct store *s, enum msg_state state, int64_t *n) STORE_MUST_CHECK;

/* Drops bodies of messages delivered before body_before, and whole
 * delivered records, duplicate keys and txids older than history_before; at most
 * limit rows per call. Returns rows affected: call again while it returns
 * limit. Dead letters and quarantined rows are never pruned (their bodies
 * and files have a retention of their own, below). Blocks: one
 * transaction, fsync, deleting at most limit rows and freeing a bounded
 * number of pages. */
int store_prune(struct store *s, int64_t body_before, int64_t history_before,
		size_t limit) STORE_MUST_CHECK;

/* Messages in acknowledgement state ack (AWAITING, ACKNOWLEDGED, NEGATIVE
 * or TRANSIENT) that went to endpoint (NULL = any) and were delivered
 * before delivered_before, oldest delivery first, at most limit: with
 * AWAITING and now - ack_timeout, the overdue ones. Blocks: reads at most
 * limit rows (an index on the tracked ones). */
int store_ack_list(struct store *s, enum msg_ack ack, const char *endpoint,
		   int64_t delivered_before, size_t limit, store_msg_cb cb,
		   void *arg) STORE_MUST_CHECK;
/* Per endpoint with any, the count of AWAITING messages delivered before
 * delivered_before (now - ack_timeout: the overdue ones): cb(endpoint, n).
 * Returns endpoints passed to cb. Blocks: counts those rows (an index on
 * the tracked ones). */
int store_ack_overdue(struct store *s, int64_t delivered_before, store_tally_cb cb,
		      void *arg) STORE_MUST_CHECK;

/* What the register holds for t's (scope, sender, id): 1 with *same (its
 * digest equals t's) and *msg_id (the message that recorded it), 0 when
 * unknown. Blocks: reads one row. */
int store_txid_lookup(struct store *s, const struct store_txid *t, bool *same,
		      int64_t *msg_id) STORE_MUST_CHECK;

/* ---- retention of what holds patient data ------------------------------ */

/* Records quarantined files q[0..n) as MSG_QUARANTINED rows and sets each
 * id. Never inside a batch. Blocks: one transaction, fsync. */
int store_quarantine_add(struct store *s, struct store_quarantined *q, size_t n) STORE_MUST_CHECK;
/* Drops the bodies of dead letters received before `before` that are not
 * kept and still have one, oldest first, at most limit; their records stay
 * with removed_at = now. Returns rows changed: call again while it returns
 * limit. Blocks: one transaction, fsync, at most limit rows. */
int store_dead_expire(struct store *s, int64_t before, int64_t now,
		      size_t limit) STORE_MUST_CHECK;
/* Quarantined rows received before `before`, not kept, file not removed,
 * ordered by (received_at, id) and after the cursor (after_at, after_id),
 * at most limit. Blocks: reads at most limit rows (an index). */
int store_quarantine_expired(struct store *s, int64_t before, int64_t after_at, int64_t after_id,
			     size_t limit, store_msg_cb cb, void *arg) STORE_MUST_CHECK;
/* Marks the files of quarantined rows ids[0..n) removed at now. Returns how
 * many rows changed (a row already marked, or not quarantined, is left).
 * Blocks: one transaction, fsync. */
int store_quarantine_removed(struct store *s, const int64_t *ids, size_t n,
			     int64_t now) STORE_MUST_CHECK;
/* Sets (keep) or clears the retention exemption of dead letter or
 * quarantined row id: 1 when it is such a row, 0 when not.
 * Blocks: one small transaction, fsync. */
int store_keep(struct store *s, int64_t id, bool keep) STORE_MUST_CHECK;

/* ---- operators' actions on single messages, and their history ---------- */

/* The history of message id (store_event), by time then as recorded.
 * Blocks: reads that message's events (an index). */
int store_events(struct store *s, int64_t id, store_event_cb cb, void *arg) STORE_MUST_CHECK;
/* Ids of messages that key names as `by` says, ascending, each once, at
 * most limit. Blocks: a few index look-ups. */
int store_find(struct store *s, enum store_find by, const char *key, size_t limit,
	       store_id_cb cb, void *arg) STORE_MUST_CHECK;
/* Ends message id, which must be in state from (MSG_DEAD or
 * MSG_QUARANTINED), as MSG_REQUEUED: its body goes (removed_at = ev->at)
 * and ev (kind "requeued", msg_id = id) joins its history; when ev->ref
 * names the message its content became, that one's history gets
 * "requeued-from". 1 when it did, 0 when id is not in state from.
 * Blocks: one small transaction, fsync. */
int store_requeued(struct store *s, int64_t id, enum msg_state from,
		   const struct store_event *ev) STORE_MUST_CHECK;
/* Ends message id, in state from (MSG_QUEUED or MSG_DEAD), as MSG_DELETED
 * with its body dropped, and records ev (kind "deleted") in its history.
 * 1 when it did, 0 when id is not in state from. Blocks: as above. */
int store_delete(struct store *s, int64_t id, enum msg_state from,
		 const struct store_event *ev) STORE_MUST_CHECK;
/* Queues a copy of message id (same endpoint, bytes and metadata, a new id
 * into *new_id, received now, no attempts) without the duplicate check:
 * the same letter once more, on purpose. Records "resent" (ev, with ref =
 * the copy) on id and "resent-from" on the copy. -ENOENT when id has no
 * body any more (or no endpoint). Blocks: one transaction copying the body, fsync. */
int store_resend(struct store *s, int64_t id, const struct store_event *ev,
		 int64_t *new_id) STORE_MUST_CHECK;
/* Holds (held) or releases endpoint, recording when and by whom. 1 when
 * that changed something, 0 when it already was so. Blocks: one small
 * transaction, fsync. */
int store_hold(struct store *s, const char *endpoint, bool held, int64_t at,
	       const char *by) STORE_MUST_CHECK;
/* The endpoints held, by name. Blocks: reads every hold (few). */
int store_holds(struct store *s, store_hold_cb cb, void *arg) STORE_MUST_CHECK;
/* The names of the endpoints held, as an array the caller owns (*names,
 * *n: set also on failure); free each name and the array. */
int store_holds_copy(struct store *s, char ***names, size_t *n) STORE_MUST_CHECK;
/* Bytes the store occupies now into *bytes. Blocks: a few pragma reads. */
int store_size(struct store *s, int64_t *bytes) STORE_MUST_CHECK;

/* ---- the outage procedure's records (records.h) ------------------------ */

/* Saves: inserts when the record's id is 0 (and sets it), else updates
 * that row (-ENOENT when there is none). A failed save keeps nothing and
 * leaves the id as it was. Never inside a store_commit() batch.
 * Blocks: one small transaction each, fsync. */
int store_outage_save(struct store *s, struct outage *o) STORE_MUST_CHECK;
int store_notice_save(struct store *s, struct notice_record *n) STORE_MUST_CHECK;
int store_maintenance_save(struct store *s, struct maint *m) STORE_MUST_CHECK;
/* Appends a send attempt (no id). Blocks: one small transaction, fsync. */
int store_send_record(struct store *s, const struct store_send *x) STORE_MUST_CHECK;

/* Outages not closed, plus those closed at or after closed_since, newest
 * first (by start, then id), at most limit. An outage in a state this
 * version cannot name is left out. Blocks: reads at most limit rows. */
int store_outage_list(struct store *s, int64_t closed_since, size_t limit, store_outage_cb cb,
		      void *arg) STORE_MUST_CHECK;
/* 1 when found (cb called), 0 when not. Blocks: reads one row. */
int store_outage_get(struct store *s, int64_t id, store_outage_cb cb, void *arg) STORE_MUST_CHECK;
/* Notices of an outage (outage_id > 0) or of a maintenance window, oldest
 * first (by created_at). -EINVAL when neither id is > 0.
 * Blocks: reads that outage's notices (a handful). */
int store_notice_list(struct store *s, int64_t outage_id, int64_t maintenance_id,
		      store_notice_cb cb, void *arg) STORE_MUST_CHECK;
/* Notices with channels still pending (pending neither "" nor NULL),
 * oldest first. Blocks: reads the pending ones (an index). */
int store_notice_pending(struct store *s, store_notice_cb cb, void *arg) STORE_MUST_CHECK;
/* Send attempts of a notice, by time then as recorded.
 * Blocks: reads that notice's attempts (at most a few dozen). */
int store_send_list(struct store *s, int64_t notice_id, store_send_cb cb,
		    void *arg) STORE_MUST_CHECK;
/* Windows in force (removed_at == 0) and, with removed, the others too;
 * ordered by from. Blocks: reads every such window (few). */
int store_maintenance_list(struct store *s, bool removed, store_maintenance_cb cb,
			   void *arg) STORE_MUST_CHECK;
/* Queued messages of endpoint grouped by (type, source), in that order.
 * Blocks: visits every queued message of endpoint (an index, no bodies). */
int store_queue_summary(struct store *s, const char *endpoint, store_summary_cb cb,
			void *arg) STORE_MUST_CHECK;
/* Endpoints that ever exchanged messages with endpoint, in either
 * direction (recorded when messages are stored), excluding the broker
 * itself and endpoint; each once, by name. Names may outlive the config.
 * Blocks: reads that endpoint's routes (one per partner). */
int store_partners(struct store *s, const char *endpoint, store_name_cb cb,
		   void *arg) STORE_MUST_CHECK;

/* ---- asynchronous use ---------------------------------------------------- */

struct event_base;

/* The store's lanes: each has a connection of its own, so a commit never
 * waits behind a long read, and a lease renewal behind neither. */
enum store_lane { STORE_LANE_WRITE, STORE_LANE_READ, STORE_LANE_LEASE };
#define STORE_LANES 3

/* work(view, arg) may call any synchronous function above on view (a store
 * on the lane's own connection, or s itself) and touches nothing but arg;
 * done(arg) then runs on the loop. */
typedef void (*store_work_fn)(struct store *view, void *arg);
typedef void (*store_done_fn)(void *arg);

/* From now on a server backend runs store_run() work off the loop, and its
 * completions run on base. Until then, and always for sqlite, work runs at
 * once. Call once, on the loop thread. 0 or -errno. */
int store_attach(struct store *s, struct event_base *base);
/* True when store_run() completes later (a server backend, attached). */
bool store_async(const struct store *s);
/* Runs work(view, arg) and then done(arg): at once, inside this call, for
 * sqlite (the view is s); otherwise off the loop on lane's connection, in
 * submission order per lane, and done later on the loop. done may be NULL. */
void store_run(struct store *s, enum store_lane lane, store_work_fn work, store_done_fn done,
	       void *arg);
/* Runs the done() of finished store_run() work and stops the lanes; work
 * still running is abandoned with its thread and connection. From then on
 * store_run() runs at once, on the loop's handle. For shutdown, before
 * anything a done() touches is freed (store_close() does it otherwise).
 * True when work was abandoned (see store_close()). */
bool store_stop_lanes(struct store *s);
/* True while store_run() work is queued, running or its done() not yet
 * run: a stop waits for it (within its deadline). No I/O. */
bool store_busy(const struct store *s);
/* Waits on the calling (loop) thread until all store_run() work has
 * completed and run its done(), at most timeout_ms: for shutdown. 0 or
 * -ETIMEDOUT. */
int store_drain(struct store *s, int64_t timeout_ms);
/* store_commit() on the write lane: done(err, error, arg) runs once the
 * batch is durable (err 0) or failed (a negative errno, nothing kept; error
 * says why, valid during the call). b and what it points to stay the
 * caller's and must stay valid until then. */
typedef void (*store_commit_done_fn)(int err, const char *error, void *arg);
void store_commit_async(struct store *s, struct store_batch *b, store_commit_done_fn done,
			void *arg);
/* True when message ids are allocated in commit order (one writer: sqlite),
 * so a reader may page the queue by id; false when several daemons write. */
bool store_ids_in_commit_order(const struct store *s);
/* The backend's name: "sqlite" or "postgresql". No I/O. */
const char *store_backend_name(const struct store *s);
/* The schema version of the database and the one this program would
 * migrate it to. Blocks: reads one row. */
int store_schema_version(struct store *s, int64_t *have, int64_t *want) STORE_MUST_CHECK;

/* ---- several daemons on one database: nodes and leases ------------------ */
/*
 * A lease row per endpoint ("ep:NAME": its delivery), per spool inbox
 * ("in:NAME": its pick-up) and one for the outage procedure ("procedure").
 * The holder renews it before it expires (by the server's clock); a lease
 * not renewed is free for any node to claim, which raises its epoch: every
 * write made under a lease carries (lease, epoch) and changes nothing once
 * the epoch has moved on. Only server backends keep leases; sqlite has one
 * daemon and returns -ENOSYS.
 */

/* A lease as the store holds it. Strings are valid during the callback. */
struct store_lease {
	const char *name;
	const char *owner;        /* node holding it; NULL = never held or released */
	int64_t epoch;
	int64_t expires_in_ms;    /* server clock, at the read; <= 0 = expired */
	int failures;             /* an endpoint's delivery backoff, kept across holders */
	int64_t next_attempt_at;  /* wall ms of its next attempt; 0 = none */
};

/* A daemon that shares the database. */
struct store_node {
	const char *name;
	int64_t started_at;       /* wall ms */
	int64_t seen_ago_ms;      /* since its last beat, by the server's clock */
	int64_t pid;
};

/* A delivery result or probe from an endpoint's holder, for the node that
 * runs the outage procedure (health observations from every node). */
struct store_observation {
	const char *endpoint;
	const char *node;
	bool ok, probe;
	int fault;                /* enum transport_fault */
	const char *error;
	int64_t delivered;
	int64_t at;               /* wall ms */
};

typedef int (*store_lease_cb)(const struct store_lease *l, void *arg);
typedef int (*store_node_cb)(const struct store_node *n, void *arg);
typedef int (*store_observation_cb)(const struct store_observation *o, void *arg);

/* True when the backend keeps nodes and leases (several daemons share it). */
bool store_shared(const struct store *s);
/* This daemon's name in the cluster (store_options.node). No I/O. */
const char *store_node_name(const struct store *s);
/* Records that this node (this process, started at started_at) is alive,
 * and makes the lease rows names[0..n) that do not exist yet. -EEXIST when
 * another process beat under this node's name within ttl_ms: two daemons
 * must not share a name (nor its leases). Blocks: one small transaction. */
int store_node_beat(struct store *s, int64_t started_at, int64_t ttl_ms, const char *const *names,
		    size_t n) STORE_MUST_CHECK;
/* Renews held[0..n) for ttl_ms where this node still holds them at that
 * epoch and they have not expired: renewed[i] says which. Returns how many.
 * Blocks: one small transaction. */
int store_lease_renew(struct store *s, const struct store_fence *held, size_t n, int64_t ttl_ms,
		      bool *renewed) STORE_MUST_CHECK;
/* Claims, for ttl_ms, at most limit of the leases names[0..n) that are
 * free or expired (skipping rows another node is claiming); cb gets each
 * won, with its new epoch and the backoff its last holder left. Returns how
 * many. Blocks: one small transaction. */
int store_lease_claim(struct store *s, const char *const *names, size_t n, int64_t ttl_ms,
		      size_t limit, store_lease_cb cb, void *arg) STORE_MUST_CHECK;
/* This process stops in order: its node row says so (pid 0), so a daemon
 * started next under the same name need not wait for the row to go quiet.
 * 1 when the row was this process's, 0 when not, -errno. Blocks: one
 * small statement. 0 on a backend without nodes. */
int store_node_leave(struct store *s, int64_t started_at) STORE_MUST_CHECK;
/* Gives up held[0..n) (an orderly stop): free for others at once. */
int store_lease_release(struct store *s, const struct store_fence *held,
			size_t n) STORE_MUST_CHECK;
/* Every lease, by name. Blocks: reads the lease table (a row per endpoint). */
int store_leases(struct store *s, store_lease_cb cb, void *arg) STORE_MUST_CHECK;
/* Every node, by name. Blocks: reads the node table. */
int store_nodes(struct store *s, store_node_cb cb, void *arg) STORE_MUST_CHECK;
/* Keeps an endpoint's delivery backoff in its lease row, while f is held.
 * 1 when written, 0 when the lease is gone. Blocks: one small transaction. */
int store_lease_backoff(struct store *s, const struct store_fence *f, int failures,
			int64_t next_attempt_at) STORE_MUST_CHECK;
/* Appends an observation for the procedure's holder. Blocks: one insert. */
int store_observation_add(struct store *s, const struct store_observation *o) STORE_MUST_CHECK;
/* Takes (deletes and passes to cb, oldest first) at most limit
 * observations made by other nodes. Blocks: one small transaction. */
int store_observations_take(struct store *s, size_t limit, store_observation_cb cb,
			    void *arg) STORE_MUST_CHECK;
/* Record saves (outages, notices, windows, sends) on s from now on happen
 * only while f is held (the procedure's lease), else fail with -ESTALE;
 * NULL: unfenced. f is copied. No I/O. */
void store_fence_records(struct store *s, const struct store_fence *f);

#endif
