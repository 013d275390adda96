/*
 * store_sqlite.c - the SQLite backend of the message store.
 *
 * Owns <state_dir>/edibroker.db: the connection settings, the schema
 * (versioned by PRAGMA user_version and upgraded by migrations[]) and every
 * SQL statement, behind the table of store_backend.h. Only store.c calls
 * it: one transaction per loop turn through begin / key_* / msg_* /
 * commit, and the queries and record saves of the front end (store.h) that
 * delivery, the control socket and the outage procedure use. The outage
 * procedure's records (records.h: outages, notices, maintenance windows,
 * plus send attempts) are bound and read field by field, each save a
 * transaction of its own, and msg_insert records who sends to whom (routes)
 * so a notice can name the organisations an outage affects. Quarantined
 * inbound files are message rows too (state 3, no body), so that dead
 * letters and quarantined files share one retention: dead_expire drops old
 * bodies, quarantine_expired names the files due, and keep exempts a row.
 * A message's history beyond its row (failed attempts with their fault,
 * duplicates received later, operators' requeue, resend and delete) is in
 * events; find looks messages up by envelope, letter and transmission ids
 * for a trace; holds lists the endpoints an operator paused. ingest_tokens
 * names the units a source may offer again after a lost answer or a crash
 * between commit and answer (store.h: store_new.token), as PostgreSQL's.
 *
 * Invariants:
 *  - journal_mode=WAL with synchronous=FULL: COMMIT returns only after the
 *    WAL is fsynced, so commit() returning 0 means durable (NORMAL may lose
 *    the last transactions on power loss, reliability.md 0.6).
 *  - message ids come from AUTOINCREMENT: never reused, even after prune
 *    deleted the newest rows, because delivered file names derive from them.
 *  - a message row and its body are inserted in one transaction; a body is
 *    dropped only after its message was delivered, and body_kept says so.
 *  - statements are prepared once at open and reset after every use, and a
 *    failed transaction is rolled back, so an error (disk full, I/O) leaves
 *    the connection usable for the next commit.
 *  - a save of an outage record never runs inside a batch: BEGIN would find
 *    the batch open (in_batch tracks it; asserted).
 *  - one connection used from one thread, the event loop, hence
 *    SQLITE_OPEN_NOMUTEX. It never crosses fork(): close() in a child
 *    leaves the database alone, and begin() asserts the owning process.
 */
#include "store/store_sqlite.h"

#include "store/store_backend.h"
#include "codecs/base/mem.h"
#include "codecs/base/utf8.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#define DB_FILE "edibroker.db"
#define BUSY_TIMEOUT_MS 2000   /* a reader (edibrokerctl) checkpointing; far below the watchdog */
#define WAL_LIMIT_BYTES 4194304 /* WAL truncated to this after a checkpoint (~autocheckpoint) */
#define VACUUM_KEEP_PAGES 256  /* free pages left for new messages to reuse */
#define VACUUM_PAGES 512       /* at most this many pages returned per prune() */
#define ERROR_MAX 1000         /* bytes of a delivery error kept in last_error */

#define STR_(x) #x
#define STR(x) STR_(x)

/*
 * Schema. migrations[i] takes user_version i to i + 1; append, never edit.
 * No CHECK constraints on state: SQLite cannot alter them without a table
 * rebuild, and later issues add states.
 */
static const char *const migrations[] = {
	/* 1: messages, their bodies, letter keys for duplicate detection. */
	"CREATE TABLE meta ("
	"  key   TEXT PRIMARY KEY NOT NULL,"
	"  value TEXT NOT NULL"
	") WITHOUT ROWID;"
	"CREATE TABLE messages ("
	"  id           INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  state        INTEGER NOT NULL,"
	"  source       TEXT,"
	"  endpoint     TEXT,"
	"  reason       TEXT,"
	"  format       TEXT,"
	"  ext          TEXT,"
	"  type         TEXT,"
	"  envelope_id  TEXT,"
	"  sender       TEXT,"
	"  receiver     TEXT,"
	"  nletters     INTEGER NOT NULL DEFAULT 0,"
	"  attempts     INTEGER NOT NULL DEFAULT 0,"
	"  last_error   TEXT,"
	"  received_at  INTEGER NOT NULL,"
	"  delivered_at INTEGER,"
	"  size         INTEGER NOT NULL,"
	"  body_kept    INTEGER NOT NULL DEFAULT 1"
	");"
	/* Separate, so metadata scans never read a body page. */
	"CREATE TABLE bodies ("
	"  id   INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,"
	"  body BLOB NOT NULL"
	");"
	/* No foreign key to messages: keys are pruned on their own clock. */
	"CREATE TABLE letter_keys ("
	"  sender    TEXT NOT NULL,"
	"  letter_id TEXT NOT NULL,"
	"  msg_id    INTEGER NOT NULL,"
	"  seen_at   INTEGER NOT NULL,"
	"  PRIMARY KEY (sender, letter_id)"
	") WITHOUT ROWID;"
	/* fetch_queued, list/count of queued. received_at and state make depths
	 * and count covering (SQLite 3.40 needs the WHERE's column listed). */
	"CREATE INDEX messages_queued ON messages (endpoint, id, received_at, state) "
	"WHERE state = 0;"
	/* history prune, count of delivered */
	"CREATE INDEX messages_delivered ON messages (delivered_at) WHERE state = 1;"
	/* body prune: only rows that still have a body, so it never rescans history */
	"CREATE INDEX messages_body_kept ON messages (delivered_at) WHERE state = 1 AND body_kept = 1;"
	"CREATE INDEX messages_dead ON messages (id) WHERE state = 2;"
	"CREATE INDEX letter_keys_seen ON letter_keys (seen_at);",

	/* 2: the outage procedure (issue 3); statements name every column
	 * (the *_COLS lists below). Ids shown to operators (outage,
	 * maintenance) come from AUTOINCREMENT so a removed row's id never
	 * names another. Times are wall ms, 0 = not yet; no foreign keys,
	 * since 0 means "none" in the *_id columns. Outages and windows are
	 * few (tens a year): their lists scan the table. */
	"CREATE TABLE outages ("
	"  id               INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  endpoint         TEXT NOT NULL,"
	"  state            TEXT NOT NULL,"
	"  cause_fault      TEXT,"
	"  cause_error      TEXT,"
	"  cause_override   TEXT,"
	"  contact_override TEXT,"
	"  manual           INTEGER NOT NULL,"
	"  started_at       INTEGER NOT NULL,"
	"  declared_at      INTEGER NOT NULL,"
	"  ended_at         INTEGER NOT NULL,"
	"  resolved_at      INTEGER NOT NULL,"
	"  closed_at        INTEGER NOT NULL,"
	"  announced_at     INTEGER NOT NULL,"
	"  last_notice_at   INTEGER NOT NULL,"
	"  due_at           INTEGER NOT NULL,"
	"  expected_end     INTEGER NOT NULL,"
	"  maintenance_id   INTEGER NOT NULL,"
	"  delivered_late   INTEGER NOT NULL"
	");"
	/* pending NULL reads as "nothing pending", like "" */
	"CREATE TABLE notices ("
	"  id              INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  kind            TEXT,"
	"  audience        TEXT,"
	"  recipients      TEXT,"
	"  subject         TEXT,"
	"  body            TEXT,"
	"  payload         TEXT,"
	"  pending         TEXT,"
	"  outage_id       INTEGER NOT NULL,"
	"  maintenance_id  INTEGER NOT NULL,"
	"  created_at      INTEGER NOT NULL,"
	"  attempts        INTEGER NOT NULL,"
	"  next_attempt_at INTEGER NOT NULL"
	");"
	"CREATE INDEX notices_outage ON notices (outage_id, created_at);"
	"CREATE INDEX notices_maintenance ON notices (maintenance_id, created_at);"
	/* the retry timer's scan: only notices still owed a channel */
	"CREATE INDEX notices_pending ON notices (created_at) WHERE pending <> '';"
	"CREATE TABLE notice_sends ("
	"  channel    TEXT NOT NULL,"
	"  recipients TEXT,"
	"  error      TEXT,"
	"  notice_id  INTEGER NOT NULL,"
	"  at         INTEGER NOT NULL,"
	"  ok         INTEGER NOT NULL"
	");"
	"CREATE INDEX notice_sends_notice ON notice_sends (notice_id, at);"
	"CREATE TABLE maintenance ("
	"  id           INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  endpoint     TEXT NOT NULL,"
	"  reason       TEXT,"
	"  contact      TEXT,"
	"  from_at      INTEGER NOT NULL,"
	"  to_at        INTEGER NOT NULL,"
	"  created_at   INTEGER NOT NULL,"
	"  removed_at   INTEGER NOT NULL,"
	"  announced_at INTEGER NOT NULL,"
	"  ended_at     INTEGER NOT NULL"
	");"
	/* Who sends to whom, for partners(). msg_insert adds a pair with
	 * INSERT OR IGNORE on every queued message: a known pair is one b-tree
	 * probe and writes no page. The second index serves the other
	 * direction (the primary key columns ride along: covering). */
	"CREATE TABLE routes ("
	"  source   TEXT NOT NULL,"
	"  endpoint TEXT NOT NULL,"
	"  PRIMARY KEY (source, endpoint)"
	") WITHOUT ROWID;"
	"CREATE INDEX routes_endpoint ON routes (endpoint);"
	/* messages queued before this upgrade name their partners too */
	"INSERT OR IGNORE INTO routes (source, endpoint) SELECT source, endpoint FROM messages "
	"WHERE source IS NOT NULL AND endpoint IS NOT NULL AND source <> '" STORE_SOURCE_BROKER "';",

	/* 3: transmission ids (issue 10): the id a wrapping or a FHIR Bundle
	 * carried a message under, and a digest of that content, so one reused
	 * for other content is caught. Like letter_keys: no foreign key,
	 * pruned on the history clock. */
	"CREATE TABLE txids ("
	"  scope   TEXT NOT NULL,"
	"  sender  TEXT NOT NULL,"
	"  id      TEXT NOT NULL,"
	"  digest  BLOB NOT NULL,"
	"  msg_id  INTEGER NOT NULL,"
	"  seen_at INTEGER NOT NULL,"
	"  PRIMARY KEY (scope, sender, id)"
	") WITHOUT ROWID;"
	"CREATE INDEX txids_seen ON txids (seen_at);",

	/* 4: the operator's fallback contact for one outage (issue 12): whom
	 * staff phone while its messages cannot go, over the endpoint's
	 * fallback_contact. NULL = none, as the other overrides. */
	"ALTER TABLE outages ADD COLUMN fallback_override TEXT;",

	/* 5: retention of what holds patient data, and who changed what (issue
	 * 8). Quarantined files become rows in state 3 (no body; file and
	 * error_class say where and why). keep exempts a dead letter or a
	 * quarantined file from retention; removed_at records when retention
	 * dropped its body or removed its file. changed_by names the operator
	 * behind the last change made by hand. The retention scans read only
	 * the rows still due (partial indexes on the literal states). */
	"ALTER TABLE messages ADD COLUMN keep INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE messages ADD COLUMN removed_at INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE messages ADD COLUMN file TEXT;"
	"ALTER TABLE messages ADD COLUMN error_class TEXT;"
	"ALTER TABLE outages ADD COLUMN changed_by TEXT;"
	"ALTER TABLE maintenance ADD COLUMN changed_by TEXT;"
	"CREATE INDEX messages_quarantined ON messages (id) WHERE state = 3;"
	"CREATE INDEX messages_dead_due ON messages (received_at, id) "
	"WHERE state = 2 AND body_kept = 1 AND keep = 0;"
	"CREATE INDEX messages_quarantine_due ON messages (received_at, id) "
	"WHERE state = 3 AND removed_at = 0 AND keep = 0;",

	/* 6: operators' actions on single messages (issue 13). A message is
	 * traced by its envelope id, a letter id (the first letter's is kept
	 * on the row, so dead letters, which record no keys, are found too),
	 * a wrapping's or Bundle's transmission id, and the envelope a receipt
	 * the broker issued answers (refers). events holds what a row cannot:
	 * failed attempts, duplicates received later, operators' changes;
	 * pruned on the history clock. holds are endpoints an operator paused.
	 * States 4 (requeued) and 5 (deleted) need no index: no scan asks
	 * for them. */
	"ALTER TABLE messages ADD COLUMN letter_id TEXT;"
	"ALTER TABLE messages ADD COLUMN refers TEXT;"
	"CREATE INDEX messages_envelope ON messages (envelope_id) WHERE envelope_id IS NOT NULL;"
	"CREATE INDEX messages_letter ON messages (letter_id) WHERE letter_id IS NOT NULL;"
	"CREATE INDEX messages_refers ON messages (refers) WHERE refers IS NOT NULL;"
	"CREATE INDEX letter_keys_letter ON letter_keys (letter_id);"
	"CREATE INDEX txids_id ON txids (id);"
	"CREATE TABLE events ("
	"  id         INTEGER PRIMARY KEY,"
	"  msg_id     INTEGER NOT NULL,"
	"  at         INTEGER NOT NULL,"
	"  kind       TEXT NOT NULL,"
	"  fault      TEXT,"
	"  detail     TEXT,"
	"  changed_by TEXT,"
	"  ref        INTEGER NOT NULL DEFAULT 0"
	");"
	"CREATE INDEX events_msg ON events (msg_id, at);"
	"CREATE INDEX events_at ON events (at);"
	"CREATE TABLE holds ("
	"  endpoint   TEXT PRIMARY KEY NOT NULL,"
	"  at         INTEGER NOT NULL,"
	"  changed_by TEXT"
	") WITHOUT ROWID;",

	/* 7: acknowledgement tracking (issue 11): where a message that asks
	 * for an acknowledgement is (enum msg_ack: 0 none, 1 pending, 2
	 * awaiting, 3 acknowledged, 4 negative, 5 transient), the message that
	 * acknowledged it, when, and its verdict in the format's words. The
	 * lists of one state read only tracked rows (ack_state > 1, written as
	 * a literal in their statements), by delivery time; an acknowledgement
	 * that names a whole envelope finds it by sender and envelope id. */
	"ALTER TABLE messages ADD COLUMN ack_state INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE messages ADD COLUMN ack_msg INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE messages ADD COLUMN ack_at INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE messages ADD COLUMN ack_code TEXT;"
	"CREATE INDEX messages_ack ON messages (ack_state, delivered_at, id) WHERE ack_state > 1;"
	"CREATE INDEX messages_ack_envelope ON messages (sender, envelope_id) WHERE ack_state > 0;",

	/* 8: ingest tokens (issue 15): the unit a source may offer again after
	 * a lost answer or a kill -9 between commit and answer (a spool file
	 * by identity, an HTTP or ZeroMQ body by its source and digest), and
	 * the message it became, so the replay is answered as the first copy
	 * was and stores nothing. As PostgreSQL's table; like letter_keys: no
	 * foreign key, pruned on the history clock. */
	"CREATE TABLE ingest_tokens ("
	"  token   TEXT PRIMARY KEY NOT NULL,"
	"  msg_id  INTEGER NOT NULL,"
	"  seen_at INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"CREATE INDEX ingest_tokens_seen ON ingest_tokens (seen_at);",
};

