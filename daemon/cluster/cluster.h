/*
 * cluster.h - several daemons on one database (a server store): this
 * node's heartbeat and the leases it holds.
 *
 * Every lease/3 a round runs on the store's lease lane: beat (this node is
 * alive; the wanted lease rows exist), renew what is held, claim what is
 * wanted and free (a new epoch), read every node and lease for the
 * operators, and read the holds. The wiring is told when a lease is
 * acquired (with the backoff its last holder left), renewed, or lost, and
 * which endpoints operators hold: a hold given on any node reaches every
 * node within a round.
 *
 * Trust. A lease is trusted until the start of the round that last renewed
 * it plus the lease, minus a margin: the server's expiry is later than
 * that whatever the round's delays, so this node stops using a lease
 * before any other node can have claimed it. A node paused or cut off from
 * the database past that point loses its leases by the clock, without
 * hearing from the server (a timer; the holders also check the deadline
 * before they start work). Work already under way finishes; its writes
 * carry the old epoch and change nothing once another node holds it.
 */
#ifndef EDIBROKER_CLUSTER_H
#define EDIBROKER_CLUSTER_H

#include "store/store.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cluster;

struct cluster_env {
	struct event_base *base;
	struct store *store;         /* a server store (store_async) */
	int64_t lease_ms;            /* the lease's length ([store] lease) */
	int64_t started_at;          /* wall ms: this process's start (the node row) */
	/* This node now holds l (its new epoch, the backoff its last holder
	 * left); work under it may start until trust_until (mono ms). */
	void (*acquired)(void *ctx, const struct store_lease *l, int64_t trust_until);
	/* Still held at epoch; trusted until trust_until. */
	void (*renewed)(void *ctx, const char *name, int64_t epoch, int64_t trust_until);
	/* Gone: not renewed in time, or another node holds it now. */
	void (*lost)(void *ctx, const char *name, int64_t epoch);
	/* The endpoints held in the store (held[0..n), valid during the call),
	 * as a round read them after read_from (mono ms, the round's start):
	 * an operator's change on this node since then may not be in it yet.
	 * Told after every round that read them, before its leases are. */
	void (*holds)(void *ctx, const char *const *held, size_t n, int64_t read_from);
	/* The database answered a round (ok) or did not (error says why). */
	void (*reachable)(void *ctx, bool ok, const char *error);
	void *ctx;
};

/* What the last round saw: every node and lease (operators' status). */
struct cluster_node {
	char *name;
	int64_t seen_ago_ms;
	int64_t started_at;
	int64_t pid;
};

struct cluster_lease {
	char *name;
	char *owner;                 /* NULL: free */
	int64_t epoch;
	int64_t expires_in_ms;       /* <= 0: expired */
};

struct cluster_view {
	struct cluster_node *nodes;
	size_t nnodes;
	struct cluster_lease *leases;
	size_t nleases;
	int64_t at;                  /* mono ms of the round; 0 = none yet */
};

/* A new cluster member; nothing happens before cluster_start(). */
struct cluster *cluster_new(const struct cluster_env *env);
/* Stops the rounds and frees (a round in flight is abandoned). Accepts NULL. */
void cluster_free(struct cluster *c);
/* The leases this node may hold ("ep:NAME", "in:NAME", "procedure"); a
 * lease held and no longer wanted is lost (told) and released at the next
 * round. names is copied. */
void cluster_want(struct cluster *c, const char *const *names, size_t n);
/* Runs the first round now, then every lease/3. */
void cluster_start(struct cluster *c);
/* True when this node holds name and still trusts it; its epoch in *epoch. */
bool cluster_holds(const struct cluster *c, const char *name, int64_t *epoch);
/* Leases held now. */
size_t cluster_held(const struct cluster *c);
/* False while rounds fail (the database cannot be reached). */
bool cluster_reachable(const struct cluster *c);
/* Why the last round failed ("" when it did not). */
const char *cluster_error(const struct cluster *c);
const struct cluster_view *cluster_view(const struct cluster *c);
/* An orderly stop: no more rounds; every lease held is lost (told) and
 * given back to the database at once, so others need not wait for it to
 * expire. Waits for the answer at most the store's loop wait. */
void cluster_stop(struct cluster *c);

#endif
