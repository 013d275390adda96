/*
 * store_sqlite.c - the SQLite backend of the message store.
 *
 * Owns <state_dir>/edibroker.db: the connection settings, the schema
 * (versioned by PRAGMA user_version and upgraded by migrations[]) and every
 * SQL statement. store.c drives it one transaction per loop turn through
 * begin / key_* / msg_* / commit; delivery and the control socket read
 * through the query primitives.
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
 *  - one connection used from one thread, the event loop, hence
 *    SQLITE_OPEN_NOMUTEX. It never crosses fork(): close() in a child
 *    leaves the database alone, and begin() asserts the owning process.
 */
#include "store_sqlite.h"

#include "util.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <sqlite3.h>
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
	"m.delivered_at, m.size"

enum msg_col {
	C_ID, C_STATE, C_SOURCE, C_ENDPOINT, C_FORMAT, C_EXT, C_TYPE, C_ENVELOPE_ID, C_SENDER,
	C_RECEIVER, C_REASON, C_LAST_ERROR, C_NLETTERS, C_ATTEMPTS, C_RECEIVED_AT,
	C_DELIVERED_AT, C_SIZE, C_BODY,
};

/* The subquery choosing delivered messages whose body may go (?1 before, ?2 limit). */
#define BODY_PRUNE_IDS                                                                             \
	"SELECT id FROM messages WHERE state = 1 AND body_kept = 1 AND delivered_at < ?1 "        \
	"ORDER BY delivered_at, id LIMIT ?2"

/* Per-state statements are spelled out: a partial index is used only when
 * the query's WHERE names the state as a literal. */
enum stmt_id {
	S_BEGIN, S_COMMIT, S_ROLLBACK,
	S_KEY_LOOKUP, S_KEY_INSERT, S_MSG_INSERT, S_BODY_INSERT, S_DELIVERED, S_ATTEMPT,
	S_FETCH, S_DEPTHS, S_GET, S_GET_BODY,
	S_LIST_0, S_LIST_1, S_LIST_2, S_LIST_EP_0, S_LIST_EP_1, S_LIST_EP_2,
	S_COUNT_0, S_COUNT_1, S_COUNT_2,
	S_PRUNE_BODIES, S_PRUNE_KEPT, S_PRUNE_MSGS, S_PRUNE_KEYS, S_FREELIST, S_VACUUM,
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
	[S_MSG_INSERT] = "INSERT INTO messages (state, source, endpoint, reason, format, ext, type, "
			 "envelope_id, sender, receiver, nletters, received_at, size) "
			 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
	[S_BODY_INSERT] = "INSERT INTO bodies (id, body) VALUES (?1, ?2)",
	[S_DELIVERED] = "UPDATE messages SET state = 1, delivered_at = ?2 WHERE id = ?1 AND state = 0",
	[S_ATTEMPT] = "UPDATE messages SET attempts = attempts + 1, last_error = ?2 "
		      "WHERE id = ?1 AND state = 0",
	[S_FETCH] = "SELECT " MSG_COLS ", b.body FROM messages m LEFT JOIN bodies b ON b.id = m.id "
		    "WHERE m.state = 0 AND m.endpoint = ?1 AND m.id > ?2 ORDER BY m.id LIMIT ?3",
	[S_DEPTHS] = "SELECT endpoint, count(*), min(received_at) FROM messages WHERE state = 0 "
		     "GROUP BY endpoint ORDER BY endpoint",
	[S_GET] = "SELECT " MSG_COLS ", NULL FROM messages m WHERE m.id = ?1",
	[S_GET_BODY] = "SELECT " MSG_COLS ", b.body FROM messages m "
		       "LEFT JOIN bodies b ON b.id = m.id WHERE m.id = ?1",
	/* queued rows are the newest: sort them rather than scan all history */
	[S_LIST_0] = "SELECT " MSG_COLS " FROM messages m INDEXED BY messages_queued "
		     "WHERE m.state = 0" LIST_TAIL,
	[S_LIST_1] = LIST_SQL(1) LIST_TAIL,
	[S_LIST_2] = LIST_SQL(2) LIST_TAIL,
	[S_LIST_EP_0] = LIST_SQL(0) " AND m.endpoint = ?2" LIST_TAIL,
	[S_LIST_EP_1] = LIST_SQL(1) " AND m.endpoint = ?2" LIST_TAIL,
	[S_LIST_EP_2] = LIST_SQL(2) " AND m.endpoint = ?2" LIST_TAIL,
	[S_COUNT_0] = "SELECT count(*) FROM messages WHERE state = 0",
	[S_COUNT_1] = "SELECT count(*) FROM messages WHERE state = 1",
	[S_COUNT_2] = "SELECT count(*) FROM messages WHERE state = 2",
	/* S_PRUNE_BODIES and S_PRUNE_KEPT run back to back with the same
	 * parameters: the subquery reads only messages, which the first does
	 * not change, so both see the same rows. */
	[S_PRUNE_BODIES] = "DELETE FROM bodies WHERE id IN (" BODY_PRUNE_IDS ")",
	[S_PRUNE_KEPT] = "UPDATE messages SET body_kept = 0 WHERE id IN (" BODY_PRUNE_IDS ")",
	[S_PRUNE_MSGS] = "DELETE FROM messages WHERE id IN (SELECT id FROM messages "
			 "WHERE state = 1 AND delivered_at < ?1 ORDER BY delivered_at LIMIT ?2)",
	[S_PRUNE_KEYS] = "DELETE FROM letter_keys WHERE (sender, letter_id) IN (SELECT sender, "
			 "letter_id FROM letter_keys WHERE seen_at < ?1 ORDER BY seen_at LIMIT ?2)",
	[S_FREELIST] = "PRAGMA freelist_count",
	[S_VACUUM] = "PRAGMA incremental_vacuum(" STR(VACUUM_PAGES) ")",
};

