/*
 * store.c - the generic store layer: the backend registry and the commit
 * policy (what "accepted", "duplicate" and "dead" mean).
 *
 * The group commit (commit.c) hands over all writes of one loop turn as one
 * store_batch. store_commit() applies it in one backend transaction, in
 * order: new messages (duplicate policy below), then delivered marks, then
 * failed-attempt records. The first failure rolls the whole batch back and
 * its negative errno is returned; nothing of the batch is then kept.
 *
 * Duplicate policy (store.h), decided inside the transaction from the
 * backend's key primitives, so items of one batch see each other exactly as
 * if they had been committed one after the other, and several daemons
 * sharing one database (PostgreSQL) see each other's committed keys. A key
 * recorded by another writer between our lookup and our insert makes
 * key_insert fail with -EEXIST; the batch then fails with -EBUSY and the
 * retry sees the key.
 *
 * The rest is the front end (store.h): one thin function per backend
 * primitive, so callers never hold the backend's table, and timing,
 * metrics and a later asynchronous backend have one place to go.
 *
 * Transmission ids (store.h) are checked before the letter keys, with the
 * backend's txid primitives, in the same transaction: a reused id makes a
 * dead letter; a stored or duplicate message records the ones not yet
 * known. A txid another writer recorded first fails the batch with -EBUSY,
 * like a letter key, and the retry sees it.
 *
 * History (store.h: store_event). Inside the batch, a failed attempt on a
 * message still queued and a duplicate that was dropped each add an event
 * to that message's history. An operator's requeue, delete or resend is
 * one transaction of its own, composed here from the backend's primitives
 * (msg_state, msg_copy, event_add), so a backend implements each as one
 * plain statement.
 * Ingest tokens (store.h) come first of all: a token already recorded
 * makes the message a replay of the one that recorded it, with that
 * message's outcome (a dead letter stays DEAD with its stored reason), so
 * a batch replayed after its COMMIT's answer was lost changes nothing and
 * is answered as the first would have been; otherwise the message is
 * applied as below and its token recorded with it, in the same
 * transaction.
 *
 * Marks carry the fence of the endpoint's lease; the backend applies a
 * fenced mark only while that lease is held at that epoch.
 *
 * Asynchronous use (store_run): a server backend gets a lane per kind of
 * work, each with a handle of its own (a "view": a struct store on that
 * handle), made at store_attach; work runs on the lane's thread against its
 * view and completes on the loop. A local backend runs the work at once.
 *
 * Acknowledgement tracking (store.h) is decided here too, from the
 * backend's lookups and one setter, in the batch's transaction: a stored
 * acknowledgement finds each message it names (by letter key, txid or
 * envelope), checks that the message went to the endpoint the
 * acknowledgement came from, and moves it by ack_next[] below. A duplicate
 * learns the acknowledgement stored for its earlier copy.
 *
 * Nothing here knows which database a backend uses.
 */
#include "store/store.h"

#include "store/store_backend.h"
#include "store/store_pg.h"
#include "store/store_sqlite.h"
#include "base/lanes.h"
#include "codecs/base/mem.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* The registered backends, one line each; the first is the default. */
static const struct store_backend_ops *const store_backends[] = {
	&store_sqlite_ops,
	&store_pg_ops,
	NULL,
};

/* How long one call on a lane's connection may wait for the server. */
static const int64_t lane_wait_ms[STORE_LANES] = {
	[STORE_LANE_WRITE] = 30000,
	[STORE_LANE_READ] = 30000,
	[STORE_LANE_LEASE] = 5000,
};

static const char *const lane_names[STORE_LANES] = {
	[STORE_LANE_WRITE] = "store:write",
	[STORE_LANE_READ] = "store:read",
	[STORE_LANE_LEASE] = "store:lease",
};

struct store {
	const struct store_backend_ops *ops;
	void *be;
	bool is_view;                     /* a lane's handle; closed with its store */
	struct lanes *pool;               /* attached: the lanes' threads */
	bool stuck;                       /* store_stop_lanes() abandoned work */
	struct lane *lanes[STORE_LANES];
	struct store *views[STORE_LANES]; /* each lane's handle */
};

/* What the lookups found for one message's keys. */
struct key_scan {
	size_t known;                 /* keys already recorded */
	const struct store_key *first; /* first known key */
	int64_t first_id;             /* message that recorded it */
};

static const struct store_backend_ops *backend_find(const char *name)
{
	for (size_t i = 0; store_backends[i]; i++)
		if (!name || strcmp(store_backends[i]->name, name) == 0)
			return store_backends[i];
	return NULL;
}

struct store *store_open(const char *name, const char *state_dir, const struct store_options *opt,
			 char *err, size_t errlen)
{
	const struct store_backend_ops *ops = backend_find(name);
	if (!ops) {
		snprintf(err, errlen, "unknown store backend \"%s\"", name);
		return NULL;
	}
	return store_open_backend(ops, state_dir, opt, err, errlen);
}

