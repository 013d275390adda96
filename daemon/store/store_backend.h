/*
 * store_backend.h - what a store backend implements: the table of
 * primitives behind the store front end (store.h).
 *
 * Included by store.c, which alone calls through the table, by the
 * backends (store_sqlite.c) and by test doubles and tests of a backend's
 * own contract. Everyone else uses the store_...() functions of store.h,
 * so timing, metrics and the later switch to an asynchronous backend
 * happen in one place.
 *
 * Every function returns 0 (or a count) or a negative errno: -ENOSPC disk
 * full, -EIO I/O error, -EBUSY locked, -EBADMSG corrupt, -EROFS opened
 * read-only, -ENOSYS not implemented by this backend. last_error()
 * describes the most recent failure; last_error(NULL) why the most recent
 * open() failed (*be untouched then). Row callbacks follow store.h.
 */
#ifndef EDIBROKER_STORE_BACKEND_H
#define EDIBROKER_STORE_BACKEND_H

#include "store/store.h"

/* The message an ingest token was recorded with, as it is now: a replay
 * gets its answer from it (store.c). */
struct store_token_seen {
	int64_t msg_id;
	enum msg_state state;   /* MSG_DELIVERED when the row was pruned */
	char reason[320];       /* MSG_DEAD: its reason, else "" */
};

struct store_backend_ops {
	const char *name;
	int (*open)(const char *state_dir, const struct store_options *opt, void **be);
	/* Optional (server backends): another handle on the same database for
	 * another thread, its calls bounded by wait_ms each; connects lazily,
	 * so it fails only for lack of memory. Closed with close(). */
	int (*connect)(void *be, int64_t wait_ms, void **out);
	/* Ids come in commit order (one writer): readers may page by id. */
	bool ids_in_commit_order;
	void (*close)(void *be);
	const char *(*last_error)(void *be);
	/* Random id of this store (8 lowercase hex chars), made when it was created. */
	const char *(*instance)(void *be);

	/* Optional: 0 when the backend can reach its database now (an empty
	 * store_commit() asks this: the group commit's health check). */
	int (*ping)(void *be);
	/* One batch (store_commit) is one transaction: begin, key_* / msg_* /
	 * event_add, commit or rollback. An operator's action on one message
	 * (store_requeued, store_delete, store_resend, store_hold) is one too,
	 * made of the "inside a transaction" primitives below. */
	int (*begin)(void *be);
	int (*commit)(void *be);
	void (*rollback)(void *be);
	/* Optional, after begin: the batch about to be applied, so a server
	 * backend can look up all its keys, txids and tokens in one round trip
	 * and pipeline the writes. Lookups must still answer as if each item
	 * had been committed in turn; a conflict found only at commit (another
	 * writer was first) makes commit() fail with -EEXIST. */
	int (*batch_prepare)(void *be, const struct store_batch *b);
	/* Optional: the marks that follow (msg_delivered, msg_attempt,
	 * msg_refused) change a row only while f holds; NULL: unfenced. */
	int (*mark_fence)(void *be, const struct store_fence *f);
	/* Optional: ingest tokens (store_new.token). lookup: 1 and *first
	 * when known, 0 when not. insert: records token for first->msg_id;
	 * first's state and reason are what a lookup in the same transaction
	 * answers (a backend that buffers its writes); -EEXIST when known.
	 * Pruned by prune() on the history clock, like the letter keys. */
	int (*token_lookup)(void *be, const char *token, struct store_token_seen *first);
	int (*token_insert)(void *be, const char *token, const struct store_token_seen *first,
			    int64_t now);

	/* 1 and *msg_id when the key is known, 0 when not. */
	int (*key_lookup)(void *be, const struct store_key *key, int64_t *msg_id);
	/* -EEXIST when the key is already recorded (another writer was first). */
	int (*key_insert)(void *be, const struct store_key *key, int64_t msg_id, int64_t now);
	/* 1 when (scope, sender, id) is known, with its digest (*len bytes,
	 * into digest[STORE_DIGEST_MAX]) and *msg_id; 0 when not. */
	int (*txid_lookup)(void *be, const struct store_txid *t, uint8_t *digest, size_t *len,
			   int64_t *msg_id);
	/* -EEXIST when (scope, sender, id) is already recorded. */
	int (*txid_insert)(void *be, const struct store_txid *t, int64_t msg_id, int64_t now);
	/* Inserts m in state QUEUED (endpoint set) or DEAD (endpoint NULL);
	 * a queued one with ack_requested in ACK_PENDING, any other in
	 * ACK_NONE. */
	int (*msg_insert)(void *be, const struct store_new *m, int64_t *id);
	/* Only a QUEUED message changes: 1 when it did, 0 when id is not queued
	 * (already delivered, dead or unknown), so a retried mark is harmless.
	 * ACK_PENDING becomes ACK_AWAITING with it. */
	int (*msg_delivered)(void *be, int64_t id, int64_t at);
	int (*msg_attempt)(void *be, int64_t id, const char *error);
	/* A queued message the receiver refused becomes DEAD with reason (and
	 * ACK_NONE); 1 when it did, 0 when id is not queued (a retried mark). */
	int (*msg_refused)(void *be, int64_t id, const char *reason);
	/* Appends e to the history (store_event); inside a transaction. */
	int (*event_add)(void *be, const struct store_event *e);
	/* Inside a transaction: moves message id from state `from` to `to`,
	 * dropping its body (removed_at = now): 1 when it did, 0 when id is not
	 * in state from. */
	int (*msg_state)(void *be, int64_t id, enum msg_state from, enum msg_state to, int64_t now);
	/* Inside a transaction: inserts a queued copy of message id and its body
	 * (received_at = now, no attempts), its id into *new_id; -ENOENT when id
	 * has no body or no endpoint. */
	int (*msg_copy)(void *be, int64_t id, int64_t now, int64_t *new_id);
	/* Inside a transaction: records endpoint held (at, by) or not; 1 when
	 * that changed something, 0 when it already was so. */
	int (*hold_set)(void *be, const char *endpoint, bool held, int64_t at, const char *by);
	/* 1 and *msg_id: the newest message whose sender and envelope_id are
	 * these and that is tracked (ack != ACK_NONE); 0 when none. */
	int (*envelope_lookup)(void *be, const char *sender, const char *envelope_id,
			       int64_t *msg_id);
	/* Sets message id's tracking to ack, with the acknowledgement's
	 * message id, time and code (NULL: none); 1 when id exists, 0 not. */
	int (*ack_set)(void *be, int64_t id, enum msg_ack ack, int64_t ack_msg, int64_t at,
		       const char *code);

