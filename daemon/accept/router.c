/*
 * router.c - the routing table: a sorted array of (GLN, endpoint) searched
 * with bsearch.
 *
 * Invariant: a GLN appears once (config validation rejects a GLN owned by
 * two endpoints). The table is immutable once built; a reload builds a new
 * one and swaps it in. Per endpoint it also keeps the types it accepts and
 * its xsd mode (a short list, searched by name: endpoints are tens).
 */
#include "accept/router.h"

#include "codecs/base/mem.h"

#include <stdio.h>
#include <string.h>

struct route {
	const char *gln;
	const char *endpoint;
};

/* What one endpoint takes and how what it sends is validated. */
struct ep_rules {
	const char *name;
	char **accepts; /* owned copies; NULL with naccepts 0: anything */
	size_t naccepts;
	enum xsd_mode xsd;
};

struct router {
	int refs;
	struct ep_rules *rules;    /* in config order */
	size_t nrules;
	struct route *routes;      /* receiver GLN -> endpoint, sorted by GLN */
	size_t n;
	struct route *senders;     /* (sender GLN, endpoint) pairs, sorted by both */
	size_t nsenders;
	char **names; /* owned copies of endpoint names, and of GLNs */
	size_t nnames;
	char *default_endpoint;
};

static int route_cmp(const void *a, const void *b)
{
	return strcmp(((const struct route *)a)->gln, ((const struct route *)b)->gln);
}

static int sender_cmp(const void *a, const void *b)
{
	const struct route *x = a, *y = b;
	int c = strcmp(x->gln, y->gln);
	return c ? c : strcmp(x->endpoint, y->endpoint);
}

static char *keep(struct router *r, const char *s)
{
	r->names = xrealloc(r->names, (r->nnames + 1) * sizeof(char *));
	return r->names[r->nnames++] = xstrdup(s);
}

struct router *router_new(const struct config *cfg)
{
	struct router *r = xcalloc(1, sizeof(*r));
	r->refs = 1;
	size_t total = 0, nsend = 0;
	for (size_t i = 0; i < cfg->nendpoints; i++) {
		total += cfg->endpoints[i].ngln;
		nsend += cfg->endpoints[i].ngln + cfg->endpoints[i].nmay_send_for;
	}
	r->routes = xcalloc(total, sizeof(struct route));
	r->senders = xcalloc(nsend, sizeof(struct route));
	r->rules = xcalloc(cfg->nendpoints, sizeof(struct ep_rules));
	r->nrules = cfg->nendpoints;
	for (size_t i = 0; i < cfg->nendpoints; i++) {
		const struct endpoint_conf *ep = &cfg->endpoints[i];
		const char *name = keep(r, ep->name);
		struct ep_rules *ru = &r->rules[i];
		*ru = (struct ep_rules){ name, NULL, ep->naccepts, ep->xsd };
		ru->accepts = ep->naccepts ? xcalloc(ep->naccepts, sizeof(char *)) : NULL;
		for (size_t a = 0; a < ep->naccepts; a++)
			ru->accepts[a] = keep(r, ep->accepts[a]);
		for (size_t g = 0; g < ep->ngln; g++) {
			const char *gln = keep(r, ep->gln[g]);
			r->routes[r->n++] = (struct route){ gln, name };
			r->senders[r->nsenders++] = (struct route){ gln, name };
		}
		for (size_t g = 0; g < ep->nmay_send_for; g++)
			r->senders[r->nsenders++] = (struct route){ keep(r, ep->may_send_for[g]), name };
	}
	qsort(r->routes, r->n, sizeof(struct route), route_cmp);
	qsort(r->senders, r->nsenders, sizeof(struct route), sender_cmp);
	if (!str_empty(cfg->default_endpoint))
		r->default_endpoint = xstrdup(cfg->default_endpoint);
	return r;
}

struct router *router_ref(struct router *r)
{
	r->refs++;
	return r;
}

bool router_may_send(const struct router *r, const char *source, const char *gln)
{
	struct route key = { gln, source };
	return bsearch(&key, r->senders, r->nsenders, sizeof(struct route), sender_cmp) != NULL;
}

