/*
 * fhir.c - the FHIR core: reads a MedCom message Bundle through the tree a
 * syntax gives it (fhir_int.h) and builds the Acknowledgement refusing
 * one. fhir_xml.c and fhir_json.c parse and write; everything a message
 * means is decided here, once for both.
 *
 * What is checked is what routing and identity need, and what a router
 * that does not validate profiles must still check (medcom.md 9.12):
 * Bundle.type message, its id; entry[0] a MessageHeader, the only one; a
 * MedCom event code (any: a code the broker has not seen is routed too);
 * exactly one primary destination, whose receiver and the sender resolve
 * to Organizations in the Bundle with a GLN (https://www.gs1.org/gln or
 * urn:oid:1.3.88); at least one Provenance. SOR ids are read for
 * operators. Order: the ids and the sender are read before anything that
 * can fail later, so a refused message can still be acknowledged.
 * Errors name FHIR paths, never values.
 */
#include "codecs/fhir_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "codecs/base/mem.h"
#include "codecs/base/sha256.h"
#include "codecs/rcptout.h"
#include "codecs/xmlsafe.h"

#define FHIR_ID_MAX 64

/* ---- values -------------------------------------------------------------- */

/* FHIR id: [A-Za-z0-9\-\.]{1,64}. */
static bool fhir_id_ok(const char *s)
{
	size_t n = strlen(s);
	return n >= 1 && n <= FHIR_ID_MAX &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.") == n;
}

/* Copies the value of n's child `name` into dst: present, non-empty, no
 * control characters, fits. `what` names it in errors ("Bundle.id"). */
static int read_value(const struct fhir_tree *t, fhir_node n, const char *name, char *dst,
		      size_t dstsz, const char *what, struct codec_error *err)
{
	const char *v = n ? t->value(n, name) : NULL;
	dst[0] = '\0';
	if (!v || !v[0])
		return xmlsafe_fail(err, CODEC_EFIELD, "%s is missing", what);
	size_t len = strlen(v);
	if (len >= dstsz)
		return xmlsafe_fail(err, CODEC_EFIELD, "%s is %zu bytes, longer than %zu", what,
				    len, dstsz - 1);
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7F)
			return xmlsafe_fail(err, CODEC_EFIELD, "%s contains control characters", what);
	memcpy(dst, v, len + 1);
	return 0;
}

static int read_id(const struct fhir_tree *t, fhir_node n, char *dst, size_t dstsz,
		   const char *what, struct codec_error *err)
{
	if (read_value(t, n, "id", dst, dstsz, what, err) < 0)
		return -1;
	if (!fhir_id_ok(dst)) {
		dst[0] = '\0';
		return xmlsafe_fail(err, CODEC_EFIELD, "%s is not a FHIR id", what);
	}
	return 0;
}

/* ---- entries ------------------------------------------------------------- */

struct entry_scan {
	const struct fhir_tree *t;
	size_t n, headers, provenances;
	fhir_node first;          /* entry[0]'s resource */
	const char *first_type;
};

static int scan_entry(fhir_node entry, void *ctx)
{
	struct entry_scan *s = ctx;
	const char *type = NULL;
	fhir_node r = s->t->resource(entry, &type);
	if (s->n++ == 0) {
		s->first = r;
		s->first_type = type;
	}
	s->headers += type && strcmp(type, "MessageHeader") == 0;
	s->provenances += type && strcmp(type, "Provenance") == 0;
	return 0;
}

