/*
 * ctl.h - CONTRL negative receipts: how the EDIFACT codec answers an
 * interchange the broker refuses (medcom.md sections 3.3, 5.4 and rules 9
 * and 13 of section 9).
 *
 * A receiver nobody owns is answered as the network answers it: a CTL01
 * negative VANS receipt with FTX LOK (ukendt_lokationsnummer), or MID for
 * an unusable receiver id. An interchange refused for its syntax or version
 * gets a CTL02 negative receipt with FTX SYN, VER or NC. Both echo the
 * original interchange reference, sender and recipient (UCI) and every
 * message reference with its message identifier (UCM), action 4 (rejected),
 * and are addressed to the original sender. Pure: the caller passes the
 * clock and ids.
 */
#ifndef EDIBROKER_CTL_H
#define EDIBROKER_CTL_H

#include <stdbool.h>

#include "codecs/codec.h"

struct ctl_params {
	const char *type;            /* "CTL01" or "CTL02" */
	const char *sender_id;       /* the broker's network id: UNB sender (<= 35) */
	const char *interchange_ref; /* new UNB/UNZ 0020 (<= 14) */
	const char *message_ref;     /* new UNH/UNT 0062 (<= 14) */
	const char *qualifier;       /* FTX 4451: LOK, MID, SYN, VER or NC */
	const char *text;            /* UTF-8 for people, no patient data, within
				      * ISO-8859-1; '\n' starts a new FTX text line;
				      * NULL or "" for none */
	const struct tm *when;       /* local time the receipt is issued (UNB S004) */
};

/* Builds an ISO-8859-1 (UNOC:3) CONTRL interchange refusing the whole of
 * `orig`, addressed to orig->letters[0].sender, one UCM per letter (none
 * when orig->nletters is 0). FTX text lines are wrapped at 70 characters,
 * and text beyond five lines is left out. Returns 0 with a malloc'ed buffer
 * in *out, or -EINVAL when orig is a receipt, lacks the envelope id or
 * sender, holds a letter this codec could not have read, or a parameter is
 * too long, not printable ASCII (ids) or outside ISO-8859-1 (text). */
int ctl_build(const struct codec_envelope *orig, const struct ctl_params *p, char **out,
	      size_t *len);

/* The receipt type ("CTL01", "CTL02") and FTX qualifier ("LOK", ...) that
 * word a refusal; false for a value outside enum codec_refusal. */
bool ctl_refusal_words(enum codec_refusal why, const char **type, const char **qualifier);

/* The EDIFACT codec's refuse() (codec.h): one fresh id serves as the
 * receipt's interchange and message reference; UNB's date is p->now. */
int ctl_refuse(const struct codec_envelope *orig, const struct codec_refusal_params *p,
	       struct codec_receipt *out);

#endif
