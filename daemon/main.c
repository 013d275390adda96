/*
 * main.c - edibrokerd: command line, signals and the event loop.
 *
 *   edibrokerd -c FILE            run in the foreground, log to stderr
 *   edibrokerd --check-config FILE validate FILE and exit (0 = valid)
 *   edibrokerd --reload PID       ask the edibrokerd running as PID to reload
 *                                 (the unit's ExecReload: no /bin/kill needed)
 *   edibrokerd --list-keys        every configuration key, "section.key"
 *   edibrokerd --print-config FILE the effective configuration, defaults
 *                                 included, secrets redacted
 *
 * Signals: SIGTERM/SIGINT stop accepting, finish the in-flight commit and
 * exit 0; SIGHUP reloads the config (a bad file is rejected with file:line
 * and the running config stays). Exit codes: 0 clean stop, 1 start-up
 * failure, 78 (EX_CONFIG) bad configuration.
 */
#include "daemon/broker.h"
#include "base/strset.h"
#include "conf/config.h"
#include "transport/transport.h"
#include "base/log.h"
#include "notice/notice.h"
#include "notice/notify.h"
#include "store/store.h"
#include "base/sdnotify.h"
#include "codecs/base/mem.h"
#include "codecs/xmlsafe.h"
#include "codecs/xsd.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EX_CONFIG 78
#define READY_GRACE_MS 5000 /* READY=1 waits this long at most for slow shares */

#ifndef EDIBROKER_VERSION
#define EDIBROKER_VERSION "0.1.0"
#endif

struct daemon {
	struct event_base *base;
	struct broker *broker;
	char *config_path;
	int verbose;
	int exit_code;
	bool stopping;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: edibrokerd -c FILE\n"
		   "       edibrokerd --check-config FILE\n"
		   "       edibrokerd --reload PID\n"
		   "       edibrokerd --list-keys\n"
		   "       edibrokerd --print-config FILE\n"
		   "\n"
		   "  -c, --config FILE        run with this configuration (foreground)\n"
		   "      --check-config FILE  validate the configuration and exit\n"
		   "      --reload PID         make the edibrokerd running as PID reload its\n"
		   "                           configuration (SIGHUP), and exit\n"
		   "      --list-keys          print every configuration key as section.key\n"
		   "      --print-config FILE  print the effective configuration of FILE, defaults\n"
		   "                           included, secrets redacted\n"
		   "  -v, --verbose            log debug messages\n"
		   "  -V, --version            print the version\n");
}

/* What the loader had to say about a valid file (a secret others can
 * read), once per load. */
static void log_warnings(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->nwarnings; i++)
		log_warn("event=config-warning warning=\"%s\"", cfg->warnings[i]);
}

/* What the configuration needs of the system (a spool's file_group): the
 * transports' blocking checks, before the event loop runs. */
static int check_system(const struct config *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < cfg->nendpoints; i++) {
		const struct endpoint_conf *ep = &cfg->endpoints[i];
		const struct transport_ops *ops = transport_find(ep->transport);
		int r = ops && ops->check ? ops->check(ep, cfg, err, errlen) : 0;
		if (r < 0)
			return r;
	}
	for (size_t i = 0; transport_at(i); i++) {
		const struct transport_ops *ops = transport_at(i);
		int r = ops->check_config ? ops->check_config(cfg, err, errlen) : 0;
		if (r < 0)
			return r;
	}
	return 0;
}

/* Prints the warnings from index `from` on and returns how many there are
 * now: the checks after loading may add their own, and each is said once. */
static size_t print_warnings(const struct config *cfg, size_t from)
{
	for (size_t i = from; i < cfg->nwarnings; i++)
		fprintf(stderr, "warning: %s\n", cfg->warnings[i]);
	return cfg->nwarnings;
}

/* A server store: it can be reached with these settings, and its schema
 * is one this program can use (changing nothing). err gets what was found,
 * or why not. SQLite: nothing to check here (its file is the daemon's). */
static int check_store(const struct config *cfg, char *err, size_t errlen)
{
	err[0] = '\0';
	if (strcmp(cfg->store_backend, "postgresql") != 0)
		return 0;
	struct store_options o = { .url = cfg->store_url, .password = cfg->store_password,
				   .node = cfg->store_node, .check_only = true,
				   .wait_ms = 10000 };
	struct store *s = store_open(cfg->store_backend, cfg->state_dir, &o, err, errlen);
	if (!s)
		return -EIO;
	int64_t have = 0, want = 0;
	int r = store_schema_version(s, &have, &want);
	if (r < 0)
		snprintf(err, errlen, "store: %s", store_last_error(s));
	else if (have < want)
		snprintf(err, errlen, "store: postgresql schema %lld, upgraded to %lld when a daemon "
			 "starts; node %s", (long long)have, (long long)want, cfg->store_node);
	else
		snprintf(err, errlen, "store: postgresql schema %lld (current), node %s",
			 (long long)have, cfg->store_node);
	store_close(s);
	return r;
}

