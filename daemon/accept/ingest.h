/*
 * ingest.h - the accept path shared by every inbound transport:
 * decode -> route -> group commit -> tell the source.
 *
 * A transport hands over the raw bytes of one message and learns, after the
 * commit, what became of it:
 *   ACCEPTED   committed and queued for its endpoint: the source may now
 *              forget its copy (unlink the inbox file, send a 2xx, ...);
 *   DUPLICATE  every letter was accepted before (same sender GLN and letter
 *              id): nothing new stored; the source may forget its copy;
 *   DEAD       committed as a dead letter (unknown receiver, letters for
 *              different endpoints, partial duplicate): kept with its reason
 *              for operators; the source may forget its copy;
 *   REJECTED   could not be decoded: nothing stored except a negative
 *              receipt where the rules ask for one; the source quarantines;
 *   FORBIDDEN  it names a sender the source endpoint neither owns nor may
 *              send for (spoofing): nothing stored, no receipt, a security
 *              event logged; the source quarantines (HTTP: 403);
 *   BUSY       its endpoint's queue (or all queues together) is at its
 *              high-water mark: nothing stored; the source keeps the input
 *              and offers it again later (HTTP: 503 with Retry-After), while
 *              messages for every other endpoint flow on;
 *   TEMPFAIL   the store could not commit: the source keeps the input and
 *              tries again later.
 * A negative receipt, in the message's own format and wrapping (OIOXML: an
 * XCTL01; VANS: a NegativeVans; FHIR: a fatal-error Acknowledgement; an
 * SBDH around the receipt of what it carried), goes back to the source
 * endpoint when a receiver is unknown or a decodable envelope is refused;
 * never for a receipt, and never when the sender cannot be read.
 *
 * Every outcome is counted (metrics.h: accepted, duplicate, dead and
 * refused, by source, endpoint, type and reason).
 *
 * Identity: the store keys duplicates on the innermost letters (sender,
 * id), whatever wrapping a message came in, and checks the transmission
 * ids of its wrappings (and FHIR Bundle.id) for reuse with other content.
 *
 * What a receiver takes: a letter of a type its endpoint's `accepts` does
 * not list is DEAD, and its sender gets a negative receipt (OIOXML
 * problem_med_version, CONTRL VER, FHIR
 * MSG_RECEIVER_UNABLE_TO_RECEIVE_MSG_TYPE, a VANS NegativeVans).
 *
 * Schemas: OIOXML from a source whose `xsd` is warn or enforce is
 * validated while it is decoded (off the loop). Invalid under warn: logged,
 * accepted; under enforce: REJECTED with a negative receipt (syntaksfejl,
 * SYN, structure). A namespace without a schema passes with a warning.
 *
 * Acknowledgements: a message that asks for one is tracked by the store;
 * an acknowledgement names what it acknowledges and the store matches it
 * in the same commit. A DUPLICATE whose first copy's acknowledgement is
 * stored gets that acknowledgement again: renewed (a new envelope id, the
 * same content) on the source's lane and queued for the source, before
 * the source is told; when none is stored it is only dropped.
 */
#ifndef EDIBROKER_INGEST_H
#define EDIBROKER_INGEST_H

#include "codecs/codec.h"
#include "store/commit.h"
#include "store/store.h"
#include "accept/router.h"
#include "base/lanes.h"

#include <event2/event.h>

#include <stddef.h>
#include <stdint.h>

enum ingest_result { INGEST_ACCEPTED, INGEST_DUPLICATE, INGEST_DEAD, INGEST_REJECTED,
		     INGEST_TEMPFAIL, INGEST_FORBIDDEN, INGEST_BUSY };

