/*
 * log.h - one-line, journal-friendly log records on stderr.
 *
 * Each record is one write(2) of "<P>text\n", where P is the syslog
 * priority, so journald (SyslogLevelPrefix=yes, the default) files it under
 * the right priority. On a terminal the prefix becomes a readable timestamp
 * and level. Messages use fixed key=value fields (msg= endpoint= type=
 * state= attempt= delay=) and never carry patient data: ids, types, counts.
 */
#ifndef EDIBROKER_LOG_H
#define EDIBROKER_LOG_H

#include <syslog.h>

/* Sets the lowest priority that is written (LOG_DEBUG writes everything)
 * and whether the output is decorated for a terminal. */
void log_setup(int max_priority, int tty);
/* Chooses decoration from isatty(stderr); max priority LOG_INFO. */
void log_init(void);
int log_max_priority(void);

void log_msg(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_crit(...) log_msg(LOG_CRIT, __VA_ARGS__)
#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
