/*
 * msgtypes.h - the one table of MedCom message types by name: what the
 * codecs report as a letter's type (OIOXML TypeCode "XDIS20", its EDIFACT
 * twin "DIS20", a FHIR event code "hospital-notification-message", a
 * VANSEnvelope receipt kind "NegativeVans") and what people call it, in
 * Danish and English ("Indlæggelsesadvis" / "Hospital admission notice").
 *
 * Notices and the status page show a type as its name with the code beside
 * it, so nurses read the name and the EDI desk the code. A type the table
 * lacks is shown as its code alone: a new letter type still routes and
 * shows, only without a name until a row is added here.
 */
#ifndef EDIBROKER_MSGTYPES_H
#define EDIBROKER_MSGTYPES_H

/* The name of type (as a codec reports it, exact and case-sensitive) in
 * lang ("da" or "en"); NULL for a type the table lacks, NULL, or another
 * language. */
const char *msgtype_name(const char *type, const char *lang);

#endif
