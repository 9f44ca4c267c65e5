/*-------------------------------------------------------------------------
 *
 * sigv4.c
 *	  AWS Signature Version 4 ("AWS4-HMAC-SHA256") of the requests sent to
 *	  SQS and STS: header-based, over the whole payload.
 *
 * libcurl can sign (CURLOPT_AWS_SIGV4), but for every request it derives
 * the signing key anew and has OpenSSL look up each digest it uses: about
 * 33 µs a request on the bench's machines, two thirds of what a bare SQS
 * client spends per message (bench/RESULTS.md).  Here the digests are
 * fetched once a process, a URL is canonicalised once a signer, and the
 * signing key is derived once a day and secret; a request then costs a
 * SHA-256 of its payload, one of its canonical form and one HMAC.  libcurl
 * is no longer handed the secret key at all.
 *
 * The signer sets the Host header it signs, rather than count on libcurl
 * to build the same one.  The canonical URI encodes each segment of the
 * path as the URL writes it once more, as AWS asks of every service but
 * S3, without empty segments, as AWS's own signers do; a query in the URL
 * is decoded and encoded again, sorted.
 *
 * The signing key and the copy of the secret it came from are wiped when
 * replaced and when the signer's memory goes, on error too.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "lib/stringinfo.h"
#include "utils/memutils.h"

#include "secrets.h"
#include "sigv4.h"
#include "transport.h"

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define SHA256_LEN 32

struct SigV4Signer
{
	MemoryContext context;
	MemoryContextCallback wipe;
	char	   *region;
	char	   *service;
	char	   *host;			/* the Host header, as sent and signed */
	char	   *canonical_uri;
	char	   *canonical_query;
	/* the signing key, for the day and the secret it was derived from */
	char		key_date[9];
	char	   *key_secret;		/* a copy of that secret, or NULL */
	unsigned char key[SHA256_LEN];
	StringInfoData canonical;	/* the canonical request, reused */
	StringInfoData to_sign;		/* the string to sign, reused */
};

/* a header to sign: its name and trimmed value, where they are in place */
typedef struct SignedHeader
{
	const char *name;
	int			name_len;
	const char *value;
	int			value_len;
	int			order;			/* in the request: ties keep it */
} SignedHeader;

/* a parameter of the canonical query, name and value percent-encoded */
typedef struct QueryParam
{
	char	   *name;
	char	   *value;
} QueryParam;

/*
 * Fetched once a process: OpenSSL 3 looks an algorithm up in its provider
 * tables on every implicit use, which is most of what signing through
 * libcurl costs.
 */
static EVP_MD *sha256_md = NULL;
static EVP_MD_CTX *md_ctx = NULL;
static EVP_MAC_CTX *mac_ctx = NULL;

static void
signing_failed(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
			 errmsg("OpenSSL could not compute a SigV4 signature")));
}

static void
fetch_digests(void)
{
	EVP_MAC    *hmac;
	OSSL_PARAM	params[2];

	if (mac_ctx != NULL)
		return;
	if (sha256_md == NULL)
		sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (md_ctx == NULL)
		md_ctx = EVP_MD_CTX_new();
	if (sha256_md == NULL || md_ctx == NULL)
		signing_failed();
	hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (hmac == NULL)
		signing_failed();
	mac_ctx = EVP_MAC_CTX_new(hmac);
	EVP_MAC_free(hmac);			/* the context holds its own reference */
	if (mac_ctx == NULL)
		signing_failed();
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
												 "SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!EVP_MAC_CTX_set_params(mac_ctx, params))
	{
		EVP_MAC_CTX_free(mac_ctx);
		mac_ctx = NULL;
		signing_failed();
	}
}

static void
sha256(const char *data, size_t len, unsigned char *out)
{
	unsigned int n = 0;

	if (!EVP_DigestInit_ex(md_ctx, sha256_md, NULL) ||
		!EVP_DigestUpdate(md_ctx, data, len) ||
		!EVP_DigestFinal_ex(md_ctx, out, &n) || n != SHA256_LEN)
		signing_failed();
}

static void
hmac_sha256(const unsigned char *key, size_t key_len, const char *data,
			size_t len, unsigned char *out)
{
	size_t		n = 0;

	if (!EVP_MAC_init(mac_ctx, key, key_len, NULL) ||
		!EVP_MAC_update(mac_ctx, (const unsigned char *) data, len) ||
		!EVP_MAC_final(mac_ctx, out, &n, SHA256_LEN) || n != SHA256_LEN)
		signing_failed();
}

static void
append_hex(StringInfo buf, const unsigned char *bytes, int len)
{
	static const char digits[] = "0123456789abcdef";

	enlargeStringInfo(buf, len * 2);
	for (int i = 0; i < len; i++)
	{
		buf->data[buf->len++] = digits[bytes[i] >> 4];
		buf->data[buf->len++] = digits[bytes[i] & 0xf];
	}
	buf->data[buf->len] = '\0';
}

