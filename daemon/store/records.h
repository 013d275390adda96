/*
 * records.h - the outage procedure's records, one struct per stored thing:
 * an outage, a planned shutdown (maintenance window) and a notice.
 *
 * The same struct is the procedure's working copy, what it saves and what
 * a backend hands back, so nothing is converted between layers. Strings are
 * owned (the *_free functions free them) - except in a record a backend
 * passes to a row callback, whose strings are the backend's and valid only
 * during the call; *_dup() keeps one. A NULL string means "not set" and is
 * stored as such.
 */
#ifndef EDIBROKER_RECORDS_H
#define EDIBROKER_RECORDS_H

#include <stdbool.h>
#include <stdint.h>

/* The lifecycle of an outage (outage.h has the rules). */
enum outage_state { OUTAGE_OPEN, OUTAGE_ANNOUNCED, OUTAGE_RECOVERING, OUTAGE_RESOLVED,
		    OUTAGE_CLOSED };

/* An outage of one endpoint. */
struct outage {
	int64_t id;               /* store id; 0 until saved (the save assigns it) */
	char *endpoint;
	enum outage_state state;
	bool manual;              /* opened by an operator: only an operator closes it */
	int64_t started_at;       /* first failure (or window end / operator's open) */
	int64_t declared_at;      /* declared DOWN / opened */
	int64_t ended_at;         /* endpoint up again; 0 while down */
	int64_t resolved_at;      /* backlog delivered (or closed by hand); 0 before */
	int64_t closed_at;        /* no more notices; 0 before */
	int64_t announced_at;     /* first notice sent; 0 = never */
	int64_t last_notice_at;   /* last notice sent; 0 = never */
	int64_t due_at;           /* next notice falls due (held outside the window); 0 = none */
	int64_t expected_end;     /* operator's estimate; 0 = unknown */
	char *cause_fault;        /* transport fault class of the last failure, e.g. "refused" */
	char *cause_error;        /* last error, one line, no content */
	char *cause_override;     /* operator's cause; NULL = none */
	char *contact_override;   /* operator's contact; NULL = none */
	char *fallback_override;  /* operator's fallback contact (whom staff phone); NULL = none */
	int64_t maintenance_id;   /* the planned window it followed; 0 = none */
	int64_t delivered_late;   /* messages delivered to it since the start */
	char *changed_by;         /* the operator who last opened, set or closed it by
				   * hand: "name (uid N)"; NULL = none */
};

/* A planned shutdown ("planlagt nedlukning") of an endpoint. */
struct maint {
	int64_t id;               /* 0 until saved */
	char *endpoint;
	int64_t from, to;         /* [from, to), wall ms */
	char *reason;
	char *contact;            /* NULL = the endpoint's configured contact */
	int64_t created_at;
	int64_t removed_at;       /* removed by an operator; 0 = in force */
	int64_t announced_at;     /* planned notice sent; 0 = not (yet) */
	int64_t ended_at;         /* end handled (acute procedure checked); 0 = not yet */
	char *changed_by;         /* the operator who added or removed it: "name (uid N)" */
};

/* A notice composed for an outage or a maintenance window. */
struct notice_record {
	int64_t id;               /* 0 until saved */
	int64_t outage_id;        /* 0 when for a maintenance window */
	int64_t maintenance_id;   /* 0 when for an outage */
	char *kind;               /* "initial", "update", "allclear", "summary", "planned" */
	char *audience;           /* "support" or "oncall" */
	char *recipients;         /* comma-separated mail addresses */
	char *subject;
	char *body;               /* plain text */
	char *payload;            /* JSON for the webhook */
	int64_t created_at;       /* when it was composed (= sent the first time) */
	char *pending;            /* channels still to carry it: "email,webhook"; "" = done */
	int attempts;             /* send rounds so far */
	int64_t next_attempt_at;  /* 0 when nothing is pending */
};

/* "open", "announced", "recovering", "resolved", "closed" (as stored). */
const char *outage_state_name(enum outage_state s);
/* The state for a stored name, or -1 for a name this version does not know. */
int outage_state_from_name(const char *name);

/* Deep copies (every string duplicated); the *_free functions accept NULL. */
struct outage *outage_dup(const struct outage *o);
void outage_free(struct outage *o);
struct maint *maint_dup(const struct maint *m);
void maint_free(struct maint *m);
struct notice_record *notice_record_dup(const struct notice_record *n);
void notice_record_free(struct notice_record *n);

#endif
