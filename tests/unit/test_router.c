/*
 * test_router.c - the routing table (router.c): GLN -> endpoint lookup, the
 * default endpoint, and router_route over multi-letter envelopes (one
 * endpoint, split, unknown receiver with and without a default).
 *
 * Configs are built by hand on the heap (the router must copy what it keeps)
 * and, once, read from a temporary file through config_load. Envelopes are
 * built by hand: no codec is involved.
 */
#include "conf/config.h"
#include "accept/router.h"
#include "transport/transport.h"
#include "codecs/base/mem.h"
#include "tests/unit/testutil.h"

#include <criterion/criterion.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define GLN_H1 "5790000143054"
#define GLN_H2 "5790002515200"
#define GLN_M1 "5790000143055"
#define GLN_X "5790000999999" /* owned by nobody */
#define GLN_Y "5790000888888" /* owned by nobody */

/* ---- helpers ----------------------------------------------------------- */

/* Adds endpoint name owning the given GLNs (NULL-terminated) to cfg. */
static void add_endpoint(struct config *cfg, const char *name, ...)
{
	cfg->endpoints = xrealloc(cfg->endpoints, (cfg->nendpoints + 1) * sizeof(*cfg->endpoints));
	struct endpoint_conf *ep = &cfg->endpoints[cfg->nendpoints++];
	memset(ep, 0, sizeof(*ep));
	ep->name = xstrdup(name);
	va_list ap;
	va_start(ap, name);
	for (const char *g; (g = va_arg(ap, const char *));) {
		ep->gln = xrealloc(ep->gln, (ep->ngln + 1) * sizeof(char *));
		ep->gln[ep->ngln++] = xstrdup(g);
	}
	va_end(ap);
}

/* Frees what add_endpoint made, after scribbling over it so that a router
 * still pointing into the config would see garbage. */
static void free_hand_config(struct config *cfg)
{
	for (size_t i = 0; i < cfg->nendpoints; i++) {
		struct endpoint_conf *ep = &cfg->endpoints[i];
		for (size_t g = 0; g < ep->ngln; g++) {
			memset(ep->gln[g], 'Z', strlen(ep->gln[g]));
			free(ep->gln[g]);
		}
		free(ep->gln);
		memset(ep->name, 'Z', strlen(ep->name));
		free(ep->name);
	}
	free(cfg->endpoints);
	if (cfg->default_endpoint) {
		memset(cfg->default_endpoint, 'Z', strlen(cfg->default_endpoint));
		free(cfg->default_endpoint);
	}
	memset(cfg, 0, sizeof(*cfg));
}

/* hospital owns H1, H2; municipality owns M1. */
static struct router *standard_router(const char *default_endpoint)
{
	struct config cfg = { 0 };
	add_endpoint(&cfg, "hospital", GLN_H1, GLN_H2, NULL);
	add_endpoint(&cfg, "municipality", GLN_M1, NULL);
	cfg.default_endpoint = default_endpoint ? xstrdup(default_endpoint) : NULL;
	struct router *r = router_new(&cfg);
	free_hand_config(&cfg);
	return r;
}

/* An envelope whose letters go to the given receivers (NULL-terminated);
 * letter i has id "L<i+1>" and sender H1. */
static struct codec_envelope *envelope(const char *first, ...)
{
	struct codec_envelope *env = xcalloc(1, sizeof(*env));
	str_copy(env->envelope_id, "ENV1", sizeof(env->envelope_id));
	va_list ap;
	va_start(ap, first);
	for (const char *g = first; g; g = va_arg(ap, const char *)) {
		struct codec_letter *l = &env->letters[env->nletters];
		snprintf(l->id, sizeof(l->id), "L%zu", env->nletters + 1);
		str_copy(l->type, "XDIS20", sizeof(l->type));
		str_copy(l->sender, GLN_H1, sizeof(l->sender));
		str_copy(l->receiver, g, sizeof(l->receiver));
		env->nletters++;
	}
	va_end(ap);
	return env;
}

