/*
 * oioxml.h - the MedCom OIOXML "Emessage" codec (medcom.md section 2).
 *
 * Reads the routing envelope of an Emessage: Envelope id, sent time and
 * acknowledgement request, then per letter its id, type, version code and
 * sender/receiver GLN. Elements are matched by local name in any namespace.
 */
#ifndef EDIBROKER_OIOXML_H
#define EDIBROKER_OIOXML_H

#include "codecs/codec.h"

/* name "oioxml", ext "xml"; decode() and refuse() (an XCTL01, xctl01.h)
 * follow the contracts in codec.h. */
extern const struct codec codec_oioxml;

#endif
