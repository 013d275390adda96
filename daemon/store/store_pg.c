/*
 * store_pg.c - the PostgreSQL backend of the message store: several
 * daemons share one database (../shared/domain/multinode.md).
 *
 * Owns the connection settings, the schema (versioned in meta and upgraded
 * by migrations[] under an advisory lock, so daemons starting together
 * upgrade once), every SQL statement, the ingest tokens (as SQLite's) and
 * the tables only a shared database needs: nodes, leases and health
 * observations. Behind the table of store_backend.h, like the SQLite
 * backend; store.c calls it.
 *
 * Handles. store_open() gives the loop's handle; store_attach() asks for
 * one more per store lane (connect()), used by one thread at a time. Each
 * handle has its own connection, made lazily and remade after a failure.
 * Every wait on the server has a deadline (the handle's wait_ms): the
 * socket is non-blocking and polled, so a server that stops answering
 * costs a call at most that long, after which the connection is dropped.
 * The loop's handle then refuses at once for BREAKER_MS (-ENOTCONN) before
 * it tries again: a dead server costs the loop one bounded wait per
 * BREAKER_MS, never a hang. Sessions run with statement_timeout and
 * idle_in_transaction_session_timeout, so a daemon paused inside a
 * transaction (SIGSTOP) cannot hold row locks for long.
 *
 * Group commit (begin .. commit) is one transaction in pipeline mode:
 * batch_prepare() looks up every letter key, transmission id and ingest
 * token of the batch and takes message ids from the sequence in one round
 * trip; from then on the lookups answer from that cache (updated by the
 * batch's own inserts, so items see each other as if committed in turn),
 * and the writes are queued without waiting. Delivered marks of one fence
 * become one UPDATE over an array. COMMIT and the sync read every result; a
 * unique violation there means another daemon recorded a key first
 * (-EEXIST: store.c retries the batch, whose lookups then see it). A COMMIT
 * whose answer is lost is in doubt: the caller keeps its input and
 * replays, and the tokens make the replay change nothing.
 *
 * Invariants:
 *  - ids come from one sequence, never reused (file names derive from
 *    them), but are not in commit order when several daemons write:
 *    ids_in_commit_order is false, and readers fetch by state.
 *  - a fenced write checks its lease row (owner, epoch, not expired) in the
 *    same statement, FOR SHARE, so a takeover waits for it or it fails.
 *  - the queued rows are found through partial indexes on state = 0; the
 *    fetch orders by (endpoint, id + 0), which only messages_queued
 *    provides (the primary key cannot), so stale statistics after a drain
 *    cannot turn it into a walk of the delivered history (tested:
 *    test_store_pg).
 *  - message and body tables vacuum early (autovacuum scale factors 0.01)
 *    and lose delivered rows and bodies in bounded batches (prune).
 */
#include "store/store_pg.h"

#include "store/store_backend.h"
#include "base/clock.h"
#include "codecs/base/mem.h"
#include "codecs/base/utf8.h"

#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define OPEN_WAIT_MS 15000       /* store_open: connect and migrate */
#define BREAKER_MS 5000          /* the loop's handle rests this long after a failure */
#define IDLE_TX_TIMEOUT_MS 5000  /* the server ends a transaction left idle this long */
#define ERROR_MAX 1000           /* bytes of a delivery error kept in last_error */
#define MIGRATION_LOCK 0x6564692d /* pg_advisory_xact_lock key: "edi-" */

/* Type oids of the binary results we read (pg_type.h is a server header). */
#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23

/*
 * Schema. migrations[i] takes version i to i + 1; append, never edit. The
 * tables mirror the SQLite backend's (store_sqlite.c says why each column
 * is there); times are wall ms as bigint, except where the server's clock
 * decides (leases, nodes: timestamptz and now()).
 */
static const char *const migrations[] = {
	/* 1: everything the SQLite backend has at its version 5, plus what a
	 * shared database needs. */
	"CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);"
	"CREATE SEQUENCE messages_id_seq;"
	"CREATE TABLE messages ("
	"  id bigint PRIMARY KEY DEFAULT nextval('messages_id_seq'),"
	"  state smallint NOT NULL,"
	"  source text, endpoint text, reason text, format text, ext text, type text,"
	"  envelope_id text, sender text, receiver text,"
	"  nletters integer NOT NULL DEFAULT 0,"
	"  attempts integer NOT NULL DEFAULT 0,"
	"  last_error text,"
	"  received_at bigint NOT NULL,"
	"  delivered_at bigint,"
	"  size bigint NOT NULL,"
	"  body_kept boolean NOT NULL DEFAULT true,"
	"  keep boolean NOT NULL DEFAULT false,"
	"  removed_at bigint NOT NULL DEFAULT 0,"
	"  file text, error_class text"
	") WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.01,"
	"        fillfactor = 90);"
	"ALTER SEQUENCE messages_id_seq OWNED BY messages.id;"
	"CREATE TABLE bodies ("
	"  id bigint PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,"
	"  body bytea NOT NULL"
	") WITH (autovacuum_vacuum_scale_factor = 0.01, toast.autovacuum_vacuum_scale_factor = 0.01);"
	"CREATE TABLE letter_keys ("
	"  sender text NOT NULL, letter_id text NOT NULL,"
	"  msg_id bigint NOT NULL, seen_at bigint NOT NULL,"
	"  PRIMARY KEY (sender, letter_id));"
	"CREATE INDEX letter_keys_seen ON letter_keys (seen_at);"
	/* The indexes cover the rows each scan wants, never the whole history:
	 * queued rows for delivery, the rows retention and pruning remove. */
	/* id + 0: the queue read orders by it, and only this index gives that
	 * order (the primary key cannot), so stale statistics after a drain
	 * cannot turn the read into a walk of the delivered history. */
	"CREATE INDEX messages_queued ON messages (endpoint, (id + 0)) INCLUDE (received_at, size)"
	"  WHERE state = 0;"
	"CREATE INDEX messages_delivered ON messages (delivered_at) WHERE state = 1;"
	"CREATE INDEX messages_body_kept ON messages (delivered_at) WHERE state = 1 AND body_kept;"
	"CREATE INDEX messages_dead ON messages (id) WHERE state = 2;"
	"CREATE INDEX messages_quarantined ON messages (id) WHERE state = 3;"
	"CREATE INDEX messages_dead_due ON messages (received_at, id)"
	"  WHERE state = 2 AND body_kept AND NOT keep;"
	"CREATE INDEX messages_quarantine_due ON messages (received_at, id)"
	"  WHERE state = 3 AND removed_at = 0 AND NOT keep;"
	"CREATE TABLE outages ("
	"  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  endpoint text NOT NULL, state text NOT NULL,"
	"  cause_fault text, cause_error text, cause_override text, contact_override text,"
	"  fallback_override text, manual boolean NOT NULL,"
	"  started_at bigint NOT NULL, declared_at bigint NOT NULL, ended_at bigint NOT NULL,"
	"  resolved_at bigint NOT NULL, closed_at bigint NOT NULL, announced_at bigint NOT NULL,"
	"  last_notice_at bigint NOT NULL, due_at bigint NOT NULL, expected_end bigint NOT NULL,"
	"  maintenance_id bigint NOT NULL, delivered_late bigint NOT NULL, changed_by text);"
	"CREATE TABLE notices ("
	"  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  kind text, audience text, recipients text, subject text, body text, payload text,"
	"  pending text, outage_id bigint NOT NULL, maintenance_id bigint NOT NULL,"
	"  created_at bigint NOT NULL, attempts integer NOT NULL, next_attempt_at bigint NOT NULL);"
	"CREATE INDEX notices_outage ON notices (outage_id, created_at);"
	"CREATE INDEX notices_maintenance ON notices (maintenance_id, created_at);"
	"CREATE INDEX notices_pending ON notices (created_at) WHERE pending <> '';"
	/* A notice that happens once per outage (or window) and audience is a
	 * row only once: two procedure holders cannot both compose it. */
	"CREATE UNIQUE INDEX notices_once_outage ON notices (outage_id, kind, audience)"
	"  WHERE outage_id > 0 AND kind IN ('initial', 'allclear', 'summary');"
	"CREATE UNIQUE INDEX notices_once_maintenance ON notices (maintenance_id, kind, audience)"
	"  WHERE maintenance_id > 0 AND kind = 'planned';"
	"CREATE TABLE notice_sends ("
	"  seq bigint GENERATED ALWAYS AS IDENTITY,"
	"  channel text NOT NULL, recipients text, error text,"
	"  notice_id bigint NOT NULL, at bigint NOT NULL, ok boolean NOT NULL);"
	"CREATE INDEX notice_sends_notice ON notice_sends (notice_id, at, seq);"
	"CREATE TABLE maintenance ("
	"  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  endpoint text NOT NULL, reason text, contact text,"
	"  from_at bigint NOT NULL, to_at bigint NOT NULL, created_at bigint NOT NULL,"
	"  removed_at bigint NOT NULL, announced_at bigint NOT NULL, ended_at bigint NOT NULL,"
	"  changed_by text);"
	"CREATE TABLE routes (source text NOT NULL, endpoint text NOT NULL,"
	"  PRIMARY KEY (source, endpoint));"
	"CREATE INDEX routes_endpoint ON routes (endpoint, source);"
	"CREATE TABLE txids ("
	"  scope text NOT NULL, sender text NOT NULL, id text NOT NULL, digest bytea NOT NULL,"
	"  msg_id bigint NOT NULL, seen_at bigint NOT NULL, PRIMARY KEY (scope, sender, id));"
	"CREATE INDEX txids_seen ON txids (seen_at);"
	/* One accepted unit (a spool file, a request): a replay is a duplicate. */
	"CREATE TABLE ingest_tokens ("
	"  token text PRIMARY KEY, msg_id bigint NOT NULL, seen_at bigint NOT NULL);"
	"CREATE INDEX ingest_tokens_seen ON ingest_tokens (seen_at);"
	"CREATE TABLE nodes ("
	"  name text PRIMARY KEY, started_at bigint NOT NULL, pid bigint NOT NULL,"
	"  seen_at timestamptz NOT NULL);"
	/* "ep:NAME", "in:NAME", "procedure": epoch is the fencing token; the
	 * backoff of an endpoint survives a change of holder. */
	"CREATE TABLE leases ("
	"  name text PRIMARY KEY, owner text, epoch bigint NOT NULL DEFAULT 0,"
	"  expires_at timestamptz, failures integer NOT NULL DEFAULT 0,"
	"  next_attempt_at bigint NOT NULL DEFAULT 0"
	") WITH (fillfactor = 50);"
	"CREATE TABLE observations ("
	"  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	"  endpoint text NOT NULL, node text NOT NULL, ok boolean NOT NULL, probe boolean NOT NULL,"
	"  fault integer NOT NULL, error text, delivered bigint NOT NULL, at bigint NOT NULL);",
	/* 2: what the SQLite backend gained at its version 6: a message's first
	 * letter id and the envelope a broker receipt answers (looked up by
	 * operators), the history of a message beyond its row, and the
	 * endpoints an operator holds. */
	"ALTER TABLE messages ADD COLUMN letter_id text, ADD COLUMN refers text;"
	"CREATE INDEX messages_envelope ON messages (envelope_id) WHERE envelope_id IS NOT NULL;"
	"CREATE INDEX messages_letter ON messages (letter_id) WHERE letter_id IS NOT NULL;"
	"CREATE INDEX messages_refers ON messages (refers) WHERE refers IS NOT NULL;"
	"CREATE INDEX letter_keys_letter ON letter_keys (letter_id);"
	"CREATE INDEX txids_id ON txids (id);"
	"CREATE TABLE events ("
	"  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	"  msg_id bigint NOT NULL, at bigint NOT NULL, kind text NOT NULL,"
	"  fault text, detail text, changed_by text, ref bigint NOT NULL DEFAULT 0"
	") WITH (autovacuum_vacuum_scale_factor = 0.02);"
	"CREATE INDEX events_msg ON events (msg_id, at);"
	"CREATE INDEX events_at ON events (at);"
	"CREATE TABLE holds ("
	"  endpoint text PRIMARY KEY, at bigint NOT NULL, changed_by text);",
	/* 3: acknowledgement tracking, as the SQLite backend's version 7: where a
	 * message that asks for an acknowledgement is (enum msg_ack), the
	 * message that acknowledged it, when, and its verdict in the format's
	 * words. The lists read only tracked rows (ack_state > 1, a literal in
	 * their statements), by delivery time; an acknowledgement naming a
	 * whole envelope finds it by sender and envelope id. */
	"ALTER TABLE messages ADD COLUMN ack_state smallint NOT NULL DEFAULT 0,"
	"  ADD COLUMN ack_msg bigint NOT NULL DEFAULT 0, ADD COLUMN ack_at bigint NOT NULL DEFAULT 0,"
	"  ADD COLUMN ack_code text;"
	"CREATE INDEX messages_ack ON messages (ack_state, delivered_at, id) WHERE ack_state > 1;"
	"CREATE INDEX messages_ack_envelope ON messages (sender, envelope_id) WHERE ack_state > 0;",
};

/* The columns of a store_msg, in the order of enum msg_col. */
#define MSG_COLS                                                                                   \
	"m.id, m.state, m.source, m.endpoint, m.format, m.ext, m.type, m.envelope_id, m.sender, " \
	"m.receiver, m.reason, m.last_error, m.nletters, m.attempts, m.received_at, "             \
	"m.delivered_at, m.size, m.keep, m.removed_at, m.file, m.error_class, m.letter_id, "      \
	"m.refers, m.ack_state, m.ack_msg, m.ack_at, m.ack_code"

enum msg_col {
	C_ID, C_STATE, C_SOURCE, C_ENDPOINT, C_FORMAT, C_EXT, C_TYPE, C_ENVELOPE_ID, C_SENDER,
	C_RECEIVER, C_REASON, C_LAST_ERROR, C_NLETTERS, C_ATTEMPTS, C_RECEIVED_AT,
	C_DELIVERED_AT, C_SIZE, C_KEEP, C_REMOVED_AT, C_FILE, C_ERROR_CLASS,
	C_LETTER_ID, C_REFERS, C_ACK_STATE, C_ACK_MSG, C_ACK_AT, C_ACK_CODE, C_BODY,
};

/* The check a fenced write makes, in the same statement: its lease is held
 * by this node at this epoch and has not expired. FOR SHARE: a takeover
 * (an UPDATE of the row) waits until the write commits. $F, $O and $E are
 * spelled out by each statement. */
#define FENCE_OK(name, owner, epoch)                                                               \
	"EXISTS (SELECT 1 FROM leases WHERE name = " name " AND owner = " owner                   \
	" AND epoch = " epoch " AND expires_at > now() FOR SHARE)"

/* Statements prepared once per connection: the hot paths. */
enum stmt_id {
	S_ROUTE_INSERT, S_KEY_INSERT, S_TXID_INSERT, S_TOKEN_INSERT,
	S_DELIVERED, S_DELIVERED_FENCED, S_ATTEMPT, S_ATTEMPT_FENCED, S_REFUSED, S_REFUSED_FENCED,
	S_FETCH, S_LOOKUP_KEYS, S_LOOKUP_TXIDS, S_LOOKUP_TOKENS, S_NEXT_IDS,
	S_EVENT_INSERT, S_EVENT_INSERT_MARK, S_EVENT_INSERT_MARK_FENCED, S_STATE_SET, S_MSG_COPY,
	S_HOLD_INSERT, S_HOLD_DELETE, S_GET, S_ENVELOPE_LOOKUP, S_ACK_SET,
	S_KEY_INSERT_MANY, S_TOKEN_INSERT_MANY, S_MSG_INSERT_MANY, S_BODY_INSERT_MANY,
	S__COUNT
};

