/*
 * procedure_jobs.c - the procedure's own store work, as jobs on the
 * store's lanes, and the takeover's read of the store.
 *
 * The timer decides on the loop from what it holds in memory; every store
 * step it needs (saving an outage or window, reading what a notice says,
 * saving a notice, recording a send, reading the queues for the status
 * page, reading everything again at a takeover) is a job: its work runs on
 * a lane's own connection (reads on STORE_LANE_READ, saves on
 * STORE_LANE_WRITE, in order with the group commit and the operators'
 * changes) and touches only the job; its done runs on the loop and applies
 * the result there, and only when the store took it. With sqlite both run
 * at once inside procedure_job_run(), so the order of effects is the same
 * either way; with PostgreSQL the loop never waits on the server.
 *
 * A job names the outage or window it works on (or the endpoint whose
 * outage it opens): the timer leaves that record alone until the job is
 * done, so one record has one step in flight and a failed step is simply
 * decided again by a later tick. A job that saves a record holds back the
 * operators' changes to it too (-EBUSY), as theirs hold back the timer.
 *
 * Every save carries the fence of the procedure's lease as it was when the
 * job was made (procedure_fence()): a node that lost the lease meanwhile
 * changes nothing (-ESTALE). A notice an advance makes due is saved after
 * a read round trip (what it says), with the fence then current: a lease
 * lost in that gap loses that notice's save (-ESTALE), and the new holder
 * sees the outage advanced and sends no notice for that step - a known
 * gap. The procedure owns its jobs in a list; when it is freed first
 * (shutdown with the database hung), the jobs still out are cut loose and
 * their done only frees them.
 */
#include "outage/procedure_int.h"

#include "base/log.h"
#include "codecs/base/mem.h"

#include <errno.h>
#include <string.h>

/* ---- jobs ------------------------------------------------------------------ */

static void job_work(struct store *view, void *arg)
{
	struct pjob *j = arg;
	/* the lane's handle serves other work too: this job's fence, not theirs */
	store_fence_records(view, j->fence.lease ? &j->fence : NULL);
	j->work(view, j);
}

static void job_unlink(struct procedure *p, struct pjob *j)
{
	for (struct pjob **at = &p->jobs; *at; at = &(*at)->next)
		if (*at == j) {
			*at = j->next;
			return;
		}
}

static void job_done(void *arg)
{
	struct pjob *j = arg;
	struct procedure *p = j->p;
	if (p) {
		job_unlink(p, j);
		if (j->done)
			j->done(p, j);
	}
	free(j->opening);
	free((char *)j->fence.lease);
	j->free(j);
}

void procedure_job_run(struct procedure *p, enum store_lane lane, struct pjob *j)
{
	j->p = p;
	j->fence = p->fence.lease ? (struct store_fence){ xstrdup(p->fence.lease), p->fence.epoch }
				  : (struct store_fence){ 0 };
	j->next = p->jobs;
	p->jobs = j;
	store_run(p->env.store, lane, job_work, job_done, j);
}

static bool job_matches(const struct pjob *j, int64_t outage_id, int64_t maint_id,
			const char *opening)
{
	if (opening)
		return j->opening && strcmp(j->opening, opening) == 0;
	if (outage_id)
		return j->outage_id == outage_id;
	return maint_id && j->maint_id == maint_id;
}

bool procedure_job_on(const struct procedure *p, int64_t outage_id, int64_t maint_id,
		      const char *opening, bool saves_only)
{
	for (const struct pjob *j = p->jobs; j; j = j->next)
		if ((!saves_only || j->saves) && job_matches(j, outage_id, maint_id, opening))
			return true;
	return false;
}

bool procedure_busy(const struct procedure *p, int64_t outage_id, int64_t maint_id,
		    const char *opening, bool saves_only)
{
	return procedure_change_is(p, outage_id, maint_id, opening) ||
	       procedure_job_on(p, outage_id, maint_id, opening, saves_only);
}

