/*
 * fhir_xml.c - FHIR in XML (fhir.h): parses through xmlsafe, hands the
 * core (fhir.c) a tree of elements in the FHIR namespace, and writes the
 * Acknowledgement in XML.
 *
 * FHIR XML keeps primitive values in a value attribute (<id value="x"/>)
 * and the extension url as an attribute; only elements in the FHIR
 * namespace are children, so narrative XHTML is never read. The written
 * Acknowledgement keeps FHIR's element order, escapes every value, and is
 * read back by this codec (with a broker GLN, which its sender needs).
 */
#include "codecs/fhir.h"

#include <string.h>

#include <libxml/tree.h>

#include "codecs/base/mem.h"
#include "codecs/base/strbuf.h"
#include "codecs/fhir_int.h"
#include "codecs/rcptout.h"
#include "codecs/renew.h"
#include "codecs/xmlsafe.h"
#include "codecs/xmlsniff.h"
#include "codecs/xmltree.h"

/* ---- the tree ------------------------------------------------------------ */

static bool fhir_element(const xmlNode *n, const char *name)
{
	return xmltree_is(n, name) && xmltree_in_ns(n, FHIR_NS);
}

static fhir_node x_child(fhir_node n, const char *name)
{
	for (const xmlNode *c = xmltree_first(((const xmlNode *)n)->children); c; c = xmltree_next(c))
		if (fhir_element(c, name))
			return c;
	return NULL;
}

static int x_each(fhir_node n, const char *name, fhir_each_fn fn, void *ctx)
{
	for (const xmlNode *c = xmltree_first(((const xmlNode *)n)->children); c; c = xmltree_next(c)) {
		int r = fhir_element(c, name) ? fn(c, ctx) : 0;
		if (r)
			return r;
	}
	return 0;
}

static const char *x_value(fhir_node n, const char *name)
{
	const xmlNode *c = x_child(n, name);
	return c ? xmltree_attr(c, "value") : xmltree_attr(n, name);
}

static fhir_node x_resource(fhir_node entry, const char **type)
{
	const xmlNode *holder = x_child(entry, "resource");
	const xmlNode *r = holder ? xmltree_first(holder->children) : NULL;
	if (!r || !xmltree_in_ns(r, FHIR_NS))
		return NULL;
	*type = (const char *)r->name;
	return r;
}

static const struct fhir_tree xml_tree = { x_child, x_each, x_value, x_resource };

/* ---- decode -------------------------------------------------------------- */

static int fhir_xml_decode(const uint8_t *buf, size_t len, const struct codec_limits *lim,
			   struct codec_envelope *env, struct codec_error *err)
{
	struct xmlsafe_doc d;
	memset(env, 0, sizeof(*env));
	env->codec = env->inner = &codec_fhir_xml;
	*err = (struct codec_error){ .code = CODEC_OK };
	int r = xmlsafe_parse(buf, len, lim, &d, err);
	if (d.encoding)
		str_copy(env->encoding, d.encoding, sizeof(env->encoding));
	const xmlNode *root = r == 0 ? xmlDocGetRootElement(d.doc) : NULL;
	if (r == 0 && !fhir_element(root, "Bundle"))
		r = xmlsafe_fail(err, CODEC_ESTRUCTURE, "root element is not a FHIR Bundle");
	if (r == 0)
		r = fhir_read_bundle(&xml_tree, root, buf, len, env, err);
	if (r < 0)
		env->nletters = 0;
	xmlsafe_doc_free(&d);
	return r;
}

static bool fhir_xml_sniff(const uint8_t *buf, size_t len)
{
	struct xmlsniff root;
	return xmlsniff_root(buf, len, &root) && strcmp(root.local, "Bundle") == 0 &&
	       strcmp(root.ns, FHIR_NS) == 0;
}

/* ---- the Acknowledgement in XML ------------------------------------------ */

