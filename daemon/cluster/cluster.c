/*
 * cluster.c - this node's heartbeat and leases (cluster.h).
 *
 * State on the loop: the names wanted, the leases held (name, epoch, trust
 * deadline), those to give back, and the last view. A round is one job on
 * the store's lease lane (a connection of its own, so commits and reads
 * never delay a renewal): beat, release, renew, claim, read the view and
 * the holds. The
 * job owns copies of what it needs and fills in its answers; the loop
 * applies them when it completes. At most one round is out at a time: a
 * round stuck on a dead connection holds no others up, the trust timer
 * drops the leases it was renewing.
 *
 * A lease's trust deadline is the submission time of the round that won or
 * renewed it (monotonic clock, before anything was sent) plus the lease
 * minus a margin, so it always falls before the server's expiry, which the
 * server set from its own now() during the round.
 */
#include "cluster/cluster.h"

#include "base/clock.h"
#include "base/log.h"
#include "codecs/base/mem.h"

#include <errno.h>
#include <string.h>

#define MARGIN_MIN_MS 1000

#define ROUND_DRAIN_MS 5000 /* cluster_stop waits this long for a round in flight */

struct held {
	char *name;
	int64_t epoch;
	int64_t trust_until;     /* mono ms */
};

/* A lease won by a round. */
struct won {
	char *name;
	int64_t epoch;
	int failures;
	int64_t next_attempt_at;
};

struct round {
	struct cluster *c;       /* NULL once abandoned */
	int64_t t0;              /* mono ms at submission */
	int64_t lease_ms, started_at;
	char **want;             /* to claim: wanted and not held */
	size_t nwant;
	char **all;              /* every name wanted (their rows must exist) */
	size_t nall;
	struct store_fence *held;
	size_t nheld;
	bool *renewed;
	struct store_fence *release;
	size_t nrelease;
	struct won *won;
	size_t nwon;
	struct cluster_view view;
	char **holds;            /* endpoints held, when holds_read */
	size_t nholds;
	bool holds_read;
	int r;
	char error[320];
	char holds_error[320];
};

struct cluster {
	struct cluster_env env;
	char **want;
	size_t nwant;
	struct held *held;
	size_t nheld;
	struct store_fence *release; /* held, no longer wanted: give back (names owned) */
	size_t nrelease;
	struct event *tick_ev, *trust_ev;
	struct round *round;
	bool started, stopped, reachable, told;
	bool stopping;                /* cluster_stop waits for the round in flight */
	bool holds_unread;            /* the last round could not read the holds (logged) */
	char error[320];
	struct cluster_view view;
};

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static char **strv_dup(const char *const *v, size_t n)
{
	char **out = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		out[i] = xstrdup(v[i]);
	return out;
}

static void view_free(struct cluster_view *v)
{
	for (size_t i = 0; i < v->nnodes; i++)
		free(v->nodes[i].name);
	for (size_t i = 0; i < v->nleases; i++) {
		free(v->leases[i].name);
		free(v->leases[i].owner);
	}
	free(v->nodes);
	free(v->leases);
	*v = (struct cluster_view){ 0 };
}

static void fences_free(struct store_fence *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free((char *)f[i].lease);
	free(f);
}

static int64_t margin_ms(int64_t lease_ms)
{
	int64_t m = lease_ms / 5;
	return m < MARGIN_MIN_MS ? MARGIN_MIN_MS : m;
}

static struct held *held_find(struct cluster *c, const char *name)
{
	for (size_t i = 0; i < c->nheld; i++)
		if (strcmp(c->held[i].name, name) == 0)
			return &c->held[i];
	return NULL;
}

static void held_drop(struct cluster *c, struct held *h)
{
	free(h->name);
	*h = c->held[--c->nheld];
}

static bool wanted(const struct cluster *c, const char *name)
{
	for (size_t i = 0; i < c->nwant; i++)
		if (strcmp(c->want[i], name) == 0)
			return true;
	return false;
}

/* ---- the round, off the loop --------------------------------------------- */

static int take_won(const struct store_lease *l, void *arg)
{
	struct round *rd = arg;
	rd->won = xrealloc(rd->won, (rd->nwon + 1) * sizeof(*rd->won));
	rd->won[rd->nwon++] = (struct won){ xstrdup(l->name), l->epoch, l->failures,
					    l->next_attempt_at };
	return 0;
}

static int take_lease(const struct store_lease *l, void *arg)
{
	struct cluster_view *v = arg;
	v->leases = xrealloc(v->leases, (v->nleases + 1) * sizeof(*v->leases));
	v->leases[v->nleases++] = (struct cluster_lease){
		xstrdup(l->name), xstrdup_or_null(l->owner), l->epoch, l->expires_in_ms
	};
	return 0;
}

