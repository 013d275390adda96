/*
 * fhir.h - MedCom FHIR messages (medcom.md 4): a Bundle of type message,
 * in XML (fhir_xml.c) or JSON (fhir_json.c, jansson), read by one core
 * (fhir.c) so both say the same about the same message.
 *
 * Routing is by the GLN of the Organization the MessageHeader's one primary
 * destination names (its SOR id is shown, never routed on); the type is
 * the event code (hospital-notification-message, care-communication-
 * message, homecareobservation-message, acknowledgement-message, or any
 * other MedCom event code); identity is (sender GLN, MessageHeader.id);
 * Bundle.id is a txid. The refusal is an Acknowledgement with response
 * code fatal-error and an OperationOutcome (MSG_Receiver_Identifier_UNKNOWN
 * for an unknown receiver), in the syntax the message came in; an
 * Acknowledgement is never answered.
 */
#ifndef EDIBROKER_FHIR_H
#define EDIBROKER_FHIR_H

#include "codecs/codec.h"

#define FHIR_NS "http://hl7.org/fhir"

/* name "fhir-xml", ext "xml"; decode() and refuse() follow codec.h. */
extern const struct codec codec_fhir_xml;
/* name "fhir-json", ext "json"; decode() and refuse() follow codec.h.
 * JSON is refused before parsing when larger than the limit or nested
 * deeper than max_depth, and when an object repeats a key. */
extern const struct codec codec_fhir_json;

#endif
