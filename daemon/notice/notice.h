/*
 * notice.h - composes the outage notices people read: subject, plain-text
 * body and a JSON payload, in Danish (default) or English, from templates
 * an operator can edit.
 *
 * A notice always states the four fields the regional procedure asks for:
 * cause of the fault ("Aarsag til fejl"), affected messages ("Beroerte
 * meddelelser": types and counts waiting, the oldest one's age, the
 * organisations whose messages wait), expected downtime ("Forventet
 * nedetid", "ukendt" when not set) and contact person ("Kontaktperson"),
 * plus when the next status will be sent, what to do meanwhile ("Hvad gør
 * jeg?": whom to phone, the clinical fallback) and where the status page
 * is. Message types are named as people know them, with the code beside
 * ("Indlæggelsesadvis (XDIS20)"); the cause is the operator's words or the
 * fault class in words, never an error text (paths, errno texts and
 * library messages stay in the log). Never a CPR number or clinical text:
 * the facts it is given are ids, types, counts, names of organisations
 * and times.
 *
 * Templates: built in, or <template_dir>/<lang>/<kind>.txt when present.
 * A template's first line is "Subject: ..."; the rest is the body. Both may
 * use {{name}} placeholders (see notice_fields in notice.c for the list);
 * an unknown placeholder is an error found when templates are loaded.
 */
#ifndef EDIBROKER_NOTICE_H
#define EDIBROKER_NOTICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum notice_kind {
	NOTICE_INITIAL,  /* first notice: the outage has lasted past the threshold */
	NOTICE_UPDATE,   /* status update while it lasts */
	NOTICE_ALLCLEAR, /* resolved: endpoint up, backlog delivered */
	NOTICE_SUMMARY,  /* past the threshold but resolved before a notice could go out */
	NOTICE_PLANNED,  /* a planned shutdown longer than the threshold */
	NOTICE_KIND_COUNT
};

/* One line of "affected messages". */
struct notice_affected {
	const char *type;          /* e.g. "XDIS20" */
	int64_t count;
	const char *organisation;  /* whose messages wait (sender side) */
};

/* The facts a notice is made of. Times are wall ms; 0 means "not known". */
struct notice_facts {
	enum notice_kind kind;
	const char *endpoint;       /* endpoint name */
	const char *organisation;   /* its display name */
	const char *endpoint_kind;  /* "hospital", "municipality", "other" */
	int64_t outage_id;          /* 0 for a planned shutdown */
	int64_t started_at;         /* outage start (first failure) / window start */
	int64_t ended_at;           /* endpoint up again / window end */
	int64_t now;                /* when the notice is composed */
	int64_t next_status_at;     /* when the next status will be sent; 0 = none */
	int64_t expected_end;       /* operator's expected end; 0 = unknown */
	const char *cause_fault;    /* "refused", "timeout", "tls", "disk-full", "rejected", "io" */
	const char *cause_text;     /* the operator's cause; shown only with cause_by_operator */
	bool cause_by_operator;
	const char *contact;        /* operator's or the endpoint's contact */
	const struct notice_affected *affected;
	size_t naffected;
	int64_t queued;             /* messages waiting in all */
	int64_t oldest_received_at; /* oldest waiting message; 0 = none */
	int64_t acks_overdue;       /* delivered to it, their acknowledgement overdue */
	int64_t acks_overdue_since; /* delivery of the oldest of those; 0 = none */
	int64_t ack_timeout_ms;     /* [delivery] ack_timeout, for the words */
	int64_t delivered_late;     /* all-clear: messages delivered after the start */
	bool ended_overnight;       /* the outage ended while notices were held */
	const char *reason;         /* planned shutdown: the operator's reason */
	const char *fallback_contact; /* whom to phone meanwhile (outage's or endpoint's) */
	const char *fallback_note;  /* what to do meanwhile (the endpoint's fallback_note) */
	const char *support_phone;  /* regional EDI support, named when no fallback_contact */
	const char *status_url;     /* the status page, linked from every notice */
};

struct notice_text {
	char *subject;  /* one line */
	char *body;     /* plain text, lines end in \n */
	char *payload;  /* JSON object with the facts and the texts */
};

struct notice_templates;

/* Loads the built-in templates for lang ("da" or "en"; NULL means "da"),
 * each replaced by <dir>/<lang>/<kind>.txt when dir is not NULL and the file
 * exists (a missing dir or file means the built-in one). An existing file
 * that cannot be read, is not UTF-8, lacks the "Subject:" line or uses an
 * unknown placeholder is an error: returns NULL with a reason in err,
 * "FILE: unknown placeholder {{foo}} (line N)". */
struct notice_templates *notice_templates_load(const char *lang, const char *dir, char *err,
					       size_t errlen);
void notice_templates_free(struct notice_templates *t);

/* Composes a notice; the caller frees with notice_text_free(). Times are
 * written in the process time zone (set by timerules_new). Returns 0, or
 * -EINVAL for a NULL argument or a kind out of range (out untouched). */
int notice_render(const struct notice_templates *t, const struct notice_facts *f,
		  struct notice_text *out);
void notice_text_free(struct notice_text *t);

/* Stable names: "initial", "update", "allclear", "summary", "planned". */
const char *notice_kind_name(enum notice_kind k);
/* The kind for a name, or -1. */
int notice_kind_from_name(const char *name);

#endif
