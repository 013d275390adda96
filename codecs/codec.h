/*
 * codec.h - the codec interface: bytes in, a routing envelope or a precise
 * error out; and, when the broker refuses a message, the negative receipt
 * in the message's own format and wrapping.
 *
 * A codec is pure: no I/O, no logging, no globals that change. The broker
 * never rewrites a message; a codec only reads the fields routing, duplicate
 * detection and operators need, and writes the receipts the broker itself
 * issues. Each format is one `struct codec` in the registry, found by name
 * or by sniffing the first bytes. The caller speaks no format's vocabulary:
 * it says why it refuses (enum codec_refusal) and the codec words it
 * (OIOXML: an XCTL01 RefuseCode; EDIFACT: a CONTRL; VANSEnvelope: a
 * Receipt/NegativeVans; FHIR: an Acknowledgement with a fatal-error).
 *
 * Wrapping. A wrapping format (VANSEnvelope, SBDH) decodes its own header,
 * then its payload with the codec the registry picks (codec_wrap.h), at most
 * CODEC_WRAP_MAX wrappings deep. The envelope then describes the innermost
 * message (letters[], envelope_id, ...) and lists the wrappings in
 * layers[], outermost first; `codec` is the outermost format, the one the
 * sender used, which answers a refusal and delegates inward as its format
 * requires (SBDH carries the inner format's receipt; VANS answers itself).
 *
 * What operators see as "envelope" and "letter", per format:
 *   OIOXML   envelope = Emessage/Envelope (Identifier: KuvertNr); a letter
 *            = each letter element under it (Letter/Identifier: BrevNr).
 *   EDIFACT  envelope = the interchange UNB..UNZ (UNB reference); a letter
 *            = each UNH..UNT message (UNH reference).
 *   FHIR     envelope = the Bundle (Bundle.id); the one letter = the
 *            message its MessageHeader heads (MessageHeader.id).
 *   VANS     a wrapping (EnvelopeIdentifier); envelope and letters are its
 *            payload's. A VANS Receipt carries no payload: it is bare, its
 *            own envelope and one letter, both named by EnvelopeIdentifier.
 *   SBDH     a wrapping (DocumentIdentification/InstanceIdentifier);
 *            envelope and letters are its payload's.
 * A message's identity (the duplicate register's key) is its innermost
 * letters' (sender, id), whatever wrapping it came in. Ids that name one
 * transmission (VANS EnvelopeIdentifier, SBDH InstanceIdentifier, FHIR
 * Bundle.id) are listed in txids[] with a digest of what they carried, so
 * the store can refuse one reused for other content.
 *
 * Acknowledgements. A receipt or acknowledgement between systems says in
 * `refers` what it acknowledges and how, in no format's words, so the
 * broker can track the acknowledgement of what it delivered (medcom.md
 * 9.17): XCTL02/03 their OriginalEmessage, CONTRL CTL02/03 their UCI and
 * UCMs, a FHIR Acknowledgement its response, a VANS Receipt its
 * OriginalEnvelopeIdentifier. `renew` copies an acknowledgement the broker
 * holds as a new transmission (a fresh envelope id, the same content), for
 * a sender who sends again because the first copy never reached it.
 *
 * Schemas. With lim->schemas set, a codec whose format has XML Schemas
 * (OIOXML) validates the document it parsed against the schema of its
 * namespace and reports the verdict in env->schema; the decode itself
 * succeeds or fails as without.
 */
#ifndef EDIBROKER_CODEC_H
#define EDIBROKER_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Field sizes, plus NUL. Each codec enforces its own format's tighter
 * limits (OIOXML ids are String_1_14); these fit every format. */
#define CODEC_ID_MAX 65       /* OIOXML String_1_14; FHIR id [A-Za-z0-9.-]{1,64}; VANS/SBDH ids */
#define CODEC_FRESH_ID_MAX 14 /* ids fresh_id() makes: the shortest id field (OIOXML) */
#define CODEC_TYPE_MAX 41     /* OIOXML StatisticalCode/TypeCode (8); FHIR event code */
#define CODEC_VERSION_MAX 17  /* OIOXML VersionCode (7); FHIR MessageDefinition version */
#define CODEC_GLN_MAX 36      /* EANIdentifier: String_1_35 */
#define CODEC_SOR_MAX 21      /* SOR id (urn:oid:1.2.208.176.1.1), digits */
#define CODEC_TEXT_MAX 256    /* VANS Document/Name and Version: TextType 1..255 */
#define CODEC_UUID_LEN 36     /* 8-4-4-4-12 hex digits */
#define CODEC_DIGEST_LEN 32   /* SHA-256 */
#define CODEC_MAX_LETTERS 128
#define CODEC_WRAP_MAX 2      /* wrappings around a message: SBDH around VANS around OIOXML */
#define CODEC_REFERS_MAX 128  /* letters one acknowledgement names (XCTL OriginalLetter: 99) */
#define CODEC_SCHEMA_TEXT_MAX 200

