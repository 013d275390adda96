/*
 * xsd.c - sets of XML Schemas by target namespace (xsd.h): the OIOXML
 * schema releases the broker validates against.
 *
 * Loading walks dir/YYYY/MM/DD/ for EMessage.xsd, the root schema of each
 * MedCom release (its other files are included from it), and parses each
 * through xmlsafe. This is the one part of codecs/ that reads files, at
 * start-up and reload, from the broker's own data folder; validating is
 * pure (xmlsafe_validate on a tree already parsed). The set never changes
 * after loading; its reference count is the loop thread's business, as
 * the router's is, so a reload can swap sets under running decode jobs.
 */
#include "codecs/xsd.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "codecs/base/mem.h"

#define XSD_ROOT "EMessage.xsd"

struct codec_schemas {
	int refs;
	size_t n;
	struct xmlsafe_schema **v;
};

/* True when name is n decimal digits. */
static bool digits(const char *name, size_t n)
{
	return strlen(name) == n && strspn(name, "0123456789") == n;
}

static int only_dirs(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

/* The sorted entries of path that are n digits, as a NULL-terminated list
 * of names; NULL when path cannot be read. */
static char **dated(const char *path, size_t n)
{
	struct dirent **ents;
	int k = scandir(path, &ents, only_dirs, alphasort);
	if (k < 0)
		return NULL;
	char **names = xcalloc((size_t)k + 1, sizeof(char *));
	size_t m = 0;
	for (int i = 0; i < k; i++) {
		if (digits(ents[i]->d_name, n))
			names[m++] = xstrdup(ents[i]->d_name);
		free(ents[i]);
	}
	free(ents);
	return names;
}

static void names_free(char **names)
{
	for (size_t i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
}

static int add(struct codec_schemas *s, const char *path, char *err, size_t errlen)
{
	struct xmlsafe_schema *x = xmlsafe_schema_load(path, err, errlen);
	if (!x)
		return -EINVAL;
	if (codec_schemas_find(s, xmlsafe_schema_ns(x))) {
		snprintf(err, errlen, "%s: a second schema for namespace %.200s", path,
			 xmlsafe_schema_ns(x));
		xmlsafe_schema_free(x);
		return -EEXIST;
	}
	s->v = xrealloc(s->v, (s->n + 1) * sizeof(*s->v));
	s->v[s->n++] = x;
	return 0;
}

/* Loads dir/y/m/d/EMessage.xsd for every day folder under dir/y/m. */
static int load_month(struct codec_schemas *s, const char *ym, char *err, size_t errlen)
{
	char **days = dated(ym, 2);
	int r = 0;
	for (size_t i = 0; days && days[i] && r == 0; i++) {
		_cleanup_free_ char *path = xasprintf("%s/%s/" XSD_ROOT, ym, days[i]);
		struct stat st;
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
			r = add(s, path, err, errlen);
	}
	names_free(days);
	return r;
}

struct codec_schemas *codec_schemas_load(const char *dir, char *err, size_t errlen)
{
	struct codec_schemas *s = xcalloc(1, sizeof(*s));
	s->refs = 1;
	char **years = dated(dir, 4);
	int r = years ? 0 : -errno;
	if (!years)
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
	for (size_t y = 0; years && years[y] && r == 0; y++) {
		_cleanup_free_ char *yp = xasprintf("%s/%s", dir, years[y]);
		char **months = dated(yp, 2);
		for (size_t m = 0; months && months[m] && r == 0; m++) {
			_cleanup_free_ char *ym = xasprintf("%s/%s", yp, months[m]);
			r = load_month(s, ym, err, errlen);
		}
		names_free(months);
	}
	names_free(years);
	if (r == 0 && s->n == 0) {
		snprintf(err, errlen, "%s: no YYYY/MM/DD/" XSD_ROOT " in it", dir);
		r = -ENOENT;
	}
	if (r < 0) {
		codec_schemas_unref(s);
		return NULL;
	}
	return s;
}

struct codec_schemas *codec_schemas_ref(struct codec_schemas *s)
{
	s->refs++;
	return s;
}

void codec_schemas_unref(struct codec_schemas *s)
{
	if (!s || --s->refs > 0)
		return;
	for (size_t i = 0; i < s->n; i++)
		xmlsafe_schema_free(s->v[i]);
	free(s->v);
	free(s);
}

size_t codec_schemas_count(const struct codec_schemas *s)
{
	return s ? s->n : 0;
}

const char *codec_schemas_ns(const struct codec_schemas *s, size_t i)
{
	return i < s->n ? xmlsafe_schema_ns(s->v[i]) : NULL;
}

const struct xmlsafe_schema *codec_schemas_find(const struct codec_schemas *s, const char *ns)
{
	for (size_t i = 0; s && ns && i < s->n; i++)
		if (strcmp(xmlsafe_schema_ns(s->v[i]), ns) == 0)
			return s->v[i];
	return NULL;
}

void codec_schemas_check(const struct codec_schemas *s, const char *ns, xmlDoc *doc,
			 struct codec_envelope *env)
{
	const struct xmlsafe_schema *x = codec_schemas_find(s, ns);
	struct codec_error e;
	if (!x) {
		env->schema = CODEC_SCHEMA_MISSING;
		xmlsafe_fail(&e, CODEC_ESCHEMA, "no schema for namespace %.180s",
			     ns && ns[0] ? ns : "(none)");
		str_copy(env->schema_text, e.text, sizeof(env->schema_text));
		return;
	}
	/* one that cannot run is no proof of validity: it counts as invalid */
	int r = xmlsafe_validate(x, doc, env->schema_text, sizeof(env->schema_text));
	env->schema = r == 1 ? CODEC_SCHEMA_VALID : CODEC_SCHEMA_INVALID;
	if (r == 1)
		env->schema_text[0] = '\0';
}