static const char *const stmt_sql[S__COUNT] = {
	[S_ROUTE_INSERT] = "INSERT INTO routes (source, endpoint) VALUES ($1, $2) "
			   "ON CONFLICT DO NOTHING",
	[S_KEY_INSERT] = "INSERT INTO letter_keys (sender, letter_id, msg_id, seen_at) "
			 "VALUES ($1, $2, $3, $4)",
	[S_TXID_INSERT] = "INSERT INTO txids (scope, sender, id, digest, msg_id, seen_at) "
			  "VALUES ($1, $2, $3, $4, $5, $6)",
	[S_TOKEN_INSERT] = "INSERT INTO ingest_tokens (token, msg_id, seen_at) VALUES ($1, $2, $3)",
	/* a batch's messages and their bodies, one statement each at its commit */
	[S_MSG_INSERT_MANY] = "INSERT INTO messages (id, state, source, endpoint, reason, format, "
			      "ext, type, envelope_id, sender, receiver, letter_id, refers, nletters, "
			      "received_at, size, ack_state) SELECT * FROM unnest($1::bigint[], "
			      "$2::smallint[], $3::text[], $4::text[], $5::text[], $6::text[], "
			      "$7::text[], $8::text[], $9::text[], $10::text[], $11::text[], "
			      "$12::text[], $13::text[], $14::integer[], $15::bigint[], $16::bigint[], "
			      "$17::smallint[])",
	[S_BODY_INSERT_MANY] = "INSERT INTO bodies (id, body) "
			       "SELECT * FROM unnest($1::bigint[], $2::bytea[])",
	/* a batch's keys and tokens, one statement each at its commit */
	[S_KEY_INSERT_MANY] = "INSERT INTO letter_keys (sender, letter_id, msg_id, seen_at) "
			      "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])",
	[S_TOKEN_INSERT_MANY] = "INSERT INTO ingest_tokens (token, msg_id, seen_at) "
				"SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])",
	/* pending (1) becomes awaiting (2) with the delivery */
	[S_DELIVERED] = "UPDATE messages SET state = 1, delivered_at = $2, "
			"ack_state = CASE ack_state WHEN 1 THEN 2 ELSE ack_state END "
			"WHERE id = ANY($1::bigint[]) AND state = 0",
	[S_DELIVERED_FENCED] = "UPDATE messages SET state = 1, delivered_at = $2, "
			       "ack_state = CASE ack_state WHEN 1 THEN 2 ELSE ack_state END WHERE id = ANY($1::bigint[]) AND state = 0 AND "
			       FENCE_OK("$3", "$4", "$5"),
	[S_ATTEMPT] = "UPDATE messages SET attempts = attempts + 1, last_error = $2 "
		      "WHERE id = $1 AND state = 0",
	[S_ATTEMPT_FENCED] = "UPDATE messages SET attempts = attempts + 1, last_error = $2 "
			     "WHERE id = $1 AND state = 0 AND " FENCE_OK("$3", "$4", "$5"),
	[S_REFUSED] = "UPDATE messages SET state = 2, attempts = attempts + 1, reason = $2, "
		      "last_error = $2, ack_state = 0 WHERE id = $1 AND state = 0",
	[S_REFUSED_FENCED] = "UPDATE messages SET state = 2, attempts = attempts + 1, reason = $2, "
			     "last_error = $2, ack_state = 0 WHERE id = $1 AND state = 0 AND "
			     FENCE_OK("$3", "$4", "$5"),
	/* By state, never by a cursor over ids alone (several writers);
	 * ordered by (endpoint, id + 0), which only messages_queued gives. */
	[S_FETCH] = "SELECT " MSG_COLS ", b.body FROM messages m LEFT JOIN bodies b ON b.id = m.id "
		    "WHERE m.state = 0 AND m.endpoint = $1 AND m.id + 0 > $2 "
		    "AND NOT (m.id = ANY($3::bigint[])) ORDER BY m.endpoint, m.id + 0 LIMIT $4",
	[S_LOOKUP_KEYS] = "SELECT k.sender, k.letter_id, k.msg_id FROM letter_keys k "
			  "JOIN unnest($1::text[], $2::text[]) AS w (s, l) "
			  "ON k.sender = w.s AND k.letter_id = w.l",
	[S_LOOKUP_TXIDS] = "SELECT t.scope, t.sender, t.id, t.digest, t.msg_id FROM txids t "
			   "JOIN unnest($1::text[], $2::text[], $3::text[]) AS w (c, s, i) "
			   "ON t.scope = w.c AND t.sender = w.s AND t.id = w.i",
	/* with the message's state and reason: a replay answers as it did; a
	 * pruned message (no row) was delivered */
	[S_LOOKUP_TOKENS] = "SELECT t.token, t.msg_id, m.state, m.reason FROM ingest_tokens t "
			    "LEFT JOIN messages m ON m.id = t.msg_id WHERE t.token = ANY($1::text[])",
	[S_NEXT_IDS] = "SELECT nextval('messages_id_seq') FROM generate_series(1, $1)",
	[S_EVENT_INSERT] = "INSERT INTO events (msg_id, at, kind, fault, detail, changed_by, ref) "
			   "VALUES ($1, $2, $3, $4, $5, $6, $7)",
	/* The event of an attempt or refusal marked earlier in the same
	 * pipeline, whose effect is not read back: recorded when the mark took
	 * (the message is in the state it leaves, under the same fence). */
	[S_EVENT_INSERT_MARK] = "INSERT INTO events (msg_id, at, kind, fault, detail, changed_by, ref) "
				"SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM "
				"messages WHERE id = $1 AND state = $8)",
	[S_EVENT_INSERT_MARK_FENCED] = "INSERT INTO events (msg_id, at, kind, fault, detail, "
				       "changed_by, ref) SELECT $1, $2, $3, $4, $5, $6, $7 WHERE "
				       "EXISTS (SELECT 1 FROM messages WHERE id = $1 AND state = $8) "
				       "AND " FENCE_OK("$9", "$10", "$11"),
	[S_STATE_SET] = "WITH u AS (UPDATE messages SET state = $3, body_kept = false, removed_at = $4 "
			"WHERE id = $1 AND state = $2 RETURNING id), "
			"d AS (DELETE FROM bodies WHERE id IN (SELECT id FROM u)) "
			"SELECT count(*) FROM u",
	/* a copy only of a row that still has its body and an endpoint */
	[S_MSG_COPY] = "WITH m AS (INSERT INTO messages (state, source, endpoint, format, ext, type, "
		       "envelope_id, sender, receiver, nletters, received_at, size, letter_id, refers) "
		       "SELECT 0, source, endpoint, format, ext, type, envelope_id, sender, receiver, "
		       "nletters, $2, size, letter_id, refers FROM messages "
		       "WHERE id = $1 AND endpoint IS NOT NULL AND body_kept "
		       "AND EXISTS (SELECT 1 FROM bodies WHERE id = $1) RETURNING id), "
		       "b AS (INSERT INTO bodies (id, body) SELECT m.id, b.body FROM m, bodies b "
		       "WHERE b.id = $1) SELECT id FROM m",
	[S_HOLD_INSERT] = "INSERT INTO holds (endpoint, at, changed_by) VALUES ($1, $2, $3) "
			  "ON CONFLICT DO NOTHING",
	[S_HOLD_DELETE] = "DELETE FROM holds WHERE endpoint = $1",
	/* read inside a batch too (an acknowledgement looks at what it names) */
	[S_GET] = "SELECT " MSG_COLS " FROM messages m WHERE m.id = $1",
	/* ack_state > 0 as a literal: served by messages_ack_envelope */
	[S_ENVELOPE_LOOKUP] = "SELECT id FROM messages WHERE ack_state > 0 AND sender = $1 "
			      "AND envelope_id = $2 ORDER BY id DESC LIMIT 1",
	[S_ACK_SET] = "UPDATE messages SET ack_state = $2, ack_msg = $3, ack_at = $4, ack_code = $5 "
		      "WHERE id = $1",
};

_Static_assert(S__COUNT <= 64, "prepared statements are tracked in a 64-bit mask");

/* ---- a small map from strings to a value, for one batch's lookups -------- */

struct smap_ent {
	char *key;                    /* NULL: free slot */
	int64_t val;
	uint8_t digest[STORE_DIGEST_MAX];
	size_t digest_len;
	enum msg_state state;         /* tokens: the state of message val */
	char *text;                   /* tokens: its dead-letter reason, or NULL */
};

struct smap {
	struct smap_ent *ent;
	size_t cap, n;
};

static uint64_t smap_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

static struct smap_ent *smap_slot(struct smap *m, const char *key)
{
	size_t i = (size_t)smap_hash(key) & (m->cap - 1);
	while (m->ent[i].key && strcmp(m->ent[i].key, key) != 0)
		i = (i + 1) & (m->cap - 1);
	return &m->ent[i];
}

static void smap_clear(struct smap *m)
{
	for (size_t i = 0; i < m->cap; i++) {
		free(m->ent[i].key);
		free(m->ent[i].text);
	}
	free(m->ent);
	*m = (struct smap){ 0 };
}

static struct smap_ent *smap_get(struct smap *m, const char *key)
{
	if (!m->cap)
		return NULL;
	struct smap_ent *e = smap_slot(m, key);
	return e->key ? e : NULL;
}

static struct smap_ent *smap_put(struct smap *m, const char *key)
{
	if ((m->n + 1) * 2 > m->cap) {
		struct smap old = *m;
		m->cap = old.cap ? old.cap * 2 : 64;
		m->ent = xcalloc(m->cap, sizeof(*m->ent));
		m->n = 0;
		for (size_t i = 0; i < old.cap; i++)
			if (old.ent[i].key) {
				*smap_slot(m, old.ent[i].key) = old.ent[i];
				m->n++;
			}
		free(old.ent);
	}
	struct smap_ent *e = smap_slot(m, key);
	if (!e->key) {
		e->key = xstrdup(key);
		m->n++;
	}
	return e;
}

static char *utf8_clean(const char *s, size_t n, size_t max);

/* Keys of the maps: fields joined by a unit separator, as the server holds
 * them (text made valid UTF-8), so an answer finds the question. */
static char *key_of(const char *a, const char *b, const char *c)
{
	char *k = c ? xasprintf("%s\x1f%s\x1f%s", a, b, c) : xasprintf("%s\x1f%s", a, b);
	if (utf8_valid(k, strlen(k)))
		return k;
	char *clean = utf8_clean(k, strlen(k), SIZE_MAX);
	free(k);
	return clean;
}

/* ---- the handle ---------------------------------------------------------- */

/* What every handle of one store shares; read-only after open. */
struct pg_conf {
	char *url;
	char *password;
	char *node;
	int refs;
};

/* Bytes of bodies per INSERT: a part is copied once more into libpq's send
 * buffer, so a small part keeps that second copy small; a batch still
 * goes in a handful of statements. */
#define BODIES_PART_MAX (16u * 1024u * 1024u)
#define MSGBUF_NUMS 6   /* id, state, nletters, received_at, size, ack_state */
#define MSGBUF_TEXTS 11 /* source .. receiver, letter_id, refers */

struct pg {
	PGconn *conn;
	struct pg_conf *conf;
	int64_t wait_ms;          /* per call */
	bool breaker;             /* the loop's handle: rest after a failure */
	bool read_only;           /* opened for inspection: the session refuses writes */
	int64_t rest_until;       /* mono ms */
	uint64_t prepared;        /* statements prepared on conn, by bit */
	char instance[9];
	char err[512];

	/* a batch (begin .. commit) */
	bool in_batch;
	int queued;               /* statements sent whose results are unread */
	size_t unflushed;         /* bytes of parameters sent since the last push */
	bool sync_sent;           /* a pipeline sync whose result is unread */
	bool prefetched;          /* batch_prepare ran: lookups answer from the maps */
	struct smap keys, txids, tokens;
	int64_t *ids;             /* taken from the sequence for this batch */
	size_t nids, usedids;
	/* A batch's letter keys and ingest tokens, sent as one INSERT each
	 * when it commits (a statement per row was most of a commit's cost). */
	struct rowbuf { char **a, **b; int64_t *id, *at; size_t n, cap; } kbuf, tbuf;
	/* A batch's new messages, sent as one INSERT (and one for their
	 * bodies) when it commits. Strings and bodies are borrowed from the
	 * batch, which outlives the commit. */
	struct msgbuf {
		size_t n, cap;
		int64_t *num[MSGBUF_NUMS];
		const char **text[MSGBUF_TEXTS];
		const uint8_t **body;
		size_t *blen;
	} mbuf;
	int64_t *dbuf;            /* delivered ids not yet sent (one fence) */
	size_t ndbuf, capdbuf;
	int64_t dbuf_at;
	struct store_fence mfence;    /* the marks' fence (lease owned) */
	struct store_fence rfence;    /* the record saves' fence (lease owned) */
	struct smap routes;       /* (source, endpoint) pairs known to be recorded */
};

/* Why the last open() failed (last_error(NULL)). */
static char open_error[768];

static int fail_msg(struct pg *q, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail_msg(struct pg *q, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q->err, sizeof(q->err), fmt, ap);
	va_end(ap);
	return err;
}

/* Drops the connection: the next call makes a new one. */
static void conn_drop(struct pg *q)
{
	if (q->conn)
		PQfinish(q->conn);
	q->conn = NULL;
	q->prepared = 0;
	q->queued = 0;
	if (q->breaker)
		q->rest_until = clock_mono_ms() + BREAKER_MS;
}

/* Maps a server error to an errno; connection-level ones drop it. */
static int sqlstate_errno(const char *st)
{
	if (!st)
		return -ENOTCONN;
	if (strcmp(st, "23505") == 0)
		return -EEXIST;
	if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0 || strcmp(st, "55P03") == 0)
		return -EBUSY;
	if (strcmp(st, "57014") == 0)
		return -ETIMEDOUT;
	if (strcmp(st, "53100") == 0)
		return -ENOSPC;
	if (strcmp(st, "53200") == 0)
		return -ENOMEM;
	if (strcmp(st, "25006") == 0)
		return -EROFS; /* a standby: after a failover, reconnect finds the primary */
	if (strncmp(st, "08", 2) == 0 || strncmp(st, "57P", 3) == 0)
		return -ENOTCONN;
	if (strncmp(st, "22", 2) == 0)
		return -EINVAL;
	return -EIO;
}

/* Records a failed result (or a failed connection when r is NULL). */
static int fail_res(struct pg *q, const PGresult *r, const char *ctx)
{
	const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = r ? PQresultErrorMessage(r) : NULL;
	if (!msg || !*msg)
		msg = q->conn ? PQerrorMessage(q->conn) : "no connection";
	int e = sqlstate_errno(st);
	snprintf(q->err, sizeof(q->err), "%s: %.*s%s%s", ctx, (int)strcspn(msg, "\n"), msg,
		 st ? " (sqlstate " : "", st ? st : "");
	if (st)
		strncat(q->err, ")", sizeof(q->err) - strlen(q->err) - 1);
	/* a standby (after a failover) refuses writes: a new connection finds
	 * the primary (target_session_attrs=read-write in the URL) */
	if (e == -ENOTCONN || (e == -EROFS && !q->read_only) ||
	    (q->conn && PQstatus(q->conn) != CONNECTION_OK))
		conn_drop(q);
	return e;
}

static int64_t deadline_of(const struct pg *q)
{
	return clock_mono_ms() + q->wait_ms;
}

/* Waits until the socket is ready for events or the deadline passes. */
static int sock_wait(struct pg *q, short events, int64_t deadline, const char *ctx)
{
	int64_t left = deadline - clock_mono_ms();
	if (left <= 0) {
		snprintf(q->err, sizeof(q->err), "%s: no answer from the database within %" PRId64 " ms",
			 ctx, q->wait_ms);
		conn_drop(q);
		return -ETIMEDOUT;
	}
	struct pollfd p = { .fd = PQsocket(q->conn), .events = events };
	int n;
	do
		n = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return fail_msg(q, -errno, "%s: poll: %s", ctx, strerror(errno));
	return 0; /* ready, or the deadline: the caller's loop finds out which */
}

/* Session settings: a statement or an idle transaction cannot outlive a
 * call's wait by much, on the server's side either. */
static int session_setup(struct pg *q);

/* Notices (a DROP of nothing, a ROLLBACK outside a transaction) are no
 * news: libpq would print them on stderr. */
static void notice_quiet(void *arg, const PGresult *res)
{
	(void)arg, (void)res;
}

/* Connects with the deadline (libpq's own polling); 0 or -errno. */
static int conn_make(struct pg *q, int64_t deadline)
{
	char ctimeout[24], utimeout[24];
	int64_t secs = (q->wait_ms + 999) / 1000;
	snprintf(ctimeout, sizeof(ctimeout), "%" PRId64, secs < 2 ? 2 : secs);
	snprintf(utimeout, sizeof(utimeout), "%" PRId64, q->wait_ms < 1000 ? 1000 : q->wait_ms);
	_cleanup_free_ char *app = xasprintf("edibroker %.40s", q->conf->node);
	/* ours first: what the URL sets overrides them; the password file last */
	const char *kw[] = { "connect_timeout", "tcp_user_timeout", "keepalives_idle",
			     "keepalives_interval", "keepalives_count", "application_name",
			     "dbname", "password", NULL };
	const char *val[] = { ctimeout, utimeout, "5", "2", "3", app, q->conf->url,
			      q->conf->password, NULL };
	if (!q->conf->password)
		kw[7] = NULL;
	q->conn = PQconnectStartParams(kw, val, 1);
	if (!q->conn)
		return fail_msg(q, -ENOMEM, "connect: out of memory");
	if (PQstatus(q->conn) == CONNECTION_BAD) {
		int r = fail_msg(q, -ENOTCONN, "connect: %.*s",
				 (int)strcspn(PQerrorMessage(q->conn), "\n"), PQerrorMessage(q->conn));
		conn_drop(q);
		return r;
	}
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	while (st != PGRES_POLLING_OK) {
		if (st == PGRES_POLLING_FAILED) {
			int r = fail_msg(q, -ENOTCONN, "connect: %.*s",
					 (int)strcspn(PQerrorMessage(q->conn), "\n"),
					 PQerrorMessage(q->conn));
			conn_drop(q);
			return r;
		}
		int r = sock_wait(q, st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline,
				  "connect");
		if (r < 0)
			return r;
		st = PQconnectPoll(q->conn);
	}
	PQsetNoticeReceiver(q->conn, notice_quiet, NULL);
	if (PQsetnonblocking(q->conn, 1) != 0) {
		conn_drop(q);
		return fail_msg(q, -EIO, "connect: cannot make the socket non-blocking");
	}
	return session_setup(q);
}

/* True when the server has closed the connection while it sat idle (a
 * restart, a failover, an idle timeout): the socket reads as ready and
 * libpq then finds the end. Costs a poll() of zero wait, no round trip. */
static bool conn_gone(struct pg *q)
{
	if (PQstatus(q->conn) != CONNECTION_OK)
		return true;
	if (q->queued > 0 || PQisBusy(q->conn))
		return false; /* results are due: not idle */
	struct pollfd p = { .fd = PQsocket(q->conn), .events = POLLIN };
	if (poll(&p, 1, 0) <= 0)
		return false;
	return !PQconsumeInput(q->conn) || PQstatus(q->conn) != CONNECTION_OK;
}

/* A usable connection, made when there is none or the old one is gone. */
static int conn_ensure(struct pg *q)
{
	if (q->conn && !q->in_batch && conn_gone(q)) {
		conn_drop(q);
		q->rest_until = 0; /* found before use: no reason to rest */
	}
	if (q->conn && PQstatus(q->conn) == CONNECTION_OK)
		return 0;
	if (q->conn)
		conn_drop(q);
	if (q->breaker && clock_mono_ms() < q->rest_until) {
		if (strncmp(q->err, "database unreachable", 20) != 0) {
			char why[sizeof(q->err)];
			memcpy(why, q->err, sizeof(why));
			snprintf(q->err, sizeof(q->err), "database unreachable (%.400s); trying again "
				 "shortly", why[0] ? why : "connection lost");
		}
		return -ENOTCONN;
	}
	return conn_make(q, deadline_of(q));
}

/* Sends what libpq buffered, within the deadline. */
static int conn_flush(struct pg *q, int64_t deadline, const char *ctx)
{
	for (;;) {
		int f = PQflush(q->conn);
		if (f == 0)
			return 0;
		if (f < 0)
			return fail_res(q, NULL, ctx);
		int r = sock_wait(q, POLLIN | POLLOUT, deadline, ctx);
		if (r < 0)
			return r;
		if (!PQconsumeInput(q->conn)) /* the server may answer while we write */
			return fail_res(q, NULL, ctx);
	}
}

/* The next result (NULL ends a statement's results), within the deadline;
 * *err is set when the connection failed. */
static PGresult *next_result(struct pg *q, int64_t deadline, const char *ctx, int *err)
{
	*err = 0;
	while (PQisBusy(q->conn)) {
		int r = sock_wait(q, POLLIN, deadline, ctx);
		if (r < 0) {
			*err = r;
			return NULL;
		}
		if (!PQconsumeInput(q->conn)) {
			*err = fail_res(q, NULL, ctx);
			return NULL;
		}
	}
	return PQgetResult(q->conn);
}

/* ---- parameters ------------------------------------------------------------ */

#define PARAMS_MAX 24
#define BYTEAOID_ 17 /* pg_type.oid of bytea (catalog/pg_type_d.h, not in libpq's headers) */

struct params {
	int n;
	const char *v[PARAMS_MAX];
	int len[PARAMS_MAX];
	int fmt[PARAMS_MAX];
	char num[PARAMS_MAX][24];
	char *owned[PARAMS_MAX];
};