#define SENTINEL ((const char *)"untouched")

/* ---- lookup ------------------------------------------------------------ */

Test(router, lookup_finds_owner_of_every_gln)
{
	struct router *r = standard_router(NULL);
	cr_assert_str_eq(router_lookup(r, GLN_H1), "hospital");
	cr_assert_str_eq(router_lookup(r, GLN_H2), "hospital");
	cr_assert_str_eq(router_lookup(r, GLN_M1), "municipality");
	router_free(r);
}

Test(router, lookup_unknown_gln_without_default_is_null)
{
	struct router *r = standard_router(NULL);
	cr_assert_null(router_lookup(r, GLN_X));
	cr_assert_null(router_lookup(r, ""));
	/* a prefix or an extension of a known GLN is a different GLN */
	cr_assert_null(router_lookup(r, "579000014305"));
	cr_assert_null(router_lookup(r, GLN_H1 "0"));
	router_free(r);
}

Test(router, lookup_unknown_gln_goes_to_default)
{
	struct router *r = standard_router("municipality");
	cr_assert_str_eq(router_lookup(r, GLN_X), "municipality");
	/* an owned GLN still goes to its owner, not to the default */
	cr_assert_str_eq(router_lookup(r, GLN_H1), "hospital");
	router_free(r);
}

Test(router, empty_default_endpoint_means_none)
{
	struct router *r = standard_router("");
	cr_assert_null(router_lookup(r, GLN_X));
	router_free(r);
}

Test(router, no_endpoints_at_all)
{
	struct config cfg = { 0 };
	struct router *r = router_new(&cfg);
	cr_assert_null(router_lookup(r, GLN_H1));
	router_free(r);
}

/* A bijection on [0, 1000003): distinct GLNs in an order far from sorted. */
static long scrambled(int x)
{
	return (long)x * 7919L % 1000003L;
}

/* Many endpoints given in an order far from sorted: catches a table that is
 * searched without being sorted, or sorted by the wrong key. */
Test(router, lookup_over_many_unsorted_glns)
{
	struct config cfg = { 0 };
	enum { NEP = 150, PER = 4 };
	for (int i = 0; i < NEP; i++) {
		char name[16], g[PER][16];
		snprintf(name, sizeof(name), "ep%03d", i);
		for (int k = 0; k < PER; k++)
			snprintf(g[k], sizeof(g[k]), "57900%08ld", scrambled(i * PER + k));
		add_endpoint(&cfg, name, g[0], g[1], g[2], g[3], NULL);
	}
	struct router *r = router_new(&cfg);
	for (int i = 0; i < NEP; i++) {
		char name[16], g[16];
		snprintf(name, sizeof(name), "ep%03d", i);
		for (int k = 0; k < PER; k++) {
			snprintf(g, sizeof(g), "57900%08ld", scrambled(i * PER + k));
			const char *ep = router_lookup(r, g);
			cr_assert_not_null(ep, "GLN %s not found", g);
			cr_assert_str_eq(ep, name, "GLN %s", g);
		}
	}
	cr_assert_null(router_lookup(r, "5790099999999"));
	free_hand_config(&cfg);
	router_free(r);
}

/* ---- router_route ------------------------------------------------------ */

Test(router, route_single_letter)
{
	struct router *r = standard_router(NULL);
	_cleanup_free_ struct codec_envelope *env = envelope(GLN_M1, NULL);
	const char *ep = SENTINEL;
	char why[256] = "";
	cr_assert_eq(router_route(r, env, &ep, why, sizeof(why)), ROUTE_OK);
	cr_assert_str_eq(ep, "municipality");
	router_free(r);
}

Test(router, route_letters_all_for_one_endpoint)
{
	struct router *r = standard_router(NULL);
	_cleanup_free_ struct codec_envelope *env = envelope(GLN_H1, GLN_H2, GLN_H1, GLN_H2, NULL);
	const char *ep = SENTINEL;
	char why[256] = "";
	cr_assert_eq(router_route(r, env, &ep, why, sizeof(why)), ROUTE_OK);
	cr_assert_str_eq(ep, "hospital");
	router_free(r);
}

