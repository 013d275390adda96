/*
 * procedure_ops.c - what operators do to the procedure through
 * edibrokerctl: open and close outages by hand, set the expected downtime,
 * contact and cause that the next notice carries, register and remove
 * planned shutdowns, and read outages with their notices.
 *
 * Every change is saved before the command answers; the timer then does
 * whatever the change makes due (e.g. an expected downtime past the
 * threshold sends the first notice at once, within the time rules).
 */
#include "outage/procedure_int.h"

#include "base/clock.h"
#include "base/log.h"
#include "codecs/base/mem.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return code;
}

/* "3h" / "90m" from now, a local time "YYYY-MM-DD HH:MM", "HH:MM" today or
 * tomorrow, or "unknown" / "" (0). */
static int parse_expected(const char *s, int64_t now, int64_t *end)
{
	int64_t ms;
	if (str_empty(s) || strcmp(s, "unknown") == 0 || strcmp(s, "ukendt") == 0) {
		*end = 0;
		return 0;
	}
	if (config_parse_duration(s, &ms) == 0) {
		*end = now + ms;
		return 0;
	}
	if (timerules_parse_time(s, end) == 0)
		return 0;
	char today[32], full[48];
	timerules_format_local(now, today, sizeof(today));
	snprintf(full, sizeof(full), "%.10s %s", today, s);
	if (strlen(s) == 5 && timerules_parse_time(full, end) == 0) {
		if (*end <= now)
			*end += 24 * 3600 * 1000LL; /* next occurrence of that time */
		return 0;
	}
	return -EINVAL;
}

int procedure_outage_open(struct procedure *p, const char *endpoint, const char *cause,
			  int64_t *id, char *err, size_t errlen)
{
	if (!config_endpoint(p->b->cfg, endpoint))
		return fail(err, errlen, -ENOENT, "no endpoint '%s'", endpoint);
	struct outage *o = procedure_find_outage(p, endpoint);
	if (o)
		return fail(err, errlen, -EEXIST, "outage %lld is already open for %s",
			    (long long)o->id, endpoint);
	int64_t now = clock_wall_ms();
	o = outage_new(endpoint, now, now, &p->rules);
	o->manual = true;
	o->cause_override = xstrdup(str_empty(cause) ? "reported by an operator" : cause);
	o->cause_fault = xstrdup("manual");
	if (procedure_save_outage(p, o) < 0) {
		outage_free(o);
		return fail(err, errlen, -EIO, "store: %s", store_last_error(p->b->store));
	}
	procedure_add_outage(p, o);
	*id = o->id;
	log_warn("event=outage-opened outage=%lld endpoint=%s by=operator", (long long)o->id,
		 endpoint);
	return 0;
}

int procedure_outage_close(struct procedure *p, int64_t id, char *err, size_t errlen)
{
	struct outage *o = procedure_outage_by_id(p, id);
	if (!o)
		return fail(err, errlen, -ENOENT, "no open outage %lld", (long long)id);
	outage_close(o, clock_wall_ms());
	if (procedure_save_outage(p, o) < 0)
		return fail(err, errlen, -EIO, "store: %s", store_last_error(p->b->store));
	log_notice("event=outage-closed outage=%lld endpoint=%s by=operator", (long long)id,
		   o->endpoint);
	return 0;
}

static void replace(char **field, const char *value)
{
	free(*field);
	*field = str_empty(value) ? NULL : xstrdup(value);
}

int procedure_outage_set(struct procedure *p, int64_t id, const char *expected,
			 const char *contact, const char *cause, char *err, size_t errlen)
{
	struct outage *o = procedure_outage_by_id(p, id);
	if (!o)
		return fail(err, errlen, -ENOENT, "no open outage %lld", (long long)id);
	int64_t now = clock_wall_ms(), end = 0;
	if (expected && parse_expected(expected, now, &end) < 0)
		return fail(err, errlen, -EINVAL,
			    "expected downtime '%s': use a duration (3h, 90m), a time (14:30, "
			    "2026-11-27 14:30) or unknown",
			    expected);
	if (expected)
		outage_set_expected(o, end, now, &p->rules);
	if (contact)
		replace(&o->contact_override, contact);
	if (cause)
		replace(&o->cause_override, cause);
	if (procedure_save_outage(p, o) < 0)
		return fail(err, errlen, -EIO, "store: %s", store_last_error(p->b->store));
	log_notice("event=outage-updated outage=%lld endpoint=%s expected_ms=%lld", (long long)id,
		   o->endpoint, (long long)o->expected_end);
	return 0;
}

/* ---- reading -------------------------------------------------------------- */

