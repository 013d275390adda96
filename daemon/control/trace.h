/*
 * trace.h - a message's whole history as JSON, for `edibrokerctl trace`:
 * where it came from and when, where it was routed (or why it is a dead
 * letter, or why its file was quarantined), every failed attempt with its
 * fault, its delivery, duplicates that arrived later, the receipts the
 * broker issued for it, and what operators did to it (requeue, resend,
 * delete), in time order.
 *
 * Built from the store: the message's row, its events and the receipts
 * that refer to its envelope. Carries ids, names, GLNs, types, times and
 * reasons - never content.
 */
#ifndef EDIBROKER_TRACE_H
#define EDIBROKER_TRACE_H

#include "store/store.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Most messages one look-up traces (an envelope id reused by a sender). */
#define TRACE_MAX 50

/* The trace of message id. NULL with a reason in err when there is none
 * or the store fails. */
json_t *trace_message(struct store *s, int64_t id, char *err, size_t errlen);
/* The traces of the messages key names (store_find), oldest first, at
 * most TRACE_MAX: an array, empty when none. NULL with a reason in err
 * when the store fails. */
json_t *trace_find(struct store *s, enum store_find by, const char *key, char *err,
		   size_t errlen);

/* "queued", "delivered", "dead", "quarantined", "requeued", "deleted". */
const char *trace_state_name(enum msg_state st);

#endif
