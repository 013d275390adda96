/*
 * spool.c - the spool transport's entry points: create, destroy and the
 * operations table the broker uses.
 *
 * Declares the spool's configuration: the keys of a spool endpoint
 * (struct spool_conf) and the [spool] section (struct spool_section), read
 * by conf/config.c like the broker's own keys.
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
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define SPOOL_NAME "spool"
#define SPOOL_KEY(key, t, field) CONF_KEY(struct spool_conf, key, t, field)

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
	sp->max_bytes = (size_t)env->cfg->max_message_size;
	sp->batch_max = (size_t)env->cfg->batch_max;
	sp->rescan_ms = ss->rescan_interval_ms;
	sp->env = *env;
	sp->inbox_fd = sp->ino_fd = sp->wd = -1;
	sp->known = strset_new();
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
};
