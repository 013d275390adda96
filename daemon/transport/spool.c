/*
 * spool.c - the spool transport's entry points: create, destroy and the
 * operations table the broker uses.
 *
 * Declares the spool's configuration: the keys of a spool endpoint
 * (struct spool_conf) and the [spool] section (struct spool_section), read
 * by conf/config.c like the broker's own keys. What the syntax cannot say -
 * that a file_group exists and the daemon may give files to it - is checked
 * by spool_check() before the loop runs (start-up, --check-config), and
 * again by the first delivery job of each spool, on its lane, after a
 * reload.
 *
 * A spool copies its endpoint's settings when created; a reload that
 * changes them creates a new spool and retires the old one (see deliver.c),
 * so the jobs on its lanes only ever read settings that cannot change. It
 * is freed when the last of its jobs and ingest submissions has completed
 * (spool_release), however long a hung share keeps one of them.
 */
#include "transport/spool.h"

#include "codecs/base/mem.h"
#include "base/fileio.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SPOOL_NAME "spool"
#define SPOOL_KEY(key, t, field) CONF_KEY(struct spool_conf, key, t, field)
#define FILE_MODE_DEFAULT 0640

/* A group name as useradd/groupadd take it: no look-up here (that blocks). */
static int check_group_name(const char *v, char *why, size_t len)
{
	size_t n = strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");
	if (n > 0 && n <= 32 && v[n] == '\0' && (isalpha((unsigned char)v[0]) || v[0] == '_'))
		return 0;
	snprintf(why, len, "'%s' is not a group name (letters, digits, '.', '_', '-'; at most 32)",
		 v);
	return -EINVAL;
}

/* "0640": three or four octal digits; never setuid, setgid or sticky (0777
 * at most), never writable by others. */
static int parse_file_mode(const char *v, mode_t *mode)
{
	size_t n = strspn(v, "01234567");
	if ((n != 3 && n != 4) || v[n] != '\0')
		return -EINVAL;
	unsigned long m = strtoul(v, NULL, 8);
	if (m > 0777 || (m & 0002))
		return -EINVAL;
	*mode = (mode_t)m;
	return 0;
}

static int check_file_mode(const char *v, char *why, size_t len)
{
	mode_t m;
	if (parse_file_mode(v, &m) == 0)
		return 0;
	snprintf(why, len, "'%s' is not an octal file mode up to 0777 that others cannot write "
		 "(e.g. 0640)", v);
	return -EINVAL;
}

/*
 * The keys of a spool endpoint. inbox and outbox are required, so a
 * config without them fails at load with its file and line. No folder may
 * serve two roles (CONF_FOLDER): a shared inbox would be picked up twice, an
 * outbox that is an inbox would loop; endpoints may share a quarantine.
 */
static const struct conf_key spool_endpoint_keys[] = {
	{ SPOOL_KEY("inbox", CONF_PATH, inbox),
	  .flags = CONF_RELOAD | CONF_OPTIONAL | CONF_REQUIRED | CONF_FOLDER },
	{ SPOOL_KEY("outbox", CONF_PATH, outbox),
	  .flags = CONF_RELOAD | CONF_OPTIONAL | CONF_REQUIRED | CONF_FOLDER },
	{ SPOOL_KEY("quarantine", CONF_PATH, quarantine), .def = "quarantine/" CONF_ENDPOINT_NAME,
	  .flags = CONF_RELOAD | CONF_OPTIONAL | CONF_FOLDER | CONF_SHARED },
	{ SPOOL_KEY("create_dirs", CONF_BOOL, create_dirs), .def = "no", .flags = CONF_RELOAD },
	{ SPOOL_KEY("pickup_timeout", CONF_DURATION, pickup_timeout_ms), .def = "0", .min = 100,
	  .max = 30 * CONF_DAY, .flags = CONF_RELOAD | CONF_ZERO_OFF },
	{ SPOOL_KEY("file_group", CONF_STR, file_group), .check = check_group_name,
	  .flags = CONF_RELOAD | CONF_OPTIONAL },
	{ SPOOL_KEY("file_mode", CONF_STR, file_mode), .def = "0640", .check = check_file_mode,
	  .flags = CONF_RELOAD },
};

static const struct conf_key spool_section_keys[] = {
	{ CONF_KEY(struct spool_section, "rescan_interval", CONF_DURATION, rescan_interval_ms),
	  .def = "30s", .min = 100, .max = 1 * CONF_DAY, .flags = CONF_RELOAD },
};

static const struct conf_schema spool_schema = {
	.name = SPOOL_NAME,
	.endpoint_keys = spool_endpoint_keys,
	.nendpoint_keys = ARRAY_SIZE(spool_endpoint_keys),
	.endpoint_size = sizeof(struct spool_conf),
	.section = "spool",
	.section_keys = spool_section_keys,
	.nsection_keys = ARRAY_SIZE(spool_section_keys),
	.section_size = sizeof(struct spool_section),
};

/* getgrnam_r/getpwuid_r into a buffer that grows until the entry fits. */
static int lookup_group(const char *name, struct group *gr, char **buf)
{
	struct group *res = NULL;
	for (size_t len = 1024; len <= (1u << 20); len *= 4) {
		*buf = xrealloc(*buf, len);
		int r = getgrnam_r(name, gr, *buf, len, &res);
		if (r != ERANGE)
			return r ? -r : res ? 0 : -ENOENT;
	}
	return -ERANGE;
}