static int take_node(const struct store_node *n, void *arg)
{
	struct cluster_view *v = arg;
	v->nodes = xrealloc(v->nodes, (v->nnodes + 1) * sizeof(*v->nodes));
	v->nodes[v->nnodes++] = (struct cluster_node){ xstrdup(n->name), n->seen_ago_ms,
						       n->started_at, n->pid };
	return 0;
}

/* The holds last: the leases are what must not wait, and a failure to read
 * them leaves the endpoints as they are rather than failing the round (its
 * renewals are in, and their trust would be thrown away). */
static void read_holds(struct store *view, struct round *rd)
{
	if (store_holds_copy(view, &rd->holds, &rd->nholds) >= 0) {
		rd->holds_read = true;
		return;
	}
	str_copy(rd->holds_error, store_last_error(view), sizeof(rd->holds_error));
}

static void round_work(struct store *view, void *arg)
{
	struct round *rd = arg;
	int r = store_node_beat(view, rd->started_at, rd->lease_ms,
				(const char *const *)rd->all, rd->nall);
	if (r >= 0 && rd->nrelease)
		r = store_lease_release(view, rd->release, rd->nrelease);
	if (r >= 0)
		r = store_lease_renew(view, rd->held, rd->nheld, rd->lease_ms, rd->renewed);
	if (r >= 0)
		r = store_lease_claim(view, (const char *const *)rd->want, rd->nwant, rd->lease_ms,
				      rd->nwant, take_won, rd);
	if (r >= 0)
		r = store_leases(view, take_lease, &rd->view);
	if (r >= 0)
		r = store_nodes(view, take_node, &rd->view);
	rd->r = r < 0 ? r : 0;
	if (r < 0)
		str_copy(rd->error, store_last_error(view), sizeof(rd->error));
	else
		read_holds(view, rd);
}

static void round_free(struct round *rd)
{
	strv_free(rd->want, rd->nwant);
	strv_free(rd->all, rd->nall);
	fences_free(rd->held, rd->nheld);
	fences_free(rd->release, rd->nrelease);
	free(rd->renewed);
	for (size_t i = 0; i < rd->nwon; i++)
		free(rd->won[i].name);
	free(rd->won);
	view_free(&rd->view);
	strv_free(rd->holds, rd->nholds);
	free(rd);
}

/* ---- the loop ------------------------------------------------------------ */

static void arm_trust(struct cluster *c)
{
	int64_t soonest = INT64_MAX;
	for (size_t i = 0; i < c->nheld; i++)
		if (c->held[i].trust_until < soonest)
			soonest = c->held[i].trust_until;
	event_del(c->trust_ev);
	if (soonest == INT64_MAX)
		return;
	int64_t ms = soonest - clock_mono_ms();
	if (ms < 0)
		ms = 0;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	event_add(c->trust_ev, &tv);
}

static void lose(struct cluster *c, struct held *h, const char *why)
{
	char *name = TAKE_PTR(h->name);
	int64_t epoch = h->epoch;
	*h = c->held[--c->nheld];
	log_warn("event=lease-lost lease=%s epoch=%lld node=%s reason=%s", name, (long long)epoch,
		 store_node_name(c->env.store), why);
	if (c->env.lost)
		c->env.lost(c->env.ctx, name, epoch);
	free(name);
}

/* Leases whose trust deadline passed without a renewal are lost: this node
 * may have been paused, or the database unreachable, for too long. */
static void on_trust(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *c = arg;
	int64_t now = clock_mono_ms();
	for (size_t i = 0; i < c->nheld;) {
		if (c->held[i].trust_until <= now)
			lose(c, &c->held[i], "not-renewed-in-time");
		else
			i++;
	}
	arm_trust(c);
}

static void set_reachable(struct cluster *c, bool ok, const char *error)
{
	if (ok == c->reachable && c->told)
		return;
	if (!ok)
		log_err("event=database-unreachable node=%s error=\"%s\" state=leases-expire",
			store_node_name(c->env.store), error);
	else if (c->told)
		log_notice("event=database-reachable node=%s", store_node_name(c->env.store));
	c->reachable = ok;
	c->told = true;
	if (c->env.reachable)
		c->env.reachable(c->env.ctx, ok, error);
}

static void apply_renewals(struct cluster *c, struct round *rd, int64_t trust_until)
{
	for (size_t i = 0; i < rd->nheld; i++) {
		struct held *h = held_find(c, rd->held[i].lease);
		if (!h || h->epoch != rd->held[i].epoch)
			continue; /* dropped by the clock meanwhile: claimed again later */
		if (!rd->renewed[i]) {
			lose(c, h, "taken-or-expired");
			continue;
		}
		h->trust_until = trust_until;
		if (c->env.renewed)
			c->env.renewed(c->env.ctx, h->name, h->epoch, trust_until);
	}
}