/* ---------------------------------------------------------------------
 * the URL, canonicalised once
 * ---------------------------------------------------------------------
 */

/* the Host header libcurl would send: the port only when not the default */
static char *
host_header(const char *scheme, const char *host, const char *port)
{
	if (port == NULL ||
		(strcmp(scheme, "http") == 0 && strcmp(port, "80") == 0) ||
		(strcmp(scheme, "https") == 0 && strcmp(port, "443") == 0))
		return pstrdup(host);
	return psprintf("%s:%s", host, port);
}

/*
 * The path as AWS's signers normalise it (empty segments dropped, a final
 * "/" kept), each segment as written encoded once more.
 */
static char *
canonical_uri(const char *path)
{
	StringInfoData buf;
	const char *segment = path;
	size_t		len = strlen(path);
	bool		final_slash = len > 0 && path[len - 1] == '/';

	initStringInfo(&buf);
	while (*segment)
	{
		size_t		n = strcspn(segment, "/");

		if (n > 0)
		{
			appendStringInfoChar(&buf, '/');
			transport_form_bytes(&buf, segment, n);
		}
		segment += n;
		if (*segment == '/')
			segment++;
	}
	if (buf.len == 0 || final_slash)
		appendStringInfoChar(&buf, '/');
	return buf.data;
}

/* a name or value of the URL's query, decoded then encoded */
static char *
query_part(const char *part, size_t len)
{
	int			decoded_len;
	char	   *decoded = curl_easy_unescape(NULL, part, (int) len, &decoded_len);
	StringInfoData buf;

	if (decoded == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	initStringInfo(&buf);
	transport_form_bytes(&buf, decoded, decoded_len);
	curl_free(decoded);
	return buf.data;
}

static int
compare_params(const void *a, const void *b)
{
	const QueryParam *pa = a;
	const QueryParam *pb = b;
	int			c = strcmp(pa->name, pb->name);

	return c != 0 ? c : strcmp(pa->value, pb->value);
}

/* the query's parameters, encoded and sorted; "" when there is none */
static char *
canonical_query(const char *query)
{
	QueryParam *params;
	int			n = 0;
	StringInfoData buf;
	const char *p = query;

	if (query == NULL)
		return pstrdup("");
	params = palloc((strlen(query) / 2 + 1) * sizeof(QueryParam));
	while (*p)
	{
		size_t		len = strcspn(p, "&");
		const char *eq = memchr(p, '=', len);

		if (len > 0)
		{
			size_t		name_len = eq ? (size_t) (eq - p) : len;

			params[n].name = query_part(p, name_len);
			params[n].value = eq ? query_part(eq + 1, len - name_len - 1) : pstrdup("");
			n++;
		}
		p += len;
		if (*p == '&')
			p++;
	}
	qsort(params, n, sizeof(QueryParam), compare_params);
	initStringInfo(&buf);
	for (int i = 0; i < n; i++)
		appendStringInfo(&buf, "%s%s=%s", i > 0 ? "&" : "", params[i].name,
						 params[i].value);
	return buf.data;
}

/*
 * Host header and canonical URI and query of a URL, with libcurl's parser
 * (the one that sends the request): it also removes "." and ".." segments,
 * as the canonical path must.
 */
static void
canonicalise_url(SigV4Signer *signer, const char *url)
{
	CURLU	   *u = curl_url();
	char	   *scheme = NULL;
	char	   *host = NULL;
	char	   *port = NULL;
	char	   *path = NULL;
	char	   *query = NULL;
	bool		ok;

	ok = (u != NULL &&
		  curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		  curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
		  curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
		  curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK);
	if (ok)
	{
		/* these two are absent unless the URL has them */
		(void) curl_url_get(u, CURLUPART_PORT, &port, 0);
		(void) curl_url_get(u, CURLUPART_QUERY, &query, 0);
		signer->host = host_header(scheme, host, port);
		signer->canonical_uri = canonical_uri(path);
		signer->canonical_query = canonical_query(query);
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(u);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("could not parse URL \"%s\" to sign requests to it", url)));
}

/* ---------------------------------------------------------------------
 * the signer
 * ---------------------------------------------------------------------
 */

static void
forget_key(SigV4Signer *signer)
{
	explicit_bzero(signer->key, sizeof(signer->key));
	signer->key_date[0] = '\0';
	if (signer->key_secret)
		explicit_bzero(signer->key_secret, strlen(signer->key_secret));
}

/* runs when the signer's memory goes, including on error cleanup */
static void
signer_context_gone(void *arg)
{
	forget_key((SigV4Signer *) arg);
}

/*
 * A signer of requests to url (its Host, path and query are canonicalised
 * now) for a region and service, in a child of the current memory context.
 */
