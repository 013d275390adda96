/*
 * access.h - who may change the broker's state through the control socket,
 * and the names behind the numbers the kernel gives.
 *
 * Roles: every client that can reach the socket may read; changing state
 * (opening and closing outages, planned shutdowns, keeping dead letters)
 * is for root, the daemon's own user and members of [control]
 * operator_group. The kernel vouches for the client (SO_PEERCRED,
 * SO_PEERGROUPS); access_may_change() decides from that alone.
 *
 * Names: the operator group's gid and the users' names come from NSS,
 * which may be LDAP and may block, so every look-up runs on the control
 * subsystem's lane and its result is cached; resolved(arg) runs on the loop
 * after each look-up, so requests waiting for a name can go on.
 */
#ifndef EDIBROKER_ACCESS_H
#define EDIBROKER_ACCESS_H

#include "base/lanes.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* A client of the socket, as the kernel reported it at connect time. */
struct control_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;          /* primary group */
	gid_t *groups;      /* supplementary groups (SO_PEERGROUPS); may include gid */
	size_t ngroups;
};

/* What a decision needs besides the peer. */
struct access_policy {
	uid_t self_uid;         /* the daemon's own user */
	const char *self_name;  /* its name ("edibroker"), for refusals */
	const char *group;      /* operator_group as configured */
	bool group_found;       /* group names a group the system knows */
	gid_t group_gid;        /* its gid when found */
};

/* True when peer may change state under pol: root, the daemon's user, or a
 * member of the operator group (primary or supplementary). */
bool access_may_change(const struct control_peer *peer, const struct access_policy *pol);

struct access;

/* A name cache whose look-ups run on lane (borrowed; it must outlive the
 * cache's jobs). resolved(arg) runs on the loop after every look-up. */
struct access *access_new(struct lane *lane, void (*resolved)(void *arg), void *arg);
/* Frees now, or once the look-ups still running have finished (a look-up
 * stuck in NSS keeps it). resolved is not called again. Accepts NULL. */
void access_free(struct access *a);

/* Resolves group (start-up and every reload, so a group created later is
 * found after a SIGHUP) and the daemon's own user name. With a new name,
 * access_policy() is NULL until the look-up is in; with the same name the
 * previous result serves meanwhile. */
void access_set_group(struct access *a, const char *group);
/* The policy, or NULL while the operator group's first look-up runs. */
const struct access_policy *access_policy(const struct access *a);
/* uid's user name ("" when the system knows none), or NULL while it is
 * looked up: this call starts the look-up, resolved() says when it is in.
 * A cached name is refreshed now and then without waiting for it. Valid
 * until the next call into the cache. */
const char *access_user(struct access *a, uid_t uid);

#endif
