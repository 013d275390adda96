/*
 * test_config.c - config_load() over real files in a temporary directory:
 * the issues' snippets, defaults, every class of error with its exact
 * FILE:LINE, durations and sizes, list continuation versus a repeated key,
 * relative paths, reload checks, and the shipped example configuration
 * (read relative to the repository root, the test's working directory).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "conf/config.h"
#include "codecs/base/mem.h"
#include "base/fileio.h"
#include "tests/unit/testutil.h"
#include "transport/spool.h"
#include "transport/transport.h"

/* The spool settings of an endpoint, and of the [spool] section. */
#define SP(ep) ((const struct spool_conf *)(ep)->tconf)
#define SPOOL(cfg) ((const struct spool_section *)config_section((cfg), spool_transport.schema))

static char dir[PATH_MAX];
static char conf[PATH_MAX + 32];
static char err[512];
static const struct conf_schema *const *schemas; /* what config_load() is given */

static void setup(void)
{
	testutil_mkdtemp(dir, sizeof(dir), "/tmp/test_config.XXXXXX");
	snprintf(conf, sizeof(conf), "%s/edibroker.conf", dir);
	schemas = transport_schemas();
	/* A zone database of our own, so timezone checks do not depend on tzdata. */
	char zone[PATH_MAX + 64];
	snprintf(zone, sizeof(zone), "%s/zoneinfo/Europe", dir);
	cr_assert_eq(mkdir_p(zone, 0755), 0);
	str_copy(zone + strlen(zone), "/Copenhagen", sizeof(zone) - strlen(zone));
	testutil_write_file(zone, "TZif", 4); /* the zone checker looks for the tzfile(5) magic */
	snprintf(zone, sizeof(zone), "%s/zoneinfo", dir);
	setenv("TZDIR", zone, 1);
}

static void teardown(void)
{
	testutil_rm_rf(dir);
}

TestSuite(config, .init = setup, .fini = teardown);

static void write_bytes(const char *path, const char *text, size_t len)
{
	testutil_write_file(path, text, len);
}

static int load(const char *text, struct config **cfg)
{
	write_bytes(conf, text, strlen(text));
	err[0] = '\0';
	return config_load(conf, schemas, cfg, err, sizeof(err));
}

static struct config *load_ok(const char *text)
{
	struct config *cfg = NULL;
	int r = load(text, &cfg);
	cr_assert_eq(r, 0, "config_load: %d %s", r, err);
	cr_assert_not_null(cfg);
	return cfg;
}

/* Expects config_load to fail with exactly "<conf>:<where>". */
static void expect_error(const char *text, const char *where)
{
	struct config *cfg = (struct config *)&cfg; /* must stay untouched */
	char want[sizeof(err) + sizeof(conf)];
	int r = load(text, &cfg);
	snprintf(want, sizeof(want), "%s:%s", conf, where);
	cr_expect_eq(r, -EINVAL, "for:\n%s", text);
	cr_expect_str_eq(err, want, "for:\n%s", text);
	cr_expect_eq(cfg, (struct config *)&cfg, "out changed on failure");
}

struct error_case {
	const char *text;
	const char *where;
};

static void expect_errors(const struct error_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++)
		expect_error(cases[i].text, cases[i].where);
}

/* The snippet of issue 2, verbatim, with its inline comments. */
static const char issue2[] =
	"[broker]\n"
	"state_dir = /var/lib/edibroker        ; SQLite database and internal files\n"
	"\n"
	"[endpoint aarhus-kommune]             ; one section per endpoint, \"endpoint NAME\"\n"
	"kind = municipality                   ; hospital | municipality | other\n"
	"transport = spool\n"
	"gln = 5790001234567, 5790001234574    ; the location numbers this endpoint owns\n"
	"inbox = /srv/edi/aarhus/in            ; the endpoint drops files here for the broker\n"
	"outbox = /srv/edi/aarhus/out          ; the broker delivers files here\n"
	"contact = EOJ systemansvarlig, +45 ..., eoj@example.dk\n"
	"\n"
	"[delivery]\n"
	"retry_initial = 5s                    ; first retry after a failed delivery\n"
	"retry_max = 10m                       ; cap of the exponential backoff (with jitter)\n"
	"drain_rate = 0                        ; msg/s per endpoint after an outage; 0 = no limit\n"
	"\n"
	"[routing]\n"
	"default_endpoint =                    ; optional: where messages for GLNs no endpoint owns\n"
	"                                      ; go (e.g. the region's gateway to the national network)\n";

Test(config, issue2_snippet_loads_with_documented_values)
{
	struct config *cfg = load_ok(issue2);

	cr_assert_str_eq(cfg->state_dir, "/var/lib/edibroker");
	cr_assert_eq(cfg->nendpoints, 1);
	const struct endpoint_conf *ep = config_endpoint(cfg, "aarhus-kommune");
	cr_assert_not_null(ep);
	cr_assert_eq(ep->line, 4);
	cr_assert_eq(ep->kind, ENDPOINT_MUNICIPALITY);
	cr_assert_str_eq(ep->transport, "spool");
	cr_assert_eq(ep->ngln, 2);
	cr_assert_str_eq(ep->gln[0], "5790001234567");
	cr_assert_str_eq(ep->gln[1], "5790001234574");
	cr_assert_str_eq(SP(ep)->inbox, "/srv/edi/aarhus/in");
	cr_assert_str_eq(SP(ep)->outbox, "/srv/edi/aarhus/out");
	cr_assert_str_eq(ep->contact, "EOJ systemansvarlig, +45 ..., eoj@example.dk");
	cr_assert_str_eq(SP(ep)->quarantine, "/var/lib/edibroker/quarantine/aarhus-kommune");
	cr_assert_str_eq(ep->organisation, "aarhus-kommune");
	cr_assert_eq(cfg->retry_initial_ms, 5000);
	cr_assert_eq(cfg->retry_max_ms, 600000);
	cr_assert_eq(cfg->drain_rate, 0.0);
	cr_assert_null(cfg->default_endpoint);
	config_free(cfg);
}

/* The snippet of issue 3, verbatim, plus a complete endpoint. */
static const char issue3[] =
	"[outage]\n"
	"threshold = 2h                   ; downtime before the first notice\n"
	"probe_interval = 1m              ; how often an idle or failing endpoint is checked\n"
	"down_after = 3                   ; consecutive failed deliveries or probes -> DOWN\n"
	"update_interval = 1h             ; status updates while it lasts\n"
	"send_window = 08:00-22:00        ; notices falling outside wait; 00:00-24:00 = always\n"
	"support_hours = mon-thu 08:00-15:45, fri 08:00-14:00\n"
	"timezone = Europe/Copenhagen\n"
	"language = da                    ; da | en\n"
	"\n"
	"[notify]\n"
	"smtp_url = smtp://127.0.0.1:25\n"
	"mail_from = edi-drift@region.example\n"
	"support_recipients = edi-support@region.example\n"
	"oncall_recipients = drift-vagt@region.example\n"
	"hospital_recipients = sygehuse-edi@region.example\n"
	"municipality_recipients = kommuner-edi@region.example\n"
	"webhook_url =                    ; optional, receives every notice as JSON, beside e-mail\n"
	"fallback_command =               ; optional, run with the notice when e-mail keeps failing\n"
	"closed_days = 12-24, 12-31, 06-05 ; extra days the EDI support desk is closed (MM-DD)\n"
	"status_dir = /var/lib/edibroker/status   ; status.html and status.json\n"
	"\n"
	"[endpoint aarhus]                ; gains:\n"
	"recipients = eoj-drift@aarhus.example    ; the endpoint's own function mailbox\n"
	"pickup_timeout = 15m             ; spool: outbox files not collected by then = endpoint down\n"
	"kind = municipality\n"
	"gln = 5790001234567\n"
	"inbox = /srv/in\n"
	"outbox = /srv/out\n";

Test(config, issue3_snippet_loads_with_documented_values)
{
	struct config *cfg = load_ok(issue3);

	cr_assert_eq(cfg->outage_threshold_ms, 7200000);
	cr_assert_eq(cfg->probe_interval_ms, 60000);
	cr_assert_eq(cfg->down_after, 3);
	cr_assert_eq(cfg->update_interval_ms, 3600000);
	cr_assert_str_eq(cfg->send_window, "08:00-22:00");
	cr_assert_str_eq(cfg->support_hours, "mon-thu 08:00-15:45, fri 08:00-14:00");
	cr_assert_str_eq(cfg->timezone, "Europe/Copenhagen");
	cr_assert_str_eq(cfg->language, "da");
	cr_assert_str_eq(cfg->smtp_url, "smtp://127.0.0.1:25");
	cr_assert_str_eq(cfg->mail_from, "edi-drift@region.example");
	cr_assert_eq(cfg->nsupport_recipients, 1);
	cr_assert_str_eq(cfg->support_recipients[0], "edi-support@region.example");
	cr_assert_str_eq(cfg->oncall_recipients[0], "drift-vagt@region.example");
	cr_assert_str_eq(cfg->hospital_recipients[0], "sygehuse-edi@region.example");
	cr_assert_str_eq(cfg->municipality_recipients[0], "kommuner-edi@region.example");
	cr_assert_null(cfg->webhook_url);
	cr_assert_null(cfg->fallback_command);
	cr_assert_str_eq(cfg->closed_days, "12-24, 12-31, 06-05");
	cr_assert_str_eq(cfg->status_dir, "/var/lib/edibroker/status");
	const struct endpoint_conf *ep = config_endpoint(cfg, "aarhus");
	cr_assert_not_null(ep);
	cr_assert_eq(ep->nrecipients, 1);
	cr_assert_str_eq(ep->recipients[0], "eoj-drift@aarhus.example");
	cr_assert_eq(SP(ep)->pickup_timeout_ms, 900000);
	config_free(cfg);
}