/* Connection settings for a read-write open, in this order. */
static const char *const rw_pragmas[] = {
	"PRAGMA auto_vacuum = INCREMENTAL", /* before the first CREATE TABLE; no-op later */
	"PRAGMA synchronous = FULL",
	"PRAGMA foreign_keys = ON",
	"PRAGMA secure_delete = OFF", /* Debian's default is ON: every free would rewrite pages */
	"PRAGMA journal_size_limit = " STR(WAL_LIMIT_BYTES),
};

/* The columns of a store_msg, in the order of enum msg_col. */
#define MSG_COLS                                                                                   \
	"m.id, m.state, m.source, m.endpoint, m.format, m.ext, m.type, m.envelope_id, m.sender, " \
	"m.receiver, m.reason, m.last_error, m.nletters, m.attempts, m.received_at, "             \
	"m.delivered_at, m.size, m.keep, m.removed_at, m.file, m.error_class, m.letter_id, "       \
	"m.refers, m.ack_state, m.ack_msg, m.ack_at, m.ack_code"

enum msg_col {
	C_ID, C_STATE, C_SOURCE, C_ENDPOINT, C_FORMAT, C_EXT, C_TYPE, C_ENVELOPE_ID, C_SENDER,
	C_RECEIVER, C_REASON, C_LAST_ERROR, C_NLETTERS, C_ATTEMPTS, C_RECEIVED_AT,
	C_DELIVERED_AT, C_SIZE, C_KEEP, C_REMOVED_AT, C_FILE, C_ERROR_CLASS, C_LETTER_ID,
	C_REFERS, C_ACK_STATE, C_ACK_MSG, C_ACK_AT, C_ACK_CODE, C_BODY,
};

/* The subquery choosing delivered messages whose body may go (?1 before, ?2 limit). */
#define BODY_PRUNE_IDS                                                                             \
	"SELECT id FROM messages WHERE state = 1 AND body_kept = 1 AND delivered_at < ?1 "        \
	"ORDER BY delivered_at, id LIMIT ?2"

/* The dead letters whose body retention drops (?1 before, ?2 limit); the
 * same rows for both statements of dead_expire, as for BODY_PRUNE_IDS. */
#define DEAD_DUE_IDS                                                                               \
	"SELECT id FROM messages WHERE state = 2 AND body_kept = 1 AND keep = 0 "                 \
	"AND received_at < ?1 ORDER BY received_at, id LIMIT ?2"

/*
 * The outage records' columns: text columns first, then numbers, in the
 * order of the matching *_cols[] descriptor tables below. A write binds
 * them as ?1..?n (and the row id as ?n+1 in an UPDATE); a read selects
 * them followed by id, so column i is parameter i+1.
 */
#define OUTAGE_COLS                                                                                \
	"endpoint, state, cause_fault, cause_error, cause_override, contact_override, "           \
	"fallback_override, manual, started_at, declared_at, ended_at, resolved_at, closed_at, "  \
	"announced_at, last_notice_at, due_at, expected_end, maintenance_id, delivered_late, "    \
	"changed_by"
#define NOTICE_COLS                                                                                \
	"kind, audience, recipients, subject, body, payload, pending, outage_id, "                \
	"maintenance_id, created_at, attempts, next_attempt_at"
#define SEND_COLS "channel, recipients, error, notice_id, at, ok"
#define MAINT_COLS                                                                                 \
	"endpoint, reason, contact, from_at, to_at, created_at, removed_at, announced_at, ended_at, " \
	"changed_by"

#define P3 "?, ?, ?"
#define P6 P3 ", " P3
#define P9 P6 ", " P3
#define P12 P6 ", " P6
#define P10 P9 ", ?"
#define P18 P12 ", " P6
#define P20 P18 ", ?, ?"

/* Per-state statements are spelled out: a partial index is used only when
 * the query's WHERE names the state as a literal. */
enum stmt_id {
	S_BEGIN, S_COMMIT, S_ROLLBACK,
	S_KEY_LOOKUP, S_KEY_INSERT, S_TOKEN_LOOKUP, S_TOKEN_INSERT, S_TXID_LOOKUP, S_TXID_INSERT, S_MSG_INSERT, S_BODY_INSERT, S_ROUTE_INSERT, S_DELIVERED,
	S_ATTEMPT, S_REFUSED,
	S_FETCH, S_FETCH_EXCEPT, S_DEPTHS, S_GET, S_GET_BODY,
	S_LIST_0, S_LIST_1, S_LIST_2, S_LIST_3, S_LIST_4, S_LIST_5,
	S_LIST_EP_0, S_LIST_EP_1, S_LIST_EP_2, S_LIST_EP_3, S_LIST_EP_4, S_LIST_EP_5,
	S_COUNT_0, S_COUNT_1, S_COUNT_2, S_COUNT_3, S_COUNT_4, S_COUNT_5,
	S_PRUNE_BODIES, S_PRUNE_KEPT, S_PRUNE_MSGS, S_PRUNE_KEYS, S_PRUNE_TXIDS, S_PRUNE_TOKENS,
	S_PRUNE_EVENTS, S_FREELIST, S_VACUUM,
	S_QUARANTINE_INSERT, S_DEAD_DROP_BODIES, S_DEAD_MARK, S_QUARANTINE_DUE,
	S_QUARANTINE_REMOVED, S_KEEP,
	S_OUTAGE_INSERT, S_OUTAGE_UPDATE, S_OUTAGE_LIST, S_OUTAGE_GET,
	S_NOTICE_INSERT, S_NOTICE_UPDATE, S_NOTICE_BY_OUTAGE, S_NOTICE_BY_MAINT, S_NOTICE_PENDING,
	S_SEND_INSERT, S_SEND_LIST,
	S_MAINT_INSERT, S_MAINT_UPDATE, S_MAINT_LIST, S_MAINT_LIST_ALL,
	S_QUEUE_SUMMARY, S_PARTNERS,
	S_EVENT_INSERT, S_EVENTS, S_STATE_SET, S_BODY_DROP, S_MSG_COPY, S_BODY_COPY,
	S_HOLD_INSERT, S_HOLD_DELETE, S_HOLDS,
	S_FIND_ENVELOPE, S_FIND_LETTER, S_FIND_BUNDLE, S_FIND_REFERS, S_PAGE_COUNT, S_PAGE_SIZE,
	S_ENVELOPE_LOOKUP, S_ACK_SET, S_ACK_LIST, S_ACK_LIST_EP, S_ACK_OVERDUE,
	S__COUNT
};

#define LIST_SQL(state) "SELECT " MSG_COLS " FROM messages m WHERE m.state = " #state
#define LIST_TAIL " ORDER BY m.id LIMIT ?1"