Test(router, route_split_is_refused_with_reason)
{
	struct router *r = standard_router(NULL);
	_cleanup_free_ struct codec_envelope *env = envelope(GLN_H1, GLN_H2, GLN_M1, NULL);
	const char *ep = SENTINEL;
	char why[256] = "";
	cr_assert_eq(router_route(r, env, &ep, why, sizeof(why)), ROUTE_SPLIT);
	cr_assert_eq(ep, SENTINEL, "endpoint must be untouched when not routed");
	/* names the first letter, the letter that differs, their GLNs and endpoints */
	cr_assert(strstr(why, "L1"), "%s", why);
	cr_assert(strstr(why, "L3"), "%s", why);
	cr_assert(strstr(why, GLN_H1), "%s", why);
	cr_assert(strstr(why, GLN_M1), "%s", why);
	cr_assert(strstr(why, "hospital"), "%s", why);
	cr_assert(strstr(why, "municipality"), "%s", why);
	router_free(r);
}

Test(router, route_unknown_receiver_without_default)
{
	struct router *r = standard_router(NULL);
	_cleanup_free_ struct codec_envelope *env = envelope(GLN_H1, GLN_X, NULL);
	const char *ep = SENTINEL;
	char why[256] = "";
	cr_assert_eq(router_route(r, env, &ep, why, sizeof(why)), ROUTE_UNKNOWN_RECEIVER);
	cr_assert_eq(ep, SENTINEL);
	cr_assert(strstr(why, GLN_X), "%s", why);
	cr_assert(strstr(why, "L2"), "%s", why);
	router_free(r);
}

Test(router, route_unknown_first_letter_without_default)
{
	struct router *r = standard_router(NULL);
	_cleanup_free_ struct codec_envelope *env = envelope(GLN_Y, GLN_H1, NULL);
	const char *ep = SENTINEL;
	char why[256] = "";
	cr_assert_eq(router_route(r, env, &ep, why, sizeof(why)), ROUTE_UNKNOWN_RECEIVER);
	cr_assert(strstr(why, GLN_Y) && strstr(why, "L1"), "%s", why);
	router_free(r);
}

Test(router, route_unknown_receivers_go_to_default)
{
	struct router *r = standard_router("municipality");
	_cleanup_free_ struct codec_envelope *env = envelope(GLN_X, GLN_Y, NULL);
	const char *ep = SENTINEL;
	char why[256] = "";
	cr_assert_eq(router_route(r, env, &ep, why, sizeof(why)), ROUTE_OK);
	cr_assert_str_eq(ep, "municipality");
	router_free(r);
}

Test(router, route_unknown_mixed_with_default_owner_is_one_endpoint)
{
	struct router *r = standard_router("municipality");
	_cleanup_free_ struct codec_envelope *env = envelope(GLN_M1, GLN_X, NULL);
	const char *ep = SENTINEL;
	char why[256] = "";
	cr_assert_eq(router_route(r, env, &ep, why, sizeof(why)), ROUTE_OK);
	cr_assert_str_eq(ep, "municipality");
	router_free(r);
}

Test(router, route_unknown_mixed_with_other_owner_is_split)
{
	struct router *r = standard_router("municipality");
	_cleanup_free_ struct codec_envelope *env = envelope(GLN_H1, GLN_X, NULL);
	const char *ep = SENTINEL;
	char why[256] = "";
	cr_assert_eq(router_route(r, env, &ep, why, sizeof(why)), ROUTE_SPLIT);
	cr_assert_eq(ep, SENTINEL);
	cr_assert(strstr(why, GLN_X) && strstr(why, "L2"), "%s", why);
	router_free(r);
}

