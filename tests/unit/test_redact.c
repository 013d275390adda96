/*
 * test_redact.c - what of a URL or a command may be shown (base/redact.c):
 * user-info with '@' and ':' in the password, IPv6 hosts, queries and
 * fragments, text that is no URL, commands with arguments and variable
 * assignments, scrubbing a secret out of an error line.
 */
#include "base/redact.h"

#include <criterion/criterion.h>
#include <string.h>

static void url_is(const char *url, const char *want)
{
	char out[REDACT_MAX];
	cr_assert_str_eq(redact_url(url, out, sizeof(out)), want, "%s", url);
}

Test(redact, url_without_secrets_is_unchanged)
{
	url_is("https://hooks.region.example/edi/notice", "https://hooks.region.example/edi/notice");
	url_is("smtp://127.0.0.1:2525", "smtp://127.0.0.1:2525");
	url_is("http://[::1]:8080/hook", "http://[::1]:8080/hook");
}

Test(redact, user_info_is_hidden)
{
	url_is("smtp://edibroker:hunter2@mail.region.example:587",
	       "smtp://***@mail.region.example:587");
	url_is("https://user@host.example/", "https://***@host.example/");
	/* '@' and ':' inside the password: the user-info ends at the last '@' */
	url_is("https://ops:p@ss:w@rd@host.example/x", "https://***@host.example/x");
	url_is("http://a:b@[2001:db8::1]:8443/p", "http://***@[2001:db8::1]:8443/p");
}

Test(redact, query_and_fragment_are_hidden)
{
	url_is("https://host.example/hook?token=abc123&x=1", "https://host.example/hook?***");
	url_is("https://host.example/hook#secret", "https://host.example/hook#***");
	url_is("https://u:pw@host.example/hook?token=abc#frag", "https://***@host.example/hook?***#***");
	/* an '@' in the query is not user-info */
	url_is("https://host.example/h?to=a@b.example", "https://host.example/h?***");
	url_is("https://host.example?k=v", "https://host.example?***");
	/* an '@' in the path is not either: the authority ended at '/' */
	url_is("https://outlook.example/webhook/abc@def/In", "https://outlook.example/webhook/abc@def/In");
}

Test(redact, what_is_no_url_is_hidden_whole)
{
	url_is("user:hunter2@host", "***");
	url_is("smtps//user:pw@host", "***");
	url_is("://user:pw@host", "***");
	url_is("", "***");
	url_is(NULL, "***");
}

Test(redact, result_is_cut_to_fit)
{
	char out[12];
	redact_url("https://user:pw@host.example/a/long/path?q", out, sizeof(out));
	cr_assert_str_eq(out, "https://***");
	cr_assert_null(strstr(out, "pw"));
}

static void cmd_is(const char *cmd, const char *want)
{
	char out[REDACT_MAX];
	cr_assert_str_eq(redact_command(cmd, out, sizeof(out)), want, "%s", cmd);
}

Test(redact, command_by_name_only)
{
	cmd_is("/usr/local/bin/sms-gateway.sh --api-key K3Y 4512345678", "sms-gateway.sh");
	cmd_is("notify-sms", "notify-sms");
	cmd_is("  SMS_KEY=s3cret OTHER=1 /opt/sms/send.sh", "send.sh");
	cmd_is("'/opt/my tools/send.sh' --key x", "send.sh");
	cmd_is("\"/opt/sms/send.sh\" --key x", "send.sh");
	cmd_is("/opt/sms/send.sh;echo secret", "send.sh");
	cmd_is("KEY=only", "***");
	cmd_is("", "***");
	cmd_is(NULL, "***");
}

Test(redact, scrub_replaces_every_occurrence)
{
	char buf[64] = "denied for hunter2 (hunter2)";
	redact_scrub(buf, sizeof(buf), "hunter2");
	cr_assert_str_eq(buf, "denied for *** (***)");
	redact_scrub(buf, sizeof(buf), "");
	cr_assert_str_eq(buf, "denied for *** (***)");
	redact_scrub(buf, sizeof(buf), NULL);
	cr_assert_str_eq(buf, "denied for *** (***)");
	char small[8] = "ab ab";
	redact_scrub(small, sizeof(small), "b");
	cr_assert_str_eq(small, "a*** a*");
	cr_assert_null(strchr(small, 'b'));
}

Test(redact, scrub_url_takes_out_its_secret_parts)
{
	char buf[160] = "POST https://ops:pw@h.example/x?token=t0k#f to ops:pw failed: t0k token=t0k";
	redact_scrub_url(buf, sizeof(buf), "https://ops:pw@h.example/x?token=t0k#f");
	cr_assert_null(strstr(buf, "ops:pw"), "%s", buf);
	cr_assert_null(strstr(buf, "token=t0k"), "%s", buf);
	cr_assert(strstr(buf, "h.example/x"), "host and path stay: %s", buf);
	char plain[64] = "no url here: abc";
	redact_scrub_url(plain, sizeof(plain), "abc");
	cr_assert_str_eq(plain, "no url here: ***");
}