static const char *const stmt_sql[S__COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE", /* take the write lock now, not at the first write */
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_KEY_LOOKUP] = "SELECT msg_id FROM letter_keys WHERE sender = ?1 AND letter_id = ?2",
	[S_KEY_INSERT] = "INSERT INTO letter_keys (sender, letter_id, msg_id, seen_at) "
			 "VALUES (?1, ?2, ?3, ?4)",
	/* with the message's state and reason: a replay answers as it did; a
	 * pruned message (no row) was delivered */
	[S_TOKEN_LOOKUP] = "SELECT t.msg_id, m.state, m.reason FROM ingest_tokens t "
			   "LEFT JOIN messages m ON m.id = t.msg_id WHERE t.token = ?1",
	[S_TOKEN_INSERT] = "INSERT INTO ingest_tokens (token, msg_id, seen_at) VALUES (?1, ?2, ?3)",
	[S_TXID_LOOKUP] = "SELECT digest, msg_id FROM txids WHERE scope = ?1 AND sender = ?2 AND id = ?3",
	[S_TXID_INSERT] = "INSERT INTO txids (scope, sender, id, digest, msg_id, seen_at) "
			  "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[S_MSG_INSERT] = "INSERT INTO messages (state, source, endpoint, reason, format, ext, type, "
			 "envelope_id, sender, receiver, nletters, received_at, size, letter_id, "
			 "refers, ack_state) "
			 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
	[S_BODY_INSERT] = "INSERT INTO bodies (id, body) VALUES (?1, ?2)",
	[S_ROUTE_INSERT] = "INSERT OR IGNORE INTO routes (source, endpoint) VALUES (?1, ?2)",
	/* pending (1) becomes awaiting (2) with the delivery */
	[S_DELIVERED] = "UPDATE messages SET state = 1, delivered_at = ?2, "
			"ack_state = CASE ack_state WHEN 1 THEN 2 ELSE ack_state END "
			"WHERE id = ?1 AND state = 0",
	[S_ATTEMPT] = "UPDATE messages SET attempts = attempts + 1, last_error = ?2 "
		      "WHERE id = ?1 AND state = 0",
	[S_REFUSED] = "UPDATE messages SET state = 2, attempts = attempts + 1, reason = ?2, "
		      "last_error = ?2, ack_state = 0 WHERE id = ?1 AND state = 0",
	[S_FETCH] = "SELECT " MSG_COLS ", b.body FROM messages m LEFT JOIN bodies b ON b.id = m.id "
		    "WHERE m.state = 0 AND m.endpoint = ?1 AND m.id > ?2 ORDER BY m.id LIMIT ?3",
	/* ids the reader holds, as a JSON array (?4) */
	[S_FETCH_EXCEPT] = "SELECT " MSG_COLS ", b.body FROM messages m "
			   "LEFT JOIN bodies b ON b.id = m.id WHERE m.state = 0 AND m.endpoint = ?1 "
			   "AND m.id > ?2 AND m.id NOT IN (SELECT value FROM json_each(?4)) "
			   "ORDER BY m.id LIMIT ?3",
	[S_DEPTHS] = "SELECT endpoint, count(*), min(received_at), sum(size) FROM messages "
		     "WHERE state = 0 "
		     "GROUP BY endpoint ORDER BY endpoint",
	[S_GET] = "SELECT " MSG_COLS ", NULL FROM messages m WHERE m.id = ?1",
	[S_GET_BODY] = "SELECT " MSG_COLS ", b.body FROM messages m "
		       "LEFT JOIN bodies b ON b.id = m.id WHERE m.id = ?1",
	/* queued rows are the newest: sort them rather than scan all history */
	[S_LIST_0] = "SELECT " MSG_COLS " FROM messages m INDEXED BY messages_queued "
		     "WHERE m.state = 0" LIST_TAIL,
	[S_LIST_1] = LIST_SQL(1) LIST_TAIL,
	[S_LIST_2] = LIST_SQL(2) LIST_TAIL,
	[S_LIST_3] = LIST_SQL(3) LIST_TAIL,
	[S_LIST_4] = LIST_SQL(4) LIST_TAIL,
	[S_LIST_5] = LIST_SQL(5) LIST_TAIL,
	[S_LIST_EP_0] = LIST_SQL(0) " AND m.endpoint = ?2" LIST_TAIL,
	[S_LIST_EP_1] = LIST_SQL(1) " AND m.endpoint = ?2" LIST_TAIL,
	[S_LIST_EP_2] = LIST_SQL(2) " AND m.endpoint = ?2" LIST_TAIL,
	/* a quarantined row's endpoint is the one whose inbox held it: its source */
	[S_LIST_EP_3] = LIST_SQL(3) " AND m.source = ?2" LIST_TAIL,
	[S_LIST_EP_4] = LIST_SQL(4) " AND m.endpoint = ?2" LIST_TAIL,
	[S_LIST_EP_5] = LIST_SQL(5) " AND m.endpoint = ?2" LIST_TAIL,
	[S_COUNT_0] = "SELECT count(*) FROM messages WHERE state = 0",
	[S_COUNT_1] = "SELECT count(*) FROM messages WHERE state = 1",
	[S_COUNT_2] = "SELECT count(*) FROM messages WHERE state = 2",
	[S_COUNT_3] = "SELECT count(*) FROM messages WHERE state = 3",
	[S_COUNT_4] = "SELECT count(*) FROM messages WHERE state = 4",
	[S_COUNT_5] = "SELECT count(*) FROM messages WHERE state = 5",
	/* S_PRUNE_BODIES and S_PRUNE_KEPT run back to back with the same
	 * parameters: the subquery reads only messages, which the first does
	 * not change, so both see the same rows. */
	[S_PRUNE_BODIES] = "DELETE FROM bodies WHERE id IN (" BODY_PRUNE_IDS ")",
	[S_PRUNE_KEPT] = "UPDATE messages SET body_kept = 0 WHERE id IN (" BODY_PRUNE_IDS ")",
	[S_PRUNE_MSGS] = "DELETE FROM messages WHERE id IN (SELECT id FROM messages "
			 "WHERE state = 1 AND delivered_at < ?1 ORDER BY delivered_at LIMIT ?2)",
	[S_PRUNE_KEYS] = "DELETE FROM letter_keys WHERE (sender, letter_id) IN (SELECT sender, "
			 "letter_id FROM letter_keys WHERE seen_at < ?1 ORDER BY seen_at LIMIT ?2)",
	[S_PRUNE_TXIDS] = "DELETE FROM txids WHERE (scope, sender, id) IN (SELECT scope, sender, "
			  "id FROM txids WHERE seen_at < ?1 ORDER BY seen_at LIMIT ?2)",
	[S_PRUNE_TOKENS] = "DELETE FROM ingest_tokens WHERE token IN (SELECT token FROM "
			   "ingest_tokens WHERE seen_at < ?1 ORDER BY seen_at LIMIT ?2)",
	[S_PRUNE_EVENTS] = "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE at < ?1 "
			   "ORDER BY at LIMIT ?2)",
	[S_FREELIST] = "PRAGMA freelist_count",
	[S_VACUUM] = "PRAGMA incremental_vacuum(" STR(VACUUM_PAGES) ")",
	/* body_kept = 0: a quarantined file's bytes never enter the store */
	[S_QUARANTINE_INSERT] = "INSERT INTO messages (state, source, reason, file, error_class, "
				"received_at, size, body_kept) VALUES (3, ?1, ?2, ?3, ?4, ?5, ?6, 0)",
	/* S_DEAD_DROP_BODIES then S_DEAD_MARK, as S_PRUNE_BODIES and S_PRUNE_KEPT */
	[S_DEAD_DROP_BODIES] = "DELETE FROM bodies WHERE id IN (" DEAD_DUE_IDS ")",
	[S_DEAD_MARK] = "UPDATE messages SET body_kept = 0, removed_at = ?3 "
			"WHERE id IN (" DEAD_DUE_IDS ")",
	[S_QUARANTINE_DUE] = "SELECT " MSG_COLS " FROM messages m WHERE m.state = 3 "
			     "AND m.removed_at = 0 AND m.keep = 0 AND m.received_at < ?1 "
			     "AND (m.received_at, m.id) > (?2, ?3) "
			     "ORDER BY m.received_at, m.id LIMIT ?4",
	[S_QUARANTINE_REMOVED] = "UPDATE messages SET removed_at = ?2 "
				 "WHERE id = ?1 AND state = 3 AND removed_at = 0",
	[S_KEEP] = "UPDATE messages SET keep = ?2 WHERE id = ?1 AND state IN (2, 3)",
	[S_OUTAGE_INSERT] = "INSERT INTO outages (" OUTAGE_COLS ") VALUES (" P20 ")",
	[S_OUTAGE_UPDATE] = "UPDATE outages SET (" OUTAGE_COLS ") = (" P20 ") WHERE id = ?",
	[S_OUTAGE_LIST] = "SELECT " OUTAGE_COLS ", id FROM outages "
			  "WHERE state <> 'closed' OR closed_at >= ?1 "
			  "ORDER BY started_at DESC, id DESC LIMIT ?2",
	[S_OUTAGE_GET] = "SELECT " OUTAGE_COLS ", id FROM outages WHERE id = ?1",
	[S_NOTICE_INSERT] = "INSERT INTO notices (" NOTICE_COLS ") VALUES (" P12 ")",
	[S_NOTICE_UPDATE] = "UPDATE notices SET (" NOTICE_COLS ") = (" P12 ") WHERE id = ?",
	[S_NOTICE_BY_OUTAGE] = "SELECT " NOTICE_COLS ", id FROM notices WHERE outage_id = ?1 "
			       "ORDER BY created_at, id",
	[S_NOTICE_BY_MAINT] = "SELECT " NOTICE_COLS ", id FROM notices WHERE maintenance_id = ?1 "
			      "ORDER BY created_at, id",
	[S_NOTICE_PENDING] = "SELECT " NOTICE_COLS ", id FROM notices WHERE pending <> '' "
			     "ORDER BY created_at, id",
	[S_SEND_INSERT] = "INSERT INTO notice_sends (" SEND_COLS ") VALUES (" P6 ")",
	[S_SEND_LIST] = "SELECT " SEND_COLS " FROM notice_sends WHERE notice_id = ?1 "
			"ORDER BY at, rowid",
	[S_MAINT_INSERT] = "INSERT INTO maintenance (" MAINT_COLS ") VALUES (" P10 ")",
	[S_MAINT_UPDATE] = "UPDATE maintenance SET (" MAINT_COLS ") = (" P10 ") WHERE id = ?",
	[S_MAINT_LIST] = "SELECT " MAINT_COLS ", id FROM maintenance WHERE removed_at = 0 "
			 "ORDER BY from_at, id",
	[S_MAINT_LIST_ALL] = "SELECT " MAINT_COLS ", id FROM maintenance ORDER BY from_at, id",
	/* state = 0 as a literal: served by messages_queued (endpoint = ?1) */
	[S_QUEUE_SUMMARY] = "SELECT type, source, count(*), min(received_at) FROM messages "
			    "WHERE state = 0 AND endpoint = ?1 GROUP BY type, source "
			    "ORDER BY type, source",
	/* UNION: each name once, sorted; the endpoint itself is no partner */
	[S_PARTNERS] = "SELECT endpoint FROM routes WHERE source = ?1 AND endpoint <> ?1 "
		       "UNION SELECT source FROM routes WHERE endpoint = ?1 AND source <> ?1",
	[S_EVENT_INSERT] = "INSERT INTO events (msg_id, at, kind, fault, detail, changed_by, ref) "
			   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[S_EVENTS] = "SELECT msg_id, at, kind, fault, detail, changed_by, ref FROM events "
		     "WHERE msg_id = ?1 ORDER BY at, id",
	[S_STATE_SET] = "UPDATE messages SET state = ?3, body_kept = 0, removed_at = ?4 "
			"WHERE id = ?1 AND state = ?2",
	[S_BODY_DROP] = "DELETE FROM bodies WHERE id = ?1",
	/* a copy only of a row that still has its body and an endpoint */
	[S_MSG_COPY] = "INSERT INTO messages (state, source, endpoint, format, ext, type, envelope_id, "
		       "sender, receiver, nletters, received_at, size, letter_id, refers) "
		       "SELECT 0, source, endpoint, format, ext, type, envelope_id, sender, receiver, "
		       "nletters, ?2, size, letter_id, refers FROM messages "
		       "WHERE id = ?1 AND endpoint IS NOT NULL AND body_kept = 1 "
		       "AND EXISTS (SELECT 1 FROM bodies WHERE id = ?1)",
	[S_BODY_COPY] = "INSERT INTO bodies (id, body) SELECT ?2, body FROM bodies WHERE id = ?1",
	[S_HOLD_INSERT] = "INSERT OR IGNORE INTO holds (endpoint, at, changed_by) VALUES (?1, ?2, ?3)",
	[S_HOLD_DELETE] = "DELETE FROM holds WHERE endpoint = ?1",
	[S_HOLDS] = "SELECT endpoint, at, changed_by FROM holds ORDER BY endpoint",
	/* UNION: each id once, ascending; every branch an index look-up */
	[S_FIND_ENVELOPE] = "SELECT id FROM messages WHERE envelope_id = ?1 "
			    "UNION SELECT id FROM messages WHERE refers = ?1 "
			    "UNION SELECT msg_id FROM txids WHERE id = ?1 ORDER BY 1 LIMIT ?2",
	[S_FIND_LETTER] = "SELECT id FROM messages WHERE letter_id = ?1 "
			  "UNION SELECT msg_id FROM letter_keys WHERE letter_id = ?1 ORDER BY 1 LIMIT ?2",
	/* a bare FHIR message's envelope is its Bundle; a wrapped one's Bundle.id
	 * is in the txids (for a dead letter, which records none, use --envelope) */
	[S_FIND_BUNDLE] = "SELECT id FROM messages WHERE envelope_id = ?1 "
			  "AND format IN ('fhir-xml', 'fhir-json') "
			  "UNION SELECT id FROM messages WHERE refers = ?1 "
			  "UNION SELECT msg_id FROM txids WHERE scope = 'fhir' AND id = ?1 "
			  "ORDER BY 1 LIMIT ?2",
	[S_FIND_REFERS] = "SELECT id FROM messages WHERE refers = ?1 ORDER BY id LIMIT ?2",
	[S_PAGE_COUNT] = "PRAGMA page_count",
	[S_PAGE_SIZE] = "PRAGMA page_size",
	/* ack_state > 0 as a literal: served by messages_ack_envelope */
	[S_ENVELOPE_LOOKUP] = "SELECT id FROM messages WHERE ack_state > 0 AND sender = ?1 "
			      "AND envelope_id = ?2 ORDER BY id DESC LIMIT 1",
	[S_ACK_SET] = "UPDATE messages SET ack_state = ?2, ack_msg = ?3, ack_at = ?4, ack_code = ?5 "
		      "WHERE id = ?1",
	/* ack_state > 1 as a literal: served by messages_ack. Only delivered
	 * rows: an operator's requeue or delete takes a row out of tracking. */
	[S_ACK_LIST] = "SELECT " MSG_COLS " FROM messages m WHERE m.ack_state > 1 "
		       "AND m.ack_state = ?1 AND m.delivered_at < ?2 AND m.state = 1 "
		       "ORDER BY m.delivered_at, m.id LIMIT ?3",
	[S_ACK_LIST_EP] = "SELECT " MSG_COLS " FROM messages m WHERE m.ack_state > 1 "
			  "AND m.ack_state = ?1 AND m.delivered_at < ?2 AND m.state = 1 "
			  "AND m.endpoint = ?4 ORDER BY m.delivered_at, m.id LIMIT ?3",
	/* awaiting (2) as literals: a range of messages_ack */
	[S_ACK_OVERDUE] = "SELECT endpoint, count(*) FROM messages WHERE ack_state > 1 "
			  "AND ack_state = 2 AND delivered_at < ?1 AND state = 1 GROUP BY endpoint",
};