/* The maximum number of letters: all routed, and the last one checked too. */
Test(router, route_checks_every_letter_up_to_the_last)
{
	struct router *r = standard_router(NULL);
	_cleanup_free_ struct codec_envelope *env = envelope(GLN_H1, NULL);
	for (size_t i = 1; i < CODEC_MAX_LETTERS; i++) {
		env->letters[i] = env->letters[0];
		snprintf(env->letters[i].id, sizeof(env->letters[i].id), "L%zu", i + 1);
	}
	env->nletters = CODEC_MAX_LETTERS;
	const char *ep = NULL;
	char why[256] = "";
	cr_assert_eq(router_route(r, env, &ep, why, sizeof(why)), ROUTE_OK);
	cr_assert_str_eq(ep, "hospital");

	str_copy(env->letters[CODEC_MAX_LETTERS - 1].receiver, GLN_M1, CODEC_GLN_MAX);
	ep = SENTINEL;
	cr_assert_eq(router_route(r, env, &ep, why, sizeof(why)), ROUTE_SPLIT);
	cr_assert(strstr(why, "L128"), "%s", why);
	router_free(r);
}

/* A short reason buffer is truncated and terminated, never overrun. */
Test(router, reason_respects_buffer_size)
{
	struct router *r = standard_router(NULL);
	_cleanup_free_ struct codec_envelope *env = envelope(GLN_H1, GLN_M1, NULL);
	const char *ep = SENTINEL;
	char buf[32];
	memset(buf, '#', sizeof(buf));
	cr_assert_eq(router_route(r, env, &ep, buf, 16), ROUTE_SPLIT);
	cr_assert_eq(strlen(buf), 15);
	for (size_t i = 16; i < sizeof(buf); i++)
		cr_assert_eq(buf[i], '#', "byte %zu written past reasonlen", i);
	router_free(r);
}

/* router.h: "otherwise writes a reason". An envelope with no letters cannot
 * be routed; the caller (ingest) copies the reason into the store, so it
 * must be written, not left as whatever the caller's buffer held. */
Test(router, route_without_letters_is_refused_with_a_reason)
{
	struct router *r = standard_router("municipality");
	_cleanup_free_ struct codec_envelope *env = xcalloc(1, sizeof(*env));
	const char *ep = SENTINEL;
	char why[256];
	memset(why, 'Q', sizeof(why) - 1);
	why[sizeof(why) - 1] = '\0';
	enum route_result rr = router_route(r, env, &ep, why, sizeof(why));
	cr_assert_neq(rr, ROUTE_OK);
	cr_assert_neq(why[0], 'Q', "no reason was written for an envelope without letters");
	router_free(r);
}

/* ---- through config_load ----------------------------------------------- */

static char tmpdir[PATH_MAX];

static void cfg_setup(void)
{
	testutil_mkdtemp(tmpdir, sizeof(tmpdir), "/tmp/test_router.XXXXXX");
}

static void cfg_teardown(void)
{
	testutil_rm_rf(tmpdir);
}

Test(router_config, built_from_a_loaded_config, .init = cfg_setup, .fini = cfg_teardown)
{
	_cleanup_free_ char *path = xasprintf("%s/edibroker.conf", tmpdir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f,
		"[broker]\nstate_dir = %s/state\n"
		"[routing]\ndefault_endpoint = kommune\n"
		"[endpoint sygehus]\nkind = hospital\ntransport = spool\n"
		"gln = " GLN_H1 ",\n      " GLN_H2 "\n"
		"inbox = %s/s/in\noutbox = %s/s/out\ncreate_dirs = yes\n"
		"[endpoint kommune]\nkind = municipality\ntransport = spool\n"
		"gln = " GLN_M1 "\n"
		"inbox = %s/k/in\noutbox = %s/k/out\ncreate_dirs = yes\n",
		tmpdir, tmpdir, tmpdir, tmpdir, tmpdir);
	cr_assert_eq(fclose(f), 0);
	struct config *cfg = NULL;
	char err[512] = "";
	int rc = config_load(path, transport_schemas(), &cfg, err, sizeof(err));
	cr_assert_eq(rc, 0, "config_load: %s", err);
	struct router *r = router_new(cfg);
	config_free(cfg); /* the router keeps its own copies */
	cr_assert_str_eq(router_lookup(r, GLN_H2), "sygehus");
	cr_assert_str_eq(router_lookup(r, GLN_M1), "kommune");
	cr_assert_str_eq(router_lookup(r, GLN_X), "kommune");
	_cleanup_free_ struct codec_envelope *env = envelope(GLN_H1, GLN_H2, NULL);
	const char *ep = NULL;
	char why[256];
	cr_assert_eq(router_route(r, env, &ep, why, sizeof(why)), ROUTE_OK);
	cr_assert_str_eq(ep, "sygehus");
	router_free(r);
}

