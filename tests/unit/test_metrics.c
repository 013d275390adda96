/*
 * test_metrics.c - the metrics registry and its text exposition.
 *
 * Counts land in the series their labels name; label values stay bounded
 * (an endpoint not configured and a type not in the table count as
 * "other"); a reload drops the series of removed endpoints; every family
 * has its HELP and TYPE; histograms are cumulative with +Inf equal to the
 * count; values are escaped; the scrape hook runs before rendering; and
 * the listen address is an IP literal with a port.
 */
#include "metrics/metrics.h"
#include "metrics/metrics_http.h"
#include "codecs/base/mem.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const eps[] = { "hospital", "municipality" };

static void setup(void)
{
	metrics_reset();
	metrics_set_endpoints(eps, 2);
}

static void teardown(void)
{
	metrics_reset();
}

TestSuite(metrics, .init = setup, .fini = teardown);

static char *text;

static const char *render(void)
{
	free(text);
	text = metrics_render(NULL);
	return text;
}

/* The value of the sample line that starts with prefix ("name{...} "), or
 * -1 when there is none. */
static double sample(const char *prefix)
{
	render();
	size_t n = strlen(prefix);
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, prefix, n) == 0 && l[n] == ' ')
			return strtod(l + n + 1, NULL);
	return -1;
}

Test(metrics, counts_land_in_their_series)
{
	metrics_add(METRIC_ACCEPTED, 1, METRIC_LABELS("hospital", "municipality", "XDIS20"));
	metrics_add(METRIC_ACCEPTED, 1, METRIC_LABELS("hospital", "municipality", "XDIS20"));
	metrics_add(METRIC_ACCEPTED, 1, METRIC_LABELS("hospital", "municipality", "XDIS17"));
	cr_assert_eq(sample("edibroker_messages_accepted_total{source=\"hospital\","
			    "endpoint=\"municipality\",type=\"XDIS20\"}"), 2);
	cr_assert_eq(sample("edibroker_messages_accepted_total{source=\"hospital\","
			    "endpoint=\"municipality\",type=\"XDIS17\"}"), 1);
	metrics_add(METRIC_COMMIT_FAILURES, 1, NULL);
	cr_assert_eq(sample("edibroker_store_commit_failures_total"), 1);
	metrics_set(METRIC_STORE_SIZE, 4096, NULL);
	metrics_set(METRIC_STORE_SIZE, 8192, NULL);
	cr_assert_eq(sample("edibroker_store_size_bytes"), 8192);
}

Test(metrics, label_values_stay_bounded)
{
	/* an id, an unknown endpoint, a type nobody named: none becomes a label */
	metrics_add(METRIC_ACCEPTED, 1, METRIC_LABELS("evil-12345", "municipality", "XYZ999"));
	metrics_add(METRIC_ACCEPTED, 1, METRIC_LABELS("other-67890", "municipality", NULL));
	cr_assert_eq(sample("edibroker_messages_accepted_total{source=\"other\","
			    "endpoint=\"municipality\",type=\"other\"}"), 2);
	cr_assert_null(strstr(render(), "evil"));
	cr_assert_null(strstr(text, "XYZ999"));
	cr_assert_str_eq(metrics_type("hospital-notification-message"),
			 "hospital-notification-message");
	cr_assert_str_eq(metrics_type("DIS20"), "DIS20");
	cr_assert_str_eq(metrics_type("-"), "other");
}

Test(metrics, a_reload_drops_the_series_of_removed_endpoints)
{
	metrics_add(METRIC_DELIVERED, 1, METRIC_LABELS("municipality", "XDIS20"));
	metrics_add(METRIC_DELIVERED, 1, METRIC_LABELS("hospital", "XDIS20"));
	metrics_set(METRIC_QUEUE_MESSAGES, 3, METRIC_LABELS("municipality"));
	const char *only[] = { "hospital" };
	metrics_set_endpoints(only, 1);
	cr_assert_null(strstr(render(), "municipality"), "%s", text);
	cr_assert_eq(sample("edibroker_messages_delivered_total{endpoint=\"hospital\","
			    "type=\"XDIS20\"}"), 1);
	/* counted again after it came back, from zero */
	metrics_set_endpoints(eps, 2);
	metrics_add(METRIC_DELIVERED, 1, METRIC_LABELS("municipality", "XDIS20"));
	cr_assert_eq(sample("edibroker_messages_delivered_total{endpoint=\"municipality\","
			    "type=\"XDIS20\"}"), 1);
}