/* Where a field of an outage record lives and how it is typed. The type
 * comes from the field's declaration, so the two cannot disagree; the
 * outage state, an enum, is stored by name (records.h) and declared so. */
enum col_type { COL_TEXT, COL_I64, COL_INT, COL_BOOL, COL_OUTAGE_STATE };

struct col {
	size_t off;
	enum col_type type;
};

#define COL_TYPE_OF(x) _Generic((x), char *: COL_TEXT, const char *: COL_TEXT, int64_t: COL_I64, \
				int: COL_INT, bool: COL_BOOL)
#define COL(rec, field) { offsetof(struct rec, field), COL_TYPE_OF(((struct rec *)0)->field) }

static const struct col outage_cols[] = { /* OUTAGE_COLS */
	COL(outage, endpoint),
	{ offsetof(struct outage, state), COL_OUTAGE_STATE },
	COL(outage, cause_fault),
	COL(outage, cause_error),
	COL(outage, cause_override),
	COL(outage, contact_override),
	COL(outage, fallback_override),
	COL(outage, manual),
	COL(outage, started_at),
	COL(outage, declared_at),
	COL(outage, ended_at),
	COL(outage, resolved_at),
	COL(outage, closed_at),
	COL(outage, announced_at),
	COL(outage, last_notice_at),
	COL(outage, due_at),
	COL(outage, expected_end),
	COL(outage, maintenance_id),
	COL(outage, delivered_late),
	COL(outage, changed_by),
};

static const struct col notice_cols[] = { /* NOTICE_COLS */
	COL(notice_record, kind),
	COL(notice_record, audience),
	COL(notice_record, recipients),
	COL(notice_record, subject),
	COL(notice_record, body),
	COL(notice_record, payload),
	COL(notice_record, pending),
	COL(notice_record, outage_id),
	COL(notice_record, maintenance_id),
	COL(notice_record, created_at),
	COL(notice_record, attempts),
	COL(notice_record, next_attempt_at),
};

static const struct col send_cols[] = { /* SEND_COLS */
	COL(store_send, channel),
	COL(store_send, recipients),
	COL(store_send, error),
	COL(store_send, notice_id),
	COL(store_send, at),
	COL(store_send, ok),
};

static const struct col maint_cols[] = { /* MAINT_COLS */
	COL(maint, endpoint),
	COL(maint, reason),
	COL(maint, contact),
	COL(maint, from),
	COL(maint, to),
	COL(maint, created_at),
	COL(maint, removed_at),
	COL(maint, announced_at),
	COL(maint, ended_at),
	COL(maint, changed_by),
};

/* One record type: its columns and statements. A record with an id keeps
 * it as its first member (asserted below), where read_rec() puts it. */
struct rec_desc {
	const char *what; /* for error messages */
	const struct col *cols;
	size_t ncols;
	bool has_id;
	enum stmt_id insert, update; /* update unused without an id */
};

_Static_assert(offsetof(struct outage, id) == 0, "id first");
_Static_assert(offsetof(struct notice_record, id) == 0, "id first");
_Static_assert(offsetof(struct maint, id) == 0, "id first");

static const struct rec_desc outage_desc = {
	"outage", outage_cols, ARRAY_SIZE(outage_cols), true, S_OUTAGE_INSERT, S_OUTAGE_UPDATE,
};
static const struct rec_desc notice_desc = {
	"notice", notice_cols, ARRAY_SIZE(notice_cols), true, S_NOTICE_INSERT, S_NOTICE_UPDATE,
};
static const struct rec_desc send_desc = {
	"notice send", send_cols, ARRAY_SIZE(send_cols), false, S_SEND_INSERT, S_SEND_INSERT,
};
static const struct rec_desc maint_desc = {
	"maintenance window", maint_cols, ARRAY_SIZE(maint_cols), true, S_MAINT_INSERT,
	S_MAINT_UPDATE,
};

struct sq {
	sqlite3 *db;
	pid_t pid; /* the process that opened db */
	bool in_batch; /* between begin() and commit()/rollback() */
	sqlite3_stmt *st[S__COUNT];
	char instance[9];
	char path[PATH_MAX];
	char err[512];
};

/* Why the last open() failed (last_error(NULL)); the store is single-threaded. */
static char open_error[768];

static int rc_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EBADMSG;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_CONSTRAINT:
		return -EEXIST; /* the letter key another writer recorded first */
	case SQLITE_TOOBIG:
		return -EMSGSIZE;
	case SQLITE_NOMEM:
		return -ENOMEM;
	default: /* SQLITE_IOERR_* and the rest */
		return -EIO;
	}
}

/* Records what failed (context, SQLite's message and extended code) and
 * returns the matching negative errno. */
static int sq_fail(struct sq *q, int rc, const char *ctx)
{
	int ext = q->db ? sqlite3_extended_errcode(q->db) : rc;
	snprintf(q->err, sizeof(q->err), "%s: %s (sqlite %d)", ctx, sqlite3_errmsg(q->db),
		 (ext & 0xff) == (rc & 0xff) ? ext : rc);
	return rc_errno(rc);
}

static int sq_fail_msg(struct sq *q, int err, const char *msg)
{
	str_copy(q->err, msg, sizeof(q->err));
	return err;
}

/* Makes st reusable: reset (it repeats the last step's error, which the
 * caller has already handled) and drop bindings to borrowed memory. */
static void stmt_done(sqlite3_stmt *st)
{
	(void)sqlite3_reset(st);
	(void)sqlite3_clear_bindings(st);
}

/* Steps st to completion after binding returned bind_rc. 0 or -errno. */
static int stmt_run(struct sq *q, sqlite3_stmt *st, int bind_rc, const char *ctx)
{
	int rc = bind_rc;
	if (rc == SQLITE_OK)
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			;
	int r = rc == SQLITE_DONE ? 0 : sq_fail(q, rc, ctx);
	stmt_done(st);
	return r;
}

/* Reads the first column of st's first row into *v: 1 with a row (v set),
 * 0 without (v untouched), or -errno. */
static int stmt_int64(struct sq *q, sqlite3_stmt *st, int bind_rc, int64_t *v, const char *ctx)
{
	int rc = bind_rc == SQLITE_OK ? sqlite3_step(st) : bind_rc;
	int r = 0;
	if (rc == SQLITE_ROW) {
		*v = sqlite3_column_int64(st, 0);
		r = 1;
	} else if (rc != SQLITE_DONE) {
		r = sq_fail(q, rc, ctx);
	}
	stmt_done(st);
	return r;
}

static const char *col_text(sqlite3_stmt *st, int col)
{
	return (const char *)sqlite3_column_text(st, col);
}

static void row_msg(sqlite3_stmt *st, struct store_msg *m)
{
	*m = (struct store_msg){
		.id = sqlite3_column_int64(st, C_ID),
		.state = (enum msg_state)sqlite3_column_int(st, C_STATE),
		.source = col_text(st, C_SOURCE),
		.endpoint = col_text(st, C_ENDPOINT),
		.format = col_text(st, C_FORMAT),
		.ext = col_text(st, C_EXT),
		.type = col_text(st, C_TYPE),
		.envelope_id = col_text(st, C_ENVELOPE_ID),
		.sender = col_text(st, C_SENDER),
		.receiver = col_text(st, C_RECEIVER),
		.reason = col_text(st, C_REASON),
		.last_error = col_text(st, C_LAST_ERROR),
		.nletters = sqlite3_column_int(st, C_NLETTERS),
		.attempts = sqlite3_column_int(st, C_ATTEMPTS),
		.received_at = sqlite3_column_int64(st, C_RECEIVED_AT),
		.delivered_at = sqlite3_column_int64(st, C_DELIVERED_AT), /* NULL reads as 0 */
		.size = (size_t)sqlite3_column_int64(st, C_SIZE),
		.keep = sqlite3_column_int(st, C_KEEP) != 0,
		.removed_at = sqlite3_column_int64(st, C_REMOVED_AT),
		.file = col_text(st, C_FILE),
		.error_class = col_text(st, C_ERROR_CLASS),
		.letter_id = col_text(st, C_LETTER_ID),
		.refers = col_text(st, C_REFERS),
		.ack = (enum msg_ack)sqlite3_column_int(st, C_ACK_STATE),
		.ack_msg = sqlite3_column_int64(st, C_ACK_MSG),
		.ack_at = sqlite3_column_int64(st, C_ACK_AT),
		.ack_code = col_text(st, C_ACK_CODE),
	};
	if (sqlite3_column_count(st) > C_BODY && sqlite3_column_type(st, C_BODY) != SQLITE_NULL) {
		const void *p = sqlite3_column_blob(st, C_BODY);
		m->body = p ? p : ""; /* an empty body is kept, not missing */
	}
}

/*
 * Row callbacks come in one type per record (store.h). stmt_each() walks
 * the rows and a row_fn per record decodes one and calls the typed
 * callback, which travels as any_fn: the one function pointer type C lets
 * any other be converted to and back.
 */
typedef void (*any_fn)(void);
typedef int (*row_fn)(sqlite3_stmt *st, any_fn cb, void *arg);

/* What a row_fn returns for a row it did not pass to cb. */
#define ROW_SKIPPED INT_MIN

/* Passes every row of st to row (and so to cb) until it returns non-zero.
 * Returns the number of rows passed, cb's negative return, or -errno. */
static int stmt_each(struct sq *q, sqlite3_stmt *st, int bind_rc, row_fn row, any_fn cb,
		     void *arg, const char *ctx)
{
	int rc = bind_rc, n = 0, stop = 0;
	if (rc == SQLITE_OK)
		while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			int got = row(st, cb, arg);
			if (got == ROW_SKIPPED)
				continue;
			n++;
			stop = got;
		}
	int r = stop < 0 ? stop : (stop || rc == SQLITE_DONE) ? n : sq_fail(q, rc, ctx);
	stmt_done(st);
	return r;
}

static int msg_row(sqlite3_stmt *st, any_fn cb, void *arg)
{
	struct store_msg m;
	row_msg(st, &m);
	return ((store_msg_cb)cb)(&m, arg);
}

static int stmt_msgs(struct sq *q, sqlite3_stmt *st, int bind_rc, store_msg_cb cb, void *arg,
		     const char *ctx)
{
	return stmt_each(q, st, bind_rc, msg_row, (any_fn)cb, arg, ctx);
}

/* SQLite's LIMIT: a negative value means none. */
static int64_t limit_arg(size_t limit)
{
	return limit > (size_t)INT64_MAX ? -1 : (int64_t)limit;
}

/* Length of s cut to at most max bytes, at a UTF-8 character boundary. */
static int text_len_capped(const char *s, size_t max)
{
	/* the sequence that may straddle max is read whole */
	return (int)utf8_cut(s, strnlen(s, max + UTF8_SEQ_MAX), max);
}

/* One-shot statements used while opening (not worth keeping prepared). */

static int exec_sql(struct sq *q, const char *sql)
{
	int rc = sqlite3_exec(q->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : sq_fail(q, rc, sql);
}

/* Copies the first column of sql's first row into buf. 1 with a row, 0 without. */
static int query_text(struct sq *q, const char *sql, char *buf, size_t len)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sq_fail(q, rc, sql);
	rc = sqlite3_step(st);
	int r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : sq_fail(q, rc, sql);
	if (r == 1)
		str_copy(buf, col_text(st, 0) ? col_text(st, 0) : "", len);
	(void)sqlite3_finalize(st); /* repeats the step's error, handled above */
	return r;
}

