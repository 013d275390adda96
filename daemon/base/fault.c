/*
 * fault.c - the one table of transport fault classes (fault.h): stable
 * names and notice words per language.
 *
 * Transports classify failures (spool_out.c), health and the outage
 * procedure record the class, the store keeps its stable name as an
 * outage's cause, and notices turn that name back into words. The names
 * are stored and shown to operators, so they never change; the words may.
 */
#include "base/fault.h"

#include "codecs/base/mem.h"

#include <string.h>

/* Column order of the words below. */
static const char *const langs[] = { "da", "en" };

static const struct {
	enum transport_fault fault;
	const char *name;
	const char *words[ARRAY_SIZE(langs)];
} faults[] = {
	{ FAULT_NONE, "none", { NULL, NULL } },
	{ FAULT_REFUSED, "refused",
	  { "forbindelsen blev afvist / mappen findes ikke eller kan ikke skrives",
	    "connection refused / folder missing or not writable" } },
	{ FAULT_TIMEOUT, "timeout",
	  { "intet svar / filer hentes ikke", "no answer / files are not collected" } },
	{ FAULT_TLS, "tls", { "TLS-fejl", "TLS failure" } },
	{ FAULT_DISK_FULL, "disk-full", { "disken er fuld", "disk full" } },
	{ FAULT_REJECTED, "rejected",
	  { "modtageren afviste meddelelsen", "the receiver rejected the message" } },
	{ FAULT_IO, "io", { "I/O-fejl", "I/O error" } },
};

/* For FAULT_NONE and anything not in the table. */
static const char *const unknown_words[ARRAY_SIZE(langs)] = { "ukendt fejl", "unknown fault" };

/* The table row of f, or -1. */
static int row_of(int f)
{
	for (size_t i = 0; i < ARRAY_SIZE(faults); i++)
		if ((int)faults[i].fault == f)
			return (int)i;
	return -1;
}

const char *fault_name(enum transport_fault f)
{
	int i = row_of((int)f);
	return i < 0 ? "?" : faults[i].name;
}

int fault_from_name(const char *name)
{
	for (size_t i = 0; name && i < ARRAY_SIZE(faults); i++)
		if (strcmp(faults[i].name, name) == 0)
			return (int)faults[i].fault;
	return -1;
}

const char *fault_words(int f, const char *lang)
{
	for (size_t l = 0; lang && l < ARRAY_SIZE(langs); l++) {
		if (strcmp(langs[l], lang) != 0)
			continue;
		int i = row_of(f);
		return i >= 0 && faults[i].words[l] ? faults[i].words[l] : unknown_words[l];
	}
	return NULL;
}
