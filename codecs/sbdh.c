/*
 * sbdh.c - decodes a StandardBusinessDocument as MedCom's eDelivery pilot
 * writes it (sbdh.h): the header's Sender, Receiver and
 * DocumentIdentification, then BinaryContent through the registry
 * (codec_wrap.c). The business scopes are not read: the payload says what
 * the broker needs, and they repeat the patient's data.
 *
 * Invariants: exactly one Sender and one Receiver; a receiver identifier in
 * scheme 0088 (a GLN) equal to every letter's receiver; the wrapper id
 * (InstanceIdentifier) 1..64 characters. On failure env keeps the layer
 * as far as it was read, and what the payload's codec left, so the
 * payload's receipt can still be built and wrapped.
 */
#include "codecs/sbdh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#include "codecs/base/mem.h"
#include "codecs/codec_wrap.h"
#include "codecs/renew.h"
#include "codecs/xmlsafe.h"
#include "codecs/xmlsniff.h"
#include "codecs/xmltree.h"

#define WHERE "SBDH"

/* Splits "scheme:value" (scheme four digits, as ISO 6523 ICDs are) into
 * kind and value; without a scheme kind is "" and value the whole. */
static void split_identifier(const char *id, char kind[8], char *value, size_t valsz)
{
	bool scheme = strlen(id) > 5 && id[4] == ':' && strspn(id, "0123456789") == 4;
	str_copy(kind, scheme ? (char[5]){ id[0], id[1], id[2], id[3], '\0' } : "", 8);
	str_copy(value, scheme ? id + 5 : id, valsz);
}

/* <party>/Identifier of the header, once: "0088:<GLN>" for a receiver. */
static int read_party(const xmlNode *head, const char *party, char *value, char kind[8],
		      struct codec_error *err)
{
	char id[CODEC_GLN_MAX + 8];
	const xmlNode *p = xmltree_child(head, party);
	if (p && xmltree_next(p) && xmltree_is(xmltree_next(p), party))
		return xmlsafe_fail(err, CODEC_ESTRUCTURE, WHERE ": more than one %s", party);
	char path[32];
	snprintf(path, sizeof(path), "%s/Identifier", party);
	if (xmltree_read(head, path, id, sizeof(id), WHERE, err) < 0)
		return -1;
	split_identifier(id, kind, value, CODEC_GLN_MAX);
	if (strlen(id) - (kind[0] ? 5 : 0) >= CODEC_GLN_MAX) {
		value[0] = kind[0] = '\0';
		return xmlsafe_fail(err, CODEC_EFIELD, WHERE ": %s is too long", path);
	}
	return 0;
}

static int read_header(const xmlNode *root, struct codec_layer *l, struct codec_error *err)
{
	char version[16], standard[CODEC_TEXT_MAX], created[40];
	const char *where = WHERE ": DocumentIdentification";
	const xmlNode *head = xmltree_child(root, "StandardBusinessDocumentHeader");
	const xmlNode *doc = xmltree_child(head, "DocumentIdentification");
	if (!head || !doc)
		return xmlsafe_fail(err, CODEC_ESTRUCTURE, WHERE ": missing %s",
				    head ? "DocumentIdentification" : "StandardBusinessDocumentHeader");
	if (xmltree_read(head, "HeaderVersion", version, sizeof(version), WHERE, err) < 0 ||
	    read_party(head, "Sender", l->sender, l->sender_kind, err) < 0 ||
	    read_party(head, "Receiver", l->receiver, l->receiver_kind, err) < 0 ||
	    xmltree_read(doc, "InstanceIdentifier", l->id, sizeof(l->id), where, err) < 0 ||
	    xmltree_read(doc, "Standard", standard, sizeof(standard), where, err) < 0 ||
	    xmltree_read(doc, "TypeVersion", l->doc_version, sizeof(l->doc_version), where, err) < 0 ||
	    xmltree_read(doc, "Type", l->doc_name, sizeof(l->doc_name), where, err) < 0 ||
	    xmltree_read(doc, "CreationDateAndTime", created, sizeof(created), where, err) < 0)
		return -1;
	if (strcmp(l->receiver_kind, SBDH_GLN_SCHEME) != 0)
		return xmlsafe_fail(err, CODEC_EADDRESS, WHERE ": Receiver/Identifier is not a GLN "
				    "(" SBDH_GLN_SCHEME ":)");
	return 0;
}