/* The MessageHeader: entry[0], and the only one. */
static fhir_node find_header(const struct fhir_tree *t, fhir_node bundle, struct entry_scan *s,
			     struct codec_error *err)
{
	*s = (struct entry_scan){ .t = t };
	t->each(bundle, "entry", scan_entry, s);
	if (s->headers == 0) {
		xmlsafe_fail(err, CODEC_ESTRUCTURE, "Bundle has no MessageHeader");
		return NULL;
	}
	if (!s->first_type || strcmp(s->first_type, "MessageHeader") != 0) {
		xmlsafe_fail(err, CODEC_ESTRUCTURE, "Bundle.entry[0] is not the MessageHeader");
		return NULL;
	}
	if (s->headers > 1) {
		xmlsafe_fail(err, CODEC_ESTRUCTURE, "Bundle has %zu MessageHeaders", s->headers);
		return NULL;
	}
	return s->first;
}

/* ---- Organizations ------------------------------------------------------- */

struct org_find {
	const struct fhir_tree *t;
	const char *ref;
	fhir_node org;
	size_t matches;
};

/* A reference names an entry by its fullUrl, or as Organization/<id>. */
static int match_org(fhir_node entry, void *ctx)
{
	struct org_find *f = ctx;
	const char *type = NULL, *full = f->t->value(entry, "fullUrl");
	fhir_node r = f->t->resource(entry, &type);
	if (!r || !type || strcmp(type, "Organization") != 0)
		return 0;
	const char *id = f->t->value(r, "id");
	bool by_id = id && strncmp(f->ref, "Organization/", 13) == 0 && strcmp(f->ref + 13, id) == 0;
	if ((full && strcmp(full, f->ref) == 0) || by_id) {
		f->org = r;
		f->matches++;
	}
	return 0;
}

struct ids_find {
	const struct fhir_tree *t;
	char *gln, *sor;
	const char *what;
	struct codec_error *err;
	int r;
};

static int org_identifier(fhir_node ident, void *ctx)
{
	struct ids_find *f = ctx;
	const char *system = f->t->value(ident, "system");
	char what[96];
	if (!system)
		return 0;
	bool gln = strcmp(system, FHIR_GLN_SYSTEM) == 0 || strcmp(system, FHIR_GLN_SYSTEM_OID) == 0;
	bool sor = strcmp(system, FHIR_SOR_SYSTEM) == 0;
	if ((gln && !f->gln[0]) || (sor && !f->sor[0])) {
		snprintf(what, sizeof(what), "%s %s identifier", f->what, gln ? "GLN" : "SOR");
		f->r = read_value(f->t, ident, "value", gln ? f->gln : f->sor,
				  gln ? CODEC_GLN_MAX : CODEC_SOR_MAX, what, f->err);
	}
	return f->r;
}

/* The GLN (required) and SOR id (optional) of the Organization the
 * Reference refn (MessageHeader.sender, destination.receiver) names. */
static int org_ids(const struct fhir_tree *t, fhir_node bundle, fhir_node refn,
		   const char *what, char *gln, char *sor, struct codec_error *err)
{
	struct org_find f = { t, refn ? t->value(refn, "reference") : NULL, NULL, 0 };
	if (!f.ref)
		return xmlsafe_fail(err, CODEC_EFIELD, "%s has no reference", what);
	t->each(bundle, "entry", match_org, &f);
	if (f.matches != 1)
		return xmlsafe_fail(err, CODEC_ESTRUCTURE,
				    "%s names %s Organization in the Bundle", what,
				    f.matches ? "more than one" : "no");
	struct ids_find ids = { t, gln, sor, what, err, 0 };
	gln[0] = sor[0] = '\0';
	if (t->each(f.org, "identifier", org_identifier, &ids) < 0)
		return -1;
	if (!gln[0])
		return xmlsafe_fail(err, CODEC_EFIELD, "%s Organization has no GLN identifier", what);
	return 0;
}

/* ---- destinations -------------------------------------------------------- */

struct dest_scan {
	const struct fhir_tree *t;
	size_t n, primary, unmarked;
	fhir_node first_primary;
};