struct store *store_open_backend(const struct store_backend_ops *ops, const char *state_dir,
				 const struct store_options *opt, char *err, size_t errlen)
{
	static const struct store_options defaults = { 0 };
	void *be = NULL;
	int r = ops->open(state_dir, opt ? opt : &defaults, &be);
	if (r < 0) {
		const char *why = ops->last_error(NULL);
		snprintf(err, errlen, "%s store: %s", ops->name, why ? why : strerror(-r));
		return NULL;
	}
	struct store *s = xcalloc(1, sizeof(*s));
	*s = (struct store){ .ops = ops, .be = be };
	return s;
}

bool store_stop_lanes(struct store *s)
{
	if (!s || !s->pool)
		return s && s->stuck;
	for (size_t i = 0; i < STORE_LANES; i++)
		lane_free(s->lanes[i]);
	s->stuck = lanes_free(s->pool);
	s->pool = NULL;
	return s->stuck;
}

bool store_close(struct store *s)
{
	if (!s)
		return false;
	assert(!s->is_view);
	/* Work stuck on a dead connection keeps its view: the pool abandons
	 * those threads, and their handles with them. */
	bool stuck = store_stop_lanes(s);
	for (size_t i = 0; i < STORE_LANES && !stuck; i++) {
		if (s->views[i])
			s->ops->close(s->views[i]->be);
		free(s->views[i]);
	}
	s->ops->close(s->be);
	free(s);
	return stuck;
}

const char *store_instance(struct store *s)
{
	return s->ops->instance(s->be);
}

const char *store_last_error(struct store *s)
{
	return s->ops->last_error(s->be);
}

void *store_backend_handle(struct store *s, const struct store_backend_ops *ops)
{
	return s->ops == ops ? s->be : NULL;
}

static bool key_eq(const struct store_key *a, const struct store_key *b)
{
	return strcmp(a->sender, b->sender) == 0 && strcmp(a->letter_id, b->letter_id) == 0;
}

/* True when key i of m repeats an earlier key of m (recorded only once). */
static bool key_repeated(const struct store_new *m, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (key_eq(&m->keys[j], &m->keys[i]))
			return true;
	return false;
}

static int keys_scan(struct store *s, const struct store_new *m, struct key_scan *ks)
{
	*ks = (struct key_scan){ 0 };
	for (size_t i = 0; i < m->nkeys; i++) {
		assert(m->keys[i].sender && m->keys[i].letter_id);
		int64_t id;
		int r = s->ops->key_lookup(s->be, &m->keys[i], &id);
		if (r < 0)
			return r;
		if (r == 0)
			continue;
		if (ks->known++ == 0) {
			ks->first = &m->keys[i];
			ks->first_id = id;
		}
	}
	return 0;
}

static int keys_record(struct store *s, const struct store_new *m, int64_t id, int64_t now)
{
	for (size_t i = 0; i < m->nkeys; i++) {
		if (key_repeated(m, i))
			continue;
		int r = s->ops->key_insert(s->be, &m->keys[i], id, now);
		if (r == -EEXIST)
			return -EBUSY; /* another writer won the race: retry the batch */
		if (r < 0)
			return r;
	}
	return 0;
}

/* Stores m as a dead letter because some, not all, of its letters were
 * accepted before. The reason names ids only, never content. */
static int insert_partial(struct store *s, struct store_new *m, const struct key_scan *ks)
{
	snprintf(m->why, sizeof(m->why),
		 "partial duplicate: letter %.64s of sender %.64s already accepted as message %" PRId64,
		 ks->first->letter_id, ks->first->sender, ks->first_id);
	struct store_new dead = *m;
	dead.endpoint = NULL;
	dead.reason = m->why;
	int r = s->ops->msg_insert(s->be, &dead, &m->id);
	if (r >= 0)
		m->outcome = STORE_DEAD;
	return r;
}

static int insert_new(struct store *s, struct store_new *m, int64_t now)
{
	int64_t id;
	int r = s->ops->msg_insert(s->be, m, &id);
	if (r < 0)
		return r;
	r = keys_record(s, m, id, now);
	if (r < 0)
		return r;
	m->outcome = STORE_STORED;
	m->id = id;
	return 0;
}

/* ---- acknowledgement tracking -------------------------------------------- */

/*
 * The lifecycle of a tracked message: its state x the verdict of an
 * acknowledgement that names it -> its next state; ACK_NONE leaves it.
 * ACK_NONE is not tracked. A final answer stands: a receiver SHALL NOT
 * send a positive acknowledgement first and a negative one later, or the
 * other way round (medcom.md 4.6), so the first one is the one a duplicate
 * gets again. Only a transient-error (FHIR KR4) gives way to a later one
 * (KR5: ok once the error is resolved).
 */
static const enum msg_ack ack_next[ACK_STATE_LAST + 1][ACK_STATE_LAST + 1] = {
	[ACK_PENDING] = { [ACK_ACKNOWLEDGED] = ACK_ACKNOWLEDGED, [ACK_NEGATIVE] = ACK_NEGATIVE,
			  [ACK_TRANSIENT] = ACK_TRANSIENT },
	[ACK_AWAITING] = { [ACK_ACKNOWLEDGED] = ACK_ACKNOWLEDGED, [ACK_NEGATIVE] = ACK_NEGATIVE,
			   [ACK_TRANSIENT] = ACK_TRANSIENT },
	[ACK_TRANSIENT] = { [ACK_ACKNOWLEDGED] = ACK_ACKNOWLEDGED, [ACK_NEGATIVE] = ACK_NEGATIVE,
			    [ACK_TRANSIENT] = ACK_TRANSIENT },
};

