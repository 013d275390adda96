/*
 * msgtypes.c - the table of message type names (msgtypes.h), from
 * ../shared/domain/medcom.md section 1 (the SAM:BO family: OIOXML, its
 * EDIFACT twins and the receipts) and section 4 (the FHIR messages, by
 * event code), plus the VANSEnvelope receipt kinds the vans codec reports.
 *
 * The Danish names are MedCom's own where it has one (the schemas'
 * documentation, the EHMI value sets); the English ones follow medcom.md.
 * tests/unit/test_msgtypes.c checks that every type the golden decodes
 * report has a row, so a codec that starts reporting a new type fails a
 * test until it is named here. Pure data: no I/O, no state.
 */
#include "codecs/msgtypes.h"

#include "codecs/base/mem.h"

#include <string.h>

static const struct msgtype {
	const char *codes[3]; /* OIOXML, EDIFACT twin, ...; NULL-padded */
	const char *da, *en;
} types[] = {
	{ { "XDIS20", "DIS20" }, "Indlæggelsesadvis", "Hospital admission notice" },
	{ { "XDIS17", "DIS17" }, "Udskrivningsadvis", "Discharge notice" },
	{ { "XDIS14", "DIS14" }, "Indlæggelsessvar", "Answer to the admission notice" },
	{ { "XDIS19", "DIS19" }, "Melding om færdigbehandling", "Notice of completed treatment" },
	{ { "XDIS16", "DIS16" }, "Indlæggelsesrapport", "Admission report" },
	{ { "XDIS18", "DIS18" }, "Udskrivningsrapport", "Discharge report" },
	{ { "XDIS21" }, "Plejeforløbsplan", "Care plan" },
	{ { "XDIS91", "DIS91" }, "Korrespondancebrev", "Correspondence" },
	{ { "XCTL01", "CTL01", "NegativeVans" }, "Negativ VANS-kvittering",
	  "Negative network receipt" },
	{ { "XCTL02", "CTL02", "NegativeMessage" }, "Negativ kvittering", "Negative receipt" },
	{ { "XCTL03", "CTL03", "PositiveMessage" }, "Positiv kvittering", "Positive receipt" },
	/* FHIR (MessageHeader.eventCoding.code) */
	{ { "hospital-notification-message" }, "Advis om sygehusophold",
	  "Hospital notification" },
	{ { "care-communication-message" }, "Korrespondancemeddelelse", "Care communication" },
	{ { "homecareobservation-message" }, "Observationer fra hjemmeplejen",
	  "Home care observations" },
	{ { "acknowledgement-message" }, "Kvittering", "Acknowledgement" },
	{ { "empty-message" }, "Testmeddelelse", "Empty test message" },
};

static const struct msgtype *find(const char *type)
{
	for (size_t i = 0; type && i < ARRAY_SIZE(types); i++)
		for (size_t k = 0; k < ARRAY_SIZE(types[i].codes) && types[i].codes[k]; k++)
			if (strcmp(types[i].codes[k], type) == 0)
				return &types[i];
	return NULL;
}

const char *msgtype_name(const char *type, const char *lang)
{
	const struct msgtype *t = find(type);
	if (!t || !lang)
		return NULL;
	if (strcmp(lang, "da") == 0)
		return t->da;
	return strcmp(lang, "en") == 0 ? t->en : NULL;
}
