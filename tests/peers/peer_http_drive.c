/*
 * peer_http_drive.c - peer_http_send() (tools/peer_http.h) as a command,
 * for tests/integration/test_http.py until `edibroker-peer send --http`
 * calls it: the same function, driven against the real daemon.
 *
 *   peer_http_drive URL TOKEN|- CA|- CERT|- KEY|- TIMEOUT_MS FILE...
 *
 * Prints "FILE: ok id N" or "FILE: error (-errno): reason" per file; exits
 * 0 when every file was accepted, 1 otherwise, 2 on usage.
 */
#include "tools/peer_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *opt(const char *s)
{
	return strcmp(s, "-") == 0 ? NULL : s;
}

int main(int argc, char **argv)
{
	if (argc < 8) {
		fprintf(stderr, "usage: %s URL TOKEN|- CA|- CERT|- KEY|- TIMEOUT_MS FILE...\n",
			argv[0]);
		return 2;
	}
	int bad = 0;
	for (int i = 7; i < argc; i++) {
		char err[512];
		int r = peer_http_send(argv[1], opt(argv[2]), opt(argv[3]), opt(argv[4]),
				       opt(argv[5]), argv[i], strtol(argv[6], NULL, 10), err,
				       sizeof(err));
		if (r == 0)
			printf("%s: ok %s\n", argv[i], err);
		else
			printf("%s: error (%d): %s\n", argv[i], r, err);
		bad |= r != 0;
	}
	return bad;
}
