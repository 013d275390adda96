/*
 * test_statuspage.c - statuspage.c writing status.json and status.html into
 * a temporary folder: the JSON parses and carries every value with ISO and
 * epoch-ms times; the HTML is escaped, self-contained and labelled in the
 * page language; no temporary file stays behind; and a rewrite replaces
 * both files while a reader thread keeps opening them, which must never
 * find a file missing or cut short.
 *
 * Every test runs in its own process (Criterion forks) with
 * TZ=Europe/Copenhagen, so the expected local times are fixed.
 */
#include "notice/statuspage.h"
#include "codecs/base/mem.h"
#include "base/fileio.h"
#include "tests/unit/testutil.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define T0 1768471200000LL /* 2026-01-15 10:00:00 UTC = 11:00 in Copenhagen */
#define MIN 60000LL
#define HOUR 3600000LL
#define EVIL "<b>&"

static char tmp[64];
static char dir[128];

static void setup(void)
{
	setenv("TZ", "Europe/Copenhagen", 1);
	tzset();
	testutil_mkdtemp(tmp, sizeof(tmp), "/tmp/eb-status-XXXXXX");
	snprintf(dir, sizeof(dir), "%s/www/status", tmp); /* not there yet */
}

static void teardown(void)
{
	testutil_rm_rf(tmp);
}

TestSuite(statuspage, .init = setup, .fini = teardown, .timeout = 20);

static const struct status_endpoint ENDPOINTS[] = {
	{ .name = "aarhus-eoj", .organisation = "Aarhus Kommune", .kind = "municipality",
	  .health = "down", .since = T0 - 2 * HOUR - 5 * MIN, .queued = 5,
	  .oldest_received_at = T0 - 2 * HOUR - 5 * MIN,
	  .last_error = "connect: Connection refused" },
	{ .name = "evil-ep", .organisation = EVIL, .kind = "hospital", .health = "up",
	  .since = T0 - 24 * HOUR, .queued = 0, .oldest_received_at = 0, .last_error = "" },
};

static const struct status_outage OUTAGES[] = {
	{ .id = 17, .endpoint = "aarhus-eoj", .organisation = "Aarhus Kommune",
	  .state = "announced", .started_at = T0 - 2 * HOUR - 5 * MIN, .ended_at = 0,
	  .expected_end = 0, .next_status_at = T0 + HOUR,
	  .cause = "forbindelse afvist \"refused\" 'x'", .contact = "Søren <soren@region.example>",
	  .queued = 5 },
	{ .id = 12, .endpoint = "evil-ep", .organisation = EVIL, .state = "resolved",
	  .started_at = T0 - 30 * HOUR, .ended_at = T0 - 26 * HOUR, .expected_end = T0 - 25 * HOUR,
	  .next_status_at = 0, .cause = "timeout", .contact = "Regional IT", .queued = 0 },
};

static const struct status_maintenance MAINTENANCE[] = {
	{ .id = 3, .endpoint = "aarhus-eoj", .organisation = "Aarhus Kommune",
	  .from = 1782900000000LL /* 2026-07-01 12:00 +02:00 */, .to = 1782900000000LL + 4 * HOUR,
	  .reason = "EOJ-opgradering", .contact = "EOJ systemansvarlig" },
};

static struct status_page page(const char *lang)
{
	return (struct status_page){ .language = lang, .generated_at = T0,
				     .endpoints = ENDPOINTS, .nendpoints = ARRAY_SIZE(ENDPOINTS),
				     .outages = OUTAGES, .noutages = ARRAY_SIZE(OUTAGES),
				     .maintenance = MAINTENANCE,
				     .nmaintenance = ARRAY_SIZE(MAINTENANCE) };
}

static void write_page(const struct status_page *p)
{
	char err[256] = "unset";
	cr_assert_eq(statuspage_write(dir, p, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_empty(err);
}

static char *read_out(const char *name)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
	return testutil_read_file(path, NULL);
}

static json_t *read_json(void)
{
	_cleanup_free_ char *text = read_out("status.json");
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);
	cr_assert(j, "status.json: %s at line %d", e.text, e.line);
	return j;
}

static const char *sget(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	cr_assert(json_is_string(v), "%s is not a string", key);
	return json_string_value(v);
}

static json_int_t iget(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	cr_assert(json_is_integer(v), "%s is not an integer", key);
	return json_integer_value(v);
}

