/*
 * edibrokerctl.c - the operators' command-line client for edibrokerd's
 * control socket.
 *
 *   edibrokerctl [-c CONFIG | -s SOCKET] [--json] COMMAND [ARGS]
 *
 * Commands read (status, queue, dead, quarantine, outages, trace, ...) or
 * change (outage open, requeue, hold, resend, delete, ...) the daemon's
 * state; the daemon decides who may change it.
 *
 * The socket is -s, else $EDIBROKER_SOCKET, else a control_socket written
 * in the config (-c, default /etc/edibroker/edibroker.conf), else
 * /run/edibroker/control.sock when it exists (the daemon under systemd puts
 * it in its RuntimeDirectory), else the default under the config's
 * state_dir. Each command sends one JSON request and renders the answer as
 * a table, or prints the JSON unchanged with --json. Exit codes: 0 ok, 1
 * the daemon refused, 2 usage, 3 the daemon cannot be reached.
 */
#include "conf/config.h"
#include "transport/transport.h"
#include "codecs/base/mem.h"
#include "base/fileio.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#define DEFAULT_CONFIG "/etc/edibroker/edibroker.conf"
#define DEFAULT_SOCKET "/var/lib/edibroker/control.sock"
#define RUNTIME_SOCKET "/run/edibroker/control.sock" /* RuntimeDirectory=edibroker */

struct ctl {
	const char *socket;
	const char *config;
	bool json;
	bool all;
	bool release;
	bool overdue, negative;
	long limit;
	const char *from, *to, *reason, *contact, *cause, *expected, *fallback;
	const char *envelope, *letter, *bundle;
};

typedef int (*render_fn)(const json_t *ans);