static int query_int(struct sq *q, const char *sql, int64_t *v)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sq_fail(q, rc, sql);
	int r = stmt_int64(q, st, SQLITE_OK, v, sql);
	(void)sqlite3_finalize(st);
	if (r == 0) {
		snprintf(q->err, sizeof(q->err), "%s: no value", sql);
		return -ENODATA;
	}
	return r < 0 ? r : 0;
}

/* Opening: connection settings, schema, instance id, statements. */

static int wal_enable(struct sq *q)
{
	char mode[16];
	int r = query_text(q, "PRAGMA journal_mode = WAL", mode, sizeof(mode));
	if (r < 0)
		return r;
	if (r == 0 || strcmp(mode, "wal") != 0) {
		snprintf(q->err, sizeof(q->err), "journal_mode=WAL did not take effect (mode is %s)",
			 r ? mode : "unknown");
		return -EIO;
	}
	return 0;
}

static int db_configure(struct sq *q)
{
	for (size_t i = 0; i < ARRAY_SIZE(rw_pragmas); i++) {
		int r = exec_sql(q, rw_pragmas[i]);
		if (r < 0)
			return r;
		if (i == 0) { /* auto_vacuum must be recorded before WAL writes page 1 */
			r = wal_enable(q);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int db_open(struct sq *q, const char *state_dir, bool read_only)
{
	int n = snprintf(q->path, sizeof(q->path), "%s/" DB_FILE, state_dir);
	if (n < 0 || (size_t)n >= sizeof(q->path))
		return sq_fail_msg(q, -ENAMETOOLONG, "state directory path too long");
	int flags = SQLITE_OPEN_NOMUTEX |
		    (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	int rc = sqlite3_open_v2(q->path, &q->db, flags, NULL);
	if (rc != SQLITE_OK)
		return sq_fail(q, rc, "open");
	rc = sqlite3_busy_timeout(q->db, BUSY_TIMEOUT_MS);
	if (rc != SQLITE_OK)
		return sq_fail(q, rc, "busy_timeout");
	return read_only ? 0 : db_configure(q);
}

/* Reads user_version and refuses what this program cannot use. */
static int schema_version(struct sq *q, int64_t *v)
{
	int r = query_int(q, "PRAGMA user_version", v);
	if (r < 0)
		return r;
	if (*v < 0 || *v > (int64_t)ARRAY_SIZE(migrations)) {
		snprintf(q->err, sizeof(q->err),
			 "schema version %" PRId64 " is newer than this edibroker's (%zu)", *v,
			 ARRAY_SIZE(migrations));
		return -ENOTSUP;
	}
	int64_t ntables = 0;
	if (*v == 0)
		r = query_int(q, "SELECT count(*) FROM sqlite_schema", &ntables);
	if (r == 0 && ntables > 0)
		return sq_fail_msg(q, -EBADMSG, "not an edibroker database (tables, no schema version)");
	return r;
}

static int instance_create(struct sq *q)
{
	uint8_t rnd[4];
	ssize_t n;
	do
		n = getrandom(rnd, sizeof(rnd), 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(rnd))
		return sq_fail_msg(q, n < 0 ? -errno : -EIO, "getrandom failed");
	char sql[96];
	snprintf(sql, sizeof(sql),
		 "INSERT INTO meta (key, value) VALUES ('instance', '%02x%02x%02x%02x')", rnd[0],
		 rnd[1], rnd[2], rnd[3]);
	return exec_sql(q, sql);
}

/* Runs the migrations from the file's version up to target (the current
 * one, except in store_sqlite_create_version()). */
static int schema_upgrade(struct sq *q, size_t target)
{
	int64_t v;
	int r = schema_version(q, &v);
	if (r < 0 || v >= (int64_t)target)
		return r;
	for (size_t i = (size_t)v; i < target; i++) {
		r = exec_sql(q, migrations[i]);
		if (r < 0)
			return r;
	}
	char sql[48];
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %zu", target);
	r = exec_sql(q, sql);
	if (r >= 0 && v == 0)
		r = instance_create(q);
	return r;
}

/* Creates or upgrades the schema in one transaction (another process
 * opening the same file at the same time waits on the write lock). */
static int schema_migrate(struct sq *q, size_t target)
{
	int r = exec_sql(q, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	r = schema_upgrade(q, target);
	if (r >= 0)
		r = exec_sql(q, "COMMIT");
	if (r < 0 && !sqlite3_get_autocommit(q->db))
		(void)sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL); /* open fails anyway */
	return r;
}

/* Read-only: the schema must be current, since it cannot be upgraded. */
static int schema_check(struct sq *q)
{
	int64_t v;
	int r = schema_version(q, &v);
	if (r >= 0 && v < (int64_t)ARRAY_SIZE(migrations))
		return sq_fail_msg(q, -EROFS, "schema needs creating or upgrading: open read-write once");
	return r;
}

static int instance_load(struct sq *q)
{
	char id[16] = "";
	int r = query_text(q, "SELECT value FROM meta WHERE key = 'instance'", id, sizeof(id));
	if (r < 0)
		return r;
	if (strlen(id) != 8 || strspn(id, "0123456789abcdef") != 8)
		return sq_fail_msg(q, -EBADMSG, "instance id missing or malformed");
	memcpy(q->instance, id, sizeof(q->instance));
	return 0;
}

/* max_page_count is per connection; SQLite never lowers it below the
 * current size, so an over-full file refuses all growth. */
static int size_cap(struct sq *q, uint64_t max_bytes)
{
	int64_t page_size;
	int r = query_int(q, "PRAGMA page_size", &page_size);
	if (r < 0)
		return r;
	uint64_t pages = max_bytes / (uint64_t)page_size;
	pages = pages < 1 ? 1 : pages > UINT32_MAX - 1 ? UINT32_MAX - 1 : pages;
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %" PRIu64, pages);
	return exec_sql(q, sql);
}

static int stmts_prepare(struct sq *q)
{
	for (size_t i = 0; i < S__COUNT; i++) {
		int rc = sqlite3_prepare_v3(q->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					    &q->st[i], NULL);
		if (rc != SQLITE_OK)
			return sq_fail(q, rc, stmt_sql[i]);
	}
	return 0;
}

static void sq_close(void *be)
{
	struct sq *q = be;
	if (!q)
		return;
	/* In a forked child the connection is the parent's: closing it could
	 * checkpoint and delete the WAL under the parent. Leak it instead. */
	if (q->pid == getpid()) {
		for (size_t i = 0; i < S__COUNT; i++)
			(void)sqlite3_finalize(q->st[i]);
		int rc = sqlite3_close(q->db); /* fails only with statements left: a bug */
		assert(rc == SQLITE_OK);
		(void)rc;
	}
	free(q);
}

static int sq_open(const char *state_dir, const struct store_options *opt, void **be)
{
	struct sq *q = xcalloc(1, sizeof(*q));
	q->pid = getpid();
	int r = db_open(q, state_dir, opt->read_only);
	if (r >= 0)
		r = opt->read_only ? schema_check(q) : schema_migrate(q, ARRAY_SIZE(migrations));
	if (r >= 0)
		r = instance_load(q);
	if (r >= 0 && opt->max_bytes)
		r = size_cap(q, opt->max_bytes);
	if (r >= 0)
		r = stmts_prepare(q);
	if (r < 0) {
		snprintf(open_error, sizeof(open_error), "%.200s: %s", q->path, q->err);
		sq_close(q);
		return r;
	}
	*be = q;
	return 0;
}

static const char *sq_last_error(void *be)
{
	struct sq *q = be;
	return q ? q->err : open_error;
}

static const char *sq_instance(void *be)
{
	struct sq *q = be;
	return q->instance;
}

/* Transactions. */

static void tx_rollback(struct sq *q)
{
	if (sqlite3_get_autocommit(q->db))
		return; /* SQLite already rolled back (SQLITE_FULL, I/O errors do) */
	char cause[sizeof(q->err)];
	memcpy(cause, q->err, sizeof(cause));
	if (stmt_run(q, q->st[S_ROLLBACK], SQLITE_OK, "rollback") < 0) {
		char failed[sizeof(q->err)];
		memcpy(failed, q->err, sizeof(failed));
		snprintf(q->err, sizeof(q->err), "%.250s; then %.250s", cause, failed);
	}
}

static int tx_begin(struct sq *q)
{
	assert(q->pid == getpid()); /* a connection must never cross fork() */
	if (!sqlite3_get_autocommit(q->db))
		tx_rollback(q); /* an earlier rollback failed: try again */
	return stmt_run(q, q->st[S_BEGIN], SQLITE_OK, "begin");
}

static int tx_commit(struct sq *q)
{
	return stmt_run(q, q->st[S_COMMIT], SQLITE_OK, "commit");
}

/* A transaction of the backend's own (prune, saves). Inside a batch,
 * tx_begin would roll the batch back to begin: a caller bug. */
static int own_begin(struct sq *q)
{
	assert(!q->in_batch);
	if (q->in_batch)
		return sq_fail_msg(q, -EBUSY, "a batch transaction is open");
	return tx_begin(q);
}

static void sq_rollback(void *be)
{
	struct sq *q = be;
	q->in_batch = false;
	tx_rollback(q);
}

static int sq_begin(void *be)
{
	struct sq *q = be;
	int r = tx_begin(q);
	q->in_batch = r == 0;
	return r;
}

static int sq_commit(void *be)
{
	struct sq *q = be;
	int r = tx_commit(q);
	if (r == 0)
		q->in_batch = false; /* a failed COMMIT stays open until rollback() */
	return r;
}

/* Writes. */

static int bind_key(sqlite3_stmt *st, const struct store_key *key)
{
	int rc = sqlite3_bind_text(st, 1, key->sender, -1, SQLITE_STATIC);
	return rc == SQLITE_OK ? sqlite3_bind_text(st, 2, key->letter_id, -1, SQLITE_STATIC) : rc;
}

static int sq_key_lookup(void *be, const struct store_key *key, int64_t *msg_id)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[S_KEY_LOOKUP];
	return stmt_int64(q, st, bind_key(st, key), msg_id, "look up letter key");
}

static int sq_key_insert(void *be, const struct store_key *key, int64_t msg_id, int64_t now)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[S_KEY_INSERT];
	int rc = bind_key(st, key);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, msg_id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 4, now);
	return stmt_run(q, st, rc, "record letter key");
}

static int sq_token_lookup(void *be, const char *token, struct store_token_seen *first)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[S_TOKEN_LOOKUP];
	int rc = sqlite3_bind_text(st, 1, token, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	int r = 0;
	if (rc == SQLITE_ROW) {
		bool gone = sqlite3_column_type(st, 1) == SQLITE_NULL;
		*first = (struct store_token_seen){
			.msg_id = sqlite3_column_int64(st, 0),
			.state = gone ? MSG_DELIVERED : (enum msg_state)sqlite3_column_int(st, 1),
		};
		str_copy(first->reason, col_text(st, 2) ? col_text(st, 2) : "",
			 sizeof(first->reason));
		r = 1;
	} else if (rc != SQLITE_DONE) {
		r = sq_fail(q, rc, "look up token");
	}
	stmt_done(st);
	return r;
}

/* One writer: a lookup reads the row itself, so first's state and reason
 * need no cache here. */
static int sq_token_insert(void *be, const char *token, const struct store_token_seen *first,
			   int64_t now)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[S_TOKEN_INSERT];
	int rc = sqlite3_bind_text(st, 1, token, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, first->msg_id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, now);
	return stmt_run(q, st, rc, "record token");
}

static int bind_txid(sqlite3_stmt *st, const struct store_txid *t)
{
	int rc = sqlite3_bind_text(st, 1, t->scope, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 2, t->sender, -1, SQLITE_STATIC);
	return rc == SQLITE_OK ? sqlite3_bind_text(st, 3, t->id, -1, SQLITE_STATIC) : rc;
}

static int sq_txid_lookup(void *be, const struct store_txid *t, uint8_t *digest, size_t *len,
			  int64_t *msg_id)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[S_TXID_LOOKUP];
	int rc = bind_txid(st, t);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	int r = 0;
	if (rc == SQLITE_ROW) {
		int n = sqlite3_column_bytes(st, 0);
		const void *d = sqlite3_column_blob(st, 0);
		*len = n > 0 && n <= STORE_DIGEST_MAX ? (size_t)n : 0;
		if (*len)
			memcpy(digest, d, *len);
		*msg_id = sqlite3_column_int64(st, 1);
		r = 1;
	} else if (rc != SQLITE_DONE) {
		r = sq_fail(q, rc, "look up transmission id");
	}
	stmt_done(st);
	return r;
}