Test(config, multi_line_gln_list_with_comments)
{
	struct config *cfg = load_ok("[endpoint a]\n"
				     "kind = hospital\n"
				     "gln = 5790000000001,        ; first\n"
				     "      5790000000002         ; no comma needed at a line end\n"
				     "\n"
				     "; a comment line inside the list\n"
				     "\t5790000000003, 5790000000004,\n"
				     "      5790000000005\n"
				     "inbox = /i\n"
				     "outbox = /o\n");
	const struct endpoint_conf *ep = &cfg->endpoints[0];

	cr_assert_eq(ep->ngln, 5);
	cr_assert_str_eq(ep->gln[0], "5790000000001");
	cr_assert_str_eq(ep->gln[1], "5790000000002");
	cr_assert_str_eq(ep->gln[2], "5790000000003");
	cr_assert_str_eq(ep->gln[3], "5790000000004");
	cr_assert_str_eq(ep->gln[4], "5790000000005");
	cr_assert_str_eq(SP(ep)->inbox, "/i");
	config_free(cfg);
}

Test(config, defaults)
{
	struct config *cfg = load_ok("");

	cr_assert_str_eq(cfg->state_dir, "/var/lib/edibroker");
	cr_assert_str_eq(cfg->control_socket, "/var/lib/edibroker/control.sock");
	cr_assert_not(cfg->control_socket_explicit, "a default gives way to RUNTIME_DIRECTORY");
	cr_assert_str_eq(cfg->operator_group, "edibroker-admin");
	cr_assert_eq(cfg->control_idle_timeout_ms, 60000);
	cr_assert_eq(cfg->control_max_connections, 32);
	cr_assert_eq(cfg->dead_retention_ms, 30LL * 86400000);
	cr_assert_eq(cfg->quarantine_retention_ms, 30LL * 86400000);
	cr_assert_str_eq(cfg->broker_id, "EDIBROKER");
	cr_assert_null(cfg->broker_gln, "no GLN unless configured");
	cr_assert_str_eq(cfg->store_backend, "sqlite");
	cr_assert_eq(cfg->max_message_size, 16 << 20);
	cr_assert_eq(cfg->log_level, LOG_INFO);
	cr_assert_eq(cfg->retry_initial_ms, 5000);
	cr_assert_eq(cfg->retry_max_ms, 600000);
	cr_assert_eq(cfg->drain_rate, 0.0);
	cr_assert_eq(cfg->batch_max, 256);
	cr_assert_null(cfg->default_endpoint);
	cr_assert_eq(SPOOL(cfg)->rescan_interval_ms, 30000);
	cr_assert_eq(cfg->retention_ms, 7LL * 86400000);
	cr_assert_eq(cfg->history_ms, 90LL * 86400000);
	cr_assert_eq(cfg->store_max_size, 0);
	cr_assert_eq(cfg->outage_threshold_ms, 7200000);
	cr_assert_eq(cfg->probe_interval_ms, 60000);
	cr_assert_eq(cfg->down_after, 3);
	cr_assert_eq(cfg->update_interval_ms, 3600000);
	cr_assert_str_eq(cfg->send_window, "08:00-22:00");
	cr_assert_str_eq(cfg->support_hours, "mon-thu 08:00-15:45, fri 08:00-14:00");
	cr_assert_str_eq(cfg->timezone, "Europe/Copenhagen");
	cr_assert_str_eq(cfg->language, "da");
	cr_assert_null(cfg->template_dir);
	cr_assert_null(cfg->smtp_url);
	cr_assert_null(cfg->mail_from);
	cr_assert_null(cfg->smtp_starttls, "unset: yes with credentials, else try (notify.c)");
	cr_assert_eq(cfg->nsupport_recipients, 0);
	cr_assert_null(cfg->closed_days);
	cr_assert_str_eq(cfg->status_dir, "/var/lib/edibroker/status");
	cr_assert_eq(cfg->nendpoints, 0, "no endpoints is a valid, idle broker");
	config_free(cfg);
}

Test(config, endpoint_defaults_and_derived_paths)
{
	struct config *cfg = load_ok("[broker]\nstate_dir = /srv/eb\n"
				     "[endpoint x.y_z-1]\nkind = other\ngln = 5790000000012\ninbox = /i\noutbox = /o\n");
	const struct endpoint_conf *ep = config_endpoint(cfg, "x.y_z-1");

	cr_assert_not_null(ep);
	cr_assert_str_eq(cfg->control_socket, "/srv/eb/control.sock");
	cr_assert_str_eq(cfg->status_dir, "/srv/eb/status");
	cr_assert_str_eq(ep->transport, "spool");
	cr_assert_str_eq(SP(ep)->quarantine, "/srv/eb/quarantine/x.y_z-1");
	cr_assert_str_eq(ep->organisation, "x.y_z-1");
	cr_assert_eq(SP(ep)->create_dirs, false);
	cr_assert_eq(SP(ep)->pickup_timeout_ms, 0);
	cr_assert_null(ep->contact);
	cr_assert_eq(ep->nrecipients, 0);
	cr_assert_null(config_endpoint(cfg, "x"));
	config_free(cfg);
}

Test(config, broker_gln_is_a_location_number)
{
	struct config *cfg = load_ok("[broker]\ngln = 5790000000000\n");
	cr_assert_str_eq(cfg->broker_gln, "5790000000000");
	config_free(cfg);
	expect_error("[broker]\ngln = 579 000\n",
		     "2: gln: '579 000' is not a location number (13 digits)");
}

Test(config, structural_errors_name_their_line)
{
	static const struct error_case cases[] = {
		{ "[delivery]\nfoo = 1\n", "2: unknown key 'foo' in [delivery]" },
		{ "[endpoint a]\nfoo = 1\n", "2: unknown key 'foo' in [endpoint a]" },
		{ "[broker]\n[bar]\nx = 1\n", "2: unknown section [bar]" },
		{ "; only a comment\n[bar]\n", "2: unknown section [bar]" },
		{ "state_dir = /x\n", "1: key 'state_dir' before the first [section]" },
		{ "[broker\n", "1: syntax error (expected 'key = value', '[section]' or a ; comment)" },
		{ "[broker]\nstate_dir\n",
		  "2: syntax error (expected 'key = value', '[section]' or a ; comment)" },
		{ "[endpoint]\n", "1: endpoint section without a name (write [endpoint NAME])" },
		{ "[endpoint a/b]\n",
		  "1: invalid endpoint name 'a/b' (1-64 letters, digits, '.', '_' or '-')" },
		{ "[endpoint ..]\n",
		  "1: invalid endpoint name '..' (1-64 letters, digits, '.', '_' or '-')" },
		{ "[endpoint a]\nkind = other\n\n[endpoint a]\n",
		  "4: duplicate endpoint 'a' (first at line 1)" },
	};
	expect_errors(cases, ARRAY_SIZE(cases));
}

Test(config, duplicate_keys_versus_continuation)
{
	static const struct error_case cases[] = {
		{ "[delivery]\nretry_initial = 5s\nretry_initial = 6s\n",
		  "3: duplicate key 'retry_initial' in [delivery] (first at line 2)" },
		/* a list key written twice at column 0 is a repetition, not a continuation */
		{ "[endpoint a]\nkind = other\ngln = 5790000000012\ngln = 5790000000029\n",
		  "4: duplicate key 'gln' in [endpoint a] (first at line 3)" },
		/* a section may reopen, its keys stay unique */
		{ "[delivery]\nretry_max = 1m\n[broker]\n[delivery]\nretry_max = 2m\n",
		  "5: duplicate key 'retry_max' in [delivery] (first at line 2)" },
		{ "[endpoint a]\ncontact = Jens\n  +45 12 34 56 78\n",
		  "3: contact: only lists may continue on an indented line" },
		{ "[endpoint a]\ngln = 5790000000012,\nkind = other\n", "2: gln: empty item in list" },
		{ "[endpoint a]\nkind = other\ngln = 5790000000012,", "3: gln: empty item in list" },
		{ "[endpoint a]\ngln = 5790000000012,\n[broker]\n", "2: gln: empty item in list" },
		{ "[endpoint a]\ngln = 5790000000012,,5790000000029\n", "2: gln: empty item in list" },
		{ "[endpoint a]\ngln = 5790000000012\n  , 5790000000029\n", "3: gln: empty item in list" },
		{ "[endpoint a]\ngln = 5790000000012\n  2 3\n",
		  "3: gln: '2 3' is not a location number (13 digits)" },
		/* an indented key after a key continues it (ini.h) */
		{ "[endpoint a]\ngln = 5790000000012\n  inbox = /i\n",
		  "3: gln: 'inbox = /i' is not a location number (13 digits)" },
	};
	expect_errors(cases, ARRAY_SIZE(cases));
}

Test(config, indented_key_right_after_section_header_is_a_key)
{
	struct config *cfg = load_ok("[delivery]\n   retry_initial = 2s\nretry_max = 4s\n");

	cr_assert_eq(cfg->retry_initial_ms, 2000);
	cr_assert_eq(cfg->retry_max_ms, 4000);
	config_free(cfg);
	expect_error("[delivery]\n   retry_initial = 2s\n   retry_max = 4s\n",
		     "3: retry_initial: only lists may continue on an indented line");
}

