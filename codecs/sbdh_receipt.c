/*
 * sbdh_receipt.c - the SBDH codec's refusal (sbdh.h). SBDH is a transport
 * wrapping with no receipt of its own, so the refusal is the receipt of
 * what it carried (an XCTL01 for OIOXML, a NegativeVans for a
 * VANSEnvelope, an Acknowledgement for FHIR), built by that format's codec
 * and wrapped in a new StandardBusinessDocument from the broker to the
 * original sender: the answer goes back the way the message came.
 *
 * The header follows the eDelivery pilot's (medcom.md 5.7): identifiers in
 * scheme 0088 (the broker's own GLN, [broker] gln; without one, its id
 * with no scheme), InstanceIdentifier "<that GLN or id>:<receipt letter id>",
 * Standard and TypeVersion by the receipt's format (the pilot's value for
 * OIOXML; the others are ours: MedCom publishes none), the payload base64
 * in BinaryContent with its mime type and UTF-8.
 */
#include "codecs/sbdh.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "codecs/base/base64.h"
#include "codecs/base/mem.h"
#include "codecs/base/strbuf.h"
#include "codecs/rcptout.h"

/* What the header says about the receipt inside, by its format. */
static const struct {
	const char *format, *standard, *version, *mime;
} inner_kinds[] = {
	{ "oioxml", "urn:dk:healthcare:medcom:oioxml:schema:xsd:NegativeVansReceipt", NULL,
	  "text/xml" },
	{ "vans", "urn:oio:medcom:vans-envelope:1.0.4", "1.0.4", "text/xml" },
	{ "fhir-xml", "urn:dk:healthcare:medcom:fhir:acknowledgement", "2.0", "application/fhir+xml" },
	{ "fhir-json", "urn:dk:healthcare:medcom:fhir:acknowledgement", "2.0",
	  "application/fhir+json" },
	{ "edifact", "urn:dk:healthcare:medcom:edifact:contrl", NULL, "application/edifact" },
};

struct sbdh_out {
	const char *standard, *version, *mime;
	char sender[CODEC_GLN_MAX + 8], receiver[CODEC_GLN_MAX + 8];
	char instance[CODEC_ID_MAX], when[40];
};

static void describe_inner(const struct codec_receipt *in, struct sbdh_out *o)
{
	o->standard = "urn:dk:healthcare:medcom";
	o->version = NULL;
	o->mime = "application/octet-stream";
	for (size_t i = 0; i < ARRAY_SIZE(inner_kinds); i++)
		if (strcmp(in->format, inner_kinds[i].format) == 0) {
			o->standard = inner_kinds[i].standard;
			o->version = inner_kinds[i].version;
			o->mime = inner_kinds[i].mime;
		}
	if (in->version[0]) /* the receipt's own version code (XC0130Q) */
		o->version = in->version;
	if (!o->version)
		o->version = "1.0";
	const char *me = strchr(o->sender, ':') ? strchr(o->sender, ':') + 1 : o->sender;
	int n = snprintf(o->instance, sizeof(o->instance), "%s:%s", me, in->key.id);
	if (n < 0 || (size_t)n >= sizeof(o->instance))
		str_copy(o->instance, in->key.id, sizeof(o->instance));
}

static void put_party(struct strbuf *b, const char *party, const char *id, bool gln)
{
	strbuf_printf(b, "    <%s>\n      <Identifier%s>", party,
		      gln ? " Authority=\"iso6523-actorid-upis\"" : "");
	rcptout_text(b, id);
	strbuf_printf(b, "</Identifier>\n    </%s>\n", party);
}