static void usage(FILE *f)
{
	fprintf(f,
		"usage: edibrokerctl [-c CONFIG | -s SOCKET] [--json] COMMAND [ARGS]\n"
		"\n"
		"commands:\n"
		"  status                 endpoints with state and queue depth\n"
		"  queue ENDPOINT         messages queued for ENDPOINT (id, type, sender, age, attempts)\n"
		"  dead                   dead letters (not routable) with their reason\n"
		"  quarantine [ENDPOINT]  quarantined inbound files with their reason\n"
		"  acks [ENDPOINT] [--overdue | --negative]\n"
		"                         delivered messages awaiting their receiver's\n"
		"                         acknowledgement, overdue ones marked (--overdue: only\n"
		"                         them; --negative: those the receiver refused)\n"
		"  keep [--release] ID    exempt a dead letter or quarantined file from retention\n"
		"                         (--release: let retention take it again)\n"
		"  outages [--all]        open and recent outages (--all: every one)\n"
		"  outage show ID         an outage with its notices and every send attempt\n"
		"  outage set ID [--expected-downtime D|TIME|unknown] [--contact TEXT] [--cause TEXT]\n"
		"                [--fallback TEXT]\n"
		"                         what the next notice carries (an announced outage: at once);\n"
		"                         --fallback: whom staff phone meanwhile (\"\" = the endpoint's)\n"
		"  outage open ENDPOINT --cause TEXT   open an outage by hand\n"
		"  outage close ID        close an outage (the all-clear follows if announced)\n"
		"  maintenance add ENDPOINT --from TIME --to TIME --reason TEXT [--contact TEXT]\n"
		"  maintenance list [--all]\n"
		"  maintenance remove ID\n"
		"  trace ID | --envelope X | --letter Y | --bundle Z\n"
		"                         a message's history: from where, routed where, attempts with\n"
		"                         faults, delivery, duplicates, receipts, operators' changes\n"
		"  requeue ID...          route dead letters or quarantined files again (the duplicate\n"
		"                         check runs again)\n"
		"  hold ENDPOINT          pause delivery to ENDPOINT (kept across restarts, no notices)\n"
		"  release ENDPOINT       deliver to ENDPOINT again\n"
		"  retry ENDPOINT         skip the backoff: try ENDPOINT now\n"
		"  resend ID              deliver a delivered message's bytes again, as a new message\n"
		"  delete ID --reason TEXT  end a dead letter or a queued message (kept in the history)\n"
		"\n"
		"TIME is local time, \"YYYY-MM-DD HH:MM\"; D is a duration like 90m or 3h.\n"
		"\n"
		"options:\n"
		"  -c, --config FILE      read the control socket path from FILE\n"
		"  -s, --socket PATH      control socket (default: $EDIBROKER_SOCKET, the config's\n"
		"                         control_socket, " RUNTIME_SOCKET ", <state_dir>)\n"
		"  -n, --limit N          list at most N messages (default 100)\n"
		"      --envelope X       trace by envelope id (or a VANS/SBDH transmission id)\n"
		"      --letter Y         trace by letter id\n"
		"      --bundle Z         trace by FHIR Bundle.id\n"
		"      --json             print the daemon's JSON answer\n");
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static char *socket_path(const struct ctl *c)
{
	if (c->socket)
		return xstrdup(c->socket);
	const char *env = getenv("EDIBROKER_SOCKET");
	if (!str_empty(env))
		return xstrdup(env);
	const char *path = c->config ? c->config : DEFAULT_CONFIG;
	if (!c->config && access(path, R_OK) < 0) /* an operator may not read it */
		return xstrdup(exists(RUNTIME_SOCKET) ? RUNTIME_SOCKET : DEFAULT_SOCKET);
	struct config *cfg = NULL;
	char err[1024];
	/* Only the socket path: no secret file is read, so an operator needs
	 * the config, not the daemon's secrets. */
	if (config_load_opts(path, transport_schemas(), CONFIG_NO_FILES, &cfg, err,
			     sizeof(err)) < 0) {
		fprintf(stderr, "edibrokerctl: %s\n", err);
		return NULL;
	}
	char *s = !cfg->control_socket_explicit && exists(RUNTIME_SOCKET)
			  ? xstrdup(RUNTIME_SOCKET)
			  : xstrdup(cfg->control_socket);
	config_free(cfg);
	return s;
}

static int connect_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (str_copy(sa.sun_path, path, sizeof(sa.sun_path)) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Sends req, returns the answer (NULL with a message printed on failure). */
static json_t *request(const char *path, json_t *req)
{
	_cleanup_close_ int fd = connect_socket(path);
	if (fd < 0) {
		fprintf(stderr, "edibrokerctl: cannot reach edibrokerd at %s: %s\n", path,
			strerror(errno));
		return NULL;
	}
	_cleanup_free_ char *text = json_dumps(req, JSON_COMPACT);
	int w = write_all(fd, text, strlen(text));
	if (w == 0)
		w = write_all(fd, "\n", 1);
	int werr = w < 0 ? -w : 0;
	shutdown(fd, SHUT_WR);
	/* A refusal (too many connections) is one line and a close: read it
	 * even when the request could not be written. */
	_cleanup_fclose_ FILE *f = fdopen(TAKE_FD(fd), "r");
	json_error_t jerr;
	json_t *ans = f ? json_loadf(f, JSON_DISABLE_EOF_CHECK, &jerr) : NULL;
	if (!ans && w < 0)
		fprintf(stderr, "edibrokerctl: %s: %s\n", path, strerror(werr));
	else if (!ans)
		fprintf(stderr, "edibrokerctl: bad answer from edibrokerd: %s\n", jerr.text);
	return ans;
}

static void fmt_age(json_t *v, char *buf, size_t len)
{
	if (!json_is_integer(v)) {
		snprintf(buf, len, "-");
		return;
	}
	long long s = json_integer_value(v);
	if (s < 120)
		snprintf(buf, len, "%llds", s);
	else if (s < 7200)
		snprintf(buf, len, "%lldm", s / 60);
	else if (s < 172800)
		snprintf(buf, len, "%lldh%02lldm", s / 3600, s / 60 % 60);
	else
		snprintf(buf, len, "%lldd", s / 86400);
}

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

static long long num(const json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

/* Several daemons on one database: every node with what it holds, and who
 * delivers each endpoint. */
static void render_cluster(const json_t *ans)
{
	const json_t *c = json_object_get(ans, "cluster");
	if (!c)
		return;
	printf("\nnode: %s   database: %s%s%s   leases held here: %lld\n", str(c, "node"),
	       json_is_true(json_object_get(c, "reachable")) ? "reachable" : "UNREACHABLE",
	       *str(c, "error") ? " - " : "", str(c, "error"), num(c, "held"));
	printf("%-22s %9s  %s\n", "NODE", "LAST SEEN", "LEASES");
	size_t i, k;
	json_t *n, *l;
	json_array_foreach(json_object_get(c, "nodes"), i, n) {
		char age[32], leases[512] = "";
		fmt_age(json_object_get(n, "seen_ago_s"), age, sizeof(age));
		size_t used = 0;
		json_array_foreach(json_object_get(n, "leases"), k, l) {
			int w = snprintf(leases + used, sizeof(leases) - used, "%s%s", k ? ", " : "",
					 json_string_value(l));
			used += w > 0 && (size_t)w < sizeof(leases) - used ? (size_t)w : 0;
		}
		printf("%-22s %9s  %s\n", str(n, "name"), age,
		       json_is_true(json_object_get(n, "stopped")) ? "(stopped)"
		       : used ? leases : "-");
	}
	printf("%-22s %-22s %s\n", "ENDPOINT", "DELIVERED BY", "EPOCH HERE");
	json_array_foreach(json_object_get(ans, "endpoints"), i, n) {
		const char *holder = str(n, "holder");
		printf("%-22s %-22s %lld\n", str(n, "name"), *holder ? holder : "(nobody yet)",
		       num(n, "epoch"));
	}
}

static int render_status(const json_t *ans)
{
	printf("%-22s %-13s %-12s %-13s %8s %8s %8s  %s\n", "ENDPOINT", "KIND", "HEALTH", "STATE",
	       "QUEUED", "OLDEST", "FAILURES", "LAST ERROR");
	size_t i;
	json_t *ep;
	json_array_foreach(json_object_get(ans, "endpoints"), i, ep) {
		char age[32];
		fmt_age(json_object_get(ep, "oldest_age_s"), age, sizeof(age));
		const char *state = str(ep, "state");
		if (json_is_true(json_object_get(ep, "pickup_paused")))
			state = "pickup-paused";
		printf("%-22s %-13s %-12s %-13s %8lld %8s %8lld  %s\n", str(ep, "name"),
		       str(ep, "kind"), *str(ep, "health") ? str(ep, "health") : "-", state,
		       num(ep, "queued"), age, num(ep, "failures"), str(ep, "last_error"));
	}
	json_array_foreach(json_object_get(ans, "endpoints"), i, ep) {
		if (num(ep, "inbox_unreadable") > 0)
			printf("\n%s: %lld inbox file(s) the broker may not read, left in the inbox "
			       "(event=inbox-unreadable in the log)",
			       str(ep, "name"), num(ep, "inbox_unreadable"));
	}
	char dead[32];
	if (json_is_null(json_object_get(ans, "dead")))
		snprintf(dead, sizeof(dead), "? (%s)", str(ans, "store_read"));
	else
		snprintf(dead, sizeof(dead), "%lld", num(ans, "dead"));
	printf("\nstore: %s%s%s   dead letters: %s   accepted since start: %lld\n",
	       str(ans, "store"), *str(ans, "store_error") ? " - " : "", str(ans, "store_error"),
	       dead, num(ans, "accepted"));
	render_cluster(ans);
	return 0;
}

/* " (kept)", " (body removed)" and the like after a reason. */
static const char *retention_mark(const json_t *m, const char *what)
{
	static char buf[48];
	if (json_is_true(json_object_get(m, "keep")))
		return " (kept)";
	if (json_is_integer(json_object_get(m, "removed_ms"))) {
		snprintf(buf, sizeof(buf), " (%s removed)", what);
		return buf;
	}
	return "";
}

static void render_messages(const json_t *msgs, bool dead)
{
	printf("%-10s %-8s %-15s %-15s %8s %8s  %s\n", "ID", "TYPE", "SENDER", "RECEIVER", "AGE",
	       dead ? "SOURCE" : "ATTEMPTS", dead ? "REASON" : "LAST ERROR");
	size_t i;
	json_t *m;
	json_array_foreach(msgs, i, m) {
		char age[32], col[32];
		fmt_age(json_object_get(m, "age_s"), age, sizeof(age));
		if (dead)
			snprintf(col, sizeof(col), "%s", str(m, "source"));
		else
			snprintf(col, sizeof(col), "%lld", num(m, "attempts"));
		printf("%-10lld %-8s %-15s %-15s %8s %8s  %s%s\n", num(m, "id"), str(m, "type"),
		       str(m, "sender"), str(m, "receiver"), age, col,
		       dead ? str(m, "reason") : str(m, "last_error"),
		       dead ? retention_mark(m, "body") : "");
	}
}

static int render_queue(const json_t *ans)
{
	printf("endpoint %s: %lld queued%s\n\n", str(ans, "endpoint"), num(ans, "queued"),
	       json_is_false(json_object_get(ans, "configured")) ? " (not configured)" : "");
	render_messages(json_object_get(ans, "messages"), false);
	return 0;
}

static int render_dead(const json_t *ans)
{
	printf("%lld dead letters\n\n", num(ans, "dead"));
	render_messages(json_object_get(ans, "messages"), true);
	return 0;
}

static int render_quarantine(const json_t *ans)
{
	printf("%lld quarantined files\n\n", num(ans, "quarantined"));
	printf("%-10s %-20s %-10s %8s %10s  %s\n", "ID", "ENDPOINT", "ERROR", "AGE", "SIZE",
	       "FILE / REASON");
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(ans, "messages"), i, m) {
		char age[32];
		fmt_age(json_object_get(m, "age_s"), age, sizeof(age));
		printf("%-10lld %-20s %-10s %8s %10lld  %s%s\n%55s%s\n", num(m, "id"),
		       str(m, "source"), str(m, "error"), age, num(m, "size"), str(m, "file"),
		       retention_mark(m, "file"), "", str(m, "reason"));
	}
	return 0;
}

static int render_acks(const json_t *ans)
{
	char timeout[32];
	const char *list = str(ans, "list");
	size_t n = json_array_size(json_object_get(ans, "messages"));
	fmt_age(json_object_get(ans, "ack_timeout_s"), timeout, sizeof(timeout));
	if (strcmp(list, "negative") == 0)
		printf("%zu refused by their receiver\n\n", n);
	else
		printf("%zu awaiting an acknowledgement, %lld overdue (after %s)\n\n", n,
		       num(ans, "overdue"), timeout);
	printf("%-10s %-16s %-10s %-15s %-15s %8s %-12s  %s\n", "ID", "ENDPOINT", "TYPE", "SENDER",
	       "RECEIVER", "SENT", "STATE", "ACKNOWLEDGEMENT");
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(ans, "messages"), i, m) {
		char age[32], ack[96] = "";
		fmt_age(json_object_get(m, "sent_age_s"), age, sizeof(age));
		if (json_is_integer(json_object_get(m, "ack_msg")))
			snprintf(ack, sizeof(ack), "%lld %s", num(m, "ack_msg"), str(m, "ack_code"));
		printf("%-10lld %-16s %-10s %-15s %-15s %8s %-12s  %s\n", num(m, "id"),
		       str(m, "endpoint"), str(m, "type"), str(m, "sender"), str(m, "receiver"), age,
		       str(m, "state"), ack);
	}
	return 0;
}

static const char *jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "-";
}

