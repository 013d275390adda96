/*
 * transport.c - the transport registry, chosen by an endpoint's
 * "transport =" key.
 */
#include "transport/transport.h"

#include "transport/spool.h"
#include "codecs/base/mem.h"

#include <string.h>

static const struct transport_ops *const transports[] = { &spool_transport };

const struct transport_ops *transport_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(transports); i++)
		if (name && strcmp(transports[i]->name, name) == 0)
			return transports[i];
	return NULL;
}