Test(statuspage, json_carries_every_value)
{
	struct status_page p = page("da");
	write_page(&p);
	json_t *j = read_json();
	cr_assert_str_eq(sget(j, "language"), "da");
	cr_assert_str_eq(sget(j, "generated_at"), "2026-01-15T11:00:00+01:00");
	cr_assert_eq(iget(j, "generated_at_ms"), T0);
	json_t *e = json_array_get(json_object_get(j, "endpoints"), 0);
	cr_assert_eq(json_array_size(json_object_get(j, "endpoints")), 2);
	cr_assert_str_eq(sget(e, "name"), "aarhus-eoj");
	cr_assert_str_eq(sget(e, "kind"), "municipality");
	cr_assert_str_eq(sget(e, "health"), "down");
	cr_assert_str_eq(sget(e, "since"), "2026-01-15T08:55:00+01:00");
	cr_assert_eq(iget(e, "queued"), 5);
	cr_assert_eq(iget(e, "oldest_age_s"), 2 * 3600 + 5 * 60);
	cr_assert_str_eq(sget(e, "last_error"), "connect: Connection refused");
	json_t *e2 = json_array_get(json_object_get(j, "endpoints"), 1);
	cr_assert_str_eq(sget(e2, "organisation"), EVIL);
	cr_assert(json_is_null(json_object_get(e2, "oldest_received_at")));
	cr_assert(json_is_null(json_object_get(e2, "oldest_age_s")));
	json_decref(j);
}

Test(statuspage, json_outages_and_maintenance)
{
	struct status_page p = page("da");
	write_page(&p);
	json_t *j = read_json();
	json_t *o = json_array_get(json_object_get(j, "outages"), 0);
	cr_assert_eq(iget(o, "id"), 17);
	cr_assert_str_eq(sget(o, "state"), "announced");
	cr_assert(json_is_true(json_object_get(o, "open")));
	cr_assert_str_eq(sget(o, "cause"), OUTAGES[0].cause);
	cr_assert_str_eq(sget(o, "contact"), OUTAGES[0].contact);
	cr_assert(json_is_null(json_object_get(o, "expected_end")));
	cr_assert(json_is_null(json_object_get(o, "ended_at_ms")));
	cr_assert_eq(iget(o, "next_status_at_ms"), T0 + HOUR);
	cr_assert_str_eq(sget(o, "next_status_at"), "2026-01-15T12:00:00+01:00");
	json_t *r = json_array_get(json_object_get(j, "outages"), 1);
	cr_assert(json_is_false(json_object_get(r, "open")));
	json_t *m = json_array_get(json_object_get(j, "maintenance"), 0);
	cr_assert_str_eq(sget(m, "from"), "2026-07-01T12:00:00+02:00");
	cr_assert_str_eq(sget(m, "to"), "2026-07-01T16:00:00+02:00");
	cr_assert_str_eq(sget(m, "reason"), "EOJ-opgradering");
	cr_assert_eq(iget(m, "id"), 3);
	json_decref(j);
}

Test(statuspage, html_escapes_every_value)
{
	struct status_page p = page("da");
	write_page(&p);
	_cleanup_free_ char *html = read_out("status.html");
	cr_assert(strstr(html, "<td>&lt;b&gt;&amp;</td>"), "organisation not escaped");
	cr_assert_null(strstr(html, EVIL));
	cr_assert(strstr(html, "forbindelse afvist &quot;refused&quot; &#39;x&#39;"));
	cr_assert(strstr(html, "Søren &lt;soren@region.example&gt;"));
}

Test(statuspage, html_is_self_contained_and_refreshes)
{
	struct status_page p = page("da");
	write_page(&p);
	_cleanup_free_ char *html = read_out("status.html");
	cr_assert(strncmp(html, "<!DOCTYPE html>\n<html lang=\"da\">", 32) == 0);
	cr_assert(strstr(html, "<meta http-equiv=\"refresh\" content=\"60\">"));
	cr_assert(strstr(html, "<meta charset=\"utf-8\">"));
	cr_assert_null(strstr(html, "<script"));
	cr_assert_null(strstr(html, "src="));
	cr_assert_null(strstr(html, "href="));
	cr_assert_null(strstr(html, "url("));
	size_t n = strlen(html);
	cr_assert(n > 16 && strcmp(html + n - 16, "</body>\n</html>\n") == 0);
}

/* The open outage row has the four fields, "ukendt" for an expected
 * downtime nobody set, and the next status time. */
Test(statuspage, html_danish_labels_and_four_fields)
{
	struct status_page p = page("da");
	write_page(&p);
	_cleanup_free_ char *html = read_out("status.html");
	const char *want[] = { "<h1>EDI-driftsstatus</h1>", "<h2>Aktuelle nedbrud</h2>",
			       "<h2>Planlagte nedlukninger</h2>", "<h2>Endepunkter</h2>",
			       "<h2>Afsluttede nedbrud</h2>", "<th>Årsag til fejl</th>",
			       "<th>Berørte meddelelser</th>", "<th>Forventet nedetid</th>",
			       "<th>Kontaktperson</th>", "<th>Næste status</th>",
			       "<td>5 ventende</td><td>ukendt</td>",
			       ">15.01.2026 12:00</time>", "Opdateret: <time",
			       "<td class=\"h\">Nede</td>", "<td>Kommune</td>", "<td>Meldt ud</td>",
			       "<td>2 t 05 min</td>", "<td>EOJ-opgradering</td>" };
	for (size_t i = 0; i < ARRAY_SIZE(want); i++)
		cr_assert(strstr(html, want[i]), "missing: %s", want[i]);
}