static void fmt_duration(long long s, char *buf, size_t len)
{
	if (s < 3600)
		snprintf(buf, len, "%lldm", s / 60);
	else if (s < 172800)
		snprintf(buf, len, "%lldh%02lldm", s / 3600, s / 60 % 60);
	else
		snprintf(buf, len, "%lldd%02lldh", s / 86400, s / 3600 % 24);
}

static int render_outages(const json_t *ans)
{
	printf("%-6s %-20s %-11s %-17s %9s %-17s  %s\n", "ID", "ENDPOINT", "STATE", "STARTED",
	       "DURATION", "ANNOUNCED", "CAUSE");
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(ans, "outages"), i, o) {
		char dur[32];
		fmt_duration(num(o, "duration_s"), dur, sizeof(dur));
		const char *cause = json_is_string(json_object_get(o, "cause")) ? jstr(o, "cause")
										 : jstr(o, "cause_fault");
		printf("%-6lld %-20s %-11s %-17s %9s %-17s  %s\n", num(o, "id"), jstr(o, "endpoint"),
		       jstr(o, "state"), jstr(o, "started"), dur, jstr(o, "announced"), cause);
	}
	return 0;
}

static int render_outage(const json_t *ans)
{
	const json_t *o = json_object_get(ans, "outage");
	static const char *const keys[] = { "id", "endpoint", "state", "manual", "started",
					    "declared", "ended", "resolved", "closed", "announced",
					    "last_notice", "next_notice_due", "expected_end",
					    "cause_fault", "cause_error", "cause", "contact", "fallback",
					    "maintenance_id", "delivered_late", "duration_s",
					    "changed_by" };
	for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
		json_t *v = json_object_get(o, keys[k]);
		char *text = v && !json_is_null(v) ? json_dumps(v, JSON_ENCODE_ANY) : xstrdup("-");
		printf("%-16s %s\n", keys[k], text);
		free(text);
	}
	size_t i, j;
	json_t *n, *snd;
	json_array_foreach(json_object_get(o, "notices"), i, n) {
		printf("\nnotice %lld  %s  %s  to %s (%s)%s%s\n  %s\n", num(n, "id"), jstr(n, "kind"),
		       jstr(n, "created"), jstr(n, "recipients"), jstr(n, "audience"),
		       *str(n, "pending") ? "  pending: " : "", str(n, "pending"), jstr(n, "subject"));
		json_array_foreach(json_object_get(n, "sends"), j, snd)
			printf("  %-17s %-8s %-4s %s %s\n", jstr(snd, "at"), jstr(snd, "channel"),
			       json_is_true(json_object_get(snd, "ok")) ? "ok" : "FAIL", jstr(snd, "to"),
			       str(snd, "error"));
	}
	return 0;
}