static void p_free(struct params *p)
{
	for (int i = 0; i < p->n; i++)
		free(p->owned[i]);
}

/* s[0..n) as valid UTF-8, at most max bytes, cut at a character boundary:
 * PostgreSQL refuses text that is not valid in the database's encoding,
 * and one such field would fail every batch it is in. A byte that starts
 * no valid sequence becomes U+FFFD. */
static char *utf8_clean(const char *s, size_t n, size_t max)
{
	static const char repl[] = "\xef\xbf\xbd";
	char *o = xmalloc((n < max ? n : max) * 3 + 4);
	size_t used = 0;
	for (size_t i = 0; i < n;) {
		size_t k = utf8_decode(s + i, n - i, NULL);
		const char *from = k ? s + i : repl;
		size_t len = k ? k : 3;
		if (used + len > max)
			break;
		memcpy(o + used, from, len);
		used += len;
		i += k ? k : 1;
	}
	o[used] = '\0';
	return o;
}

static void p_owned(struct params *p, char *s)
{
	assert(p->n < PARAMS_MAX);
	p->v[p->n] = s;
	p->len[p->n] = 0;
	p->fmt[p->n] = 0;
	p->owned[p->n++] = s;
}

/* Text, cut to max bytes at a character boundary (SIZE_MAX: whole). */
static void p_text_capped(struct params *p, const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;
	if (!s || (n <= max && utf8_valid(s, n))) {
		assert(p->n < PARAMS_MAX);
		p->v[p->n] = s;
		p->len[p->n] = 0;
		p->fmt[p->n] = 0;
		p->owned[p->n++] = NULL;
		return;
	}
	p_owned(p, utf8_clean(s, n, max));
}

static void p_text(struct params *p, const char *s)
{
	p_text_capped(p, s, SIZE_MAX);
}

static void p_i64(struct params *p, int64_t v)
{
	assert(p->n < PARAMS_MAX);
	snprintf(p->num[p->n], sizeof(p->num[0]), "%" PRId64, v);
	p_text(p, p->num[p->n]);
}

/* LIMIT for a size_t limit: NULL (none) past what bigint holds. */
static void p_limit(struct params *p, size_t limit)
{
	if (limit > (size_t)INT64_MAX)
		p_text(p, NULL);
	else
		p_i64(p, (int64_t)limit);
}

static void p_bool(struct params *p, bool v)
{
	p_text(p, v ? "t" : "f");
}

static void p_bytes(struct params *p, const void *data, size_t len)
{
	assert(p->n < PARAMS_MAX && len <= INT_MAX);
	p->v[p->n] = data ? data : "";
	p->len[p->n] = (int)len;
	p->fmt[p->n] = 1;
	p->owned[p->n++] = NULL;
}

static uint8_t *put_be32(uint8_t *o, uint32_t v)
{
	o[0] = (uint8_t)(v >> 24);
	o[1] = (uint8_t)(v >> 16);
	o[2] = (uint8_t)(v >> 8);
	o[3] = (uint8_t)v;
	return o + 4;
}

/* bytea[] in PostgreSQL's binary array format (one dimension, no NULLs,
 * element type bytea): the bodies of a batch in one parameter, copied
 * once and never escaped. */
static void p_bytea_array(struct params *p, const uint8_t *const *v, const size_t *len, size_t n)
{
	size_t total = 20;
	for (size_t i = 0; i < n; i++)
		total += 4 + len[i];
	assert(p->n < PARAMS_MAX && total <= INT_MAX && n <= INT32_MAX);
	uint8_t *buf = xmalloc(total), *o = buf;
	o = put_be32(o, 1);          /* dimensions */
	o = put_be32(o, 0);          /* no NULLs */
	o = put_be32(o, BYTEAOID_);  /* element type */
	o = put_be32(o, (uint32_t)n);
	o = put_be32(o, 1);          /* lower bound */
	for (size_t i = 0; i < n; i++) {
		o = put_be32(o, (uint32_t)len[i]);
		if (len[i])
			memcpy(o, v[i], len[i]);
		o += len[i];
	}
	p->v[p->n] = (const char *)buf;
	p->len[p->n] = (int)total;
	p->fmt[p->n] = 1;
	p->owned[p->n++] = (char *)buf;
}

/* An array literal {"a","b"} of strings, quoted for the array parser; a
 * NULL string is an SQL NULL. */
static void p_text_array(struct params *p, const char *const *v, size_t n, size_t stride)
{
	size_t len = 3;
	for (size_t i = 0; i < n; i++) {
		const char *s = *(const char *const *)((const char *)v + i * stride);
		len += s ? 2 * strlen(s) + 3 : 5;
	}
	char *buf = xmalloc(len * 3), *o = buf; /* room for U+FFFD in place of any byte */
	*o++ = '{';
	for (size_t i = 0; i < n; i++) {
		const char *s = *(const char *const *)((const char *)v + i * stride);
		if (i)
			*o++ = ',';
		if (!s) { /* an SQL NULL */
			memcpy(o, "NULL", 4);
			o += 4;
			continue;
		}
		_cleanup_free_ char *clean = utf8_valid(s, strlen(s)) ? NULL
						: utf8_clean(s, strlen(s), SIZE_MAX);
		if (clean)
			s = clean;
		*o++ = '"';
		for (; *s; s++) {
			if (*s == '"' || *s == '\\')
				*o++ = '\\';
			*o++ = *s;
		}
		*o++ = '"';
	}
	*o++ = '}';
	*o = '\0';
	p_text(p, buf);
	p->owned[p->n - 1] = buf;
}

static void p_i64_array(struct params *p, const int64_t *v, size_t n)
{
	char *buf = xmalloc(n * 21 + 3), *o = buf;
	*o++ = '{';
	for (size_t i = 0; i < n; i++)
		o += sprintf(o, "%s%" PRId64, i ? "," : "", v[i]);
	*o++ = '}';
	*o = '\0';
	p_text(p, buf);
	p->owned[p->n - 1] = buf;
}

/* ---- results (binary) ------------------------------------------------------ */

static bool r_null(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col);
}

static int64_t r_i64(const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return 0;
	const char *p = PQgetvalue(r, row, col);
	switch (PQftype(r, col)) {
	case OID_INT8: {
		uint64_t v;
		memcpy(&v, p, 8);
		return (int64_t)be64toh(v);
	}
	case OID_INT4: {
		uint32_t v;
		memcpy(&v, p, 4);
		return (int32_t)be32toh(v);
	}
	case OID_INT2: {
		uint16_t v;
		memcpy(&v, p, 2);
		return (int16_t)be16toh(v);
	}
	case OID_BOOL:
		return p[0] != 0;
	default:
		assert(!"column is not an integer");
		return 0;
	}
}

/* A text column (binary results are the bytes, NUL-terminated by libpq). */
static const char *r_text(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

/* ---- statements -------------------------------------------------------------- */

static bool res_ok(const PGresult *r);
static int stmt_read(struct pg *q, int64_t deadline, PGresult **out, const char *ctx);

/* Prepares statement id on this connection when it is not yet, and waits
 * for it. Never inside a pipeline: begin() prepares them all first, so a
 * pipeline that aborts cannot leave us wrong about what is prepared. */
static int stmt_prepare(struct pg *q, int id, const char *name, const char *ctx)
{
	if (q->prepared & (1ull << id))
		return 0;
	assert(PQpipelineStatus(q->conn) == PQ_PIPELINE_OFF);
	if (!PQsendPrepare(q->conn, name, stmt_sql[id], 0, NULL))
		return fail_res(q, NULL, ctx);
	q->prepared |= 1ull << id;
	int64_t deadline = deadline_of(q);
	int r = conn_flush(q, deadline, ctx);
	if (r == 0)
		r = stmt_read(q, deadline, NULL, ctx);
	if (r < 0)
		q->prepared &= ~(1ull << id);
	return r;
}

/* Sends a statement: prepared (id >= 0) or one-off (sql), results binary. */
static int stmt_send(struct pg *q, int id, const char *sql, const struct params *p,
		     const char *ctx)
{
	int r = conn_ensure(q);
	if (r < 0)
		return r;
	int n = p ? p->n : 0;
	const char *const *v = p ? p->v : NULL;
	const int *len = p ? p->len : NULL, *fmt = p ? p->fmt : NULL;
	int ok;
	if (id >= 0) {
		char name[16];
		snprintf(name, sizeof(name), "s%d", id);
		r = stmt_prepare(q, id, name, ctx);
		if (r < 0)
			return r;
		ok = PQsendQueryPrepared(q->conn, name, n, v, len, fmt, 1);
	} else {
		ok = PQsendQueryParams(q->conn, sql, n, NULL, v, len, fmt, 1);
	}
	if (!ok)
		return fail_res(q, NULL, ctx);
	q->queued++;
	return 0;
}

static bool res_ok(const PGresult *r)
{
	ExecStatusType st = PQresultStatus(r);
	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* Reads the results of one statement; *out gets the last (caller clears),
 * or NULL. 0 or -errno. */
static int stmt_read(struct pg *q, int64_t deadline, PGresult **out, const char *ctx)
{
	int err = 0, r = 0;
	PGresult *res, *last = NULL;
	while ((res = next_result(q, deadline, ctx, &err))) {
		if (r == 0 && !res_ok(res))
			r = fail_res(q, res, ctx);
		PQclear(last);
		last = res;
		if (!q->conn)
			break; /* dropped: nothing more to read */
	}
	if (r == 0 && err < 0)
		r = err;
	if (r < 0 || !out)
		PQclear(last);
	else
		*out = last;
	return r;
}

/* Runs one statement outside a pipeline; *out (when not NULL) gets its
 * result, to PQclear. */
static int stmt_run(struct pg *q, int id, const char *sql, const struct params *p,
		    PGresult **out, const char *ctx)
{
	assert(!q->in_batch || PQpipelineStatus(q->conn) == PQ_PIPELINE_OFF);
	if (out)
		*out = NULL;
	int r = stmt_send(q, id, sql, p, ctx);
	if (r < 0)
		return r;
	int64_t deadline = deadline_of(q);
	r = conn_flush(q, deadline, ctx);
	while (r == 0 && q->queued > 0) {
		PGresult *res = NULL;
		r = stmt_read(q, deadline, q->queued == 1 ? &res : NULL, ctx);
		q->queued = q->conn ? q->queued - 1 : 0;
		if (r == 0 && res && out)
			*out = res;
		else
			PQclear(res);
	}
	if (r < 0) {
		q->queued = 0;
		if (q->conn && PQtransactionStatus(q->conn) == PQTRANS_ACTIVE)
			conn_drop(q); /* a result we never read: start afresh */
	}
	return r;
}

/* Runs a statement for its effect; its row count into *changed (optional). */
static int stmt_exec(struct pg *q, int id, const char *sql, const struct params *p,
		     int64_t *changed, const char *ctx)
{
	PGresult *res;
	int r = stmt_run(q, id, sql, p, &res, ctx);
	if (r == 0 && changed) {
		const char *c = PQcmdTuples(res);
		*changed = c && *c ? strtoll(c, NULL, 10) : 0;
	}
	PQclear(res);
	return r;
}

/* Runs sql, which may hold several statements (the simple protocol: no
 * parameters, text results, none wanted). Not inside a pipeline. */
static int exec_simple(struct pg *q, const char *sql, const char *ctx)
{
	assert(!q->in_batch);
	int r = conn_ensure(q);
	if (r < 0)
		return r;
	if (!PQsendQuery(q->conn, sql))
		return fail_res(q, NULL, ctx);
	int64_t deadline = deadline_of(q);
	r = conn_flush(q, deadline, ctx);
	if (r == 0)
		r = stmt_read(q, deadline, NULL, ctx);
	return r;
}

/* The first column of the first row as an integer: 1, or 0 without a row. */
static int query_i64(struct pg *q, const char *sql, const struct params *p, int64_t *v,
		     const char *ctx)
{
	PGresult *res;
	int r = stmt_run(q, -1, sql, p, &res, ctx);
	if (r < 0)
		return r;
	r = PQntuples(res) > 0 && !r_null(res, 0, 0);
	if (r)
		*v = r_i64(res, 0, 0);
	PQclear(res);
	return r;
}

/*
 * Row callbacks come in one type per record (store.h). walk_rows() walks
 * a result and a row_fn per record reads one row and calls the caller's
 * callback, which travels in struct walk under its own type: no function
 * pointer is converted, so every call is through the type it was made as.
 */
struct walk {
	union {
		store_msg_cb msg;
		store_depth_cb depth;
		store_tally_cb tally;
		store_outage_cb outage;
		store_notice_cb notice;
		store_send_cb send;
		store_maintenance_cb maint;
		store_summary_cb summary;
		store_name_cb name;
		store_event_cb event;
		store_hold_cb hold;
		store_id_cb id;
		store_lease_cb lease;
		store_node_cb node;
		store_observation_cb observation;
	} cb;
	void *arg;
	bool skipped; /* set by a row_fn for a row it did not pass on */
};

typedef int (*row_fn)(const PGresult *res, int i, struct walk *w);

/* Passes every row of res to row (and so to the callback) until one returns
 * non-zero: the number of rows passed (a positive stop counts its row), or
 * the callback's negative return. */
static int walk_rows(const PGresult *res, row_fn row, struct walk *w)
{
	int n = 0;
	for (int i = 0; i < PQntuples(res); i++) {
		w->skipped = false;
		int stop = row(res, i, w);
		if (w->skipped)
			continue;
		n++;
		if (stop)
			return stop < 0 ? stop : n;
	}
	return n;
}

/* Runs one statement outside a pipeline and walks its rows: walk_rows()'s
 * return, or the statement's -errno. */
static int query_rows(struct pg *q, int id, const char *sql, const struct params *p, row_fn row,
		      struct walk *w, const char *ctx)
{
	PGresult *res;
	int r = stmt_run(q, id, sql, p, &res, ctx);
	if (r < 0)
		return r;
	r = walk_rows(res, row, w);
	PQclear(res);
	return r;
}

static int session_setup(struct pg *q)
{
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "SET statement_timeout = %" PRId64 "; SET idle_in_transaction_session_timeout = %d; "
		 "SET lock_timeout = %" PRId64 "; SET default_transaction_read_only = %s",
		 q->wait_ms, IDLE_TX_TIMEOUT_MS, q->wait_ms, q->read_only ? "on" : "off");
	if (!PQsendQuery(q->conn, sql)) /* simple protocol: several statements */
		return fail_res(q, NULL, "session settings");
	int64_t deadline = deadline_of(q);
	int r = conn_flush(q, deadline, "session settings");
	if (r == 0)
		r = stmt_read(q, deadline, NULL, "session settings");
	return r;
}

/* ---- opening: schema, instance id ---------------------------------------------- */

static struct pg *pg_new(struct pg_conf *conf, int64_t wait_ms)
{
	struct pg *q = xcalloc(1, sizeof(*q));
	q->conf = conf;
	conf->refs++;
	q->wait_ms = wait_ms;
	return q;
}

static void conf_unref(struct pg_conf *c)
{
	if (!c || --c->refs > 0)
		return;
	free(c->url);
	if (c->password) {
		explicit_bzero(c->password, strlen(c->password));
		free(c->password);
	}
	free(c->node);
	free(c);
}

static void msgbuf_free(struct msgbuf *m)
{
	for (size_t i = 0; i < MSGBUF_NUMS; i++)
		free(m->num[i]);
	for (size_t i = 0; i < MSGBUF_TEXTS; i++)
		free(m->text[i]);
	free(m->body);
	free(m->blen);
	*m = (struct msgbuf){ 0 };
}

/* Appends one message: nums and texts in the order of S_MSG_INSERT_MANY's
 * columns (id, state; the texts; nletters, received_at, size, ack_state). */
static void msgbuf_add(struct msgbuf *m, const int64_t *nums, const char *const *texts,
		       const void *body, size_t blen)
{
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 256;
		for (size_t i = 0; i < MSGBUF_NUMS; i++)
			m->num[i] = xrealloc(m->num[i], m->cap * sizeof(int64_t));
		for (size_t i = 0; i < MSGBUF_TEXTS; i++)
			m->text[i] = xrealloc(m->text[i], m->cap * sizeof(char *));
		m->body = xrealloc(m->body, m->cap * sizeof(*m->body));
		m->blen = xrealloc(m->blen, m->cap * sizeof(size_t));
	}
	for (size_t i = 0; i < MSGBUF_NUMS; i++)
		m->num[i][m->n] = nums[i];
	for (size_t i = 0; i < MSGBUF_TEXTS; i++)
		m->text[i][m->n] = texts[i];
	m->body[m->n] = body ? body : (const uint8_t *)"";
	m->blen[m->n++] = blen;
}

static void rowbuf_add(struct rowbuf *r, const char *a, const char *b, int64_t id, int64_t at)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 256;
		r->a = xrealloc(r->a, r->cap * sizeof(char *));
		r->b = xrealloc(r->b, r->cap * sizeof(char *));
		r->id = xrealloc(r->id, r->cap * sizeof(int64_t));
		r->at = xrealloc(r->at, r->cap * sizeof(int64_t));
	}
	r->a[r->n] = xstrdup(a);
	r->b[r->n] = xstrdup_or_null(b);
	r->id[r->n] = id;
	r->at[r->n++] = at;
}

static void rowbuf_clear(struct rowbuf *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->a[i]);
		free(r->b[i]);
	}
	r->n = 0;
}

static void rowbuf_free(struct rowbuf *r)
{
	rowbuf_clear(r);
	free(r->a);
	free(r->b);
	free(r->id);
	free(r->at);
	*r = (struct rowbuf){ 0 };
}

static void batch_reset(struct pg *q)
{
	q->mbuf.n = 0; /* borrowed: nothing to free but the arrays, kept */
	rowbuf_clear(&q->kbuf);
	rowbuf_clear(&q->tbuf);
	smap_clear(&q->keys);
	smap_clear(&q->txids);
	smap_clear(&q->tokens);
	free(q->ids);
	q->ids = NULL;
	q->nids = q->usedids = 0;
	q->ndbuf = 0;
	q->prefetched = false;
	free((char *)q->mfence.lease);
	q->mfence = (struct store_fence){ 0 };
}

static void pg_close(void *be)
{
	struct pg *q = be;
	if (!q)
		return;
	conn_drop(q);
	batch_reset(q);
	free(q->dbuf);
	rowbuf_free(&q->kbuf);
	rowbuf_free(&q->tbuf);
	msgbuf_free(&q->mbuf);
	smap_clear(&q->routes);
	free((char *)q->rfence.lease);
	conf_unref(q->conf);
	free(q);
}