const char *store_ack_name(enum msg_ack a)
{
	static const char *const names[] = {
		[ACK_NONE] = "-", [ACK_PENDING] = "pending", [ACK_AWAITING] = "awaiting",
		[ACK_ACKNOWLEDGED] = "acknowledged", [ACK_NEGATIVE] = "negative",
		[ACK_TRANSIENT] = "transient",
	};
	return (size_t)a < ARRAY_SIZE(names) ? names[a] : "?";
}

/* What tracking needs of a stored message (a copy: row strings do not
 * outlive the callback). */
struct tracked {
	enum msg_state state;
	enum msg_ack ack;
	int64_t ack_msg;
	char endpoint[256];
};

static int tracked_row(const struct store_msg *m, void *arg)
{
	struct tracked *t = arg;
	*t = (struct tracked){ m->state, m->ack, m->ack_msg, "" };
	str_copy(t->endpoint, m->endpoint ? m->endpoint : "", sizeof(t->endpoint));
	return 0;
}

/* The message ref names: 1 with *id, 0 when none is known. */
static int ack_target(struct store *s, const struct store_new *m, const struct store_ackref *ref,
		      int64_t *id)
{
	if (str_empty(ref->sender))
		return 0;
	if (m->refs_scope) {
		static const uint8_t none[1];
		struct store_txid t = { m->refs_scope, ref->sender, ref->envelope_id, none, 1 };
		uint8_t d[STORE_DIGEST_MAX];
		size_t len;
		return str_empty(ref->envelope_id) ? 0 : s->ops->txid_lookup(s->be, &t, d, &len, id);
	}
	if (!str_empty(ref->letter_id))
		return s->ops->key_lookup(s->be, &(struct store_key){ ref->sender, ref->letter_id }, id);
	if (!str_empty(ref->envelope_id))
		return s->ops->envelope_lookup(s->be, ref->sender, ref->envelope_id, id);
	return 0;
}

/* Applies acknowledgement m (stored as m->id) to the message ref names. */
static int ack_one(struct store *s, struct store_new *m, const struct store_ackref *ref,
		   int64_t now)
{
	int64_t id = 0;
	struct tracked t;
	int r = ack_target(s, m, ref, &id);
	if (r <= 0)
		return r;
	r = s->ops->get(s->be, id, false, tracked_row, &t);
	if (r <= 0 || t.ack_msg == m->id) /* gone, or named twice by m */
		return r;
	if (strcmp(t.endpoint, m->source) != 0) {
		m->nforeign++; /* only the endpoint a message went to may acknowledge it */
		return 0;
	}
	enum msg_ack next = t.ack <= ACK_STATE_LAST ? ack_next[t.ack][m->verdict] : ACK_NONE;
	if (next == ACK_NONE || (t.state != MSG_QUEUED && t.state != MSG_DELIVERED))
		return 0;
	r = s->ops->ack_set(s->be, id, next, m->id, now, m->verdict_text);
	if (r > 0 && m->nacked++ == 0)
		m->acked = id;
	return r < 0 ? r : 0;
}