static int render_maintenance(const json_t *ans)
{
	printf("%-6s %-20s %-17s %-17s %-17s %-24s  %s\n", "ID", "ENDPOINT", "FROM", "TO",
	       "ANNOUNCED", "BY", "REASON");
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(ans, "maintenance"), i, m)
		printf("%-6lld %-20s %-17s %-17s %-17s %-24s  %s\n", num(m, "id"), jstr(m, "endpoint"),
		       jstr(m, "from"), jstr(m, "to"), jstr(m, "announced"), jstr(m, "changed_by"),
		       jstr(m, "reason"));
	return 0;
}

/* One step of a trace as a line of words. */
static void render_step(const json_t *st)
{
	const char *ev = str(st, "event");
	char text[512] = "";
	size_t n = 0;
#define ADD(...) (n += (size_t)snprintf(text + n, n < sizeof(text) ? sizeof(text) - n : 0, __VA_ARGS__))
	if (strcmp(ev, "accepted") == 0) {
		ADD("from %s", str(st, "from"));
		if (json_is_true(json_object_get(st, "dead_letter")))
			ADD(", dead letter: %s", str(st, "reason"));
		else
			ADD(", routed to %s", str(st, "routed_to"));
	} else if (strcmp(ev, "quarantined") == 0) {
		ADD("from %s: %s: %s (%s)", str(st, "from"), str(st, "error"), str(st, "reason"),
		    str(st, "file"));
	} else if (strcmp(ev, "issued") == 0) {
		ADD("by the broker to %s, answering envelope %s", str(st, "to"), str(st, "refers"));
	} else if (strcmp(ev, "receipt") == 0) {
		ADD("message %lld (%s) to %s", num(st, "message"), str(st, "type"), str(st, "to"));
	} else if (strcmp(ev, "duplicate") == 0) {
		ADD("again from %s: dropped", str(st, "from"));
	} else if (strcmp(ev, "acknowledged") == 0) {
		ADD("%s by message %lld (%s) from %s", str(st, "verdict"), num(st, "message"),
		    str(st, "type"), str(st, "from"));
		if (*str(st, "code"))
			ADD(", %s", str(st, "code"));
	} else { /* attempt, delivered, removals and operators' changes */
		static const char *const refs[][2] = { { "requeued-from", "from message" },
						       { "resent", "as message" },
						       { "resent-from", "a copy of message" } };
		if (*str(st, "fault"))
			ADD("%s: ", str(st, "fault"));
		ADD("%s", str(st, "detail"));
		for (size_t k = 0; k < ARRAY_SIZE(refs); k++)
			if (strcmp(ev, refs[k][0]) == 0)
				ADD("%s%s %lld", n ? "; " : "", refs[k][1], num(st, "message"));
		if (*str(st, "to"))
			ADD("%sto %s", n ? " " : "", str(st, "to"));
		if (*str(st, "by"))
			ADD(" (by %s)", str(st, "by"));
	}
#undef ADD
	printf("  %-20s %-14s %s\n", str(st, "at"), ev, text);
}