/* <name value="v"/> */
static void put_value(struct strbuf *b, int indent, const char *name, const char *v)
{
	strbuf_printf(b, "%*s<%s value=\"", indent * 2, "", name);
	rcptout_text(b, v);
	strbuf_puts(b, "\"/>\n");
}

static void put_reference(struct strbuf *b, int indent, const char *name, const char *uuid)
{
	strbuf_printf(b, "%*s<%s>\n%*s<reference value=\"urn:uuid:%s\"/>\n%*s</%s>\n", indent * 2,
		      "", name, indent * 2 + 2, "", uuid, indent * 2, "", name);
}

static void open_entry(struct strbuf *b, const char *type, const char *uuid, const char *profile)
{
	strbuf_printf(b, "  <entry>\n    <fullUrl value=\"urn:uuid:%s\"/>\n    <resource>\n"
			 "      <%s>\n        <id value=\"%s\"/>\n        <meta>\n",
		      uuid, type, uuid);
	put_value(b, 5, "profile", profile);
	strbuf_puts(b, "        </meta>\n");
}

static void close_entry(struct strbuf *b, const char *type)
{
	strbuf_printf(b, "      </%s>\n    </resource>\n  </entry>\n", type);
}

static void put_header(struct strbuf *b, const struct fhir_ack *a)
{
	open_entry(b, "MessageHeader", a->header_id, FHIR_ACK_HEADER_PROFILE);
	strbuf_puts(b, "        <text>\n          <status value=\"generated\"/>\n          <div "
		       "xmlns=\"http://www.w3.org/1999/xhtml\"><p>Acknowledgement: fatal-error</p></div>\n"
		       "        </text>\n        <eventCoding>\n");
	put_value(b, 5, "system", FHIR_EVENT_SYSTEM);
	put_value(b, 5, "code", FHIR_ACK_EVENT);
	strbuf_puts(b, "        </eventCoding>\n        <destination>\n          <extension url=\""
		       FHIR_DEST_USE_URL "\">\n            <valueCoding>\n");
	put_value(b, 7, "system", FHIR_DEST_USE_SYSTEM);
	put_value(b, 7, "code", "primary");
	strbuf_puts(b, "            </valueCoding>\n          </extension>\n");
	put_value(b, 5, "endpoint", FHIR_UNKNOWN_ENDPOINT);
	put_reference(b, 5, "receiver", a->dest_org_id);
	strbuf_puts(b, "        </destination>\n");
	put_reference(b, 4, "sender", a->broker_org_id);
	strbuf_puts(b, "        <source>\n");
	put_value(b, 5, "endpoint", FHIR_UNKNOWN_ENDPOINT);
	strbuf_puts(b, "        </source>\n        <response>\n");
	put_value(b, 5, "identifier", a->acked_id);
	put_value(b, 5, "code", "fatal-error");
	put_reference(b, 5, "details", a->outcome_id);
	strbuf_puts(b, "        </response>\n");
	close_entry(b, "MessageHeader");
}

static void put_provenance(struct strbuf *b, const struct fhir_ack *a)
{
	open_entry(b, "Provenance", a->provenance_id, FHIR_PROVENANCE_PROFILE);
	put_reference(b, 4, "target", a->header_id);
	put_value(b, 4, "occurredDateTime", a->when);
	put_value(b, 4, "recorded", a->when);
	strbuf_puts(b, "        <activity>\n          <coding>\n");
	put_value(b, 6, "system", FHIR_ACTIVITY_SYSTEM);
	put_value(b, 6, "code", "acknowledgement");
	strbuf_puts(b, "          </coding>\n        </activity>\n        <agent>\n");
	put_reference(b, 5, "who", a->broker_org_id);
	strbuf_puts(b, "        </agent>\n        <entity>\n");
	put_value(b, 5, "role", "revision");
	strbuf_printf(b, "          <what>\n            <reference value=\"MessageHeader/");
	rcptout_text(b, a->acked_id);
	strbuf_puts(b, "\"/>\n          </what>\n        </entity>\n");
	close_entry(b, "Provenance");
}