/* XML Schemas by target namespace (xsd.h); read-only once loaded. */
struct codec_schemas;

/* Hard limits a decoder enforces before and while parsing, and what a
 * wrapping codec tells the codec of its payload. */
struct codec_limits {
	size_t max_bytes;   /* whole message; larger input is refused unparsed. A
			     * wrapping passes on what is left of it (codec_wrap.h) */
	unsigned max_depth; /* element / JSON nesting */
	unsigned wrapped;   /* wrappings around this input; 0 from callers */
	const char *charset; /* the charset a wrapping declares for this input
			      * (SBDH BinaryContent/@encoding), or NULL */
	int64_t budget_ms;   /* time a decode may take (CODEC_EEXPENSIVE past it);
			      * 0 = CODEC_DEFAULT_BUDGET_MS */
	const struct codec_schemas *schemas; /* validate against these (env->schema);
					      * NULL: no validation. A wrapping passes
					      * them on to its payload */
};
#define CODEC_DEFAULT_BUDGET_MS 2000
#define CODEC_DEFAULT_MAX_BYTES (16u * 1024u * 1024u)
#define CODEC_DEFAULT_MAX_DEPTH 64u

struct codec_letter {
	char id[CODEC_ID_MAX];             /* OIOXML Letter/Identifier (BrevNr); EDIFACT UNH
					    * ref; FHIR MessageHeader.id; VANS Receipt:
					    * EnvelopeIdentifier */
	char type[CODEC_TYPE_MAX];         /* OIOXML TypeCode, else StatisticalCode (XDIS20,
					    * XCTL03), "" when the letter has neither; FHIR
					    * eventCoding.code; VANS Receipt: its kind
					    * (NegativeVans, PositiveMessage, ...) */
	char version[CODEC_VERSION_MAX];   /* OIOXML VersionCode (XD2030C); FHIR the version
					    * of MessageHeader.definition ("5.0") or "" */
	char sender[CODEC_GLN_MAX];        /* sender GLN: OIOXML Sender/EANIdentifier; FHIR
					    * the sender Organization's GLN identifier */
	char receiver[CODEC_GLN_MAX];      /* receiver GLN, the routing key: OIOXML
					    * Receiver/EANIdentifier; FHIR the primary
					    * destination's Organization GLN */
	char sender_sor[CODEC_SOR_MAX];    /* FHIR: the sender's SOR id, shown, never routed
					    * on; "" elsewhere */
	char receiver_sor[CODEC_SOR_MAX];  /* FHIR: the receiver's SOR id, likewise */
};

/* One wrapping around the message, as its codec read it. Fields a format
 * does not have are "". */
struct codec_layer {
	const struct codec *codec;        /* the wrapping's codec (VANS, SBDH) */
	char id[CODEC_ID_MAX];            /* VANS EnvelopeIdentifier; SBDH InstanceIdentifier */
	char sender[CODEC_GLN_MAX];       /* VANS SenderID; SBDH Sender/Identifier, scheme cut */
	char receiver[CODEC_GLN_MAX];     /* VANS ReceiverID; SBDH Receiver/Identifier, likewise */
	char sender_kind[8];              /* VANS SenderID/@EndPointType (EAN, CVR, VANS);
					   * SBDH the sender's scheme ("0088" for a GLN) */
	char receiver_kind[8];            /* the same for the receiver */
	char message_id[CODEC_ID_MAX];    /* VANS MetaInformation/Identifier */
	char doc_format[8];               /* VANS Document/Format (XML, HL7, ...) */
	char doc_name[CODEC_TEXT_MAX];    /* VANS Document/Name; SBDH DocumentIdentification/Type */
	char doc_version[CODEC_TEXT_MAX]; /* VANS Document/Version; SBDH TypeVersion */
	long long declared_size;          /* VANS Document/SizeInBytes; -1 when unread */
};

