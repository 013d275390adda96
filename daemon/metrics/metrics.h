/*
 * metrics.h - the daemon's counters, gauges and histograms, and their
 * Prometheus text exposition (metrics_http.h serves it).
 *
 * One process-wide registry, like the log: the subsystems that know count
 * into it where it happens (ingest: accepted, refused, dead, duplicates;
 * deliver: delivered, refused by the receiver, failures, latency; commit: commit latency and
 * failures; the outage procedure: notices sent and failed), on the event
 * loop thread only. What a scrape shows of live state (queues, endpoint
 * states, open outages) the wiring sets from memory just before rendering
 * (metrics_on_scrape); what needs the store (its size, dead letters) it
 * refreshes in housekeeping, so a scrape never waits on the store.
 *
 * Every family and its labels are fixed in metrics.c (one table, names
 * per Prometheus' rules: edibroker_ prefix, base units, _total counters,
 * _seconds histograms). Label values are bounded whatever the input: an
 * endpoint label takes the configured endpoints' names (another name
 * counts as "other"), a type label the message types of codecs/msgtypes.c
 * ("other" for the rest); the remaining labels take words from the code
 * (fault classes, channels, reasons). No id ever becomes a label.
 */
#ifndef EDIBROKER_METRICS_H
#define EDIBROKER_METRICS_H

#include <stdbool.h>
#include <stddef.h>

/* The families, in the order they are exposed. */
enum metric {
	/* counters */
	METRIC_ACCEPTED,          /* {source,endpoint,type} queued for an endpoint */
	METRIC_DELIVERED,         /* {endpoint,type} confirmed by the receiver */
	METRIC_REFUSED,           /* {source,reason} not stored: undecodable, spoofed, busy */
	METRIC_DEAD,              /* {source,reason,type} stored as dead letters */
	METRIC_DUPLICATE,         /* {source,type} dropped: every letter seen before */
	METRIC_REJECTED,          /* {endpoint,type} refused by the receiver: dead letters */
	METRIC_QUARANTINED,       /* {endpoint,error} inbound files moved to quarantine */
	METRIC_DELIVERY_FAILURES, /* {endpoint,fault} failed delivery attempts */
	METRIC_NOTICES_SENT,      /* {channel} a notice carried by a channel */
	METRIC_NOTICES_FAILED,    /* {channel} a channel's attempt that failed */
	METRIC_COMMIT_FAILURES,   /* store transactions that failed */
	METRIC_OPERATOR_ACTIONS,  /* {action} operators' changes that were made */
	/* gauges */
	METRIC_QUEUE_MESSAGES,    /* {endpoint} messages waiting */
	METRIC_QUEUE_OLDEST,      /* {endpoint} age of the oldest waiting, seconds */
	METRIC_ENDPOINT_STATE,    /* {endpoint,state} 1 for the state it is in */
	METRIC_OUTAGES_OPEN,      /* {endpoint,state} 1 for an open outage's state */
	METRIC_STORE_UP,          /* 1 while the store commits */
	METRIC_STORE_SIZE,        /* bytes (housekeeping) */
	METRIC_DEAD_LETTERS,      /* dead letters waiting for an operator (housekeeping) */
	METRIC_ACKS_OVERDUE,      /* {endpoint} acknowledgements overdue (housekeeping) */
	METRIC_START_TIME,        /* unix seconds the daemon started */
	METRIC_NODE_INFO,         /* {node} 1: this daemon's name (several daemons) */
	METRIC_DATABASE_UP,       /* 1 while the last lease round reached the database */
	METRIC_ENDPOINT_HELD,     /* {endpoint} 1 when this node holds its delivery lease */
	/* histograms */
	METRIC_COMMIT_SECONDS,    /* duration of a store transaction (group commit) */
	METRIC_DELIVERY_LATENCY,  /* {endpoint} accepted to delivered, seconds */
	METRIC__COUNT
};

/* The states edibroker_endpoint_state takes, one of them 1 at a time. */
#define METRICS_ENDPOINT_STATES { "up", "suspect", "down", "held", "maintenance" }
/* The states of an open outage in edibroker_outages_open. */
#define METRICS_OUTAGE_STATES { "open", "announced", "recovering", "resolved" }

/* Label values for one sample, one per label of the family, in its order:
 * METRIC_LABELS("a", "b"). A NULL value counts as "other" (endpoint, type)
 * or "" (a word). */
#define METRIC_LABELS(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* Adds v (>= 0) to a counter, or to a gauge. labels: NULL for a family
 * without labels. */
void metrics_add(enum metric m, double v, const char *const *labels);
/* Sets a gauge. */
void metrics_set(enum metric m, double v, const char *const *labels);
/* Records one observation in a histogram. */
void metrics_observe(enum metric m, double v, const char *const *labels);

/* The configured endpoints (start-up, reload): their names are the values
 * an endpoint or source label takes. Series of endpoints no longer in the
 * list are dropped. */
void metrics_set_endpoints(const char *const *names, size_t n);
/* type when codecs/msgtypes.c knows it, else "other". */
const char *metrics_type(const char *type);

/* fn(ctx) runs before every rendering, on the loop: set the live gauges. */
void metrics_on_scrape(void (*fn)(void *ctx), void *ctx);
/* The exposition (text format 0.0.4) of every family; the caller frees it. */
char *metrics_render(size_t *len);
/* The exposition's Content-Type. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Forgets every series, endpoint and scrape hook (tests; the end of the
 * process). */
void metrics_reset(void);

#endif