static int dest_use(fhir_node ext, void *ctx)
{
	const struct fhir_tree *t = ctx;
	const char *url = t->value(ext, "url");
	if (!url || strcmp(url, FHIR_DEST_USE_URL) != 0)
		return 0;
	fhir_node coding = t->child(ext, "valueCoding");
	const char *code = coding ? t->value(coding, "code") : NULL;
	return !code ? 0 : strcmp(code, "primary") == 0 ? 1 : strcmp(code, "cc") == 0 ? 2 : 0;
}

static int scan_destination(fhir_node dest, void *ctx)
{
	struct dest_scan *s = ctx;
	int use = s->t->each(dest, "extension", dest_use, (void *)s->t);
	s->n++;
	if (use == 1 && s->primary++ == 0)
		s->first_primary = dest;
	s->unmarked += use == 0;
	return 0;
}

/* The one primary destination (medcom-messaging-destinationUseExtension). */
static fhir_node primary_destination(const struct fhir_tree *t, fhir_node header,
				     struct codec_error *err)
{
	struct dest_scan s = { .t = t };
	t->each(header, "destination", scan_destination, &s);
	if (s.unmarked)
		xmlsafe_fail(err, CODEC_EFIELD, "MessageHeader.destination without a primary or cc "
			     "destinationUse extension");
	else if (s.primary != 1)
		xmlsafe_fail(err, CODEC_ESTRUCTURE, "MessageHeader has %zu primary destinations, "
			     "not one", s.primary);
	return s.unmarked || s.primary != 1 ? NULL : s.first_primary;
}

/* ---- the message --------------------------------------------------------- */

