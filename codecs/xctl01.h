/*
 * xctl01.h - the XCTL01 NegativeVansReceipt: how the OIOXML codec answers
 * a message the broker refuses.
 *
 * When a message cannot be routed (unknown receiver location number) or is
 * refused after its envelope was read, the network side answers the sender
 * with an XCTL01 NegativeVansReceipt (medcom.md sections 2.3 and 5.4). The
 * receipt echoes the original envelope id, sender, receiver and every letter
 * id and version code. Pure: the caller passes the clock and ids.
 */
#ifndef EDIBROKER_XCTL01_H
#define EDIBROKER_XCTL01_H

#include "codecs/codec.h"

struct xctl01_params {
	const char *sender_id;   /* the broker's network id, e.g. "EDIBROKER" (<= 35) */
	const char *envelope_id; /* new Envelope/Identifier for the receipt (<= 14) */
	const char *letter_id;   /* new Letter/Identifier for the receipt (<= 14) */
	const char *refuse_code; /* ukendt_lokationsnummer, syntaksfejl, ... */
	const char *refuse_text; /* plain text, no patient data; '\n' becomes <Break/> */
	const char *date;        /* Sent/Date, "YYYY-MM-DD" (local time) */
	const char *time;        /* Sent/Time, "HH:MM" */
};

/* Builds a UTF-8 XCTL01 Emessage (2005/08/07 namespace) refusing the whole
 * envelope `orig`, addressed to orig->letters[0].sender. orig->nletters may
 * be 0 (envelope-level only). Returns 0 with a malloc'ed buffer in *out, or
 * -EINVAL when orig is a receipt (receipts are never acknowledged), lacks
 * the envelope id or sender, or a parameter is too long for its schema
 * field or not a RefuseCode. */
int xctl01_build(const struct codec_envelope *orig, const struct xctl01_params *p, char **out,
		 size_t *len);

/* The RefuseCode for a refusal ("ukendt_lokationsnummer", "syntaksfejl",
 * ...), or NULL for a value outside enum codec_refusal. */
const char *xctl01_refuse_code(enum codec_refusal why);

/* The OIOXML codec's refuse() (codec.h): one fresh id serves as the
 * receipt's envelope and letter id; Sent is p->now. */
int xctl01_refuse(const struct codec_envelope *orig, const struct codec_refusal_params *p,
		  struct codec_receipt *out);

#endif
