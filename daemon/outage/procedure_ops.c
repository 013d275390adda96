/*
 * procedure_ops.c - what operators do to the procedure through
 * edibrokerctl: open and close outages by hand, set the expected downtime,
 * contact, cause and fallback contact that the next notice carries (a
 * change to an announced outage sends that notice at once), and register
 * and remove planned shutdowns. (What operators read - outages with their notices,
 * windows - comes from the store: control/views.c.)
 *
 * Every change is saved, with the operator who made it (changed_by),
 * before the command answers; with several daemons, only by the one that
 * runs the procedure (the others refuse, -EAGAIN); the timer then does whatever the change
 * makes due (e.g. an expected downtime past the threshold sends the first
 * notice at once, within the time rules).
 */
#include "outage/procedure_int.h"

#include "base/log.h"
#include "codecs/base/mem.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The operator behind a change replaces the one before (NULL keeps it: a
 * change with nobody to name). */
static void replace_by(char **field, const char *by)
{
	if (!by)
		return;
	free(*field);
	*field = xstrdup(by);
}

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return code;
}

/* Several daemons: only the holder of the procedure's lease changes its
 * records (its copy in memory is the one the timer acts on). */
static int standby(struct procedure *p, char *err, size_t errlen)
{
	if (procedure_acting(p))
		return 0;
	return fail(err, errlen, -EAGAIN,
		    "another node runs the outage procedure now: ask that node "
		    "(edibrokerctl status names it)");
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

int procedure_outage_open(struct procedure *p, const char *by, const char *endpoint,
			  const char *cause, int64_t *id, char *err, size_t errlen)
{
	if (standby(p, err, errlen) < 0)
		return -EAGAIN;
	if (!config_endpoint(p->cfg, endpoint))
		return fail(err, errlen, -ENOENT, "no endpoint '%s'", endpoint);
	struct outage *o = procedure_find_outage(p, endpoint);
	if (o)
		return fail(err, errlen, -EEXIST, "outage %lld is already open for %s",
			    (long long)o->id, endpoint);
	int64_t now = procedure_now(p);
	o = outage_new(endpoint, now, now, &p->rules);
	o->manual = true;
	o->cause_override = xstrdup(str_empty(cause) ? "reported by an operator" : cause);
	o->cause_fault = xstrdup("manual");
	o->changed_by = xstrdup_or_null(by);
	if (procedure_save_outage(p, o) < 0) {
		outage_free(o);
		return fail(err, errlen, -EIO, "store: %s", store_last_error(p->env.store));
	}
	procedure_add_outage(p, o);
	*id = o->id;
	log_warn("event=outage-opened outage=%lld endpoint=%s by=operator", (long long)o->id,
		 endpoint);
	return 0;
}

int procedure_outage_close(struct procedure *p, const char *by, int64_t id, char *err,
			   size_t errlen)
{
	if (standby(p, err, errlen) < 0)
		return -EAGAIN;
	struct outage *o = procedure_outage_by_id(p, id);
	if (!o)
		return fail(err, errlen, -ENOENT, "no open outage %lld", (long long)id);
	outage_close(o, procedure_now(p));
	replace_by(&o->changed_by, by);
	if (procedure_save_outage(p, o) < 0)
		return fail(err, errlen, -EIO, "store: %s", store_last_error(p->env.store));
	log_notice("event=outage-closed outage=%lld endpoint=%s by=operator", (long long)id,
		   o->endpoint);
	return 0;
}

/* Sets an override; true when that changed it. NULL leaves it alone. */
static bool replace(char **field, const char *value)
{
	if (!value)
		return false;
	const char *now = str_empty(value) ? NULL : value;
	bool changed = (*field == NULL) != (now == NULL) || (now && strcmp(*field, now) != 0);
	free(*field);
	*field = now ? xstrdup(now) : NULL;
	return changed;
}

int procedure_outage_set(struct procedure *p, const char *by, int64_t id, const char *expected,
			 const char *contact, const char *cause, const char *fallback, char *err,
			 size_t errlen)
{
	if (standby(p, err, errlen) < 0)
		return -EAGAIN;
	struct outage *o = procedure_outage_by_id(p, id);
	if (!o)
		return fail(err, errlen, -ENOENT, "no open outage %lld", (long long)id);
	int64_t now = procedure_now(p), end = 0;
	if (expected && parse_expected(expected, now, &end) < 0)
		return fail(err, errlen, -EINVAL,
			    "expected downtime '%s': use a duration (3h, 90m), a time (14:30, "
			    "2026-11-27 14:30) or unknown",
			    expected);
	bool changed = expected && end != o->expected_end;
	if (expected)
		outage_set_expected(o, end, now, &p->rules);
	changed |= replace(&o->contact_override, contact);
	changed |= replace(&o->cause_override, cause);
	changed |= replace(&o->fallback_override, fallback);
	/* the readers of the last notice hear of it now, not at the next interval */
	if (changed)
		outage_operator_changed(o, now);
	replace_by(&o->changed_by, by);
	if (procedure_save_outage(p, o) < 0)
		return fail(err, errlen, -EIO, "store: %s", store_last_error(p->env.store));
	log_notice("event=outage-updated outage=%lld endpoint=%s expected_ms=%lld changed=%s",
		   (long long)id, o->endpoint, (long long)o->expected_end, changed ? "yes" : "no");
	return 0;
}

/* ---- planned shutdowns -------------------------------------------------------- */

int procedure_maintenance_add(struct procedure *p, const char *by, const char *endpoint,
			      const char *from, const char *to, const char *reason,
			      const char *contact, int64_t *id, char *err, size_t errlen)
{
	if (standby(p, err, errlen) < 0)
		return -EAGAIN;
	int64_t f, t, now = procedure_now(p);
	if (!config_endpoint(p->cfg, endpoint))
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
			     .contact = str_empty(contact) ? NULL : xstrdup(contact), .created_at = now,
			     .changed_by = xstrdup_or_null(by) };
	if (procedure_save_maint(p, m) < 0) {
		maint_free(m);
		return fail(err, errlen, -EIO, "store: %s", store_last_error(p->env.store));
	}
	p->maint = xrealloc(p->maint, (p->nmaint + 1) * sizeof(*p->maint));
	p->maint[p->nmaint++] = m;
	*id = m->id;
	log_notice("event=maintenance-added maintenance=%lld endpoint=%s from_ms=%lld to_ms=%lld",
		   (long long)m->id, endpoint, (long long)f, (long long)t);
	return 0;
}

int procedure_maintenance_remove(struct procedure *p, const char *by, int64_t id, char *err,
				 size_t errlen)
{
	if (standby(p, err, errlen) < 0)
		return -EAGAIN;
	for (size_t i = 0; i < p->nmaint; i++) {
		struct maint *m = p->maint[i];
		if (m->id != id)
			continue;
		m->removed_at = procedure_now(p);
		char *was_by = m->changed_by;
		m->changed_by = xstrdup_or_null(by);
		if (procedure_save_maint(p, m) < 0) {
			m->removed_at = 0;
			free(m->changed_by);
			m->changed_by = was_by;
			return fail(err, errlen, -EIO, "store: %s", store_last_error(p->env.store));
		}
		free(was_by);
		maint_free(m);
		memmove(&p->maint[i], &p->maint[i + 1], (p->nmaint - i - 1) * sizeof(*p->maint));
		p->nmaint--;
		p->status_dirty = true;
		log_notice("event=maintenance-removed maintenance=%lld", (long long)id);
		return 0;
	}
	return fail(err, errlen, -ENOENT, "no planned shutdown %lld in force", (long long)id);
}
