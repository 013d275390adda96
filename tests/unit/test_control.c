/*
 * test_control.c - the control socket's rules that stand alone: the check
 * of free-text fields, the role decision from a uid and a list of gids, the
 * verb table's word on what changes state, the one gate in
 * control_dispatch() (refusal before the procedure is reached), and the
 * name look-ups that run on a lane (access.c) against this system's own
 * passwd and group files.
 *
 * The socket itself (bounds, timeouts, credentials from the kernel) is
 * exercised by tests/integration/test_control.py against the real daemon.
 */
#include "control/access.h"
#include "control/control.h"
#include "control/control_cmds.h"
#include "base/lanes.h"
#include "codecs/base/mem.h"
#include "tests/unit/fake_store.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <event2/event.h>
#include <string.h>
#include <unistd.h>

/* ---- free text ---------------------------------------------------------- */

static int check(const char *v, char *why, size_t len)
{
	return control_text_check("cause", v, why, len);
}

Test(control_text, plain_danish_text_passes)
{
	char why[128] = "";
	cr_assert_eq(check("Strømsvigt i EOJ, ring vagten på 7000 0000 – æøå ÆØÅ", why,
			   sizeof(why)), 0, "%s", why);
	cr_assert_eq(check("", why, sizeof(why)), 0, "an empty value clears a field");
	cr_assert_eq(check("tab-free \"quotes\" and = signs", why, sizeof(why)), 0);
}

Test(control_text, length_is_bounded_in_bytes)
{
	char v[CONTROL_TEXT_MAX + 2], why[128] = "";
	memset(v, 'a', sizeof(v));
	v[CONTROL_TEXT_MAX] = '\0';
	cr_assert_eq(check(v, why, sizeof(why)), 0, "exactly the limit: %s", why);
	v[CONTROL_TEXT_MAX] = 'a';
	v[CONTROL_TEXT_MAX + 1] = '\0';
	cr_assert_eq(check(v, why, sizeof(why)), -EINVAL);
	cr_assert_str_eq(why, "cause: longer than 300 bytes");
}

Test(control_text, control_characters_are_refused_with_their_place)
{
	static const char *const bad[] = {
		"a\x01z", "line\nbreak", "tab\there", "del\x7f", "esc\x1b[31m",
		"c1 \xc2\x85 next line", "ls \xe2\x80\xa8 sep", "ps \xe2\x80\xa9 sep",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char why[128] = "";
		cr_assert_eq(check(bad[i], why, sizeof(why)), -EINVAL, "%zu", i);
		cr_assert(strstr(why, "cause: control characters are not allowed (at byte "),
			  "%zu: %s", i, why);
	}
	char why[128];
	check("ab\ncd", why, sizeof(why));
	cr_assert_str_eq(why, "cause: control characters are not allowed (at byte 2)");
}

Test(control_text, invalid_utf8_is_refused)
{
	static const char *const bad[] = { "latin1 \xe6\xf8\xe5", "\xff", "overlong \xc0\xaf",
					   "surrogate \xed\xa0\x80", "cut \xc3" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char why[128] = "";
		cr_assert_eq(check(bad[i], why, sizeof(why)), -EINVAL, "%zu", i);
		cr_assert(strstr(why, "cause: not valid UTF-8 (at byte "), "%zu: %s", i, why);
	}
}

/* ---- the role decision -------------------------------------------------- */

#define SELF 998
#define OPS 4242

static const struct access_policy with_group = {
	.self_uid = SELF, .self_name = "edibroker", .group = "edibroker-admin",
	.group_found = true, .group_gid = OPS,
};

static bool may(uid_t uid, gid_t gid, gid_t *groups, size_t n, const struct access_policy *pol)
{
	struct control_peer p = { .pid = 1, .uid = uid, .gid = gid, .groups = groups, .ngroups = n };
	return access_may_change(&p, pol);
}

