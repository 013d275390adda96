/*
 * sbdh.h - the UN/CEFACT StandardBusinessDocument wrapping of MedCom's
 * eDelivery (EHMI) network (medcom.md 5.6, 5.7).
 *
 * A wrapping: receiver and sender come from the header, "0088:<GLN>"
 * (ISO 6523 scheme 0088 = GLN); the payload is the base64 BinaryContent,
 * its charset given by BinaryContent/@encoding, decoded by its own codec.
 * The receiver must be the payload's letters' receiver. A wrapping whose
 * payload does not decode is refused. SBDH has no receipt of its own: its
 * refusal is the payload's receipt, wrapped in an SBDH to the sender.
 */
#ifndef EDIBROKER_SBDH_H
#define EDIBROKER_SBDH_H

#include "codecs/codec.h"

#define SBDH_NS "http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader"
#define SBDH_GLN_SCHEME "0088"

/* name "sbdh", ext "xml"; decode() and refuse() follow codec.h. */
extern const struct codec codec_sbdh;

/* The SBDH codec's refuse(): the receipt of what env's SBDH carries (its
 * own codec's refuse on env with the SBDH peeled off), in a new SBDH from
 * the broker ("0088:" p->broker_gln, else p->broker_id) to the original
 * sender. -EINVAL when the sender was not read or the payload's format is
 * unknown (it matched no codec), and what the inner refuse returns. */
int sbdh_refuse(const struct codec_envelope *env, const struct codec_refusal_params *p,
		struct codec_receipt *out);

#endif