static void apply_claims(struct cluster *c, struct round *rd, int64_t trust_until)
{
	for (size_t i = 0; i < rd->nwon; i++) {
		const struct won *w = &rd->won[i];
		if (held_find(c, w->name))
			continue; /* cannot happen: only names not held were claimed */
		c->held = xrealloc(c->held, (c->nheld + 1) * sizeof(*c->held));
		c->held[c->nheld++] = (struct held){ xstrdup(w->name), w->epoch, trust_until };
		log_notice("event=lease-acquired lease=%s epoch=%lld node=%s", w->name,
			   (long long)w->epoch, store_node_name(c->env.store));
		struct store_lease l = { .name = w->name, .owner = store_node_name(c->env.store),
					 .epoch = w->epoch, .failures = w->failures,
					 .next_attempt_at = w->next_attempt_at };
		if (!wanted(c, w->name)) { /* unwanted meanwhile (a reload): give it back */
			c->release = xrealloc(c->release, (c->nrelease + 1) * sizeof(*c->release));
			c->release[c->nrelease++] = (struct store_fence){ xstrdup(w->name), w->epoch };
			held_drop(c, &c->held[c->nheld - 1]);
			continue;
		}
		if (c->env.acquired)
			c->env.acquired(c->env.ctx, &l, trust_until);
	}
}

/* Holds come before the leases of the same round, so an endpoint won while
 * an operator holds it is held before it may start a batch. A failure is
 * logged once until a round reads them again. */
static void tell_holds(struct cluster *c, struct round *rd)
{
	if (!rd->holds_read) {
		if (!c->holds_unread)
			log_warn("event=holds-unread node=%s error=\"%s\" state=holds-as-before",
				 store_node_name(c->env.store), rd->holds_error);
		c->holds_unread = true;
		return;
	}
	c->holds_unread = false;
	if (c->env.holds)
		c->env.holds(c->env.ctx, (const char *const *)rd->holds, rd->nholds, rd->t0);
}

static void round_done(void *arg)
{
	struct round *rd = arg;
	struct cluster *c = rd->c;
	if (!c) { /* abandoned by cluster_free */
		round_free(rd);
		return;
	}
	c->round = NULL;
	if (c->stopping) {
		/* won as the node stops: given back with the rest, not taken up
		 * (else they would stay this node's until they expire, and a
		 * restart or another node would wait a lease for them) */
		for (size_t i = 0; !c->stopped && i < rd->nwon; i++) {
			c->release = xrealloc(c->release, (c->nrelease + 1) * sizeof(*c->release));
			c->release[c->nrelease++] =
				(struct store_fence){ xstrdup(rd->won[i].name), rd->won[i].epoch };
		}
		round_free(rd);
		return;
	}
	if (rd->r < 0) {
		str_copy(c->error, rd->error, sizeof(c->error));
		set_reachable(c, false, c->error);
		round_free(rd);
		return; /* releases stay to do; trust runs out by the clock */
	}
	fences_free(c->release, c->nrelease);
	c->release = NULL;
	c->nrelease = 0;
	c->error[0] = '\0';
	set_reachable(c, true, "");
	int64_t trust_until = rd->t0 + rd->lease_ms - margin_ms(rd->lease_ms);
	tell_holds(c, rd);
	apply_renewals(c, rd, trust_until);
	apply_claims(c, rd, trust_until);
	view_free(&c->view);
	c->view = rd->view;
	c->view.at = clock_mono_ms();
	rd->view = (struct cluster_view){ 0 };
	round_free(rd);
	arm_trust(c);
}

static struct round *round_new(struct cluster *c)
{
	struct round *rd = xcalloc(1, sizeof(*rd));
	rd->c = c;
	rd->t0 = clock_mono_ms();
	rd->lease_ms = c->env.lease_ms;
	rd->started_at = c->env.started_at;
	rd->all = strv_dup((const char *const *)c->want, c->nwant);
	rd->nall = c->nwant;
	rd->want = xcalloc(c->nwant + 1, sizeof(char *));
	for (size_t i = 0; i < c->nwant; i++)
		if (!held_find(c, c->want[i]))
			rd->want[rd->nwant++] = xstrdup(c->want[i]);
	rd->held = xcalloc(c->nheld + 1, sizeof(*rd->held));
	rd->renewed = xcalloc(c->nheld + 1, sizeof(bool));
	for (size_t i = 0; i < c->nheld; i++)
		rd->held[i] = (struct store_fence){ xstrdup(c->held[i].name), c->held[i].epoch };
	rd->nheld = c->nheld;
	rd->release = xcalloc(c->nrelease + 1, sizeof(*rd->release));
	for (size_t i = 0; i < c->nrelease; i++)
		rd->release[i] = (struct store_fence){ xstrdup(c->release[i].lease),
						       c->release[i].epoch };
	rd->nrelease = c->nrelease;
	return rd;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *c = arg;
	if (c->round || c->stopped)
		return; /* the last one is still out: its answer or the clock decides */
	c->round = round_new(c);
	store_run(c->env.store, STORE_LANE_LEASE, round_work, round_done, c->round);
}