Test(metrics, every_family_has_help_and_type_and_counters_end_in_total)
{
	render();
	size_t helps = 0, types = 0;
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, "# HELP edibroker_", 17) == 0)
			helps++;
		if (strncmp(l, "# TYPE edibroker_", 17) == 0) {
			types++;
			const char *sp = strchr(l + 7, ' ');
			cr_assert_not_null(sp);
			bool counter = strncmp(sp + 1, "counter", 7) == 0;
			cr_assert_eq(counter, strncmp(sp - 6, "_total", 6) == 0, "%.80s", l);
			if (strncmp(sp + 1, "histogram", 9) == 0)
				cr_assert_eq(strncmp(sp - 8, "_seconds", 8), 0, "%.80s", l);
		}
	}
	cr_assert_eq(helps, METRIC__COUNT);
	cr_assert_eq(types, METRIC__COUNT);
	cr_assert(strstr(text, "# TYPE edibroker_messages_accepted_total counter\n"));
	cr_assert(strstr(text, "# TYPE edibroker_queue_messages gauge\n"));
	cr_assert(strstr(text, "# TYPE edibroker_delivery_latency_seconds histogram\n"));
	cr_assert(strstr(text, "\nedibroker_store_up 0\n"), "a family without labels shows 0");
}

Test(metrics, histograms_are_cumulative)
{
	metrics_observe(METRIC_DELIVERY_LATENCY, 0.05, METRIC_LABELS("municipality"));
	metrics_observe(METRIC_DELIVERY_LATENCY, 3, METRIC_LABELS("municipality"));
	metrics_observe(METRIC_DELIVERY_LATENCY, 4000, METRIC_LABELS("municipality"));
	metrics_observe(METRIC_DELIVERY_LATENCY, 1e9, METRIC_LABELS("municipality"));
	const char *p = "edibroker_delivery_latency_seconds_bucket{endpoint=\"municipality\",le=";
	char key[160];
	snprintf(key, sizeof(key), "%s\"0.1\"}", p);
	cr_assert_eq(sample(key), 1);
	snprintf(key, sizeof(key), "%s\"5\"}", p);
	cr_assert_eq(sample(key), 2);
	snprintf(key, sizeof(key), "%s\"7200\"}", p);
	cr_assert_eq(sample(key), 3);
	snprintf(key, sizeof(key), "%s\"86400\"}", p);
	cr_assert_eq(sample(key), 3);
	snprintf(key, sizeof(key), "%s\"+Inf\"}", p);
	cr_assert_eq(sample(key), 4);
	cr_assert_eq(sample("edibroker_delivery_latency_seconds_count{endpoint=\"municipality\"}"),
		     4);
	cr_assert_eq(sample("edibroker_delivery_latency_seconds_sum{endpoint=\"municipality\"}"),
		     0.05 + 3 + 4000 + 1e9);
	cr_assert_eq(sample("edibroker_commit_duration_seconds_count"), 0,
		     "shown before the first commit");
}

Test(metrics, words_are_escaped)
{
	metrics_add(METRIC_OPERATOR_ACTIONS, 1, METRIC_LABELS("a\"b\\c\nd"));
	cr_assert(strstr(render(), "{action=\"a\\\"b\\\\c\\nd\"} 1\n"), "%s", text);
}

static int scraped;

static void on_scrape(void *ctx)
{
	scraped++;
	metrics_set(METRIC_QUEUE_MESSAGES, *(int *)ctx, METRIC_LABELS("hospital"));
}

Test(metrics, the_scrape_hook_sets_live_gauges_first)
{
	int depth = 7;
	metrics_on_scrape(on_scrape, &depth);
	cr_assert_eq(sample("edibroker_queue_messages{endpoint=\"hospital\"}"), 7);
	depth = 2;
	cr_assert_eq(sample("edibroker_queue_messages{endpoint=\"hospital\"}"), 2);
	cr_assert_eq(scraped, 2);
}

Test(metrics, listen_is_an_ip_literal_with_a_port)
{
	char host[METRICS_HOST_MAX], why[200];
	uint16_t port = 0;
	cr_assert_eq(metrics_parse_listen("127.0.0.1:9464", host, &port, why, sizeof(why)), 0);
	cr_assert_str_eq(host, "127.0.0.1");
	cr_assert_eq(port, 9464);
	cr_assert_eq(metrics_parse_listen("[::1]:9100", host, &port, why, sizeof(why)), 0);
	cr_assert_str_eq(host, "::1");
	cr_assert_eq(port, 9100);
	static const char *const bad[] = { "localhost:9464", "127.0.0.1", "127.0.0.1:0",
					   "127.0.0.1:65536", ":9464", "::1:9464", "[::1]",
					   "127.0.0.1:94x", "300.1.1.1:80", "" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		cr_assert_eq(metrics_parse_listen(bad[i], host, &port, why, sizeof(why)), -EINVAL,
			     "%s", bad[i]);
	cr_assert(strstr(why, "HOST:PORT"), "%s", why);
}