static int schema_have(struct pg *q, int64_t *v)
{
	PGresult *res;
	int r = stmt_run(q, -1, "SELECT to_regclass('meta') IS NOT NULL", NULL, &res,
			 "schema version");
	if (r < 0)
		return r;
	bool has_meta = r_i64(res, 0, 0) != 0;
	PQclear(res);
	*v = 0;
	if (!has_meta) {
		int64_t tables = 0;
		r = query_i64(q, "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()",
			      NULL, &tables, "schema version");
		if (r >= 0 && tables > 0)
			return fail_msg(q, -EBADMSG,
					"not an edibroker database (tables, no schema version)");
		return r < 0 ? r : 0;
	}
	_cleanup_free_ char *txt = NULL;
	r = stmt_run(q, -1, "SELECT value FROM meta WHERE key = 'schema_version'", NULL, &res,
		     "schema version");
	if (r < 0)
		return r;
	if (PQntuples(res) == 1)
		*v = strtoll(r_text(res, 0, 0), NULL, 10);
	PQclear(res);
	if (*v < 0 || *v > (int64_t)ARRAY_SIZE(migrations))
		return fail_msg(q, -ENOTSUP, "schema version %" PRId64 " is newer than this edibroker's (%zu)",
				*v, ARRAY_SIZE(migrations));
	return 0;
}

static int instance_create(struct pg *q)
{
	uint8_t rnd[4];
	ssize_t n;
	do
		n = getrandom(rnd, sizeof(rnd), 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(rnd))
		return fail_msg(q, n < 0 ? -errno : -EIO, "getrandom failed");
	char sql[96];
	snprintf(sql, sizeof(sql),
		 "INSERT INTO meta (key, value) VALUES ('instance', '%02x%02x%02x%02x')", rnd[0],
		 rnd[1], rnd[2], rnd[3]);
	return exec_simple(q, sql, "instance id");
}

/* Runs the migrations from the database's version up to the current one,
 * in one transaction under an advisory lock: a second daemon starting at
 * the same time waits, then finds the schema current. */
static int schema_upgrade(struct pg *q)
{
	int r = exec_simple(q, "BEGIN", "migrate");
	if (r < 0)
		return r;
	char lock[80];
	snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%d)", MIGRATION_LOCK);
	r = exec_simple(q, lock, "migrate");
	int64_t v = 0;
	if (r == 0)
		r = schema_have(q, &v);
	for (size_t i = (size_t)v; r == 0 && i < ARRAY_SIZE(migrations); i++)
		r = exec_simple(q, migrations[i], "migrate");
	if (r == 0 && v < (int64_t)ARRAY_SIZE(migrations)) {
		char sql[160];
		snprintf(sql, sizeof(sql),
			 "INSERT INTO meta (key, value) VALUES ('schema_version', '%zu') "
			 "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
			 ARRAY_SIZE(migrations));
		r = exec_simple(q, sql, "migrate");
		if (r == 0 && v == 0)
			r = instance_create(q);
	}
	if (r == 0)
		r = exec_simple(q, "COMMIT", "migrate");
	if (r < 0 && q->conn)
		(void)exec_simple(q, "ROLLBACK", "migrate"); /* open fails anyway */
	return r;
}

/* check_only / read_only: the schema must be current; nothing changes. */
static int schema_check(struct pg *q)
{
	int64_t v;
	int r = schema_have(q, &v);
	if (r == 0 && v < (int64_t)ARRAY_SIZE(migrations))
		return fail_msg(q, -EROFS,
				"schema version %" PRId64 ", this edibroker needs %zu: start one "
				"daemon to upgrade it",
				v, ARRAY_SIZE(migrations));
	return r;
}

static int instance_load(struct pg *q)
{
	PGresult *res;
	int r = stmt_run(q, -1, "SELECT value FROM meta WHERE key = 'instance'", NULL, &res,
			 "instance id");
	if (r < 0)
		return r;
	const char *id = PQntuples(res) == 1 ? r_text(res, 0, 0) : "";
	if (strlen(id) != 8 || strspn(id, "0123456789abcdef") != 8)
		r = fail_msg(q, -EBADMSG, "instance id missing or malformed");
	else
		memcpy(q->instance, id, sizeof(q->instance));
	PQclear(res);
	return r;
}

static int pg_open(const char *state_dir, const struct store_options *opt, void **be)
{
	if (str_empty(opt->url)) {
		snprintf(open_error, sizeof(open_error), "no database url ([store] url)");
		return -EINVAL;
	}
	struct pg_conf *conf = xcalloc(1, sizeof(*conf));
	conf->url = xstrdup(opt->url);
	conf->password = xstrdup_or_null(opt->password);
	conf->node = xstrdup(str_empty(opt->node) ? "node" : opt->node);
	struct pg *q = pg_new(conf, OPEN_WAIT_MS);
	q->read_only = opt->read_only;
	int r = conn_ensure(q);
	int64_t v = 0;
	if (r == 0 && opt->check_only) /* older is fine: a daemon upgrades it */
		r = schema_have(q, &v);
	else if (r == 0)
		r = opt->read_only ? schema_check(q) : schema_upgrade(q);
	if (r == 0 && !(opt->check_only && v == 0))
		r = instance_load(q);
	if (r < 0) {
		/* the URL may hold a password: say where only by host and name */
		const char *host = q->conn ? PQhost(q->conn) : NULL, *db = q->conn ? PQdb(q->conn) : NULL;
		snprintf(open_error, sizeof(open_error), "%s%s%s: %s", db ? db : "database",
			 host ? " on " : "", host ? host : "", q->err);
		pg_close(q);
		return r;
	}
	q->wait_ms = opt->wait_ms > 0 ? opt->wait_ms : STORE_LOOP_WAIT_MS; /* the loop's handle */
	q->breaker = true;
	(void)session_setup(q); /* the loop's wait; the next connection sets it anyway */
	*be = q;
	return 0;
}

static int pg_connect(void *be, int64_t wait_ms, void **out)
{
	struct pg *q = be;
	struct pg *v = pg_new(q->conf, wait_ms);
	v->read_only = q->read_only;
	memcpy(v->instance, q->instance, sizeof(v->instance));
	*out = v;
	return 0;
}

static const char *pg_last_error(void *be)
{
	struct pg *q = be;
	return q ? q->err : open_error;
}

static const char *pg_instance(void *be)
{
	struct pg *q = be;
	return q->instance;
}

static const char *pg_node(void *be)
{
	struct pg *q = be;
	return q->conf->node;
}

static int pg_schema_version(void *be, int64_t *have, int64_t *want)
{
	int r = schema_have(be, have);
	if (r == 0)
		*want = (int64_t)ARRAY_SIZE(migrations);
	return r;
}

/* ---- the batch: one pipelined transaction ------------------------------------ */

/* Reads the results of the oldest statement in the pipeline; *out (when
 * not NULL) gets its last result, to PQclear. A statement skipped after an
 * earlier error reads as -ECANCELED (the error itself was reported). */
static int pipe_take(struct pg *q, int64_t deadline, PGresult **out, const char *ctx)
{
	if (out)
		*out = NULL;
	int err = 0, r = 0;
	PGresult *res, *last = NULL;
	while ((res = next_result(q, deadline, ctx, &err))) {
		ExecStatusType st = PQresultStatus(res);
		if (r == 0 && st == PGRES_PIPELINE_ABORTED)
			r = -ECANCELED;
		else if (r == 0 && !res_ok(res))
			r = fail_res(q, res, ctx);
		PQclear(last);
		last = res;
		if (!q->conn)
			break;
	}
	q->queued = q->conn && q->queued > 0 ? q->queued - 1 : 0;
	if (r == 0 && err < 0)
		r = err;
	if (r < 0 || !out)
		PQclear(last);
	else
		*out = last;
	return r;
}

/* Asks the server to send what it has, and sends what we have. */
static int pipe_push(struct pg *q, int64_t deadline, const char *ctx)
{
	if (!q->conn)
		return fail_msg(q, -ENOTCONN, "%s: connection lost", ctx);
	if (!PQsendFlushRequest(q->conn))
		return fail_res(q, NULL, ctx);
	return conn_flush(q, deadline, ctx);
}

/* Reads every pending statement's results but the last n; the first error. */
static int pipe_drain(struct pg *q, int64_t deadline, int keep, const char *ctx)
{
	int first = 0;
	while (q->conn && q->queued > keep) {
		int r = pipe_take(q, deadline, NULL, ctx);
		if (first == 0 && r < 0)
			first = r;
	}
	if (first == 0 && !q->conn && q->queued > keep)
		first = -ENOTCONN;
	return first;
}

/* Sends a statement into the pipeline without waiting for it. Writes pile
 * up in libpq's buffer: past a megabyte it is pushed out (reading what the
 * server answers meanwhile), so neither side's buffer fills for good. */
static int pipe_send(struct pg *q, enum stmt_id id, const struct params *p, const char *ctx)
{
	int r = stmt_send(q, (int)id, NULL, p, ctx);
	for (int i = 0; p && i < p->n; i++)
		q->unflushed += p->fmt[i] ? (size_t)p->len[i] : p->v[i] ? strlen(p->v[i]) : 0;
	if (r == 0 && q->unflushed > (1u << 20)) {
		q->unflushed = 0;
		r = conn_flush(q, deadline_of(q), ctx);
	}
	return r;
}

/* Runs a query inside the pipeline and waits for its result (a lookup the
 * batch_prepare did not cover): earlier statements are read first. */
static int pipe_query(struct pg *q, enum stmt_id id, const struct params *p, PGresult **out,
		      const char *ctx)
{
	int r = pipe_send(q, id, p, ctx);
	int64_t deadline = deadline_of(q);
	if (r == 0)
		r = pipe_push(q, deadline, ctx);
	if (r == 0)
		r = pipe_drain(q, deadline, 1, ctx);
	if (r == 0)
		r = pipe_take(q, deadline, out, ctx);
	return r;
}

static int prepare_all(struct pg *q)
{
	for (int i = 0; i < S__COUNT; i++) {
		char name[16];
		snprintf(name, sizeof(name), "s%d", i);
		int r = stmt_prepare(q, i, name, "prepare");
		if (r < 0)
			return r;
	}
	return 0;
}

static int pg_ping(void *be)
{
	return exec_simple(be, "SELECT 1", "ping");
}

static int pg_begin(void *be)
{
	struct pg *q = be;
	assert(!q->in_batch);
	int r = conn_ensure(q);
	if (r == 0)
		r = prepare_all(q);
	if (r < 0)
		return r;
	if (!PQenterPipelineMode(q->conn))
		return fail_res(q, NULL, "begin");
	q->in_batch = true;
	q->queued = 0;
	if (!PQsendQueryParams(q->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 1))
		return fail_res(q, NULL, "begin");
	q->queued++;
	return 0;
}

/* Reads up to the sync point's result (the sync was sent). 0 or -errno. */
static int pipe_synced(struct pg *q, int64_t deadline, const char *ctx)
{
	int err = 0;
	PGresult *res;
	while (q->conn && (res = next_result(q, deadline, ctx, &err))) {
		bool sync = PQresultStatus(res) == PGRES_PIPELINE_SYNC;
		PQclear(res);
		if (sync) {
			q->sync_sent = false;
			return 0;
		}
	}
	return err < 0 ? err : fail_msg(q, -EIO, "%s: no end of pipeline", ctx);
}

/* Leaves pipeline mode once everything sent has been read. */
static void pipe_end(struct pg *q, int64_t deadline)
{
	if (!q->conn || PQpipelineStatus(q->conn) == PQ_PIPELINE_OFF)
		return;
	(void)pipe_drain(q, deadline, 0, "end of batch");
	if (q->conn && !q->sync_sent) {
		if (PQpipelineSync(q->conn) && conn_flush(q, deadline, "end of batch") == 0)
			q->sync_sent = true;
	}
	if (q->conn && q->sync_sent)
		(void)pipe_synced(q, deadline, "end of batch");
	if (q->conn && (q->sync_sent || !PQexitPipelineMode(q->conn)))
		conn_drop(q); /* cannot tell where the stream is: start afresh */
	q->sync_sent = false;
}

/* Sends the delivered ids gathered under the current fence as one UPDATE. */
static int dbuf_flush(struct pg *q)
{
	if (q->ndbuf == 0)
		return 0;
	struct params p = { 0 };
	p_i64_array(&p, q->dbuf, q->ndbuf);
	p_i64(&p, q->dbuf_at);
	bool fenced = q->mfence.lease != NULL;
	if (fenced) {
		p_text(&p, q->mfence.lease);
		p_text(&p, q->conf->node);
		p_i64(&p, q->mfence.epoch);
	}
	int r = pipe_send(q, fenced ? S_DELIVERED_FENCED : S_DELIVERED, &p, "mark delivered");
	p_free(&p);
	q->ndbuf = 0;
	return r;
}

/* Sends the batch's new messages and their bodies, one INSERT each. */
static int msgs_flush(struct pg *q)
{
	struct msgbuf *m = &q->mbuf;
	if (m->n == 0)
		return 0;
	struct params p = { 0 };
	p_i64_array(&p, m->num[0], m->n); /* id */
	p_i64_array(&p, m->num[1], m->n); /* state */
	for (size_t i = 0; i < MSGBUF_TEXTS; i++)
		p_text_array(&p, m->text[i], m->n, sizeof(char *));
	for (size_t i = 2; i < MSGBUF_NUMS; i++)
		p_i64_array(&p, m->num[i], m->n);
	int r = pipe_send(q, S_MSG_INSERT_MANY, &p, "insert messages");
	p_free(&p);
	/* the bodies in parts of at most BODIES_PART_MAX bytes: one parameter
	 * must stay far below libpq's int lengths, however large the batch */
	for (size_t from = 0, to; r == 0 && from < m->n; from = to) {
		size_t bytes = m->blen[from];
		for (to = from + 1; to < m->n && bytes + m->blen[to] <= BODIES_PART_MAX; to++)
			bytes += m->blen[to];
		struct params b = { 0 };
		p_i64_array(&b, m->num[0] + from, to - from);
		p_bytea_array(&b, m->body + from, m->blen + from, to - from);
		r = pipe_send(q, S_BODY_INSERT_MANY, &b, "insert bodies");
		p_free(&b);
	}
	m->n = 0;
	return r;
}

/* Sends the batch's letter keys and ingest tokens, one INSERT each. */
static int rows_flush(struct pg *q)
{
	int r = 0;
	if (q->kbuf.n) {
		struct params p = { 0 };
		p_text_array(&p, (const char *const *)q->kbuf.a, q->kbuf.n, sizeof(char *));
		p_text_array(&p, (const char *const *)q->kbuf.b, q->kbuf.n, sizeof(char *));
		p_i64_array(&p, q->kbuf.id, q->kbuf.n);
		p_i64_array(&p, q->kbuf.at, q->kbuf.n);
		r = pipe_send(q, S_KEY_INSERT_MANY, &p, "record letter keys");
		p_free(&p);
	}
	if (r == 0 && q->tbuf.n) {
		struct params p = { 0 };
		p_text_array(&p, (const char *const *)q->tbuf.a, q->tbuf.n, sizeof(char *));
		p_i64_array(&p, q->tbuf.id, q->tbuf.n);
		p_i64_array(&p, q->tbuf.at, q->tbuf.n);
		r = pipe_send(q, S_TOKEN_INSERT_MANY, &p, "record tokens");
		p_free(&p);
	}
	rowbuf_clear(&q->kbuf);
	rowbuf_clear(&q->tbuf);
	return r;
}

static void routes_merge(struct pg *q, bool ok);

static int pg_commit(void *be)
{
	struct pg *q = be;
	assert(q->in_batch);
	int r = msgs_flush(q);
	if (r == 0)
		r = rows_flush(q);
	if (r == 0)
		r = dbuf_flush(q);
	if (r == 0 && !PQsendQueryParams(q->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 1))
		r = fail_res(q, NULL, "commit");
	if (r == 0)
		q->queued++;
	if (r == 0 && !PQpipelineSync(q->conn))
		r = fail_res(q, NULL, "commit");
	q->sync_sent = r == 0;
	int64_t deadline = deadline_of(q);
	if (r == 0)
		r = conn_flush(q, deadline, "commit");
	/* every result, the COMMIT's last: the first error says why */
	int first = r;
	while (r == 0 && q->conn && q->queued > 0) {
		int e = pipe_take(q, deadline, NULL, "commit");
		if (first == 0 && e < 0 && e != -ECANCELED)
			first = e;
		else if (first == 0 && e == -ECANCELED)
			first = -EIO;
	}
	if (first == 0 && !q->conn)
		first = -ENOTCONN; /* in doubt: the caller replays, tokens make it harmless */
	if (q->conn && q->sync_sent) {
		/* read even after an error: rollback() then finds the stream clean */
		char why[sizeof(q->err)];
		memcpy(why, q->err, sizeof(why));
		int e = pipe_synced(q, deadline, "commit");
		if (first == 0)
			first = e;
		else
			memcpy(q->err, why, sizeof(why)); /* the first error says why */
	}
	if (first == 0 && !PQexitPipelineMode(q->conn))
		first = fail_res(q, NULL, "commit");
	if (first < 0)
		return first; /* store.c rolls back */
	q->in_batch = false;
	routes_merge(q, true);
	batch_reset(q);
	return 0;
}

static void pg_rollback(void *be)
{
	struct pg *q = be;
	char cause[sizeof(q->err)];
	memcpy(cause, q->err, sizeof(cause));
	int64_t deadline = deadline_of(q);
	pipe_end(q, deadline);
	q->in_batch = false;
	if (q->conn && PQtransactionStatus(q->conn) != PQTRANS_IDLE &&
	    exec_simple(q, "ROLLBACK", "rollback") < 0)
		conn_drop(q); /* the server ends the transaction with the session */
	memcpy(q->err, cause, sizeof(cause)); /* what failed, not how we cleaned up */
	routes_merge(q, false);
	batch_reset(q);
}

/* The ids batch_prepare took for new messages; more when they run out. */
static int next_id(struct pg *q, int64_t *id)
{
	if (q->usedids < q->nids) {
		*id = q->ids[q->usedids++];
		return 0;
	}
	struct params p = { 0 };
	p_i64(&p, 1);
	PGresult *res;
	int r = q->in_batch ? pipe_query(q, S_NEXT_IDS, &p, &res, "message id")
			    : stmt_run(q, S_NEXT_IDS, NULL, &p, &res, "message id");
	if (r == 0) {
		*id = r_i64(res, 0, 0);
		PQclear(res);
	}
	return r;
}

struct prefetch {
	const char **ksender, **kletter;
	size_t nkeys;
	const char **tscope, **tsender, **tid;
	size_t ntxids;
	const char **tokens;
	size_t ntokens;
};

