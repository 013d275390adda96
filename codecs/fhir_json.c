/*
 * fhir_json.c - FHIR in JSON (fhir.h): parses with jansson under limits of
 * our own, hands the core (fhir.c) the object tree, and writes the
 * Acknowledgement in JSON.
 *
 * Limits, before jansson sees a byte: the size, strict UTF-8 (RFC 8259),
 * and the nesting depth by a scan that skips strings, so no input reaches
 * jansson's recursion deeper than max_depth. jansson then rejects a key
 * repeated in an object (JSON_REJECT_DUPLICATES: two values for one key
 * could route a message two ways) and NUL characters. Its error texts quote
 * the input, so errors here are written from its error code and position.
 */
#include "codecs/fhir.h"

#include <jansson.h>
#include <string.h>

#include "codecs/base/mem.h"
#include "codecs/base/utf8.h"
#include "codecs/fhir_int.h"
#include "codecs/renew.h"
#include "codecs/xmlsafe.h"

/* ---- the tree ------------------------------------------------------------ */

static fhir_node j_child(fhir_node n, const char *name)
{
	json_t *v = json_object_get(n, name);
	return json_is_array(v) ? json_array_get(v, 0) : v;
}

static int j_each(fhir_node n, const char *name, fhir_each_fn fn, void *ctx)
{
	json_t *v = json_object_get(n, name);
	if (!json_is_array(v))
		return v ? fn(v, ctx) : 0;
	for (size_t i = 0; i < json_array_size(v); i++) {
		int r = fn(json_array_get(v, i), ctx);
		if (r)
			return r;
	}
	return 0;
}

static const char *j_value(fhir_node n, const char *name)
{
	return json_string_value(json_object_get(n, name)); /* NULL unless a string */
}

static fhir_node j_resource(fhir_node entry, const char **type)
{
	json_t *r = json_object_get(entry, "resource");
	*type = json_string_value(json_object_get(r, "resourceType"));
	return json_is_object(r) ? r : NULL;
}

static const struct fhir_tree json_tree = { j_child, j_each, j_value, j_resource };

/* ---- limits and parsing -------------------------------------------------- */

/* Nesting of objects and arrays, outside strings, at most max. */
static int check_depth(const uint8_t *p, size_t n, unsigned max, struct codec_error *err)
{
	unsigned depth = 0;
	bool in_string = false, escaped = false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		if (in_string) {
			if (escaped)
				escaped = false;
			else if (c == '\\')
				escaped = true;
			else if (c == '"')
				in_string = false;
			continue;
		}
		if (c == '"')
			in_string = true;
		else if ((c == '{' || c == '[') && ++depth > max)
			return xmlsafe_fail(err, CODEC_EDEPTH,
					    "JSON nesting deeper than the limit (%u) at byte %zu", max, i);
		else if ((c == '}' || c == ']') && depth > 0)
			depth--;
	}
	return 0;
}

static int check_input(const uint8_t *buf, size_t len, const struct codec_limits *lim,
		       struct codec_error *err)
{
	size_t max = lim && lim->max_bytes ? lim->max_bytes : CODEC_DEFAULT_MAX_BYTES;
	unsigned depth = lim && lim->max_depth ? lim->max_depth : CODEC_DEFAULT_MAX_DEPTH;
	size_t bad;
	if (len > max)
		return xmlsafe_fail(err, CODEC_ETOOBIG, "message is %zu bytes, limit %zu", len, max);
	if (len == 0)
		return xmlsafe_fail(err, CODEC_ESYNTAX, "empty input");
	if ((bad = utf8_span(buf, len)) < len)
		return xmlsafe_fail(err, CODEC_EENCODING, "invalid UTF-8 at byte offset %zu", bad);
	return check_depth(buf, len, depth, err);
}