static int sq_txid_insert(void *be, const struct store_txid *t, int64_t msg_id, int64_t now)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[S_TXID_INSERT];
	int rc = bind_txid(st, t);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob(st, 4, t->digest, (int)t->digest_len, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 5, msg_id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 6, now);
	return stmt_run(q, st, rc, "record transmission id");
}

static int bind_msg(sqlite3_stmt *st, const struct store_new *m)
{
	const char *text[] = { m->source, m->endpoint, m->reason, m->format, m->ext,
			       m->type, m->envelope_id, m->sender, m->receiver };
	int rc = sqlite3_bind_int(st, 1, m->endpoint ? MSG_QUEUED : MSG_DEAD);
	for (size_t i = 0; i < ARRAY_SIZE(text) && rc == SQLITE_OK; i++)
		rc = sqlite3_bind_text(st, (int)i + 2, text[i], -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(st, 11, m->nletters);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 12, m->received_at);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 13, (sqlite3_int64)m->size);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 14, m->letter_id, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 15, m->refers, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(st, 16, m->endpoint && m->ack_requested ? ACK_PENDING : ACK_NONE);
	return rc;
}

/* Records that source sends to m's endpoint, for partners(). Only queued
 * messages count (a dead letter has no endpoint), and not the receipts the
 * broker issues itself. Runs per message on the hot path: a known pair is
 * one primary-key probe, and INSERT OR IGNORE then writes no page. */
static int route_record(struct sq *q, const struct store_new *m)
{
	if (!m->endpoint || !m->source || strcmp(m->source, STORE_SOURCE_BROKER) == 0)
		return 0;
	sqlite3_stmt *st = q->st[S_ROUTE_INSERT];
	int rc = sqlite3_bind_text(st, 1, m->source, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 2, m->endpoint, -1, SQLITE_STATIC);
	return stmt_run(q, st, rc, "record route");
}

static int sq_msg_insert(void *be, const struct store_new *m, int64_t *id)
{
	struct sq *q = be;
	assert(m->body || m->size == 0);
	sqlite3_stmt *st = q->st[S_MSG_INSERT];
	int r = stmt_run(q, st, bind_msg(st, m), "insert message");
	if (r < 0)
		return r;
	int64_t new_id = sqlite3_last_insert_rowid(q->db);
	st = q->st[S_BODY_INSERT];
	int rc = sqlite3_bind_int64(st, 1, new_id);
	if (rc == SQLITE_OK) /* "" keeps an empty body a zero-length blob, not NULL */
		rc = sqlite3_bind_blob64(st, 2, m->body ? m->body : "", m->size, SQLITE_STATIC);
	r = stmt_run(q, st, rc, "insert message body");
	if (r == 0)
		r = route_record(q, m);
	if (r == 0)
		*id = new_id;
	return r;
}

/* 1 when the queued message id was marked, 0 when it is not queued. */
static int sq_msg_delivered(void *be, int64_t id, int64_t at)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[S_DELIVERED];
	int rc = sqlite3_bind_int64(st, 1, id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, at);
	int r = stmt_run(q, st, rc, "mark delivered");
	return r < 0 ? r : sqlite3_changes(q->db);
}

static int sq_msg_attempt(void *be, int64_t id, const char *error)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[S_ATTEMPT];
	int rc = sqlite3_bind_int64(st, 1, id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 2, error, error ? text_len_capped(error, ERROR_MAX) : 0,
				       SQLITE_STATIC);
	int r = stmt_run(q, st, rc, "record attempt");
	return r < 0 ? r : sqlite3_changes(q->db);
}

static int sq_msg_refused(void *be, int64_t id, const char *reason)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[S_REFUSED];
	int rc = sqlite3_bind_int64(st, 1, id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 2, reason, reason ? text_len_capped(reason, ERROR_MAX) : 0,
				       SQLITE_STATIC);
	int r = stmt_run(q, st, rc, "record a refusal");
	return r < 0 ? r : sqlite3_changes(q->db);
}

static int sq_envelope_lookup(void *be, const char *sender, const char *envelope_id,
			      int64_t *msg_id)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[S_ENVELOPE_LOOKUP];
	int rc = sqlite3_bind_text(st, 1, sender, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 2, envelope_id, -1, SQLITE_STATIC);
	return stmt_int64(q, st, rc, msg_id, "look up envelope");
}

static int sq_ack_set(void *be, int64_t id, enum msg_ack ack, int64_t ack_msg, int64_t at,
		      const char *code)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[S_ACK_SET];
	int rc = sqlite3_bind_int64(st, 1, id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(st, 2, ack);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, ack_msg);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 4, at);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 5, code, code ? text_len_capped(code, ERROR_MAX) : 0,
				       SQLITE_STATIC);
	int r = stmt_run(q, st, rc, "set acknowledgement state");
	return r < 0 ? r : sqlite3_changes(q->db);
}

/* Queries. */

static int sq_ack_list(void *be, enum msg_ack ack, const char *endpoint, int64_t delivered_before,
		       size_t limit, store_msg_cb cb, void *arg)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[endpoint ? S_ACK_LIST_EP : S_ACK_LIST];
	int rc = sqlite3_bind_int(st, 1, ack);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, delivered_before);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, limit_arg(limit));
	if (rc == SQLITE_OK && endpoint)
		rc = sqlite3_bind_text(st, 4, endpoint, -1, SQLITE_STATIC);
	return stmt_msgs(q, st, rc, cb, arg, "list acknowledgement states");
}

static int tally_row(sqlite3_stmt *st, any_fn cb, void *arg)
{
	return ((store_tally_cb)cb)(col_text(st, 0), sqlite3_column_int64(st, 1), arg);
}

static int sq_ack_overdue(void *be, int64_t delivered_before, store_tally_cb cb, void *arg)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[S_ACK_OVERDUE];
	return stmt_each(q, st, sqlite3_bind_int64(st, 1, delivered_before), tally_row,
			 (any_fn)cb, arg, "count overdue acknowledgements");
}

/* except[0..n) as a JSON array of integers ("[]" when empty). */
static char *id_array_json(const int64_t *ids, size_t n)
{
	char *buf = xmalloc(n * 21 + 3), *p = buf;
	*p++ = '[';
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%s%" PRId64, i ? "," : "", ids[i]);
	*p++ = ']';
	*p = '\0';
	return buf;
}

static int sq_fetch_queued(void *be, const char *endpoint, int64_t after_id,
			   const int64_t *except, size_t nexcept, size_t limit, store_msg_cb cb,
			   void *arg)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[nexcept ? S_FETCH_EXCEPT : S_FETCH];
	_cleanup_free_ char *ids = nexcept ? id_array_json(except, nexcept) : NULL;
	int rc = sqlite3_bind_text(st, 1, endpoint, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, after_id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, limit_arg(limit));
	if (rc == SQLITE_OK && ids)
		rc = sqlite3_bind_text(st, 4, ids, -1, SQLITE_STATIC);
	return stmt_msgs(q, st, rc, cb, arg, "fetch queued messages");
}

static int depth_row(sqlite3_stmt *st, any_fn cb, void *arg)
{
	struct store_depth d = {
		.endpoint = col_text(st, 0),
		.queued = sqlite3_column_int64(st, 1),
		.oldest_received_at = sqlite3_column_int64(st, 2),
		.bytes = sqlite3_column_int64(st, 3),
	};
	return ((store_depth_cb)cb)(&d, arg);
}

static int sq_depths(void *be, store_depth_cb cb, void *arg)
{
	struct sq *q = be;
	return stmt_each(q, q->st[S_DEPTHS], SQLITE_OK, depth_row, (any_fn)cb, arg, "queue depths");
}

static int sq_list(void *be, enum msg_state state, const char *endpoint, size_t limit,
		   store_msg_cb cb, void *arg)
{
	struct sq *q = be;
	assert(state <= MSG_STATE_LAST);
	sqlite3_stmt *st = q->st[(endpoint ? S_LIST_EP_0 : S_LIST_0) + state];
	int rc = sqlite3_bind_int64(st, 1, limit_arg(limit));
	if (rc == SQLITE_OK && endpoint)
		rc = sqlite3_bind_text(st, 2, endpoint, -1, SQLITE_STATIC);
	return stmt_msgs(q, st, rc, cb, arg, "list messages");
}

static int sq_get(void *be, int64_t id, bool with_body, store_msg_cb cb, void *arg)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[with_body ? S_GET_BODY : S_GET];
	return stmt_msgs(q, st, sqlite3_bind_int64(st, 1, id), cb, arg, "get message");
}

static int sq_count(void *be, enum msg_state state, int64_t *n)
{
	struct sq *q = be;
	assert(state <= MSG_STATE_LAST);
	int r = stmt_int64(q, q->st[S_COUNT_0 + state], SQLITE_OK, n, "count messages");
	return r < 0 ? r : 0;
}

/* Pruning. */

static const struct {
	enum stmt_id st;
	bool body_clock; /* ?1 is body_before (else history_before) */
	bool counted;    /* its changes count against the limit */
} prune_steps[] = {
	{ S_PRUNE_BODIES, true, false }, /* the rows S_PRUNE_KEPT counts */
	{ S_PRUNE_KEPT, true, true },
	{ S_PRUNE_MSGS, false, true },
	{ S_PRUNE_KEYS, false, true },
	{ S_PRUNE_TXIDS, false, true },
	{ S_PRUNE_TOKENS, false, true },
	{ S_PRUNE_EVENTS, false, true },
};

static int prune_rows(struct sq *q, int64_t body_before, int64_t history_before, int64_t limit)
{
	int64_t n = 0;
	for (size_t i = 0; i < ARRAY_SIZE(prune_steps); i++) {
		sqlite3_stmt *st = q->st[prune_steps[i].st];
		int rc = sqlite3_bind_int64(st, 1,
					    prune_steps[i].body_clock ? body_before : history_before);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int64(st, 2, limit - n);
		int r = stmt_run(q, st, rc, "prune");
		if (r < 0)
			return r;
		if (prune_steps[i].counted)
			n += sqlite3_changes(q->db);
	}
	return (int)n;
}

/* Gives free pages back to the file system, at most VACUUM_PAGES a call, so
 * the file shrinks after a backlog drains; a small freelist is left for new
 * messages to reuse rather than churned. */
static int vacuum_some(struct sq *q)
{
	int64_t free_pages = 0;
	int r = stmt_int64(q, q->st[S_FREELIST], SQLITE_OK, &free_pages, "freelist_count");
	if (r < 0 || free_pages <= VACUUM_KEEP_PAGES)
		return r < 0 ? r : 0;
	return stmt_run(q, q->st[S_VACUUM], SQLITE_OK, "incremental_vacuum");
}

/* One bounded clean-up in a transaction of its own: rows(q, a, b, limit)
 * removes at most limit rows, then some free pages go back; returns how
 * many rows went, or -errno with nothing changed. */
static int bounded_cleanup(struct sq *q, int (*rows)(struct sq *, int64_t, int64_t, int64_t),
			   int64_t a, int64_t b, size_t limit)
{
	if (limit == 0)
		return 0;
	int r = own_begin(q);
	if (r < 0)
		return r;
	int n = rows(q, a, b, limit > INT_MAX ? INT_MAX : (int64_t)limit);
	r = n < 0 ? n : vacuum_some(q);
	if (r >= 0)
		r = tx_commit(q);
	if (r < 0) {
		tx_rollback(q);
		return r;
	}
	return n;
}

static int sq_prune(void *be, int64_t body_before, int64_t history_before, size_t limit)
{
	return bounded_cleanup(be, prune_rows, body_before, history_before, limit);
}

/* Retention of dead-letter bodies and quarantined files. */

_Static_assert(S_LIST_0 + MSG_STATE_LAST == S_LIST_5 &&
		       S_LIST_EP_0 + MSG_STATE_LAST == S_LIST_EP_5 &&
		       S_COUNT_0 + MSG_STATE_LAST == S_COUNT_5,
	       "one list and count statement per state, in state order");