static void prefetch_free(struct prefetch *f)
{
	free(f->ksender);
	free(f->kletter);
	free(f->tscope);
	free(f->tsender);
	free(f->tid);
	free(f->tokens);
}

static void prefetch_collect(const struct store_batch *b, struct prefetch *f)
{
	size_t nk = 0, nt = 0;
	for (size_t i = 0; i < b->nmsgs; i++) {
		nk += b->msgs[i].nkeys;
		nt += b->msgs[i].ntxids;
	}
	f->ksender = xcalloc(nk + 1, sizeof(char *));
	f->kletter = xcalloc(nk + 1, sizeof(char *));
	f->tscope = xcalloc(nt + 1, sizeof(char *));
	f->tsender = xcalloc(nt + 1, sizeof(char *));
	f->tid = xcalloc(nt + 1, sizeof(char *));
	f->tokens = xcalloc(b->nmsgs + 1, sizeof(char *));
	for (size_t i = 0; i < b->nmsgs; i++) {
		const struct store_new *m = &b->msgs[i];
		if (m->token)
			f->tokens[f->ntokens++] = m->token;
		for (size_t k = 0; k < m->nkeys; k++) {
			f->ksender[f->nkeys] = m->keys[k].sender;
			f->kletter[f->nkeys++] = m->keys[k].letter_id;
		}
		for (size_t k = 0; k < m->ntxids; k++) {
			f->tscope[f->ntxids] = m->txids[k].scope;
			f->tsender[f->ntxids] = m->txids[k].sender;
			f->tid[f->ntxids++] = m->txids[k].id;
		}
	}
}

/* Caches what is known of a token in this batch: the message it names
 * (-1: none), that message's state and dead-letter reason. */
static void token_put(struct pg *q, const char *token, int64_t id, enum msg_state state,
		      const char *reason)
{
	_cleanup_free_ char *k = key_of(token, "", NULL);
	struct smap_ent *e = smap_put(&q->tokens, k);
	e->val = id;
	e->state = state;
	free(e->text);
	e->text = reason && *reason ? xstrdup(reason) : NULL;
}

/* A row of S_LOOKUP_TOKENS. */
static void token_row(const PGresult *res, int row, struct store_token_seen *first)
{
	*first = (struct store_token_seen){
		.msg_id = r_i64(res, row, 1),
		.state = r_null(res, row, 2) ? MSG_DELIVERED : (enum msg_state)r_i64(res, row, 2),
	};
	str_copy(first->reason, r_text(res, row, 3) ? r_text(res, row, 3) : "",
		 sizeof(first->reason));
}

static void token_found(struct pg *q, const PGresult *res, int row)
{
	struct store_token_seen first;
	token_row(res, row, &first);
	token_put(q, r_text(res, row, 0), first.msg_id, first.state, first.reason);
}

/* Marks every key asked as looked up (val -1: not recorded) before the
 * answers fill in the ones that are. */
static void prefetch_asked(struct pg *q, const struct prefetch *f)
{
	for (size_t i = 0; i < f->nkeys; i++) {
		_cleanup_free_ char *k = key_of(f->ksender[i], f->kletter[i], NULL);
		smap_put(&q->keys, k)->val = -1;
	}
	for (size_t i = 0; i < f->ntxids; i++) {
		_cleanup_free_ char *k = key_of(f->tscope[i], f->tsender[i], f->tid[i]);
		smap_put(&q->txids, k)->val = -1;
	}
	for (size_t i = 0; i < f->ntokens; i++)
		token_put(q, f->tokens[i], -1, MSG_QUEUED, NULL);
}

static void txid_found(struct pg *q, const PGresult *res, int row)
{
	_cleanup_free_ char *k = key_of(r_text(res, row, 0), r_text(res, row, 1),
					r_text(res, row, 2));
	struct smap_ent *e = smap_put(&q->txids, k);
	size_t len = (size_t)PQgetlength(res, row, 3);
	e->digest_len = len <= STORE_DIGEST_MAX ? len : 0;
	memcpy(e->digest, PQgetvalue(res, row, 3), e->digest_len);
	e->val = r_i64(res, row, 4);
}

/* Reads the four answers of batch_prepare, in the order sent. */
static int prefetch_read(struct pg *q, const struct prefetch *f, int64_t deadline)
{
	PGresult *res = NULL;
	int r = 0;
	if (f->nkeys && (r = pipe_take(q, deadline, &res, "look up letter keys")) == 0) {
		for (int i = 0; i < PQntuples(res); i++) {
			_cleanup_free_ char *k = key_of(r_text(res, i, 0), r_text(res, i, 1), NULL);
			smap_put(&q->keys, k)->val = r_i64(res, i, 2);
		}
		PQclear(res);
	}
	if (r == 0 && f->ntxids &&
	    (r = pipe_take(q, deadline, &res, "look up transmission ids")) == 0) {
		for (int i = 0; i < PQntuples(res); i++)
			txid_found(q, res, i);
		PQclear(res);
	}
	if (r == 0 && f->ntokens && (r = pipe_take(q, deadline, &res, "look up tokens")) == 0) {
		for (int i = 0; i < PQntuples(res); i++)
			token_found(q, res, i);
		PQclear(res);
	}
	if (r == 0 && (r = pipe_take(q, deadline, &res, "message ids")) == 0) {
		q->nids = (size_t)PQntuples(res);
		q->ids = xmalloc((q->nids + 1) * sizeof(int64_t));
		for (size_t i = 0; i < q->nids; i++)
			q->ids[i] = r_i64(res, (int)i, 0);
		PQclear(res);
	}
	return r;
}

static int pg_batch_prepare(void *be, const struct store_batch *b)
{
	struct pg *q = be;
	if (b->nmsgs == 0)
		return 0;
	struct prefetch f = { 0 };
	prefetch_collect(b, &f);
	struct params pk = { 0 }, pt = { 0 }, ptok = { 0 }, pn = { 0 };
	int r = 0;
	if (f.nkeys) {
		p_text_array(&pk, f.ksender, f.nkeys, sizeof(char *));
		p_text_array(&pk, f.kletter, f.nkeys, sizeof(char *));
		r = pipe_send(q, S_LOOKUP_KEYS, &pk, "look up letter keys");
	}
	if (r == 0 && f.ntxids) {
		p_text_array(&pt, f.tscope, f.ntxids, sizeof(char *));
		p_text_array(&pt, f.tsender, f.ntxids, sizeof(char *));
		p_text_array(&pt, f.tid, f.ntxids, sizeof(char *));
		r = pipe_send(q, S_LOOKUP_TXIDS, &pt, "look up transmission ids");
	}
	if (r == 0 && f.ntokens) {
		p_text_array(&ptok, f.tokens, f.ntokens, sizeof(char *));
		r = pipe_send(q, S_LOOKUP_TOKENS, &ptok, "look up tokens");
	}
	p_i64(&pn, (int64_t)b->nmsgs);
	if (r == 0)
		r = pipe_send(q, S_NEXT_IDS, &pn, "message ids");
	int64_t deadline = deadline_of(q);
	if (r == 0)
		r = pipe_push(q, deadline, "look up the batch");
	int asked = (f.nkeys > 0) + (f.ntxids > 0) + (f.ntokens > 0) + 1;
	if (r == 0)
		r = pipe_drain(q, deadline, asked, "begin"); /* BEGIN and anything before */
	if (r == 0) {
		prefetch_asked(q, &f);
		r = prefetch_read(q, &f, deadline);
	}
	q->prefetched = r == 0;
	p_free(&pk);
	p_free(&pt);
	p_free(&ptok);
	p_free(&pn);
	prefetch_free(&f);
	return r;
}

static int pg_key_lookup(void *be, const struct store_key *key, int64_t *msg_id)
{
	struct pg *q = be;
	_cleanup_free_ char *k = key_of(key->sender, key->letter_id, NULL);
	struct smap_ent *e = smap_get(&q->keys, k);
	if (!e) { /* not asked for in batch_prepare: ask now */
		struct params p = { 0 };
		p_text_array(&p, &key->sender, 1, sizeof(char *));
		p_text_array(&p, &key->letter_id, 1, sizeof(char *));
		PGresult *res;
		int r = q->in_batch ? pipe_query(q, S_LOOKUP_KEYS, &p, &res, "look up letter key")
				    : stmt_run(q, S_LOOKUP_KEYS, NULL, &p, &res, "look up letter key");
		p_free(&p);
		if (r < 0)
			return r;
		e = smap_put(&q->keys, k);
		e->val = PQntuples(res) ? r_i64(res, 0, 2) : -1;
		PQclear(res);
	}
	if (e->val < 0)
		return 0;
	*msg_id = e->val;
	return 1;
}

static int pg_key_insert(void *be, const struct store_key *key, int64_t msg_id, int64_t now)
{
	struct pg *q = be;
	_cleanup_free_ char *k = key_of(key->sender, key->letter_id, NULL);
	struct smap_ent *e = smap_get(&q->keys, k);
	if (e && e->val >= 0)
		return fail_msg(q, -EEXIST, "record letter key: already recorded");
	if (q->in_batch) { /* sent with the batch's others at commit */
		rowbuf_add(&q->kbuf, key->sender, key->letter_id, msg_id, now);
		smap_put(&q->keys, k)->val = msg_id;
		return 0;
	}
	struct params p = { 0 };
	p_text(&p, key->sender);
	p_text(&p, key->letter_id);
	p_i64(&p, msg_id);
	p_i64(&p, now);
	int r = stmt_exec(q, S_KEY_INSERT, NULL, &p, NULL, "record letter key");
	p_free(&p);
	return r;
}

static void txid_params(struct params *p, const struct store_txid *t)
{
	p_text_array(p, &t->scope, 1, sizeof(char *));
	p_text_array(p, &t->sender, 1, sizeof(char *));
	p_text_array(p, &t->id, 1, sizeof(char *));
}

static int pg_txid_lookup(void *be, const struct store_txid *t, uint8_t *digest, size_t *len,
			  int64_t *msg_id)
{
	struct pg *q = be;
	_cleanup_free_ char *k = key_of(t->scope, t->sender, t->id);
	struct smap_ent *e = smap_get(&q->txids, k);
	if (!e) {
		struct params p = { 0 };
		txid_params(&p, t);
		PGresult *res;
		int r = q->in_batch
				? pipe_query(q, S_LOOKUP_TXIDS, &p, &res, "look up transmission id")
				: stmt_run(q, S_LOOKUP_TXIDS, NULL, &p, &res, "look up transmission id");
		p_free(&p);
		if (r < 0)
			return r;
		if (PQntuples(res)) {
			txid_found(q, res, 0);
			e = smap_get(&q->txids, k);
		} else {
			e = smap_put(&q->txids, k);
			e->val = -1;
		}
		PQclear(res);
		if (!q->in_batch) { /* no batch to keep it for */
			int found = e->val >= 0;
			if (found) {
				*len = e->digest_len;
				memcpy(digest, e->digest, e->digest_len);
				*msg_id = e->val;
			}
			smap_clear(&q->txids);
			return found;
		}
	}
	if (e->val < 0)
		return 0;
	*len = e->digest_len;
	memcpy(digest, e->digest, e->digest_len);
	*msg_id = e->val;
	return 1;
}

static int pg_txid_insert(void *be, const struct store_txid *t, int64_t msg_id, int64_t now)
{
	struct pg *q = be;
	_cleanup_free_ char *k = key_of(t->scope, t->sender, t->id);
	struct smap_ent *e = smap_get(&q->txids, k);
	if (q->in_batch && e && e->val >= 0)
		return fail_msg(q, -EEXIST, "record transmission id: already recorded");
	struct params p = { 0 };
	p_text(&p, t->scope);
	p_text(&p, t->sender);
	p_text(&p, t->id);
	p_bytes(&p, t->digest, t->digest_len);
	p_i64(&p, msg_id);
	p_i64(&p, now);
	int r = q->in_batch ? pipe_send(q, S_TXID_INSERT, &p, "record transmission id")
			    : stmt_exec(q, S_TXID_INSERT, NULL, &p, NULL, "record transmission id");
	p_free(&p);
	if (r == 0 && q->in_batch) {
		e = smap_put(&q->txids, k);
		e->val = msg_id;
		e->digest_len = t->digest_len;
		memcpy(e->digest, t->digest, t->digest_len);
	}
	return r;
}

static void token_seen_of(const struct smap_ent *e, struct store_token_seen *first)
{
	*first = (struct store_token_seen){ .msg_id = e->val, .state = e->state };
	str_copy(first->reason, e->text ? e->text : "", sizeof(first->reason));
}

static int pg_token_lookup(void *be, const char *token, struct store_token_seen *first)
{
	struct pg *q = be;
	_cleanup_free_ char *k = key_of(token, "", NULL);
	struct smap_ent *e = smap_get(&q->tokens, k);
	if (!e) {
		struct params p = { 0 };
		p_text_array(&p, &token, 1, sizeof(char *));
		PGresult *res;
		int r = q->in_batch ? pipe_query(q, S_LOOKUP_TOKENS, &p, &res, "look up token")
				    : stmt_run(q, S_LOOKUP_TOKENS, NULL, &p, &res, "look up token");
		p_free(&p);
		if (r < 0)
			return r;
		int found = PQntuples(res) > 0;
		if (found && !q->in_batch) /* nothing is cached outside a batch */
			token_row(res, 0, first);
		else if (found)
			token_found(q, res, 0);
		else if (q->in_batch)
			token_put(q, token, -1, MSG_QUEUED, NULL);
		PQclear(res);
		if (!q->in_batch)
			return found;
		e = smap_get(&q->tokens, k);
	}
	if (e->val < 0)
		return 0;
	token_seen_of(e, first);
	return 1;
}

static int pg_token_insert(void *be, const char *token, const struct store_token_seen *first,
			   int64_t now)
{
	struct pg *q = be;
	_cleanup_free_ char *k = key_of(token, "", NULL);
	struct smap_ent *e = smap_get(&q->tokens, k);
	if (q->in_batch && e && e->val >= 0)
		return fail_msg(q, -EEXIST, "record token: already recorded");
	if (q->in_batch) { /* sent with the batch's others at commit */
		rowbuf_add(&q->tbuf, token, NULL, first->msg_id, now);
		token_put(q, token, first->msg_id, first->state, first->reason);
		return 0;
	}
	struct params p = { 0 };
	p_text(&p, token);
	p_i64(&p, first->msg_id);
	p_i64(&p, now);
	int r = stmt_exec(q, S_TOKEN_INSERT, NULL, &p, NULL, "record token");
	p_free(&p);
	return r;
}

/* Routes recorded in this batch (val 0) count as known only once it
 * commits; after a rollback they are recorded again (val -1). */
static void routes_merge(struct pg *q, bool ok)
{
	for (size_t i = 0; i < q->routes.cap; i++) {
		struct smap_ent *e = &q->routes.ent[i];
		if (e->key && e->val == 0) /* recorded in this batch */
			e->val = ok ? 1 : -1;
	}
}

/* Records that m's source sends to its endpoint (partners()), once per pair
 * and connection: a known pair costs nothing. */
static int route_record(struct pg *q, const struct store_new *m)
{
	if (!m->endpoint || !m->source || strcmp(m->source, STORE_SOURCE_BROKER) == 0)
		return 0;
	_cleanup_free_ char *k = key_of(m->source, m->endpoint, NULL);
	struct smap_ent *e = smap_get(&q->routes, k);
	if (e && e->val >= 0)
		return 0; /* recorded, or being recorded in this batch */
	struct params p = { 0 };
	p_text(&p, m->source);
	p_text(&p, m->endpoint);
	int r = pipe_send(q, S_ROUTE_INSERT, &p, "record route");
	p_free(&p);
	if (r == 0)
		smap_put(&q->routes, k)->val = 0;
	return r;
}

static int pg_msg_insert(void *be, const struct store_new *m, int64_t *id)
{
	struct pg *q = be;
	assert(q->in_batch && (m->body || m->size == 0));
	int64_t new_id = 0;
	int r = next_id(q, &new_id);
	if (r < 0)
		return r;
	const char *text[MSGBUF_TEXTS] = { m->source, m->endpoint, m->reason, m->format, m->ext,
					   m->type, m->envelope_id, m->sender, m->receiver,
					   m->letter_id, m->refers };
	int64_t num[MSGBUF_NUMS] = { new_id, m->endpoint ? MSG_QUEUED : MSG_DEAD, m->nletters,
				     m->received_at, (int64_t)m->size,
				     m->endpoint && m->ack_requested ? ACK_PENDING : ACK_NONE };
	/* sent with the batch's others at commit (msgs_flush) */
	msgbuf_add(&q->mbuf, num, text, m->body, m->size);
	r = route_record(q, m);
	if (r == 0)
		*id = new_id;
	return r;
}

static int pg_mark_fence(void *be, const struct store_fence *f)
{
	struct pg *q = be;
	int r = dbuf_flush(q);
	free((char *)q->mfence.lease);
	q->mfence = f && f->lease ? (struct store_fence){ xstrdup(f->lease), f->epoch }
				  : (struct store_fence){ 0 };
	return r;
}

/* Inside a batch the rows changed are known only at commit: 0. */
static int pg_msg_delivered(void *be, int64_t id, int64_t at)
{
	struct pg *q = be;
	assert(q->in_batch);
	if (q->ndbuf && q->dbuf_at != at) {
		int r = dbuf_flush(q);
		if (r < 0)
			return r;
	}
	if (q->ndbuf == q->capdbuf) {
		q->capdbuf = q->capdbuf ? q->capdbuf * 2 : 256;
		q->dbuf = xrealloc(q->dbuf, q->capdbuf * sizeof(int64_t));
	}
	q->dbuf[q->ndbuf++] = id;
	q->dbuf_at = at;
	return 0;
}

static int mark_one(struct pg *q, enum stmt_id plain, int64_t id, const char *text,
		    const char *ctx)
{
	assert(q->in_batch);
	int r = dbuf_flush(q);
	if (r < 0)
		return r;
	struct params p = { 0 };
	p_i64(&p, id);
	p_text_capped(&p, text, ERROR_MAX);
	if (q->mfence.lease) {
		p_text(&p, q->mfence.lease);
		p_text(&p, q->conf->node);
		p_i64(&p, q->mfence.epoch);
	}
	r = pipe_send(q, q->mfence.lease ? plain + 1 : plain, &p, ctx);
	p_free(&p);
	return r;
}

_Static_assert(S_ATTEMPT + 1 == S_ATTEMPT_FENCED && S_REFUSED + 1 == S_REFUSED_FENCED,
	       "the fenced form follows the plain one");