static int check_config(const char *path)
{
	struct config *cfg = NULL;
	char err[1024];
	int r = config_load(path, transport_schemas(), &cfg, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "%s\n", err);
		return EX_CONFIG;
	}
	size_t shown = print_warnings(cfg, 0);
	if (check_system(cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		config_free(cfg);
		return EX_CONFIG;
	}
	struct notice_templates *t = notice_templates_load(cfg->language, cfg->template_dir, err,
							   sizeof(err));
	if (!t) {
		fprintf(stderr, "%s: %s\n", path, err);
		config_free(cfg);
		return EX_CONFIG;
	}
	notice_templates_free(t);
	struct codec_schemas *schemas = NULL;
	if (broker_load_schemas(cfg, &schemas, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", path, err);
		config_free(cfg);
		return EX_CONFIG;
	}
	codec_schemas_unref(schemas);
	print_warnings(cfg, shown);
	r = check_store(cfg, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", path, err);
		config_free(cfg);
		return 1; /* the file is fine; the database is not reachable or not ready */
	}
	printf("%s: ok (%zu endpoints)%s%s\n", path, cfg->nendpoints, err[0] ? "; " : "", err);
	config_free(cfg);
	return 0;
}

/* Reads no secret and no file a key names: the output would redact them
 * anyway, and whoever may read the config may see what it says. */
static int print_config(const char *path)
{
	struct config *cfg = NULL;
	char err[1024];
	if (config_load_opts(path, transport_schemas(), CONFIG_NO_FILES, &cfg, err,
			     sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return EX_CONFIG;
	}
	int r = config_print(cfg, stdout);
	config_free(cfg);
	if (r < 0)
		fprintf(stderr, "edibrokerd: --print-config: %s\n", strerror(-r));
	return r < 0 ? 1 : 0;
}

static void print_key(const char *section, const char *key, const struct conf_key *row, void *arg)
{
	_cleanup_free_ char *name = xasprintf("%s.%s", section, key);
	if (strset_add(arg, name)) /* a key two transports share is one key */
		printf("%s\n", name);
}

static int list_keys(void)
{
	struct strset *seen = strset_new();
	config_walk_keys(transport_schemas(), print_key, seen);
	strset_free(seen);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* The executable of process pid is an edibrokerd (its file name; " (deleted)"
 * after an upgrade replaced it). */
static bool is_edibrokerd(pid_t pid)
{
	char link[64], exe[PATH_MAX];
	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	ssize_t n = readlink(link, exe, sizeof(exe) - 1);
	if (n < 0)
		return false;
	exe[n] = '\0';
	char *deleted = strstr(exe, " (deleted)");
	if (deleted && deleted[10] == '\0')
		*deleted = '\0';
	const char *base = strrchr(exe, '/');
	return strcmp(base ? base + 1 : exe, "edibrokerd") == 0;
}

/* SIGHUP to the daemon systemd knows as $MAINPID, after making sure it is
 * one: a stale or recycled PID must not be hung up on. Exit codes: 0 sent,
 * 1 no such process or not an edibrokerd, 2 usage. */
static int reload_daemon(const char *arg)
{
	char *end;
	errno = 0;
	long pid = strtol(arg, &end, 10);
	if (errno || *arg == '\0' || *end != '\0' || pid <= 1 || pid > INT_MAX) {
		fprintf(stderr, "edibrokerd: --reload: '%s' is not a process id\n", arg);
		return 2;
	}
	if (!is_edibrokerd((pid_t)pid)) {
		fprintf(stderr, "edibrokerd: --reload: process %ld is not an edibrokerd%s\n", pid,
			kill((pid_t)pid, 0) < 0 && errno == ESRCH ? " (no such process)" : "");
		return 1;
	}
	if (kill((pid_t)pid, SIGHUP) < 0) {
		fprintf(stderr, "edibrokerd: --reload: process %ld: %s\n", pid, strerror(errno));
		return 1;
	}
	return 0;
}

/* Every inbox is open and every folder made (or READY_GRACE_MS passed). */
static void on_started(void *arg)
{
	struct daemon *d = arg;
	sdnotify_ready();
	log_notice("event=ready version=%s config=%s", EDIBROKER_VERSION, d->config_path);
}

static void on_stopped(void *arg)
{
	struct daemon *d = arg;
	sdnotify_watchdog_stop();
	event_base_loopbreak(d->base);
}

static void on_terminate(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	if (d->stopping)
		return; /* already finishing what is in flight */
	d->stopping = true;
	log_notice("event=stopping signal=%s", strsignal((int)sig));
	sdnotify_stopping();
	/* The loop keeps running (and pinging the watchdog) until the work in
	 * flight is done or stop_timeout has passed. */
	broker_shutdown(d->broker, on_stopped, d);
}

static void on_reload(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	if (d->stopping)
		return;
	sdnotify_reloading();
	struct config *cfg = NULL;
	char err[1024];
	if (config_load(d->config_path, transport_schemas(), &cfg, err, sizeof(err)) < 0) {
		log_err("event=reload-rejected state=running-config-kept error=\"%s\"", err);
		_cleanup_free_ char *status = xasprintf("reload rejected: %s", err);
		sdnotify_status(status);
	} else {
		int level = d->verbose ? LOG_DEBUG : cfg->log_level;
		log_warnings(cfg);
		if (broker_reload(d->broker, cfg, err, sizeof(err)) < 0) {
			log_err("event=reload-rejected state=running-config-kept error=\"%s: %s\"",
				d->config_path, err);
			_cleanup_free_ char *status = xasprintf("reload rejected: %s", err);
			sdnotify_status(status);
		} else {
			log_setup(level, isatty(STDERR_FILENO));
		}
	}
	sdnotify_ready();
}

static int run(struct daemon *d)
{
	struct config *cfg = NULL;
	char err[1024];
	if (config_load(d->config_path, transport_schemas(), &cfg, err, sizeof(err)) < 0) {
		log_crit("event=config-invalid error=\"%s\"", err);
		return EX_CONFIG;
	}
	if (check_system(cfg, err, sizeof(err)) < 0) {
		log_crit("event=config-invalid error=\"%s\"", err);
		config_free(cfg);
		return EX_CONFIG;
	}
	log_setup(d->verbose ? LOG_DEBUG : cfg->log_level, isatty(STDERR_FILENO));
	log_warnings(cfg);
	d->base = event_base_new();
	if (!d->base)
		return 1;
	d->broker = broker_new(d->base, cfg, err, sizeof(err));
	if (!d->broker) {
		log_crit("event=start-failed error=\"%s\"", err);
		return 1;
	}
	if (broker_start(d->broker, err, sizeof(err)) < 0) {
		log_crit("event=start-failed error=\"%s\"", err);
		return 1;
	}
	struct event *sigs[] = {
		evsignal_new(d->base, SIGTERM, on_terminate, d),
		evsignal_new(d->base, SIGINT, on_terminate, d),
		evsignal_new(d->base, SIGHUP, on_reload, d),
	};
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		event_add(sigs[i], NULL);
	sdnotify_watchdog_start(d->base);
	broker_when_started(d->broker, READY_GRACE_MS, on_started, d);
	event_base_dispatch(d->base);
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		event_free(sigs[i]);
	bool abandoned = broker_free(d->broker);
	if (abandoned) {
		/* A thread stuck in the kernel on a frozen share: exit around it.
		 * exit() would run handlers (a leak checker among them) that may
		 * wait for it; everything of ours is already closed. */
		log_notice("event=stopped state=work-abandoned");
		_exit(d->exit_code);
	}
	event_base_free(d->base);
	log_notice("event=stopped");
	return d->exit_code;
}

/* glibc gives each thread that allocates its own malloc arena (up to 8 per
 * core), and an arena keeps its freed pages: with the decode, store and
 * delivery lanes that was 32-38 of a 100k burst's 64-73 MB peak, against
 * 13-15 MB of live heap. Two arenas measured 53 MB, one 41 MB, at the same
 * throughput; two keep one lane's allocations off the loop's lock. An
 * operator's MALLOC_ARENA_MAX wins (glibc read it at start). */
static void limit_arenas(void)
{
	if (!getenv("MALLOC_ARENA_MAX"))
		mallopt(M_ARENA_MAX, 2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", required_argument, NULL, 'k' },
		{ "reload", required_argument, NULL, 'r' },
		{ "list-keys", no_argument, NULL, 'L' },
		{ "print-config", required_argument, NULL, 'P' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct daemon d = { 0 };
	const char *check = NULL;
	int c;
	log_init();
	while ((c = getopt_long(argc, argv, "c:vVh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': d.config_path = optarg; break;
		case 'k': check = optarg; break;
		case 'r': return reload_daemon(optarg);
		case 'L': return list_keys();
		case 'P': return print_config(optarg);
		case 'v': d.verbose = 1; break;
		case 'V': printf("edibrokerd %s\n", EDIBROKER_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (check)
		return check_config(check);
	if (!d.config_path || optind != argc) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	limit_arenas();
	xmlsafe_init();
	notify_global_init(); /* before any worker thread starts */
	return run(&d);
}
