/*-------------------------------------------------------------------------
 *
 * codecs.h
 *	  Encodings of values the login events carry.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_CODECS_H
#define SQS_INGEST_CODECS_H

#include "datatype/timestamp.h"
#include "utils/date.h"

extern bool codec_parse_app_version(const char *str, int len, int64 *result);
extern bool codec_parse_iso_date(const char *str, int len, DateADT *result);
extern char *codec_iso_date(DateADT date);
extern DateADT codec_date_of_unix_ms(int64 unix_ms);
extern int64 codec_unix_ms(TimestampTz ts);
extern TimestampTz codec_timestamptz(int64 unix_ms);
extern bool codec_unix_ms_in_range(int64 unix_ms);

#endif							/* SQS_INGEST_CODECS_H */