/* Pipelined: whether the row was still queued (and the fence held) is
 * known only at commit, so these answer 1 and the history event store.c
 * adds next is recorded on the same condition (event_add). */
static int pg_msg_attempt(void *be, int64_t id, const char *error)
{
	int r = mark_one(be, S_ATTEMPT, id, error, "record attempt");
	return r < 0 ? r : 1;
}

static int pg_msg_refused(void *be, int64_t id, const char *reason)
{
	int r = mark_one(be, S_REFUSED, id, reason, "record a refusal");
	return r < 0 ? r : 1;
}

/* ---- history, operators' actions, holds ----------------------------------------- */

static void event_params(struct params *p, const struct store_event *e)
{
	p_i64(p, e->msg_id);
	p_i64(p, e->at);
	p_text(p, e->kind);
	p_text(p, e->fault);
	p_text_capped(p, e->detail, ERROR_MAX);
	p_text(p, e->by);
	p_i64(p, e->ref);
}

/* Inside a transaction. An "attempt" or "refused" event follows its mark
 * (pg_msg_attempt) and is recorded only if that mark took. */
static int pg_event_add(void *be, const struct store_event *e)
{
	struct pg *q = be;
	assert(q->in_batch && e->kind);
	int r = dbuf_flush(q);
	if (r < 0)
		return r;
	bool attempt = strcmp(e->kind, "attempt") == 0, refused = strcmp(e->kind, "refused") == 0;
	struct params p = { 0 };
	event_params(&p, e);
	enum stmt_id id = S_EVENT_INSERT;
	if (attempt || refused) {
		p_i64(&p, attempt ? MSG_QUEUED : MSG_DEAD);
		id = S_EVENT_INSERT_MARK;
		if (q->mfence.lease) {
			p_text(&p, q->mfence.lease);
			p_text(&p, q->conf->node);
			p_i64(&p, q->mfence.epoch);
			id = S_EVENT_INSERT_MARK_FENCED;
		}
	}
	r = pipe_send(q, id, &p, "record history event");
	p_free(&p);
	return r;
}

static int pg_msg_state(void *be, int64_t id, enum msg_state from, enum msg_state to, int64_t now)
{
	struct pg *q = be;
	assert(q->in_batch);
	struct params p = { 0 };
	p_i64(&p, id);
	p_i64(&p, from);
	p_i64(&p, to);
	p_i64(&p, now);
	PGresult *res = NULL;
	int r = pipe_query(q, S_STATE_SET, &p, &res, "change message state");
	p_free(&p);
	if (r == 0)
		r = r_i64(res, 0, 0) > 0;
	PQclear(res);
	return r;
}

static int pg_msg_copy(void *be, int64_t id, int64_t now, int64_t *new_id)
{
	struct pg *q = be;
	assert(q->in_batch);
	struct params p = { 0 };
	p_i64(&p, id);
	p_i64(&p, now);
	PGresult *res = NULL;
	int r = pipe_query(q, S_MSG_COPY, &p, &res, "copy message");
	p_free(&p);
	if (r == 0 && PQntuples(res) == 0)
		r = fail_msg(q, -ENOENT, "no such message with a body and an endpoint");
	else if (r == 0)
		*new_id = r_i64(res, 0, 0);
	PQclear(res);
	return r;
}

static int pg_hold_set(void *be, const char *endpoint, bool held, int64_t at, const char *by)
{
	struct pg *q = be;
	assert(q->in_batch);
	struct params p = { 0 };
	p_text(&p, endpoint);
	if (held) {
		p_i64(&p, at);
		p_text(&p, by);
	}
	PGresult *res = NULL;
	int r = pipe_query(q, held ? S_HOLD_INSERT : S_HOLD_DELETE, &p, &res,
			   held ? "hold endpoint" : "release endpoint");
	p_free(&p);
	if (r == 0)
		r = atoi(PQcmdTuples(res)) > 0;
	PQclear(res);
	return r;
}

static int event_row(const PGresult *res, int i, struct walk *w)
{
	struct store_event e = { r_i64(res, i, 0), r_i64(res, i, 1), r_text(res, i, 2),
				 r_text(res, i, 3), r_text(res, i, 4), r_text(res, i, 5),
				 r_i64(res, i, 6) };
	return w->cb.event(&e, w->arg);
}

static int pg_events(void *be, int64_t id, store_event_cb cb, void *arg)
{
	struct params p = { 0 };
	p_i64(&p, id);
	int r = query_rows(be, -1,
			   "SELECT msg_id, at, kind, fault, detail, changed_by, ref FROM events "
			   "WHERE msg_id = $1 ORDER BY at, id",
			   &p, event_row, &(struct walk){ .cb.event = cb, .arg = arg },
			   "message history");
	p_free(&p);
	return r;
}

static int hold_row(const PGresult *res, int i, struct walk *w)
{
	struct store_hold h = { r_text(res, i, 0), r_i64(res, i, 1), r_text(res, i, 2) };
	return w->cb.hold(&h, w->arg);
}

static int pg_holds(void *be, store_hold_cb cb, void *arg)
{
	return query_rows(be, -1, "SELECT endpoint, at, changed_by FROM holds ORDER BY endpoint",
			  NULL, hold_row, &(struct walk){ .cb.hold = cb, .arg = arg }, "list holds");
}

/* As the SQLite backend's: each id once, ascending; every branch an index
 * look-up. */
static const char *const find_sql[] = {
	[STORE_FIND_ENVELOPE] = "SELECT id FROM messages WHERE envelope_id = $1 "
				"UNION SELECT id FROM messages WHERE refers = $1 "
				"UNION SELECT msg_id FROM txids WHERE id = $1 ORDER BY 1 LIMIT $2",
	[STORE_FIND_LETTER] = "SELECT id FROM messages WHERE letter_id = $1 "
			      "UNION SELECT msg_id FROM letter_keys WHERE letter_id = $1 "
			      "ORDER BY 1 LIMIT $2",
	[STORE_FIND_BUNDLE] = "SELECT id FROM messages WHERE envelope_id = $1 "
			      "AND format IN ('fhir-xml', 'fhir-json') "
			      "UNION SELECT id FROM messages WHERE refers = $1 "
			      "UNION SELECT msg_id FROM txids WHERE scope = 'fhir' AND id = $1 "
			      "ORDER BY 1 LIMIT $2",
	[STORE_FIND_REFERS] = "SELECT id FROM messages WHERE refers = $1 ORDER BY id LIMIT $2",
};

static int id_row(const PGresult *res, int i, struct walk *w)
{
	return w->cb.id(r_i64(res, i, 0), w->arg);
}

static int pg_find(void *be, enum store_find by, const char *key, size_t limit, store_id_cb cb,
		   void *arg)
{
	assert((size_t)by < ARRAY_SIZE(find_sql) && key);
	struct params p = { 0 };
	p_text(&p, key);
	p_limit(&p, limit);
	int r = query_rows(be, -1, find_sql[by], &p, id_row,
			   &(struct walk){ .cb.id = cb, .arg = arg }, "find messages");
	p_free(&p);
	return r;
}

/* The whole database's size: what the server's disk holds for it. */
static int pg_size(void *be, int64_t *bytes)
{
	int64_t v = 0;
	int r = query_i64(be, "SELECT pg_database_size(current_database())", NULL, &v,
			  "database size");
	if (r < 0)
		return r;
	*bytes = v;
	return 0;
}

/* ---- queries ----------------------------------------------------------------- */

static void row_msg(const PGresult *res, int i, struct store_msg *m)
{
	*m = (struct store_msg){
		.id = r_i64(res, i, C_ID),
		.state = (enum msg_state)r_i64(res, i, C_STATE),
		.source = r_text(res, i, C_SOURCE),
		.endpoint = r_text(res, i, C_ENDPOINT),
		.format = r_text(res, i, C_FORMAT),
		.ext = r_text(res, i, C_EXT),
		.type = r_text(res, i, C_TYPE),
		.envelope_id = r_text(res, i, C_ENVELOPE_ID),
		.sender = r_text(res, i, C_SENDER),
		.receiver = r_text(res, i, C_RECEIVER),
		.reason = r_text(res, i, C_REASON),
		.last_error = r_text(res, i, C_LAST_ERROR),
		.nletters = (int)r_i64(res, i, C_NLETTERS),
		.attempts = (int)r_i64(res, i, C_ATTEMPTS),
		.received_at = r_i64(res, i, C_RECEIVED_AT),
		.delivered_at = r_i64(res, i, C_DELIVERED_AT), /* NULL reads as 0 */
		.size = (size_t)r_i64(res, i, C_SIZE),
		.keep = r_i64(res, i, C_KEEP) != 0,
		.removed_at = r_i64(res, i, C_REMOVED_AT),
		.file = r_text(res, i, C_FILE),
		.error_class = r_text(res, i, C_ERROR_CLASS),
		.letter_id = r_text(res, i, C_LETTER_ID),
		.refers = r_text(res, i, C_REFERS),
		.ack = (enum msg_ack)r_i64(res, i, C_ACK_STATE),
		.ack_msg = r_i64(res, i, C_ACK_MSG),
		.ack_at = r_i64(res, i, C_ACK_AT),
		.ack_code = r_text(res, i, C_ACK_CODE),
	};
	if (PQnfields(res) > C_BODY && !r_null(res, i, C_BODY))
		m->body = PQgetvalue(res, i, C_BODY); /* "" for an empty body: kept, not missing */
}

static int msg_row(const PGresult *res, int i, struct walk *w)
{
	struct store_msg m;
	row_msg(res, i, &m);
	return w->cb.msg(&m, w->arg);
}

static int query_msgs(struct pg *q, int id, const char *sql, const struct params *p,
		      store_msg_cb cb, void *arg, const char *ctx)
{
	return query_rows(q, id, sql, p, msg_row, &(struct walk){ .cb.msg = cb, .arg = arg }, ctx);
}

static int pg_fetch_queued(void *be, const char *endpoint, int64_t after_id,
			   const int64_t *except, size_t nexcept, size_t limit, store_msg_cb cb,
			   void *arg)
{
	struct params p = { 0 };
	p_text(&p, endpoint);
	p_i64(&p, after_id);
	p_i64_array(&p, except, nexcept);
	p_limit(&p, limit);
	int r = query_msgs(be, S_FETCH, NULL, &p, cb, arg, "fetch queued messages");
	p_free(&p);
	return r;
}

static int depth_row(const PGresult *res, int i, struct walk *w)
{
	struct store_depth d = { r_text(res, i, 0), r_i64(res, i, 1), r_i64(res, i, 2),
				 r_i64(res, i, 3) };
	return w->cb.depth(&d, w->arg);
}

static int pg_depths(void *be, store_depth_cb cb, void *arg)
{
	return query_rows(be, -1,
			  "SELECT endpoint, count(*), min(received_at), sum(size)::bigint FROM messages "
			  "WHERE state = 0 GROUP BY endpoint ORDER BY endpoint",
			  NULL, depth_row, &(struct walk){ .cb.depth = cb, .arg = arg },
			  "queue depths");
}

static int pg_list(void *be, enum msg_state state, const char *endpoint, size_t limit,
		   store_msg_cb cb, void *arg)
{
	assert(state <= MSG_STATE_LAST);
	/* the state as a literal: the partial index of that state serves it */
	char sql[512];
	snprintf(sql, sizeof(sql),
		 "SELECT " MSG_COLS " FROM messages m WHERE m.state = %d %s ORDER BY m.id LIMIT $1",
		 (int)state,
		 !endpoint ? "" : state == MSG_QUARANTINED ? "AND m.source = $2" : "AND m.endpoint = $2");
	struct params p = { 0 };
	p_limit(&p, limit);
	if (endpoint)
		p_text(&p, endpoint);
	int r = query_msgs(be, -1, sql, &p, cb, arg, "list messages");
	p_free(&p);
	return r;
}

static int pg_get(void *be, int64_t id, bool with_body, store_msg_cb cb, void *arg)
{
	struct pg *q = be;
	struct params p = { 0 };
	p_i64(&p, id);
	if (!with_body) { /* also inside a batch (acknowledgements), in its pipeline */
		PGresult *res;
		int r = q->in_batch ? pipe_query(q, S_GET, &p, &res, "get message")
				    : stmt_run(q, S_GET, NULL, &p, &res, "get message");
		if (r < 0)
			return r;
		r = walk_rows(res, msg_row, &(struct walk){ .cb.msg = cb, .arg = arg });
		PQclear(res);
		return r;
	}
	return query_msgs(be, -1,
			  with_body ? "SELECT " MSG_COLS ", b.body FROM messages m "
				      "LEFT JOIN bodies b ON b.id = m.id WHERE m.id = $1"
				    : "SELECT " MSG_COLS " FROM messages m WHERE m.id = $1",
			  &p, cb, arg, "get message");
}

static int pg_count(void *be, enum msg_state state, int64_t *n)
{
	assert(state <= MSG_STATE_LAST);
	char sql[96];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM messages WHERE state = %d", (int)state);
	int r = query_i64(be, sql, NULL, n, "count messages");
	return r < 0 ? r : 0;
}

/* ---- acknowledgement tracking ------------------------------------------------------ */

/* Inside a batch (store.c applies an acknowledgement as it stores it), in
 * its pipeline: earlier statements of the batch are read first, so a
 * message stored earlier in the same batch is seen. */
static int run_q(struct pg *q, enum stmt_id id, const struct params *p, PGresult **res,
		 const char *ctx)
{
	return q->in_batch ? pipe_query(q, id, p, res, ctx) : stmt_run(q, id, NULL, p, res, ctx);
}

static int pg_envelope_lookup(void *be, const char *sender, const char *envelope_id,
			      int64_t *msg_id)
{
	struct params p = { 0 };
	p_text(&p, sender);
	p_text(&p, envelope_id);
	PGresult *res;
	int r = run_q(be, S_ENVELOPE_LOOKUP, &p, &res, "look up envelope");
	p_free(&p);
	if (r < 0)
		return r;
	r = PQntuples(res) > 0;
	if (r)
		*msg_id = r_i64(res, 0, 0);
	PQclear(res);
	return r;
}

static int pg_ack_set(void *be, int64_t id, enum msg_ack ack, int64_t ack_msg, int64_t at,
		      const char *code)
{
	struct params p = { 0 };
	p_i64(&p, id);
	p_i64(&p, ack);
	p_i64(&p, ack_msg);
	p_i64(&p, at);
	p_text_capped(&p, code, ERROR_MAX);
	PGresult *res;
	int r = run_q(be, S_ACK_SET, &p, &res, "set acknowledgement state");
	p_free(&p);
	if (r < 0)
		return r;
	r = atoi(PQcmdTuples(res)) > 0;
	PQclear(res);
	return r;
}

/* Only delivered rows: an operator's requeue or delete takes a row out of
 * tracking. ack_state > 1 as a literal: served by messages_ack. */
static int pg_ack_list(void *be, enum msg_ack ack, const char *endpoint, int64_t delivered_before,
		       size_t limit, store_msg_cb cb, void *arg)
{
	struct params p = { 0 };
	p_i64(&p, ack);
	p_i64(&p, delivered_before);
	p_limit(&p, limit);
	if (endpoint)
		p_text(&p, endpoint);
	int r = query_msgs(be, -1,
			   endpoint ? "SELECT " MSG_COLS " FROM messages m WHERE m.ack_state > 1 "
				      "AND m.ack_state = $1 AND m.delivered_at < $2 AND m.state = 1 "
				      "AND m.endpoint = $4 ORDER BY m.delivered_at, m.id LIMIT $3"
				    : "SELECT " MSG_COLS " FROM messages m WHERE m.ack_state > 1 "
				      "AND m.ack_state = $1 AND m.delivered_at < $2 AND m.state = 1 "
				      "ORDER BY m.delivered_at, m.id LIMIT $3",
			   &p, cb, arg, "list acknowledgement states");
	p_free(&p);
	return r;
}

static int tally_row(const PGresult *res, int i, struct walk *w)
{
	return w->cb.tally(r_text(res, i, 0), r_i64(res, i, 1), w->arg);
}

static int pg_ack_overdue(void *be, int64_t delivered_before, store_tally_cb cb, void *arg)
{
	struct params p = { 0 };
	p_i64(&p, delivered_before);
	int r = query_rows(be, -1,
			   "SELECT endpoint, count(*) FROM messages WHERE ack_state > 1 "
			   "AND ack_state = 2 AND delivered_at < $1 AND state = 1 GROUP BY endpoint "
			   "ORDER BY endpoint",
			   &p, tally_row, &(struct walk){ .cb.tally = cb, .arg = arg },
			   "count overdue acknowledgements");
	p_free(&p);
	return r;
}

/* ---- pruning and retention ------------------------------------------------------ */

/* Runs fn(q, arg) in a transaction of its own: its return (>= 0) once
 * committed, or the first failure, rolled back. */
static int in_tx(struct pg *q, int (*fn)(struct pg *q, void *arg), void *arg, const char *ctx)
{
	assert(!q->in_batch);
	int r = exec_simple(q, "BEGIN", ctx);
	if (r < 0)
		return r;
	int n = fn(q, arg);
	r = n < 0 ? n : exec_simple(q, "COMMIT", ctx);
	if (r < 0) {
		if (q->conn && exec_simple(q, "ROLLBACK", ctx) < 0)
			conn_drop(q);
		return r;
	}
	return n;
}

struct prune_arg {
	int64_t body_before, history_before, limit;
};

/* The statements of a prune, in order: bodies of delivered messages, then
 * whole delivered records, keys, txids, tokens, observations and history
 * events; those marked counted count against the limit. SKIP LOCKED: a row another daemon
 * prunes at the same time is left to it. */
static const struct {
	const char *sql;
	bool body_clock;
	bool counted;
} prune_steps[] = {
	{ "WITH ids AS (SELECT id FROM messages WHERE state = 1 AND body_kept AND delivered_at < $1 "
	  "ORDER BY delivered_at, id LIMIT $2 FOR UPDATE SKIP LOCKED), "
	  "d AS (DELETE FROM bodies WHERE id IN (SELECT id FROM ids)) "
	  "UPDATE messages SET body_kept = false WHERE id IN (SELECT id FROM ids)",
	  true, true },
	{ "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE state = 1 AND "
	  "delivered_at < $1 ORDER BY delivered_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
	  false, true },
	{ "DELETE FROM letter_keys WHERE (sender, letter_id) IN (SELECT sender, letter_id FROM "
	  "letter_keys WHERE seen_at < $1 ORDER BY seen_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
	  false, true },
	{ "DELETE FROM txids WHERE (scope, sender, id) IN (SELECT scope, sender, id FROM txids "
	  "WHERE seen_at < $1 ORDER BY seen_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
	  false, true },
	{ "DELETE FROM ingest_tokens WHERE token IN (SELECT token FROM ingest_tokens "
	  "WHERE seen_at < $1 ORDER BY seen_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
	  false, true },
	{ "DELETE FROM observations WHERE id IN (SELECT id FROM observations WHERE at < $1 "
	  "ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)",
	  false, false },
	{ "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE at < $1 "
	  "ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED)",
	  false, false },
};