static int render_trace(const json_t *ans)
{
	size_t i, j;
	json_t *m, *st;
	json_array_foreach(json_object_get(ans, "messages"), i, m) {
		printf("%smessage %lld  %s  %s  %s  envelope %s  letter %s  %s -> %s  (%s)\n",
		       i ? "\n" : "", num(m, "id"), jstr(m, "source"), jstr(m, "format"),
		       jstr(m, "type"), jstr(m, "envelope"), jstr(m, "letter"), jstr(m, "sender"),
		       jstr(m, "receiver"), jstr(m, "state"));
		if (*jstr(m, "ack") && strcmp(jstr(m, "ack"), "-") != 0)
			printf("  acknowledgement: %s\n", jstr(m, "ack"));
		json_array_foreach(json_object_get(m, "history"), j, st)
			render_step(st);
		if (num(m, "history_cut") > 0)
			printf("  ... %lld more steps not shown\n", num(m, "history_cut"));
	}
	return 0;
}

static int render_requeue(const json_t *ans)
{
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(ans, "results"), i, r) {
		if (json_is_true(json_object_get(r, "ok")))
			printf("requeued %lld: %s%s%s\n", num(r, "id"), str(r, "detail"),
			       *str(r, "warning") ? "; " : "", str(r, "warning"));
		else
			printf("not requeued: %s\n", str(r, "error"));
	}
	return json_is_true(json_object_get(ans, "ok")) ? 0 : 1;
}