static void user_name(char *out, size_t len)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &res) == 0 && res)
		snprintf(out, len, "%s", pw.pw_name);
	else
		snprintf(out, len, "uid %u", (unsigned)geteuid());
}

static bool in_my_groups(gid_t gid)
{
	if (geteuid() == 0 || getegid() == gid)
		return true;
	int n = getgroups(0, NULL);
	if (n <= 0)
		return false;
	_cleanup_free_ gid_t *groups = xcalloc((size_t)n, sizeof(*groups));
	n = getgroups(n, groups);
	for (int i = 0; i < n; i++)
		if (groups[i] == gid)
			return true;
	return false;
}

int spool_group_usable(const char *name, gid_t *gid, char *why, size_t len)
{
	struct group gr;
	_cleanup_free_ char *buf = NULL;
	int r = lookup_group(name, &gr, &buf);
	if (r == -ENOENT) {
		snprintf(why, len, "no group called '%s'", name);
		return r;
	}
	if (r < 0) {
		snprintf(why, len, "cannot look up group '%s': %s", name, strerror(-r));
		return r;
	}
	if (!in_my_groups(gr.gr_gid)) {
		char user[64];
		user_name(user, sizeof(user));
		snprintf(why, len, "edibrokerd runs as %s, which is not a member of group '%s' "
			 "(adduser %s %s, then restart it)", user, name, user, name);
		return -EPERM;
	}
	*gid = gr.gr_gid;
	return 0;
}

/* The transport's check: a file_group exists and the daemon may use it. */
static int spool_check(const struct endpoint_conf *ep, const struct config *cfg, char *err,
		       size_t errlen)
{
	const struct spool_conf *sc = ep->tconf;
	char why[256];
	gid_t gid;

	if (!sc || !sc->file_group)
		return 0;
	int r = spool_group_usable(sc->file_group, &gid, why, sizeof(why));
	if (r < 0)
		snprintf(err, errlen, "%s:%d: endpoint '%s': file_group: %s", cfg->path,
			 config_endpoint_key_line(ep, "file_group"), ep->name, why);
	return r;
}

static struct transport *spool_create(const struct endpoint_conf *ep,
				      const struct transport_env *env, char *err, size_t errlen)
{
	const struct spool_conf *sc = ep->tconf;
	const struct spool_section *ss = config_section(env->cfg, &spool_schema);

	assert(ss && "the config was loaded with the spool schema");
	if (!sc || str_empty(sc->inbox) || str_empty(sc->outbox)) {
		snprintf(err, errlen, "endpoint %s: spool needs inbox and outbox", ep->name);
		return NULL;
	}
	struct spool *sp = xcalloc(1, sizeof(*sp));
	sp->endpoint = xstrdup(ep->name);
	sp->inbox = xstrdup(sc->inbox);
	sp->outbox = xstrdup(sc->outbox);
	sp->quarantine = xstrdup(sc->quarantine);
	sp->instance = xstrdup(env->instance);
	sp->create_dirs = sc->create_dirs;
	sp->pickup_timeout_ms = sc->pickup_timeout_ms;
	sp->file_group = xstrdup_or_null(sc->file_group);
	sp->file_mode = FILE_MODE_DEFAULT;
	if (sc->file_mode && parse_file_mode(sc->file_mode, &sp->file_mode) < 0)
		assert(!"file_mode was checked when the config was loaded");
	sp->file_group_at = xasprintf("%s:%d", env->cfg->path ? env->cfg->path : "config",
				      config_endpoint_key_line(ep, "file_group"));
	sp->gid = (gid_t)-1;
	sp->max_bytes = (size_t)env->cfg->max_message_size;
	sp->batch_max = (size_t)env->cfg->batch_max;
	sp->rescan_ms = ss->rescan_interval_ms;
	sp->env = *env;
	sp->inbox_fd = sp->ino_fd = sp->wd = -1;
	sp->known = strset_new();
	sp->unreadable = strset_new();
	if (sp->create_dirs)
		spool_out_prepare(sp); /* on the lane: the share may hang */
	return (struct transport *)sp;
}

static void spool_destroy(struct transport *t)
{
	spool_release((struct spool *)t);
}

static int spool_start(struct transport *t)
{
	return spool_in_start((struct spool *)t);
}

static void spool_stop(struct transport *t)
{
	spool_in_stop((struct spool *)t);
}

static void spool_deliver(struct transport *t, const struct out_msg *msgs, size_t n,
			  transport_done_fn done, void *arg)
{
	spool_out_deliver((struct spool *)t, msgs, n, done, arg);
}

static void spool_probe(struct transport *t, transport_done_fn done, void *arg)
{
	spool_out_probe((struct spool *)t, done, arg);
}

static void spool_resume(struct transport *t)
{
	spool_in_resume((struct spool *)t);
}

static bool spool_started(struct transport *t)
{
	struct spool *sp = (struct spool *)t;
	return sp->open_tried && !sp->preparing;
}

const struct transport_ops spool_transport = {
	.name = SPOOL_NAME,
	.schema = &spool_schema,
	.create = spool_create,
	.destroy = spool_destroy,
	.start = spool_start,
	.stop = spool_stop,
	.deliver = spool_deliver,
	.probe = spool_probe,
	.resume = spool_resume,
	.started = spool_started,
	.check = spool_check,
};