Test(control_access, root_and_the_daemons_user_may_always)
{
	struct access_policy no_group = with_group;
	no_group.group_found = false;
	cr_assert(may(0, 0, NULL, 0, &with_group));
	cr_assert(may(0, 100, NULL, 0, &no_group), "root, whatever its groups");
	cr_assert(may(SELF, 100, NULL, 0, &no_group), "the daemon's own user");
}

Test(control_access, operator_group_by_primary_or_supplementary_gid)
{
	gid_t groups[] = { 100, 27, OPS, 1000 };
	cr_assert(may(1001, OPS, NULL, 0, &with_group), "primary group");
	cr_assert(may(1001, 1001, groups, ARRAY_SIZE(groups), &with_group), "supplementary");
	cr_assert_not(may(1001, 1001, groups, 2, &with_group), "not among its groups");
	cr_assert_not(may(65534, 65534, NULL, 0, &with_group), "nobody");
}

Test(control_access, a_group_the_system_does_not_know_admits_nobody_else)
{
	struct access_policy missing = with_group;
	missing.group_found = false;
	missing.group_gid = 0; /* must not read as "members of gid 0" */
	gid_t groups[] = { 0, OPS };
	cr_assert_not(may(1001, 0, groups, 2, &missing));
	cr_assert_not(may(1001, OPS, NULL, 0, &missing));
}

/* ---- the verb table ----------------------------------------------------- */

static json_t *req(const char *text)
{
	json_error_t e;
	json_t *r = json_loads(text, 0, &e);
	cr_assert_not_null(r, "%s: %s", text, e.text);
	return r;
}

static bool mutates(const char *text)
{
	json_t *r = req(text);
	bool m = control_mutates(r);
	json_decref(r);
	return m;
}

