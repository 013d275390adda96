/*
 * procedure_ops.c - what operators do to the procedure through
 * edibrokerctl: open and close outages by hand, set the expected downtime,
 * contact, cause and fallback contact that the next notice carries (a
 * change to an announced outage sends that notice at once), and register
 * and remove planned shutdowns. (What operators read - outages with their notices,
 * windows - comes from the store: control/views.c.)
 *
 * Every change is record-then-apply, so the loop never waits on the store:
 * *_prepare() checks the arguments against the procedure's state and
 * builds the record as it is to be saved (a copy: the procedure is not
 * touched), procedure_change_write() saves it on a store lane (any
 * thread: it touches only the change), and procedure_change_apply() makes
 * the same change to the procedure's state on the loop, once the store
 * has it. The change carries the operator who made it (changed_by) and
 * the instant it was made, so the state applied is the state saved.
 *
 * One operator change per outage or window is in flight at a time (a
 * second is refused with -EBUSY, "retry"): two changes to one outage would
 * each save a copy made before the other, and the later write would undo
 * the earlier. Changes to different records do not race, so they are not
 * held back by each other (a database that hangs holds one verb, not every
 * other one). While a change flies, the timer leaves its outage or window
 * alone and opens no outage of its own for an endpoint an operator is
 * opening one for (procedure.c), so the record saved is not overtaken by
 * an automatic one; and while the timer's own save of one flies
 * (procedure_jobs.c) an operator's change to it waits the same way.
 * With several daemons only the one that runs the procedure changes it
 * (the others refuse, -EAGAIN), and the write carries the procedure's
 * lease as it was when the change was prepared: a lane's handle has no
 * record fence of its own. The timer then does whatever the change
 * makes due (e.g. an expected downtime past the threshold sends the first
 * notice at once, within the time rules).
 */
#include "outage/procedure_int.h"

#include "base/log.h"
#include "codecs/base/mem.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

enum change_kind { CH_OPEN, CH_CLOSE, CH_SET, CH_MAINT_ADD, CH_MAINT_REMOVE };

struct procedure_change {
	enum change_kind kind;
	int64_t now;            /* when the operator made it */
	char *by;
	struct outage *o;       /* open, close, set: the outage as saved */
	struct maint *m;        /* add, remove: the window as saved */
	/* set: the fields given (NULL: left alone), and the end "expected" gave */
	bool has_expected;
	int64_t end;
	char *contact, *cause, *fallback;
	bool has_contact, has_cause, has_fallback;
	bool changed;           /* set: what the notices carry changed */
	struct store_fence fence; /* the procedure's lease when it was made (lease owned) */
};

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

/* The operator behind a change replaces the one before (NULL keeps it: a
 * change with nobody to name). */
static void replace_by(char **field, const char *by)
{
	if (!by)
		return;
	free(*field);
	*field = xstrdup(by);
}

/* Several daemons: only the holder of the procedure's lease changes its
 * records (its copy in memory is the one the timer acts on). */
static int standby(struct procedure *p, char *err, size_t errlen)
{
	if (procedure_acting(p) && p->stale) /* a change to a copy the store moved past */
		return fail(err, errlen, -EAGAIN,
			    "this node has just taken over the outage procedure and is reading "
			    "its state: retry in a moment");
	if (procedure_acting(p))
		return 0;
	return fail(err, errlen, -EAGAIN,
		    "another node runs the outage procedure now: ask that node "
		    "(edibrokerctl status names it)");
}

/* One change per record in flight (see the top of the file). */
static int busy(char *err, size_t errlen, const char *what, long long id)
{
	return fail(err, errlen, -EBUSY,
		    "busy: a change to %s %lld is being saved; retry when it is answered",
		    what, id);
}

static struct procedure_change *change_new(struct procedure *p, enum change_kind kind,
					   const char *by)
{
	struct procedure_change *c = xcalloc(1, sizeof(*c));
	*c = (struct procedure_change){ .kind = kind, .now = procedure_now(p),
					.by = xstrdup_or_null(by) };
	if (p->fence.lease)
		c->fence = (struct store_fence){ xstrdup(p->fence.lease), p->fence.epoch };
	return c;
}