struct sq {
	sqlite3 *db;
	pid_t pid; /* the process that opened db */
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
	};
	if (sqlite3_column_count(st) > C_BODY && sqlite3_column_type(st, C_BODY) != SQLITE_NULL) {
		const void *p = sqlite3_column_blob(st, C_BODY);
		m->body = p ? p : ""; /* an empty body is kept, not missing */
	}
}

/* Passes every row of st to cb until cb returns non-zero. Returns the
 * number of rows passed, cb's negative return, or -errno. */
static int stmt_msgs(struct sq *q, sqlite3_stmt *st, int bind_rc, store_msg_cb cb, void *arg,
		     const char *ctx)
{
	int rc = bind_rc, n = 0, stop = 0;
	if (rc == SQLITE_OK)
		while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			struct store_msg m;
			row_msg(st, &m);
			n++;
			stop = cb(&m, arg);
		}
	int r = stop < 0 ? stop : (stop || rc == SQLITE_DONE) ? n : sq_fail(q, rc, ctx);
	stmt_done(st);
	return r;
}

/* SQLite's LIMIT: a negative value means none. */
static int64_t limit_arg(size_t limit)
{
	return limit > (size_t)INT64_MAX ? -1 : (int64_t)limit;
}

/* Length of s cut to at most max bytes, at a UTF-8 character boundary. */
static int text_len_capped(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	return (int)n;
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

static int schema_upgrade(struct sq *q)
{
	int64_t v;
	int r = schema_version(q, &v);
	if (r < 0 || v == (int64_t)ARRAY_SIZE(migrations))
		return r;
	for (size_t i = (size_t)v; i < ARRAY_SIZE(migrations); i++) {
		r = exec_sql(q, migrations[i]);
		if (r < 0)
			return r;
	}
	char sql[48];
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %zu", ARRAY_SIZE(migrations));
	r = exec_sql(q, sql);
	if (r >= 0 && v == 0)
		r = instance_create(q);
	return r;
}

/* Creates or upgrades the schema in one transaction (another process
 * opening the same file at the same time waits on the write lock). */
static int schema_migrate(struct sq *q)
{
	int r = exec_sql(q, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	r = schema_upgrade(q);
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
		r = opt->read_only ? schema_check(q) : schema_migrate(q);
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

static void sq_rollback(void *be)
{
	struct sq *q = be;
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

static int sq_begin(void *be)
{
	struct sq *q = be;
	assert(q->pid == getpid()); /* a connection must never cross fork() */
	if (!sqlite3_get_autocommit(q->db))
		sq_rollback(q); /* an earlier rollback failed: try again */
	return stmt_run(q, q->st[S_BEGIN], SQLITE_OK, "begin");
}

static int sq_commit(void *be)
{
	struct sq *q = be;
	return stmt_run(q, q->st[S_COMMIT], SQLITE_OK, "commit");
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
	return rc;
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

/* Queries. */

static int sq_fetch_queued(void *be, const char *endpoint, int64_t after_id, size_t limit,
			   store_msg_cb cb, void *arg)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[S_FETCH];
	int rc = sqlite3_bind_text(st, 1, endpoint, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, after_id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, limit_arg(limit));
	return stmt_msgs(q, st, rc, cb, arg, "fetch queued messages");
}

static int sq_depths(void *be, store_depth_cb cb, void *arg)
{
	struct sq *q = be;
	sqlite3_stmt *st = q->st[S_DEPTHS];
	int rc, n = 0, stop = 0;
	while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_depth d = {
			.endpoint = col_text(st, 0),
			.queued = sqlite3_column_int64(st, 1),
			.oldest_received_at = sqlite3_column_int64(st, 2),
		};
		n++;
		stop = cb(&d, arg);
	}
	int r = stop < 0 ? stop : (stop || rc == SQLITE_DONE) ? n : sq_fail(q, rc, "queue depths");
	stmt_done(st);
	return r;
}

static int sq_list(void *be, enum msg_state state, const char *endpoint, size_t limit,
		   store_msg_cb cb, void *arg)
{
	struct sq *q = be;
	assert(state <= MSG_DEAD);
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
	assert(state <= MSG_DEAD);
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

static int sq_prune(void *be, int64_t body_before, int64_t history_before, size_t limit)
{
	struct sq *q = be;
	if (limit == 0)
		return 0;
	int r = sq_begin(q);
	if (r < 0)
		return r;
	int n = prune_rows(q, body_before, history_before, limit > INT_MAX ? INT_MAX : (int64_t)limit);
	r = n < 0 ? n : vacuum_some(q);
	if (r >= 0)
		r = sq_commit(q);
	if (r < 0) {
		sq_rollback(q);
		return r;
	}
	return n;
}

int store_sqlite_pragma(void *be, const char *name, int64_t *value)
{
	struct sq *q = be;
	assert(name[0] && strspn(name, "abcdefghijklmnopqrstuvwxyz_") == strlen(name));
	char sql[80];
	snprintf(sql, sizeof(sql), "PRAGMA %.60s", name);
	return query_int(q, sql, value);
}

const struct store_backend_ops store_sqlite_ops = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.last_error = sq_last_error,
	.instance = sq_instance,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.key_lookup = sq_key_lookup,
	.key_insert = sq_key_insert,
	.msg_insert = sq_msg_insert,
	.msg_delivered = sq_msg_delivered,
	.msg_attempt = sq_msg_attempt,
	.fetch_queued = sq_fetch_queued,
	.depths = sq_depths,
	.list = sq_list,
	.get = sq_get,
	.count = sq_count,
	.prune = sq_prune,
};
