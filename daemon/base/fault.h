/*
 * fault.h - the classes of transport fault: why a delivery or probe failed,
 * as health, outages, notices, logs and the control socket name it.
 *
 * One table (fault.c) gives each class its stable name (logs, the store's
 * cause_fault, edibrokerctl) and its words for people in every notice
 * language, so a new class or language is one row or one column there.
 */
#ifndef EDIBROKER_FAULT_H
#define EDIBROKER_FAULT_H

/* Why a delivery or probe failed, for health and notices. */
enum transport_fault {
	FAULT_NONE = 0,
	FAULT_REFUSED,   /* connection refused, path missing, permission denied */
	FAULT_TIMEOUT,   /* no answer in time / files not collected */
	FAULT_TLS,       /* TLS handshake or certificate failure */
	FAULT_DISK_FULL, /* ENOSPC / EDQUOT at the receiver */
	FAULT_REJECTED,  /* the receiver answered but refused the message */
	FAULT_IO,        /* other I/O error */
};

/* Stable name: "none", "refused", "timeout", "tls", "disk-full", "rejected",
 * "io"; "?" for a value outside the enum. */
const char *fault_name(enum transport_fault f);

/* The fault a stable name names, or -1 when none does (NULL included). */
int fault_from_name(const char *name);

/* The fault in words for a notice in language lang ("da", "en"). f is a
 * fault, or fault_from_name()'s -1; FAULT_NONE and values outside the enum
 * give the words for an unknown fault. NULL for a language without words. */
const char *fault_words(int f, const char *lang);

#endif
