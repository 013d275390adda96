/*
 * fake_store.c - the in-memory store backend of fake_store.h.
 *
 * It keeps deep copies of what is saved and hands the stored copies to row
 * callbacks, with the orders and filters store.h promises, so a test of the
 * outage procedure sees the same store contract as the daemon, minus the
 * disk. Every symbol is fake_store_* or static: the Makefile links this
 * file into every unit test binary, ahead of the library.
 */
#include "tests/unit/fake_store.h"

#include "store/store_backend.h"
#include "codecs/base/mem.h"

#include <errno.h>
#include <string.h>

struct fsend {
	int64_t notice_id;
	char *channel, *recipients, *error;
	int64_t at;
	bool ok;
};

struct fsummary {
	char *endpoint, *type, *source;
	int64_t count, oldest;
};

/* A tracked message ack_list() returns (seeded by the test). */
struct ftracked {
	int64_t id, delivered_at;
	char *endpoint, *type, *source;
	enum msg_ack ack;
};

struct fake {
	struct ftracked *tracked;
	size_t ntracked;
	struct outage **outages;
	size_t noutages;
	struct notice_record **notices;
	size_t nnotices;
	struct fsend *sends;
	size_t nsends;
	struct maint **maint;
	size_t nmaint;
	struct fsummary *summary;
	size_t nsummary;
	char *(*pairs)[2];
	size_t npairs;
	int64_t next_id;
	bool fail_saves;
	int saves;
	char err[128];
	int refs;                 /* the store's handle and its lanes' (connect) */
};

static struct fake *current;

#define GROW(arr, n) ((arr) = xrealloc((arr), ((n) + 1) * sizeof(*(arr))))

/* ---- the backend -------------------------------------------------------- */

static int fk_open(const char *state_dir, const struct store_options *opt, void **be)
{
	struct fake *f = xcalloc(1, sizeof(*f));
	f->next_id = 1;
	f->refs = 1;
	*be = current = f;
	return 0;
}

/* A lane's handle is the same fake: store_attach() then runs the work on
 * the lanes' threads and completes it on the loop, as with a server. The
 * test drains the lanes before it touches the fake again. */
static int fk_connect(void *be, int64_t wait_ms, void **out)
{
	struct fake *f = be;
	f->refs++;
	*out = f;
	return 0;
}

static void fk_close(void *be)
{
	struct fake *f = be;
	if (--f->refs > 0)
		return;
	for (size_t i = 0; i < f->noutages; i++)
		outage_free(f->outages[i]);
	for (size_t i = 0; i < f->nnotices; i++)
		notice_record_free(f->notices[i]);
	for (size_t i = 0; i < f->nmaint; i++)
		maint_free(f->maint[i]);
	for (size_t i = 0; i < f->nsends; i++) {
		free(f->sends[i].channel);
		free(f->sends[i].recipients);
		free(f->sends[i].error);
	}
	for (size_t i = 0; i < f->nsummary; i++) {
		free(f->summary[i].endpoint);
		free(f->summary[i].type);
		free(f->summary[i].source);
	}
	for (size_t i = 0; i < f->npairs; i++) {
		free(f->pairs[i][0]);
		free(f->pairs[i][1]);
	}
	for (size_t i = 0; i < f->ntracked; i++) {
		free(f->tracked[i].endpoint);
		free(f->tracked[i].type);
		free(f->tracked[i].source);
	}
	free(f->tracked);
	free(f->outages);
	free(f->notices);
	free(f->maint);
	free(f->sends);
	free(f->summary);
	free(f->pairs);
	if (current == f)
		current = NULL;
	free(f);
}

static const char *fk_last_error(void *be)
{
	return be ? ((struct fake *)be)->err : "fake store: cannot fail to open";
}

static const char *fk_instance(void *be)
{
	return "fa4e0001";
}

static int fk_nosys(struct fake *f, const char *what)
{
	snprintf(f->err, sizeof(f->err), "fake store: %s not implemented", what);
	return -ENOSYS;
}

static int fk_begin(void *be) { return fk_nosys(be, "begin"); }
static int fk_commit(void *be) { return fk_nosys(be, "commit"); }
static void fk_rollback(void *be) { }

static int fk_key_lookup(void *be, const struct store_key *key, int64_t *msg_id)
{
	return fk_nosys(be, "key_lookup");
}