struct cluster *cluster_new(const struct cluster_env *env)
{
	struct cluster *c = xcalloc(1, sizeof(*c));
	c->env = *env;
	c->reachable = true;
	c->tick_ev = event_new(env->base, -1, EV_PERSIST, on_tick, c);
	c->trust_ev = event_new(env->base, -1, 0, on_trust, c);
	return c;
}

void cluster_free(struct cluster *c)
{
	if (!c)
		return;
	if (c->round)
		c->round->c = NULL; /* its completion frees it, if it ever comes */
	event_free(c->tick_ev);
	event_free(c->trust_ev);
	strv_free(c->want, c->nwant);
	for (size_t i = 0; i < c->nheld; i++)
		free(c->held[i].name);
	free(c->held);
	fences_free(c->release, c->nrelease);
	view_free(&c->view);
	free(c);
}

void cluster_want(struct cluster *c, const char *const *names, size_t n)
{
	strv_free(c->want, c->nwant);
	c->want = strv_dup(names, n);
	c->nwant = n;
	for (size_t i = 0; i < c->nheld;) {
		struct held *h = &c->held[i];
		if (wanted(c, h->name)) {
			i++;
			continue;
		}
		c->release = xrealloc(c->release, (c->nrelease + 1) * sizeof(*c->release));
		c->release[c->nrelease++] = (struct store_fence){ xstrdup(h->name), h->epoch };
		lose(c, h, "no-longer-configured");
	}
	arm_trust(c);
}

void cluster_start(struct cluster *c)
{
	int64_t ms = c->env.lease_ms / 3;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	c->started = true;
	event_add(c->tick_ev, &tv);
	on_tick(-1, 0, c);
}

bool cluster_holds(const struct cluster *c, const char *name, int64_t *epoch)
{
	for (size_t i = 0; i < c->nheld; i++) {
		const struct held *h = &c->held[i];
		if (strcmp(h->name, name) != 0)
			continue;
		if (clock_mono_ms() >= h->trust_until)
			return false;
		if (epoch)
			*epoch = h->epoch;
		return true;
	}
	return false;
}

size_t cluster_held(const struct cluster *c)
{
	return c->nheld;
}

bool cluster_reachable(const struct cluster *c)
{
	return c->reachable;
}

const char *cluster_error(const struct cluster *c)
{
	return c->error;
}

const struct cluster_view *cluster_view(const struct cluster *c)
{
	return &c->view;
}

void cluster_stop(struct cluster *c)
{
	if (c->stopped)
		return;
	c->stopping = true;
	event_del(c->tick_ev);
	event_del(c->trust_ev);
	/* a round in flight may win leases: they are released with the rest */
	if (c->round && store_drain(c->env.store, ROUND_DRAIN_MS) < 0)
		log_warn("event=lease-round-abandoned node=%s state=its-leases-expire",
			 store_node_name(c->env.store));
	c->stopped = true;
	struct store_fence *f = xcalloc(c->nheld + c->nrelease + 1, sizeof(*f));
	size_t n = 0;
	for (size_t i = 0; i < c->nrelease; i++)
		f[n++] = (struct store_fence){ xstrdup(c->release[i].lease), c->release[i].epoch };
	while (c->nheld > 0) {
		struct held *h = &c->held[c->nheld - 1];
		f[n++] = (struct store_fence){ xstrdup(h->name), h->epoch };
		lose(c, h, "stopping");
	}
	/* the loop's handle: bounded; if it fails, the leases simply expire */
	int r = n ? store_lease_release(c->env.store, f, n) : 0;
	if (r < 0)
		log_warn("event=lease-release-failed node=%s error=\"%s\" state=expire-instead",
			 store_node_name(c->env.store), store_last_error(c->env.store));
	else if (n)
		log_notice("event=leases-released node=%s count=%d", store_node_name(c->env.store), r);
	fences_free(f, n);
	/* a restart under this name need not wait for the row to go quiet */
	if (store_node_leave(c->env.store, c->env.started_at) < 0)
		log_warn("event=node-leave-failed node=%s error=\"%s\" state=row-goes-quiet-instead",
			 store_node_name(c->env.store), store_last_error(c->env.store));
}
