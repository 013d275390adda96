/*
 * vans.c - decodes a MedCom VANSEnvelope 1.0.4 (vans.h). The registry
 * sniffs it by its root element and namespace; a Message's payload goes
 * back through the registry (codec_wrap.c), so a VANSEnvelope around
 * OIOXML, FHIR or (inside SBDH) anything else decodes the same way.
 *
 * The envelope's own elements must come in the schema's order and nothing
 * else may appear among them; each value is read whole or not at all (a
 * truncated document yields no half id). Envelope and message ids are any
 * 1..64 printable characters, not only UUIDs: real traffic (Region H) uses
 * EPIC numbers. On failure env keeps the layer as far as it was read, so
 * a Receipt/NegativeVans can still be addressed to the SenderID.
 */
#include "codecs/vans.h"

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

#define WHERE "VANSEnvelope"
#define VANS_NS_PREFIX "urn:oio:medcom:vans-envelope:"

/* The children of VANSEnvelope, in schema order; the last is a choice. */
static const char *const envelope_children[] = { "SenderID", "ReceiverID",
						 "EnvelopeIdentifier", "SentDateTime" };
static const char *const endpoint_types[] = { "EAN", "CVR", "VANS" };
static const char *const formats[] = { "XML", "EDIFACT", "HL7", "Binary", "Other" };
static const char *const receipt_kinds[] = { "NegativeVans", "NegativeMessage",
					     "PositiveMessage" };