	/* The queries and record saves of the same name in store.h, with the
	 * same contracts. Record saves are never called inside begin/commit. */
	int (*fetch_queued)(void *be, const char *endpoint, int64_t after_id, const int64_t *except,
			    size_t nexcept, size_t limit, store_msg_cb cb, void *arg);
	int (*depths)(void *be, store_depth_cb cb, void *arg);
	int (*list)(void *be, enum msg_state state, const char *endpoint, size_t limit,
		    store_msg_cb cb, void *arg);
	int (*get)(void *be, int64_t id, bool with_body, store_msg_cb cb, void *arg);
	int (*count)(void *be, enum msg_state state, int64_t *n);
	int (*ack_list)(void *be, enum msg_ack ack, const char *endpoint,
			int64_t delivered_before, size_t limit, store_msg_cb cb, void *arg);
	int (*ack_overdue)(void *be, int64_t delivered_before, store_tally_cb cb, void *arg);
	int (*prune)(void *be, int64_t body_before, int64_t history_before, size_t limit);
	int (*quarantine_add)(void *be, struct store_quarantined *q, size_t n);
	int (*dead_expire)(void *be, int64_t before, int64_t now, size_t limit);
	int (*quarantine_expired)(void *be, int64_t before, int64_t after_at, int64_t after_id,
				  size_t limit, store_msg_cb cb, void *arg);
	int (*quarantine_removed)(void *be, const int64_t *ids, size_t n, int64_t now);
	int (*keep)(void *be, int64_t id, bool keep);
	int (*events)(void *be, int64_t id, store_event_cb cb, void *arg);
	int (*find)(void *be, enum store_find by, const char *key, size_t limit, store_id_cb cb,
		    void *arg);
	int (*holds)(void *be, store_hold_cb cb, void *arg);
	int (*size)(void *be, int64_t *bytes);

	int (*outage_save)(void *be, struct outage *o);
	int (*outage_list)(void *be, int64_t closed_since, size_t limit, store_outage_cb cb,
			   void *arg);
	int (*outage_get)(void *be, int64_t id, store_outage_cb cb, void *arg);
	int (*notice_save)(void *be, struct notice_record *n);
	int (*notice_list)(void *be, int64_t outage_id, int64_t maintenance_id, store_notice_cb cb,
			   void *arg);
	int (*notice_pending)(void *be, store_notice_cb cb, void *arg);
	int (*send_record)(void *be, const struct store_send *s);
	int (*send_list)(void *be, int64_t notice_id, store_send_cb cb, void *arg);
	int (*maintenance_save)(void *be, struct maint *m);
	int (*maintenance_list)(void *be, bool removed, store_maintenance_cb cb, void *arg);
	int (*queue_summary)(void *be, const char *endpoint, store_summary_cb cb, void *arg);
	int (*partners)(void *be, const char *endpoint, store_name_cb cb, void *arg);
	int (*schema_version)(void *be, int64_t *have, int64_t *want);

	/* Optional (server backends): nodes, leases and observations, with the
	 * contracts of store.h; the node is the one named at open. NULL ->
	 * the front end answers -ENOSYS. */
	int (*node_beat)(void *be, int64_t started_at, int64_t ttl_ms, const char *const *names,
			 size_t n);
	int (*lease_renew)(void *be, const struct store_fence *held, size_t n, int64_t ttl_ms,
			   bool *renewed);
	int (*lease_claim)(void *be, const char *const *names, size_t n, int64_t ttl_ms,
			   size_t limit, store_lease_cb cb, void *arg);
	int (*lease_release)(void *be, const struct store_fence *held, size_t n);
	int (*node_leave)(void *be, int64_t started_at);
	int (*leases)(void *be, store_lease_cb cb, void *arg);
	int (*nodes)(void *be, store_node_cb cb, void *arg);
	int (*lease_backoff)(void *be, const struct store_fence *f, int failures,
			     int64_t next_attempt_at);
	int (*observation_add)(void *be, const struct store_observation *o);
	int (*observations_take)(void *be, size_t limit, store_observation_cb cb, void *arg);
	/* Optional: record saves from now on are fenced by f (copied; NULL = off). */
	void (*fence_records)(void *be, const struct store_fence *f);
	const char *(*node)(void *be);
};

/* Opens the store on the backend ops (a test double, or a registered one
 * picked by store_open()); like store_open() otherwise. */
struct store *store_open_backend(const struct store_backend_ops *ops, const char *state_dir,
				 const struct store_options *opt, char *err, size_t errlen);

/* The handle of s's backend when s runs on ops, else NULL: for a backend's
 * own diagnostics that take a struct store (store_sqlite_pragma). */
void *store_backend_handle(struct store *s, const struct store_backend_ops *ops);

#endif