/* An id that names one transmission, and a digest of what it carried. The
 * store refuses a message whose txid it knows with another digest. */
struct codec_txid {
	const char *scope;                 /* the codec's name: "vans", "sbdh", "fhir" */
	char sender[CODEC_GLN_MAX];        /* whose id it is */
	char id[CODEC_ID_MAX];
	uint8_t digest[CODEC_DIGEST_LEN];  /* SHA-256 of the payload it carried (the
					    * Bundle's own bytes for Bundle.id) */
};

/* What an acknowledgement says, in no format's words. */
enum codec_ack {
	CODEC_ACK_NONE = 0,  /* not an acknowledgement, or none the broker can read */
	CODEC_ACK_POSITIVE,  /* XCTL03; CTL03 (action 7); VANS PositiveMessage; FHIR ok */
	CODEC_ACK_NEGATIVE,  /* XCTL01/02; CTL01/02 (action 4); VANS NegativeMessage and
			      * NegativeVans; FHIR fatal-error */
	CODEC_ACK_TRANSIENT, /* FHIR transient-error: the receiver failed for now, and an
			      * ok may follow once it is resolved (medcom.md 4.6, KR4/KR5) */
};

/* One message, or one letter of it, an acknowledgement names. */
struct codec_ref {
	char sender[CODEC_GLN_MAX];     /* the acknowledged message's sender: OIOXML
					 * OriginalSender, EDIFACT UCI sender; VANS and FHIR:
					 * the acknowledgement's receiver */
	char envelope_id[CODEC_ID_MAX]; /* its envelope id (OIOXML OriginalEnvelopeIdentifier,
					 * EDIFACT UCI 0020) or, with refers.scope, the
					 * transmission id (VANS OriginalEnvelopeIdentifier);
					 * "" when the format names none (FHIR) */
	char letter_id[CODEC_ID_MAX];   /* the acknowledged letter (OriginalLetterIdentifier,
					 * UCM 0062, FHIR response.identifier); "" for an
					 * acknowledgement of the whole envelope */
};

/* What an acknowledgement acknowledges (code NONE and n 0 for anything
 * else). refs are as the acknowledgement names them, in its order; past
 * CODEC_REFERS_MAX they are not read. */
struct codec_refers {
	enum codec_ack code;
	const char *scope;              /* NULL: envelope_id names an envelope; else the
					 * txid scope it names ("vans") */
	char detail[CODEC_TYPE_MAX];    /* the verdict in the format's own words, for
					 * operators: "XCTL03", "XCTL02 syntaksfejl",
					 * "CTL02 VER", "fatal-error", "PositiveMessage" */
	size_t n;
	struct codec_ref refs[CODEC_REFERS_MAX];
};

/* The verdict of schema validation (lim->schemas). */
enum codec_schema {
	CODEC_SCHEMA_UNCHECKED = 0, /* not asked for, or the format has no schemas */
	CODEC_SCHEMA_VALID,
	CODEC_SCHEMA_INVALID,       /* schema_text: the first violation */
	CODEC_SCHEMA_MISSING,       /* no schema for its namespace; schema_text names it */
};

struct codec_envelope {
	const struct codec *codec;          /* the outermost format: decoded it, answers it */
	const struct codec *inner;          /* the format of letters[] (== codec when bare);
					     * NULL when a wrapping's payload matched no codec */
	char envelope_id[CODEC_ID_MAX];     /* OIOXML Envelope/Identifier (KuvertNr); EDIFACT
					     * UNB ref; FHIR Bundle.id */
	char sent[20];                      /* "YYYY-MM-DDTHH:MM" as the message says it was
					     * sent (OIOXML Envelope/Sent, FHIR Bundle.timestamp) */
	bool ack_requested;                 /* OIOXML pluspositivkvitt; FHIR: every message
					     * but an Acknowledgement */
	bool is_receipt;                    /* every letter is a receipt or acknowledgement
					     * (XCTL01/02/03, CTL, a FHIR Acknowledgement, a VANS
					     * Receipt): never answered with a receipt */
	char encoding[24];                  /* the character set the innermost bytes were read as */
	size_t nlayers;
	struct codec_layer layers[CODEC_WRAP_MAX]; /* wrappings, outermost first */
	size_t ntxids;
	struct codec_txid txids[CODEC_WRAP_MAX + 1]; /* outermost first */
	size_t nletters;
	struct codec_letter letters[CODEC_MAX_LETTERS];
	struct codec_refers refers;         /* is_receipt: what it acknowledges (of the
					     * innermost message); zero otherwise */
	enum codec_schema schema;           /* of the innermost document (lim->schemas) */
	char schema_text[CODEC_SCHEMA_TEXT_MAX]; /* INVALID: line, element and what is
					     * wrong, never a value; MISSING: the
					     * namespace. Printable ASCII */
};