/* jansson's error, in words that never quote the input. */
static int parse_error(const json_error_t *je, struct codec_error *err)
{
	switch (json_error_code(je)) {
	case json_error_duplicate_key:
		return xmlsafe_fail(err, CODEC_ESYNTAX, "duplicate object key at line %d column %d",
				    je->line, je->column);
	case json_error_invalid_utf8:
	case json_error_null_character:
	case json_error_null_byte_in_key:
		return xmlsafe_fail(err, CODEC_EENCODING,
				    "invalid or NUL character at line %d column %d", je->line,
				    je->column);
	case json_error_stack_overflow:
		return xmlsafe_fail(err, CODEC_EDEPTH, "JSON nesting too deep at line %d", je->line);
	case json_error_premature_end_of_input:
		return xmlsafe_fail(err, CODEC_ESYNTAX, "JSON ends early at line %d column %d",
				    je->line, je->column);
	default:
		return xmlsafe_fail(err, CODEC_ESYNTAX, "not well-formed JSON at line %d column %d",
				    je->line, je->column);
	}
}

static int fhir_json_decode(const uint8_t *buf, size_t len, const struct codec_limits *lim,
			    struct codec_envelope *env, struct codec_error *err)
{
	json_error_t je;
	memset(env, 0, sizeof(*env));
	env->codec = env->inner = &codec_fhir_json;
	*err = (struct codec_error){ .code = CODEC_OK };
	if (check_input(buf, len, lim, err) < 0)
		return -1;
	str_copy(env->encoding, "UTF-8", sizeof(env->encoding));
	json_t *root = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return parse_error(&je, err);
	const char *type = json_string_value(json_object_get(root, "resourceType"));
	int r = type && strcmp(type, "Bundle") == 0
			? fhir_read_bundle(&json_tree, root, buf, len, env, err)
			: xmlsafe_fail(err, CODEC_ESTRUCTURE, "JSON is not a FHIR Bundle");
	if (r < 0)
		env->nletters = 0;
	json_decref(root);
	return r;
}

/* The one JSON format: an object. */
static bool fhir_json_sniff(const uint8_t *buf, size_t len)
{
	size_t i = 0;
	while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n' || buf[i] == '\r'))
		i++;
	return i < len && buf[i] == '{';
}

/* ---- the Acknowledgement in JSON ----------------------------------------- */

static json_t *reference(const char *uuid)
{
	return json_pack("{s:s+}", "reference", "urn:uuid:", uuid);
}

static json_t *entry(const char *type, const char *uuid, const char *profile, json_t *fields)
{
	json_t *r = json_pack("{s:s,s:s,s:{s:[s]}}", "resourceType", type, "id", uuid, "meta",
			      "profile", profile);
	json_object_update(r, fields);
	json_decref(fields);
	return json_pack("{s:s+,s:o}", "fullUrl", "urn:uuid:", uuid, "resource", r);
}

static json_t *header(const struct fhir_ack *a)
{
	json_t *f = json_pack(
		"{s:{s:s,s:s},s:{s:s,s:s},s:[{s:[{s:s,s:{s:s,s:s}}],s:s,s:o}],s:o,s:{s:s},"
		"s:{s:s,s:s,s:o}}",
		"text", "status", "generated", "div",
		"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Acknowledgement: fatal-error</p></div>",
		"eventCoding", "system", FHIR_EVENT_SYSTEM, "code", FHIR_ACK_EVENT, "destination",
		"extension", "url", FHIR_DEST_USE_URL, "valueCoding", "system", FHIR_DEST_USE_SYSTEM,
		"code", "primary", "endpoint", FHIR_UNKNOWN_ENDPOINT, "receiver",
		reference(a->dest_org_id), "sender", reference(a->broker_org_id), "source",
		"endpoint", FHIR_UNKNOWN_ENDPOINT, "response", "identifier", a->acked_id, "code",
		"fatal-error", "details", reference(a->outcome_id));
	return entry("MessageHeader", a->header_id, FHIR_ACK_HEADER_PROFILE, f);
}

