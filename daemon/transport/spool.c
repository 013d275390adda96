/*
 * spool.c - the spool transport's entry points: create, destroy and the
 * operations table the broker uses.
 *
 * A spool copies its endpoint's settings when created; a reload that
 * changes them creates a new spool and retires the old one (see deliver.c),
 * so the worker thread only ever reads settings that cannot change.
 */
#include "transport/spool.h"

#include "codecs/base/mem.h"
#include "base/fileio.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static struct transport *spool_create(const struct endpoint_conf *ep,
				      const struct transport_env *env, char *err, size_t errlen)
{
	if (str_empty(ep->inbox) || str_empty(ep->outbox)) {
		snprintf(err, errlen, "endpoint %s: spool needs inbox and outbox", ep->name);
		return NULL;
	}
	struct spool *sp = xcalloc(1, sizeof(*sp));
	sp->endpoint = xstrdup(ep->name);
	sp->inbox = xstrdup(ep->inbox);
	sp->outbox = xstrdup(ep->outbox);
	sp->quarantine = xstrdup(ep->quarantine);
	sp->instance = xstrdup(env->instance);
	sp->create_dirs = ep->create_dirs;
	sp->pickup_timeout_ms = ep->pickup_timeout_ms;
	sp->max_bytes = (size_t)env->cfg->max_message_size;
	sp->batch_max = (size_t)env->cfg->batch_max;
	sp->rescan_ms = env->cfg->rescan_interval_ms;
	sp->env = *env;
	sp->inbox_fd = sp->ino_fd = sp->wd = -1;
	sp->known = strset_new();
	if (sp->create_dirs) {
		int r = mkdir_p(sp->outbox, 0750);
		if (r < 0) {
			snprintf(err, errlen, "endpoint %s: cannot create outbox %s: %s", ep->name,
				 sp->outbox, strerror(-r));
			spool_release(sp);
			return NULL;
		}
	}
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
			  struct deliver_result *res)
{
	spool_out_deliver((struct spool *)t, msgs, n, res);
}

static enum transport_fault spool_probe(struct transport *t, char *err, size_t errlen)
{
	return spool_out_probe((struct spool *)t, err, errlen);
}

static void spool_resume(struct transport *t)
{
	spool_in_resume((struct spool *)t);
}

const struct transport_ops spool_transport = {
	.name = "spool",
	.create = spool_create,
	.destroy = spool_destroy,
	.start = spool_start,
	.stop = spool_stop,
	.deliver = spool_deliver,
	.probe = spool_probe,
	.resume = spool_resume,
};
