/*
 * zmq_proto.h - the framing of the ZeroMQ peer link (docs/zmq.md): one
 * ZeroMQ multipart message per command, the command's name in the first
 * frame, its arguments in the frames after it.
 *
 *   peer -> broker                      broker -> peer
 *   submit    REF BODY                  accepted  REF ID
 *   delivered ID                        rejected  REF RETRYABLE CODE TEXT
 *   refused   ID RETRYABLE CODE TEXT    deliver   ID NAME BODY
 *   ready     WINDOW                    heartbeat STATE
 *   heartbeat                           error     CODE TEXT
 *
 * Pure: frames in, a checked command out, and back; no I/O, no libzmq, so
 * the broker (zmq_link.c), edibroker-peer and the benchmark share it and
 * unit tests drive it alone. A parsed command borrows its BODY from the
 * frames; everything else is copied into the struct, checked: a REF is 1 to
 * 64 of [A-Za-z0-9._:-], an ID a decimal above 0, RETRYABLE "0" or "1", a
 * CODE 1 to 32 of [a-z0-9-], a TEXT up to 256 bytes of UTF-8 without control
 * characters, a NAME a file name of [A-Za-z0-9._-] not starting with '.',
 * a WINDOW 1 to 1024, a STATE receiving, standby or idle.
 */
#ifndef EDIBROKER_ZMQ_PROTO_H
#define EDIBROKER_ZMQ_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZP_FRAMES_MAX 5    /* a command and at most four arguments */
#define ZP_REF_MAX 64
#define ZP_CODE_MAX 32
#define ZP_TEXT_MAX 256
#define ZP_NAME_MAX 128
#define ZP_STATE_MAX 16
#define ZP_WINDOW_MAX 1024
#define ZP_BUF_SIZE 64     /* zp_build()'s scratch: ID and WINDOW as text */

enum zp_cmd {
	ZP_SUBMIT,    /* peer: a message for the broker to accept */
	ZP_ACCEPTED,  /* broker: committed (or accepted before: the same ID) */
	ZP_REJECTED,  /* broker: not accepted, and why; RETRYABLE says whether to offer it again */
	ZP_DELIVER,   /* broker: a message for the peer */
	ZP_DELIVERED, /* peer: that message is safe with the peer */
	ZP_REFUSED,   /* peer: it will not take that message (RETRYABLE 0) or not now (1) */
	ZP_READY,     /* peer: send deliveries on this connection, at most WINDOW unconfirmed */
	ZP_HEARTBEAT, /* both: alive; the broker's answer says whether this connection receives */
	ZP_ERROR,     /* broker: a message it could not take at all (no REF to answer) */
};
#define ZP_CMD_COUNT (ZP_ERROR + 1)

/* One frame: bytes borrowed from the caller. */
struct zp_frame {
	const void *data;
	size_t size;
};

/* One command. The fields its command does not use are zero. */
struct zp_msg {
	enum zp_cmd cmd;
	char ref[ZP_REF_MAX + 1];      /* submit, accepted, rejected */
	int64_t id;                    /* accepted, deliver, delivered, refused */
	bool retryable;                /* rejected, refused */
	char code[ZP_CODE_MAX + 1];    /* rejected, refused, error */
	char text[ZP_TEXT_MAX + 1];    /* rejected, refused, error */
	char name[ZP_NAME_MAX + 1];    /* deliver: the file name the broker suggests */
	char state[ZP_STATE_MAX + 1];  /* heartbeat from the broker; "" from a peer */
	unsigned window;               /* ready */
	const uint8_t *body;           /* submit, deliver: borrowed */
	size_t size;
};

/* The command's name as it travels ("submit"), or "?" outside the enum. */
const char *zp_cmd_name(enum zp_cmd cmd);

/* Parses the n frames of one message into *m. 0, or -EPROTO with why (one
 * line, never quoting a frame's bytes) and *m partly filled: m->cmd and
 * m->ref are set as far as they could be read, so a refusal can name the
 * REF it answers. */
int zp_parse(const struct zp_frame *f, size_t n, struct zp_msg *m, char *why, size_t len);

/* The frames of m (a complete, valid command: asserted) into f, pointing
 * into m and buf; a TEXT longer than ZP_TEXT_MAX is cut at a character
 * boundary. Returns how many. */
size_t zp_build(const struct zp_msg *m, struct zp_frame f[ZP_FRAMES_MAX], char buf[ZP_BUF_SIZE]);

/* Fills m->text from printf-style text: control characters become spaces,
 * invalid UTF-8 '?', cut at ZP_TEXT_MAX on a character boundary. */
void zp_set_text(struct zp_msg *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* True when s is a valid REF / NAME / CODE as above. */
bool zp_ref_ok(const char *s, size_t n);
bool zp_name_ok(const char *s, size_t n);
bool zp_code_ok(const char *s, size_t n);

#endif