static int fk_key_insert(void *be, const struct store_key *key, int64_t msg_id, int64_t now)
{
	return fk_nosys(be, "key_insert");
}

static int fk_txid_lookup(void *be, const struct store_txid *t, uint8_t *digest, size_t *len,
			  int64_t *msg_id)
{
	return fk_nosys(be, "txid_lookup");
}

static int fk_txid_insert(void *be, const struct store_txid *t, int64_t msg_id, int64_t now)
{
	return fk_nosys(be, "txid_insert");
}

static int fk_msg_insert(void *be, const struct store_new *m, int64_t *id)
{
	return fk_nosys(be, "msg_insert");
}

static int fk_msg_delivered(void *be, int64_t id, int64_t at)
{
	return fk_nosys(be, "msg_delivered");
}

static int fk_msg_refused(void *be, int64_t id, const char *reason)
{
	return fk_nosys(be, "msg_refused");
}

static int fk_msg_attempt(void *be, int64_t id, const char *error)
{
	return fk_nosys(be, "msg_attempt");
}

static int fk_envelope_lookup(void *be, const char *sender, const char *envelope_id,
			      int64_t *msg_id)
{
	return fk_nosys(be, "envelope_lookup");
}

static int fk_ack_set(void *be, int64_t id, enum msg_ack ack, int64_t ack_msg, int64_t at,
		      const char *code)
{
	return fk_nosys(be, "ack_set");
}

/* The seeded tracked messages, in the order seeded (the test seeds them
 * oldest delivery first, as the contract orders them). */
static int fk_ack_list(void *be, enum msg_ack ack, const char *endpoint, int64_t delivered_before,
		       size_t limit, store_msg_cb cb, void *arg)
{
	struct fake *f = be;
	int n = 0, stop = 0;
	for (size_t i = 0; i < f->ntracked && !stop && (size_t)n < limit; i++) {
		const struct ftracked *t = &f->tracked[i];
		if (t->ack != ack || t->delivered_at >= delivered_before ||
		    (endpoint && strcmp(endpoint, t->endpoint) != 0))
			continue;
		struct store_msg m = { .id = t->id, .state = MSG_DELIVERED, .endpoint = t->endpoint,
				       .type = t->type, .source = t->source,
				       .delivered_at = t->delivered_at, .ack = t->ack };
		n++;
		stop = cb(&m, arg);
	}
	return stop < 0 ? stop : n;
}

static int fk_ack_overdue(void *be, int64_t delivered_before, store_tally_cb cb, void *arg)
{
	return fk_nosys(be, "ack_overdue");
}

static int fk_fetch_queued(void *be, const char *endpoint, int64_t after_id,
			   const int64_t *except, size_t nexcept, size_t limit, store_msg_cb cb,
			   void *arg)
{
	return fk_nosys(be, "fetch_queued");
}

static int fk_depths(void *be, store_depth_cb cb, void *arg)
{
	return fk_nosys(be, "depths");
}

static int fk_list(void *be, enum msg_state state, const char *endpoint, size_t limit,
		   store_msg_cb cb, void *arg)
{
	return fk_nosys(be, "list");
}

static int fk_get(void *be, int64_t id, bool with_body, store_msg_cb cb, void *arg)
{
	return fk_nosys(be, "get");
}

static int fk_count(void *be, enum msg_state state, int64_t *n)
{
	return fk_nosys(be, "count");
}

static int fk_prune(void *be, int64_t body_before, int64_t history_before, size_t limit)
{
	return fk_nosys(be, "prune");
}

static int fk_quarantine_add(void *be, struct store_quarantined *q, size_t n)
{
	return fk_nosys(be, "quarantine_add");
}

static int fk_dead_expire(void *be, int64_t before, int64_t now, size_t limit)
{
	return fk_nosys(be, "dead_expire");
}

static int fk_quarantine_expired(void *be, int64_t before, int64_t after_at, int64_t after_id,
				 size_t limit, store_msg_cb cb, void *arg)
{
	return fk_nosys(be, "quarantine_expired");
}

static int fk_event_add(void *be, const struct store_event *e)
{
	return fk_nosys(be, "event_add");
}

static int fk_msg_state(void *be, int64_t id, enum msg_state from, enum msg_state to, int64_t now)
{
	return fk_nosys(be, "msg_state");
}

static int fk_msg_copy(void *be, int64_t id, int64_t now, int64_t *new_id)
{
	return fk_nosys(be, "msg_copy");
}