static int prune_rows(struct pg *q, void *arg)
{
	const struct prune_arg *a = arg;
	int64_t n = 0;
	for (size_t i = 0; i < ARRAY_SIZE(prune_steps); i++) {
		struct params p = { 0 };
		p_i64(&p, prune_steps[i].body_clock ? a->body_before : a->history_before);
		p_i64(&p, a->limit - n > 0 ? a->limit - n : 0);
		int64_t changed = 0;
		int r = stmt_exec(q, -1, prune_steps[i].sql, &p, &changed, "prune");
		if (r < 0)
			return r;
		if (prune_steps[i].counted)
			n += changed;
	}
	return (int)n;
}

static int pg_prune(void *be, int64_t body_before, int64_t history_before, size_t limit)
{
	if (limit == 0)
		return 0;
	struct prune_arg a = { body_before, history_before, limit > INT_MAX ? INT_MAX : (int64_t)limit };
	return in_tx(be, prune_rows, &a, "prune");
}

struct quarantine_arg {
	struct store_quarantined *x;
	size_t n;
	int64_t *ids;
};

static int quarantine_rows(struct pg *q, void *arg)
{
	struct quarantine_arg *a = arg;
	for (size_t i = 0; i < a->n; i++) {
		const struct store_quarantined *x = &a->x[i];
		assert(x->endpoint && x->file);
		struct params p = { 0 };
		p_text(&p, x->endpoint);
		p_text(&p, x->reason);
		p_text(&p, x->file);
		p_text(&p, x->error_class);
		p_i64(&p, x->at);
		p_i64(&p, (int64_t)x->size);
		int r = query_i64(q,
				  "INSERT INTO messages (state, source, reason, file, error_class, "
				  "received_at, size, body_kept) VALUES (3, $1, $2, $3, $4, $5, $6, false) "
				  "RETURNING id",
				  &p, &a->ids[i], "record quarantined file");
		p_free(&p); /* a file name that is not UTF-8 is held as a cleaned copy */
		if (r < 0)
			return r;
	}
	return 0;
}

static int pg_quarantine_add(void *be, struct store_quarantined *x, size_t n)
{
	struct quarantine_arg a = { x, n, xcalloc(n, sizeof(int64_t)) };
	int r = in_tx(be, quarantine_rows, &a, "record quarantined files");
	for (size_t i = 0; r >= 0 && i < n; i++)
		x[i].id = a.ids[i]; /* set only once committed */
	free(a.ids);
	return r < 0 ? r : 0;
}

struct expire_arg {
	int64_t before, now, limit;
};

static int dead_expire_rows(struct pg *q, void *arg)
{
	const struct expire_arg *a = arg;
	struct params p = { 0 };
	p_i64(&p, a->before);
	p_i64(&p, a->limit);
	p_i64(&p, a->now);
	int64_t n = 0;
	int r = stmt_exec(q, -1,
			  "WITH ids AS (SELECT id FROM messages WHERE state = 2 AND body_kept AND NOT keep "
			  "AND received_at < $1 ORDER BY received_at, id LIMIT $2 FOR UPDATE SKIP LOCKED), "
			  "d AS (DELETE FROM bodies WHERE id IN (SELECT id FROM ids)) "
			  "UPDATE messages SET body_kept = false, removed_at = $3 "
			  "WHERE id IN (SELECT id FROM ids)",
			  &p, &n, "drop dead-letter bodies");
	return r < 0 ? r : (int)n;
}

static int pg_dead_expire(void *be, int64_t before, int64_t now, size_t limit)
{
	if (limit == 0)
		return 0;
	struct expire_arg a = { before, now, limit > INT_MAX ? INT_MAX : (int64_t)limit };
	return in_tx(be, dead_expire_rows, &a, "drop dead-letter bodies");
}

static int pg_quarantine_expired(void *be, int64_t before, int64_t after_at, int64_t after_id,
				 size_t limit, store_msg_cb cb, void *arg)
{
	struct params p = { 0 };
	p_i64(&p, before);
	p_i64(&p, after_at);
	p_i64(&p, after_id);
	p_limit(&p, limit);
	return query_msgs(be, -1,
			  "SELECT " MSG_COLS " FROM messages m WHERE m.state = 3 AND m.removed_at = 0 "
			  "AND NOT m.keep AND m.received_at < $1 AND (m.received_at, m.id) > ($2, $3) "
			  "ORDER BY m.received_at, m.id LIMIT $4",
			  &p, cb, arg, "quarantined files due");
}

static int pg_quarantine_removed(void *be, const int64_t *ids, size_t n, int64_t now)
{
	struct params p = { 0 };
	p_i64_array(&p, ids, n);
	p_i64(&p, now);
	int64_t changed = 0;
	int r = stmt_exec(be, -1,
			  "UPDATE messages SET removed_at = $2 WHERE id = ANY($1::bigint[]) "
			  "AND state = 3 AND removed_at = 0",
			  &p, &changed, "mark quarantined files removed");
	p_free(&p);
	return r < 0 ? r : (int)changed;
}

static int pg_keep(void *be, int64_t id, bool keep)
{
	struct params p = { 0 };
	p_i64(&p, id);
	p_bool(&p, keep);
	int64_t changed = 0;
	int r = stmt_exec(be, -1, "UPDATE messages SET keep = $2 WHERE id = $1 AND state IN (2, 3)",
			  &p, &changed, "set keep");
	return r < 0 ? r : changed > 0;
}

/* ---- the outage procedure's records ---------------------------------------------- */

enum col_type { COL_TEXT, COL_I64, COL_INT, COL_BOOL, COL_OUTAGE_STATE };

/* A field of a record: where it lives, how it is typed, its column. */
struct col {
	size_t off;
	enum col_type type;
	const char *name;
};

#define COL_TYPE_OF(x) _Generic((x), char *: COL_TEXT, const char *: COL_TEXT, int64_t: COL_I64, \
				int: COL_INT, bool: COL_BOOL)
#define COL(rec, field, column)                                                                  \
	{ offsetof(struct rec, field), COL_TYPE_OF(((struct rec *)0)->field), column }

static const struct col outage_cols[] = {
	COL(outage, endpoint, "endpoint"),
	{ offsetof(struct outage, state), COL_OUTAGE_STATE, "state" },
	COL(outage, cause_fault, "cause_fault"),
	COL(outage, cause_error, "cause_error"),
	COL(outage, cause_override, "cause_override"),
	COL(outage, contact_override, "contact_override"),
	COL(outage, fallback_override, "fallback_override"),
	COL(outage, manual, "manual"),
	COL(outage, started_at, "started_at"),
	COL(outage, declared_at, "declared_at"),
	COL(outage, ended_at, "ended_at"),
	COL(outage, resolved_at, "resolved_at"),
	COL(outage, closed_at, "closed_at"),
	COL(outage, announced_at, "announced_at"),
	COL(outage, last_notice_at, "last_notice_at"),
	COL(outage, due_at, "due_at"),
	COL(outage, expected_end, "expected_end"),
	COL(outage, maintenance_id, "maintenance_id"),
	COL(outage, delivered_late, "delivered_late"),
	COL(outage, changed_by, "changed_by"),
};

static const struct col notice_cols[] = {
	COL(notice_record, kind, "kind"),
	COL(notice_record, audience, "audience"),
	COL(notice_record, recipients, "recipients"),
	COL(notice_record, subject, "subject"),
	COL(notice_record, body, "body"),
	COL(notice_record, payload, "payload"),
	COL(notice_record, pending, "pending"),
	COL(notice_record, outage_id, "outage_id"),
	COL(notice_record, maintenance_id, "maintenance_id"),
	COL(notice_record, created_at, "created_at"),
	COL(notice_record, attempts, "attempts"),
	COL(notice_record, next_attempt_at, "next_attempt_at"),
};

static const struct col send_cols[] = {
	COL(store_send, channel, "channel"),
	COL(store_send, recipients, "recipients"),
	COL(store_send, error, "error"),
	COL(store_send, notice_id, "notice_id"),
	COL(store_send, at, "at"),
	COL(store_send, ok, "ok"),
};

static const struct col maint_cols[] = {
	COL(maint, endpoint, "endpoint"),
	COL(maint, reason, "reason"),
	COL(maint, contact, "contact"),
	COL(maint, from, "from_at"),
	COL(maint, to, "to_at"),
	COL(maint, created_at, "created_at"),
	COL(maint, removed_at, "removed_at"),
	COL(maint, announced_at, "announced_at"),
	COL(maint, ended_at, "ended_at"),
	COL(maint, changed_by, "changed_by"),
};

/* One record type. A record with an id keeps it first (asserted). */
struct rec_desc {
	const char *what;
	const char *table;
	const struct col *cols;
	size_t ncols;
	bool has_id;
};

_Static_assert(offsetof(struct outage, id) == 0, "id first");
_Static_assert(offsetof(struct notice_record, id) == 0, "id first");
_Static_assert(offsetof(struct maint, id) == 0, "id first");

static const struct rec_desc outage_desc = { "outage", "outages", outage_cols,
					     ARRAY_SIZE(outage_cols), true };
static const struct rec_desc notice_desc = { "notice", "notices", notice_cols,
					     ARRAY_SIZE(notice_cols), true };
static const struct rec_desc send_desc = { "notice send", "notice_sends", send_cols,
					   ARRAY_SIZE(send_cols), false };
static const struct rec_desc maint_desc = { "maintenance window", "maintenance", maint_cols,
					    ARRAY_SIZE(maint_cols), true };

/* "a, b, c" (prefix "" ) or "$1, $2, $3" (dollars) into buf. */
static void cols_list(const struct rec_desc *d, bool dollars, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < d->ncols && used < len; i++) {
		int n = dollars ? snprintf(buf + used, len - used, "%s$%zu", i ? ", " : "", i + 1)
				: snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
					   d->cols[i].name);
		used += n > 0 ? (size_t)n : 0;
	}
	assert(used < len);
}

static void bind_rec(struct params *p, const struct rec_desc *d, const void *rec)
{
	for (size_t i = 0; i < d->ncols; i++) {
		const char *f = (const char *)rec + d->cols[i].off;
		switch (d->cols[i].type) {
		case COL_TEXT:
			p_text(p, *(const char *const *)f);
			break;
		case COL_I64:
			p_i64(p, *(const int64_t *)f);
			break;
		case COL_INT:
			p_i64(p, *(const int *)f);
			break;
		case COL_BOOL:
			p_bool(p, *(const bool *)f);
			break;
		case COL_OUTAGE_STATE:
			p_text(p, outage_state_name(*(const enum outage_state *)f));
			break;
		}
	}
}

/* Fills rec from row i: the columns per d, then the id. False when a value
 * cannot be read into its field (an outage state of a newer version). */
static bool read_rec(const PGresult *res, int i, const struct rec_desc *d, void *rec)
{
	bool ok = true;
	for (size_t c = 0; c < d->ncols; c++) {
		char *f = (char *)rec + d->cols[c].off;
		int state;
		switch (d->cols[c].type) {
		case COL_TEXT:
			*(char **)f = (char *)r_text(res, i, (int)c);
			break;
		case COL_I64:
			*(int64_t *)f = r_i64(res, i, (int)c);
			break;
		case COL_INT:
			*(int *)f = (int)r_i64(res, i, (int)c);
			break;
		case COL_BOOL:
			*(bool *)f = r_i64(res, i, (int)c) != 0;
			break;
		case COL_OUTAGE_STATE:
			state = outage_state_from_name(r_text(res, i, (int)c));
			ok &= state >= 0;
			*(enum outage_state *)f = state >= 0 ? (enum outage_state)state : OUTAGE_OPEN;
			break;
		}
	}
	if (d->has_id)
		*(int64_t *)rec = r_i64(res, i, (int)d->ncols);
	return ok;
}

/* Appends the record fence's parameters; their numbers follow the record's. */
static void fence_params(struct pg *q, struct params *p)
{
	p_text(p, q->rfence.lease);
	p_text(p, q->conf->node);
	p_i64(p, q->rfence.epoch);
}

/* 1 when the record fence holds now, 0 when not. */
static int fence_holds(struct pg *q)
{
	struct params p = { 0 };
	fence_params(q, &p);
	int64_t v = 0;
	int r = query_i64(q, "SELECT count(*) FROM leases WHERE name = $1 AND owner = $2 AND "
			     "epoch = $3 AND expires_at > now()",
			  &p, &v, "check the procedure's lease");
	p_free(&p);
	return r < 0 ? r : v > 0;
}

static int stale(struct pg *q, const struct rec_desc *d)
{
	return fail_msg(q, -ESTALE, "save %s: this node no longer holds lease %s (epoch %" PRId64 ")",
			d->what, q->rfence.lease, q->rfence.epoch);
}

/* Saves rec in one statement: inserts when *id is 0 (and sets it), else
 * updates that row (-ENOENT when there is none); id NULL for a record
 * without one. Fenced (the procedure's lease) when a fence is set: a save
 * by a node that lost the lease changes nothing (-ESTALE). */
static int rec_save(struct pg *q, const struct rec_desc *d, const void *rec, int64_t *id)
{
	assert(!q->in_batch && !id == !d->has_id && (!id || *id >= 0));
	char cols[640], vals[256], sql[1600];
	cols_list(d, false, cols, sizeof(cols));
	cols_list(d, true, vals, sizeof(vals));
	size_t n = d->ncols;
	bool fenced = q->rfence.lease != NULL, update = id && *id;
	char fence[256] = "";
	if (fenced)
		snprintf(fence, sizeof(fence),
			 FENCE_OK("$%zu", "$%zu", "$%zu"), n + 1 + update, n + 2 + update,
			 n + 3 + update);
	if (update)
		snprintf(sql, sizeof(sql), "UPDATE %s SET (%s) = (%s) WHERE id = $%zu%s%s RETURNING id",
			 d->table, cols, vals, n + 1, fenced ? " AND " : "", fence);
	else if (fenced)
		snprintf(sql, sizeof(sql), "INSERT INTO %s (%s) SELECT %s WHERE %s%s", d->table, cols,
			 vals, fence, d->has_id ? " RETURNING id" : " RETURNING 0");
	else
		snprintf(sql, sizeof(sql), "INSERT INTO %s (%s) VALUES (%s)%s", d->table, cols, vals,
			 d->has_id ? " RETURNING id" : " RETURNING 0");
	struct params p = { 0 };
	bind_rec(&p, d, rec);
	if (update)
		p_i64(&p, *id);
	if (fenced)
		fence_params(q, &p);
	int64_t row_id = 0;
	int r = query_i64(q, sql, &p, &row_id, d->what);
	p_free(&p);
	if (r == 0) { /* no row written: the fence, or no such row */
		int held = fenced ? fence_holds(q) : 1;
		if (held <= 0)
			return held < 0 ? held : stale(q, d);
		return fail_msg(q, -ENOENT, "%s %" PRId64 ": no such row", d->what, id ? *id : 0);
	}
	if (r > 0 && id)
		*id = row_id;
	return r < 0 ? r : 0;
}

static int pg_outage_save(void *be, struct outage *o)
{
	assert(o->endpoint && outage_state_from_name(outage_state_name(o->state)) >= 0);
	return rec_save(be, &outage_desc, o, &o->id);
}

static int pg_notice_save(void *be, struct notice_record *n)
{
	return rec_save(be, &notice_desc, n, &n->id);
}

static int pg_send_record(void *be, const struct store_send *s)
{
	assert(s->channel);
	return rec_save(be, &send_desc, s, NULL);
}

static int pg_maintenance_save(void *be, struct maint *m)
{
	assert(m->endpoint);
	return rec_save(be, &maint_desc, m, &m->id);
}

/* The record rows. A row that does not fit (a newer version's state: this
 * one cannot act on it) is skipped, not counted. */
static int outage_row(const PGresult *res, int i, struct walk *w)
{
	struct outage o = { 0 };
	w->skipped = !read_rec(res, i, &outage_desc, &o);
	return w->skipped ? 0 : w->cb.outage(&o, w->arg);
}

static int notice_row(const PGresult *res, int i, struct walk *w)
{
	struct notice_record n = { 0 };
	w->skipped = !read_rec(res, i, &notice_desc, &n);
	return w->skipped ? 0 : w->cb.notice(&n, w->arg);
}

static int send_row(const PGresult *res, int i, struct walk *w)
{
	struct store_send s = { 0 };
	w->skipped = !read_rec(res, i, &send_desc, &s);
	return w->skipped ? 0 : w->cb.send(&s, w->arg);
}

static int maint_row(const PGresult *res, int i, struct walk *w)
{
	struct maint m = { 0 };
	w->skipped = !read_rec(res, i, &maint_desc, &m);
	return w->skipped ? 0 : w->cb.maint(&m, w->arg);
}

/* Reads records of d with the WHERE/ORDER tail and passes each on through
 * row, d's row function. */
static int rec_query(struct pg *q, const struct rec_desc *d, const char *tail,
		     const struct params *p, row_fn row, struct walk *w)
{
	char cols[640], sql[1200];
	cols_list(d, false, cols, sizeof(cols));
	snprintf(sql, sizeof(sql), "SELECT %s%s FROM %s %s", cols, d->has_id ? ", id" : "",
		 d->table, tail);
	return query_rows(q, -1, sql, p, row, w, d->what);
}

static int pg_outage_list(void *be, int64_t closed_since, size_t limit, store_outage_cb cb,
			  void *arg)
{
	struct params p = { 0 };
	p_i64(&p, closed_since);
	p_limit(&p, limit);
	return rec_query(be, &outage_desc,
			 "WHERE state <> 'closed' OR closed_at >= $1 "
			 "ORDER BY started_at DESC, id DESC LIMIT $2",
			 &p, outage_row, &(struct walk){ .cb.outage = cb, .arg = arg });
}

static int pg_outage_get(void *be, int64_t id, store_outage_cb cb, void *arg)
{
	struct params p = { 0 };
	p_i64(&p, id);
	return rec_query(be, &outage_desc, "WHERE id = $1", &p, outage_row,
			 &(struct walk){ .cb.outage = cb, .arg = arg });
}