Test(config, value_errors_name_their_line)
{
	static const struct error_case cases[] = {
		{ "[delivery]\nretry_initial = abc\n",
		  "2: retry_initial: invalid duration 'abc' (use e.g. 500ms, 90s, 15m, 2h)" },
		{ "[delivery]\nretry_initial = 99ms\n",
		  "2: retry_initial: duration must be at least 100ms" },
		{ "[delivery]\nretry_max = 2d\n", "2: retry_max: duration must be at most 1d" },
		{ "[endpoint a]\nkind = clinic\n",
		  "2: kind: must be hospital, municipality or other" },
		{ "[endpoint a]\nkind = other\ntransport = ftp\n",
		  "3: transport: must be spool, http or zmq" },
		{ "[delivery]\nbatch_max = 0\n", "2: batch_max: must be at least 1" },
		{ "[delivery]\nbatch_max = 10001\n", "2: batch_max: must be at most 10000" },
		{ "[delivery]\nbatch_max = 12x\n", "2: batch_max: invalid number '12x'" },
		{ "[delivery]\ndrain_rate = -1\n", "2: drain_rate: must be between 0 and 1000000" },
		{ "[delivery]\ndrain_rate = fast\n", "2: drain_rate: invalid number 'fast'" },
		{ "[outage]\ndown_after = 0\n", "2: down_after: must be at least 1" },
		{ "[broker]\nmax_message_size = 1023\n",
		  "2: max_message_size: size must be at least 1K" },
		{ "[broker]\nmax_message_size = 101M\n",
		  "2: max_message_size: size must be at most 100M" },
		{ "[broker]\nmax_message_size = 16MB\n",
		  "2: max_message_size: invalid size '16MB' (use e.g. 65536, 512K, 16M, 1G)" },
		{ "[store]\nmax_size = 1K\n", "2: max_size: size must be at least 1M (or 0 for off)" },
		{ "[broker]\nlog_level = verbose\n",
		  "2: log_level: must be err, warning, notice, info or debug" },
		{ "[broker]\nstore = mysql\n", "2: store: must be sqlite or postgresql" },
		{ "[store]\nbackend = mysql\n", "2: backend: must be sqlite or postgresql" },
		{ "[broker]\nstate_dir =\n", "2: state_dir: must not be empty" },
		{ "[broker]\nid = EDI BROKER\n",
		  "2: id: 'EDI BROKER' is not a valid id (1-35 printable characters, no spaces)" },
		{ "[outage]\nlanguage = fr\n", "2: language: must be da or en" },
		{ "[notify]\nsmtp_starttls = maybe\n", "2: smtp_starttls: must be no, try or yes" },
		{ "[endpoint a]\ncreate_dirs = maybe\n", "2: create_dirs: must be yes or no" },
		{ "[endpoint a]\npickup_timeout = 50ms\n",
		  "2: pickup_timeout: duration must be at least 100ms (or 0 for off)" },
		{ "[endpoint a]\ngln = 123456789012345678901234567890123456\n",
		  "2: gln: '123456789012345678901234567890123456' is not a location number (13 digits)" },
		{ "[endpoint a]\nrecipients = ok@x.example, eoj-drift\n",
		  "2: recipients: 'eoj-drift' is not an e-mail address" },
		{ "[notify]\nmail_from = <a@b.example>\n",
		  "2: mail_from: '<a@b.example>' is not an e-mail address" },
		{ "[notify]\nsmtp_url = mail.example\n",
		  "2: smtp_url: not an smtp:// or smtps:// URL (value not shown: it may hold a "
		  "password)" },
		{ "[notify]\nwebhook_url = ftp://x.example/\n",
		  "2: webhook_url: not an http:// or https:// URL (value not shown: it may hold a "
		  "password)" },
		{ "[outage]\nsend_window = 8-22\n",
		  "2: send_window: bad time \"8\" (want HH:MM)" },
		{ "[outage]\nsend_window = 08:00-08:00\n",
		  "2: send_window: \"08:00-08:00\" is empty (00:00-24:00 means always)" },
		{ "[outage]\nsupport_hours = mon-thu 08:00-15:45, fre 08:00-14:00\n",
		  "2: support_hours: unknown day \"fre\" (want mon, tue, wed, thu, fri, sat or sun)" },
		{ "[notify]\nclosed_days = 12-24, 02-30\n",
		  "2: closed_days: \"02-30\" is not a day of the year (MM-DD)" },
		{ "[outage]\ntimezone = ../../etc/passwd\n",
		  "2: timezone: \"../../etc/passwd\" is not a time zone name (want e.g. Europe/Copenhagen)" },
	};
	expect_errors(cases, ARRAY_SIZE(cases));
}

Test(config, unknown_time_zone)
{
	char want[2 * PATH_MAX + 256];

	snprintf(want, sizeof(want),
		 "2: timezone: unknown time zone \"Europe/Copenhagn\" (not found under %s/zoneinfo)", dir);
	expect_error("[outage]\ntimezone = Europe/Copenhagn\n", want);
}

Test(config, time_rules_that_are_valid)
{
	struct config *cfg = load_ok("[outage]\n"
				     "send_window = 00:00 - 24:00\n"
				     "support_hours = Mon 07:00-16:00,tue-fri 08:00-15:00, sat 10:00-12:00\n"
				     "[notify]\nclosed_days = 02-29,12-24\n");

	cr_assert_str_eq(cfg->send_window, "00:00 - 24:00");
	cr_assert_str_eq(cfg->closed_days, "02-29,12-24");
	config_free(cfg);
}

/* A complete spool endpoint for the validation cases: 5 lines. */
#define EP(name, gln, dir)                                                                         \
	"[endpoint " name "]\nkind = other\ngln = " gln "\ninbox = /" dir "/in\noutbox = /" dir    \
	"/out\n"

Test(config, whole_config_errors_name_their_lines)
{
	static const struct error_case cases[] = {
		{ "[endpoint a]\nkind = other\ninbox = /i\noutbox = /o\n",
		  "1: endpoint 'a': missing required key 'gln'" },
		{ "[endpoint a]\nkind = other\ngln =\ninbox = /i\noutbox = /o\n",
		  "3: endpoint 'a': gln must not be empty" },
		{ "[endpoint a]\ngln = 5790000000012\ninbox = /i\noutbox = /o\n",
		  "1: endpoint 'a': missing required key 'kind'" },
		{ "[broker]\n[endpoint a]\n", "2: endpoint 'a': missing required key 'kind'" },
		{ "[endpoint a]\nkind = other\ngln = 5790000000012\noutbox = /o\n",
		  "1: endpoint 'a': missing required key 'inbox' (transport spool)" },
		{ "[endpoint a]\nkind = other\ngln = 5790000000012\ninbox = /i\noutbox =\n",
		  "5: endpoint 'a': outbox must not be empty (transport spool)" },
		{ EP("a", "5790000000012, 5790000000029", "a") EP("b", "5790000000036,\n  5790000000029", "b"),
		  "9: endpoint 'b': gln 5790000000029 is already owned by endpoint 'a' (line 3)" },
		{ EP("a", "5790000000012, 5790000000012", "a"), "3: endpoint 'a': gln 5790000000012 is already owned by endpoint 'a' (line 3)" },
		{ EP("a", "5790000000012", "a") "[routing]\ndefault_endpoint = gateway\n",
		  "7: default_endpoint: no endpoint named 'gateway'" },
		{ EP("a", "5790000000012", "a") EP("b", "5790000000029", "a"),
		  "9: endpoint 'b': inbox /a/in is already the inbox of endpoint 'a' (line 4)" },
		{ "[endpoint a]\nkind = other\ngln = 5790000000012\ninbox = /x\noutbox = /x/\n",
		  "5: endpoint 'a': outbox /x is already the inbox of endpoint 'a' (line 4)" },
		{ EP("a", "5790000000012", "a") "quarantine = /a/in\n",
		  "6: endpoint 'a': quarantine /a/in is already the inbox of endpoint 'a' (line 4)" },
		{ "[delivery]\nretry_initial = 20s\nretry_max = 10s\n",
		  "3: retry_max: must be at least retry_initial (20s)" },
		{ "[delivery]\nretry_initial = 20m\n", "2: retry_initial: must not exceed retry_max (10m)" },
		{ "[store]\nretention = 100d\n", "2: retention: must not exceed history (90d)" },
		{ "[notify]\nsmtp_url = smtp://localhost\n",
		  "2: smtp_url: mail_from is needed to send e-mail" },
	};
	expect_errors(cases, ARRAY_SIZE(cases));
}

Test(config, endpoints_may_share_a_quarantine)
{
	struct config *cfg = load_ok(EP("a", "5790000000012", "a") "quarantine = /q\n" EP("b", "5790000000029", "b")
					     "quarantine = /q\n");

	cr_assert_str_eq(SP(&cfg->endpoints[0])->quarantine, "/q");
	cr_assert_str_eq(SP(&cfg->endpoints[1])->quarantine, "/q");
	config_free(cfg);
}

Test(config, durations)
{
	static const struct {
		const char *text;
		int64_t ms;
	} good[] = {
		{ "100ms", 100 },	 { "500ms", 500 },     { "90s", 90000 },    { "15m", 900000 },
		{ "2h", 7200000 },	 { "7d", 604800000 },  { "5", 5000 },	    { "0", 0 },
		{ "1.5h", 5400000 },	 { "0.5s", 500 },      { "2.25m", 135000 }, { "0.001s", 1 },
		{ "106751991167d", 106751991167LL * 86400000 }, /* the largest that fits */
	};
	static const char *const bad[] = {
		"",    "abc", "5x",    "-1s",  "+1s", "1.",	  ".5s",  "5 s", " 5s",
		"5s ", "1h30m", "0.5ms", "0.0005s", "1e3s", "5S", "99999999999999999999d",
		"106751991168d", "1.0000000001s",
	};

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		int64_t ms = -1;
		cr_expect_eq(config_parse_duration(good[i].text, &ms), 0, "%s", good[i].text);
		cr_expect_eq(ms, good[i].ms, "%s", good[i].text);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int64_t ms = 42;
		cr_expect_eq(config_parse_duration(bad[i], &ms), -EINVAL, "'%s'", bad[i]);
		cr_expect_eq(ms, 42, "'%s' changed the out-parameter", bad[i]);
	}
}

Test(config, duration_boundary_in_a_file)
{
	struct config *cfg = load_ok("[delivery]\nretry_initial = 100ms\nretry_max = 1.5h\n");

	cr_assert_eq(cfg->retry_initial_ms, 100);
	cr_assert_eq(cfg->retry_max_ms, 5400000);
	config_free(cfg);
	expect_error("[delivery]\nretry_initial = 99ms\n",
		     "2: retry_initial: duration must be at least 100ms");
	expect_error("[spool]\nrescan_interval = 0\n",
		     "2: rescan_interval: duration must be at least 100ms");
}