static void put_identifier(struct strbuf *b, const char *system, const char *value)
{
	strbuf_puts(b, "        <identifier>\n");
	put_value(b, 5, "system", system);
	put_value(b, 5, "value", value);
	strbuf_puts(b, "        </identifier>\n");
}

static void put_organizations(struct strbuf *b, const struct fhir_ack *a)
{
	open_entry(b, "Organization", a->broker_org_id, FHIR_ORG_PROFILE);
	if (a->broker_gln)
		put_identifier(b, FHIR_GLN_SYSTEM, a->broker_gln);
	put_value(b, 4, "name", a->broker_name);
	close_entry(b, "Organization");
	open_entry(b, "Organization", a->dest_org_id, FHIR_ORG_PROFILE);
	put_identifier(b, FHIR_GLN_SYSTEM, a->dest_gln);
	if (a->dest_sor[0])
		put_identifier(b, FHIR_SOR_SYSTEM, a->dest_sor);
	close_entry(b, "Organization");
}

static void put_outcome(struct strbuf *b, const struct fhir_ack *a)
{
	open_entry(b, "OperationOutcome", a->outcome_id, FHIR_ACK_OUTCOME_PROFILE);
	strbuf_puts(b, "        <issue>\n");
	put_value(b, 5, "severity", "error");
	put_value(b, 5, "code", a->issue_code);
	strbuf_puts(b, "          <details>\n");
	if (a->error_code) {
		strbuf_puts(b, "            <coding>\n");
		put_value(b, 7, "system", FHIR_ACK_ERROR_SYSTEM);
		put_value(b, 7, "code", a->error_code);
		strbuf_puts(b, "            </coding>\n");
	}
	if (a->text)
		put_value(b, 6, "text", a->text);
	strbuf_puts(b, "          </details>\n        </issue>\n");
	close_entry(b, "OperationOutcome");
}

static char *write_ack(const struct fhir_ack *a, size_t *len)
{
	struct strbuf b = { 0 };
	strbuf_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Bundle xmlns=\"" FHIR_NS
			  "\">\n  <id value=\"%s\"/>\n  <meta>\n",
		      a->bundle_id);
	put_value(&b, 2, "profile", FHIR_ACK_PROFILE);
	strbuf_puts(&b, "  </meta>\n  <type value=\"message\"/>\n");
	put_value(&b, 1, "timestamp", a->when);
	put_header(&b, a);
	put_provenance(&b, a);
	put_organizations(&b, a);
	put_outcome(&b, a);
	strbuf_puts(&b, "</Bundle>\n");
	*len = b.len;
	return b.p;
}

static int fhir_xml_refuse(const struct codec_envelope *env, const struct codec_refusal_params *p,
			   struct codec_receipt *out)
{
	return fhir_refuse(env, p, &codec_fhir_xml, write_ack, out);
}

/* Bundle.id: the first <id value="..."/>, since id comes first in a
 * Bundle (renew_run checks). */
static size_t find_bundle_id(const uint8_t *buf, size_t len, const struct codec_envelope *env,
			     struct renew_span spans[RENEW_SPANS_MAX])
{
	return renew_xml_field(buf, len, "id", "value", &spans[0]) ? 1 : 0;
}

/* An Acknowledgement as a new Bundle: a fresh Bundle.id, the same
 * MessageHeader.id (medcom.md 4.6, MR7). */
static int fhir_xml_renew(const uint8_t *buf, size_t len, const struct codec_limits *lim,
			  const struct codec_refusal_params *p, struct codec_receipt *out)
{
	return renew_run(&codec_fhir_xml, buf, len, lim, p, true, find_bundle_id, out);
}

const struct codec codec_fhir_xml = {
	.name = "fhir-xml",
	.ext = "xml",
	.sniff = fhir_xml_sniff,
	.decode = fhir_xml_decode,
	.refuse = fhir_xml_refuse,
	.renew = fhir_xml_renew,
};
