/*
 * access.c - the control socket's roles and the name look-ups behind them
 * (access.h).
 *
 * The decision is a pure function of the peer's credentials and the
 * policy. The policy's operator gid and the daemon's own user name, and the
 * user names of callers (for the audit log and changed_by), come from NSS:
 * getgrnam_r() and getpwuid_r() may wait on an LDAP server, so they run as
 * jobs on the control lane, never on the loop, one at a time. The loop
 * keeps the results: one policy and a small cache of user names.
 *
 * Invariants: at most one look-up per uid is queued; a cached name is used
 * while its refresh runs; a name that could not be looked up (an NSS
 * error) is cached as "" for a short while, so a waiting request goes on
 * with the uid alone rather than waiting for a server that does not answer
 * requests twice. A group look-up that a newer one has overtaken is
 * dropped (generation counter).
 */
#include "control/access.h"

#include "base/clock.h"
#include "base/log.h"
#include "codecs/base/mem.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#define CACHE_MAX 64
#define NAME_TTL_MS (10 * 60 * 1000)  /* names change rarely: refresh after this */
#define FAILED_TTL_MS (10 * 1000)     /* after an NSS error, try again this soon */
#define NSS_BUF_MAX (16u * 1024 * 1024) /* a group with very many members */

struct name_entry {
	uid_t uid;
	char *name;          /* NULL until the first look-up is in */
	int64_t expires;     /* mono ms; refresh after this */
	bool pending;        /* a look-up is queued or running */
};

struct access {
	struct lane *lane;
	void (*resolved)(void *arg);
	void *arg;
	size_t inflight;     /* jobs submitted and not yet done */
	bool freed;          /* access_free() ran: the last job frees it */
	struct name_entry names[CACHE_MAX];
	size_t nnames;
	unsigned group_gen;  /* bumped by every access_set_group() */
	bool policy_ready;
	char *group;         /* the configured name */
	char *self_name;
	struct access_policy policy;
};

enum job_kind { JOB_USER, JOB_GROUP };

struct lookup {
	struct access *a;
	enum job_kind kind;
	uid_t uid;           /* user: whose name; group: the daemon's */
	char *group;         /* group: the name to resolve */
	unsigned gen;
	/* results, written off the loop */
	int err;             /* 0, or the errno of an NSS failure */
	char *name;          /* user (or the daemon's) name; NULL when unknown */
	bool found;
	gid_t gid;
};

bool access_may_change(const struct control_peer *peer, const struct access_policy *pol)
{
	if (peer->uid == 0 || peer->uid == pol->self_uid)
		return true;
	if (!pol->group_found)
		return false;
	if (peer->gid == pol->group_gid)
		return true;
	for (size_t i = 0; i < peer->ngroups; i++)
		if (peer->groups[i] == pol->group_gid)
			return true;
	return false;
}

/* ---- off the loop ------------------------------------------------------- */

/* getpwuid_r() into a growing buffer: 0 with *name (NULL when the system
 * has no such user), or a positive errno. */
static int user_name(uid_t uid, char **name)
{
	size_t len = 1024;
	for (;;) {
		_cleanup_free_ char *buf = xmalloc(len);
		struct passwd pw, *res = NULL;
		int e = getpwuid_r(uid, &pw, buf, len, &res);
		if (e == ERANGE && len < NSS_BUF_MAX) {
			len *= 4;
			continue;
		}
		/* "not found" is 0 with no result; some modules say ENOENT */
		if (e == ENOENT || e == ESRCH || (e == 0 && !res)) {
			*name = NULL;
			return 0;
		}
		if (e)
			return e;
		*name = xstrdup(res->pw_name);
		return 0;
	}
}

static int group_gid(const char *group, bool *found, gid_t *gid)
{
	size_t len = 4096;
	for (;;) {
		_cleanup_free_ char *buf = xmalloc(len);
		struct group gr, *res = NULL;
		int e = getgrnam_r(group, &gr, buf, len, &res);
		if (e == ERANGE && len < NSS_BUF_MAX) {
			len *= 4;
			continue;
		}
		*found = e == 0 && res;
		if (*found)
			*gid = res->gr_gid;
		return e == ENOENT || e == ESRCH ? 0 : e;
	}
}

static void lookup_work(void *arg)
{
	struct lookup *j = arg;
	if (j->kind == JOB_USER) {
		j->err = user_name(j->uid, &j->name);
		return;
	}
	/* the daemon's own name only words refusals: "uid N" will do */
	if (user_name(j->uid, &j->name) != 0)
		j->name = NULL;
	j->err = group_gid(j->group, &j->found, &j->gid);
}

/* ---- on the loop ---------------------------------------------------------- */