static char *build(const struct sbdh_out *o, const struct codec_receipt *in, bool sender_gln,
		   bool receiver_gln, size_t *len)
{
	struct strbuf b = { 0 };
	_cleanup_free_ char *payload = base64_encode(in->body, in->size, NULL);
	strbuf_puts(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<StandardBusinessDocument "
			"xmlns=\"" SBDH_NS "\">\n  <StandardBusinessDocumentHeader>\n"
			"    <HeaderVersion>1.0</HeaderVersion>\n");
	put_party(&b, "Sender", o->sender, sender_gln);
	put_party(&b, "Receiver", o->receiver, receiver_gln);
	strbuf_puts(&b, "    <DocumentIdentification>\n");
	rcptout_elem(&b, 3, "Standard", o->standard);
	rcptout_elem(&b, 3, "TypeVersion", o->version);
	rcptout_elem(&b, 3, "InstanceIdentifier", o->instance);
	rcptout_elem(&b, 3, "Type", in->type);
	rcptout_elem(&b, 3, "CreationDateAndTime", o->when);
	strbuf_puts(&b, "    </DocumentIdentification>\n  </StandardBusinessDocumentHeader>\n");
	strbuf_printf(&b, "  <BinaryContent mimeType=\"%s\" encoding=\"UTF-8\">%s</BinaryContent>\n",
		      o->mime, payload);
	strbuf_puts(&b, "</StandardBusinessDocument>\n");
	*len = b.len;
	return b.p;
}

/* env as the codec of what the SBDH carries sees it: the SBDH peeled off. */
static struct codec_envelope *peel(const struct codec_envelope *env)
{
	const struct codec *next = env->nlayers > 1 ? env->layers[1].codec : env->inner;
	if (!next)
		return NULL;
	struct codec_envelope *in = xmalloc(sizeof(*in));
	*in = *env;
	in->codec = next;
	in->nlayers--;
	memmove(&in->layers[0], &in->layers[1], in->nlayers * sizeof(in->layers[0]));
	return in;
}

/* Addresses of the new header: the broker, and the original sender. */
static int address(const struct codec_layer *orig, const struct codec_refusal_params *p,
		   struct sbdh_out *o)
{
	int n = p->broker_gln ? snprintf(o->sender, sizeof(o->sender), SBDH_GLN_SCHEME ":%s",
					 p->broker_gln)
			      : snprintf(o->sender, sizeof(o->sender), "%s", p->broker_id);
	int m = orig->sender_kind[0]
			? snprintf(o->receiver, sizeof(o->receiver), "%s:%s", orig->sender_kind,
				   orig->sender)
			: snprintf(o->receiver, sizeof(o->receiver), "%s", orig->sender);
	if (n <= 0 || (size_t)n >= sizeof(o->sender) || m <= 0 ||
	    (size_t)m >= sizeof(o->receiver) || !rcptout_text_ok(o->sender, sizeof(o->sender), false) ||
	    !rcptout_text_ok(o->receiver, sizeof(o->receiver), false) || !orig->sender[0] ||
	    !rcptout_datetime(&p->now, o->when, sizeof(o->when)))
		return -EINVAL;
	return 0;
}

int sbdh_refuse(const struct codec_envelope *env, const struct codec_refusal_params *p,
		struct codec_receipt *out)
{
	struct sbdh_out o;
	struct codec_receipt in;
	if (!env || !p || !out)
		return -EINVAL;
	if (env->is_receipt)
		return -ENOTSUP;
	if (env->nlayers == 0 || env->layers[0].codec != &codec_sbdh ||
	    address(&env->layers[0], p, &o) < 0)
		return -EINVAL;
	_cleanup_free_ struct codec_envelope *inner = peel(env);
	int r = inner ? codec_refuse(inner, p, &in) : -EINVAL;
	if (r < 0)
		return r;
	describe_inner(&in, &o);
	size_t len;
	char *body = build(&o, &in, p->broker_gln != NULL,
			   strcmp(env->layers[0].sender_kind, SBDH_GLN_SCHEME) == 0, &len);
	*out = (struct codec_receipt){ .body = (uint8_t *)body, .size = len, .format = "sbdh",
				       .ext = "xml" };
	str_copy(out->type, in.type, sizeof(out->type));
	str_copy(out->version, in.version, sizeof(out->version));
	str_copy(out->envelope_id, o.instance, sizeof(out->envelope_id));
	str_copy(out->sender, p->broker_gln ? p->broker_gln : p->broker_id, sizeof(out->sender));
	str_copy(out->receiver, env->layers[0].sender, sizeof(out->receiver));
	str_copy(out->refers, env->layers[0].id, sizeof(out->refers));
	out->key = in.key;
	free(in.body);
	return 0;
}
