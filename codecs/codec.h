/*
 * codec.h - the codec interface: bytes in, a routing envelope or a precise
 * error out; and, when the broker refuses a message, the negative receipt
 * in the message's own format.
 *
 * A codec is pure: no I/O, no logging, no globals that change. The broker
 * never rewrites a message; a codec only reads the fields routing, duplicate
 * detection and operators need, and writes the receipts the broker itself
 * issues. Each format (OIOXML Emessage today; EDIFACT, VANSEnvelope and
 * FHIR later) is one `struct codec` in the registry, found by name or by
 * sniffing the first bytes. The caller speaks no format's vocabulary: it
 * says why it refuses (enum codec_refusal) and the codec words it (OIOXML:
 * an XCTL01 RefuseCode; EDIFACT: a CONTRL; FHIR: an Acknowledgement with a
 * fatal-error). A wrapping format (VANSEnvelope) decodes and refuses as
 * itself, so the refusal goes back in the wrapper the sender used.
 */
#ifndef EDIBROKER_CODEC_H
#define EDIBROKER_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Field sizes follow the OIOXML schema (medcom.md section 2.1), plus NUL. */
#define CODEC_ID_MAX 15      /* Envelope/Letter Identifier: String_1_14 */
#define CODEC_TYPE_MAX 9     /* StatisticalCode / TypeCode: String_1_8 */
#define CODEC_VERSION_MAX 8  /* VersionCode, e.g. XD2030C */
#define CODEC_GLN_MAX 36     /* EANIdentifier: String_1_35 */
#define CODEC_MAX_LETTERS 128

/* Hard limits a decoder enforces before and while parsing. */
struct codec_limits {
	size_t max_bytes;  /* whole message; larger input is refused unparsed */
	unsigned max_depth; /* element nesting */
};
#define CODEC_DEFAULT_MAX_BYTES (16u * 1024u * 1024u)
#define CODEC_DEFAULT_MAX_DEPTH 64u

struct codec_letter {
	char id[CODEC_ID_MAX];             /* Letter/Identifier (BrevNr) */
	char type[CODEC_TYPE_MAX];         /* e.g. XDIS20, XCTL03 */
	char version[CODEC_VERSION_MAX];   /* Letter/VersionCode, e.g. XD2030C */
	char sender[CODEC_GLN_MAX];        /* Sender/EANIdentifier */
	char receiver[CODEC_GLN_MAX];      /* Receiver/EANIdentifier: the routing key */
};

struct codec_envelope {
	const struct codec *codec;          /* the codec that decoded it */
	char envelope_id[CODEC_ID_MAX];     /* Envelope/Identifier (KuvertNr) */
	char sent[20];                      /* "YYYY-MM-DDTHH:MM" as written in Envelope/Sent */
	bool ack_requested;                 /* AcknowledgementCode = pluspositivkvitt */
	bool is_receipt;                    /* every letter is an XCTL01/02/03 */
	char encoding[24];                  /* the character set the bytes were read as */
	size_t nletters;
	struct codec_letter letters[CODEC_MAX_LETTERS];
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
};

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
};

/* What the broker brings to a negative receipt. Borrowed for the call. */
struct codec_refusal_params {
	enum codec_refusal reason;
	const char *text;      /* plain text for people, no patient data; '\n' breaks a
				* line; NULL or "" for none */
	const char *broker_id; /* the broker's network id: the receipt's sender */
	struct tm now;         /* local date and time the receipt is issued */
	/* Writes a fresh id of 1..CODEC_ID_MAX-1 ASCII letters and digits,
	 * unique among the broker's receipts; called once per id the format
	 * needs. */
	void (*fresh_id)(void *ctx, char id[CODEC_ID_MAX]);
	void *ctx;
};

/* A negative receipt, ready to be stored and queued like any message. */
struct codec_receipt {
	uint8_t *body;                  /* malloc'ed; the caller frees */
	size_t size;
	const char *format;             /* name of the codec that reads it back, "oioxml" */
	const char *ext;                /* file extension, "xml" */
	char type[CODEC_TYPE_MAX];      /* "XCTL01" */
	char envelope_id[CODEC_ID_MAX]; /* the receipt's own envelope id */
	char sender[CODEC_GLN_MAX];     /* the broker's id, as the receipt names it */
	char receiver[CODEC_GLN_MAX];   /* the refused message's sender */
	char refers[CODEC_ID_MAX];      /* the refused envelope's id */
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
	 * partly filled: envelope_id, and letters[0].sender when they could be
	 * read whole (so a negative receipt can be addressed), and is_receipt
	 * when the first letter is a receipt (never answered); nletters is 0.
	 * A NULL lim or zero fields mean the defaults; max_depth is capped at
	 * libxml2's own 256. */
	int (*decode)(const uint8_t *buf, size_t len, const struct codec_limits *lim,
		      struct codec_envelope *env, struct codec_error *err);
	/* Builds the negative receipt refusing env, as this codec's decode
	 * left it (whole, or partly on error), in this codec's format and
	 * addressed to env's sender. Returns 0 with *out filled, -ENOTSUP
	 * when the format never answers env (it is a receipt), or -EINVAL
	 * when env lacks what the receipt must echo (envelope id, sender) or
	 * a parameter does not fit the format; *out is untouched then. NULL
	 * for a format that issues no receipts. */
	int (*refuse)(const struct codec_envelope *env, const struct codec_refusal_params *p,
		      struct codec_receipt *out);
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

/* Decodes with the codec that sniff picks; CODEC_ESTRUCTURE when none does. */
int codec_decode_any(const uint8_t *buf, size_t len, const struct codec_limits *lim,
		     struct codec_envelope *env, struct codec_error *err);

#endif
