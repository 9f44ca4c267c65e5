/*-------------------------------------------------------------------------
 *
 * redact.c
 *	  Text from AWS made fit for the log and the statistics.
 *
 * An AWS error message is free text chosen by the endpoint.  Some quote
 * what must never reach a log: SignatureDoesNotMatch quotes the canonical
 * request (headers, the session token among them) and the string to sign;
 * a proxy or an emulator may echo an Authorization header, a credential
 * scope or a token.  So only the first line is kept, cut before any
 * quoted request, with everything that looks like a credential replaced,
 * and clipped on a character boundary.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"

#include "redact.h"

#define REDACTED "[redacted]"

/* a base64 run at least this long is taken for a key or a token */
#define LONG_RUN_CHARS 32

/* where AWS starts quoting the request it computed the signature over */
static const char *const quoted_request_markers[] = {
	"The Canonical String for this request",
	"The String-to-Sign should have been",
	"Canonical Request",
	"String to sign",
	"StringToSign",
	"CanonicalRequest",
};

/* labels whose value, up to the end of the text, is a credential */
static const char *const credential_headers[] = {
	"authorization:",
	"authorization=",
	"x-amz-security-token",
	"x-amz-credential",
	"x-amz-signature",
	"credential=",
	"signature=",
	"signedheaders=",
	"securitytoken",
	"sessiontoken",
	"session token:",
	"secretaccesskey",
	"secret access key:",
};

static bool
is_base64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		(c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=';
}

/* an AWS access key id: A[KS]IA (or another IAM prefix) and 12+ more */
static int
access_key_id_length(const char *p)
{
	static const char *const prefixes[] = {"AKIA", "ASIA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "AGPA"};
	int			len = 0;

	for (size_t i = 0; i < lengthof(prefixes); i++)
		if (strncmp(p, prefixes[i], 4) == 0)
			len = 4;
	if (len == 0)
		return 0;
	while ((p[len] >= 'A' && p[len] <= 'Z') || (p[len] >= '0' && p[len] <= '9'))
		len++;
	return len >= 16 ? len : 0;
}

/* the length of text up to the first line break or quoted request */
static size_t
first_part_length(const char *text)
{
	size_t		len = strcspn(text, "\r\n");

	for (size_t i = 0; i < lengthof(quoted_request_markers); i++)
	{
		const char *marker = strstr(text, quoted_request_markers[i]);

		if (marker && (size_t) (marker - text) < len)
			len = marker - text;
	}
	return len;
}

/* where the first credential label starts, or len if none */
static size_t
credential_label_offset(const char *text, size_t len)
{
	size_t		first = len;

	for (size_t i = 0; i < lengthof(credential_headers); i++)
	{
		const char *label = credential_headers[i];
		size_t		label_len = strlen(label);

		for (size_t at = 0; at + label_len <= first; at++)
			if (pg_strncasecmp(text + at, label, label_len) == 0)
			{
				first = at;
				break;
			}
	}
	return first;
}

/*
 * The message fit for a log line and sqs_ingest.stats.last_error, palloc'd:
 * first line only, nothing from a quoted request or a credential label on,
 * access key ids and long base64 runs replaced, at most REDACT_MAX_CHARS
 * characters, valid in the database encoding.
 */
char *
redact_aws_text(const char *text)
{
	StringInfoData out;
	size_t		len;
	size_t		cut;
	bool		truncated;
	int			clip;

	if (text == NULL)
		return NULL;
	len = first_part_length(text);
	cut = credential_label_offset(text, len);
	truncated = text[len] != '\0' || cut < len;

	initStringInfo(&out);
	for (size_t i = 0; i < cut;)
	{
		size_t		run = 0;

		while (i + run < cut && is_base64_char(text[i + run]))
			run++;
		if (run == 0)
		{
			appendStringInfoChar(&out, text[i++]);
			continue;
		}
		if (run >= LONG_RUN_CHARS)
			appendStringInfoString(&out, REDACTED);
		else
		{
			/* a short run may still hold an access key id: user/AKIA... */
			for (size_t j = 0; j < run;)
			{
				int			key_len = access_key_id_length(text + i + j);

				if (key_len > 0 && (size_t) key_len <= run - j)
				{
					appendStringInfoString(&out, REDACTED);
					j += key_len;
				}
				else
					appendStringInfoChar(&out, text[i + j++]);
			}
		}
		i += run;
	}
	if (cut < len)
	{
		/* the separators before the label go with it */
		while (out.len > 0 && strchr(" \t:;,.=", out.data[out.len - 1]))
			out.data[--out.len] = '\0';
		appendStringInfoString(&out, out.len > 0 ? " " REDACTED : REDACTED);
	}

	/* bytes that are not text in this encoding end it */
	out.len = pg_encoding_verifymbstr(GetDatabaseEncoding(), out.data, out.len);
	out.data[out.len] = '\0';
	clip = pg_mbcharcliplen(out.data, out.len, REDACT_MAX_CHARS);
	if (clip < out.len || (truncated && cut == len))
	{
		out.data[clip] = '\0';
		out.len = clip;
		appendStringInfoString(&out, "...");
	}
	return out.data;
}
