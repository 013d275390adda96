/*
 * fhir_int.h - what the FHIR core (fhir.c) and its two syntaxes
 * (fhir_xml.c, fhir_json.c) share; private to them.
 *
 * A syntax gives the core a tree through struct fhir_tree: children by
 * name, primitive values, the resource of a Bundle entry. The core reads
 * the message from it and builds the Acknowledgement's content
 * (struct fhir_ack), which the syntax writes out.
 */
#ifndef EDIBROKER_FHIR_INT_H
#define EDIBROKER_FHIR_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codecs/codec.h"

typedef const void *fhir_node;
typedef int (*fhir_each_fn)(fhir_node child, void *ctx);

struct fhir_tree {
	/* The first child of n named name (a repeated one's first), or NULL. */
	fhir_node (*child)(fhir_node n, const char *name);
	/* fn(c, ctx) for each child c of n named name, in order, until fn
	 * returns non-zero, which is returned; 0 after the last. */
	int (*each)(fhir_node n, const char *name, fhir_each_fn fn, void *ctx);
	/* The primitive string value of n's child `name` (XML @value of the
	 * child element, or n's attribute of that name, as for url), or NULL. */
	const char *(*value)(fhir_node n, const char *name);
	/* The resource of a Bundle entry and its type name, or NULL. */
	fhir_node (*resource)(fhir_node entry, const char **type);
};

/* Reads the message in bundle (the root, already known to be a Bundle)
 * into env, which the syntax has cleared and given its codec and
 * encoding. buf[0..len) is the whole input, for the Bundle.id txid.
 * 0, or -1 with *err and env partly filled (codec.h). */
int fhir_read_bundle(const struct fhir_tree *t, fhir_node bundle, const uint8_t *buf, size_t len,
		     struct codec_envelope *env, struct codec_error *err);

/* The content of the Acknowledgement refusing a message. */
struct fhir_ack {
	char bundle_id[CODEC_UUID_LEN + 1], header_id[CODEC_UUID_LEN + 1];
	char provenance_id[CODEC_UUID_LEN + 1], outcome_id[CODEC_UUID_LEN + 1];
	char broker_org_id[CODEC_UUID_LEN + 1], dest_org_id[CODEC_UUID_LEN + 1];
	char when[40];             /* Bundle.timestamp, Provenance times, with offset */
	const char *broker_gln;    /* the broker Organization's GLN, or NULL */
	const char *broker_name;   /* its name: the broker's id */
	const char *dest_gln;      /* the refused message's sender, the ack's receiver */
	const char *dest_sor;      /* its SOR id, "" when unknown */
	const char *acked_id;      /* the refused MessageHeader.id: response.identifier */
	const char *issue_code;    /* OperationOutcome.issue.code (FHIR IssueType) */
	const char *error_code;    /* MedCom acknowledgement error code, or NULL */
	const char *text;          /* issue.details.text, or NULL */
};

/* Writes ack in a syntax; returns a malloc'ed document and its length. */
typedef char *(*fhir_ack_writer)(const struct fhir_ack *ack, size_t *len);

/* The refuse() of both syntaxes: fills a struct fhir_ack for env and p,
 * writes it with `write`, and fills *out (format and ext from codec). */
int fhir_refuse(const struct codec_envelope *env, const struct codec_refusal_params *p,
		const struct codec *codec, fhir_ack_writer write, struct codec_receipt *out);

/* Canonical URLs both writers use. */
#define FHIR_EVENT_SYSTEM "http://medcomfhir.dk/ig/terminology/CodeSystem/medcom-messaging-eventCodes"
#define FHIR_DEST_USE_URL                                                                          \
	"http://medcomfhir.dk/ig/messaging/StructureDefinition/medcom-messaging-destinationUseExtension"
#define FHIR_DEST_USE_SYSTEM                                                                       \
	"http://medcomfhir.dk/ig/terminology/CodeSystem/medcom-messaging-destinationUse"
#define FHIR_ACTIVITY_SYSTEM                                                                       \
	"http://medcomfhir.dk/ig/terminology/CodeSystem/medcom-messaging-activityCodes"
#define FHIR_ACK_ERROR_SYSTEM                                                                      \
	"http://medcomfhir.dk/ig/terminology/CodeSystem/medcom-acknowledgement-error-codes"
#define FHIR_ACK_PROFILE                                                                           \
	"http://medcomfhir.dk/ig/acknowledgement/StructureDefinition/medcom-messaging-acknowledgement"
#define FHIR_ACK_HEADER_PROFILE                                                                    \
	"http://medcomfhir.dk/ig/acknowledgement/StructureDefinition/"                            \
	"medcom-messaging-acknowledgementHeader"
#define FHIR_ACK_OUTCOME_PROFILE                                                                   \
	"http://medcomfhir.dk/ig/acknowledgement/StructureDefinition/"                            \
	"medcom-acknowledgement-operationoutcome"
#define FHIR_PROVENANCE_PROFILE                                                                    \
	"http://medcomfhir.dk/ig/messaging/StructureDefinition/medcom-messaging-provenance"
#define FHIR_ORG_PROFILE                                                                           \
	"http://medcomfhir.dk/ig/messaging/StructureDefinition/medcom-messaging-organization"
#define FHIR_GLN_SYSTEM "https://www.gs1.org/gln"
#define FHIR_GLN_SYSTEM_OID "urn:oid:1.3.88"
#define FHIR_SOR_SYSTEM "urn:oid:1.2.208.176.1.1"
#define FHIR_UNKNOWN_ENDPOINT "http://medcomfhir.dk/unknown"
#define FHIR_ACK_EVENT "acknowledgement-message"

#endif