static int pg_notice_list(void *be, int64_t outage_id, int64_t maintenance_id,
			  store_notice_cb cb, void *arg)
{
	struct pg *q = be;
	if (outage_id <= 0 && maintenance_id <= 0)
		return fail_msg(q, -EINVAL, "notice list: no outage or maintenance id");
	struct params p = { 0 };
	p_i64(&p, outage_id > 0 ? outage_id : maintenance_id);
	return rec_query(q, &notice_desc,
			 outage_id > 0 ? "WHERE outage_id = $1 ORDER BY created_at, id"
				       : "WHERE maintenance_id = $1 ORDER BY created_at, id",
			 &p, notice_row, &(struct walk){ .cb.notice = cb, .arg = arg });
}

static int pg_notice_pending(void *be, store_notice_cb cb, void *arg)
{
	return rec_query(be, &notice_desc, "WHERE pending <> '' ORDER BY created_at, id", NULL,
			 notice_row, &(struct walk){ .cb.notice = cb, .arg = arg });
}

static int pg_send_list(void *be, int64_t notice_id, store_send_cb cb, void *arg)
{
	struct params p = { 0 };
	p_i64(&p, notice_id);
	return rec_query(be, &send_desc, "WHERE notice_id = $1 ORDER BY at, seq", &p, send_row,
			 &(struct walk){ .cb.send = cb, .arg = arg });
}

static int pg_maintenance_list(void *be, bool removed, store_maintenance_cb cb, void *arg)
{
	return rec_query(be, &maint_desc,
			 removed ? "ORDER BY from_at, id" : "WHERE removed_at = 0 ORDER BY from_at, id",
			 NULL, maint_row, &(struct walk){ .cb.maint = cb, .arg = arg });
}

static int summary_row(const PGresult *res, int i, struct walk *w)
{
	struct store_summary s = { r_text(res, i, 0), r_text(res, i, 1), r_i64(res, i, 2),
				   r_i64(res, i, 3) };
	return w->cb.summary(&s, w->arg);
}

static int pg_queue_summary(void *be, const char *endpoint, store_summary_cb cb, void *arg)
{
	struct params p = { 0 };
	p_text(&p, endpoint);
	int r = query_rows(be, -1,
			   "SELECT type, source, count(*), min(received_at) FROM messages "
			   "WHERE state = 0 AND endpoint = $1 GROUP BY type, source ORDER BY type, source",
			   &p, summary_row, &(struct walk){ .cb.summary = cb, .arg = arg },
			   "queue summary");
	p_free(&p); /* a text that was not UTF-8 is held as a cleaned copy */
	return r;
}

static int name_row(const PGresult *res, int i, struct walk *w)
{
	return w->cb.name(r_text(res, i, 0), w->arg);
}

static int pg_partners(void *be, const char *endpoint, store_name_cb cb, void *arg)
{
	struct params p = { 0 };
	p_text(&p, endpoint);
	int r = query_rows(be, -1,
			   "SELECT endpoint FROM routes WHERE source = $1 AND endpoint <> $1 "
			   "UNION SELECT source FROM routes WHERE endpoint = $1 AND source <> $1 "
			   "ORDER BY 1",
			   &p, name_row, &(struct walk){ .cb.name = cb, .arg = arg }, "partners");
	p_free(&p);
	return r;
}

static void pg_fence_records(void *be, const struct store_fence *f)
{
	struct pg *q = be;
	free((char *)q->rfence.lease);
	q->rfence = f ? (struct store_fence){ xstrdup(f->lease), f->epoch } : (struct store_fence){ 0 };
}

/* ---- nodes, leases, observations --------------------------------------------------- */

struct beat_arg {
	int64_t started_at, ttl_ms;
	const char *const *names;
	size_t n;
};

static int node_beat_rows(struct pg *q, void *arg)
{
	const struct beat_arg *a = arg;
	struct params p = { 0 };
	p_text(&p, q->conf->node);
	p_i64(&p, a->started_at);
	p_i64(&p, (int64_t)getpid());
	p_i64(&p, a->ttl_ms);
	int64_t changed = 0;
	/* the row is this process's, or its last beat is older than a lease */
	int r = stmt_exec(q, -1,
			  "INSERT INTO nodes (name, started_at, pid, seen_at) VALUES ($1, $2, $3, now()) "
			  "ON CONFLICT (name) DO UPDATE SET started_at = excluded.started_at, "
			  "pid = excluded.pid, seen_at = now() "
			  "WHERE (nodes.pid = excluded.pid AND nodes.started_at = excluded.started_at) "
			  "OR nodes.pid = 0 OR nodes.seen_at < now() - $4 * interval '1 millisecond'",
			  &p, &changed, "node beat");
	p_free(&p);
	if (r == 0 && changed == 0)
		return fail_msg(q, -EEXIST, "node beat: another daemon runs as node %s (a node "
				"name must be unique; this one waits for it to go quiet)",
				q->conf->node);
	if (r < 0 || a->n == 0)
		return r;
	struct params l = { 0 };
	p_text_array(&l, a->names, a->n, sizeof(char *));
	r = stmt_exec(q, -1,
		      "INSERT INTO leases (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
		      &l, NULL, "make leases");
	p_free(&l);
	return r;
}

static int pg_node_beat(void *be, int64_t started_at, int64_t ttl_ms, const char *const *names,
			size_t n)
{
	struct beat_arg a = { started_at, ttl_ms, names, n };
	return in_tx(be, node_beat_rows, &a, "node beat");
}

/* (names, epochs) of held as two array parameters. */
static void held_params(struct params *p, const struct store_fence *held, size_t n)
{
	int64_t *epochs = xmalloc((n ? n : 1) * sizeof(int64_t));
	for (size_t i = 0; i < n; i++)
		epochs[i] = held[i].epoch;
	p_text_array(p, &held[0].lease, n, sizeof(struct store_fence));
	p_i64_array(p, epochs, n);
	free(epochs);
}

static int pg_lease_renew(void *be, const struct store_fence *held, size_t n, int64_t ttl_ms,
			  bool *renewed)
{
	struct pg *q = be;
	struct params p = { 0 };
	p_text(&p, q->conf->node);
	p_i64(&p, ttl_ms);
	held_params(&p, held, n);
	PGresult *res;
	int r = stmt_run(q, -1,
			 "UPDATE leases l SET expires_at = now() + $2 * interval '1 millisecond' "
			 "FROM unnest($3::text[], $4::bigint[]) AS h (name, epoch) "
			 "WHERE l.name = h.name AND l.epoch = h.epoch AND l.owner = $1 "
			 "AND l.expires_at > now() RETURNING l.name",
			 &p, &res, "renew leases");
	p_free(&p);
	if (r < 0)
		return r;
	int count = 0;
	for (size_t i = 0; i < n; i++) {
		renewed[i] = false;
		for (int k = 0; k < PQntuples(res) && !renewed[i]; k++)
			renewed[i] = strcmp(r_text(res, k, 0), held[i].lease) == 0;
		count += renewed[i];
	}
	PQclear(res);
	return count;
}

/* The callback may be NULL: the rows are then only counted. */
static int lease_row(const PGresult *res, int i, struct walk *w)
{
	struct store_lease l = {
		.name = r_text(res, i, 0), .owner = r_text(res, i, 1),
		.epoch = r_i64(res, i, 2), .expires_in_ms = r_i64(res, i, 3),
		.failures = (int)r_i64(res, i, 4), .next_attempt_at = r_i64(res, i, 5),
	};
	return w->cb.lease ? w->cb.lease(&l, w->arg) : 0;
}

#define LEASE_COLS(t)                                                                              \
	t "name, " t "owner, " t "epoch, coalesce((extract(epoch FROM " t "expires_at - now()) "  \
	"* 1000)::bigint, 0), " t "failures, " t "next_attempt_at"

static int pg_lease_claim(void *be, const char *const *names, size_t n, int64_t ttl_ms,
			  size_t limit, store_lease_cb cb, void *arg)
{
	struct pg *q = be;
	struct params p = { 0 };
	p_text(&p, q->conf->node);
	p_text_array(&p, names, n, sizeof(char *));
	p_i64(&p, ttl_ms);
	p_limit(&p, limit);
	/* MATERIALIZED: the LIMIT applies to the rows locked, once */
	int r = query_rows(q, -1,
			   "WITH c AS MATERIALIZED (SELECT name FROM leases WHERE name = ANY($2::text[]) "
			   "AND (owner IS NULL OR expires_at IS NULL OR expires_at < now()) "
			   "ORDER BY name LIMIT $4 FOR UPDATE SKIP LOCKED) "
			   "UPDATE leases l SET owner = $1, epoch = l.epoch + 1, "
			   "expires_at = now() + $3 * interval '1 millisecond' FROM c "
			   "WHERE l.name = c.name RETURNING " LEASE_COLS("l."),
			   &p, lease_row, &(struct walk){ .cb.lease = cb, .arg = arg }, "claim leases");
	p_free(&p);
	return r;
}

static int pg_lease_release(void *be, const struct store_fence *held, size_t n)
{
	struct pg *q = be;
	struct params p = { 0 };
	p_text(&p, q->conf->node);
	held_params(&p, held, n);
	int64_t changed = 0;
	int r = stmt_exec(q, -1,
			  "UPDATE leases l SET owner = NULL, expires_at = NULL "
			  "FROM unnest($2::text[], $3::bigint[]) AS h (name, epoch) "
			  "WHERE l.name = h.name AND l.epoch = h.epoch AND l.owner = $1",
			  &p, &changed, "release leases");
	p_free(&p);
	return r < 0 ? r : (int)changed;
}

/* pid 0: stopped in order (no process has pid 0); node_beat takes the
 * row over at once. */
static int pg_node_leave(void *be, int64_t started_at)
{
	struct pg *q = be;
	struct params p = { 0 };
	p_text(&p, q->conf->node);
	p_i64(&p, started_at);
	p_i64(&p, (int64_t)getpid());
	int64_t changed = 0;
	int r = stmt_exec(q, -1,
			  "UPDATE nodes SET pid = 0, seen_at = now() "
			  "WHERE name = $1 AND started_at = $2 AND pid = $3",
			  &p, &changed, "node leave");
	p_free(&p);
	return r < 0 ? r : changed > 0;
}

static int pg_leases(void *be, store_lease_cb cb, void *arg)
{
	return query_rows(be, -1, "SELECT " LEASE_COLS("") " FROM leases ORDER BY name", NULL,
			  lease_row, &(struct walk){ .cb.lease = cb, .arg = arg }, "list leases");
}

static int node_row(const PGresult *res, int i, struct walk *w)
{
	struct store_node nd = { r_text(res, i, 0), r_i64(res, i, 1), r_i64(res, i, 2),
				 r_i64(res, i, 3) };
	return w->cb.node(&nd, w->arg);
}

static int pg_nodes(void *be, store_node_cb cb, void *arg)
{
	return query_rows(be, -1,
			  "SELECT name, started_at, (extract(epoch FROM now() - seen_at) * 1000)::bigint, "
			  "pid FROM nodes ORDER BY name",
			  NULL, node_row, &(struct walk){ .cb.node = cb, .arg = arg }, "list nodes");
}

static int pg_lease_backoff(void *be, const struct store_fence *f, int failures,
			    int64_t next_attempt_at)
{
	struct pg *q = be;
	struct params p = { 0 };
	p_i64(&p, failures);
	p_i64(&p, next_attempt_at);
	p_text(&p, f->lease);
	p_text(&p, q->conf->node);
	p_i64(&p, f->epoch);
	int64_t changed = 0;
	int r = stmt_exec(q, -1,
			  "UPDATE leases SET failures = $1, next_attempt_at = $2 WHERE name = $3 "
			  "AND owner = $4 AND epoch = $5 AND expires_at > now()",
			  &p, &changed, "keep the backoff");
	p_free(&p);
	return r < 0 ? r : changed > 0;
}

static int pg_observation_add(void *be, const struct store_observation *o)
{
	struct pg *q = be;
	struct params p = { 0 };
	p_text(&p, o->endpoint);
	p_text(&p, q->conf->node);
	p_bool(&p, o->ok);
	p_bool(&p, o->probe);
	p_i64(&p, o->fault);
	p_text_capped(&p, o->error, ERROR_MAX);
	p_i64(&p, o->delivered);
	p_i64(&p, o->at);
	int r = stmt_exec(q, -1,
			  "INSERT INTO observations (endpoint, node, ok, probe, fault, error, delivered, "
			  "at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
			  &p, NULL, "record an observation");
	p_free(&p);
	return r;
}

/* Only a negative return stops, and the rows so far still count: they are
 * taken anyway, the caller said it cannot use more. */
static int observation_row(const PGresult *res, int i, struct walk *w)
{
	struct store_observation o = {
		.endpoint = r_text(res, i, 0), .node = r_text(res, i, 1),
		.ok = r_i64(res, i, 2) != 0, .probe = r_i64(res, i, 3) != 0,
		.fault = (int)r_i64(res, i, 4), .error = r_text(res, i, 5),
		.delivered = r_i64(res, i, 6), .at = r_i64(res, i, 7),
	};
	return w->cb.observation(&o, w->arg) < 0;
}

/* Taking deletes: each observation reaches one procedure holder once, and
 * no cursor over ids can skip one that commits late. */
static int pg_observations_take(void *be, size_t limit, store_observation_cb cb, void *arg)
{
	struct pg *q = be;
	struct params p = { 0 };
	p_text(&p, q->conf->node);
	p_limit(&p, limit);
	int r = query_rows(q, -1,
			   "WITH t AS (DELETE FROM observations WHERE id IN (SELECT id FROM observations "
			   "WHERE node <> $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) "
			   "RETURNING id, endpoint, node, ok, probe, fault, error, delivered, at) "
			   "SELECT endpoint, node, ok, probe, fault, error, delivered, at FROM t ORDER BY id",
			   &p, observation_row, &(struct walk){ .cb.observation = cb, .arg = arg },
			   "take observations");
	p_free(&p);
	return r;
}

/* ---- diagnostics for tests ---------------------------------------------------------- */

static struct pg *pg_of(struct store *s)
{
	struct pg *q = store_backend_handle(s, &store_pg_ops);
	assert(q);
	return q;
}

int store_pg_exec(struct store *s, const char *sql)
{
	return exec_simple(pg_of(s), sql, "exec");
}

static const struct {
	const char *op;
	const char *sql;
} plan_ops[] = {
	{ "fetch", "EXPLAIN SELECT " MSG_COLS ", b.body FROM messages m LEFT JOIN bodies b "
		   "ON b.id = m.id WHERE m.state = 0 AND m.endpoint = 'e' AND m.id + 0 > 0 "
		   "AND NOT (m.id = ANY('{}'::bigint[])) ORDER BY m.endpoint, m.id + 0 LIMIT 400" },
	{ "depths", "EXPLAIN SELECT endpoint, count(*), min(received_at), sum(size)::bigint FROM "
		    "messages WHERE state = 0 GROUP BY endpoint ORDER BY endpoint" },
};

int store_pg_plan(struct store *s, const char *op, char *buf, size_t len)
{
	struct pg *q = pg_of(s);
	size_t i = 0;
	while (i < ARRAY_SIZE(plan_ops) && strcmp(plan_ops[i].op, op) != 0)
		i++;
	if (i == ARRAY_SIZE(plan_ops))
		return fail_msg(q, -ENOENT, "no plan for that op");
	/* EXPLAIN's text comes back as rows of text: read them in text form */
	int r = conn_ensure(q);
	if (r < 0)
		return r;
	if (!PQsendQueryParams(q->conn, plan_ops[i].sql, 0, NULL, NULL, NULL, NULL, 0))
		return fail_res(q, NULL, "explain");
	int64_t deadline = deadline_of(q);
	PGresult *res = NULL;
	r = conn_flush(q, deadline, "explain");
	if (r == 0)
		r = stmt_read(q, deadline, &res, "explain");
	if (r < 0)
		return r;
	size_t used = 0;
	buf[0] = '\0';
	for (int k = 0; k < PQntuples(res) && used < len; k++) {
		int n = snprintf(buf + used, len - used, "%s%s", k ? "; " : "", PQgetvalue(res, k, 0));
		used += n > 0 ? (size_t)n : 0;
	}
	PQclear(res);
	return 0;
}

const struct store_backend_ops store_pg_ops = {
	.name = "postgresql",
	.open = pg_open,
	.connect = pg_connect,
	.ids_in_commit_order = false, /* several daemons take ids from one sequence */
	.node_leave = pg_node_leave,
	.close = pg_close,
	.last_error = pg_last_error,
	.instance = pg_instance,
	.ping = pg_ping,
	.event_add = pg_event_add,
	.msg_state = pg_msg_state,
	.msg_copy = pg_msg_copy,
	.hold_set = pg_hold_set,
	.events = pg_events,
	.find = pg_find,
	.holds = pg_holds,
	.size = pg_size,
	.envelope_lookup = pg_envelope_lookup,
	.ack_set = pg_ack_set,
	.ack_list = pg_ack_list,
	.ack_overdue = pg_ack_overdue,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.batch_prepare = pg_batch_prepare,
	.mark_fence = pg_mark_fence,
	.token_lookup = pg_token_lookup,
	.token_insert = pg_token_insert,
	.key_lookup = pg_key_lookup,
	.key_insert = pg_key_insert,
	.txid_lookup = pg_txid_lookup,
	.txid_insert = pg_txid_insert,
	.msg_insert = pg_msg_insert,
	.msg_delivered = pg_msg_delivered,
	.msg_attempt = pg_msg_attempt,
	.msg_refused = pg_msg_refused,
	.fetch_queued = pg_fetch_queued,
	.depths = pg_depths,
	.list = pg_list,
	.get = pg_get,
	.count = pg_count,
	.prune = pg_prune,
	.quarantine_add = pg_quarantine_add,
	.dead_expire = pg_dead_expire,
	.quarantine_expired = pg_quarantine_expired,
	.quarantine_removed = pg_quarantine_removed,
	.keep = pg_keep,
	.outage_save = pg_outage_save,
	.outage_list = pg_outage_list,
	.outage_get = pg_outage_get,
	.notice_save = pg_notice_save,
	.notice_list = pg_notice_list,
	.notice_pending = pg_notice_pending,
	.send_record = pg_send_record,
	.send_list = pg_send_list,
	.maintenance_save = pg_maintenance_save,
	.maintenance_list = pg_maintenance_list,
	.queue_summary = pg_queue_summary,
	.partners = pg_partners,
	.schema_version = pg_schema_version,
	.node_beat = pg_node_beat,
	.lease_renew = pg_lease_renew,
	.lease_claim = pg_lease_claim,
	.lease_release = pg_lease_release,
	.leases = pg_leases,
	.nodes = pg_nodes,
	.lease_backoff = pg_lease_backoff,
	.observation_add = pg_observation_add,
	.observations_take = pg_observations_take,
	.fence_records = pg_fence_records,
	.node = pg_node,
};