Test(statuspage, html_english)
{
	struct status_page p = page("en");
	write_page(&p);
	_cleanup_free_ char *html = read_out("status.html");
	cr_assert(strstr(html, "<html lang=\"en\">"));
	cr_assert(strstr(html, "<th>Cause of fault</th>"));
	cr_assert(strstr(html, "<td>5 waiting</td><td>unknown</td>"));
	cr_assert(strstr(html, ">2026-01-15 12:00</time>"));
	cr_assert_null(strstr(html, "ukendt"));
}

Test(statuspage, empty_page_says_none)
{
	struct status_page p = { .language = "da", .generated_at = T0 };
	write_page(&p);
	_cleanup_free_ char *html = read_out("status.html");
	cr_assert(strstr(html, "<h2>Aktuelle nedbrud</h2>\n<p>Ingen.</p>"));
	cr_assert_null(strstr(html, "<table>"));
	json_t *j = read_json();
	cr_assert_eq(json_array_size(json_object_get(j, "outages")), 0);
	cr_assert(json_is_array(json_object_get(j, "endpoints")));
	json_decref(j);
}

Test(statuspage, invalid_utf8_does_not_lose_the_page)
{
	struct status_endpoint e = ENDPOINTS[0];
	e.organisation = "Bad \xff\xfe name";
	struct status_page p = { .language = "da", .generated_at = T0, .endpoints = &e,
				 .nendpoints = 1 };
	write_page(&p);
	json_t *j = read_json();
	json_t *e0 = json_array_get(json_object_get(j, "endpoints"), 0);
	cr_assert_str_eq(sget(e0, "organisation"), "Bad ?? name");
	json_decref(j);
}

/* The folder is created; only the two files remain, readable by the
 * intranet's web server whatever the umask. */
Test(statuspage, creates_folder_and_leaves_no_temporary_files)
{
	umask(077);
	struct status_page p = page("da");
	write_page(&p);
	write_page(&p);
	DIR *d = opendir(dir);
	cr_assert(d, "%s not created", dir);
	int n = 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		n++;
		cr_assert(strcmp(e->d_name, "status.html") == 0 || strcmp(e->d_name, "status.json") == 0,
			  "left behind: %s", e->d_name);
		struct stat st;
		cr_assert(fstatat(dirfd(d), e->d_name, &st, 0) == 0);
		cr_assert_eq(st.st_mode & 0777, 0644, "%s mode %o", e->d_name, st.st_mode & 0777);
	}
	closedir(d);
	cr_assert_eq(n, 2);
}

Test(statuspage, error_names_the_path)
{
	_cleanup_free_ char *file = xasprintf("%s/plain-file", tmp);
	_cleanup_close_ int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	cr_assert(fd >= 0);
	struct status_page p = page("da");
	char err[256] = "";
	int r = statuspage_write(file, &p, err, sizeof(err));
	cr_assert(r == -ENOTDIR || r == -EEXIST, "r = %d", r);
	cr_assert(strstr(err, file), "%s", err);
}

/* ---- atomic replacement under a concurrent reader ------------------------------- */

struct reader {
	atomic_bool stop;
	long reads, missing, partial;
};

/* One look at a file: it must exist and be whole. */
static void look(struct reader *r, const char *name, const char *tail)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
	uint8_t *buf = NULL;
	size_t len;
	int e = read_file_at(AT_FDCWD, path, 1 << 24, &buf, &len);
	r->reads++;
	if (e == -ENOENT)
		r->missing++;
	else if (e < 0 || len < strlen(tail) || strcmp((char *)buf + len - strlen(tail), tail))
		r->partial++;
	free(buf);
}

static void *read_loop(void *arg)
{
	struct reader *r = arg;
	while (!atomic_load(&r->stop)) {
		look(r, "status.html", "</html>\n");
		look(r, "status.json", "}\n");
	}
	return NULL;
}

Test(statuspage, rewrite_replaces_atomically)
{
	struct status_page p = page("da");
	write_page(&p);
	_cleanup_free_ char *html = xasprintf("%s/status.html", dir);
	struct stat before, after;
	cr_assert(stat(html, &before) == 0);
	write_page(&p);
	cr_assert(stat(html, &after) == 0);
	/* The old inode is still held by its name while the new one is made,
	 * so a replacement always has a new number (later ones may recycle). */
	cr_assert_neq(before.st_ino, after.st_ino, "rewritten in place, not replaced");
	struct reader r = { .stop = false };
	pthread_t t;
	cr_assert(pthread_create(&t, NULL, read_loop, &r) == 0);
	for (int i = 0; i < 200; i++) {
		p.generated_at = T0 + i * MIN;
		p.nendpoints = 1 + i % 2; /* the size changes too */
		write_page(&p);
	}
	atomic_store(&r.stop, true);
	pthread_join(t, NULL);
	cr_assert_gt(r.reads, 10);
	cr_assert_eq(r.missing, 0, "a file was missing %ld of %ld times", r.missing, r.reads);
	cr_assert_eq(r.partial, 0, "a file was incomplete %ld of %ld times", r.partial, r.reads);
	json_t *j = read_json();
	cr_assert_eq(iget(j, "generated_at_ms"), T0 + 199 * MIN);
	json_decref(j);
}