static int acks_apply(struct store *s, struct store_new *m, int64_t now)
{
	assert(m->nrefs == 0 || (m->verdict >= ACK_ACKNOWLEDGED && m->verdict <= ACK_STATE_LAST));
	for (size_t i = 0; i < m->nrefs; i++) {
		int r = ack_one(s, m, &m->refs[i], now);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The acknowledgement stored for message id, into *ack_id (0: none). */
static int ack_of(struct store *s, int64_t id, int64_t *ack_id)
{
	struct tracked t;
	int r = s->ops->get(s->be, id, false, tracked_row, &t);
	if (r > 0 && t.ack >= ACK_ACKNOWLEDGED && t.ack_msg > 0)
		*ack_id = t.ack_msg;
	return r < 0 ? r : 0;
}

/* ---- transmission ids ---------------------------------------------------- */

static bool txid_named(const struct store_txid *a, const struct store_txid *b)
{
	return strcmp(a->scope, b->scope) == 0 && strcmp(a->sender, b->sender) == 0 &&
	       strcmp(a->id, b->id) == 0;
}

static bool txid_digest_is(const struct store_txid *t, const void *digest, size_t len)
{
	return t->digest_len == len && memcmp(t->digest, digest, len) == 0;
}

/* The first earlier txid of m with the same name as txid i, or NULL. */
static const struct store_txid *txid_earlier(const struct store_new *m, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (txid_named(&m->txids[j], &m->txids[i]))
			return &m->txids[j];
	return NULL;
}

/* 1 with *reused (and the message that recorded it, 0 for m itself) when
 * one of m's txids names other content than before; 0 when none does. */
static int txids_check(struct store *s, const struct store_new *m,
		       const struct store_txid **reused, int64_t *by)
{
	for (size_t i = 0; i < m->ntxids; i++) {
		const struct store_txid *t = &m->txids[i], *e = txid_earlier(m, i);
		uint8_t d[STORE_DIGEST_MAX];
		size_t len = 0;
		int64_t id = 0;
		assert(t->scope && t->sender && t->id && t->digest);
		assert(t->digest_len >= 1 && t->digest_len <= STORE_DIGEST_MAX);
		int r = e ? 1 : s->ops->txid_lookup(s->be, t, d, &len, &id);
		if (r < 0)
			return r;
		if (r == 1 && !(e ? txid_digest_is(t, e->digest, e->digest_len)
				  : txid_digest_is(t, d, len))) {
			*reused = t;
			*by = id;
			return 1;
		}
	}
	return 0;
}

/* Records m's txids not yet known as belonging to message id. */
static int txids_record(struct store *s, const struct store_new *m, int64_t id, int64_t now)
{
	for (size_t i = 0; i < m->ntxids; i++) {
		uint8_t d[STORE_DIGEST_MAX];
		size_t len;
		int64_t by;
		if (txid_earlier(m, i))
			continue;
		int r = s->ops->txid_lookup(s->be, &m->txids[i], d, &len, &by);
		if (r == 0)
			r = s->ops->txid_insert(s->be, &m->txids[i], id, now);
		if (r == -EEXIST)
			return -EBUSY; /* another writer won the race: retry the batch */
		if (r < 0)
			return r;
	}
	return 0;
}

/* Stores m as a dead letter: a txid of it named other content before. */
static int insert_reused(struct store *s, struct store_new *m, const struct store_txid *t,
			 int64_t by)
{
	char *reason = m->why;
	if (by > 0)
		snprintf(reason, sizeof(m->why),
			 "transmission id reused for other content: %.16s %.64s of sender %.64s "
			 "named message %" PRId64 " before",
			 t->scope, t->id, t->sender, by);
	else
		snprintf(reason, sizeof(m->why),
			 "transmission id reused for other content: %.16s %.64s of sender %.64s "
			 "names two contents in this message",
			 t->scope, t->id, t->sender);
	struct store_new dead = *m;
	dead.endpoint = NULL;
	dead.reason = reason;
	int r = s->ops->msg_insert(s->be, &dead, &m->id);
	if (r >= 0)
		m->outcome = STORE_DEAD;
	return r;
}

/* A duplicate is dropped, but it arrived: the first message's history says
 * when and from where. */
static int note_duplicate(struct store *s, const struct store_new *m, int64_t first_id,
			  int64_t now)
{
	struct store_event ev = { .msg_id = first_id, .at = now, .kind = "duplicate",
				  .detail = m->source };
	return s->ops->event_add(s->be, &ev);
}

static int apply_queued(struct store *s, struct store_new *m, int64_t now)
{
	const struct store_txid *reused = NULL;
	int64_t by = 0;
	struct key_scan ks;
	int r = txids_check(s, m, &reused, &by);
	if (r != 0)
		return r < 0 ? r : insert_reused(s, m, reused, by);
	r = keys_scan(s, m, &ks);
	if (r < 0)
		return r;
	if (ks.known == 0) {
		r = insert_new(s, m, now);
		if (r >= 0)
			r = txids_record(s, m, m->id, now);
		return r < 0 ? r : acks_apply(s, m, now);
	}
	if (ks.known < m->nkeys)
		return insert_partial(s, m, &ks);
	m->outcome = STORE_DUPLICATE;
	m->id = ks.first_id;
	r = txids_record(s, m, ks.first_id, now);
	if (r >= 0)
		r = note_duplicate(s, m, ks.first_id, now);
	return r < 0 ? r : ack_of(s, ks.first_id, &m->ack_id);
}

/* 1 when m's token was recorded before: m is a replay and gets the first
 * copy's outcome, so its source hears what it would have heard had the
 * first answer not been lost (a dead letter: DEAD with its reason; queued
 * or delivered: DUPLICATE, which HTTP and ZeroMQ answer as they answer
 * ACCEPTED, with the first id). 0 when not, or when the backend keeps no
 * tokens. */
static int token_seen(struct store *s, struct store_new *m)
{
	struct store_token_seen first = { 0 };
	if (!m->token || !s->ops->token_lookup)
		return 0;
	int r = s->ops->token_lookup(s->be, m->token, &first);
	if (r != 1)
		return r;
	m->replay = true;
	m->id = first.msg_id;
	/* A dead letter an operator deleted since is still what the first copy
	 * became: its source must not hear "accepted" for it (a queued message
	 * has no reason); a requeued one flows on as a copy: DUPLICATE. */
	bool dead = first.state == MSG_DEAD || (first.state == MSG_DELETED && first.reason[0]);
	m->outcome = dead ? STORE_DEAD : STORE_DUPLICATE;
	if (m->outcome == STORE_DEAD)
		snprintf(m->why, sizeof(m->why), "%s",
			 first.reason[0] ? first.reason : "kept as a dead letter");
	return 1;
}

static int token_record(struct store *s, const struct store_new *m, int64_t now)
{
	if (!m->token || !s->ops->token_insert)
		return 0;
	struct store_token_seen first = { .msg_id = m->id, .state = MSG_QUEUED };
	if (m->outcome == STORE_DEAD) {
		first.state = MSG_DEAD;
		snprintf(first.reason, sizeof(first.reason), "%s",
			 m->why[0] ? m->why : m->reason ? m->reason : "");
	}
	int r = s->ops->token_insert(s->be, m->token, &first, now);
	return r == -EEXIST ? -EBUSY : r; /* another writer was first: retry the batch */
}

static int apply_one(struct store *s, struct store_new *m, int64_t now)
{
	if (!m->endpoint) {
		assert(m->reason); /* a dead letter without a reason is a caller bug */
		int r = s->ops->msg_insert(s->be, m, &m->id);
		if (r >= 0)
			m->outcome = STORE_DEAD;
		return r;
	}
	return apply_queued(s, m, now);
}

static int apply_msg(struct store *s, struct store_new *m, int64_t now)
{
	m->why[0] = '\0';
	m->acked = m->ack_id = 0;
	m->nacked = m->nforeign = 0;
	m->replay = false;
	int r = token_seen(s, m);
	if (r < 0)
		return r;
	if (r == 1 && (m->outcome == STORE_DEAD || m->nkeys == 0 || !m->token_is_digest))
		return 0;
	if (r == 1) {
		/* The same bytes with letters, of a message that went on: the
		 * duplicate register answers it as for any resend (MedCom:
		 * logged, on record, its stored acknowledgement sent again), so
		 * a sender sending them again because no receipt came gets the
		 * receipt; the token is recorded already. */
		m->replay = false;
		m->outcome = STORE_STORED;
		m->id = 0;
		return apply_one(s, m, now);
	}
	r = apply_one(s, m, now);
	return r < 0 ? r : token_record(s, m, now);
}

/* Delivered marks and attempts on messages no longer queued are no-ops
 * (a mark retried after a failed commit, a late failure report). */
static bool fence_eq(const struct store_fence *a, const struct store_fence *b)
{
	if (!a->lease || !b->lease)
		return a->lease == b->lease;
	return a->epoch == b->epoch && strcmp(a->lease, b->lease) == 0;
}

/* Tells the backend the fence of the marks that follow, when it changes. */
static int fence_set(struct store *s, const struct store_fence *f, struct store_fence *cur)
{
	static const struct store_fence none = { 0 };
	if (!s->ops->mark_fence)
		return 0;
	if (!f)
		f = &none;
	if (fence_eq(f, cur))
		return 0;
	*cur = *f;
	return s->ops->mark_fence(s->be, f->lease ? f : NULL);
}

static int apply_marks(struct store *s, const struct store_batch *b)
{
	struct store_fence cur = { 0 };
	for (size_t i = 0; i < b->ndelivered; i++) {
		int r = fence_set(s, b->delivered_fences ? &b->delivered_fences[i] : NULL, &cur);
		if (r >= 0)
			r = s->ops->msg_delivered(s->be, b->delivered[i], b->now);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < b->nattempts; i++) {
		const struct store_attempt *a = &b->attempts[i];
		int r = fence_set(s, &a->fence, &cur);
		if (r >= 0)
			r = a->refused ? s->ops->msg_refused(s->be, a->id, a->error)
				       : s->ops->msg_attempt(s->be, a->id, a->error);
		if (r <= 0) {
			if (r < 0)
				return r;
			continue; /* no longer queued (or fenced off): nothing was attempted on it */
		}
		/* a refusal made it a dead letter: its history says why */
		struct store_event ev = { .msg_id = a->id, .at = b->now,
					  .kind = a->refused ? "refused" : "attempt",
					  .fault = a->refused ? "rejected" : a->fault,
					  .detail = a->error };
		r = s->ops->event_add(s->be, &ev);
		if (r < 0)
			return r;
	}
	return fence_set(s, NULL, &cur);
}

static int apply_batch(struct store *s, struct store_batch *b)
{
	for (size_t i = 0; i < b->nmsgs; i++) {
		int r = apply_msg(s, &b->msgs[i], b->now);
		if (r < 0)
			return r;
	}
	return apply_marks(s, b);
}

int store_commit(struct store *s, struct store_batch *b)
{
	if (b->nmsgs == 0 && b->ndelivered == 0 && b->nattempts == 0)
		return s->ops->ping ? s->ops->ping(s->be) : 0;
	int r = s->ops->begin(s->be);
	if (r < 0)
		return r;
	if (s->ops->batch_prepare)
		r = s->ops->batch_prepare(s->be, b);
	if (r >= 0)
		r = apply_batch(s, b);
	if (r >= 0) {
		r = s->ops->commit(s->be);
		if (r == -EEXIST)
			r = -EBUSY; /* another writer was first with a key: retry the batch */
	}
	if (r < 0) {
		s->ops->rollback(s->be);
		return r;
	}
	return 0;
}

/* ---- the front end: one call through the table each -------------------- */

int store_fetch_queued(struct store *s, const char *endpoint, int64_t after_id,
		       const int64_t *except, size_t nexcept, size_t limit, store_msg_cb cb,
		       void *arg)
{
	return s->ops->fetch_queued(s->be, endpoint, after_id, except, nexcept, limit, cb, arg);
}

int store_depths(struct store *s, store_depth_cb cb, void *arg)
{
	return s->ops->depths(s->be, cb, arg);
}

struct depths_copy {
	struct store_depth *v;
	size_t n;
};

static int copy_depth(const struct store_depth *d, void *arg)
{
	struct depths_copy *c = arg;
	c->v = xrealloc(c->v, (c->n + 1) * sizeof(*c->v));
	c->v[c->n] = *d;
	c->v[c->n++].endpoint = xstrdup(d->endpoint);
	return 0;
}

int store_depths_copy(struct store *s, struct store_depth **v, size_t *n)
{
	struct depths_copy c = { 0 };
	int r = store_depths(s, copy_depth, &c);
	*v = c.v;
	*n = c.n;
	return r;
}

void store_depths_free(struct store_depth *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free((char *)v[i].endpoint);
	free(v);
}

int store_list(struct store *s, enum msg_state state, const char *endpoint, size_t limit,
	       store_msg_cb cb, void *arg)
{
	return s->ops->list(s->be, state, endpoint, limit, cb, arg);
}

int store_get(struct store *s, int64_t id, bool with_body, store_msg_cb cb, void *arg)
{
	return s->ops->get(s->be, id, with_body, cb, arg);
}

int store_count(struct store *s, enum msg_state state, int64_t *n)
{
	return s->ops->count(s->be, state, n);
}

int store_ack_list(struct store *s, enum msg_ack ack, const char *endpoint,
		   int64_t delivered_before, size_t limit, store_msg_cb cb, void *arg)
{
	assert(ack >= ACK_AWAITING && ack <= ACK_STATE_LAST);
	return s->ops->ack_list(s->be, ack, endpoint, delivered_before, limit, cb, arg);
}

int store_ack_overdue(struct store *s, int64_t delivered_before, store_tally_cb cb, void *arg)
{
	return s->ops->ack_overdue(s->be, delivered_before, cb, arg);
}

int store_txid_lookup(struct store *s, const struct store_txid *t, bool *same, int64_t *msg_id)
{
	uint8_t d[STORE_DIGEST_MAX];
	size_t len = 0;
	int64_t id = 0;
	int r = s->ops->txid_lookup(s->be, t, d, &len, &id);
	if (r == 1) {
		*same = txid_digest_is(t, d, len);
		*msg_id = id;
	}
	return r;
}

int store_prune(struct store *s, int64_t body_before, int64_t history_before, size_t limit)
{
	return s->ops->prune(s->be, body_before, history_before, limit);
}

int store_quarantine_add(struct store *s, struct store_quarantined *q, size_t n)
{
	return n ? s->ops->quarantine_add(s->be, q, n) : 0;
}

int store_dead_expire(struct store *s, int64_t before, int64_t now, size_t limit)
{
	return s->ops->dead_expire(s->be, before, now, limit);
}

int store_quarantine_expired(struct store *s, int64_t before, int64_t after_at, int64_t after_id,
			     size_t limit, store_msg_cb cb, void *arg)
{
	return s->ops->quarantine_expired(s->be, before, after_at, after_id, limit, cb, arg);
}

int store_quarantine_removed(struct store *s, const int64_t *ids, size_t n, int64_t now)
{
	return n ? s->ops->quarantine_removed(s->be, ids, n, now) : 0;
}

int store_keep(struct store *s, int64_t id, bool keep)
{
	return s->ops->keep(s->be, id, keep);
}

/* ---- operators' actions: each one transaction of primitives ------------- */

/* Runs fn(s, arg) between begin and commit; its result (>= 0) or the first
 * failure, rolled back. */
static int in_transaction(struct store *s, int (*fn)(struct store *s, void *arg), void *arg)
{
	int r = s->ops->begin(s->be);
	if (r < 0)
		return r;
	int n = fn(s, arg);
	r = n < 0 ? n : s->ops->commit(s->be);
	if (r < 0) {
		s->ops->rollback(s->be);
		return r;
	}
	return n;
}

struct end_args {
	int64_t id;
	enum msg_state from, to;
	const struct store_event *ev;
	const char *back_kind; /* the event the message ev->ref names gets; NULL = none */
};

static int end_msg(struct store *s, void *arg)
{
	const struct end_args *a = arg;
	int r = s->ops->msg_state(s->be, a->id, a->from, a->to, a->ev->at);
	if (r <= 0)
		return r;
	struct store_event ev = *a->ev;
	ev.msg_id = a->id;
	r = s->ops->event_add(s->be, &ev);
	if (r >= 0 && a->back_kind && ev.ref > 0) {
		struct store_event back = { .msg_id = ev.ref, .at = ev.at, .kind = a->back_kind,
					    .by = ev.by, .ref = a->id };
		r = s->ops->event_add(s->be, &back);
	}
	return r < 0 ? r : 1;
}

int store_requeued(struct store *s, int64_t id, enum msg_state from, const struct store_event *ev)
{
	assert(from == MSG_DEAD || from == MSG_QUARANTINED);
	struct end_args a = { id, from, MSG_REQUEUED, ev, "requeued-from" };
	return in_transaction(s, end_msg, &a);
}

int store_delete(struct store *s, int64_t id, enum msg_state from, const struct store_event *ev)
{
	assert(from == MSG_QUEUED || from == MSG_DEAD);
	struct end_args a = { id, from, MSG_DELETED, ev, NULL };
	return in_transaction(s, end_msg, &a);
}

struct resend_args {
	int64_t id;
	const struct store_event *ev;
	int64_t new_id;
};

static int resend_msg(struct store *s, void *arg)
{
	struct resend_args *a = arg;
	int r = s->ops->msg_copy(s->be, a->id, a->ev->at, &a->new_id);
	if (r < 0)
		return r;
	struct store_event ev = *a->ev, copy = { .msg_id = a->new_id, .at = a->ev->at,
						 .kind = "resent-from", .by = a->ev->by,
						 .ref = a->id };
	ev.msg_id = a->id;
	ev.ref = a->new_id;
	r = s->ops->event_add(s->be, &ev);
	return r < 0 ? r : s->ops->event_add(s->be, &copy);
}

int store_resend(struct store *s, int64_t id, const struct store_event *ev, int64_t *new_id)
{
	struct resend_args a = { id, ev, 0 };
	int r = in_transaction(s, resend_msg, &a);
	if (r >= 0)
		*new_id = a.new_id;
	return r < 0 ? r : 0;
}

struct hold_args {
	const char *endpoint;
	bool held;
	int64_t at;
	const char *by;
};

static int hold_msg(struct store *s, void *arg)
{
	const struct hold_args *a = arg;
	return s->ops->hold_set(s->be, a->endpoint, a->held, a->at, a->by);
}

int store_hold(struct store *s, const char *endpoint, bool held, int64_t at, const char *by)
{
	struct hold_args a = { endpoint, held, at, by };
	return in_transaction(s, hold_msg, &a);
}

int store_holds(struct store *s, store_hold_cb cb, void *arg)
{
	return s->ops->holds(s->be, cb, arg);
}

struct holds_copy {
	char **names;
	size_t n;
};

static int copy_hold(const struct store_hold *h, void *arg)
{
	struct holds_copy *c = arg;
	c->names = xrealloc(c->names, (c->n + 1) * sizeof(*c->names));
	c->names[c->n++] = xstrdup(h->endpoint);
	return 0;
}

int store_holds_copy(struct store *s, char ***names, size_t *n)
{
	struct holds_copy c = { 0 };
	int r = store_holds(s, copy_hold, &c);
	*names = c.names;
	*n = c.n;
	return r;
}

int store_events(struct store *s, int64_t id, store_event_cb cb, void *arg)
{
	return s->ops->events(s->be, id, cb, arg);
}

int store_find(struct store *s, enum store_find by, const char *key, size_t limit,
	       store_id_cb cb, void *arg)
{
	return s->ops->find(s->be, by, key, limit, cb, arg);
}

int store_size(struct store *s, int64_t *bytes)
{
	return s->ops->size(s->be, bytes);
}

int store_outage_save(struct store *s, struct outage *o)
{
	return s->ops->outage_save(s->be, o);
}

int store_notice_save(struct store *s, struct notice_record *n)
{
	return s->ops->notice_save(s->be, n);
}

int store_maintenance_save(struct store *s, struct maint *m)
{
	return s->ops->maintenance_save(s->be, m);
}

int store_send_record(struct store *s, const struct store_send *x)
{
	return s->ops->send_record(s->be, x);
}

int store_outage_list(struct store *s, int64_t closed_since, size_t limit, store_outage_cb cb,
		      void *arg)
{
	return s->ops->outage_list(s->be, closed_since, limit, cb, arg);
}

int store_outage_get(struct store *s, int64_t id, store_outage_cb cb, void *arg)
{
	return s->ops->outage_get(s->be, id, cb, arg);
}

int store_notice_list(struct store *s, int64_t outage_id, int64_t maintenance_id,
		      store_notice_cb cb, void *arg)
{
	return s->ops->notice_list(s->be, outage_id, maintenance_id, cb, arg);
}

int store_notice_pending(struct store *s, store_notice_cb cb, void *arg)
{
	return s->ops->notice_pending(s->be, cb, arg);
}

int store_send_list(struct store *s, int64_t notice_id, store_send_cb cb, void *arg)
{
	return s->ops->send_list(s->be, notice_id, cb, arg);
}

int store_maintenance_list(struct store *s, bool removed, store_maintenance_cb cb, void *arg)
{
	return s->ops->maintenance_list(s->be, removed, cb, arg);
}

int store_queue_summary(struct store *s, const char *endpoint, store_summary_cb cb, void *arg)
{
	return s->ops->queue_summary(s->be, endpoint, cb, arg);
}

int store_partners(struct store *s, const char *endpoint, store_name_cb cb, void *arg)
{
	return s->ops->partners(s->be, endpoint, cb, arg);
}

int store_schema_version(struct store *s, int64_t *have, int64_t *want)
{
	return s->ops->schema_version(s->be, have, want);
}

const char *store_backend_name(const struct store *s)
{
	return s->ops->name;
}

bool store_ids_in_commit_order(const struct store *s)
{
	return s->ops->ids_in_commit_order;
}

/* ---- asynchronous use ---------------------------------------------------- */

int store_attach(struct store *s, struct event_base *base)
{
	assert(!s->is_view && !s->pool);
	if (!s->ops->connect)
		return 0; /* local: store_run works at once */
	s->pool = lanes_new(base, 0);
	if (!s->pool)
		return -errno;
	for (size_t i = 0; i < STORE_LANES; i++) {
		void *be = NULL;
		int r = s->ops->connect(s->be, lane_wait_ms[i], &be);
		assert(r == 0); /* connect only allocates: it cannot fail but for memory */
		(void)r;
		s->views[i] = xcalloc(1, sizeof(*s->views[i]));
		*s->views[i] = (struct store){ .ops = s->ops, .be = be, .is_view = true };
		s->lanes[i] = lane_new(s->pool, lane_names[i]);
	}
	return 0;
}

bool store_async(const struct store *s)
{
	return s->pool != NULL;
}

struct run_job {
	struct store *view;
	store_work_fn work;
	store_done_fn done;
	void *arg;
};

static void run_work(void *arg)
{
	struct run_job *j = arg;
	j->work(j->view, j->arg);
}

static void run_done(void *arg)
{
	struct run_job *j = arg;
	if (j->done)
		j->done(j->arg);
	free(j);
}

void store_run(struct store *s, enum store_lane lane, store_work_fn work, store_done_fn done,
	       void *arg)
{
	assert(lane < STORE_LANES && !s->is_view);
	if (!s->pool) {
		work(s, arg);
		if (done)
			done(arg);
		return;
	}
	struct run_job *j = xmalloc(sizeof(*j));
	*j = (struct run_job){ s->views[lane], work, done, arg };
	lane_submit(s->lanes[lane], run_work, run_done, j);
}

bool store_busy(const struct store *s)
{
	return s->pool && lanes_pending(s->pool) > 0;
}

int store_drain(struct store *s, int64_t timeout_ms)
{
	return s->pool ? lanes_wait(s->pool, timeout_ms) : 0;
}

struct commit_job {
	struct store_batch *b;
	store_commit_done_fn done;
	void *arg;
	int r;
	char error[512];
};

static void commit_work(struct store *view, void *arg)
{
	struct commit_job *j = arg;
	j->r = store_commit(view, j->b);
	if (j->r < 0)
		snprintf(j->error, sizeof(j->error), "%s", store_last_error(view));
}

static void commit_job_done(void *arg)
{
	struct commit_job *j = arg;
	j->done(j->r, j->error, j->arg);
	free(j);
}

void store_commit_async(struct store *s, struct store_batch *b, store_commit_done_fn done,
			void *arg)
{
	struct commit_job *j = xmalloc(sizeof(*j));
	*j = (struct commit_job){ .b = b, .done = done, .arg = arg };
	store_run(s, STORE_LANE_WRITE, commit_work, commit_job_done, j);
}

/* ---- nodes and leases ---------------------------------------------------- */

static int no_cluster(struct store *s)
{
	(void)s;
	return -ENOSYS;
}

bool store_shared(const struct store *s)
{
	return s->ops->lease_claim != NULL;
}

const char *store_node_name(const struct store *s)
{
	return s->ops->node ? s->ops->node(s->be) : "";
}

int store_node_beat(struct store *s, int64_t started_at, int64_t ttl_ms, const char *const *names,
		    size_t n)
{
	if (!s->ops->node_beat)
		return no_cluster(s);
	return s->ops->node_beat(s->be, started_at, ttl_ms, names, n);
}

int store_lease_renew(struct store *s, const struct store_fence *held, size_t n, int64_t ttl_ms,
		      bool *renewed)
{
	if (!s->ops->lease_renew)
		return no_cluster(s);
	return n ? s->ops->lease_renew(s->be, held, n, ttl_ms, renewed) : 0;
}

int store_lease_claim(struct store *s, const char *const *names, size_t n, int64_t ttl_ms,
		      size_t limit, store_lease_cb cb, void *arg)
{
	if (!s->ops->lease_claim)
		return no_cluster(s);
	return n && limit ? s->ops->lease_claim(s->be, names, n, ttl_ms, limit, cb, arg) : 0;
}

int store_node_leave(struct store *s, int64_t started_at)
{
	if (!s->ops->node_leave)
		return 0;
	return s->ops->node_leave(s->be, started_at);
}

int store_lease_release(struct store *s, const struct store_fence *held, size_t n)
{
	if (!s->ops->lease_release)
		return no_cluster(s);
	return n ? s->ops->lease_release(s->be, held, n) : 0;
}

int store_leases(struct store *s, store_lease_cb cb, void *arg)
{
	return s->ops->leases ? s->ops->leases(s->be, cb, arg) : no_cluster(s);
}

int store_nodes(struct store *s, store_node_cb cb, void *arg)
{
	return s->ops->nodes ? s->ops->nodes(s->be, cb, arg) : no_cluster(s);
}

int store_lease_backoff(struct store *s, const struct store_fence *f, int failures,
			int64_t next_attempt_at)
{
	if (!s->ops->lease_backoff)
		return no_cluster(s);
	return s->ops->lease_backoff(s->be, f, failures, next_attempt_at);
}

int store_observation_add(struct store *s, const struct store_observation *o)
{
	return s->ops->observation_add ? s->ops->observation_add(s->be, o) : no_cluster(s);
}

int store_observations_take(struct store *s, size_t limit, store_observation_cb cb, void *arg)
{
	if (!s->ops->observations_take)
		return no_cluster(s);
	return s->ops->observations_take(s->be, limit, cb, arg);
}

void store_fence_records(struct store *s, const struct store_fence *f)
{
	if (s->ops->fence_records)
		s->ops->fence_records(s->be, f && f->lease ? f : NULL);
}