static json_t *provenance(const struct fhir_ack *a)
{
	json_t *f = json_pack("{s:[o],s:s,s:s,s:{s:[{s:s,s:s}]},s:[{s:o}],s:[{s:s,s:{s:s+}}]}",
			      "target", reference(a->header_id), "occurredDateTime", a->when,
			      "recorded", a->when, "activity", "coding", "system",
			      FHIR_ACTIVITY_SYSTEM, "code", "acknowledgement", "agent", "who",
			      reference(a->broker_org_id), "entity", "role", "revision", "what",
			      "reference", "MessageHeader/", a->acked_id);
	return entry("Provenance", a->provenance_id, FHIR_PROVENANCE_PROFILE, f);
}

static json_t *identifier(const char *system, const char *value)
{
	return json_pack("{s:s,s:s}", "system", system, "value", value);
}

static json_t *organization(const char *uuid, const char *gln, const char *sor, const char *name)
{
	json_t *ids = json_array(), *f = json_object();
	if (gln)
		json_array_append_new(ids, identifier(FHIR_GLN_SYSTEM, gln));
	if (sor && sor[0])
		json_array_append_new(ids, identifier(FHIR_SOR_SYSTEM, sor));
	if (json_array_size(ids))
		json_object_set(f, "identifier", ids);
	json_decref(ids);
	if (name)
		json_object_set_new(f, "name", json_string(name));
	return entry("Organization", uuid, FHIR_ORG_PROFILE, f);
}

static json_t *outcome(const struct fhir_ack *a)
{
	json_t *details = json_object();
	if (a->error_code)
		json_object_set_new(details, "coding", json_pack("[{s:s,s:s}]", "system",
								 FHIR_ACK_ERROR_SYSTEM, "code",
								 a->error_code));
	if (a->text)
		json_object_set_new(details, "text", json_string(a->text));
	json_t *f = json_pack("{s:[{s:s,s:s,s:o}]}", "issue", "severity", "error", "code",
			      a->issue_code, "details", details);
	return entry("OperationOutcome", a->outcome_id, FHIR_ACK_OUTCOME_PROFILE, f);
}

static char *write_ack(const struct fhir_ack *a, size_t *len)
{
	json_t *doc = json_pack(
		"{s:s,s:s,s:{s:[s]},s:s,s:s,s:[o,o,o,o,o]}", "resourceType", "Bundle", "id",
		a->bundle_id, "meta", "profile", FHIR_ACK_PROFILE, "type", "message", "timestamp",
		a->when, "entry", header(a), provenance(a),
		organization(a->broker_org_id, a->broker_gln, NULL, a->broker_name),
		organization(a->dest_org_id, a->dest_gln, a->dest_sor, NULL), outcome(a));
	if (!doc)
		abort(); /* only out of memory: every value was checked to be UTF-8 */
	char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (!s)
		abort();
	size_t n = strlen(s);
	char *out = xmalloc(n + 2); /* a trailing newline, and memory from our allocator */
	memcpy(out, s, n);
	out[n] = '\n';
	out[n + 1] = '\0';
	free(s);
	*len = n + 1;
	return out;
}

static int fhir_json_refuse(const struct codec_envelope *env, const struct codec_refusal_params *p,
			    struct codec_receipt *out)
{
	return fhir_refuse(env, p, &codec_fhir_json, write_ack, out);
}

/* Bundle.id: the root object's "id" member (renew_run checks). */
static size_t find_bundle_id(const uint8_t *buf, size_t len, const struct codec_envelope *env,
			     struct renew_span spans[RENEW_SPANS_MAX])
{
	return renew_json_member(buf, len, "id", &spans[0]) ? 1 : 0;
}

/* An Acknowledgement as a new Bundle: a fresh Bundle.id, the same
 * MessageHeader.id (medcom.md 4.6, MR7). */
static int fhir_json_renew(const uint8_t *buf, size_t len, const struct codec_limits *lim,
			   const struct codec_refusal_params *p, struct codec_receipt *out)
{
	return renew_run(&codec_fhir_json, buf, len, lim, p, true, find_bundle_id, out);
}

const struct codec codec_fhir_json = {
	.name = "fhir-json",
	.ext = "json",
	.sniff = fhir_json_sniff,
	.decode = fhir_json_decode,
	.refuse = fhir_json_refuse,
	.renew = fhir_json_renew,
};