static json_t *time_json(int64_t t)
{
	if (!t)
		return json_null();
	char buf[32];
	timerules_format_local(t, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *opt_str(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *outage_json(struct procedure *p, const struct store_outage *o)
{
	json_t *j = json_pack("{s:I, s:s, s:s, s:b}", "id", (json_int_t)o->id, "endpoint",
			      o->endpoint, "state", o->state, "manual", o->manual);
	const struct { const char *key; int64_t t; } times[] = {
		{ "started", o->started_at },   { "declared", o->declared_at },
		{ "ended", o->ended_at },       { "resolved", o->resolved_at },
		{ "closed", o->closed_at },     { "announced", o->announced_at },
		{ "last_notice", o->last_notice_at }, { "next_notice_due", o->due_at },
		{ "expected_end", o->expected_end },
	};
	for (size_t i = 0; i < ARRAY_SIZE(times); i++) {
		json_object_set_new(j, times[i].key, time_json(times[i].t));
		char key[48];
		snprintf(key, sizeof(key), "%s_ms", times[i].key);
		json_object_set_new(j, key, times[i].t ? json_integer(times[i].t) : json_null());
	}
	int64_t end = o->ended_at ? o->ended_at : clock_wall_ms();
	json_object_set_new(j, "duration_s", json_integer((end - o->started_at) / 1000));
	json_object_set_new(j, "cause_fault", opt_str(o->cause_fault));
	json_object_set_new(j, "cause_error", opt_str(o->cause_error));
	json_object_set_new(j, "cause", opt_str(o->cause_override));
	json_object_set_new(j, "contact", opt_str(o->contact_override));
	json_object_set_new(j, "maintenance_id",
			    o->maintenance_id ? json_integer(o->maintenance_id) : json_null());
	json_object_set_new(j, "delivered_late", json_integer(o->delivered_late));
	return j;
}

struct list_ctx {
	struct procedure *p;
	json_t *arr;
};

static int add_outage(const struct store_outage *o, void *arg)
{
	struct list_ctx *c = arg;
	json_array_append_new(c->arr, outage_json(c->p, o));
	return 0;
}

json_t *procedure_outages_json(struct procedure *p, bool all, char *err, size_t errlen)
{
	struct list_ctx c = { p, json_array() };
	int64_t since = all ? 0 : clock_wall_ms() - 7 * 24 * 3600 * 1000LL;
	if (store_ops(p->b->store)->outage_list(store_backend(p->b->store), since, 500, add_outage,
						&c) < 0) {
		json_decref(c.arr);
		fail(err, errlen, -EIO, "store: %s", store_last_error(p->b->store));
		return NULL;
	}
	return c.arr;
}

struct notice_ctx {
	struct procedure *p;
	json_t *arr;
};

static int add_send(const struct store_send *s, void *arg)
{
	json_array_append_new(arg, json_pack("{s:s, s:o, s:I, s:b, s:s, s:s}", "channel",
					     s->channel, "at", time_json(s->at), "at_ms",
					     (json_int_t)s->at, "ok", s->ok, "to",
					     s->recipients ? s->recipients : "", "error",
					     s->error ? s->error : ""));
	return 0;
}

static int add_notice(const struct store_notice *n, void *arg)
{
	struct notice_ctx *c = arg;
	json_t *sends = json_array();
	store_ops(c->p->b->store)->send_list(store_backend(c->p->b->store), n->id, add_send, sends);
	json_array_append_new(
		c->arr,
		json_pack("{s:I, s:s, s:s, s:s, s:s, s:o, s:I, s:s, s:i, s:o, s:s}", "id",
			  (json_int_t)n->id, "kind", n->kind, "audience", n->audience ? n->audience : "",
			  "recipients", n->recipients ? n->recipients : "", "subject",
			  n->subject ? n->subject : "", "created", time_json(n->created_at),
			  "created_ms", (json_int_t)n->created_at, "pending", n->pending ? n->pending : "",
			  "attempts", n->attempts, "sends", sends, "body", n->body ? n->body : ""));
	return 0;
}

static int found_outage(const struct store_outage *o, void *arg)
{
	struct list_ctx *c = arg;
	c->arr = outage_json(c->p, o);
	return 0;
}

json_t *procedure_outage_json(struct procedure *p, int64_t id, char *err, size_t errlen)
{
	const struct store_backend_ops *ops = store_ops(p->b->store);
	void *be = store_backend(p->b->store);
	struct list_ctx c = { p, NULL };
	int r = ops->outage_get(be, id, found_outage, &c);
	if (r <= 0) {
		fail(err, errlen, r < 0 ? -EIO : -ENOENT, r < 0 ? "store: %s" : "no outage %s",
		     r < 0 ? store_last_error(p->b->store) : "with that id");
		return NULL;
	}
	struct notice_ctx nc = { p, json_array() };
	ops->notice_list(be, id, 0, add_notice, &nc);
	json_object_set_new(c.arr, "notices", nc.arr);
	return c.arr;
}

/* ---- planned shutdowns -------------------------------------------------------- */

int procedure_maintenance_add(struct procedure *p, const char *endpoint, const char *from,
			      const char *to, const char *reason, const char *contact, int64_t *id,
			      char *err, size_t errlen)
{
	int64_t f, t, now = clock_wall_ms();
	if (!config_endpoint(p->b->cfg, endpoint))
		return fail(err, errlen, -ENOENT, "no endpoint '%s'", endpoint);
	if (str_empty(from) || timerules_parse_time(from, &f) < 0)
		return fail(err, errlen, -EINVAL, "--from '%s': use YYYY-MM-DD HH:MM (local time)",
			    from ? from : "");
	if (str_empty(to) || timerules_parse_time(to, &t) < 0)
		return fail(err, errlen, -EINVAL, "--to '%s': use YYYY-MM-DD HH:MM (local time)",
			    to ? to : "");
	if (t <= f)
		return fail(err, errlen, -EINVAL, "--to must be after --from");
	if (t <= now)
		return fail(err, errlen, -EINVAL, "the window has already ended");
	if (str_empty(reason))
		return fail(err, errlen, -EINVAL, "--reason is required");
	struct maint *m = xcalloc(1, sizeof(*m));
	*m = (struct maint){ .endpoint = xstrdup(endpoint), .from = f, .to = t,
			     .reason = xstrdup(reason),
			     .contact = str_empty(contact) ? NULL : xstrdup(contact), .created_at = now };
	if (procedure_save_maint(p, m) < 0) {
		maint_free(m);
		return fail(err, errlen, -EIO, "store: %s", store_last_error(p->b->store));
	}
	p->maint = xrealloc(p->maint, (p->nmaint + 1) * sizeof(*p->maint));
	p->maint[p->nmaint++] = m;
	*id = m->id;
	log_notice("event=maintenance-added maintenance=%lld endpoint=%s from_ms=%lld to_ms=%lld",
		   (long long)m->id, endpoint, (long long)f, (long long)t);
	return 0;
}

int procedure_maintenance_remove(struct procedure *p, int64_t id, char *err, size_t errlen)
{
	for (size_t i = 0; i < p->nmaint; i++) {
		struct maint *m = p->maint[i];
		if (m->id != id)
			continue;
		m->removed_at = clock_wall_ms();
		if (procedure_save_maint(p, m) < 0) {
			m->removed_at = 0;
			return fail(err, errlen, -EIO, "store: %s", store_last_error(p->b->store));
		}
		maint_free(m);
		memmove(&p->maint[i], &p->maint[i + 1], (p->nmaint - i - 1) * sizeof(*p->maint));
		p->nmaint--;
		p->status_dirty = true;
		log_notice("event=maintenance-removed maintenance=%lld", (long long)id);
		return 0;
	}
	return fail(err, errlen, -ENOENT, "no planned shutdown %lld in force", (long long)id);
}

static int add_maint(const struct store_maintenance *m, void *arg)
{
	struct list_ctx *c = arg;
	json_t *j = json_pack("{s:I, s:s, s:o, s:o, s:I, s:I, s:s, s:o}", "id", (json_int_t)m->id,
			      "endpoint", m->endpoint, "from", time_json(m->from), "to",
			      time_json(m->to), "from_ms", (json_int_t)m->from, "to_ms",
			      (json_int_t)m->to, "reason", m->reason ? m->reason : "", "contact",
			      opt_str(m->contact));
	json_object_set_new(j, "announced", time_json(m->announced_at));
	json_object_set_new(j, "removed", time_json(m->removed_at));
	json_object_set_new(j, "ended", time_json(m->ended_at));
	json_array_append_new(c->arr, j);
	return 0;
}

json_t *procedure_maintenance_json(struct procedure *p, bool all, char *err, size_t errlen)
{
	struct list_ctx c = { p, json_array() };
	if (store_ops(p->b->store)->maintenance_list(store_backend(p->b->store), all, add_maint,
						     &c) < 0) {
		json_decref(c.arr);
		fail(err, errlen, -EIO, "store: %s", store_last_error(p->b->store));
		return NULL;
	}
	return c.arr;
}