static int render_hold(const json_t *ans)
{
	bool held = json_is_true(json_object_get(ans, "held"));
	printf("%s %s%s\n", held ? "held" : "released", str(ans, "endpoint"),
	       json_is_false(json_object_get(ans, "changed"))
		       ? (held ? " (it was held already)" : " (it was not held)")
		       : "");
	return 0;
}

static int render_retry(const json_t *ans)
{
	if (json_is_true(json_object_get(ans, "was_waiting")))
		printf("retrying %s now\n", str(ans, "endpoint"));
	else
		printf("%s was not waiting to retry (%s)\n", str(ans, "endpoint"),
		       str(ans, "state"));
	return 0;
}

static int render_resend(const json_t *ans)
{
	printf("resent %lld to %s as message %lld\n", num(ans, "id"), str(ans, "endpoint"),
	       num(ans, "copy"));
	return 0;
}

static int render_deleted(const json_t *ans)
{
	printf("deleted %lld (it was %s)\n", num(ans, "id"), str(ans, "was"));
	return 0;
}

static const char *done_verb;

static int render_done(const json_t *ans)
{
	printf("%s %lld\n", done_verb, num(ans, "id"));
	return 0;
}

static void set_opt(json_t *req, const char *key, const char *value)
{
	if (value)
		json_object_set_new(req, key, json_string(value));
}

static bool parse_id(const char *s, json_t *req)
{
	char *end;
	long long id = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || id <= 0)
		return false;
	json_object_set_new(req, "id", json_integer(id));
	return true;
}

static bool outage_request(const struct ctl *c, int argc, char **argv, json_t *req,
			   render_fn *render)
{
	if (argc != 3)
		return false;
	const char *action = argv[1];
	json_object_set_new(req, "action", json_string(action));
	*render = render_done;
	if (strcmp(action, "open") == 0) {
		set_opt(req, "endpoint", argv[2]);
		set_opt(req, "cause", c->cause);
		done_verb = "opened outage";
		return c->cause != NULL;
	}
	if (!parse_id(argv[2], req))
		return false;
	if (strcmp(action, "show") == 0) {
		*render = render_outage;
		return true;
	}
	if (strcmp(action, "close") == 0) {
		done_verb = "closed outage";
		return true;
	}
	if (strcmp(action, "set") != 0)
		return false;
	set_opt(req, "expected", c->expected);
	set_opt(req, "contact", c->contact);
	set_opt(req, "cause", c->cause);
	set_opt(req, "fallback", c->fallback);
	done_verb = "updated outage";
	return c->expected || c->contact || c->cause || c->fallback;
}

