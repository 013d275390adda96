/*
 * router.c - the routing table: a sorted array of (GLN, endpoint) searched
 * with bsearch.
 *
 * Invariant: a GLN appears once (config validation rejects a GLN owned by
 * two endpoints). The table is immutable once built; a reload builds a new
 * one and swaps it in.
 */
#include "accept/router.h"

#include "codecs/base/mem.h"

#include <stdio.h>
#include <string.h>

struct route {
	const char *gln;
	const char *endpoint;
};

struct router {
	int refs;
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
	for (size_t i = 0; i < cfg->nendpoints; i++) {
		const struct endpoint_conf *ep = &cfg->endpoints[i];
		const char *name = keep(r, ep->name);
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
	return ROUTE_OK;
}