/* ingest_submit flags. */
enum {
	/* The source answers refusals itself (an HTTP status, a ZeroMQ reply):
	 * no negative receipt is stored for this message. */
	INGEST_NO_RECEIPT = 1 << 0,
	/* A message routing cannot place is not stored as a dead letter: the
	 * outcome is DEAD with id 0 and the reason, and the caller keeps its
	 * copy (an operator's requeue of a dead letter or quarantined file). */
	INGEST_NO_DEAD = 1 << 1,
	/* The source cannot name the unit itself (an HTTP request, a ZeroMQ
	 * submit: no request id kept across connections): its ingest token is
	 * the source's name and a SHA-256 of the body, taken off the loop. The
	 * same bytes from the same endpoint again are a replay (store.h): they
	 * get the first copy's outcome and are stored once. */
	INGEST_BODY_TOKEN = 1 << 2,
};

/* Back-pressure: true when a message for endpoint must wait, because mine
 * bytes more in its queue, or total bytes more in all queues together,
 * would pass the high-water mark. Both count the message and the messages
 * ingest has passed that are not committed yet. */
typedef bool (*ingest_full_fn)(void *ctx, const char *endpoint, size_t mine, size_t total);

struct ingest_outcome {
	enum ingest_result result;
	int64_t id;                   /* message id (earlier id for a duplicate) */
	const char *endpoint;         /* ACCEPTED: destination */
	const char *reason;           /* DEAD / REJECTED / TEMPFAIL / FORBIDDEN / BUSY: why */
	const struct codec_error *error; /* REJECTED: the decoder's error; FORBIDDEN: the
					  * reason as an error text */
};

typedef void (*ingest_done_fn)(const struct ingest_outcome *o, void *arg);

/* Called for every message committed to an endpoint's queue; takes
 * ownership of body. type: its first letter's (for the delivered count). */
typedef void (*ingest_queued_fn)(void *ctx, const char *endpoint, int64_t id, uint8_t *body,
				 size_t size, const char *ext, const char *type,
				 int64_t received_at);

struct ingest_config {
	struct codec_limits limits;   /* limits.schemas: see schemas below */
	struct codec_schemas *schemas; /* the OIOXML schemas sources with xsd = warn or
					* enforce are validated against; NULL when no
					* endpoint asks (ingest takes a reference) */
	const char *broker_id;        /* sender id of receipts the broker issues */
	const char *broker_gln;       /* the broker's own GLN, sender of FHIR and wrapped
				       * receipts; NULL when unset (they carry broker_id) */
};

struct ingest;

/* Decodes on a lane of pool per source endpoint; commits through commit. */
struct ingest *ingest_new(struct event_base *base, struct lanes *pool, struct commit *commit,
			  ingest_queued_fn queued, void *ctx);
/* Frees ing; no submission may be in flight (ingest_inflight() == 0). */
void ingest_free(struct ingest *ing);
/* Both may change on reload; ingest takes a reference to the router and a
 * copy of the config; decode jobs already running keep the old ones. */
void ingest_set_router(struct ingest *ing, struct router *router);
void ingest_set_config(struct ingest *ing, const struct ingest_config *cfg);
/* The store a duplicate's stored acknowledgement is read from (its body,
 * to send again); NULL: duplicates are only dropped. */
void ingest_set_store(struct ingest *ing, struct store *store);
/* Asks full(ctx, endpoint, size) before committing a message to endpoint's
 * queue (NULL: never full). */
void ingest_set_backpressure(struct ingest *ing, ingest_full_fn full, void *ctx);

/* Submits one message from endpoint source; takes ownership of body. It is
 * decoded off the loop, on source's decode lane, after the messages source
 * submitted before it. done(outcome, arg) runs exactly once on the loop,
 * never from inside this call. */
void ingest_submit(struct ingest *ing, const char *source, uint8_t *body, size_t size,
		   unsigned flags, ingest_done_fn done, void *arg);

/* The same, for a unit the source can name again after a restart or a
 * lost answer (a spool file by its identity, a request id): token goes to
 * the store with the message (store.h), so a replay of a unit whose commit
 * did succeed is a duplicate, not a second message. token is copied. */
void ingest_submit_unit(struct ingest *ing, const char *source, const char *token, uint8_t *body,
			size_t size, unsigned flags, ingest_done_fn done, void *arg);

/* Messages submitted and not yet completed. */
size_t ingest_inflight(const struct ingest *ing);

#endif