static bool maintenance_request(const struct ctl *c, int argc, char **argv, json_t *req,
				render_fn *render)
{
	const char *action = argc > 1 ? argv[1] : "list";
	json_object_set_new(req, "action", json_string(action));
	if (strcmp(action, "list") == 0 && argc <= 2) {
		json_object_set_new(req, "all", json_boolean(c->all));
		*render = render_maintenance;
		return true;
	}
	*render = render_done;
	if (strcmp(action, "remove") == 0 && argc == 3) {
		done_verb = "removed planned shutdown";
		return parse_id(argv[2], req);
	}
	if (strcmp(action, "add") != 0 || argc != 3)
		return false;
	set_opt(req, "endpoint", argv[2]);
	set_opt(req, "from", c->from);
	set_opt(req, "to", c->to);
	set_opt(req, "reason", c->reason);
	set_opt(req, "contact", c->contact);
	done_verb = "added planned shutdown";
	return c->from && c->to && c->reason;
}

static bool keep_request(const struct ctl *c, int argc, char **argv, json_t *req,
			 render_fn *render)
{
	json_object_set_new(req, "action", json_string(c->release ? "release" : "keep"));
	*render = render_done;
	done_verb = c->release ? "released" : "kept";
	return argc == 2 && parse_id(argv[1], req);
}

static bool trace_request(const struct ctl *c, int argc, char **argv, json_t *req)
{
	int by = (c->envelope != NULL) + (c->letter != NULL) + (c->bundle != NULL);
	set_opt(req, "envelope", c->envelope);
	set_opt(req, "letter", c->letter);
	set_opt(req, "bundle", c->bundle);
	if (by == 1)
		return argc == 1;
	return by == 0 && argc == 2 && parse_id(argv[1], req);
}

static bool requeue_request(int argc, char **argv, json_t *req)
{
	json_t *ids = json_array();
	json_object_set_new(req, "ids", ids);
	for (int i = 1; i < argc; i++) {
		json_t *one = json_object();
		bool good = parse_id(argv[i], one);
		json_array_append(ids, json_object_get(one, "id"));
		json_decref(one);
		if (!good)
			return false;
	}
	return argc >= 2;
}