Test(control_verbs, reading_verbs_do_not_change_state)
{
	static const char *const ro[] = {
		"{\"cmd\":\"status\"}", "{\"cmd\":\"queue\",\"endpoint\":\"a\"}",
		"{\"cmd\":\"dead\"}", "{\"cmd\":\"quarantine\"}", "{\"cmd\":\"outages\"}",
		"{\"cmd\":\"outage\",\"id\":1}", "{\"cmd\":\"outage\",\"action\":\"show\",\"id\":1}",
		"{\"cmd\":\"maintenance\"}", "{\"cmd\":\"maintenance\",\"action\":\"list\"}",
		"{\"cmd\":\"status\",\"action\":\"close\"}", /* a verb without actions ignores it */
		"{\"cmd\":\"nonsense\"}", "{\"cmd\":\"outage\",\"action\":\"nonsense\"}",
		"{\"cmd\":\"trace\",\"id\":1}", "{\"cmd\":\"trace\",\"envelope\":\"E\"}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(ro); i++)
		cr_assert_not(mutates(ro[i]), "%s", ro[i]);
}

Test(control_verbs, every_change_is_marked)
{
	static const char *const rw[] = {
		"{\"cmd\":\"outage\",\"action\":\"open\"}", "{\"cmd\":\"outage\",\"action\":\"close\"}",
		"{\"cmd\":\"outage\",\"action\":\"set\"}",
		"{\"cmd\":\"maintenance\",\"action\":\"add\"}",
		"{\"cmd\":\"maintenance\",\"action\":\"remove\"}", "{\"cmd\":\"keep\",\"id\":3}",
		"{\"cmd\":\"keep\",\"action\":\"release\",\"id\":3}",
		"{\"cmd\":\"requeue\",\"ids\":[3]}", "{\"cmd\":\"hold\",\"endpoint\":\"a\"}",
		"{\"cmd\":\"release\",\"endpoint\":\"a\"}",
		"{\"cmd\":\"retry\",\"endpoint\":\"a\"}", "{\"cmd\":\"resend\",\"id\":3}",
		"{\"cmd\":\"delete\",\"id\":3,\"reason\":\"x\"}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(rw); i++)
		cr_assert(mutates(rw[i]), "%s", rw[i]);
}

/* ---- the gate ----------------------------------------------------------- */

static struct control_env env;

static void env_setup(void)
{
	/* no procedure: a request that got past the gate would crash here */
	env = (struct control_env){ .store = fake_store_open(), .proc = NULL };
}

static void env_teardown(void)
{
	store_close(env.store);
}

TestSuite(control_gate, .init = env_setup, .fini = env_teardown, .timeout = 10);

static json_t *dispatch_as(uid_t uid, const char *user, const char *text)
{
	static struct control_peer peer;
	peer = (struct control_peer){ .pid = 42, .uid = uid, .gid = uid };
	struct control_caller who = { &peer, user, &with_group, NULL };
	json_t *r = req(text);
	json_t *ans = control_dispatch(r, &who, &env);
	json_decref(r);
	cr_assert_not_null(ans);
	return ans;
}

static const char *error_of(json_t *ans)
{
	cr_assert(json_is_false(json_object_get(ans, "ok")), "expected a refusal");
	return json_string_value(json_object_get(ans, "error"));
}

Test(control_gate, a_change_without_the_role_is_refused_by_name)
{
	json_t *ans = dispatch_as(65534, "nobody", "{\"cmd\":\"outage\",\"action\":\"close\",\"id\":1}");
	cr_assert_str_eq(error_of(ans), "permission denied: outage close needs root, the edibroker "
					"user or group edibroker-admin");
	json_decref(ans);
	ans = dispatch_as(65534, "nobody",
			  "{\"cmd\":\"maintenance\",\"action\":\"add\",\"endpoint\":\"a\","
			  "\"from\":\"2030-01-01 06:00\",\"to\":\"2030-01-01 07:00\",\"reason\":\"x\"}");
	cr_assert(strstr(error_of(ans), "permission denied: maintenance add needs "));
	json_decref(ans);
	ans = dispatch_as(65534, "nobody", "{\"cmd\":\"keep\",\"action\":\"release\",\"id\":7}");
	cr_assert(strstr(error_of(ans), "permission denied: keep release needs "));
	json_decref(ans);
	/* the actions on messages, requeue's later answer included, are refused first */
	static const char *const acts[][2] = {
		{ "{\"cmd\":\"requeue\",\"ids\":[7]}", "requeue" },
		{ "{\"cmd\":\"hold\",\"endpoint\":\"a\"}", "hold" },
		{ "{\"cmd\":\"delete\",\"id\":7,\"reason\":\"x\"}", "delete" },
		{ "{\"cmd\":\"resend\",\"id\":7}", "resend" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(acts); i++) {
		ans = dispatch_as(65534, "nobody", acts[i][0]);
		char want[64];
		snprintf(want, sizeof(want), "permission denied: %s needs ", acts[i][1]);
		cr_assert(strstr(error_of(ans), want), "%s", error_of(ans));
		json_decref(ans);
	}
}

Test(control_gate, reading_is_for_anyone)
{
	json_t *ans = dispatch_as(65534, "nobody", "{\"cmd\":\"outages\"}");
	cr_assert(json_is_true(json_object_get(ans, "ok")), "%s",
		  json_string_value(json_object_get(ans, "error")));
	cr_assert(json_is_array(json_object_get(ans, "outages")));
	json_decref(ans);
}

Test(control_gate, bad_text_is_refused_before_any_verb_runs)
{
	json_t *ans = dispatch_as(0, "root",
				  "{\"cmd\":\"outage\",\"action\":\"open\",\"endpoint\":\"a\","
				  "\"cause\":\"fake\\nevent=outage-closed\"}");
	cr_assert_str_eq(error_of(ans), "cause: control characters are not allowed (at byte 4)");
	json_decref(ans);
	char big[CONTROL_TEXT_MAX + 64];
	memset(big, 'x', sizeof(big));
	int n = snprintf(big, sizeof(big), "{\"cmd\":\"maintenance\",\"action\":\"add\",\"reason\":\"");
	memset(big + n, 'x', CONTROL_TEXT_MAX + 1);
	strcpy(big + n + CONTROL_TEXT_MAX + 1, "\"}");
	ans = dispatch_as(0, "root", big);
	cr_assert_str_eq(error_of(ans), "reason: longer than 300 bytes");
	json_decref(ans);
}

Test(control_gate, unknown_verbs_and_actions_are_named)
{
	json_t *ans = dispatch_as(0, "root", "{\"cmd\":\"reboot\"}");
	cr_assert_str_eq(error_of(ans), "unknown command 'reboot'");
	json_decref(ans);
	ans = dispatch_as(0, "root", "{\"cmd\":\"outage\",\"action\":\"delete\",\"id\":1}");
	cr_assert_str_eq(error_of(ans),
			 "outage: unknown action 'delete' (show, set, open, close)");
	json_decref(ans);
}

/* ---- look-ups on a lane ------------------------------------------------- */

static int resolved_calls;

static void on_resolved(void *arg)
{
	resolved_calls++;
}

struct lookups {
	struct event_base *base;
	struct lanes *pool;
	struct access *a;
};

static void lookups_open(struct lookups *l)
{
	resolved_calls = 0;
	l->base = event_base_new();
	l->pool = lanes_new(l->base, 0);
	cr_assert_not_null(l->pool);
	l->a = access_new(lane_new(l->pool, "control"), on_resolved, NULL);
}

/* Runs the look-ups queued so far to completion (done() on this thread). */
static void lookups_settle(struct lookups *l)
{
	cr_assert_eq(lanes_wait(l->pool, 5000), 0, "look-ups finish");
}

static void lookups_close(struct lookups *l)
{
	access_free(l->a);
	lanes_free(l->pool);
	event_base_free(l->base);
}

Test(control_lookup, a_user_name_comes_from_the_lane_then_the_cache)
{
	struct lookups l;
	lookups_open(&l);
	cr_assert_null(access_user(l.a, 0), "not known before its look-up ran");
	cr_assert_null(access_user(l.a, 0), "asking again queues nothing new");
	lookups_settle(&l);
	cr_assert_eq(resolved_calls, 1, "one look-up, one call");
	cr_assert_str_eq(access_user(l.a, 0), "root");
	cr_assert_null(access_user(l.a, 2147480000), "an unknown uid is looked up too");
	lookups_settle(&l);
	cr_assert_str_eq(access_user(l.a, 2147480000), "", "the system has no name for it");
	cr_assert_eq(resolved_calls, 2);
	lookups_close(&l);
}

Test(control_lookup, the_operator_group_resolves_to_its_gid_or_to_none)
{
	struct lookups l;
	lookups_open(&l);
	access_set_group(l.a, "root");
	cr_assert_null(access_policy(l.a), "nobody is judged before the group is known");
	lookups_settle(&l);
	const struct access_policy *pol = access_policy(l.a);
	cr_assert_not_null(pol);
	cr_assert(pol->group_found);
	cr_assert_eq(pol->group_gid, 0);
	cr_assert_eq(pol->self_uid, geteuid());
	cr_assert_str_eq(pol->group, "root");

	access_set_group(l.a, "root");
	cr_assert_not_null(access_policy(l.a), "the same group: the old answer serves meanwhile");
	lookups_settle(&l);
	access_set_group(l.a, "edibroker-no-such-group");
	cr_assert_null(access_policy(l.a), "another group: wait for it");
	lookups_settle(&l);
	pol = access_policy(l.a);
	cr_assert_not_null(pol);
	cr_assert_not(pol->group_found);
	cr_assert_str_eq(pol->group, "edibroker-no-such-group");
	lookups_close(&l);
}

Test(control_lookup, freed_while_a_look_up_runs)
{
	struct lookups l;
	lookups_open(&l);
	cr_assert_null(access_user(l.a, 0));
	access_free(l.a); /* the look-up's done() frees it, and calls nobody */
	lookups_settle(&l);
	cr_assert_eq(resolved_calls, 0);
	lanes_free(l.pool);
	event_base_free(l.base);
}
