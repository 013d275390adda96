/*
 * plain.c - plain language shared by notice.c (the e-mails) and
 * statuspage.c (the intranet page), so a time, a duration, a message type
 * or the advice whom to phone reads the same in both (plain.h).
 *
 * It owns the one date format of everything people read, the duration
 * units, and the sentences of the clinical fallback; message type names
 * come from codecs/msgtypes.c and fault words from base/fault.c, each one
 * table. No I/O, no state; times through localtime_r.
 */
#include "notice/plain.h"

#include "base/fault.h"
#include "codecs/base/mem.h"
#include "codecs/msgtypes.h"

#include <string.h>
#include <time.h>

struct words {
	const char *code;
	bool day_first;              /* 27-11-2026 kl. 14:05, else 2026-11-27 14:05 */
	const char *hour, *day;      /* duration units */
	/* Sentences; those with "%s" (whom to phone) get their full stop from
	 * sentence() unless the number already ends in one. */
	const char *urgent, *support, *support_no_phone, *over, *over_contact;
};

static const struct words DA = {
	.code = "da", .day_first = true, .hour = "t", .day = "døgn",
	.urgent = "Haster det, så ring til %s",
	.support = "Haster det, så ring til den regionale EDI-support, %s",
	.support_no_phone = "Haster det, så kontakt den regionale EDI-support.",
	.over = "Intet: meddelelserne sendes igen som normalt.",
	.over_contact = "Intet: meddelelserne sendes igen som normalt. Ved et nyt nedbrud: "
			"ring til %s",
};

static const struct words EN = {
	.code = "en", .day_first = false, .hour = "h", .day = "d",
	.urgent = "If something is urgent, phone %s",
	.support = "If something is urgent, phone the regional EDI support, %s",
	.support_no_phone = "If something is urgent, contact the regional EDI support.",
	.over = "Nothing: messages flow as usual again.",
	.over_contact = "Nothing: messages flow as usual again. In a new outage: phone %s",
};

static const struct words *words(const char *lang)
{
	return lang && strcmp(lang, "en") == 0 ? &EN : &DA;
}

static bool local_tm(int64_t ms, struct tm *tm)
{
	time_t t = (time_t)(ms / 1000);
	return ms > 0 && localtime_r(&t, tm) != NULL;
}

void plain_time(struct strbuf *b, const char *lang, int64_t ms, const char *unknown)
{
	struct tm tm;
	if (!local_tm(ms, &tm))
		strbuf_puts(b, unknown ? unknown : "");
	else if (words(lang)->day_first)
		strbuf_printf(b, "%02d-%02d-%04d kl. %02d:%02d", tm.tm_mday, tm.tm_mon + 1,
			      tm.tm_year + 1900, tm.tm_hour, tm.tm_min);
	else
		strbuf_printf(b, "%04d-%02d-%02d %02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
			      tm.tm_mday, tm.tm_hour, tm.tm_min);
}

void plain_time_near(struct strbuf *b, const char *lang, int64_t ms, int64_t now)
{
	struct tm tm, today;
	if (local_tm(ms, &tm) && local_tm(now, &today) && tm.tm_year == today.tm_year &&
	    tm.tm_yday == today.tm_yday)
		strbuf_printf(b, "%02d:%02d", tm.tm_hour, tm.tm_min);
	else
		plain_time(b, lang, ms, "");
}

void plain_duration(struct strbuf *b, const char *lang, int64_t ms)
{
	const struct words *w = words(lang);
	long long min = ms > 0 ? ms / 60000 : 0, h = min / 60, m = min % 60;
	bool days = h >= 48;

	if (days)
		strbuf_printf(b, "%lld %s", h / 24, w->day);
	if (days ? h % 24 : h)
		strbuf_printf(b, "%s%lld %s", days ? " " : "", days ? h % 24 : h, w->hour);
	if (!days && (m > 0 || h == 0))
		strbuf_printf(b, "%s%lld min", h ? " " : "", m);
}

void plain_msgtype(struct strbuf *b, const char *lang, const char *type, const char *unknown)
{
	const char *name = msgtype_name(type, words(lang)->code);
	if (str_empty(type))
		strbuf_puts(b, unknown ? unknown : "");
	else if (name)
		strbuf_printf(b, "%s (%s)", name, type);
	else
		strbuf_puts(b, type);
}

const char *plain_fault(const char *fault, const char *lang)
{
	return fault_words(fault_from_name(fault), words(lang)->code);
}

/* fmt with who in it, ending in one full stop. */
static void sentence(struct strbuf *b, const char *fmt, const char *who)
{
	size_t n = strlen(who);
	strbuf_printf(b, fmt, who);
	if (n == 0 || who[n - 1] != '.')
		strbuf_puts(b, ".");
}

void plain_fallback(struct strbuf *b, const char *lang, const struct plain_fallback *f, bool over)
{
	const struct words *w = words(lang);
	bool contact = !str_empty(f->contact);
	if (over) {
		if (contact)
			sentence(b, w->over_contact, f->contact);
		else
			strbuf_puts(b, w->over);
		return;
	}
	if (contact)
		sentence(b, w->urgent, f->contact);
	else if (!str_empty(f->support_phone))
		sentence(b, w->support, f->support_phone);
	else
		strbuf_puts(b, w->support_no_phone);
	if (!str_empty(f->note))
		strbuf_printf(b, "\n%s", f->note);
}