/* Builds the request for argv (after options); NULL on a usage error. */
static json_t *build_request(const struct ctl *c, int argc, char **argv, render_fn *render)
{
	const char *cmd = argv[0];
	json_t *req = json_pack("{s:s}", "cmd", cmd);
	if (c->limit > 0)
		json_object_set_new(req, "limit", json_integer(c->limit));
	if (strcmp(cmd, "status") == 0 && argc == 1) {
		*render = render_status;
	} else if (strcmp(cmd, "queue") == 0 && argc == 2) {
		json_object_set_new(req, "endpoint", json_string(argv[1]));
		*render = render_queue;
	} else if (strcmp(cmd, "dead") == 0 && argc == 1) {
		*render = render_dead;
	} else if (strcmp(cmd, "quarantine") == 0 && argc <= 2) {
		if (argc == 2)
			json_object_set_new(req, "endpoint", json_string(argv[1]));
		*render = render_quarantine;
	} else if (strcmp(cmd, "acks") == 0 && argc <= 2 && !(c->overdue && c->negative)) {
		if (argc == 2)
			json_object_set_new(req, "endpoint", json_string(argv[1]));
		json_object_set_new(req, "overdue", json_boolean(c->overdue));
		json_object_set_new(req, "negative", json_boolean(c->negative));
		*render = render_acks;
	} else if (strcmp(cmd, "keep") == 0 && keep_request(c, argc, argv, req, render)) {
		/* built */
	} else if (strcmp(cmd, "outages") == 0 && argc == 1) {
		json_object_set_new(req, "all", json_boolean(c->all));
		*render = render_outages;
	} else if (strcmp(cmd, "outage") == 0 && outage_request(c, argc, argv, req, render)) {
		/* built */
	} else if (strcmp(cmd, "maintenance") == 0 &&
		   maintenance_request(c, argc, argv, req, render)) {
		/* built */
	} else if (strcmp(cmd, "trace") == 0 && trace_request(c, argc, argv, req)) {
		*render = render_trace;
	} else if (strcmp(cmd, "requeue") == 0 && requeue_request(argc, argv, req)) {
		*render = render_requeue;
	} else if ((strcmp(cmd, "hold") == 0 || strcmp(cmd, "release") == 0) && argc == 2) {
		json_object_set_new(req, "endpoint", json_string(argv[1]));
		*render = render_hold;
	} else if (strcmp(cmd, "retry") == 0 && argc == 2) {
		json_object_set_new(req, "endpoint", json_string(argv[1]));
		*render = render_retry;
	} else if (strcmp(cmd, "resend") == 0 && argc == 2 && parse_id(argv[1], req)) {
		*render = render_resend;
	} else if (strcmp(cmd, "delete") == 0 && argc == 2 && c->reason &&
		   parse_id(argv[1], req)) {
		set_opt(req, "reason", c->reason);
		*render = render_deleted;
	} else {
		json_decref(req);
		return NULL;
	}
	return req;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "limit", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "all", no_argument, NULL, 'a' },
		{ "release", no_argument, NULL, 'r' },
		{ "overdue", no_argument, NULL, 'O' },
		{ "negative", no_argument, NULL, 'G' },
		{ "from", required_argument, NULL, 'F' },
		{ "to", required_argument, NULL, 'T' },
		{ "reason", required_argument, NULL, 'R' },
		{ "contact", required_argument, NULL, 'C' },
		{ "cause", required_argument, NULL, 'K' },
		{ "expected-downtime", required_argument, NULL, 'E' },
		{ "fallback", required_argument, NULL, 'B' },
		{ "envelope", required_argument, NULL, 'N' },
		{ "letter", required_argument, NULL, 'L' },
		{ "bundle", required_argument, NULL, 'U' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct ctl c = { 0 };
	int o;
	signal(SIGPIPE, SIG_IGN); /* a daemon that closed early is an error, not a signal */
	while ((o = getopt_long(argc, argv, "c:s:n:jh", opts, NULL)) != -1) {
		switch (o) {
		case 'c': c.config = optarg; break;
		case 's': c.socket = optarg; break;
		case 'n': c.limit = strtol(optarg, NULL, 10); break;
		case 'j': c.json = true; break;
		case 'a': c.all = true; break;
		case 'r': c.release = true; break;
		case 'O': c.overdue = true; break;
		case 'G': c.negative = true; break;
		case 'F': c.from = optarg; break;
		case 'T': c.to = optarg; break;
		case 'R': c.reason = optarg; break;
		case 'C': c.contact = optarg; break;
		case 'K': c.cause = optarg; break;
		case 'E': c.expected = optarg; break;
		case 'B': c.fallback = optarg; break;
		case 'N': c.envelope = optarg; break;
		case 'L': c.letter = optarg; break;
		case 'U': c.bundle = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	render_fn render = NULL;
	json_t *req = optind < argc ? build_request(&c, argc - optind, argv + optind, &render) : NULL;
	if (!req) {
		usage(stderr);
		return 2;
	}
	_cleanup_free_ char *path = socket_path(&c);
	json_t *ans = path ? request(path, req) : NULL;
	json_decref(req);
	if (!ans)
		return 3;
	int rc = 0;
	if (!json_is_true(json_object_get(ans, "ok"))) {
		fprintf(stderr, "edibrokerctl: %s\n", str(ans, "error"));
		rc = 1;
	}
	if (c.json) {
		json_dumpf(ans, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		putchar('\n');
	} else if (rc == 0 || json_object_get(ans, "results")) {
		int r = render(ans); /* a requeue shows what did go, too */
		rc = rc ? rc : r;
	}
	json_decref(ans);
	return rc;
}
