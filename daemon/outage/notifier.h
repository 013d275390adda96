/*
 * notifier.h - how the outage procedure gets a composed notice carried:
 * one send round over the channels it asks for (e-mail, webhook, and the
 * fallback command when e-mail fails), completing later with a result per
 * channel.
 *
 * An interface, so the procedure can be driven without mail servers: the
 * real notifier runs the channels of notify.h on a lane of its own (their
 * sends block for up to the configured timeout); a test double records
 * the request and completes it when the test says so.
 */
#ifndef EDIBROKER_NOTIFIER_H
#define EDIBROKER_NOTIFIER_H

#include "notice/notify.h"
#include "base/lanes.h"

#include <stdbool.h>

/* When a round runs the fallback command (after e-mail, when e-mail is
 * tried at all). */
enum notifier_fallback {
	NOTIFIER_FALLBACK_NEVER,
	NOTIFIER_FALLBACK_DENIED,  /* only if the mail server refuses the credentials */
	NOTIFIER_FALLBACK_FAILED,  /* if e-mail fails, for whatever reason */
	NOTIFIER_FALLBACK_ALWAYS,  /* whatever e-mail does: it cannot carry the notice */
};

/* One send round. Everything is borrowed for the call to send(); the
 * notifier copies what it keeps. */
struct notifier_request {
	const struct notify_config *cfg;
	const struct notify_message *msg;
	bool email;               /* try e-mail */
	bool webhook;             /* try the webhook */
	enum notifier_fallback fallback;
};

/* How each channel went; one not tried has tried == false. */
struct notifier_outcome {
	bool tried;
	struct notify_result result;
};

struct notifier_report {
	struct notifier_outcome email, webhook, fallback;
};

typedef void (*notifier_done_fn)(void *arg, const struct notifier_report *rep);

struct notifier {
	/* Starts a send round; done(arg, report) runs later on the event loop,
	 * never inside send(), exactly once. */
	void (*send)(const struct notifier *n, const struct notifier_request *req,
		     notifier_done_fn done, void *arg);
	void *ctx;
};

/* The real notifier: each round is a job on lane (notify_email, then
 * notify_webhook, then notify_fallback as the request says); a round owns
 * copies of everything it uses, so a shutdown may abandon one that hangs.
 * Free with notifier_free(). */
struct notifier *notifier_new(struct lane *lane);
void notifier_free(struct notifier *n);

#endif