static int fk_hold_set(void *be, const char *endpoint, bool held, int64_t at, const char *by)
{
	return fk_nosys(be, "hold_set");
}

static int fk_events(void *be, int64_t id, store_event_cb cb, void *arg)
{
	return fk_nosys(be, "events");
}

static int fk_find(void *be, enum store_find by, const char *key, size_t limit, store_id_cb cb,
		   void *arg)
{
	return fk_nosys(be, "find");
}

static int fk_holds(void *be, store_hold_cb cb, void *arg)
{
	return fk_nosys(be, "holds");
}

static int fk_size(void *be, int64_t *bytes)
{
	return fk_nosys(be, "size");
}

static int fk_quarantine_removed(void *be, const int64_t *ids, size_t n, int64_t now)
{
	return fk_nosys(be, "quarantine_removed");
}

static int fk_keep(void *be, int64_t id, bool keep)
{
	return fk_nosys(be, "keep");
}

/* Before a save: -EIO while failing on purpose. */
static int save_check(struct fake *f)
{
	if (!f->fail_saves)
		return 0;
	snprintf(f->err, sizeof(f->err), "fake store: save failed on purpose");
	return -EIO;
}

static int saved(struct fake *f)
{
	f->saves++;
	return 0;
}

static int no_row(struct fake *f, int64_t id)
{
	snprintf(f->err, sizeof(f->err), "fake store: no row %lld", (long long)id);
	return -ENOENT;
}

static int fk_outage_save(void *be, struct outage *o)
{
	struct fake *f = be;
	int r = save_check(f);
	if (r < 0)
		return r;
	if (o->id) {
		for (size_t i = 0; i < f->noutages; i++) {
			if (f->outages[i]->id == o->id) {
				outage_free(f->outages[i]);
				f->outages[i] = outage_dup(o);
				return saved(f);
			}
		}
		return no_row(f, o->id);
	}
	o->id = f->next_id++;
	GROW(f->outages, f->noutages);
	f->outages[f->noutages++] = outage_dup(o);
	return saved(f);
}

/* Newest first: by start, then id (store.h). */
static bool outage_before(const struct outage *a, const struct outage *b)
{
	return a->started_at != b->started_at ? a->started_at > b->started_at : a->id > b->id;
}

static int fk_outage_list(void *be, int64_t closed_since, size_t limit, store_outage_cb cb,
			  void *arg)
{
	struct fake *f = be;
	const struct outage **v = xcalloc(f->noutages + 1, sizeof(*v));
	size_t n = 0;
	for (size_t i = 0; i < f->noutages; i++) {
		const struct outage *o = f->outages[i];
		if (o->state != OUTAGE_CLOSED || o->closed_at >= closed_since) {
			size_t j = n++;
			for (; j > 0 && outage_before(o, v[j - 1]); j--)
				v[j] = v[j - 1];
			v[j] = o;
		}
	}
	int r = 0, stop = 0;
	for (size_t i = 0; i < n && i < limit && !stop; i++, r++)
		stop = cb(v[i], arg);
	free(v);
	return stop < 0 ? stop : r;
}

static int fk_outage_get(void *be, int64_t id, store_outage_cb cb, void *arg)
{
	struct fake *f = be;
	for (size_t i = 0; i < f->noutages; i++) {
		if (f->outages[i]->id == id) {
			int stop = cb(f->outages[i], arg);
			return stop < 0 ? stop : 1;
		}
	}
	return 0;
}

static int fk_notice_save(void *be, struct notice_record *n)
{
	struct fake *f = be;
	int r = save_check(f);
	if (r < 0)
		return r;
	if (n->id) {
		for (size_t i = 0; i < f->nnotices; i++) {
			if (f->notices[i]->id == n->id) {
				notice_record_free(f->notices[i]);
				f->notices[i] = notice_record_dup(n);
				return saved(f);
			}
		}
		return no_row(f, n->id);
	}
	n->id = f->next_id++;
	GROW(f->notices, f->nnotices);
	f->notices[f->nnotices++] = notice_record_dup(n);
	return saved(f);
}