static bool one_of(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; s && i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

/* What one decode knows, besides env. */
struct vans_read {
	struct codec_layer layer;
	const xmlNode *body;      /* Message, or the kind element under Receipt */
	bool receipt;
};

/* ---- the envelope's own elements --------------------------------------- */

static int check_order(const xmlNode *root, struct codec_error *err)
{
	const xmlNode *c = xmltree_first(root->children);
	for (size_t i = 0; i < ARRAY_SIZE(envelope_children); i++, c = xmltree_next(c))
		if (!xmltree_is(c, envelope_children[i]))
			return xmlsafe_fail(err, CODEC_ESTRUCTURE, WHERE ": %s expected as child %zu",
					    envelope_children[i], i + 1);
	if (!xmltree_is(c, "Message") && !xmltree_is(c, "Receipt"))
		return xmlsafe_fail(err, CODEC_ESTRUCTURE, WHERE ": Message or Receipt expected "
				    "after SentDateTime");
	if (xmltree_next(c))
		return xmlsafe_fail(err, CODEC_ESTRUCTURE, WHERE ": an element follows %s",
				    (const char *)c->name);
	return 0;
}

static int read_endpoint(const xmlNode *root, const char *name, char *value, char kind[8],
			 struct codec_error *err)
{
	if (xmltree_read(root, name, value, VANS_ID_MAX + 1, WHERE, err) < 0)
		return -1;
	const char *type = xmltree_attr(xmltree_child(root, name), "EndPointType");
	if (!one_of(type, endpoint_types, ARRAY_SIZE(endpoint_types))) {
		value[0] = '\0';
		return xmlsafe_fail(err, CODEC_EFIELD, WHERE ": %s/@EndPointType is not EAN, CVR "
				    "or VANS", name);
	}
	str_copy(kind, type, 8);
	return 0;
}

static int read_head(const xmlNode *root, struct vans_read *v, struct codec_error *err)
{
	char sent[40];
	struct codec_layer *l = &v->layer;
	return read_endpoint(root, "SenderID", l->sender, l->sender_kind, err) < 0 ||
			       read_endpoint(root, "ReceiverID", l->receiver, l->receiver_kind, err) < 0 ||
			       xmltree_read(root, "EnvelopeIdentifier", l->id, sizeof(l->id), WHERE,
					    err) < 0 ||
			       xmltree_read(root, "SentDateTime", sent, sizeof(sent), WHERE, err) < 0
		       ? -1
		       : 0;
}

/* ---- Message ------------------------------------------------------------- */

/* Document/SizeInBytes: an xs:int that is not negative. */
static int read_size(const xmlNode *doc, long long *size, struct codec_error *err)
{
	char text[16], *end;
	if (xmltree_read(doc, "SizeInBytes", text, sizeof(text), WHERE ": Document", err) < 0)
		return -1;
	long long v = strtoll(text, &end, 10);
	if (*end || text[0] == '-' || text[0] == '+' || v > 2147483647LL)
		return xmlsafe_fail(err, CODEC_EFIELD, WHERE ": Document/SizeInBytes is not a "
				    "number of bytes");
	*size = v;
	return 0;
}

static int read_meta(const xmlNode *msg, struct codec_layer *l, struct codec_error *err)
{
	const char *where = WHERE ": MetaInformation";
	const xmlNode *meta = xmltree_child(msg, "MetaInformation");
	const xmlNode *doc = xmltree_child(meta, "Document");
	if (!meta || !doc)
		return xmlsafe_fail(err, CODEC_EFIELD, WHERE ": missing Message/%s",
				    meta ? "MetaInformation/Document" : "MetaInformation");
	if (xmltree_read(meta, "Identifier", l->message_id, sizeof(l->message_id), where, err) < 0 ||
	    xmltree_read(doc, "Format", l->doc_format, sizeof(l->doc_format), where, err) < 0 ||
	    xmltree_read(doc, "Name", l->doc_name, sizeof(l->doc_name), where, err) < 0 ||
	    (xmltree_child(doc, "Version") &&
	     xmltree_read(doc, "Version", l->doc_version, sizeof(l->doc_version), where, err) < 0))
		return -1;
	if (!one_of(l->doc_format, formats, ARRAY_SIZE(formats)))
		return xmlsafe_fail(err, CODEC_EFIELD, WHERE ": Document/Format is not XML, "
				    "EDIFACT, HL7, Binary or Other");
	return read_size(doc, &l->declared_size, err);
}

/* Decodes Data: base64 within the byte budget, its length as declared. */
static int read_data(const xmlNode *msg, const struct codec_layer *l, size_t budget,
		     uint8_t **payload, size_t *plen, struct codec_error *err)
{
	const xmlNode *data = xmltree_child(msg, "Data");
	size_t len;
	char *owned;
	const char *text = data && xmlsafe_node_closed(data) ? xmltree_content(data, &len, &owned)
							      : NULL;
	if (!text)
		return xmlsafe_fail(err, CODEC_EFIELD, WHERE ": missing Message/Data");
	int r = wrap_base64(text, len, budget, WHERE " Data", payload, plen, err);
	free(owned);
	if (r == 0 && (long long)*plen != l->declared_size) {
		free(*payload);
		return xmlsafe_fail(err, CODEC_EFIELD, WHERE ": Data decodes to %zu bytes, "
				    "Document/SizeInBytes says %lld", *plen, l->declared_size);
	}
	return r;
}

/* The payload, decoded by its own codec; an EAN ReceiverID must be its
 * letters' receiver, so routing by the letters routes by ReceiverID. */
static int decode_message(struct vans_read *v, size_t len, const struct codec_limits *lim,
			  struct codec_envelope *env, struct codec_error *err)
{
	uint8_t *payload;
	size_t plen;
	if (read_meta(v->body, &v->layer, err) < 0 ||
	    read_data(v->body, &v->layer, wrap_budget(lim, len), &payload, &plen, err) < 0)
		return -1;
	int r = wrap_decode_payload(payload, plen, lim, len, NULL, &v->layer, WHERE " Data", env,
				    err);
	free(payload);
	if (r == 0 && strcmp(v->layer.receiver_kind, "EAN") == 0)
		r = wrap_check_receiver(env, v->layer.receiver, WHERE " ReceiverID", err);
	return r;
}

/* ---- Receipt ------------------------------------------------------------- */

/* A VANS Receipt is one letter of its own, routed by ReceiverID. */
static int decode_receipt(const struct vans_read *v, struct codec_envelope *env,
			  struct codec_error *err)
{
	char orig[CODEC_ID_MAX];
	const char *kind = (const char *)v->body->name;
	if (xmltree_read(v->body, "OriginalEnvelopeIdentifier", orig, sizeof(orig),
			 WHERE ": Receipt", err) < 0)
		return -1;
	struct codec_letter *l = &env->letters[0];
	struct codec_refers *rf = &env->refers;
	rf->code = strcmp(kind, "PositiveMessage") == 0 ? CODEC_ACK_POSITIVE : CODEC_ACK_NEGATIVE;
	rf->scope = codec_vans.name; /* the original's EnvelopeIdentifier: a txid */
	str_copy(rf->detail, kind, sizeof(rf->detail));
	str_copy(rf->refs[0].sender, v->layer.receiver, sizeof(rf->refs[0].sender));
	str_copy(rf->refs[0].envelope_id, orig, sizeof(rf->refs[0].envelope_id));
	rf->n = 1;
	str_copy(env->envelope_id, v->layer.id, sizeof(env->envelope_id));
	str_copy(l->id, v->layer.id, sizeof(l->id));
	str_copy(l->type, kind, sizeof(l->type));
	str_copy(l->sender, v->layer.sender, sizeof(l->sender));
	str_copy(l->receiver, v->layer.receiver, sizeof(l->receiver));
	env->nletters = 1;
	return 0;
}

/* Receipt holds exactly one of the three kinds. */
static const xmlNode *receipt_kind(const xmlNode *receipt, struct codec_error *err)
{
	const xmlNode *k = xmltree_first(receipt->children);
	if (!k || !one_of((const char *)k->name, receipt_kinds, ARRAY_SIZE(receipt_kinds)) ||
	    xmltree_next(k)) {
		xmlsafe_fail(err, CODEC_ESTRUCTURE, WHERE ": Receipt holds none of NegativeVans, "
			     "NegativeMessage, PositiveMessage");
		return NULL;
	}
	return k;
}

/* ---- decode -------------------------------------------------------------- */

static int check_root(const xmlNode *root, struct codec_error *err)
{
	if (!xmltree_is(root, "VANSEnvelope"))
		return xmlsafe_fail(err, CODEC_ESTRUCTURE, "root element is %.64s, not VANSEnvelope",
				    root ? (const char *)root->name : "missing");
	if (!xmltree_in_ns(root, VANS_NS))
		return xmlsafe_fail(err, CODEC_ESTRUCTURE, WHERE ": namespace is not " VANS_NS);
	return 0;
}

/* Reads the envelope's own part; finds Message or the Receipt's kind. */
static int read_envelope(const xmlNode *root, struct vans_read *v, struct codec_error *err)
{
	if (check_root(root, err) < 0 || check_order(root, err) < 0 || read_head(root, v, err) < 0)
		return -1;
	const xmlNode *last = xmltree_child(root, "Message");
	if (last) {
		v->body = last;
		return 0;
	}
	v->receipt = true;
	v->body = receipt_kind(xmltree_child(root, "Receipt"), err);
	return v->body ? 0 : -1;
}

/* After a failure: the layer as far as it was read, a Receipt known as one. */
static void keep_partial(struct codec_envelope *env, const struct vans_read *v,
			 const char *encoding, const xmlNode *root)
{
	if (env->nlayers == 0) /* failed before its payload, which records it */
		wrap_keep_layer(env, &v->layer);
	env->nletters = 0;
	env->is_receipt = env->is_receipt || v->receipt || xmltree_child(root, "Receipt");
	if (!env->encoding[0] && encoding)
		str_copy(env->encoding, encoding, sizeof(env->encoding));
}

static int vans_decode(const uint8_t *buf, size_t len, const struct codec_limits *lim,
		       struct codec_envelope *env, struct codec_error *err)
{
	struct vans_read v = { .layer = { .codec = &codec_vans, .declared_size = -1 } };
	struct xmlsafe_doc d = { 0 };
	memset(env, 0, sizeof(*env));
	env->codec = env->inner = &codec_vans;
	*err = (struct codec_error){ .code = CODEC_OK };

	int r = wrap_check_depth(lim, WHERE, err);
	if (r == 0)
		r = xmlsafe_parse(buf, len, lim, &d, err);
	const xmlNode *root = d.doc ? xmlDocGetRootElement(d.doc) : NULL;
	if (r == 0)
		r = read_envelope(root, &v, err);
	else if (root && check_root(root, &(struct codec_error){ 0 }) == 0)
		(void)read_head(root, &v, &(struct codec_error){ 0 }); /* salvage */
	if (r == 0 && v.receipt) {
		str_copy(env->encoding, d.encoding, sizeof(env->encoding));
		env->is_receipt = true;
		r = decode_receipt(&v, env, err);
	} else if (r == 0) {
		r = decode_message(&v, len, lim, env, err);
	}
	if (r < 0)
		keep_partial(env, &v, d.encoding, root);
	xmlsafe_doc_free(&d);
	return r;
}

static bool vans_sniff(const uint8_t *buf, size_t len)
{
	struct xmlsniff root;
	return xmlsniff_root(buf, len, &root) && strcmp(root.local, "VANSEnvelope") == 0 &&
	       strncmp(root.ns, VANS_NS_PREFIX, strlen(VANS_NS_PREFIX)) == 0;
}

/* EnvelopeIdentifier, the third child of the root (renew_run checks). */
static size_t find_envelope_id(const uint8_t *buf, size_t len, const struct codec_envelope *env,
			       struct renew_span spans[RENEW_SPANS_MAX])
{
	return renew_xml_field(buf, len, "EnvelopeIdentifier", NULL, &spans[0]) ? 1 : 0;
}

/* A Receipt, or a Message carrying an acknowledgement, as a new envelope:
 * a fresh EnvelopeIdentifier (a UUID, as the schema has it); the
 * MetaInformation/Identifier and the payload stay. */
static int vans_renew(const uint8_t *buf, size_t len, const struct codec_limits *lim,
		      const struct codec_refusal_params *p, struct codec_receipt *out)
{
	return renew_run(&codec_vans, buf, len, lim, p, true, find_envelope_id, out);
}

const struct codec codec_vans = {
	.name = "vans",
	.ext = "xml",
	.sniff = vans_sniff,
	.decode = vans_decode,
	.refuse = vans_refuse,
	.renew = vans_renew,
};