static struct name_entry *entry_of(struct access *a, uid_t uid)
{
	for (size_t i = 0; i < a->nnames; i++)
		if (a->names[i].uid == uid)
			return &a->names[i];
	return NULL;
}

static void user_done(struct access *a, struct lookup *j)
{
	struct name_entry *e = entry_of(a, j->uid);
	if (!e)
		return;
	e->pending = false;
	if (j->err) {
		log_warn("event=name-lookup-failed uid=%u error=\"%s\"", (unsigned)j->uid,
			 strerror(j->err));
		if (!e->name)
			e->name = xstrdup(""); /* go on with the uid alone */
		e->expires = clock_mono_ms() + FAILED_TTL_MS;
		return;
	}
	free(e->name);
	e->name = j->name ? TAKE_PTR(j->name) : xstrdup("");
	e->expires = clock_mono_ms() + NAME_TTL_MS;
}

static void group_done(struct access *a, struct lookup *j)
{
	if (j->gen != a->group_gen)
		return; /* a newer access_set_group() has its own look-up queued */
	if (j->err)
		log_warn("event=operator-group-lookup-failed group=\"%s\" error=\"%s\" "
			 "state=only-root-and-daemon-user-may-change",
			 j->group, strerror(j->err));
	else if (!j->found)
		log_notice("event=operator-group-missing group=\"%s\" "
			   "state=only-root-and-daemon-user-may-change", j->group);
	free(a->self_name);
	a->self_name = j->name ? TAKE_PTR(j->name) : xasprintf("uid %u", (unsigned)j->uid);
	a->policy = (struct access_policy){
		.self_uid = j->uid, .self_name = a->self_name, .group = a->group,
		.group_found = j->err == 0 && j->found, .group_gid = j->gid,
	};
	a->policy_ready = true;
}

static void really_free(struct access *a)
{
	for (size_t i = 0; i < a->nnames; i++)
		free(a->names[i].name);
	free(a->group);
	free(a->self_name);
	free(a);
}

static void lookup_done(void *arg)
{
	struct lookup *j = arg;
	struct access *a = j->a;
	a->inflight--;
	if (!a->freed) {
		if (j->kind == JOB_USER)
			user_done(a, j);
		else
			group_done(a, j);
	}
	free(j->name);
	free(j->group);
	free(j);
	if (a->freed) {
		if (a->inflight == 0)
			really_free(a);
		return;
	}
	a->resolved(a->arg);
}

static void submit(struct access *a, struct lookup *j)
{
	j->a = a;
	a->inflight++;
	lane_submit(a->lane, lookup_work, lookup_done, j);
}

struct access *access_new(struct lane *lane, void (*resolved)(void *arg), void *arg)
{
	struct access *a = xcalloc(1, sizeof(*a));
	a->lane = lane;
	a->resolved = resolved;
	a->arg = arg;
	return a;
}

void access_free(struct access *a)
{
	if (!a)
		return;
	a->freed = true;
	if (a->inflight == 0)
		really_free(a);
}

void access_set_group(struct access *a, const char *group)
{
	if (!a->group || strcmp(a->group, group) != 0) {
		a->policy_ready = false; /* a new group: nobody is judged by the old one */
		free(a->group);
		a->group = xstrdup(group);
	}
	struct lookup *j = xcalloc(1, sizeof(*j));
	*j = (struct lookup){ .kind = JOB_GROUP, .uid = geteuid(), .group = xstrdup(group),
			      .gen = ++a->group_gen };
	submit(a, j);
}

const struct access_policy *access_policy(const struct access *a)
{
	return a->policy_ready ? &a->policy : NULL;
}

/* A slot for uid: a free one, else the one resolved longest ago that no
 * look-up is using; NULL when every slot waits for a look-up. */
static struct name_entry *entry_new(struct access *a, uid_t uid)
{
	struct name_entry *e = NULL;
	if (a->nnames < CACHE_MAX) {
		e = &a->names[a->nnames++];
	} else {
		for (size_t i = 0; i < a->nnames; i++)
			if (!a->names[i].pending && (!e || a->names[i].expires < e->expires))
				e = &a->names[i];
		if (!e)
			return NULL;
		free(e->name);
	}
	*e = (struct name_entry){ .uid = uid };
	return e;
}

const char *access_user(struct access *a, uid_t uid)
{
	struct name_entry *e = entry_of(a, uid);
	if (!e) {
		e = entry_new(a, uid);
		if (!e)
			return NULL; /* the cache is all look-ups: resolved() comes */
	}
	if (!e->pending && (!e->name || clock_mono_ms() >= e->expires)) {
		e->pending = true;
		struct lookup *j = xcalloc(1, sizeof(*j));
		*j = (struct lookup){ .kind = JOB_USER, .uid = uid };
		submit(a, j);
	}
	return e->name;
}