/* ---- what an endpoint takes (accepts) and its xsd mode -------------------- */

/* municipality takes XDIS17 and XDIS20 in version XD2030C only, and
 * validates what it sends; hospital takes anything. */
static struct router *accepts_router(void)
{
	struct config cfg = { 0 };
	add_endpoint(&cfg, "hospital", GLN_H1, GLN_H2, NULL);
	add_endpoint(&cfg, "municipality", GLN_M1, NULL);
	struct endpoint_conf *m = &cfg.endpoints[1];
	m->accepts = xcalloc(2, sizeof(char *));
	m->accepts[m->naccepts++] = xstrdup("XDIS17");
	m->accepts[m->naccepts++] = xstrdup("XDIS20:XD2030C");
	m->xsd = XSD_ENFORCE;
	struct router *r = router_new(&cfg);
	for (size_t i = 0; i < m->naccepts; i++) {
		memset(m->accepts[i], 'Z', strlen(m->accepts[i])); /* the router keeps copies */
		free(m->accepts[i]);
	}
	free(m->accepts);
	free_hand_config(&cfg);
	return r;
}

Test(router, accepts_by_type_and_version)
{
	struct router *r = accepts_router();
	cr_assert(router_accepts(r, "municipality", "XDIS17", "XD1730C"));
	cr_assert(router_accepts(r, "municipality", "XDIS20", "XD2030C"));
	cr_assert_not(router_accepts(r, "municipality", "XDIS20", "XD2031C"));
	cr_assert_not(router_accepts(r, "municipality", "XDIS2", "XD2030C"), "no prefix match");
	cr_assert_not(router_accepts(r, "municipality", "XDIS19", ""));
	cr_assert(router_accepts(r, "hospital", "XDIS19", ""), "no list: anything");
	cr_assert(router_accepts(r, "nobody", "XDIS19", ""));
	cr_assert_eq(router_xsd(r, "municipality"), XSD_ENFORCE);
	cr_assert_eq(router_xsd(r, "hospital"), XSD_OFF);
	cr_assert_eq(router_xsd(r, "nobody"), XSD_OFF);
	router_free(r);
}

Test(router, route_a_type_the_endpoint_does_not_take)
{
	struct router *r = accepts_router();
	_cleanup_free_ struct codec_envelope *env = envelope(GLN_M1, GLN_M1, NULL);
	str_copy(env->letters[0].version, "XD2030C", sizeof(env->letters[0].version));
	str_copy(env->letters[1].type, "XDIS19", sizeof(env->letters[1].type));
	str_copy(env->letters[1].version, "XD1931C", sizeof(env->letters[1].version));
	const char *ep = SENTINEL;
	char why[256] = "";
	cr_assert_eq(router_route(r, env, &ep, why, sizeof(why)), ROUTE_TYPE);
	cr_assert_str_eq(ep, "municipality", "names the endpoint that refuses");
	cr_assert_str_eq(why, "endpoint municipality does not take XDIS19 (XD1931C) (letter L2; "
			      "its accepts list)");
	/* receipts pass: they answer what the endpoint sent */
	env->is_receipt = true;
	cr_assert_eq(router_route(r, env, &ep, why, sizeof(why)), ROUTE_OK);
	router_free(r);
}