Test(config, sizes)
{
	static const struct {
		const char *text;
		int64_t bytes;
	} good[] = {
		{ "1024", 1024 },	 { "1K", 1024 },	   { "512k", 512 << 10 },
		{ "16M", 16 << 20 },	 { "16MiB", 16 << 20 },	   { "100M", 100 << 20 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		char text[128];
		snprintf(text, sizeof(text), "[broker]\nmax_message_size = %s\n", good[i].text);
		struct config *cfg = load_ok(text);
		cr_expect_eq(cfg->max_message_size, good[i].bytes, "%s", good[i].text);
		config_free(cfg);
	}
	struct config *cfg = load_ok("[store]\nmax_size = 2T\n");
	cr_assert_eq(cfg->store_max_size, 2LL << 40);
	config_free(cfg);
	expect_error("[broker]\nmax_message_size = 1G\n",
		     "2: max_message_size: size must be at most 100M");
	expect_error("[broker]\nmax_message_size = 1.5M\n",
		     "2: max_message_size: invalid size '1.5M' (use e.g. 65536, 512K, 16M, 1G)");
	expect_error("[store]\nmax_size = 99999999999T\n",
		     "2: max_size: invalid size '99999999999T' (use e.g. 65536, 512K, 16M, 1G)");
}

Test(config, relative_paths_resolve_against_the_working_directory)
{
	char cwd[PATH_MAX], want[PATH_MAX + 64];

	cr_assert_eq(chdir(dir), 0);
	cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
	struct config *cfg = load_ok("[broker]\nstate_dir = ./var/state\n"
				     "[outage]\ntemplate_dir = ../tpl\n"
				     "[endpoint a]\nkind = other\ngln = 5790000000012\n"
				     "inbox = spool/in\noutbox = ./spool//out/\nquarantine = q\n");
	const struct endpoint_conf *ep = &cfg->endpoints[0];

	snprintf(want, sizeof(want), "%s/var/state", cwd);
	cr_assert_str_eq(cfg->state_dir, want);
	snprintf(want, sizeof(want), "%s/var/state/control.sock", cwd);
	cr_assert_str_eq(cfg->control_socket, want);
	snprintf(want, sizeof(want), "%s/var/state/status", cwd);
	cr_assert_str_eq(cfg->status_dir, want);
	snprintf(want, sizeof(want), "%s/../tpl", cwd);
	cr_assert_str_eq(cfg->template_dir, want, "'..' is kept: resolving it could cross a symlink");
	snprintf(want, sizeof(want), "%s/spool/in", cwd);
	cr_assert_str_eq(SP(ep)->inbox, want);
	snprintf(want, sizeof(want), "%s/spool/out", cwd);
	cr_assert_str_eq(SP(ep)->outbox, want);
	snprintf(want, sizeof(want), "%s/q", cwd);
	cr_assert_str_eq(SP(ep)->quarantine, want);
	snprintf(want, sizeof(want), "%s/edibroker.conf", cwd);
	cr_assert_str_eq(cfg->path, want);
	config_free(cfg);
}

Test(config, control_section_and_retention_keys)
{
	struct config *cfg = load_ok("[broker]\ncontrol_socket = /run/x/c.sock\n"
				     "[control]\noperator_group = EDI Drift\nidle_timeout = 5s\n"
				     "max_connections = 4\n"
				     "[store]\ndead_retention = 0\n[quarantine]\nretention = 2h\n");
	cr_assert(cfg->control_socket_explicit);
	cr_assert_str_eq(cfg->operator_group, "EDI Drift", "an LDAP group may hold a space");
	cr_assert_eq(cfg->control_idle_timeout_ms, 5000);
	cr_assert_eq(cfg->control_max_connections, 4);
	cr_assert_eq(cfg->dead_retention_ms, 0, "0 keeps dead-letter bodies");
	cr_assert_eq(cfg->quarantine_retention_ms, 7200000);
	config_free(cfg);

	static const char *const bad[][2] = {
		{ "[control]\noperator_group = a:b\n", ":2: operator_group: " },
		{ "[control]\nmax_connections = 0\n", ":2: max_connections: " },
		{ "[control]\nidle_timeout = 10ms\n", ":2: idle_timeout: " },
		{ "[quarantine]\nretention = soon\n", ":2: retention: " },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		cfg = NULL;
		cr_assert_eq(load(bad[i][0], &cfg), -EINVAL, "%s", bad[i][0]);
		cr_assert(strstr(err, bad[i][1]) != NULL, "%s: %s", bad[i][0], err);
	}
}

Test(config, control_socket_path_limit)
{
	char text[512], long_dir[200];

	memset(long_dir, 'd', 120);
	long_dir[0] = '/';
	long_dir[120] = '\0';
	snprintf(text, sizeof(text), "[broker]\nstate_dir = %s\n", long_dir);
	struct config *cfg = NULL;
	cr_assert_eq(load(text, &cfg), -EINVAL);
	cr_assert(strstr(err, ":2: control_socket: ") != NULL, "%s", err);
	cr_assert(strstr(err, "is longer than 107 bytes") != NULL, "%s", err);
}

/* Appends "key " to a 256-byte buffer. */
static void collect(const char *key, void *arg)
{
	char *buf = arg;
	size_t n = strlen(buf);
	snprintf(buf + n, 256 - n, "%s ", key);
}

Test(config, nonreloadable_changes)
{
	struct config *a = load_ok("[broker]\nstate_dir = /a\n[delivery]\nretry_max = 1m\n");
	struct config *same = load_ok("[broker]\nstate_dir = /a\n[delivery]\nretry_max = 1m\n"
				      EP("new", "5790000000012", "n"));
	struct config *b = load_ok("[broker]\nstate_dir = /b\n[delivery]\nretry_max = 2m\n");
	struct config *c = load_ok("[broker]\nstate_dir = /a\ncontrol_socket = /a/control.sock\n"
				   "id = OTHER\nmax_message_size = 1M\nlog_level = debug\n");
	char keys[256] = "";

	cr_assert_eq(config_nonreloadable_changes(a, same, collect, keys), 0,
		     "endpoints and retry values reload: %s", keys);
	cr_assert_eq(config_nonreloadable_changes(a, b, collect, keys), 2);
	cr_assert_str_eq(keys, "broker.state_dir broker.control_socket ");
	keys[0] = '\0';
	cr_assert_eq(config_nonreloadable_changes(a, c, collect, keys), 1);
	cr_assert_str_eq(keys, "broker.id ", "the same socket written out is no change");
	cr_assert_eq(config_nonreloadable_changes(b, a, NULL, NULL), 2, "warn may be NULL");
	config_free(a);
	config_free(same);
	config_free(b);
	config_free(c);
}

Test(config, example_config_loads)
{
	struct config *cfg = NULL;
	char cwd[PATH_MAX], want[PATH_MAX + 64];
	int r = config_load("config/edibroker.conf.example", schemas, &cfg, err, sizeof(err));

	cr_assert_eq(r, 0, "%s", err);
	cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
	snprintf(want, sizeof(want), "%s/var/state", cwd);
	cr_assert_str_eq(cfg->state_dir, want);
	cr_assert_eq(cfg->nendpoints, 2);
	const struct endpoint_conf *h = config_endpoint(cfg, "demo-hospital");
	const struct endpoint_conf *m = config_endpoint(cfg, "demo-municipality");
	cr_assert(h && m);
	cr_assert_eq(h->kind, ENDPOINT_HOSPITAL);
	cr_assert_eq(h->ngln, 2);
	cr_assert_str_eq(h->gln[0], "5790000143054");
	cr_assert_str_eq(h->gln[1], "5790002515200");
	cr_assert_eq(m->kind, ENDPOINT_MUNICIPALITY);
	cr_assert_eq(m->ngln, 2);
	cr_assert_str_eq(m->gln[0], "5790000143055");
	cr_assert_str_eq(m->gln[1], "5790002508226");
	snprintf(want, sizeof(want), "%s/var/spool/demo-hospital/in", cwd);
	cr_assert_str_eq(SP(h)->inbox, want);
	snprintf(want, sizeof(want), "%s/var/spool/demo-municipality/out", cwd);
	cr_assert_str_eq(SP(m)->outbox, want);
	cr_assert(SP(h)->create_dirs && SP(m)->create_dirs);
	/* make run finds the repository's schemas (read only when an endpoint asks) */
	snprintf(want, sizeof(want), "%s/data/xsd/oioxml", cwd);
	cr_assert_str_eq(cfg->xsd_dir, want);
	cr_assert_eq(h->xsd, XSD_OFF);
	cr_assert_eq(m->xsd, XSD_OFF);
	cr_assert_str_eq(cfg->smtp_url, "smtp://127.0.0.1:2525");
	cr_assert_eq(cfg->nmunicipality_recipients, 2);
	cr_assert_str_eq(cfg->municipality_recipients[1], "kommune-drift@region.example");
	config_free(cfg);
}

Test(config, crlf_and_byte_order_mark)
{
	struct config *cfg = load_ok("\xEF\xBB\xBF[broker]\r\nstate_dir = /x   ; c\r\n"
				     "[endpoint a]\r\nkind = other\r\ngln = 5790000000012,\r\n  5790000000029 ; c\r\n"
				     "inbox = /i\r\noutbox = /o\r\n");

	cr_assert_str_eq(cfg->state_dir, "/x");
	cr_assert_eq(cfg->endpoints[0].ngln, 2);
	cr_assert_str_eq(cfg->endpoints[0].gln[1], "5790000000029");
	config_free(cfg);
}

/* Line numbers after a long line must still be right. */
Test(config, long_lines_keep_line_numbers)
{
	size_t n = 400, len = 64 + n * 16;
	char *text = xmalloc(len + 128);
	size_t at = (size_t)snprintf(text, len, "[endpoint a]\nkind = other\ngln = ");

	for (size_t i = 0; i < n; i++)
		at += (size_t)snprintf(text + at, len - at, "%s57900%08zu", i ? ", " : "", i);
	snprintf(text + at, len + 128 - at, "\ninbox = /i\noutbox = /o\nbogus = 1\n");
	struct config *cfg = NULL;
	expect_error(text, "6: unknown key 'bogus' in [endpoint a]");
	text[strlen(text) - strlen("bogus = 1\n")] = '\0';
	cfg = load_ok(text);
	cr_assert_eq(cfg->endpoints[0].ngln, n);
	cr_assert_str_eq(cfg->endpoints[0].gln[n - 1], "5790000000399");
	config_free(cfg);
	free(text);
}

Test(config, line_too_long_and_nul_byte)
{
	size_t len = 70000;
	char *text = xmalloc(len + 32);
	struct config *cfg = NULL;

	memcpy(text, "[broker]\nid = ", 14);
	memset(text + 14, 'x', len);
	memcpy(text + 14 + len, "\n", 2);
	expect_error(text, "2: line longer than 65536 bytes (lists may continue on indented lines)");
	free(text);

	static const char nul[] = "[broker]\nid = A\0B\n";
	write_bytes(conf, nul, sizeof(nul) - 1);
	cr_assert_eq(config_load(conf, schemas, &cfg, err, sizeof(err)), -EINVAL);
	char want[sizeof(conf) + 64];
	snprintf(want, sizeof(want), "%s:2: NUL byte in the line", conf);
	cr_assert_str_eq(err, want);
}

Test(config, missing_file)
{
	struct config *cfg = NULL;
	char path[PATH_MAX + 32], want[PATH_MAX + 96];

	snprintf(path, sizeof(path), "%s/nope.conf", dir);
	cr_assert_eq(config_load(path, schemas, &cfg, err, sizeof(err)), -ENOENT);
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
	cr_assert_str_eq(err, want);
	cr_assert_null(cfg);
	cr_assert_eq(config_load(path, schemas, &cfg, NULL, 0), -ENOENT, "err may be NULL");
}

Test(config, endpoint_kind_names)
{
	cr_assert_str_eq(endpoint_kind_name(ENDPOINT_HOSPITAL), "hospital");
	cr_assert_str_eq(endpoint_kind_name(ENDPOINT_MUNICIPALITY), "municipality");
	cr_assert_str_eq(endpoint_kind_name(ENDPOINT_OTHER), "other");
	cr_assert_str_eq(endpoint_kind_name((enum endpoint_kind)42), "unknown");
}

Test(config, log_levels_and_booleans)
{
	struct config *cfg = load_ok("[broker]\nlog_level = warning\n"
				     "[endpoint a]\nkind = hospital\ngln = 5790000000012\ninbox = /i\noutbox = /o\n"
				     "create_dirs = YES\n"
				     "[endpoint b]\nkind = other\ngln = 5790000000029\ninbox = /j\noutbox = /p\n"
				     "create_dirs = off\norganisation =\n");

	cr_assert_eq(cfg->log_level, LOG_WARNING);
	cr_assert_eq(SP(&cfg->endpoints[0])->create_dirs, true);
	cr_assert_eq(SP(&cfg->endpoints[1])->create_dirs, false);
	cr_assert_str_eq(cfg->endpoints[1].organisation, "b", "empty means the default");
	config_free(cfg);
	config_free(NULL);
}

/* ---- transports declare their keys -------------------------------------- */

/* A second transport, as a test double: endpoint keys of its own (one
 * required, a list, a folder) and a [fake] section with a key that needs a
 * restart. */
struct fake_conf {
	char *url;
	char **hosts;
	size_t nhosts;
	char *staging;
};

struct fake_section {
	int64_t pool;
	int64_t timeout_ms;
};

static const struct conf_key fake_endpoint_keys[] = {
	{ CONF_KEY(struct fake_conf, "url", CONF_STR, url),
	  .flags = CONF_RELOAD | CONF_OPTIONAL | CONF_REQUIRED },
	{ CONF_LIST_KEY(struct fake_conf, "hosts", hosts), .flags = CONF_RELOAD },
	{ CONF_KEY(struct fake_conf, "staging", CONF_PATH, staging),
	  .def = "fake/" CONF_ENDPOINT_NAME, .flags = CONF_RELOAD | CONF_FOLDER },
};

static const struct conf_key fake_section_keys[] = {
	{ CONF_KEY(struct fake_section, "pool", CONF_INT, pool), .def = "4", .min = 1, .max = 64 },
	{ CONF_KEY(struct fake_section, "timeout", CONF_DURATION, timeout_ms), .def = "10s",
	  .min = 100, .max = CONF_HOUR, .flags = CONF_RELOAD },
};

static const struct conf_schema fake_schema = {
	.name = "fake",
	.endpoint_keys = fake_endpoint_keys,
	.nendpoint_keys = ARRAY_SIZE(fake_endpoint_keys),
	.endpoint_size = sizeof(struct fake_conf),
	.section = "fake",
	.section_keys = fake_section_keys,
	.nsection_keys = ARRAY_SIZE(fake_section_keys),
	.section_size = sizeof(struct fake_section),
};

static const struct conf_schema *spool_and_fake[3], *fake_only[2] = { &fake_schema, NULL };

/* After the suite's setup(). */
static void with_fake(void)
{
	spool_and_fake[0] = spool_transport.schema;
	spool_and_fake[1] = &fake_schema;
	schemas = spool_and_fake;
}

#define FAKE(ep) ((const struct fake_conf *)(ep)->tconf)
#define FAKE_SECTION(cfg) ((const struct fake_section *)config_section((cfg), &fake_schema))

Test(config, a_transport_fills_its_own_struct, .init = with_fake)
{
	struct config *cfg = load_ok("[broker]\nstate_dir = /s\n[fake]\ntimeout = 2s\n"
				     "[endpoint f]\nkind = other\ngln = 5790000000012\nurl = x://y ; c\n"
				     "hosts = a,\n  b\ntransport = fake\n"
				     "[endpoint s]\nkind = other\ngln = 5790000000029\ninbox = /i\noutbox = /o\n");
	const struct endpoint_conf *f = config_endpoint(cfg, "f"), *s = config_endpoint(cfg, "s");

	cr_assert_str_eq(f->transport, "fake");
	cr_assert_eq(f->schema, &fake_schema);
	cr_assert_str_eq(FAKE(f)->url, "x://y");
	cr_assert_eq(FAKE(f)->nhosts, 2);
	cr_assert_str_eq(FAKE(f)->hosts[1], "b");
	cr_assert_str_eq(FAKE(f)->staging, "/s/fake/f", "a relative default is under state_dir");
	cr_assert_str_eq(s->transport, "spool", "the first schema is the default transport");
	cr_assert_eq(s->schema, spool_transport.schema);
	cr_assert_str_eq(SP(s)->quarantine, "/s/quarantine/s");
	cr_assert_eq(FAKE_SECTION(cfg)->pool, 4, "a section the file does not write has defaults");
	cr_assert_eq(FAKE_SECTION(cfg)->timeout_ms, 2000);
	cr_assert_eq(SPOOL(cfg)->rescan_interval_ms, 30000);
	cr_assert_null(config_section(cfg, (const struct conf_schema *)&cfg));
	config_free(cfg);
}

Test(config, transport_keys_belong_to_their_transport, .init = with_fake)
{
	static const struct error_case cases[] = {
		{ "[endpoint a]\nkind = other\ngln = 5790000000012\ntransport = fake\nurl = u\ninbox = /i\n",
		  "6: inbox: a key of transport spool, but endpoint 'a' uses transport fake" },
		/* the transport is known before the endpoint's keys are read */
		{ "[endpoint a]\nkind = other\ngln = 5790000000012\ninbox = /i\ntransport = fake\n",
		  "4: inbox: a key of transport spool, but endpoint 'a' uses transport fake" },
		{ EP("a", "5790000000012", "a") "url = u\n",
		  "6: url: a key of transport fake, but endpoint 'a' uses transport spool" },
		{ "[endpoint a]\nkind = other\ngln = 5790000000012\ntransport = fake\n",
		  "1: endpoint 'a': missing required key 'url' (transport fake)" },
		{ "[endpoint a]\nkind = other\ngln = 5790000000012\ntransport = fake\nurl =\n",
		  "5: endpoint 'a': url must not be empty (transport fake)" },
		{ "[endpoint a]\ntransport = fake\nurl = u\nurl = v\n",
		  "4: duplicate key 'url' in [endpoint a] (first at line 3)" },
		{ "[endpoint a]\ntransport = fake\nurl = u\nhosts = a,,b\n", "4: hosts: empty item in list" },
		{ "[endpoint a]\ntransport = fake\nurl = u\nhosts = a,\n[broker]\n",
		  "4: hosts: empty item in list" },
		/* folders have one role whatever transport claims them */
		{ EP("a", "5790000000012", "a") "[endpoint b]\nkind = other\ngln = 5790000000029\ntransport = fake\nurl = u\n"
				    "staging = /a/out\n",
		  "11: endpoint 'b': staging /a/out is already the outbox of endpoint 'a' (line 5)" },
		{ "[fake]\npool = 0\n", "2: pool: must be at least 1" },
		{ "[fake]\nrescan_interval = 1s\n", "2: unknown key 'rescan_interval' in [fake]" },
		{ "[broker]\nrescan_interval = 1s\n", "2: unknown key 'rescan_interval' in [broker]" },
	};
	expect_errors(cases, ARRAY_SIZE(cases));
}

Test(config, unknown_transport_names_the_known_ones, .init = with_fake)
{
	static const struct error_case cases[] = {
		{ "[endpoint a]\nkind = other\ntransport = ftp\n", "3: transport: must be spool or fake" },
		{ "[endpoint a]\nkind = other\ntransport =\n", "3: transport: must not be empty" },
		/* its transport's keys wait for it: the transport line is the error */
		{ "[endpoint a]\nkind = other\ninbox = /i\n  more\nurl = u\ntransport = sftp\n",
		  "6: transport: must be spool or fake" },
		/* an earlier error among the common keys still comes first */
		{ "[endpoint a]\nkind = clinic\ninbox = /i\ntransport = sftp\n",
		  "2: kind: must be hospital, municipality or other" },
		{ "[endpoint a]\ntransport = fake\ntransport = spool\n",
		  "3: duplicate key 'transport' in [endpoint a] (first at line 2)" },
	};
	expect_errors(cases, ARRAY_SIZE(cases));
}

Test(config, spool_keys_need_the_spool_schema)
{
	static const struct error_case cases[] = {
		{ "[spool]\nrescan_interval = 1s\n", "1: unknown section [spool]" },
		{ "[endpoint a]\nkind = other\ngln = 5790000000012\nurl = u\ninbox = /i\n",
		  "5: unknown key 'inbox' in [endpoint a]" },
		{ "[endpoint a]\nkind = other\ngln = 5790000000012\ntransport = spool\n", "4: transport: must be fake" },
	};
	schemas = fake_only;
	expect_errors(cases, ARRAY_SIZE(cases));
	struct config *cfg = load_ok("[endpoint a]\nkind = other\ngln = 5790000000012\nurl = u\n");
	cr_assert_str_eq(cfg->endpoints[0].transport, "fake");
	cr_assert_null(config_section(cfg, spool_transport.schema));
	config_free(cfg);
}

Test(config, nonreloadable_transport_section_keys, .init = with_fake)
{
	struct config *a = load_ok("[fake]\npool = 2\ntimeout = 1s\n[spool]\nrescan_interval = 5s\n");
	struct config *b = load_ok("[fake]\npool = 3\ntimeout = 2s\n[spool]\nrescan_interval = 6s\n");
	struct config *c = load_ok("[fake]\npool = 2\n" EP("new", "5790000000012", "n"));
	char keys[256] = "";

	cr_assert_eq(config_nonreloadable_changes(a, b, collect, keys), 1);
	cr_assert_str_eq(keys, "fake.pool ", "timeout and rescan_interval reload");
	cr_assert_eq(config_nonreloadable_changes(a, c, NULL, NULL), 0);
	config_free(a);
	config_free(b);
	config_free(c);
}

/* Location numbers are 13 digits; a wrong GS1 check digit loads but warns,
 * with the line of the value. may_send_for takes the same values. */
Test(config, location_numbers_and_their_check_digits)
{
	struct config *cfg = load_ok("[endpoint relay]\nkind = other\n"
				     "gln = 5790000143054\n"             /* line 3: check digit ok */
				     "may_send_for = 5790002515200,\n"   /* line 4: ok */
				     "  5790000143055\n"                 /* line 5: wrong check digit */
				     "inbox = /i\noutbox = /o\n");
	const struct endpoint_conf *ep = config_endpoint(cfg, "relay");
	cr_assert_eq(ep->nmay_send_for, 2);
	cr_assert_str_eq(ep->may_send_for[1], "5790000143055");
	cr_assert_eq(cfg->nwarnings, 1, "%zu warnings", cfg->nwarnings);
	cr_assert(strstr(cfg->warnings[0], "edibroker.conf:5: ") != NULL, "%s", cfg->warnings[0]);
	cr_assert(strstr(cfg->warnings[0], "5790000143055 has a wrong GS1 check digit") != NULL,
		  "%s", cfg->warnings[0]);
	config_free(cfg);
	const struct error_case cases[] = {
		{ "[endpoint a]\nkind = other\ngln = 579000014305\ninbox = /i\noutbox = /o\n",
		  "3: gln: '579000014305' is not a location number (13 digits)" },
		{ "[endpoint a]\nkind = other\ngln = 579000014305X\ninbox = /i\noutbox = /o\n",
		  "3: gln: '579000014305X' is not a location number (13 digits)" },
		{ "[endpoint a]\nkind = other\ngln = 5790000143054\nmay_send_for = a b\n",
		  "4: may_send_for: 'a b' is neither a location number nor a network id (1-35 "
		  "printable characters, no spaces)" },
	};
	expect_errors(cases, ARRAY_SIZE(cases));
}

/* ---- secrets (issue 8) ---------------------------------------------------- */

/* Writes text to dir/name with exactly mode; returns the path (static). */
static const char *secret_file(const char *name, const char *text, mode_t mode)
{
	static char path[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	testutil_write_file(path, text, strlen(text));
	cr_assert_eq(chmod(path, mode), 0);
	return path;
}

static int load_mode(const char *text, mode_t mode, unsigned flags, struct config **cfg)
{
	write_bytes(conf, text, strlen(text));
	cr_assert_eq(chmod(conf, mode), 0);
	err[0] = '\0';
	return config_load_opts(conf, schemas, flags, cfg, err, sizeof(err));
}

Test(config, secret_files_are_read_without_their_newline)
{
	char text[3 * PATH_MAX];
	const char *pw = secret_file("smtp.pw", "s3cret pass\n", 0640);
	char pwpath[PATH_MAX + 64];
	str_copy(pwpath, pw, sizeof(pwpath));
	const char *tok = secret_file("hook.token", "tok-123\r\n", 0600);
	snprintf(text, sizeof(text),
		 "[notify]\nsmtp_url = smtp://mail.example:587\nsmtp_user = edibroker\n"
		 "mail_from = edi@region.example\n"
		 "smtp_password_file = %s\nwebhook_url = https://hooks.example/x\n"
		 "webhook_token_file = %s\n",
		 pwpath, tok);
	struct config *cfg = NULL;
	cr_assert_eq(load_mode(text, 0644, 0, &cfg), 0, "%s", err);
	cr_assert_str_eq(cfg->smtp_password, "s3cret pass");
	cr_assert_str_eq(cfg->webhook_token, "tok-123");
	cr_assert_str_eq(cfg->smtp_password_file, pwpath);
	cr_assert_eq(cfg->nwarnings, 0, "no secret in the config itself: %s",
		     cfg->nwarnings ? cfg->warnings[0] : "");
	config_free(cfg);
}

Test(config, the_store_backend_old_key_new_key_and_what_postgresql_needs)
{
	struct config *cfg = load_ok("[broker]\nstore = sqlite\n");
	cr_assert_str_eq(cfg->store_backend, "sqlite", "the old key still works");
	cr_assert_not_null(cfg->store_node, "the node defaults to the host name");
	cr_assert_gt(strlen(cfg->store_node), 0);
	cr_assert_null(strchr(cfg->store_node, '.'), "the short name");
	cr_assert_eq(cfg->store_lease_ms, 15000);
	config_free(cfg);
	cfg = load_ok("[store]\nbackend = postgresql\n"
		      "url = postgresql://edibroker@127.0.0.1:5432/edibroker\n"
		      "lease = 9s\nnode = node-a\n");
	cr_assert_str_eq(cfg->store_backend, "postgresql");
	cr_assert_str_eq(cfg->store_url, "postgresql://edibroker@127.0.0.1:5432/edibroker");
	cr_assert_eq(cfg->store_lease_ms, 9000);
	cr_assert_str_eq(cfg->store_node, "node-a");
	cr_assert_null(cfg->store_password);
	config_free(cfg);
	cfg = load_ok("[broker]\nstore = postgresql\n[store]\nbackend = postgresql\n"
		      "url = host=db1,db2 dbname=edi target_session_attrs=read-write\n");
	cr_assert_str_eq(cfg->store_backend, "postgresql", "old and new agree");
	config_free(cfg);
	static const struct error_case cases[] = {
		{ "[store]\nbackend = postgresql\n", "2: backend = postgresql needs [store] url" },
		{ "[broker]\nstore = sqlite\n[store]\nbackend = postgresql\nurl = x=y\n",
		  "4: backend: postgresql, but [broker] store says sqlite (drop the old key)" },
		{ "[store]\nlease = 1s\n", "2: lease: duration must be at least 3s" },
		{ "[store]\nurl = mysql://u:secret@h/db\n",
		  "2: url: not a postgresql:// URI or a key=value connection string (value not shown: "
		  "it may hold a password)" },
		{ "[store]\nnode = node a\n",
		  "2: node: 'node a' is not a valid id (1-35 printable characters, no spaces)" },
	};
	expect_errors(cases, ARRAY_SIZE(cases));
}

Test(config, the_store_password_file_is_read_like_other_secrets)
{
	char text[2 * PATH_MAX];
	const char *pw = secret_file("pg.password", "pg s3cret\n", 0640);
	snprintf(text, sizeof(text),
		 "[store]\nbackend = postgresql\nurl = postgresql://edibroker@db/edi\n"
		 "password_file = %s\n", pw);
	struct config *cfg = NULL;
	cr_assert_eq(load_mode(text, 0644, 0, &cfg), 0, "%s", err);
	cr_assert_str_eq(cfg->store_password, "pg s3cret");
	config_free(cfg);
}

Test(config, a_secret_file_open_to_others_refuses_the_config)
{
	char text[3 * PATH_MAX], want[4 * PATH_MAX];
	const mode_t modes[] = { 0644, 0604, 0602, 0601 };
	for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
		const char *pw = secret_file("smtp.pw", "hunter2\n", modes[i]);
		snprintf(text, sizeof(text), "[notify]\n\nsmtp_password_file = %s\n", pw);
		struct config *cfg = NULL;
		cr_assert_eq(load_mode(text, 0640, 0, &cfg), -EINVAL, "mode %o", modes[i]);
		cr_assert_null(cfg);
		snprintf(want, sizeof(want), "%s:3: smtp_password_file: %s is open to others (mode %04o)",
			 conf, pw, (unsigned)modes[i]);
		cr_assert(strncmp(err, want, strlen(want)) == 0, "%s", err);
		cr_assert_null(strstr(err, "hunter2"));
	}
	/* the same for the webhook's token */
	const char *tok = secret_file("hook.token", "tok-123\n", 0644);
	snprintf(text, sizeof(text), "[notify]\nwebhook_token_file = %s\n", tok);
	struct config *cfg = NULL;
	cr_assert_eq(load_mode(text, 0600, 0, &cfg), -EINVAL);
	cr_assert(strstr(err, ":2: webhook_token_file: ") && strstr(err, "open to others"), "%s", err);
}

Test(config, bad_secret_files_name_the_key_not_the_secret)
{
	char text[2 * PATH_MAX];
	struct {
		const char *content;
		const char *why;
	} cases[] = {
		{ "", "must hold one non-empty line" },
		{ "\n", "must hold one non-empty line" },
		{ "hunter2\nsecond line\n", "must hold one non-empty line" },
		{ "hunter2\x01x", "without control characters" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *pw = secret_file("smtp.pw", cases[i].content, 0600);
		snprintf(text, sizeof(text), "[notify]\nsmtp_password_file = %s\n", pw);
		struct config *cfg = NULL;
		cr_assert_eq(load_mode(text, 0600, 0, &cfg), -EINVAL);
		cr_assert(strstr(err, ":2: smtp_password_file: ") && strstr(err, cases[i].why),
			  "%zu: %s", i, err);
		cr_assert_null(strstr(err, "hunter2"), "%s", err);
	}
	char *big = xmalloc(5000);
	memset(big, 'x', 4999);
	big[4999] = '\0';
	const char *pw = secret_file("smtp.pw", big, 0600);
	free(big);
	snprintf(text, sizeof(text), "[notify]\nsmtp_password_file = %s\n", pw);
	struct config *cfg = NULL;
	cr_assert_eq(load_mode(text, 0600, 0, &cfg), -EINVAL);
	cr_assert(strstr(err, "longer than 4096 bytes"), "%s", err);
	cr_assert_null(strstr(err, "xxxx"), "%s", err);
	snprintf(text, sizeof(text), "[notify]\nsmtp_password_file = %s/missing\n", dir);
	cr_assert_eq(load_mode(text, 0600, 0, &cfg), -EINVAL);
	cr_assert(strstr(err, ":2: smtp_password_file: ") && strstr(err, "No such file"), "%s", err);
	snprintf(text, sizeof(text), "[notify]\nsmtp_password_file = %s\n", dir);
	cr_assert_eq(load_mode(text, 0600, 0, &cfg), -EINVAL);
	cr_assert(strstr(err, "is not a regular file"), "%s", err);
}

Test(config, inline_password_and_file_are_one_too_many)
{
	char text[2 * PATH_MAX];
	const char *pw = secret_file("smtp.pw", "from-file\n", 0600);
	snprintf(text, sizeof(text),
		 "[notify]\nsmtp_password = hunter2\nsmtp_password_file = %s\n", pw);
	struct config *cfg = NULL;
	cr_assert_eq(load_mode(text, 0600, 0, &cfg), -EINVAL);
	char want[2 * PATH_MAX + 256];
	snprintf(want, sizeof(want),
		 "%s:3: smtp_password_file: smtp_password is set too (line 2); keep one of them",
		 conf);
	cr_assert_str_eq(err, want);
}

Test(config, a_client_without_files_reads_no_secret)
{
	char text[5 * PATH_MAX + 256];
	/* open to others, or not there at all: a client that wants only the
	 * socket path reads neither */
	const char *pw = secret_file("smtp.pw", "hunter2\n", 0644);
	snprintf(text, sizeof(text),
		 "[broker]\ncontrol_socket = %s/ctl.sock\n[notify]\nsmtp_password_file = %s\n"
		 "webhook_token_file = %s/missing\nsmtp_ca_file = %s/missing.pem\n",
		 dir, pw, dir, dir);
	struct config *cfg = NULL;
	cr_assert_eq(load_mode(text, 0644, CONFIG_NO_FILES, &cfg), 0, "%s", err);
	cr_assert_null(cfg->smtp_password);
	cr_assert_null(cfg->webhook_token);
	char want[2 * PATH_MAX + 256];
	snprintf(want, sizeof(want), "%s/ctl.sock", dir);
	cr_assert_str_eq(cfg->control_socket, want);
	config_free(cfg);
	cr_assert_eq(load_mode(text, 0644, 0, &cfg), -EINVAL, "the daemon does read them");
}

Test(config, inline_secrets_readable_by_others_draw_a_warning)
{
	static const char text[] =
		"[notify]\n"
		"smtp_url = smtp://ops:pw%40x@mail.example:587\n"
		"smtp_password = hunter2\n"
		"webhook_url = https://hooks.example/x?token=abc\n"
		"mail_from = edi@region.example\n";
	struct config *cfg = NULL;
	cr_assert_eq(load_mode(text, 0644, 0, &cfg), 0, "%s", err);
	cr_assert_eq(cfg->nwarnings, 3);
	char want[2 * PATH_MAX + 256];
	snprintf(want, sizeof(want), "%s:2: smtp_url: credentials in the URL", conf);
	cr_assert(strncmp(cfg->warnings[0], want, strlen(want)) == 0, "%s", cfg->warnings[0]);
	snprintf(want, sizeof(want), "%s:3: smtp_password: a secret in a file others can read "
		 "(mode 0644); put it in smtp_password_file, or chmod o-r the file", conf);
	cr_assert_str_eq(cfg->warnings[1], want);
	snprintf(want, sizeof(want), "%s:4: webhook_url: credentials in the URL", conf);
	cr_assert(strncmp(cfg->warnings[2], want, strlen(want)) == 0, "%s", cfg->warnings[2]);
	for (size_t i = 0; i < cfg->nwarnings; i++)
		cr_assert(!strstr(cfg->warnings[i], "hunter2") && !strstr(cfg->warnings[i], "abc") &&
				  !strstr(cfg->warnings[i], "pw%40x"),
			  "%s", cfg->warnings[i]);
	config_free(cfg);
	/* group-readable (root:edibroker 0640) is fine */
	cr_assert_eq(load_mode(text, 0640, 0, &cfg), 0, "%s", err);
	cr_assert_eq(cfg->nwarnings, 0);
	config_free(cfg);
	/* a URL without credentials in a file anyone reads is no secret */
	cr_assert_eq(load_mode("[notify]\nwebhook_url = https://hooks.example/x\n", 0644, 0, &cfg),
		     0, "%s", err);
	cr_assert_eq(cfg->nwarnings, 0);
	config_free(cfg);
}

Test(config, a_bad_url_with_credentials_is_not_echoed)
{
	static const char *const texts[] = {
		"[notify]\nsmtp_url = smtps//ops:hunter2@mail.example\n",
		"[notify]\nsmtp_url = smtp://ops:hunter2@mail.example:port\n",
		"[notify]\nwebhook_url = https://ops:hunter2@hooks.example:99999/x\n",
		"[notify]\nwebhook_url = htps://hooks.example/x?token=hunter2\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(texts); i++) {
		struct config *cfg = NULL;
		cr_assert_eq(load(texts[i], &cfg), -EINVAL, "%s", texts[i]);
		cr_assert(strstr(err, ":2: ") && strstr(err, "value not shown"), "%s", err);
		cr_assert_null(strstr(err, "hunter2"), "%s", err);
	}
}

Test(config, starttls_unset_empty_and_written)
{
	struct config *cfg = load_ok("[notify]\nsmtp_starttls =\n");
	cr_assert_null(cfg->smtp_starttls);
	config_free(cfg);
	cfg = load_ok("[notify]\nsmtp_starttls = no\n");
	cr_assert_str_eq(cfg->smtp_starttls, "no");
	config_free(cfg);
}

Test(config, ca_files_must_be_there)
{
	char text[2 * PATH_MAX];
	const char *ca = secret_file("ca.pem", "-----BEGIN CERTIFICATE-----\n", 0644);
	snprintf(text, sizeof(text), "[notify]\nsmtp_ca_file = %s\nwebhook_ca_file = %s\n", ca, ca);
	struct config *cfg = NULL;
	cr_assert_eq(load_mode(text, 0644, 0, &cfg), 0, "a CA file is public: %s", err);
	cr_assert_str_eq(cfg->smtp_ca_file, ca);
	cr_assert_str_eq(cfg->webhook_ca_file, ca);
	config_free(cfg);
	snprintf(text, sizeof(text), "[notify]\nwebhook_ca_file = %s/nope.pem\n", dir);
	cr_assert_eq(load_mode(text, 0644, 0, &cfg), -EINVAL);
	cr_assert(strstr(err, ":2: webhook_ca_file: ") && strstr(err, "No such file"), "%s", err);
}

/* ---- the key walk (edibrokerd --list-keys) and key lines ---------------- */

struct walked {
	char names[128][64];
	size_t n;
};

static void walk_collect(const char *section, const char *key, const struct conf_key *row,
			 void *arg)
{
	struct walked *w = arg;
	cr_assert_str_eq(row->name, key);
	if (w->n < 128)
		snprintf(w->names[w->n], sizeof(w->names[0]), "%s.%s", section, key);
	w->n++;
}

static bool walked_has(const struct walked *w, const char *name)
{
	for (size_t i = 0; i < w->n && i < 128; i++)
		if (strcmp(w->names[i], name) == 0)
			return true;
	return false;
}

Test(config, walk_names_every_table, .init = with_fake)
{
	struct walked w = { .n = 0 };
	config_walk_keys(schemas, walk_collect, &w);
	static const char *const want[] = {
		"broker.state_dir", "notify.status_dir", "endpoint.kind", "endpoint.organisation",
		"endpoint.inbox",   "endpoint.file_group", "endpoint.file_mode", "spool.rescan_interval",
		"endpoint.url",     "fake.pool",         "fake.timeout",
	};
	for (size_t i = 0; i < ARRAY_SIZE(want); i++)
		cr_expect(walked_has(&w, want[i]), "%s not walked", want[i]);
	cr_expect_not(walked_has(&w, "broker.inbox"));
	struct walked spool_only = { .n = 0 };
	const struct conf_schema *const only_spool[] = { spool_transport.schema, NULL };
	config_walk_keys(only_spool, walk_collect, &spool_only);
	cr_expect_not(walked_has(&spool_only, "fake.pool"), "only the schemas given");
	cr_expect_eq(w.n, spool_only.n + ARRAY_SIZE(fake_endpoint_keys) +
				  ARRAY_SIZE(fake_section_keys));
}

Test(config, endpoint_key_lines_point_at_the_file)
{
	struct config *cfg = load_ok("[broker]\nstate_dir = /s\n"
				     "[endpoint a]\nkind = other\ngln = 5790000143054\ninbox = /i\noutbox = /o\n"
				     "file_group = eoj\n"
				     "[endpoint b]\nkind = other\ngln = 5790000143055\ninbox = /j\noutbox = /p\n");
	const struct endpoint_conf *a = config_endpoint(cfg, "a"), *b = config_endpoint(cfg, "b");
	cr_assert_eq(config_endpoint_key_line(a, "file_group"), 8);
	cr_assert_eq(config_endpoint_key_line(a, "outbox"), 7);
	cr_assert_eq(config_endpoint_key_line(a, "file_mode"), 3, "defaulted: the section's line");
	cr_assert_eq(config_endpoint_key_line(b, "file_group"), 9, "not set: the section's line");
	cr_assert_eq(config_endpoint_key_line(b, "no_such_key"), 9);
	cr_assert_str_eq(SP(a)->file_group, "eoj");
	cr_assert_str_eq(SP(a)->file_mode, "0640", "the default mode");
	cr_assert_null(SP(b)->file_group);
	config_free(cfg);
}

Test(config, spool_file_mode_and_group_values)
{
#define EPF(extra) "[endpoint a]\nkind = other\ngln = 5790000143054\ninbox = /i\noutbox = /o\n" extra
	static const struct error_case cases[] = {
		{ EPF("file_mode = 0646\n"), "6: file_mode: '0646' is not an octal file mode up to "
					     "0777 that others cannot write (e.g. 0640)" },
		{ EPF("file_mode = 4640\n"), "6: file_mode: '4640' is not an octal file mode up to "
					     "0777 that others cannot write (e.g. 0640)" },
		{ EPF("file_mode = 0680\n"), "6: file_mode: '0680' is not an octal file mode up to "
					     "0777 that others cannot write (e.g. 0640)" },
		{ EPF("file_mode = rw-r-----\n"), "6: file_mode: 'rw-r-----' is not an octal file "
						  "mode up to 0777 that others cannot write (e.g. "
						  "0640)" },
		{ EPF("file_group = -eoj\n"), "6: file_group: '-eoj' is not a group name (letters, "
					      "digits, '.', '_', '-'; at most 32)" },
		{ EPF("file_group = eoj users\n"), "6: file_group: 'eoj users' is not a group name "
						   "(letters, digits, '.', '_', '-'; at most 32)" },
	};
	expect_errors(cases, ARRAY_SIZE(cases));
	struct config *cfg = load_ok(EPF("file_mode = 0444\nfile_group = eoj-klient_1\n"));
	cr_assert_str_eq(SP(&cfg->endpoints[0])->file_mode, "0444");
	cr_assert_str_eq(SP(&cfg->endpoints[0])->file_group, "eoj-klient_1");
	config_free(cfg);
	cfg = load_ok(EPF("file_group =\n"));
	cr_assert_null(SP(&cfg->endpoints[0])->file_group, "empty means unset");
	config_free(cfg);
#undef EPF
}

/* ---- a transport's keys in [broker] and on every endpoint (issue 9) ------ */

struct peer_section {
	char *listen;
	int64_t max_conns;
};

struct peer_common {
	char *token;
};

static const struct conf_key peer_section_keys[] = {
	{ CONF_KEY(struct peer_section, "peer_listen", CONF_STR, listen), .flags = CONF_OPTIONAL },
	{ CONF_KEY(struct peer_section, "peer_max_conns", CONF_INT, max_conns), .def = "16",
	  .min = 1, .max = 1000, .flags = CONF_RELOAD },
};

static const struct conf_key peer_common_keys[] = {
	{ CONF_KEY(struct peer_common, "peer_token", CONF_STR, token),
	  .flags = CONF_RELOAD | CONF_OPTIONAL },
};

static const struct conf_schema peer_schema = {
	.name = "peer",
	.section = "broker",
	.section_keys = peer_section_keys,
	.nsection_keys = ARRAY_SIZE(peer_section_keys),
	.section_size = sizeof(struct peer_section),
	.common_keys = peer_common_keys,
	.ncommon_keys = ARRAY_SIZE(peer_common_keys),
	.common_size = sizeof(struct peer_common),
};

static const struct conf_schema *spool_and_peer[3];

static void with_peer(void)
{
	setup();
	spool_and_peer[0] = spool_transport.schema;
	spool_and_peer[1] = &peer_schema;
	schemas = spool_and_peer;
}

/* A transport may put its keys in [broker] beside the broker's own, and
 * give every endpoint, of any transport, keys of its own (a credential). */
Test(config, a_transport_adds_broker_keys_and_keys_for_every_endpoint, .init = with_peer)
{
	struct config *cfg = load_ok("[broker]\nstate_dir = /s\npeer_listen = 127.0.0.1:1\n"
				     "[endpoint a]\nkind = other\ngln = 5790000000012\n"
				     "inbox = /i\noutbox = /o\npeer_token = secret-a\n"
				     "[endpoint b]\nkind = other\ngln = 5790000000029\n"
				     "inbox = /j\noutbox = /p\n");
	const struct peer_section *ps = config_section(cfg, &peer_schema);
	cr_assert_str_eq(ps->listen, "127.0.0.1:1");
	cr_assert_eq(ps->max_conns, 16, "the default");
	cr_assert_str_eq(cfg->state_dir, "/s", "the broker's own key beside it");
	const struct peer_common *a = config_endpoint_common(cfg, config_endpoint(cfg, "a"),
							     &peer_schema);
	const struct peer_common *b = config_endpoint_common(cfg, config_endpoint(cfg, "b"),
							     &peer_schema);
	cr_assert_str_eq(a->token, "secret-a");
	cr_assert_null(b->token);
	cr_assert_null(config_endpoint_common(cfg, config_endpoint(cfg, "a"),
					      spool_transport.schema), "spool declares none");
	config_free(cfg);
	const struct error_case cases[] = {
		{ "[broker]\npeer_max_conns = 0\n", "2: peer_max_conns: must be at least 1" },
		{ "[broker]\nbogus = 1\n", "2: unknown key 'bogus' in [broker]" },
		{ "[endpoint a]\nkind = other\ngln = 5790000000012\npeer_token = x\npeer_token = y\n",
		  "5: duplicate key 'peer_token' in [endpoint a] (first at line 4)" },
	};
	expect_errors(cases, ARRAY_SIZE(cases));
}

/* [metrics] listen: an IP literal and a port (binding needs no look-up),
 * off unless set, and not changed by a reload. */
Test(config, metrics_listen_is_an_ip_address_and_a_port)
{
	struct config *cfg = load_ok("[broker]\nstate_dir = /tmp/x\n");
	cr_assert_null(cfg->metrics_listen, "off unless set");
	config_free(cfg);
	cfg = load_ok("[metrics]\nlisten = 127.0.0.1:9464\n");
	cr_assert_str_eq(cfg->metrics_listen, "127.0.0.1:9464");
	struct config *v6 = load_ok("[metrics]\nlisten = [::1]:9100\n");
	cr_assert_eq(config_nonreloadable_changes(cfg, v6, NULL, NULL), 1, "a restart");
	config_free(v6);
	config_free(cfg);
	expect_error("\n[metrics]\nlisten = localhost:9464\n",
		     "3: listen: \"localhost\" is not an IPv4 address (a name would need a look-up)");
	expect_error("[metrics]\nlisten = 127.0.0.1\n",
		     "2: listen: \"127.0.0.1\" is not HOST:PORT with HOST an IP address "
		     "(127.0.0.1:9464, [::1]:9464)");
}

/* --print-config: what the file says and every default, secrets not. */
Test(config, print_shows_defaults_and_redacts_secrets)
{
	struct config *cfg = load_ok(
		"[notify]\nsmtp_url = smtp://u:PW@mail.example/\nmail_from = a@b.example\n"
		"smtp_password = SECRET\nfallback_command = /opt/sms.sh --key KEY\n");
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	cr_assert_eq(config_print(cfg, f), 0);
	fclose(f);
	cr_assert_null(strstr(text, "SECRET"));
	cr_assert_null(strstr(text, "PW"));
	cr_assert_null(strstr(text, "KEY"));
	cr_assert(strstr(text, "\n[notify]\nsmtp_url = smtp://***@mail.example/\n"), "%s", text);
	cr_assert(strstr(text, "\nsmtp_password = ***\n"));
	cr_assert(strstr(text, "\nfallback_command = sms.sh\n"));
	cr_assert(strstr(text, "\n[delivery]\nretry_initial = 5s\nretry_max = 10m\n"), "%s", text);
	cr_assert(strstr(text, "\n# listen (not set)\n"));
	cr_assert(strstr(text, "\nmax_message_size = 16M\n"));
	free(text);
	config_free(cfg);
}

/* ---- issue 11: accepts, xsd, ack_timeout, xsd_dir ------------------------ */

Test(config, acknowledgement_and_schema_keys)
{
	struct config *cfg = load_ok("[delivery]\nack_timeout = 45m\n"
				     "[broker]\nxsd_dir = /opt/xsd\n"
				     "[endpoint k]\nkind = municipality\ngln = 5790000000012\n"
				     "inbox = /i\noutbox = /o\n"
				     "accepts = XDIS20, XDIS17, XDIS91:XD9134L,\n"
				     "          hospital-notification-message:3.0\n"
				     "xsd = enforce\n"
				     "[endpoint h]\nkind = hospital\ngln = 5790000000029\n"
				     "inbox = /i2\noutbox = /o2\n");
	cr_assert_eq(cfg->ack_timeout_ms, 45LL * 60000);
	cr_assert_str_eq(cfg->xsd_dir, "/opt/xsd");
	const struct endpoint_conf *k = config_endpoint(cfg, "k"), *h = config_endpoint(cfg, "h");
	cr_assert_eq(k->naccepts, 4);
	cr_assert_str_eq(k->accepts[2], "XDIS91:XD9134L");
	cr_assert_str_eq(k->accepts[3], "hospital-notification-message:3.0");
	cr_assert_eq(k->xsd, XSD_ENFORCE);
	cr_assert_eq(h->naccepts, 0, "no list: anything");
	cr_assert_eq(h->xsd, XSD_OFF, "off by default");
	config_free(cfg);
	cfg = load_ok("");
	cr_assert_eq(cfg->ack_timeout_ms, 30LL * 60000, "MedCom's 30 minutes");
	cr_assert_str_eq(cfg->xsd_dir, EDIBROKER_DATADIR "/xsd/oioxml");
	config_free(cfg);
}

Test(config, acknowledgement_and_schema_key_errors)
{
	static const char ep[] = "[endpoint k]\nkind = other\ngln = 5790000000012\ninbox = /i\n"
				 "outbox = /o\n";
	char a[256], b[256], c[256], d[256];
	snprintf(a, sizeof(a), "%saccepts = XDIS20, XDIS 17\n", ep);
	snprintf(b, sizeof(b), "%saccepts = XDIS20:\n", ep);
	snprintf(c, sizeof(c), "%sxsd = strict\n", ep);
	snprintf(d, sizeof(d), "%saccepts = XDIS20:XD2030C:x\n", ep);
	const struct error_case cases[] = {
		{ a, "6: accepts: 'XDIS 17' is not a message type or TYPE:VERSION (e.g. XDIS20, "
		     "XDIS20:XD2030C, hospital-notification-message:3.0)" },
		{ b, "6: accepts: 'XDIS20:' is not a message type or TYPE:VERSION (e.g. XDIS20, "
		     "XDIS20:XD2030C, hospital-notification-message:3.0)" },
		{ c, "6: xsd: must be off, warn or enforce" },
		{ d, "6: accepts: 'XDIS20:XD2030C:x' is not a message type or TYPE:VERSION (e.g. "
		     "XDIS20, XDIS20:XD2030C, hospital-notification-message:3.0)" },
		{ "[delivery]\nack_timeout = 50ms\n", "2: ack_timeout: duration must be at least 100ms" },
	};
	expect_errors(cases, ARRAY_SIZE(cases));
}
