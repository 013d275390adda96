/*
 * metrics.c - the registry of metrics.h: one table of families (name,
 * help, type, labels, buckets), their series in memory, and the text
 * exposition.
 *
 * A series is one combination of label values, found by a hash of the
 * values joined (FNV-1a, open addressing over the family's array), so
 * counting on the hot path is a few string compares and no allocation
 * once the series exists. Values are bounded as metrics.h says, so the
 * number of series is too: endpoints x types x words from the code.
 * Rendering sorts each family's series by their values, so two scrapes of
 * the same state read the same. Everything runs on the loop thread; there
 * is no lock.
 */
#include "metrics/metrics.h"

#include "base/strset.h"
#include "codecs/base/mem.h"
#include "codecs/base/strbuf.h"
#include "codecs/msgtypes.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAX_LABELS 3
#define VALUE_MAX 64   /* bytes of a label value kept (endpoint names are <= 64) */

enum kind { COUNTER, GAUGE, HISTOGRAM };

/* Where a label's values come from (metrics.h). */
enum label_kind { L_ENDPOINT, L_TYPE, L_WORD };

struct family_def {
	const char *name;
	const char *help;
	enum kind kind;
	const char *labels[MAX_LABELS];
	enum label_kind lkinds[MAX_LABELS];
	const double *buckets; /* histograms: upper bounds, ascending */
	size_t nbuckets;
};

/* From a fraction of a second (a spool on local disk) to a day (a backlog
 * after a long outage). */
static const double latency_buckets[] = { 0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600,
					  7200, 14400, 43200, 86400 };
/* One fsync on a healthy disk is a few ms; seconds mean a stalling disk. */
static const double commit_buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
					 0.5, 1, 2.5, 5, 10 };

#define EP L_ENDPOINT
#define TY L_TYPE
#define WD L_WORD