void router_free(struct router *r)
{
	if (!r || --r->refs > 0)
		return;
	for (size_t i = 0; i < r->nnames; i++)
		free(r->names[i]);
	free(r->names);
	for (size_t i = 0; i < r->nrules; i++)
		free(r->rules[i].accepts);
	free(r->rules);
	free(r->routes);
	free(r->senders);
	free(r->default_endpoint);
	free(r);
}

const char *router_lookup(const struct router *r, const char *gln)
{
	struct route key = { gln, NULL };
	const struct route *hit = bsearch(&key, r->routes, r->n, sizeof(struct route), route_cmp);
	if (hit)
		return hit->endpoint;
	return r->default_endpoint;
}

static const struct ep_rules *rules_of(const struct router *r, const char *endpoint)
{
	for (size_t i = 0; endpoint && i < r->nrules; i++)
		if (strcmp(r->rules[i].name, endpoint) == 0)
			return &r->rules[i];
	return NULL;
}

/* True when item ("TYPE" or "TYPE:VERSION") admits type and version. */
static bool accept_item(const char *item, const char *type, const char *version)
{
	size_t n = strlen(type);
	if (strncmp(item, type, n) != 0)
		return false;
	return item[n] == '\0' || (item[n] == ':' && version && strcmp(item + n + 1, version) == 0);
}

bool router_accepts(const struct router *r, const char *endpoint, const char *type,
		    const char *version)
{
	const struct ep_rules *ru = rules_of(r, endpoint);
	if (!ru || ru->naccepts == 0)
		return true;
	for (size_t i = 0; type && i < ru->naccepts; i++)
		if (accept_item(ru->accepts[i], type, version))
			return true;
	return false;
}

enum xsd_mode router_xsd(const struct router *r, const char *source)
{
	const struct ep_rules *ru = rules_of(r, source);
	return ru ? ru->xsd : XSD_OFF;
}

/* ROUTE_TYPE when endpoint ep does not take a letter of env (receipts
 * always pass), with the reason naming the first such letter. */
static enum route_result check_types(const struct router *r, const struct codec_envelope *env,
				     const char *ep, char *reason, size_t reasonlen)
{
	if (env->is_receipt)
		return ROUTE_OK;
	for (size_t i = 0; i < env->nletters; i++) {
		const struct codec_letter *l = &env->letters[i];
		if (router_accepts(r, ep, l->type, l->version))
			continue;
		snprintf(reason, reasonlen,
			 "endpoint %s does not take %s%s%s%s (letter %s; its accepts list)", ep,
			 l->type[0] ? l->type : "letters without a type", l->version[0] ? " (" : "",
			 l->version, l->version[0] ? ")" : "", l->id);
		return ROUTE_TYPE;
	}
	return ROUTE_OK;
}

enum route_result router_route(const struct router *r, const struct codec_envelope *env,
			       const char **endpoint, char *reason, size_t reasonlen)
{
	const char *first = NULL;
	if (env->nletters == 0) {
		snprintf(reason, reasonlen, "envelope %s has no letters", env->envelope_id);
		return ROUTE_UNKNOWN_RECEIVER;
	}
	for (size_t i = 0; i < env->nletters; i++) {
		const struct codec_letter *l = &env->letters[i];
		const char *ep = router_lookup(r, l->receiver);
		if (!ep) {
			snprintf(reason, reasonlen,
				 "unknown receiver: no endpoint owns GLN %s (letter %s)", l->receiver,
				 l->id);
			return ROUTE_UNKNOWN_RECEIVER;
		}
		if (first && strcmp(first, ep) != 0) {
			snprintf(reason, reasonlen,
				 "letters for different endpoints: letter %s to %s (%s), letter %s to %s (%s)",
				 env->letters[0].id, env->letters[0].receiver, first, l->id,
				 l->receiver, ep);
			return ROUTE_SPLIT;
		}
		first = ep;
	}
	*endpoint = first;
	return check_types(r, env, first, reason, reasonlen);
}