SigV4Signer *
sigv4_signer_create(const char *url, const char *region, const char *service)
{
	MemoryContext context = AllocSetContextCreate(CurrentMemoryContext,
												  "sqs_ingest SigV4 signer",
												  ALLOCSET_SMALL_SIZES);
	SigV4Signer *signer = MemoryContextAllocZero(context, sizeof(SigV4Signer));
	MemoryContext old;

	signer->context = context;
	signer->wipe.func = signer_context_gone;
	signer->wipe.arg = signer;
	MemoryContextRegisterResetCallback(context, &signer->wipe);

	fetch_digests();
	old = MemoryContextSwitchTo(context);
	signer->region = pstrdup(region);
	signer->service = pstrdup(service);
	canonicalise_url(signer, url);
	initStringInfo(&signer->canonical);
	initStringInfo(&signer->to_sign);
	MemoryContextSwitchTo(old);
	return signer;
}

void
sigv4_signer_free(SigV4Signer *signer)
{
	MemoryContextDelete(signer->context);
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request") */
static void
derive_key(SigV4Signer *signer, const char *secret, const char *date)
{
	size_t		secret_len = strlen(secret);
	char	   *first_key;
	unsigned char k_date[SHA256_LEN];
	unsigned char k_region[SHA256_LEN];
	unsigned char k_service[SHA256_LEN];

	if (signer->key_secret && strcmp(signer->key_date, date) == 0 &&
		strcmp(signer->key_secret, secret) == 0)
		return;

	forget_key(signer);
	if (signer->key_secret)
		pfree(signer->key_secret);
	signer->key_secret = NULL;

	first_key = palloc(4 + secret_len);
	memcpy(first_key, "AWS4", 4);
	memcpy(first_key + 4, secret, secret_len);
	hmac_sha256((unsigned char *) first_key, 4 + secret_len, date, strlen(date), k_date);
	explicit_bzero(first_key, 4 + secret_len);
	pfree(first_key);
	hmac_sha256(k_date, SHA256_LEN, signer->region, strlen(signer->region), k_region);
	hmac_sha256(k_region, SHA256_LEN, signer->service, strlen(signer->service), k_service);
	hmac_sha256(k_service, SHA256_LEN, "aws4_request", 12, signer->key);
	explicit_bzero(k_date, SHA256_LEN);
	explicit_bzero(k_region, SHA256_LEN);
	explicit_bzero(k_service, SHA256_LEN);

	signer->key_secret = MemoryContextStrdup(signer->context, secret);
	strlcpy(signer->key_date, date, sizeof(signer->key_date));
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* take a "Name: value" line to sign; false if it is not one (or empty) */
static bool
parse_header(const char *line, SignedHeader *header)
{
	const char *colon = strchr(line, ':');
	const char *value;
	const char *end;

	if (colon == NULL || colon == line)
		return false;
	value = colon + 1;
	while (is_space(*value))
		value++;
	end = value + strlen(value);
	while (end > value && is_space(end[-1]))
		end--;
	if (end == value)
		return false;			/* "Name:" tells libcurl not to send it */
	header->name = line;
	header->name_len = colon - line;
	header->value = value;
	header->value_len = end - value;
	return true;
}

static void
add_header(SignedHeader *headers, int *n, const char *name, const char *value)
{
	headers[*n].name = name;
	headers[*n].name_len = strlen(name);
	headers[*n].value = value;
	headers[*n].value_len = strlen(value);
	headers[*n].order = *n;
	(*n)++;
}

/* by lower-case name (a shorter name first), then as they came */
static int
compare_headers(const void *a, const void *b)
{
	const SignedHeader *ha = a;
	const SignedHeader *hb = b;
	int			len = Min(ha->name_len, hb->name_len);
	int			c = pg_strncasecmp(ha->name, hb->name, len);

	if (c != 0)
		return c;
	if (ha->name_len != hb->name_len)
		return ha->name_len - hb->name_len;
	return ha->order - hb->order;
}

static bool
same_name(const SignedHeader *a, const SignedHeader *b)
{
	return a->name_len == b->name_len &&
		pg_strncasecmp(a->name, b->name, a->name_len) == 0;
}

static void
append_lower(StringInfo buf, const char *s, int len)
{
	for (int i = 0; i < len; i++)
		appendStringInfoCharMacro(buf, pg_ascii_tolower((unsigned char) s[i]));
}

/* a value with each run of spaces inside it made one */
static void
append_value(StringInfo buf, const char *s, int len)
{
	for (int i = 0; i < len; i++)
	{
		if (is_space(s[i]) && i > 0 && is_space(s[i - 1]))
			continue;
		appendStringInfoCharMacro(buf, is_space(s[i]) ? ' ' : s[i]);
	}
}

/* append a line to a list; false if out of memory */
static bool
append_line(struct curl_slist **list, const char *line)
{
	struct curl_slist *next = curl_slist_append(*list, line);

	if (next == NULL)
		return false;
	*list = next;
	return true;
}

/*
 * The header lines to send a request with: those given, then Host,
 * X-Amz-Date, X-Amz-Security-Token (with a session token) and
 * Authorization, every one signed but those libcurl is told not to send.
 * Free the list with transport_free_headers(): it may hold a token.
 */
struct curl_slist *
sigv4_sign(SigV4Signer *signer, const char *method,
		   const struct curl_slist *headers, const char *payload,
		   size_t payload_len, const SigV4Credentials *credentials,
		   time_t when)
{
	StringInfo	canonical = &signer->canonical;
	StringInfo	to_sign = &signer->to_sign;
	StringInfoData names;
	SignedHeader *signed_headers;
	int			n = 0;
	int			given = 0;
	struct tm	tm;
	char		amz_date[17];
	char		date[9];
	unsigned char digest[SHA256_LEN];
	struct curl_slist *list = NULL;
	char	   *host_line;
	char	   *date_line;
	char	   *token_line = NULL;
	bool		ok = true;

	if (gmtime_r(&when, &tm) == NULL ||
		strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm) != 16)
		elog(ERROR, "could not format the time of a request to sign");
	strlcpy(date, amz_date, sizeof(date));

	for (const struct curl_slist *h = headers; h; h = h->next)
		given++;
	signed_headers = palloc((given + 3) * sizeof(SignedHeader));
	for (const struct curl_slist *h = headers; h; h = h->next)
	{
		if (parse_header(h->data, &signed_headers[n]))
		{
			signed_headers[n].order = n;
			n++;
		}
	}
	add_header(signed_headers, &n, "host", signer->host);
	add_header(signed_headers, &n, "x-amz-date", amz_date);
	if (credentials->session_token)
		add_header(signed_headers, &n, "x-amz-security-token",
				   credentials->session_token);
	qsort(signed_headers, n, sizeof(SignedHeader), compare_headers);

	/* the canonical request; a header given twice is signed once, joined */
	resetStringInfo(canonical);
	appendStringInfo(canonical, "%s\n%s\n%s\n", method, signer->canonical_uri,
					 signer->canonical_query);
	initStringInfo(&names);
	for (int i = 0; i < n; i++)
	{
		if (i > 0 && same_name(&signed_headers[i - 1], &signed_headers[i]))
		{
			canonical->len--;	/* the newline */
			appendStringInfoChar(canonical, ',');
		}
		else
		{
			if (names.len > 0)
				appendStringInfoChar(&names, ';');
			append_lower(&names, signed_headers[i].name, signed_headers[i].name_len);
			append_lower(canonical, signed_headers[i].name, signed_headers[i].name_len);
			appendStringInfoChar(canonical, ':');
		}
		append_value(canonical, signed_headers[i].value, signed_headers[i].value_len);
		appendStringInfoChar(canonical, '\n');
	}
	pfree(signed_headers);
	appendStringInfo(canonical, "\n%s\n", names.data);
	sha256(payload, payload_len, digest);
	append_hex(canonical, digest, SHA256_LEN);

	resetStringInfo(to_sign);
	appendStringInfo(to_sign, SIGV4_ALGORITHM "\n%s\n%s/%s/%s/aws4_request\n",
					 amz_date, date, signer->region, signer->service);
	sha256(canonical->data, canonical->len, digest);
	append_hex(to_sign, digest, SHA256_LEN);
	/* the canonical request holds the session token */
	explicit_bzero(canonical->data, canonical->len);

	derive_key(signer, credentials->secret_access_key, date);
	hmac_sha256(signer->key, SHA256_LEN, to_sign->data, to_sign->len, digest);

	resetStringInfo(to_sign);
	appendStringInfo(to_sign,
					 "Authorization: " SIGV4_ALGORITHM " Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, Signature=",
					 credentials->access_key_id, date, signer->region,
					 signer->service, names.data);
	append_hex(to_sign, digest, SHA256_LEN);
	pfree(names.data);
	host_line = psprintf("Host: %s", signer->host);
	date_line = psprintf("X-Amz-Date: %s", amz_date);
	if (credentials->session_token)
		token_line = secret_header_line("X-Amz-Security-Token",
										credentials->session_token);

	for (const struct curl_slist *h = headers; h && ok; h = h->next)
		ok = append_line(&list, h->data);
	ok = ok && append_line(&list, host_line) && append_line(&list, date_line) &&
		(token_line == NULL || append_line(&list, token_line)) &&
		append_line(&list, to_sign->data);
	secret_free(token_line);
	pfree(host_line);
	pfree(date_line);
	if (!ok)
	{
		transport_free_headers(list);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	}
	return list;
}
