/*
 * control_cmds.h - the commands operators send over the control socket:
 * status, queue ENDPOINT, dead. Each answers a JSON object; edibrokerctl
 * renders it as a table or passes it through with --json.
 */
#ifndef EDIBROKER_CONTROL_CMDS_H
#define EDIBROKER_CONTROL_CMDS_H

#include <jansson.h>

/* control_handler for the broker (arg is the struct broker). */
json_t *control_dispatch(const json_t *request, void *arg);

#endif