/* Walks the notices that match, oldest first (by created_at, then id). */
static int notices_walk(struct fake *f, bool (*match)(const struct notice_record *, const void *),
			const void *key, store_notice_cb cb, void *arg)
{
	const struct notice_record **v = xcalloc(f->nnotices + 1, sizeof(*v));
	size_t n = 0;
	for (size_t i = 0; i < f->nnotices; i++) {
		const struct notice_record *x = f->notices[i];
		if (!match(x, key))
			continue;
		size_t j = n++;
		for (; j > 0 && x->created_at < v[j - 1]->created_at; j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
	int r = 0, stop = 0;
	for (size_t i = 0; i < n && !stop; i++, r++)
		stop = cb(v[i], arg);
	free(v);
	return stop < 0 ? stop : r;
}

static bool of_outage(const struct notice_record *n, const void *key)
{
	return n->outage_id == *(const int64_t *)key;
}

static bool of_window(const struct notice_record *n, const void *key)
{
	return n->outage_id == 0 && n->maintenance_id == *(const int64_t *)key;
}

static bool is_pending(const struct notice_record *n, const void *key)
{
	return n->pending && *n->pending;
}

static int fk_notice_list(void *be, int64_t outage_id, int64_t maintenance_id, store_notice_cb cb,
			  void *arg)
{
	struct fake *f = be;
	if (outage_id <= 0 && maintenance_id <= 0) {
		snprintf(f->err, sizeof(f->err), "fake store: notice list: no id");
		return -EINVAL;
	}
	if (outage_id > 0)
		return notices_walk(f, of_outage, &outage_id, cb, arg);
	return notices_walk(f, of_window, &maintenance_id, cb, arg);
}

static int fk_notice_pending(void *be, store_notice_cb cb, void *arg)
{
	return notices_walk(be, is_pending, NULL, cb, arg);
}

static int fk_send_record(void *be, const struct store_send *s)
{
	struct fake *f = be;
	int r = save_check(f);
	if (r < 0)
		return r;
	GROW(f->sends, f->nsends);
	f->sends[f->nsends++] = (struct fsend){
		s->notice_id, xstrdup(s->channel), xstrdup_or_null(s->recipients),
		xstrdup_or_null(s->error), s->at, s->ok,
	};
	return saved(f);
}

static int fk_send_list(void *be, int64_t notice_id, store_send_cb cb, void *arg)
{
	struct fake *f = be;
	int r = 0, stop = 0;
	/* recorded in time order by the procedure: insertion order is "by time,
	 * then as recorded" */
	for (size_t i = 0; i < f->nsends && !stop; i++) {
		const struct fsend *x = &f->sends[i];
		if (x->notice_id != notice_id)
			continue;
		struct store_send s = { x->notice_id, x->channel, x->at, x->ok, x->recipients,
					x->error };
		stop = cb(&s, arg);
		r++;
	}
	return stop < 0 ? stop : r;
}

static int fk_maintenance_save(void *be, struct maint *m)
{
	struct fake *f = be;
	int r = save_check(f);
	if (r < 0)
		return r;
	if (m->id) {
		for (size_t i = 0; i < f->nmaint; i++) {
			if (f->maint[i]->id == m->id) {
				maint_free(f->maint[i]);
				f->maint[i] = maint_dup(m);
				return saved(f);
			}
		}
		return no_row(f, m->id);
	}
	m->id = f->next_id++;
	GROW(f->maint, f->nmaint);
	f->maint[f->nmaint++] = maint_dup(m);
	return saved(f);
}

static int fk_maintenance_list(void *be, bool removed, store_maintenance_cb cb, void *arg)
{
	struct fake *f = be;
	const struct maint **v = xcalloc(f->nmaint + 1, sizeof(*v));
	size_t n = 0;
	for (size_t i = 0; i < f->nmaint; i++) {
		const struct maint *m = f->maint[i];
		if (m->removed_at && !removed)
			continue;
		size_t j = n++;
		for (; j > 0 && m->from < v[j - 1]->from; j--)
			v[j] = v[j - 1];
		v[j] = m;
	}
	int r = 0, stop = 0;
	for (size_t i = 0; i < n && !stop; i++, r++)
		stop = cb(v[i], arg);
	free(v);
	return stop < 0 ? stop : r;
}

static int fk_queue_summary(void *be, const char *endpoint, store_summary_cb cb, void *arg)
{
	struct fake *f = be;
	int r = 0, stop = 0;
	for (size_t i = 0; i < f->nsummary && !stop; i++) {
		const struct fsummary *x = &f->summary[i];
		if (strcmp(x->endpoint, endpoint) != 0)
			continue;
		struct store_summary s = { x->type, x->source, x->count, x->oldest };
		stop = cb(&s, arg);
		r++;
	}
	return stop < 0 ? stop : r;
}

static int fk_partners(void *be, const char *endpoint, store_name_cb cb, void *arg)
{
	struct fake *f = be;
	int r = 0, stop = 0;
	for (size_t i = 0; i < f->npairs && !stop; i++) {
		for (int side = 0; side < 2 && !stop; side++) {
			if (strcmp(f->pairs[i][side], endpoint) != 0)
				continue;
			stop = cb(f->pairs[i][!side], arg);
			r++;
		}
	}
	return stop < 0 ? stop : r;
}

static int fk_schema_version(void *be, int64_t *have, int64_t *want)
{
	*have = *want = 1;
	return 0;
}

static const struct store_backend_ops fake_ops = {
	.name = "fake",
	.open = fk_open,
	.close = fk_close,
	.connect = fk_connect,
	.last_error = fk_last_error,
	.instance = fk_instance,
	.begin = fk_begin,
	.commit = fk_commit,
	.rollback = fk_rollback,
	.key_lookup = fk_key_lookup,
	.key_insert = fk_key_insert,
	.txid_lookup = fk_txid_lookup,
	.txid_insert = fk_txid_insert,
	.msg_insert = fk_msg_insert,
	.msg_delivered = fk_msg_delivered,
	.msg_attempt = fk_msg_attempt,
	.msg_refused = fk_msg_refused,
	.envelope_lookup = fk_envelope_lookup,
	.ack_set = fk_ack_set,
	.ack_list = fk_ack_list,
	.ack_overdue = fk_ack_overdue,
	.fetch_queued = fk_fetch_queued,
	.depths = fk_depths,
	.list = fk_list,
	.get = fk_get,
	.count = fk_count,
	.prune = fk_prune,
	.quarantine_add = fk_quarantine_add,
	.dead_expire = fk_dead_expire,
	.quarantine_expired = fk_quarantine_expired,
	.quarantine_removed = fk_quarantine_removed,
	.keep = fk_keep,
	.outage_save = fk_outage_save,
	.outage_list = fk_outage_list,
	.outage_get = fk_outage_get,
	.notice_save = fk_notice_save,
	.notice_list = fk_notice_list,
	.notice_pending = fk_notice_pending,
	.send_record = fk_send_record,
	.send_list = fk_send_list,
	.maintenance_save = fk_maintenance_save,
	.maintenance_list = fk_maintenance_list,
	.queue_summary = fk_queue_summary,
	.partners = fk_partners,
	.event_add = fk_event_add,
	.msg_state = fk_msg_state,
	.msg_copy = fk_msg_copy,
	.hold_set = fk_hold_set,
	.events = fk_events,
	.find = fk_find,
	.holds = fk_holds,
	.size = fk_size,
	.schema_version = fk_schema_version,
	.ids_in_commit_order = true,
};

/* ---- what tests call ---------------------------------------------------- */

struct store *fake_store_open(void)
{
	char err[128];
	return store_open_backend(&fake_ops, "(memory)", NULL, err, sizeof(err));
}

void fake_store_tracked(int64_t id, const char *endpoint, const char *type, const char *source,
			int64_t delivered_at, enum msg_ack ack)
{
	struct fake *f = current;
	GROW(f->tracked, f->ntracked);
	f->tracked[f->ntracked++] = (struct ftracked){ id, delivered_at, xstrdup(endpoint),
						       xstrdup(type), xstrdup(source), ack };
}

void fake_store_queue(const char *endpoint, const char *type, const char *source, int64_t count,
		      int64_t oldest_received_at)
{
	struct fake *f = current;
	GROW(f->summary, f->nsummary);
	f->summary[f->nsummary++] = (struct fsummary){ xstrdup(endpoint), xstrdup(type),
						       xstrdup(source), count, oldest_received_at };
}

void fake_store_partners(const char *a, const char *b)
{
	struct fake *f = current;
	GROW(f->pairs, f->npairs);
	f->pairs[f->npairs][0] = xstrdup(a);
	f->pairs[f->npairs++][1] = xstrdup(b);
}

void fake_store_fail_saves(bool on)
{
	current->fail_saves = on;
}

int fake_store_saves(void)
{
	return current->saves;
}
