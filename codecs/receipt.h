/*
 * receipt.h - builds MedCom negative receipts the broker itself issues.
 *
 * When a message cannot be routed (unknown receiver location number) or is
 * refused after its envelope was read, the network side answers the sender
 * with an XCTL01 NegativeVansReceipt (medcom.md sections 2.3 and 5.4). The
 * receipt echoes the original envelope id, sender, receiver and every letter
 * id and version code. Pure: the caller passes the clock and ids.
 */
#ifndef EDIBROKER_RECEIPT_H
#define EDIBROKER_RECEIPT_H

#include "codecs/codec.h"

struct receipt_params {
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
 * -EINVAL when orig lacks the envelope id or sender, or a parameter is too
 * long for its schema field. Never called for a receipt (receipts are never
 * acknowledged). */
int receipt_build_xctl01(const struct codec_envelope *orig, const struct receipt_params *p,
			 char **out, size_t *len);

#endif