static const struct family_def defs[METRIC__COUNT] = {
	[METRIC_ACCEPTED] = { "edibroker_messages_accepted_total",
			      "Messages accepted (stored durably) and queued for an endpoint.",
			      COUNTER, { "source", "endpoint", "type" }, { EP, EP, TY } },
	[METRIC_DELIVERED] = { "edibroker_messages_delivered_total",
			       "Messages delivered to an endpoint and confirmed by it.", COUNTER,
			       { "endpoint", "type" }, { EP, TY } },
	[METRIC_REFUSED] = { "edibroker_messages_refused_total",
			     "Messages not accepted, by reason: a decoding error class, sender "
			     "(spoofing), busy (queue full) or store (could not commit).",
			     COUNTER, { "source", "reason" }, { EP, WD } },
	[METRIC_DEAD] = { "edibroker_messages_dead_total",
			  "Messages stored as dead letters, by reason and message type.", COUNTER,
			  { "source", "reason", "type" }, { EP, WD, TY } },
	[METRIC_DUPLICATE] = { "edibroker_messages_duplicate_total",
			       "Messages dropped because every letter was accepted before.",
			       COUNTER, { "source", "type" }, { EP, TY } },
	[METRIC_REJECTED] = { "edibroker_messages_rejected_total",
			      "Messages the receiver refused for what they are (each became a "
			      "dead letter).",
			      COUNTER, { "endpoint", "type" }, { EP, TY } },
	[METRIC_QUARANTINED] = { "edibroker_files_quarantined_total",
				 "Inbound files moved to quarantine, by error class.", COUNTER,
				 { "endpoint", "error" }, { EP, WD } },
	[METRIC_DELIVERY_FAILURES] = { "edibroker_delivery_failures_total",
				       "Failed delivery attempts, by fault class.", COUNTER,
				       { "endpoint", "fault" }, { EP, WD } },
	[METRIC_NOTICES_SENT] = { "edibroker_notices_sent_total",
				  "Outage notices a channel carried.", COUNTER, { "channel" },
				  { WD } },
	[METRIC_NOTICES_FAILED] = { "edibroker_notices_failed_total",
				    "Attempts of a channel to carry an outage notice that failed.",
				    COUNTER, { "channel" }, { WD } },
	[METRIC_COMMIT_FAILURES] = { "edibroker_store_commit_failures_total",
				     "Store transactions (group commits) that failed.", COUNTER },
	[METRIC_OPERATOR_ACTIONS] = { "edibroker_operator_actions_total",
				      "Changes operators made through the control socket.",
				      COUNTER, { "action" }, { WD } },
	[METRIC_QUEUE_MESSAGES] = { "edibroker_queue_messages",
				    "Messages waiting for delivery to an endpoint.", GAUGE,
				    { "endpoint" }, { EP } },
	[METRIC_QUEUE_OLDEST] = { "edibroker_queue_oldest_age_seconds",
				  "Age of the oldest message waiting for an endpoint (0 when none "
				  "waits).",
				  GAUGE, { "endpoint" }, { EP } },
	[METRIC_ENDPOINT_STATE] = { "edibroker_endpoint_state",
				    "1 for the state an endpoint is in: up, suspect, down, held (by "
				    "an operator) or maintenance (a planned shutdown).",
				    GAUGE, { "endpoint", "state" }, { EP, WD } },
	[METRIC_OUTAGES_OPEN] = { "edibroker_outages_open",
				  "1 for the state of an endpoint's open outage (open, announced, "
				  "recovering, resolved); 0 everywhere when it has none.",
				  GAUGE, { "endpoint", "state" }, { EP, WD } },
	[METRIC_STORE_UP] = { "edibroker_store_up",
			      "1 while the store commits, 0 while it fails (disk full, I/O).",
			      GAUGE },
	[METRIC_STORE_SIZE] = { "edibroker_store_size_bytes", "Size of the store's database.",
				GAUGE },
	[METRIC_DEAD_LETTERS] = { "edibroker_dead_letters",
				  "Dead letters waiting for an operator.", GAUGE },
	[METRIC_ACKS_OVERDUE] = { "edibroker_acknowledgements_overdue",
				  "Delivered messages whose acknowledgement is overdue.", GAUGE,
				  { "endpoint" }, { EP } },
	[METRIC_START_TIME] = { "edibroker_start_time_seconds",
				"When the daemon started, in seconds since the epoch.", GAUGE },
	[METRIC_NODE_INFO] = { "edibroker_cluster_node_info",
			       "1, with this daemon's name among the daemons sharing a PostgreSQL "
			       "store (absent with SQLite).",
			       GAUGE, { "node" }, { WD } },
	[METRIC_DATABASE_UP] = { "edibroker_cluster_database_up",
				 "1 while this node's last lease round reached the shared database; "
				 "0 while it cannot (the others take its work over).",
				 GAUGE },
	[METRIC_ENDPOINT_HELD] = { "edibroker_cluster_endpoint_held",
				   "1 for an endpoint whose delivery this node holds (its lease), "
				   "0 for the others.",
				   GAUGE, { "endpoint" }, { EP } },
	[METRIC_COMMIT_SECONDS] = { "edibroker_commit_duration_seconds",
				    "Duration of a store transaction (one group commit).",
				    HISTOGRAM, .buckets = commit_buckets,
				    .nbuckets = ARRAY_SIZE(commit_buckets) },
	[METRIC_DELIVERY_LATENCY] = { "edibroker_delivery_latency_seconds",
				      "From accepted to delivered, per message.", HISTOGRAM,
				      { "endpoint" }, { EP }, latency_buckets,
				      ARRAY_SIZE(latency_buckets) },
};

struct series {
	char *key;                 /* the values joined with \x1f (the hash key) */
	char *values[MAX_LABELS];
	double value;              /* counter, gauge */
	uint64_t *buckets;         /* histogram: observations per bound, not cumulative */
	double sum;
	uint64_t count;
};

struct family {
	struct series **v;
	size_t n, cap;
	size_t *slots;             /* index + 1 into v; 0 = empty */
	size_t nslots;
};

static struct family families[METRIC__COUNT];
static struct strset *endpoints;
static void (*scrape_fn)(void *ctx);
static void *scrape_ctx;

static size_t nlabels(const struct family_def *d)
{
	size_t n = 0;
	while (n < MAX_LABELS && d->labels[n])
		n++;
	return n;
}

const char *metrics_type(const char *type)
{
	return type && msgtype_name(type, "en") ? type : "other";
}

static const char *bounded(enum label_kind k, const char *v)
{
	switch (k) {
	case L_ENDPOINT:
		return v && endpoints && strset_has(endpoints, v) ? v : "other";
	case L_TYPE:
		return metrics_type(v);
	case L_WORD:
		return v ? v : "";
	}
	return "";
}

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ULL;
	return h;
}