static int check_root(const xmlNode *root, struct codec_error *err)
{
	if (!xmltree_is(root, "StandardBusinessDocument"))
		return xmlsafe_fail(err, CODEC_ESTRUCTURE,
				    "root element is %.64s, not StandardBusinessDocument",
				    root ? (const char *)root->name : "missing");
	if (!xmltree_in_ns(root, SBDH_NS))
		return xmlsafe_fail(err, CODEC_ESTRUCTURE, WHERE ": namespace is not " SBDH_NS);
	return 0;
}

/* BinaryContent, decoded from base64 within the budget; *charset is its
 * @encoding (NULL when absent or empty), pointing into the tree. */
static int read_content(const xmlNode *root, size_t budget, uint8_t **payload, size_t *plen,
			const char **charset, struct codec_error *err)
{
	const xmlNode *bin = xmltree_child(root, "BinaryContent");
	size_t len;
	char *owned;
	const char *text = bin && xmlsafe_node_closed(bin) ? xmltree_content(bin, &len, &owned)
							    : NULL;
	if (!text)
		return xmlsafe_fail(err, CODEC_EFIELD, WHERE ": missing BinaryContent");
	const char *enc = xmltree_attr(bin, "encoding");
	*charset = enc && enc[0] ? enc : NULL;
	int r = wrap_base64(text, len, budget, WHERE " BinaryContent", payload, plen, err);
	free(owned);
	return r;
}

static int decode_document(const xmlNode *root, struct codec_layer *l, size_t len,
			   const struct codec_limits *lim, struct codec_envelope *env,
			   struct codec_error *err)
{
	uint8_t *payload;
	size_t plen;
	const char *charset = NULL;
	if (check_root(root, err) < 0 || read_header(root, l, err) < 0 ||
	    read_content(root, wrap_budget(lim, len), &payload, &plen, &charset, err) < 0)
		return -1;
	int r = wrap_decode_payload(payload, plen, lim, len, charset, l, WHERE " BinaryContent",
				    env, err);
	free(payload);
	if (r == 0)
		r = wrap_check_receiver(env, l->receiver, WHERE " Receiver", err);
	return r;
}

static int sbdh_decode(const uint8_t *buf, size_t len, const struct codec_limits *lim,
		       struct codec_envelope *env, struct codec_error *err)
{
	struct codec_layer l = { .codec = &codec_sbdh, .declared_size = -1 };
	struct xmlsafe_doc d = { 0 };
	memset(env, 0, sizeof(*env));
	env->codec = &codec_sbdh;
	*err = (struct codec_error){ .code = CODEC_OK };

	int r = wrap_check_depth(lim, WHERE, err);
	if (r == 0)
		r = xmlsafe_parse(buf, len, lim, &d, err);
	const xmlNode *root = d.doc ? xmlDocGetRootElement(d.doc) : NULL;
	if (r == 0)
		r = decode_document(root, &l, len, lim, env, err);
	else if (root && check_root(root, &(struct codec_error){ 0 }) == 0)
		(void)read_header(root, &l, &(struct codec_error){ 0 }); /* salvage */
	if (r < 0) {
		if (env->nlayers == 0) /* failed before its payload, which records it */
			wrap_keep_layer(env, &l);
		env->nletters = 0;
		if (!env->encoding[0] && d.encoding)
			str_copy(env->encoding, d.encoding, sizeof(env->encoding));
	}
	xmlsafe_doc_free(&d);
	return r;
}

static bool sbdh_sniff(const uint8_t *buf, size_t len)
{
	struct xmlsniff root;
	return xmlsniff_root(buf, len, &root) &&
	       strcmp(root.local, "StandardBusinessDocument") == 0 && strcmp(root.ns, SBDH_NS) == 0;
}

/* DocumentIdentification/InstanceIdentifier: the first InstanceIdentifier,
 * since the header comes before BusinessScope (renew_run checks). */
static size_t find_instance_id(const uint8_t *buf, size_t len, const struct codec_envelope *env,
			       struct renew_span spans[RENEW_SPANS_MAX])
{
	return renew_xml_field(buf, len, "InstanceIdentifier", NULL, &spans[0]) ? 1 : 0;
}

/* An SBDH carrying an acknowledgement, as a new document: a fresh
 * InstanceIdentifier; the payload stays as it was. */
static int sbdh_renew(const uint8_t *buf, size_t len, const struct codec_limits *lim,
		      const struct codec_refusal_params *p, struct codec_receipt *out)
{
	return renew_run(&codec_sbdh, buf, len, lim, p, true, find_instance_id, out);
}

const struct codec codec_sbdh = {
	.name = "sbdh",
	.ext = "xml",
	.sniff = sbdh_sniff,
	.decode = sbdh_decode,
	.refuse = sbdh_refuse,
	.renew = sbdh_renew,
};