/* The change is in flight from now until applied or dropped. */
static int start(struct procedure *p, struct procedure_change *c, struct procedure_change **out)
{
	p->changes = xrealloc(p->changes, (p->nchanges + 1) * sizeof(*p->changes));
	p->changes[p->nchanges++] = c;
	*out = c;
	return 0;
}

void procedure_change_free(struct procedure_change *c)
{
	if (!c)
		return;
	free(c->by);
	outage_free(c->o);
	maint_free(c->m);
	free(c->contact);
	free(c->cause);
	free(c->fallback);
	free((char *)c->fence.lease);
	free(c);
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

/* ---- the changes to an outage -------------------------------------------------- */

int procedure_outage_open_prepare(struct procedure *p, const char *by, const char *endpoint,
				  const char *cause, struct procedure_change **out, char *err,
				  size_t errlen)
{
	int r = standby(p, err, errlen);
	if (r < 0)
		return r;
	if (!config_endpoint(p->cfg, endpoint))
		return fail(err, errlen, -ENOENT, "no endpoint '%s'", endpoint);
	if (procedure_busy(p, 0, 0, endpoint, true))
		return fail(err, errlen, -EBUSY,
			    "busy: an outage of %s is being opened; retry when it is answered",
			    endpoint);
	struct outage *o = procedure_find_outage(p, endpoint);
	if (o)
		return fail(err, errlen, -EEXIST, "outage %lld is already open for %s",
			    (long long)o->id, endpoint);
	struct procedure_change *c = change_new(p, CH_OPEN, by);
	c->o = o = outage_new(endpoint, c->now, c->now, &p->rules);
	o->manual = true;
	o->cause_override = xstrdup(str_empty(cause) ? "reported by an operator" : cause);
	o->cause_fault = xstrdup("manual");
	o->changed_by = xstrdup_or_null(by);
	return start(p, c, out);
}

int procedure_outage_close_prepare(struct procedure *p, const char *by, int64_t id,
				   struct procedure_change **out, char *err, size_t errlen)
{
	int r = standby(p, err, errlen);
	if (r < 0)
		return r;
	/* a closed one stays in the procedure until the next tick drops it */
	struct outage *o = procedure_outage_by_id(p, id);
	if (!o || !outage_is_open(o))
		return fail(err, errlen, -ENOENT, "no open outage %lld", (long long)id);
	if (procedure_busy(p, id, 0, NULL, true))
		return busy(err, errlen, "outage", (long long)id);
	struct procedure_change *c = change_new(p, CH_CLOSE, by);
	c->o = outage_dup(o);
	outage_close(c->o, c->now);
	replace_by(&c->o->changed_by, by);
	return start(p, c, out);
}

/* Sets an override; true when that changed it. has false leaves it alone. */
static bool replace(char **field, bool has, const char *value)
{
	if (!has)
		return false;
	const char *now = str_empty(value) ? NULL : value;
	bool changed = (*field == NULL) != (now == NULL) || (now && strcmp(*field, now) != 0);
	free(*field);
	*field = now ? xstrdup(now) : NULL;
	return changed;
}

/* The operator's set, made to o (the copy to save, then the procedure's
 * own): the same change from the same instant, so both end up alike. */
static bool set_fields(struct procedure *p, const struct procedure_change *c, struct outage *o)
{
	bool changed = c->has_expected && c->end != o->expected_end;
	if (c->has_expected)
		outage_set_expected(o, c->end, c->now, &p->rules);
	changed |= replace(&o->contact_override, c->has_contact, c->contact);
	changed |= replace(&o->cause_override, c->has_cause, c->cause);
	changed |= replace(&o->fallback_override, c->has_fallback, c->fallback);
	/* the readers of the last notice hear of it now, not at the next interval */
	if (changed)
		outage_operator_changed(o, c->now);
	replace_by(&o->changed_by, c->by);
	return changed;
}

int procedure_outage_set_prepare(struct procedure *p, const char *by, int64_t id,
				 const char *expected, const char *contact, const char *cause,
				 const char *fallback, struct procedure_change **out, char *err,
				 size_t errlen)
{
	int r = standby(p, err, errlen);
	if (r < 0)
		return r;
	/* a closed one stays in the procedure until the next tick drops it */
	struct outage *o = procedure_outage_by_id(p, id);
	if (!o || !outage_is_open(o))
		return fail(err, errlen, -ENOENT, "no open outage %lld", (long long)id);
	if (procedure_busy(p, id, 0, NULL, true))
		return busy(err, errlen, "outage", (long long)id);
	int64_t now = procedure_now(p), end = 0;
	if (expected && parse_expected(expected, now, &end) < 0)
		return fail(err, errlen, -EINVAL,
			    "expected downtime '%s': use a duration (3h, 90m), a time (14:30, "
			    "2026-11-27 14:30) or unknown",
			    expected);
	struct procedure_change *c = change_new(p, CH_SET, by);
	c->now = now;
	c->has_expected = expected != NULL;
	c->end = end;
	c->has_contact = contact != NULL;
	c->contact = xstrdup_or_null(contact);
	c->has_cause = cause != NULL;
	c->cause = xstrdup_or_null(cause);
	c->has_fallback = fallback != NULL;
	c->fallback = xstrdup_or_null(fallback);
	c->o = outage_dup(o);
	c->changed = set_fields(p, c, c->o);
	return start(p, c, out);
}

/* ---- planned shutdowns -------------------------------------------------------- */

int procedure_maintenance_add_prepare(struct procedure *p, const char *by, const char *endpoint,
				      const char *from, const char *to, const char *reason,
				      const char *contact, struct procedure_change **out,
				      char *err, size_t errlen)
{
	int r = standby(p, err, errlen);
	if (r < 0)
		return r;
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
	struct procedure_change *c = change_new(p, CH_MAINT_ADD, by);
	c->now = now;
	c->m = xcalloc(1, sizeof(*c->m));
	*c->m = (struct maint){ .endpoint = xstrdup(endpoint), .from = f, .to = t,
				.reason = xstrdup(reason),
				.contact = str_empty(contact) ? NULL : xstrdup(contact),
				.created_at = now, .changed_by = xstrdup_or_null(by) };
	return start(p, c, out);
}

int procedure_maintenance_remove_prepare(struct procedure *p, const char *by, int64_t id,
					 struct procedure_change **out, char *err, size_t errlen)
{
	int r = standby(p, err, errlen);
	if (r < 0)
		return r;
	size_t at;
	struct maint *m = procedure_maint_by_id(p, id, &at);
	if (!m)
		return fail(err, errlen, -ENOENT, "no planned shutdown %lld in force",
			    (long long)id);
	if (procedure_busy(p, 0, id, NULL, true))
		return busy(err, errlen, "planned shutdown", (long long)id);
	struct procedure_change *c = change_new(p, CH_MAINT_REMOVE, by);
	c->m = maint_dup(m);
	c->m->removed_at = c->now;
	replace_by(&c->m->changed_by, by);
	return start(p, c, out);
}

/* ---- writing and applying ------------------------------------------------------- */

int procedure_change_write(struct procedure_change *c, struct store *view, char *err,
			   size_t errlen)
{
	/* view may be a lane's handle, which has no fence of its own */
	store_fence_records(view, c->fence.lease ? &c->fence : NULL);
	int r = c->o ? store_outage_save(view, c->o) : store_maintenance_save(view, c->m);
	if (r < 0)
		return fail(err, errlen, r, "store: %s", store_last_error(view));
	return 0;
}

int64_t procedure_change_id(const struct procedure_change *c)
{
	return c->o ? c->o->id : c->m->id;
}

/* The lane writes a new record's id: only an open's endpoint and a
 * change to an existing record's id are read here while it flies. */
static bool change_matches(const struct procedure_change *c, int64_t outage_id,
			   int64_t maint_id, const char *opening)
{
	if (opening)
		return c->kind == CH_OPEN && strcmp(c->o->endpoint, opening) == 0;
	if (outage_id)
		return (c->kind == CH_CLOSE || c->kind == CH_SET) && c->o->id == outage_id;
	return c->kind == CH_MAINT_REMOVE && c->m->id == maint_id;
}

bool procedure_change_is(const struct procedure *p, int64_t outage_id, int64_t maint_id,
			 const char *opening)
{
	for (size_t i = 0; i < p->nchanges; i++)
		if (change_matches(p->changes[i], outage_id, maint_id, opening))
			return true;
	return false;
}

void procedure_change_drop(struct procedure *p, struct procedure_change *c)
{
	for (size_t i = 0; i < p->nchanges; i++)
		if (p->changes[i] == c) {
			p->changes[i] = p->changes[--p->nchanges];
			return;
		}
}

static void apply_open(struct procedure *p, struct procedure_change *c)
{
	/* a takeover read it from the store meanwhile: it is there already */
	if (procedure_outage_by_id(p, c->o->id))
		return;
	struct outage *o = TAKE_PTR(c->o);
	procedure_add_outage(p, o);
	log_warn("event=outage-opened outage=%lld endpoint=%s by=operator", (long long)o->id,
		 o->endpoint);
}

static void apply_close(struct procedure *p, struct procedure_change *c)
{
	struct outage *o = procedure_outage_by_id(p, c->o->id);
	if (o) {
		outage_close(o, c->now);
		replace_by(&o->changed_by, c->by);
	}
	log_notice("event=outage-closed outage=%lld endpoint=%s by=operator", (long long)c->o->id,
		   c->o->endpoint);
}

static void apply_set(struct procedure *p, struct procedure_change *c)
{
	struct outage *o = procedure_outage_by_id(p, c->o->id);
	if (o)
		(void)set_fields(p, c, o);
	log_notice("event=outage-updated outage=%lld endpoint=%s expected_ms=%lld changed=%s",
		   (long long)c->o->id, c->o->endpoint, (long long)c->o->expected_end,
		   c->changed ? "yes" : "no");
}

static void apply_maint_add(struct procedure *p, struct procedure_change *c)
{
	struct maint *m = TAKE_PTR(c->m);
	if (procedure_maint_by_id(p, m->id, NULL)) { /* read by a takeover meanwhile */
		c->m = m;
		return;
	}
	p->maint = xrealloc(p->maint, (p->nmaint + 1) * sizeof(*p->maint));
	p->maint[p->nmaint++] = m;
	log_notice("event=maintenance-added maintenance=%lld endpoint=%s from_ms=%lld to_ms=%lld",
		   (long long)m->id, m->endpoint, (long long)m->from, (long long)m->to);
}

static void apply_maint_remove(struct procedure *p, struct procedure_change *c)
{
	size_t at;
	struct maint *m = procedure_maint_by_id(p, c->m->id, &at);
	if (m) {
		maint_free(m);
		memmove(&p->maint[at], &p->maint[at + 1], (p->nmaint - at - 1) * sizeof(*p->maint));
		p->nmaint--;
	}
	log_notice("event=maintenance-removed maintenance=%lld", (long long)c->m->id);
}

void procedure_change_apply(struct procedure *p, struct procedure_change *c)
{
	switch (c->kind) {
	case CH_OPEN:
		apply_open(p, c);
		break;
	case CH_CLOSE:
		apply_close(p, c);
		break;
	case CH_SET:
		apply_set(p, c);
		break;
	case CH_MAINT_ADD:
		apply_maint_add(p, c);
		break;
	case CH_MAINT_REMOVE:
		apply_maint_remove(p, c);
		break;
	}
	p->status_dirty = true;
	procedure_change_drop(p, c);
}

/* ---- the same, at once, on the procedure's own store --------------------------- */

/* Writes and applies a prepared change on env.store: for callers without
 * a loop to come back to (tests). */
static int run_now(struct procedure *p, int r, struct procedure_change *c, int64_t *id,
		   char *err, size_t errlen)
{
	if (r < 0)
		return r;
	r = procedure_change_write(c, p->env.store, err, errlen);
	if (r < 0) {
		procedure_change_drop(p, c);
		procedure_change_free(c);
		return -EIO;
	}
	if (id)
		*id = procedure_change_id(c);
	procedure_change_apply(p, c);
	procedure_change_free(c);
	return 0;
}

int procedure_outage_open(struct procedure *p, const char *by, const char *endpoint,
			  const char *cause, int64_t *id, char *err, size_t errlen)
{
	struct procedure_change *c = NULL;
	int r = procedure_outage_open_prepare(p, by, endpoint, cause, &c, err, errlen);
	return run_now(p, r, c, id, err, errlen);
}

int procedure_outage_set(struct procedure *p, const char *by, int64_t id, const char *expected,
			 const char *contact, const char *cause, const char *fallback, char *err,
			 size_t errlen)
{
	struct procedure_change *c = NULL;
	int r = procedure_outage_set_prepare(p, by, id, expected, contact, cause, fallback, &c,
					     err, errlen);
	return run_now(p, r, c, NULL, err, errlen);
}