/* Error classes. Each maps to a refusal (codec_errcode_refusal). */
enum codec_errcode {
	CODEC_OK = 0,
	CODEC_ETOOBIG,    /* larger than limits.max_bytes */
	CODEC_EENCODING,  /* wrongly encoded, or an unsupported character set */
	CODEC_ESYNTAX,    /* not well-formed XML (truncated, malformed) */
	CODEC_EHOSTILE,   /* DOCTYPE / entity declarations: refused unexpanded */
	CODEC_EDEPTH,     /* nesting deeper than limits.max_depth */
	CODEC_ESTRUCTURE, /* well-formed, but not a MedCom message of this format */
	CODEC_EFIELD,     /* a required field is missing, empty or too long */
	CODEC_ETYPE,      /* unknown letter type */
	CODEC_EVERSION,   /* VersionCode does not belong to the letter type */
	CODEC_EADDRESS,   /* a wrapping and its letters name different receivers */
	CODEC_EEXPENSIVE, /* too expensive to parse: a construct whose cost grows faster
			   * than its size (thousands of attributes on one tag), or
			   * more time than limits.budget_ms */
	CODEC_ESCHEMA,    /* well-formed and decodable, but invalid against its XML
			   * Schema (set by the accept path when it enforces one) */
};
#define CODEC_ERRCODE_LAST CODEC_ESCHEMA

struct codec_error {
	enum codec_errcode code;
	/* Human-readable, specific, single line, printable ASCII; names elements
	 * and positions, never quotes message content (no patient data). */
	char text[256];
};

/* Why the broker refuses a message, in no format's words. */
enum codec_refusal {
	CODEC_REFUSE_UNSPECIFIED = 0, /* none of the below */
	CODEC_REFUSE_UNKNOWN_RECEIVER, /* no endpoint has the receiver's id */
	CODEC_REFUSE_RECEIVER_ID,      /* the receiver's id is unusable */
	CODEC_REFUSE_SYNTAX,           /* the message could not be read */
	CODEC_REFUSE_VERSION,          /* a version its type does not have */
	CODEC_REFUSE_TYPE,             /* the receiver does not take its type (or version):
					* the endpoint's `accepts` */
};
#define CODEC_REFUSE_LAST CODEC_REFUSE_TYPE

/* What the broker brings to a negative receipt. Borrowed for the call. */
struct codec_refusal_params {
	enum codec_refusal reason;
	const char *text;      /* plain text for people, no patient data; '\n' breaks a
				* line; NULL or "" for none */
	const char *broker_id; /* the broker's network id: the receipt's sender where a
				* format names a network party (XCTL01, CTL01, VANS) */
	const char *broker_gln; /* the broker's own GLN ([broker] gln), the sender of
				 * FHIR and wrapped receipts; NULL: they carry broker_id */
	struct tm now;         /* local date and time the receipt is issued */
	/* Writes a fresh id of 1..CODEC_FRESH_ID_MAX ASCII letters and
	 * digits, unique among the broker's receipts; called once per id the
	 * format needs. */
	void (*fresh_id)(void *ctx, char id[CODEC_ID_MAX]);
	/* Writes a fresh random UUID (lowercase, CODEC_UUID_LEN characters)
	 * for formats whose ids are UUIDs (VANS, FHIR); NULL: those formats
	 * issue no receipt. */
	void (*fresh_uuid)(void *ctx, char uuid[CODEC_UUID_LEN + 1]);
	void *ctx;
};

