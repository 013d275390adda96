/*
 * records.c - copying and freeing the outage procedure's records, and the
 * names of the outage states as the store keeps them.
 *
 * A record is the procedure's working copy and what the store saves; the
 * backends hand back records whose strings they own for the duration of a
 * row callback, so keeping one means a deep copy (the *_dup functions).
 * The state names are part of the stored format: never rename one.
 */
#include "store/records.h"

#include "codecs/base/mem.h"

#include <string.h>

static const char *const state_names[] = { "open", "announced", "recovering", "resolved",
					   "closed" };

const char *outage_state_name(enum outage_state s)
{
	return (size_t)s < ARRAY_SIZE(state_names) ? state_names[s] : "?";
}

int outage_state_from_name(const char *name)
{
	for (size_t i = 0; name && i < ARRAY_SIZE(state_names); i++)
		if (strcmp(state_names[i], name) == 0)
			return (int)i;
	return -1;
}

struct outage *outage_dup(const struct outage *o)
{
	struct outage *c = xmalloc(sizeof(*c));
	*c = *o;
	c->endpoint = xstrdup_or_null(o->endpoint);
	c->cause_fault = xstrdup_or_null(o->cause_fault);
	c->cause_error = xstrdup_or_null(o->cause_error);
	c->cause_override = xstrdup_or_null(o->cause_override);
	c->contact_override = xstrdup_or_null(o->contact_override);
	c->fallback_override = xstrdup_or_null(o->fallback_override);
	c->changed_by = xstrdup_or_null(o->changed_by);
	return c;
}

void outage_free(struct outage *o)
{
	if (!o)
		return;
	free(o->endpoint);
	free(o->cause_fault);
	free(o->cause_error);
	free(o->cause_override);
	free(o->contact_override);
	free(o->fallback_override);
	free(o->changed_by);
	free(o);
}

struct maint *maint_dup(const struct maint *m)
{
	struct maint *c = xmalloc(sizeof(*c));
	*c = *m;
	c->endpoint = xstrdup_or_null(m->endpoint);
	c->reason = xstrdup_or_null(m->reason);
	c->contact = xstrdup_or_null(m->contact);
	c->changed_by = xstrdup_or_null(m->changed_by);
	return c;
}

void maint_free(struct maint *m)
{
	if (!m)
		return;
	free(m->endpoint);
	free(m->reason);
	free(m->contact);
	free(m->changed_by);
	free(m);
}

struct notice_record *notice_record_dup(const struct notice_record *n)
{
	struct notice_record *c = xmalloc(sizeof(*c));
	*c = *n;
	c->kind = xstrdup_or_null(n->kind);
	c->audience = xstrdup_or_null(n->audience);
	c->recipients = xstrdup_or_null(n->recipients);
	c->subject = xstrdup_or_null(n->subject);
	c->body = xstrdup_or_null(n->body);
	c->payload = xstrdup_or_null(n->payload);
	c->pending = xstrdup_or_null(n->pending);
	return c;
}

void notice_record_free(struct notice_record *n)
{
	if (!n)
		return;
	free(n->kind);
	free(n->audience);
	free(n->recipients);
	free(n->subject);
	free(n->body);
	free(n->payload);
	free(n->pending);
	free(n);
}
