#!/bin/sh
# notify-sms-example.sh - an EXAMPLE [notify] fallback_command for edibrokerd.
#
# THIS IS AN EXAMPLE TO ADAPT. As shipped it sends no SMS: it appends one
# line per notice to a log file, so the fallback path can be tried end to
# end. Replace the body of send_sms below with your SMS gateway's call.
#
# edibrokerd runs the fallback command, via /bin/sh -c, when e-mail keeps
# failing. The command gets:
#   stdin              the notice as a JSON object (subject, body, facts)
#   NOTICE_SUBJECT     the notice's subject: one line of UTF-8, short
#   NOTICE_RECIPIENTS  the e-mail recipients it was meant for, comma-separated
#   NOTICE_MESSAGE_ID  the token of the notice's e-mail Message-ID
# The body is not in the environment (it can be long); it is in the JSON.
# Exit status 0 means delivered. Any other status, or running past
# [notify] timeout, is a failure; on a timeout the daemon kills the whole
# process group. The first line of stdout/stderr is kept with the failure.
#
# This example reads, from its own environment:
#   EDIBROKER_SMS_LOG  the log file (default /var/log/edibroker-sms.log)
#   EDIBROKER_SMS_TO   phone numbers to text, separated by spaces (optional)
#
# The shipped systemd unit has ProtectSystem=strict, so /var/log is read-only
# for the daemon; point the log somewhere it may write, e.g.
#   fallback_command = EDIBROKER_SMS_LOG=/var/lib/edibroker/sms.log /usr/share/edibroker/notify-sms-example.sh
set -eu

log=${EDIBROKER_SMS_LOG:-/var/log/edibroker-sms.log}
to=${EDIBROKER_SMS_TO:-}
id=${NOTICE_MESSAGE_ID:-}

# The whole notice. An SMS only has room for the subject, but a gateway
# that takes longer texts could use the body from here.
notice=$(cat)
size=$(printf '%s' "$notice" | wc -c)

# SMS are short: the subject, on one line. Gateways split or cut long texts.
text=$(printf '%s' "${NOTICE_SUBJECT:-EDI-driftsmeddelelse}" | tr '\t\r\n' '   ')

# send_sms NUMBER TEXT - the one place to adapt. For a gateway with an HTTP
# API it might read:
#   curl -fsS --max-time 10 -u "$SMS_USER:$SMS_PASSWORD" \
#        --data-urlencode "to=$1" --data-urlencode "text=$2" \
#        https://sms-gateway.example/api/send
send_sms() {
	printf '%s to=%s id=%s notice_bytes=%s text=%s\n' \
		"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$id" "$size" "$2" >>"$log"
}

if [ -z "$to" ]; then
	send_sms - "$text"
else
	for number in $to; do
		send_sms "$number" "$text"
	done
fi