static int bind_quarantined(sqlite3_stmt *st, const struct store_quarantined *x)
{
	const char *text[] = { x->endpoint, x->reason, x->file, x->error_class };
	int rc = SQLITE_OK;
	for (size_t i = 0; i < ARRAY_SIZE(text) && rc == SQLITE_OK; i++)
		rc = sqlite3_bind_text(st, (int)i + 1, text[i], -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 5, x->at);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 6, (sqlite3_int64)x->size);
	return rc;
}

/* Runs fn(q, i) for i in [0, n) in one transaction of its own; the sum of
 * what they return (each >= 0) or the first failure, rolled back. */
static int own_tx_each(struct sq *q, size_t n, int (*fn)(struct sq *q, size_t i, void *arg),
		       void *arg)
{
	int r = own_begin(q), total = 0;
	for (size_t i = 0; i < n && r >= 0; i++) {
		r = fn(q, i, arg);
		total += r > 0 ? r : 0;
	}
	if (r >= 0)
		r = tx_commit(q);
	if (r < 0) {
		tx_rollback(q);
		return r;
	}
	return total;
}

static int quarantine_insert(struct sq *q, size_t i, void *arg)
{
	struct store_quarantined *x = (struct store_quarantined *)arg + i;
	assert(x->endpoint && x->file);
	sqlite3_stmt *st = q->st[S_QUARANTINE_INSERT];
	int r = stmt_run(q, st, bind_quarantined(st, x), "record quarantined file");
	if (r == 0)
		x->id = sqlite3_last_insert_rowid(q->db);
	return r;
}

static int sq_quarantine_add(void *be, struct store_quarantined *x, size_t n)
{
	/* ids are set only once the transaction commits */
	int64_t *ids = xcalloc(n, sizeof(*ids));
	for (size_t i = 0; i < n; i++)
		ids[i] = x[i].id;
	int r = own_tx_each(be, n, quarantine_insert, x);
	if (r < 0)
		for (size_t i = 0; i < n; i++)
			x[i].id = ids[i];
	free(ids);
	return r < 0 ? r : 0;
}

static int dead_expire_rows(struct sq *q, int64_t before, int64_t now, int64_t limit)
{
	sqlite3_stmt *drop = q->st[S_DEAD_DROP_BODIES], *mark = q->st[S_DEAD_MARK];
	int rc = sqlite3_bind_int64(drop, 1, before);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(drop, 2, limit);
	int r = stmt_run(q, drop, rc, "drop dead-letter bodies");
	if (r < 0)
		return r;
	rc = sqlite3_bind_int64(mark, 1, before);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(mark, 2, limit);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(mark, 3, now);
	r = stmt_run(q, mark, rc, "mark dead-letter bodies removed");
	return r < 0 ? r : sqlite3_changes(q->db);
}

static int sq_dead_expire(void *be, int64_t before, int64_t now, size_t limit)
{
	return bounded_cleanup(be, dead_expire_rows, before, now, limit);
}

static int sq_quarantine_expired(void *be, int64_t before, int64_t after_at, int64_t after_id,
				 size_t limit, store_msg_cb cb, void *arg)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[S_QUARANTINE_DUE];
	int rc = sqlite3_bind_int64(st, 1, before);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, after_at);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, after_id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 4, limit_arg(limit));
	return stmt_msgs(q, st, rc, cb, arg, "quarantined files due");
}

struct removed_arg {
	const int64_t *ids;
	int64_t now;
};

static int quarantine_mark(struct sq *q, size_t i, void *arg)
{
	const struct removed_arg *a = arg;
	sqlite3_stmt *st = q->st[S_QUARANTINE_REMOVED];
	int rc = sqlite3_bind_int64(st, 1, a->ids[i]);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, a->now);
	int r = stmt_run(q, st, rc, "mark quarantined file removed");
	return r < 0 ? r : sqlite3_changes(q->db);
}

static int sq_quarantine_removed(void *be, const int64_t *ids, size_t n, int64_t now)
{
	struct removed_arg a = { ids, now };
	return own_tx_each(be, n, quarantine_mark, &a);
}

static int keep_set(struct sq *q, size_t i, void *arg)
{
	const int64_t *v = arg; /* id, keep */
	sqlite3_stmt *st = q->st[S_KEEP];
	int rc = sqlite3_bind_int64(st, 1, v[0]);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, v[1]);
	int r = stmt_run(q, st, rc, "set keep");
	return r < 0 ? r : sqlite3_changes(q->db);
}

static int sq_keep(void *be, int64_t id, bool keep)
{
	int64_t v[2] = { id, keep ? 1 : 0 };
	int r = own_tx_each(be, 1, keep_set, v);
	return r < 0 ? r : r > 0;
}

/* The outage procedure's records: rare writes, each its own transaction. */

/* Binds the fields of rec described by cols as ?1..?n. Strings are
 * borrowed (stmt_done drops them); a NULL string binds SQL NULL. */
static int bind_cols(sqlite3_stmt *st, const struct col *cols, size_t n, const void *rec)
{
	int rc = SQLITE_OK;
	for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
		const char *p = (const char *)rec + cols[i].off;
		int at = (int)i + 1;
		switch (cols[i].type) {
		case COL_TEXT:
			rc = sqlite3_bind_text(st, at, *(const char *const *)p, -1, SQLITE_STATIC);
			break;
		case COL_I64:
			rc = sqlite3_bind_int64(st, at, *(const int64_t *)p);
			break;
		case COL_INT:
			rc = sqlite3_bind_int(st, at, *(const int *)p);
			break;
		case COL_BOOL:
			rc = sqlite3_bind_int(st, at, *(const bool *)p ? 1 : 0);
			break;
		case COL_OUTAGE_STATE:
			rc = sqlite3_bind_text(st, at, outage_state_name(*(const enum outage_state *)p),
					       -1, SQLITE_STATIC);
			break;
		}
	}
	return rc;
}

/* Fills rec from the current row of st: columns 0..n-1 per d->cols, then
 * the id. Strings point into the row (valid until the next step; the row
 * callback gets the record as const). False when a value cannot be read
 * into its field: an outage state this version does not know (written by
 * a newer one). */
static bool read_rec(sqlite3_stmt *st, const struct rec_desc *d, void *rec)
{
	bool ok = true;
	for (size_t i = 0; i < d->ncols; i++) {
		char *p = (char *)rec + d->cols[i].off;
		int c = (int)i;
		int state;
		switch (d->cols[i].type) {
		case COL_TEXT:
			*(char **)p = (char *)col_text(st, c); /* NULL stays NULL */
			break;
		case COL_I64:
			*(int64_t *)p = sqlite3_column_int64(st, c);
			break;
		case COL_INT:
			*(int *)p = sqlite3_column_int(st, c);
			break;
		case COL_BOOL:
			*(bool *)p = sqlite3_column_int(st, c) != 0;
			break;
		case COL_OUTAGE_STATE:
			state = outage_state_from_name(col_text(st, c));
			ok &= state >= 0;
			*(enum outage_state *)p = state >= 0 ? (enum outage_state)state : OUTAGE_OPEN;
			break;
		}
	}
	if (d->has_id)
		*(int64_t *)rec = sqlite3_column_int64(st, (int)d->ncols);
	return ok;
}

/* Inserts rec (id 0) or updates row id, inside the caller's transaction.
 * *row_id: the row written. -ENOENT when row id does not exist. */
static int rec_write(struct sq *q, const struct rec_desc *d, const void *rec, int64_t id,
		     int64_t *row_id)
{
	sqlite3_stmt *st = q->st[id ? d->update : d->insert];
	assert(sqlite3_bind_parameter_count(st) == (int)d->ncols + (id ? 1 : 0));
	int rc = bind_cols(st, d->cols, d->ncols, rec);
	if (rc == SQLITE_OK && id)
		rc = sqlite3_bind_int64(st, (int)d->ncols + 1, id);
	int r = stmt_run(q, st, rc, d->what);
	if (r == 0 && id && sqlite3_changes(q->db) == 0) {
		snprintf(q->err, sizeof(q->err), "%s %" PRId64 ": no such row", d->what, id);
		return -ENOENT;
	}
	if (r == 0)
		*row_id = id ? id : sqlite3_last_insert_rowid(q->db);
	return r;
}

/* Saves rec in a transaction of its own: inserts when *id is 0 (and sets
 * it once committed), else updates that row; id NULL for a record without
 * one. On failure nothing is kept and *id is untouched. */
static int rec_save(struct sq *q, const struct rec_desc *d, const void *rec, int64_t *id)
{
	assert(!id == !d->has_id && (!id || *id >= 0));
	int64_t row_id = 0;
	int r = own_begin(q);
	if (r == 0)
		r = rec_write(q, d, rec, id ? *id : 0, &row_id);
	if (r == 0)
		r = tx_commit(q);
	if (r < 0) {
		tx_rollback(q);
		return r;
	}
	if (id)
		*id = row_id;
	return 0;
}

/* The NOT NULL columns are asserted: a missing one is a caller bug, and
 * SQLite's constraint error would read as -EEXIST. */
static int sq_outage_save(void *be, struct outage *o)
{
	assert(o->endpoint && outage_state_from_name(outage_state_name(o->state)) >= 0);
	return rec_save(be, &outage_desc, o, &o->id);
}

static int sq_notice_save(void *be, struct notice_record *n)
{
	return rec_save(be, &notice_desc, n, &n->id);
}

static int sq_send_record(void *be, const struct store_send *s)
{
	assert(s->channel);
	return rec_save(be, &send_desc, s, NULL);
}

static int sq_maintenance_save(void *be, struct maint *m)
{
	assert(m->endpoint);
	return rec_save(be, &maint_desc, m, &m->id);
}

static int outage_row(sqlite3_stmt *st, any_fn cb, void *arg)
{
	struct outage o;
	if (!read_rec(st, &outage_desc, &o))
		return ROW_SKIPPED; /* a newer version's state: this one cannot act on it */
	return ((store_outage_cb)cb)(&o, arg);
}

static int notice_row(sqlite3_stmt *st, any_fn cb, void *arg)
{
	struct notice_record n;
	read_rec(st, &notice_desc, &n);
	return ((store_notice_cb)cb)(&n, arg);
}

static int send_row(sqlite3_stmt *st, any_fn cb, void *arg)
{
	struct store_send s;
	read_rec(st, &send_desc, &s);
	return ((store_send_cb)cb)(&s, arg);
}

static int maint_row(sqlite3_stmt *st, any_fn cb, void *arg)
{
	struct maint m;
	read_rec(st, &maint_desc, &m);
	return ((store_maintenance_cb)cb)(&m, arg);
}

static int sq_outage_list(void *be, int64_t closed_since, size_t limit, store_outage_cb cb,
			  void *arg)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[S_OUTAGE_LIST];
	int rc = sqlite3_bind_int64(st, 1, closed_since);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, limit_arg(limit));
	return stmt_each(q, st, rc, outage_row, (any_fn)cb, arg, "list outages");
}

static int sq_outage_get(void *be, int64_t id, store_outage_cb cb, void *arg)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[S_OUTAGE_GET];
	return stmt_each(q, st, sqlite3_bind_int64(st, 1, id), outage_row, (any_fn)cb, arg,
			 "get outage");
}

static int sq_notice_list(void *be, int64_t outage_id, int64_t maintenance_id,
			  store_notice_cb cb, void *arg)
{
	struct sq *q = be;
	/* with both 0, "maintenance_id = 0" would list every outage's notices */
	if (outage_id <= 0 && maintenance_id <= 0)
		return sq_fail_msg(q, -EINVAL, "notice list: no outage or maintenance id");
	bool by_outage = outage_id > 0;
	sqlite3_stmt *st = q->st[by_outage ? S_NOTICE_BY_OUTAGE : S_NOTICE_BY_MAINT];
	int rc = sqlite3_bind_int64(st, 1, by_outage ? outage_id : maintenance_id);
	return stmt_each(q, st, rc, notice_row, (any_fn)cb, arg, "list notices");
}

static int sq_notice_pending(void *be, store_notice_cb cb, void *arg)
{
	struct sq *q = be;
	return stmt_each(q, q->st[S_NOTICE_PENDING], SQLITE_OK, notice_row, (any_fn)cb, arg,
			 "pending notices");
}

static int sq_send_list(void *be, int64_t notice_id, store_send_cb cb, void *arg)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[S_SEND_LIST];
	return stmt_each(q, st, sqlite3_bind_int64(st, 1, notice_id), send_row, (any_fn)cb, arg,
			 "list notice sends");
}