/* eventCoding: a MedCom event code, any code; the letter's type. */
static int read_event(const struct fhir_tree *t, fhir_node header, struct codec_letter *l,
		      struct codec_error *err)
{
	fhir_node coding = t->child(header, "eventCoding");
	const char *system = coding ? t->value(coding, "system") : NULL;
	if (!system || strcmp(system, FHIR_EVENT_SYSTEM) != 0)
		return xmlsafe_fail(err, CODEC_ETYPE,
				    "MessageHeader.eventCoding is not a MedCom event code");
	if (read_value(t, coding, "code", l->type, sizeof(l->type), "MessageHeader.eventCoding.code",
		       err) < 0)
		return -1;
	if (strspn(l->type, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(l->type)) {
		l->type[0] = '\0';
		return xmlsafe_fail(err, CODEC_ETYPE, "MessageHeader.eventCoding.code is not a code");
	}
	return 0;
}

/* MessageHeader.definition "...|5.0": the version after '|', else "". */
static void read_version(const struct fhir_tree *t, fhir_node header, struct codec_letter *l)
{
	const char *def = t->value(header, "definition");
	const char *bar = def ? strrchr(def, '|') : NULL;
	if (bar && strlen(bar + 1) < sizeof(l->version) &&
	    strspn(bar + 1, "0123456789.") == strlen(bar + 1))
		str_copy(l->version, bar + 1, sizeof(l->version));
}

/* Bundle.timestamp as "YYYY-MM-DDTHH:MM" when it has that shape. */
static void read_sent(const struct fhir_tree *t, fhir_node bundle, struct codec_envelope *env)
{
	const char *ts = t->value(bundle, "timestamp");
	if (ts && strlen(ts) >= 16 && ts[4] == '-' && ts[7] == '-' && ts[10] == 'T' && ts[13] == ':')
		snprintf(env->sent, sizeof(env->sent), "%.16s", ts);
}

/* An Acknowledgement's MessageHeader.response: the acknowledged
 * MessageHeader.id and the verdict (ok, transient-error, fatal-error).
 * Its sender is the Acknowledgement's receiver. Read leniently: one whose
 * response cannot be read still routes, it only acknowledges nothing. */
static void read_response(const struct fhir_tree *t, fhir_node header, struct codec_envelope *env)
{
	fhir_node resp = t->child(header, "response");
	const char *id = resp ? t->value(resp, "identifier") : NULL;
	const char *code = resp ? t->value(resp, "code") : NULL;
	static const struct {
		const char *code;
		enum codec_ack ack;
	} verdicts[] = {
		{ "ok", CODEC_ACK_POSITIVE },
		{ "fatal-error", CODEC_ACK_NEGATIVE },
		{ "transient-error", CODEC_ACK_TRANSIENT },
	};
	if (!id || !code || !fhir_id_ok(id))
		return;
	for (size_t i = 0; i < ARRAY_SIZE(verdicts); i++) {
		if (strcmp(code, verdicts[i].code) != 0)
			continue;
		struct codec_refers *rf = &env->refers;
		struct codec_ref *r = &rf->refs[0];
		rf->code = verdicts[i].ack;
		str_copy(rf->detail, verdicts[i].code, sizeof(rf->detail));
		str_copy(r->sender, env->letters[0].receiver, sizeof(r->sender));
		str_copy(r->letter_id, id, sizeof(r->letter_id));
		rf->n = 1;
	}
}

static int read_header(const struct fhir_tree *t, fhir_node bundle, fhir_node header,
		       struct codec_envelope *env, struct codec_error *err)
{
	struct codec_letter *l = &env->letters[0];
	if (read_id(t, header, l->id, sizeof(l->id), "MessageHeader.id", err) < 0 ||
	    read_event(t, header, l, err) < 0)
		return -1;
	env->is_receipt = strcmp(l->type, FHIR_ACK_EVENT) == 0; /* never answered */
	env->ack_requested = !env->is_receipt;
	if (org_ids(t, bundle, t->child(header, "sender"), "MessageHeader.sender", l->sender,
		    l->sender_sor, err) < 0)
		return -1;
	fhir_node dest = primary_destination(t, header, err);
	if (!dest || org_ids(t, bundle, t->child(dest, "receiver"), "MessageHeader.destination.receiver",
			     l->receiver, l->receiver_sor, err) < 0)
		return -1;
	read_version(t, header, l);
	return 0;
}

/* Bundle.id names this transmission: a txid over the whole input. */
static void add_txid(struct codec_envelope *env, const uint8_t *buf, size_t len)
{
	struct codec_txid *x = &env->txids[env->ntxids++];
	*x = (struct codec_txid){ .scope = "fhir" };
	str_copy(x->sender, env->letters[0].sender, sizeof(x->sender));
	str_copy(x->id, env->envelope_id, sizeof(x->id));
	sha256(buf, len, x->digest);
}

int fhir_read_bundle(const struct fhir_tree *t, fhir_node bundle, const uint8_t *buf, size_t len,
		     struct codec_envelope *env, struct codec_error *err)
{
	struct entry_scan s;
	char type[16];
	if (read_value(t, bundle, "type", type, sizeof(type), "Bundle.type", err) < 0)
		return -1;
	if (strcmp(type, "message") != 0)
		return xmlsafe_fail(err, CODEC_ESTRUCTURE, "Bundle.type is not message");
	if (read_id(t, bundle, env->envelope_id, sizeof(env->envelope_id), "Bundle.id", err) < 0)
		return -1;
	read_sent(t, bundle, env);
	fhir_node header = find_header(t, bundle, &s, err);
	if (!header || read_header(t, bundle, header, env, err) < 0)
		return -1;
	if (s.provenances == 0)
		return xmlsafe_fail(err, CODEC_ESTRUCTURE, "Bundle has no Provenance");
	if (env->is_receipt) /* only a whole one acknowledges anything (codec.h) */
		read_response(t, header, env);
	env->nletters = 1;
	add_txid(env, buf, len);
	return 0;
}

/* ---- the Acknowledgement ------------------------------------------------- */

/* How each refusal is worded: FHIR IssueType and MedCom error code. */
static const struct {
	const char *issue, *code;
} wording[] = {
	[CODEC_REFUSE_UNSPECIFIED] = { "processing", NULL },
	[CODEC_REFUSE_UNKNOWN_RECEIVER] = { "not-found", "MSG_Receiver_Identifier_UNKNOWN" },
	[CODEC_REFUSE_RECEIVER_ID] = { "invalid", NULL },
	[CODEC_REFUSE_SYNTAX] = { "structure", NULL },
	[CODEC_REFUSE_VERSION] = { "not-supported", "MSG_RECEIVER_UNABLE_TO_RECEIVE_MSG_TYPE" },
	[CODEC_REFUSE_TYPE] = { "not-supported", "MSG_RECEIVER_UNABLE_TO_RECEIVE_MSG_TYPE" },
};
_Static_assert(ARRAY_SIZE(wording) == CODEC_REFUSE_LAST + 1, "wording for every refusal");

static bool ack_fill(struct fhir_ack *a, const struct codec_envelope *env,
		     const struct codec_refusal_params *p)
{
	const struct codec_letter *l = &env->letters[0];
	size_t why = (size_t)p->reason < ARRAY_SIZE(wording) ? (size_t)p->reason : 0;
	*a = (struct fhir_ack){
		.broker_gln = p->broker_gln, .broker_name = p->broker_id, .dest_gln = l->sender,
		.dest_sor = l->sender_sor, .acked_id = l->id, .issue_code = wording[why].issue,
		.error_code = wording[why].code, .text = str_empty(p->text) ? NULL : p->text,
	};
	char *ids[] = { a->bundle_id, a->header_id, a->provenance_id, a->outcome_id,
			a->broker_org_id, a->dest_org_id };
	for (size_t i = 0; i < ARRAY_SIZE(ids); i++)
		p->fresh_uuid(p->ctx, ids[i]);
	return rcptout_datetime(&p->now, a->when, sizeof(a->when));
}

/* What an Acknowledgement must name: the acknowledged header, whom to. */
static bool refusable(const struct codec_envelope *env, const struct codec_refusal_params *p)
{
	const struct codec_letter *l = &env->letters[0];
	return p->fresh_uuid && fhir_id_ok(l->id) && rcptout_text_ok(l->sender, CODEC_GLN_MAX - 1, false) &&
	       (!l->sender_sor[0] || rcptout_text_ok(l->sender_sor, CODEC_SOR_MAX - 1, false)) &&
	       rcptout_text_ok(p->broker_id, CODEC_GLN_MAX - 1, false) &&
	       (!p->broker_gln || rcptout_text_ok(p->broker_gln, CODEC_GLN_MAX - 1, false)) &&
	       (str_empty(p->text) || rcptout_text_ok(p->text, 4096, true));
}

int fhir_refuse(const struct codec_envelope *env, const struct codec_refusal_params *p,
		const struct codec *codec, fhir_ack_writer write, struct codec_receipt *out)
{
	struct fhir_ack a;
	if (!env || !p || !out)
		return -EINVAL;
	if (env->is_receipt)
		return -ENOTSUP; /* an Acknowledgement is never acknowledged (KR2) */
	if (!refusable(env, p) || !ack_fill(&a, env, p))
		return -EINVAL;
	size_t len;
	char *body = write(&a, &len);
	*out = (struct codec_receipt){ .body = (uint8_t *)body, .size = len, .format = codec->name,
				       .ext = codec->ext, .type = FHIR_ACK_EVENT };
	str_copy(out->envelope_id, a.bundle_id, sizeof(out->envelope_id));
	str_copy(out->sender, p->broker_gln ? p->broker_gln : p->broker_id, sizeof(out->sender));
	str_copy(out->receiver, env->letters[0].sender, sizeof(out->receiver));
	str_copy(out->refers, env->envelope_id, sizeof(out->refers));
	str_copy(out->key.sender, out->sender, sizeof(out->key.sender));
	str_copy(out->key.id, a.header_id, sizeof(out->key.id));
	return 0;
}