/* A negative receipt, ready to be stored and queued like any message. */
struct codec_receipt {
	uint8_t *body;                  /* malloc'ed; the caller frees */
	size_t size;
	const char *format;             /* name of the codec that reads it back, "oioxml" */
	const char *ext;                /* file extension, "xml" */
	char type[CODEC_TYPE_MAX];      /* "XCTL01" */
	char version[CODEC_VERSION_MAX]; /* its version code ("XC0130Q"), "" if none */
	char envelope_id[CODEC_ID_MAX]; /* the receipt's own envelope id */
	char sender[CODEC_GLN_MAX];     /* the broker's id, as the receipt names it */
	char receiver[CODEC_GLN_MAX];   /* the refused message's sender */
	char refers[CODEC_ID_MAX];      /* the refused envelope's id (outermost wrapping's) */
	struct {
		char sender[CODEC_GLN_MAX];
		char id[CODEC_ID_MAX];
	} key;                          /* its one letter, for the duplicate register */
};

struct codec {
	const char *name;   /* "oioxml" */
	const char *ext;    /* file extension for delivered files: "xml", "edi", "json" */
	/* Cheap check whether buf looks like this format. */
	bool (*sniff)(const uint8_t *buf, size_t len);
	/* Decodes buf. Returns 0, or -1 with *err filled. On error, env may be
	 * partly filled: codec, inner, envelope_id, the layers read so far and
	 * letters[0].sender and .id when they could be read whole (so a
	 * negative receipt can be addressed), and is_receipt when the first
	 * letter is a receipt (never answered); nletters is 0. A NULL lim or
	 * zero fields mean the defaults; max_depth is capped at libxml2's own
	 * 256. */
	int (*decode)(const uint8_t *buf, size_t len, const struct codec_limits *lim,
		      struct codec_envelope *env, struct codec_error *err);
	/* Builds the negative receipt refusing env, as this codec's decode
	 * left it (whole, or partly on error), in this codec's format (a
	 * wrapping: around the receipt of what it wraps, or its own) and
	 * addressed to env's sender. Returns 0 with *out filled, -ENOTSUP
	 * when the format never answers env (it is a receipt), or -EINVAL
	 * when env lacks what the receipt must echo (envelope id, sender) or
	 * a parameter does not fit the format; *out is untouched then. NULL
	 * for a format that issues no receipts. */
	int (*refuse)(const struct codec_envelope *env, const struct codec_refusal_params *p,
		      struct codec_receipt *out);
	/* Copies buf, an acknowledgement this codec decodes, as a new
	 * transmission: a fresh id for its outermost envelope (OIOXML
	 * Envelope/Identifier, EDIFACT UNB and UNZ reference, FHIR Bundle.id,
	 * VANS EnvelopeIdentifier, SBDH InstanceIdentifier, from p's fresh_id
	 * or fresh_uuid as the field needs), every other byte as it was.
	 * Returns 0 with *out filled (type, envelope_id, sender and receiver
	 * of the copy; key empty: it records no letter), -EINVAL when buf
	 * does not decode or its id cannot be found once, -ENOTSUP when buf
	 * is no acknowledgement. NULL for a format that never renews. */
	int (*renew)(const uint8_t *buf, size_t len, const struct codec_limits *lim,
		     const struct codec_refusal_params *p, struct codec_receipt *out);
};

/* The registry. codec_find returns NULL for an unknown name; codec_sniff
 * returns the first codec whose sniff accepts buf, or NULL. */
const struct codec *codec_find(const char *name);
const struct codec *codec_sniff(const uint8_t *buf, size_t len);
/* Short stable token for an error code ("syntax", "encoding", ...). */
const char *codec_errcode_name(enum codec_errcode code);
/* Why a message with this decoding error is refused (SYNTAX, VERSION, ...). */
enum codec_refusal codec_errcode_refusal(enum codec_errcode code);
/* env->codec's refuse(); -ENOTSUP when env has no codec or it issues no
 * receipts. */
int codec_refuse(const struct codec_envelope *env, const struct codec_refusal_params *p,
		 struct codec_receipt *out);

/* The renew() of the codec that sniffs buf; -ENOTSUP when none does or it
 * renews nothing. */
int codec_renew(const uint8_t *buf, size_t len, const struct codec_limits *lim,
		const struct codec_refusal_params *p, struct codec_receipt *out);
/* Short stable token for an acknowledgement's verdict ("positive", ...). */
const char *codec_ack_name(enum codec_ack code);

/* Decodes with the codec that sniff picks; CODEC_ESTRUCTURE when none does. */
int codec_decode_any(const uint8_t *buf, size_t len, const struct codec_limits *lim,
		     struct codec_envelope *env, struct codec_error *err);

#endif