static int sq_maintenance_list(void *be, bool removed, store_maintenance_cb cb, void *arg)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[removed ? S_MAINT_LIST_ALL : S_MAINT_LIST];
	return stmt_each(q, st, SQLITE_OK, maint_row, (any_fn)cb, arg, "list maintenance");
}

static int summary_row(sqlite3_stmt *st, any_fn cb, void *arg)
{
	struct store_summary s = {
		.type = col_text(st, 0),
		.source = col_text(st, 1),
		.count = sqlite3_column_int64(st, 2),
		.oldest_received_at = sqlite3_column_int64(st, 3),
	};
	return ((store_summary_cb)cb)(&s, arg);
}

static int sq_queue_summary(void *be, const char *endpoint, store_summary_cb cb, void *arg)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[S_QUEUE_SUMMARY];
	int rc = sqlite3_bind_text(st, 1, endpoint, -1, SQLITE_STATIC);
	return stmt_each(q, st, rc, summary_row, (any_fn)cb, arg, "queue summary");
}

static int name_row(sqlite3_stmt *st, any_fn cb, void *arg)
{
	return ((store_name_cb)cb)(col_text(st, 0), arg);
}

static int sq_partners(void *be, const char *endpoint, store_name_cb cb, void *arg)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[S_PARTNERS];
	int rc = sqlite3_bind_text(st, 1, endpoint, -1, SQLITE_STATIC);
	return stmt_each(q, st, rc, name_row, (any_fn)cb, arg, "partners");
}

/* Operators' actions on single messages, and their history. */

static int sq_event_add(void *be, const struct store_event *e)
{
	struct sq *q = be;
	assert(e->kind);
	sqlite3_stmt *st = q->st[S_EVENT_INSERT];
	int rc = sqlite3_bind_int64(st, 1, e->msg_id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, e->at);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 3, e->kind, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 4, e->fault, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 5, e->detail,
				       e->detail ? text_len_capped(e->detail, ERROR_MAX) : 0,
				       SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 6, e->by, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 7, e->ref);
	return stmt_run(q, st, rc, "record history event");
}

static int event_row(sqlite3_stmt *st, any_fn cb, void *arg)
{
	struct store_event e = {
		.msg_id = sqlite3_column_int64(st, 0),
		.at = sqlite3_column_int64(st, 1),
		.kind = col_text(st, 2),
		.fault = col_text(st, 3),
		.detail = col_text(st, 4),
		.by = col_text(st, 5),
		.ref = sqlite3_column_int64(st, 6),
	};
	return ((store_event_cb)cb)(&e, arg);
}

static int sq_events(void *be, int64_t id, store_event_cb cb, void *arg)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[S_EVENTS];
	return stmt_each(q, st, sqlite3_bind_int64(st, 1, id), event_row, (any_fn)cb, arg,
			 "message history");
}

static int sq_msg_state(void *be, int64_t id, enum msg_state from, enum msg_state to, int64_t now)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[S_STATE_SET];
	int rc = sqlite3_bind_int64(st, 1, id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(st, 2, (int)from);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(st, 3, (int)to);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 4, now);
	int r = stmt_run(q, st, rc, "change message state");
	if (r < 0 || sqlite3_changes(q->db) == 0)
		return r;
	st = q->st[S_BODY_DROP];
	r = stmt_run(q, st, sqlite3_bind_int64(st, 1, id), "drop message body");
	return r < 0 ? r : 1;
}

static int sq_msg_copy(void *be, int64_t id, int64_t now, int64_t *new_id)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[S_MSG_COPY];
	int rc = sqlite3_bind_int64(st, 1, id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, now);
	int r = stmt_run(q, st, rc, "copy message");
	if (r < 0)
		return r;
	if (sqlite3_changes(q->db) == 0)
		return sq_fail_msg(q, -ENOENT, "no such message with a body and an endpoint");
	int64_t copy = sqlite3_last_insert_rowid(q->db);
	st = q->st[S_BODY_COPY];
	rc = sqlite3_bind_int64(st, 1, id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, copy);
	r = stmt_run(q, st, rc, "copy message body");
	if (r == 0)
		*new_id = copy;
	return r;
}

static int sq_hold_set(void *be, const char *endpoint, bool held, int64_t at, const char *by)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[held ? S_HOLD_INSERT : S_HOLD_DELETE];
	int rc = sqlite3_bind_text(st, 1, endpoint, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK && held)
		rc = sqlite3_bind_int64(st, 2, at);
	if (rc == SQLITE_OK && held)
		rc = sqlite3_bind_text(st, 3, by, -1, SQLITE_STATIC);
	int r = stmt_run(q, st, rc, held ? "hold endpoint" : "release endpoint");
	return r < 0 ? r : sqlite3_changes(q->db) > 0;
}

static int hold_row(sqlite3_stmt *st, any_fn cb, void *arg)
{
	struct store_hold h = { col_text(st, 0), sqlite3_column_int64(st, 1), col_text(st, 2) };
	return ((store_hold_cb)cb)(&h, arg);
}

static int sq_holds(void *be, store_hold_cb cb, void *arg)
{
	struct sq *q = be;
	return stmt_each(q, q->st[S_HOLDS], SQLITE_OK, hold_row, (any_fn)cb, arg, "list holds");
}

static int id_row(sqlite3_stmt *st, any_fn cb, void *arg)
{
	return ((store_id_cb)cb)(sqlite3_column_int64(st, 0), arg);
}

static int sq_find(void *be, enum store_find by, const char *key, size_t limit, store_id_cb cb,
		   void *arg)
{
	static const enum stmt_id by_stmt[] = {
		[STORE_FIND_ENVELOPE] = S_FIND_ENVELOPE, [STORE_FIND_LETTER] = S_FIND_LETTER,
		[STORE_FIND_BUNDLE] = S_FIND_BUNDLE, [STORE_FIND_REFERS] = S_FIND_REFERS,
	};
	struct sq *q = be;
	assert((size_t)by < ARRAY_SIZE(by_stmt) && key);
	sqlite3_stmt *st = q->st[by_stmt[by]];
	int rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, limit_arg(limit));
	return stmt_each(q, st, rc, id_row, (any_fn)cb, arg, "find messages");
}

static int sq_size(void *be, int64_t *bytes)
{
	struct sq *q = be;
	int64_t pages = 0, page_size = 0;
	int r = stmt_int64(q, q->st[S_PAGE_COUNT], SQLITE_OK, &pages, "page_count");
	if (r > 0)
		r = stmt_int64(q, q->st[S_PAGE_SIZE], SQLITE_OK, &page_size, "page_size");
	if (r == 0)
		return sq_fail_msg(q, -ENODATA, "page_count or page_size: no value");
	if (r > 0)
		*bytes = pages * page_size;
	return r < 0 ? r : 0;
}

static int sq_schema_version(void *be, int64_t *have, int64_t *want)
{
	struct sq *q = be;
	int r = query_int(q, "PRAGMA user_version", have);
	if (r == 0)
		*want = (int64_t)ARRAY_SIZE(migrations);
	return r;
}

/* Diagnostics for tests. */

int store_sqlite_create_version(const char *state_dir, int version)
{
	assert(version > 0 && (size_t)version <= ARRAY_SIZE(migrations));
	struct sq *q = xcalloc(1, sizeof(*q));
	q->pid = getpid();
	int r = db_open(q, state_dir, false);
	if (r >= 0)
		r = schema_migrate(q, (size_t)version);
	if (r < 0)
		snprintf(open_error, sizeof(open_error), "%.200s: %s", q->path, q->err);
	sq_close(q);
	return r < 0 ? r : 0;
}

/* The statements whose plans tests pin down. */
static const struct {
	const char *op;
	enum stmt_id st;
} plan_ops[] = {
	{ "queue_summary", S_QUEUE_SUMMARY },
	{ "partners", S_PARTNERS },
	{ "notice_pending", S_NOTICE_PENDING },
	{ "quarantine_due", S_QUARANTINE_DUE },
	{ "dead_due", S_DEAD_MARK },
	{ "find_envelope", S_FIND_ENVELOPE },
	{ "find_letter", S_FIND_LETTER },
	{ "find_bundle", S_FIND_BUNDLE },
	{ "events", S_EVENTS },
	{ "ack_list", S_ACK_LIST_EP },
	{ "envelope_lookup", S_ENVELOPE_LOOKUP },
	{ "ack_overdue", S_ACK_OVERDUE },
};

/* Appends the detail column of every row of the plan st to buf. */
static int plan_read(struct sq *q, sqlite3_stmt *st, char *buf, size_t len)
{
	size_t used = 0;
	int rc;
	buf[0] = '\0';
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && used < len) {
		const char *detail = col_text(st, 3);
		int n = snprintf(buf + used, len - used, "%s%s", used ? "; " : "", detail ? detail : "");
		used += n < 0 ? 0 : (size_t)n;
	}
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : sq_fail(q, rc, "explain query plan");
}

/* The connection of s, which must run on this backend. */
static struct sq *sq_of(struct store *s)
{
	struct sq *q = store_backend_handle(s, &store_sqlite_ops);
	assert(q);
	return q;
}

int store_sqlite_plan(struct store *s, const char *op, char *buf, size_t len)
{
	struct sq *q = sq_of(s);
	assert(len > 0);
	size_t i = 0;
	while (i < ARRAY_SIZE(plan_ops) && strcmp(plan_ops[i].op, op) != 0)
		i++;
	if (i == ARRAY_SIZE(plan_ops))
		return sq_fail_msg(q, -ENOENT, "no plan for that op");
	char *sql = xasprintf("EXPLAIN QUERY PLAN %s", sqlite3_sql(q->st[plan_ops[i].st]));
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);
	free(sql);
	if (rc != SQLITE_OK)
		return sq_fail(q, rc, "explain query plan");
	int r = plan_read(q, st, buf, len);
	(void)sqlite3_finalize(st); /* repeats the step's error, handled above */
	return r;
}

int store_sqlite_pragma(struct store *s, const char *name, int64_t *value)
{
	struct sq *q = sq_of(s);
	assert(name[0] && strspn(name, "abcdefghijklmnopqrstuvwxyz_") == strlen(name));
	char sql[80];
	snprintf(sql, sizeof(sql), "PRAGMA %.60s", name);
	return query_int(q, sql, value);
}

const struct store_backend_ops store_sqlite_ops = {
	.name = "sqlite",
	.open = sq_open,
	.ids_in_commit_order = true, /* one writer: AUTOINCREMENT in commit order */
	.close = sq_close,
	.last_error = sq_last_error,
	.instance = sq_instance,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.token_lookup = sq_token_lookup,
	.token_insert = sq_token_insert,
	.key_lookup = sq_key_lookup,
	.key_insert = sq_key_insert,
	.txid_lookup = sq_txid_lookup,
	.txid_insert = sq_txid_insert,
	.msg_insert = sq_msg_insert,
	.msg_delivered = sq_msg_delivered,
	.msg_attempt = sq_msg_attempt,
	.msg_refused = sq_msg_refused,
	.envelope_lookup = sq_envelope_lookup,
	.ack_set = sq_ack_set,
	.ack_list = sq_ack_list,
	.ack_overdue = sq_ack_overdue,
	.fetch_queued = sq_fetch_queued,
	.depths = sq_depths,
	.list = sq_list,
	.get = sq_get,
	.count = sq_count,
	.prune = sq_prune,
	.quarantine_add = sq_quarantine_add,
	.dead_expire = sq_dead_expire,
	.quarantine_expired = sq_quarantine_expired,
	.quarantine_removed = sq_quarantine_removed,
	.keep = sq_keep,
	.outage_save = sq_outage_save,
	.outage_list = sq_outage_list,
	.outage_get = sq_outage_get,
	.notice_save = sq_notice_save,
	.notice_list = sq_notice_list,
	.notice_pending = sq_notice_pending,
	.send_record = sq_send_record,
	.send_list = sq_send_list,
	.maintenance_save = sq_maintenance_save,
	.maintenance_list = sq_maintenance_list,
	.queue_summary = sq_queue_summary,
	.partners = sq_partners,
	.event_add = sq_event_add,
	.msg_state = sq_msg_state,
	.msg_copy = sq_msg_copy,
	.hold_set = sq_hold_set,
	.events = sq_events,
	.find = sq_find,
	.holds = sq_holds,
	.size = sq_size,
	.schema_version = sq_schema_version,
};