void procedure_jobs_detach(struct procedure *p)
{
	while (p->jobs) {
		struct pjob *j = p->jobs;
		p->jobs = j->next;
		j->p = NULL;
	}
}

void procedure_fence(struct procedure *p, const struct store_fence *f)
{
	free((char *)p->fence.lease);
	p->fence = f && f->lease ? (struct store_fence){ xstrdup(f->lease), f->epoch }
				 : (struct store_fence){ 0 };
}

/* ---- the takeover's read ----------------------------------------------------- */

/* What the store holds for the procedure, read on the read lane. */
struct load_job {
	struct pjob j;
	uint64_t gen;
	struct procedure_state st;
	int r;
	char error[256];
};

static int add_outage(const struct outage *rec, void *arg)
{
	struct procedure_state *st = arg;
	if (rec->state == OUTAGE_CLOSED)
		return 0;
	st->outages = xrealloc(st->outages, (st->noutages + 1) * sizeof(*st->outages));
	st->outages[st->noutages++] = outage_dup(rec);
	return 0;
}

static int add_maint(const struct maint *rec, void *arg)
{
	struct procedure_state *st = arg;
	if (rec->ended_at)
		return 0;
	st->maint = xrealloc(st->maint, (st->nmaint + 1) * sizeof(*st->maint));
	st->maint[st->nmaint++] = maint_dup(rec);
	return 0;
}

static int add_notice(const struct notice_record *rec, void *arg)
{
	struct procedure_state *st = arg;
	st->notices = xrealloc(st->notices, (st->nnotices + 1) * sizeof(*st->notices));
	st->notices[st->nnotices++] = notice_record_dup(rec);
	return 0;
}

int procedure_state_read(struct store *s, struct procedure_state *st)
{
	int r = store_outage_list(s, INT64_MAX, 10000, add_outage, st);
	if (r >= 0)
		r = store_maintenance_list(s, false, add_maint, st);
	if (r >= 0)
		r = store_notice_pending(s, add_notice, st);
	return r < 0 ? r : 0;
}

void procedure_state_free(struct procedure_state *st)
{
	for (size_t i = 0; i < st->noutages; i++)
		outage_free(st->outages[i]);
	for (size_t i = 0; i < st->nmaint; i++)
		maint_free(st->maint[i]);
	for (size_t i = 0; i < st->nnotices; i++)
		notice_record_free(st->notices[i]);
	free(st->outages);
	free(st->maint);
	free(st->notices);
	*st = (struct procedure_state){ 0 };
}

static void load_work(struct store *view, struct pjob *pj)
{
	struct load_job *j = (struct load_job *)pj;
	j->r = procedure_state_read(view, &j->st);
	if (j->r < 0)
		snprintf(j->error, sizeof(j->error), "%s", store_last_error(view));
}

static void load_done(struct procedure *p, struct pjob *pj)
{
	struct load_job *j = (struct load_job *)pj;
	if (j->gen != p->resync_gen)
		return; /* a later takeover's read replaces this one */
	p->resyncing = false;
	if (j->r < 0) { /* stays stale: the timer reads again, each tick */
		if (!p->resync_failing)
			log_err("event=procedure-resync-failed error=\"%s\" state=waiting",
				j->error);
		p->resync_failing = true;
		return;
	}
	if (p->resync_failing)
		log_notice("event=procedure-resync-recovered");
	p->resync_failing = false;
	procedure_state_apply(p, &j->st);
	log_notice("event=procedure-taken outages=%zu windows=%zu", p->noutages, p->nmaint);
}

static void load_free(struct pjob *pj)
{
	struct load_job *j = (struct load_job *)pj;
	procedure_state_free(&j->st);
	free(j);
}

void procedure_resync(struct procedure *p)
{
	p->stale = true; /* until its read has come back: the procedure does nothing */
	p->resyncing = true;
	struct load_job *j = xcalloc(1, sizeof(*j));
	j->gen = ++p->resync_gen;
	j->j.work = load_work;
	j->j.done = load_done;
	j->j.free = load_free;
	procedure_job_run(p, STORE_LANE_READ, &j->j);
}