/* The key of labels for d: bounded values joined with \x1f, into buf. */
static void make_key(const struct family_def *d, const char *const *labels, char *buf,
		     size_t len, const char *vals[MAX_LABELS])
{
	size_t n = nlabels(d), used = 0;
	buf[0] = '\0';
	assert(n == 0 || labels); /* one value per label (NULL counts as none) */
	for (size_t i = 0; i < n; i++) {
		vals[i] = bounded(d->lkinds[i], labels[i]);
		int w = snprintf(buf + used, len - used, "%s%.*s", i ? "\x1f" : "", VALUE_MAX,
				 vals[i]);
		used += w < 0 ? 0 : (size_t)w;
		used = used < len ? used : len - 1;
	}
}

static void rehash(struct family *f)
{
	free(f->slots);
	f->nslots = f->n * 2 + 16;
	f->slots = xcalloc(f->nslots, sizeof(*f->slots));
	for (size_t i = 0; i < f->n; i++) {
		size_t s = hash(f->v[i]->key) % f->nslots;
		while (f->slots[s])
			s = (s + 1) % f->nslots;
		f->slots[s] = i + 1;
	}
}

static struct series *series_of(enum metric m, const char *const *labels)
{
	const struct family_def *d = &defs[m];
	struct family *f = &families[m];
	char key[MAX_LABELS * (VALUE_MAX + 1) + 1];
	const char *vals[MAX_LABELS] = { NULL };
	make_key(d, labels, key, sizeof(key), vals);
	size_t s = f->nslots ? hash(key) % f->nslots : 0;
	for (; f->nslots && f->slots[s]; s = (s + 1) % f->nslots)
		if (strcmp(f->v[f->slots[s] - 1]->key, key) == 0)
			return f->v[f->slots[s] - 1];
	struct series *x = xcalloc(1, sizeof(*x));
	x->key = xstrdup(key);
	for (size_t i = 0; i < nlabels(d); i++)
		x->values[i] = xasprintf("%.*s", VALUE_MAX, vals[i]);
	if (d->kind == HISTOGRAM)
		x->buckets = xcalloc(d->nbuckets, sizeof(*x->buckets));
	if (f->n == f->cap)
		f->v = xrealloc(f->v, (f->cap = f->cap ? f->cap * 2 : 8) * sizeof(*f->v));
	f->v[f->n++] = x;
	if (f->n * 2 > f->nslots)
		rehash(f);
	else
		f->slots[s] = f->n;
	return x;
}

void metrics_add(enum metric m, double v, const char *const *labels)
{
	assert(defs[m].kind != HISTOGRAM && (defs[m].kind == GAUGE || v >= 0));
	series_of(m, labels)->value += v;
}

void metrics_set(enum metric m, double v, const char *const *labels)
{
	assert(defs[m].kind == GAUGE);
	series_of(m, labels)->value = v;
}

void metrics_observe(enum metric m, double v, const char *const *labels)
{
	const struct family_def *d = &defs[m];
	assert(d->kind == HISTOGRAM);
	struct series *x = series_of(m, labels);
	for (size_t i = 0; i < d->nbuckets; i++)
		if (v <= d->buckets[i]) {
			x->buckets[i]++;
			break;
		}
	x->sum += v;
	x->count++;
}

static void series_free(struct series *x)
{
	free(x->key);
	for (size_t i = 0; i < MAX_LABELS; i++)
		free(x->values[i]);
	free(x->buckets);
	free(x);
}

/* Drops the series of family m that name an endpoint not configured now. */
static void drop_unconfigured(enum metric m)
{
	const struct family_def *d = &defs[m];
	struct family *f = &families[m];
	size_t j = 0;
	for (size_t i = 0; i < f->n; i++) {
		bool keep = true;
		for (size_t k = 0; k < nlabels(d); k++)
			if (d->lkinds[k] == L_ENDPOINT && strcmp(f->v[i]->values[k], "other") != 0 &&
			    !strset_has(endpoints, f->v[i]->values[k]))
				keep = false;
		if (keep)
			f->v[j++] = f->v[i];
		else
			series_free(f->v[i]);
	}
	if (j != f->n) {
		f->n = j;
		rehash(f);
	}
}

void metrics_set_endpoints(const char *const *names, size_t n)
{
	if (!endpoints)
		endpoints = strset_new();
	strset_clear(endpoints);
	for (size_t i = 0; i < n; i++)
		strset_add(endpoints, names[i]);
	for (size_t m = 0; m < METRIC__COUNT; m++)
		drop_unconfigured((enum metric)m);
}

void metrics_on_scrape(void (*fn)(void *ctx), void *ctx)
{
	scrape_fn = fn;
	scrape_ctx = ctx;
}

