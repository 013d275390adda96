/*
 * edifact.h - the MedCom EDIFACT codec (medcom.md sections 3 and 9): one
 * interchange UNB ... UNZ of MEDDIS (DIS series), MEDBIN (BIN01) or CONTRL
 * (CTL01-03) messages, with or without a UNA service string advice.
 *
 * Routing comes from UNB (sender element 2, recipient element 3, both with
 * qualifier 14); the envelope id is the interchange control reference, each
 * UNH message is a letter (id = message reference, type from UNH element 3,
 * version from S009, e.g. DIS20 / D2030C). Its refusals are CONTRL receipts
 * (ctl.h).
 */
#ifndef EDIBROKER_EDIFACT_H
#define EDIBROKER_EDIFACT_H

#include "codecs/codec.h"

/* Hard limits besides the caller's codec_limits.max_bytes. */
#define EDIFACT_MAX_SEGMENTS 1000000u /* per interchange, UNA..UNZ */
#define EDIFACT_MAX_COMPONENT 512u    /* bytes in one data element or component,
				       * release characters and line breaks not
				       * counted (the longest EDIFACT an..512) */

/* name "edifact", ext "edi"; decode() and refuse() (a CONTRL, ctl.h)
 * follow the contracts in codec.h. decode() never reads outside buf. */
extern const struct codec codec_edifact;

/* The UNH S009 message identifier without its version, as MedCom writes it
 * for a letter type: "MEDDIS:D:93A:UN" for DIS20, "CONTRL:D:93A:ZZ" for
 * CTL01; NULL for a type this codec does not read. */
const char *edifact_message_head(const char *type);

#endif
