/*
 * vans_receipt.c - the VANS codec's refusal: a VANSEnvelope 1.0.4 whose
 * Receipt/NegativeVans refuses the original envelope (medcom.md 5.2, 5.4,
 * 9.14). The accept path asks for it through codec_refuse() when a
 * VANSEnvelope's receiver is unknown or the envelope (or its payload) is
 * refused; it goes back to the endpoint the original came from.
 *
 * The receipt is the network's own answer, so it never wraps the payload's
 * receipt: a refused VANSEnvelope is answered by VANS, whatever it carried.
 * Sender: the broker's GLN (EndPointType EAN) when configured, else its
 * VANS id. Its own EnvelopeIdentifier is a fresh UUID; Error carries the
 * text (no code: MedCom publishes no VANS error-code list). It is valid
 * against VANSEnvelope-1.0.4.xsd when the original's ids are UUIDs; ids
 * that are not (Region H's EPIC numbers) are echoed as they came, since
 * the receipt must name what it refuses. Every value is checked against
 * its schema field before a byte is written.
 */
#include "codecs/vans.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "codecs/base/mem.h"
#include "codecs/base/strbuf.h"
#include "codecs/base/utf8.h"
#include "codecs/rcptout.h"

#define DESCRIPTION_MAX 512 /* ErrorType/Description */

/* Error/Description when the broker gives no text. */
static const char *const default_text[] = {
	[CODEC_REFUSE_UNSPECIFIED] = "The envelope was refused by the EDI broker.",
	[CODEC_REFUSE_UNKNOWN_RECEIVER] = "Unknown receiver: no endpoint has the ReceiverID.",
	[CODEC_REFUSE_RECEIVER_ID] = "The receiver id does not match the message.",
	[CODEC_REFUSE_SYNTAX] = "The envelope could not be read.",
	[CODEC_REFUSE_VERSION] = "The message version is not accepted.",
	[CODEC_REFUSE_TYPE] = "The receiver does not take this message type.",
};
_Static_assert(ARRAY_SIZE(default_text) == CODEC_REFUSE_LAST + 1, "a text for every refusal");

/* Error/Description: the text, cut at 512 bytes on a character boundary. */
static void put_error(struct strbuf *b, const struct codec_refusal_params *p)
{
	const char *text = !str_empty(p->text) ? p->text
			   : (size_t)p->reason < ARRAY_SIZE(default_text) ? default_text[p->reason]
									 : default_text[0];
	char desc[DESCRIPTION_MAX + 1];
	size_t n = utf8_cut(text, strlen(text), DESCRIPTION_MAX);
	memcpy(desc, text, n);
	desc[n] = '\0';
	strbuf_puts(b, "      <Error>\n");
	rcptout_elem(b, 4, "Description", desc);
	strbuf_puts(b, "      </Error>\n");
}

/* OriginalMessage: the original MetaInformation, when it was read whole. */
static void put_original_message(struct strbuf *b, const struct codec_layer *o)
{
	if (!o->message_id[0] || !o->doc_format[0] || !o->doc_name[0] || o->declared_size < 0)
		return;
	strbuf_puts(b, "      <OriginalMessage>\n");
	rcptout_elem(b, 4, "Identifier", o->message_id);
	strbuf_puts(b, "        <Document>\n");
	rcptout_elem(b, 5, "Format", o->doc_format);
	rcptout_elem(b, 5, "Name", o->doc_name);
	if (o->doc_version[0])
		rcptout_elem(b, 5, "Version", o->doc_version);
	strbuf_printf(b, "          <SizeInBytes>%lld</SizeInBytes>\n", o->declared_size);
	strbuf_puts(b, "        </Document>\n      </OriginalMessage>\n");
}

static void put_endpoint(struct strbuf *b, const char *name, const char *kind, const char *id)
{
	strbuf_printf(b, "  <%s EndPointType=\"%s\">", name, kind);
	rcptout_text(b, id);
	strbuf_printf(b, "</%s>\n", name);
}

static char *build(const struct codec_layer *o, const char *sender, const char *kind,
		   const char *uuid, const char *when, const struct codec_refusal_params *p,
		   size_t *len)
{
	struct strbuf b = { 0 };
	strbuf_puts(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<VANSEnvelope xmlns=\"" VANS_NS
			"\">\n");
	put_endpoint(&b, "SenderID", kind, sender);
	put_endpoint(&b, "ReceiverID", o->sender_kind, o->sender);
	rcptout_elem(&b, 1, "EnvelopeIdentifier", uuid);
	rcptout_elem(&b, 1, "SentDateTime", when);
	strbuf_puts(&b, "  <Receipt>\n    <NegativeVans>\n");
	put_error(&b, p);
	rcptout_elem(&b, 3, "OriginalEnvelopeIdentifier", o->id);
	put_original_message(&b, o);
	strbuf_puts(&b, "    </NegativeVans>\n  </Receipt>\n</VANSEnvelope>\n");
	*len = b.len;
	return b.p;
}

/* The original must name whom to answer and what is refused. */
static bool original_ok(const struct codec_layer *o)
{
	return rcptout_text_ok(o->sender, VANS_ID_MAX, false) && o->sender_kind[0] &&
	       rcptout_text_ok(o->id, CODEC_ID_MAX - 1, false) &&
	       (!o->message_id[0] || rcptout_text_ok(o->message_id, CODEC_ID_MAX - 1, false));
}

int vans_refuse(const struct codec_envelope *env, const struct codec_refusal_params *p,
		struct codec_receipt *out)
{
	if (!env || !p || !out)
		return -EINVAL;
	if (env->is_receipt)
		return -ENOTSUP;
	const struct codec_layer *o = env->nlayers ? &env->layers[0] : NULL;
	const char *sender = p->broker_gln ? p->broker_gln : p->broker_id;
	const char *kind = p->broker_gln ? "EAN" : "VANS";
	char uuid[CODEC_UUID_LEN + 1] = "", when[40];
	if (!o || o->codec != &codec_vans || !original_ok(o) || !p->fresh_uuid ||
	    !rcptout_text_ok(sender, VANS_ID_MAX, false) ||
	    !rcptout_datetime(&p->now, when, sizeof(when)) ||
	    (p->text && p->text[0] && !rcptout_text_ok(p->text, SIZE_MAX / 2, true)))
		return -EINVAL;
	p->fresh_uuid(p->ctx, uuid);
	size_t len;
	char *body = build(o, sender, kind, uuid, when, p, &len);
	*out = (struct codec_receipt){ .body = (uint8_t *)body, .size = len, .format = "vans",
				       .ext = "xml", .type = "NegativeVans" };
	str_copy(out->envelope_id, uuid, sizeof(out->envelope_id));
	str_copy(out->sender, sender, sizeof(out->sender));
	str_copy(out->receiver, o->sender, sizeof(out->receiver));
	str_copy(out->refers, o->id, sizeof(out->refers));
	str_copy(out->key.sender, sender, sizeof(out->key.sender));
	str_copy(out->key.id, uuid, sizeof(out->key.id));
	return 0;
}