/* ---- the text exposition ------------------------------------------------- */

static int series_cmp(const void *a, const void *b)
{
	return strcmp((*(struct series *const *)a)->key, (*(struct series *const *)b)->key);
}

/* A label value as the text format wants it: \\, \" and \n escaped. */
static void put_value(struct strbuf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			strbuf_printf(b, "\\%c", *v);
		else if (*v == '\n')
			strbuf_puts(b, "\\n");
		else
			strbuf_add(b, v, 1);
	}
}

/* {a="x",b="y"} plus an le="..." when le is not NULL; nothing when both
 * are empty. */
static void put_labels(struct strbuf *b, const struct family_def *d, const struct series *x,
		       const char *le)
{
	size_t n = nlabels(d);
	if (n == 0 && !le)
		return;
	strbuf_puts(b, "{");
	for (size_t i = 0; i < n; i++) {
		strbuf_printf(b, "%s%s=\"", i ? "," : "", d->labels[i]);
		put_value(b, x->values[i]);
		strbuf_puts(b, "\"");
	}
	if (le)
		strbuf_printf(b, "%sle=\"%s\"", n ? "," : "", le);
	strbuf_puts(b, "}");
}

static void put_number(struct strbuf *b, double v)
{
	if (isnan(v))
		strbuf_puts(b, "NaN");
	else if (isinf(v))
		strbuf_puts(b, v > 0 ? "+Inf" : "-Inf");
	else
		strbuf_printf(b, "%.15g", v); /* round trips what counters hold */
}

static void put_histogram(struct strbuf *b, const struct family_def *d, const struct series *x)
{
	uint64_t cum = 0;
	char le[32];
	for (size_t i = 0; i <= d->nbuckets; i++) {
		if (i < d->nbuckets) {
			cum += x->buckets[i];
			snprintf(le, sizeof(le), "%g", d->buckets[i]);
		} else {
			cum = x->count;
			snprintf(le, sizeof(le), "+Inf");
		}
		strbuf_printf(b, "%s_bucket", d->name);
		put_labels(b, d, x, le);
		strbuf_printf(b, " %llu\n", (unsigned long long)cum);
	}
	strbuf_printf(b, "%s_sum", d->name);
	put_labels(b, d, x, NULL);
	strbuf_puts(b, " ");
	put_number(b, x->sum);
	strbuf_printf(b, "\n%s_count", d->name);
	put_labels(b, d, x, NULL);
	strbuf_printf(b, " %llu\n", (unsigned long long)x->count);
}

static void put_family(struct strbuf *b, enum metric m)
{
	static const char *const kinds[] = { "counter", "gauge", "histogram" };
	const struct family_def *d = &defs[m];
	struct family *f = &families[m];
	if (nlabels(d) == 0)
		(void)series_of(m, NULL); /* a family without labels always has its sample */
	strbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", d->name, d->help, d->name,
		      kinds[d->kind]);
	_cleanup_free_ struct series **sorted = xcalloc(f->n + 1, sizeof(*sorted));
	if (f->n) /* f->v is NULL before the first series */
		memcpy(sorted, f->v, f->n * sizeof(*sorted));
	qsort(sorted, f->n, sizeof(*sorted), series_cmp);
	for (size_t i = 0; i < f->n; i++) {
		if (d->kind == HISTOGRAM) {
			put_histogram(b, d, sorted[i]);
			continue;
		}
		strbuf_puts(b, d->name);
		put_labels(b, d, sorted[i], NULL);
		strbuf_puts(b, " ");
		put_number(b, sorted[i]->value);
		strbuf_puts(b, "\n");
	}
}

char *metrics_render(size_t *len)
{
	if (scrape_fn)
		scrape_fn(scrape_ctx);
	struct strbuf b = { 0 };
	for (size_t m = 0; m < METRIC__COUNT; m++)
		put_family(&b, (enum metric)m);
	if (len)
		*len = b.len;
	return strbuf_take(&b);
}

void metrics_reset(void)
{
	for (size_t m = 0; m < METRIC__COUNT; m++) {
		struct family *f = &families[m];
		for (size_t i = 0; i < f->n; i++)
			series_free(f->v[i]);
		free(f->v);
		free(f->slots);
		*f = (struct family){ 0 };
	}
	strset_free(endpoints);
	endpoints = NULL;
	scrape_fn = NULL;
	scrape_ctx = NULL;
}
