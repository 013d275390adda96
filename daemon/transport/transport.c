/*
 * transport.c - the transport registry, chosen by an endpoint's
 * "transport =" key.
 *
 * Each entry carries its name and its configuration schema; the wiring
 * hands the schemas to config_load(), so the config module names no
 * transport. The first entry is the default transport.
 */
#include "transport/transport.h"

#include "transport/http.h"
#include "transport/spool.h"
#include "transport/zmq_link.h"
#include "codecs/base/mem.h"

#include <pthread.h>
#include <string.h>

static const struct transport_ops *const transports[] = {
	&spool_transport,
	&http_transport,
	&zmq_transport,
};

static const struct conf_schema *schemas[ARRAY_SIZE(transports) + 1];
static pthread_once_t schemas_once = PTHREAD_ONCE_INIT;

static void list_schemas(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(transports); i++)
		schemas[i] = transports[i]->schema;
}

const struct conf_schema *const *transport_schemas(void)
{
	pthread_once(&schemas_once, list_schemas);
	return schemas;
}

const struct transport_ops *transport_at(size_t i)
{
	return i < ARRAY_SIZE(transports) ? transports[i] : NULL;
}

const struct transport_ops *transport_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(transports); i++)
		if (name && strcmp(transports[i]->name, name) == 0)
			return transports[i];
	return NULL;
}
