/*
 * vans.h - the MedCom VANSEnvelope 1.0.4 codec (medcom.md 4.5, 5.2).
 *
 * A VANSEnvelope with a Message is a wrapping: its payload (base64 Data,
 * its decoded length checked against Document/SizeInBytes, its charset
 * detected) is decoded by its own codec, and routing follows the payload's
 * letters, which must agree with an EAN ReceiverID. A VANSEnvelope with a
 * Receipt is a bare message of one letter, routed by its ReceiverID and
 * never answered. Envelope ids need not be UUIDs (Region H uses EPIC...).
 * Its refusal is a Receipt/NegativeVans (vans_receipt.c).
 */
#ifndef EDIBROKER_VANS_H
#define EDIBROKER_VANS_H

#include "codecs/codec.h"

#define VANS_NS "urn:oio:medcom:vans-envelope:1.0.4"
#define VANS_ID_MAX 18 /* EndPointValueType: SenderID, ReceiverID */

/* name "vans", ext "xml"; decode() and refuse() follow codec.h. */
extern const struct codec codec_vans;

/* The VANS codec's refuse(): a VANSEnvelope with Receipt/NegativeVans from
 * the broker (EAN p->broker_gln, else VANS p->broker_id) to the original
 * SenderID, echoing OriginalEnvelopeIdentifier and, when it was read, the
 * original MetaInformation. -EINVAL when the original's SenderID or
 * EnvelopeIdentifier was not read, the broker's id is longer than 18, or
 * p->fresh_uuid is NULL. */
int vans_refuse(const struct codec_envelope *env, const struct codec_refusal_params *p,
		struct codec_receipt *out);

#endif
