/*-------------------------------------------------------------------------
 *
 * codecs.c
 *	  Encodings of values the login events carry.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"

#include "codecs.h"

/*
 * Encode "M.m.p" or "M.m" (each part 0..999, one to three digits) as
 * M*1000000 + m*1000 + p.  The encoding is monotonic in version order and
 * injective on versions compared part by part, unlike stripping the dots.
 */
bool
codec_parse_app_version(const char *str, int len, int64 *result)
{
	int64		parts[3] = {0, 0, 0};
	int			nparts = 0;
	int			i = 0;

	while (nparts < 3)
	{
		int			digits = 0;
		int64		part = 0;

		while (i < len && str[i] >= '0' && str[i] <= '9' && digits < 4)
		{
			part = part * 10 + (str[i] - '0');
			digits++;
			i++;
		}
		if (digits == 0 || digits > 3)
			return false;
		parts[nparts++] = part;
		if (i == len)
			break;
		if (str[i] != '.')
			return false;
		i++;
	}
	if (i != len || nparts < 2)
		return false;
	*result = parts[0] * 1000000 + parts[1] * 1000 + parts[2];
	return true;
}

/* parse a strict ISO date YYYY-MM-DD into a DateADT */
bool
codec_parse_iso_date(const char *str, int len, DateADT *result)
{
	int			year,
				month,
				day;

	if (len != 10 || str[4] != '-' || str[7] != '-')
		return false;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (str[i] < '0' || str[i] > '9'))
			return false;
	year = atoi(str);
	month = (str[5] - '0') * 10 + (str[6] - '0');
	day = (str[8] - '0') * 10 + (str[9] - '0');
	if (year < 1 || month < 1 || month > 12 || day < 1 ||
		day > day_tab[isleap(year)][month - 1])
		return false;
	*result = date2j(year, month, day) - POSTGRES_EPOCH_JDATE;
	return true;
}

/* SQS speaks Unix milliseconds; PostgreSQL microseconds since 2000 */
int64
codec_unix_ms(TimestampTz ts)
{
	return ts / 1000 +
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000;
}

TimestampTz
codec_timestamptz(int64 unix_ms)
{
	return (unix_ms -
			(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000) * 1000;
}

/*
 * Is a Unix timestamp in milliseconds within the range of timestamptz?  If
 * so, codec_timestamptz() cannot overflow, and the date of it (midnight)
 * fits date, timestamp and timestamptz columns alike.
 */
bool
codec_unix_ms_in_range(int64 unix_ms)
{
	return unix_ms >= codec_unix_ms(MIN_TIMESTAMP) &&
		unix_ms < codec_unix_ms(END_TIMESTAMP);
}

/* the UTC date of a Unix timestamp in milliseconds */
DateADT
codec_date_of_unix_ms(int64 ms)
{
	int64		days = ms / (SECS_PER_DAY * INT64CONST(1000));

	if (ms < 0 && ms % (SECS_PER_DAY * INT64CONST(1000)) != 0)
		days--;
	return (DateADT) (days + UNIX_EPOCH_JDATE - POSTGRES_EPOCH_JDATE);
}

/* a date in ISO form YYYY-MM-DD, whatever DateStyle says */
char *
codec_iso_date(DateADT date)
{
	int			year,
				month,
				day;

	j2date(date + POSTGRES_EPOCH_JDATE, &year, &month, &day);
	return psprintf("%04d-%02d-%02d", year, month, day);
}
