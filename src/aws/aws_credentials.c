/*-------------------------------------------------------------------------
 *
 * aws_credentials.c
 *	  The AWS credential chain, resolved as the AWS SDKs do when the
 *	  credential settings are empty, with a per-process cache.
 *
 * In order, the first source that yields credentials wins:
 *
 *	1. the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
 *	   AWS_SESSION_TOKEN;
 *	2. web identity: AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN, exchanged
 *	   through STS AssumeRoleWithWebIdentity (EKS service accounts);
 *	3. the shared config and credentials files, profile AWS_PROFILE or
 *	   "default": static keys, or role_arn + source_profile through STS
 *	   AssumeRole;
 *	4. container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or
 *	   _FULL_URI, with AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE] (ECS tasks,
 *	   EKS Pod Identity);
 *	5. EC2 instance metadata, IMDSv2.
 *
 * A source that is not set up is passed over; one that is set up but fails
 * stops the chain with its own error, so that a broken role is reported as
 * such rather than hidden behind the next source.
 *
 * Temporary credentials are refreshed by the next caller once they come
 * within a margin of their expiration, from the same source.  Callers copy
 * what they need (libcurl copies the key pair of each request), so
 * requests already in flight keep the credentials they were signed with.
 * A failed refresh is logged once and the current credentials stay in use
 * until they expire.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <curl/curl.h>

#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "aws_credentials.h"
#include "aws_files.h"
#include "credential_http.h"
#include "redact.h"
#include "secrets.h"
#include "transport.h"

/* refresh this long before expiration, or a quarter of a short lifetime */
#define REFRESH_MARGIN_MS (5 * 60 * 1000L)
/* after a failed refresh, wait this long before trying again */
#define REFRESH_RETRY_MS (10 * 1000L)
#define STS_TIMEOUT_MS 10000L
#define CONTAINER_TIMEOUT_MS 5000L
#define IMDS_TIMEOUT_MS 3000L
#define IMDS_TOKEN_TTL_SECONDS 21600
/* a bigger token file is not one */
#define MAX_TOKEN_FILE (64 * 1024)

typedef enum SourceResult
{
	SOURCE_ABSENT,				/* not set up here: try the next one */
	SOURCE_FOUND,
	SOURCE_FAILED				/* set up, but it did not work */
} SourceResult;

typedef SourceResult (*SourceFetch) (const AwsChainScope *scope, AwsCredentials *out,
									 StringInfo detail);

/*
 * A source and its messages, each a whole sentence marked with gettext_noop
 * and translated where it is reported.
 */
typedef struct CredentialSource
{
	const char *name;			/* in the list of sources tried */
	SourceFetch fetch;
	const char *get_failed;		/* errmsg: the chain stops at this source */
	const char *refresh_failed; /* errmsg: a refresh failed */
	const char *refreshed;		/* errmsg: a refresh worked again */
	const char *hint;			/* errhint of the first two */
} CredentialSource;

static SourceResult from_environment(const AwsChainScope *scope, AwsCredentials *out, StringInfo detail);
static SourceResult from_web_identity(const AwsChainScope *scope, AwsCredentials *out, StringInfo detail);
static SourceResult from_profile(const AwsChainScope *scope, AwsCredentials *out, StringInfo detail);
static SourceResult from_container(const AwsChainScope *scope, AwsCredentials *out, StringInfo detail);
static SourceResult from_imds(const AwsChainScope *scope, AwsCredentials *out, StringInfo detail);

static const CredentialSource sources[] = {
	{gettext_noop("the environment"), from_environment,
	gettext_noop("could not get AWS credentials from the environment"),
	gettext_noop("could not refresh AWS credentials from the environment"),
	gettext_noop("sqs_ingest refreshed its AWS credentials from the environment again"),
	gettext_noop("Set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the server's environment.")},
	{gettext_noop("web identity"), from_web_identity,
	gettext_noop("could not get AWS credentials from web identity"),
	gettext_noop("could not refresh AWS credentials from web identity"),
	gettext_noop("sqs_ingest refreshed its AWS credentials from web identity again"),
	gettext_noop("Check AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN and the role's trust policy; AWS_ENDPOINT_URL_STS sets another STS endpoint.")},
	{gettext_noop("the shared config and credentials files"), from_profile,
	gettext_noop("could not get AWS credentials from the shared config and credentials files"),
	gettext_noop("could not refresh AWS credentials from the shared config and credentials files"),
	gettext_noop("sqs_ingest refreshed its AWS credentials from the shared config and credentials files again"),
	gettext_noop("Check AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE (default: ~/.aws/credentials and ~/.aws/config of the server's operating system user).")},
	{gettext_noop("container credentials"), from_container,
	gettext_noop("could not get AWS credentials from container credentials"),
	gettext_noop("could not refresh AWS credentials from container credentials"),
	gettext_noop("sqs_ingest refreshed its AWS credentials from container credentials again"),
	gettext_noop("Check AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or AWS_CONTAINER_CREDENTIALS_FULL_URI and the authorization token.")},
	{gettext_noop("EC2 instance metadata"), from_imds,
	gettext_noop("could not get AWS credentials from EC2 instance metadata"),
	gettext_noop("could not refresh AWS credentials from EC2 instance metadata"),
	gettext_noop("sqs_ingest refreshed its AWS credentials from EC2 instance metadata again"),
	gettext_noop("Check the instance's IAM role and its metadata options (IMDSv2, hop limit); AWS_EC2_METADATA_DISABLED=true turns this source off.")},
};

#define NUM_SOURCES lengthof(sources)

/* the cache: in TopMemoryContext, wiped when replaced */
static AwsCredentials *cached = NULL;
static int	cached_source = -1;
static TimestampTz cached_at = 0;
static TimestampTz next_refresh_attempt = 0;
static bool refresh_failure_logged = false;

/* ---------------------------------------------------------------------
 * helpers
 * ---------------------------------------------------------------------
 */

static bool
is_set(const char *s)
{
	return s != NULL && s[0] != '\0';
}

static const char *
env_or_null(const char *name)
{
	const char *value = getenv(name);

	return is_set(value) ? value : NULL;
}

/* printable ASCII without spaces, as every AWS key, secret and token is */
static bool
plausible_field(const char *s, size_t max_len)
{
	size_t		len = 0;

	for (; *s; s++, len++)
		if (*s < 0x21 || *s > 0x7e || len >= max_len)
			return false;
	return len > 0;
}

static void
free_credentials(AwsCredentials *creds)
{
	secret_free(creds->access_key_id);
	secret_free(creds->secret_access_key);
	secret_free(creds->session_token);
	pfree(creds);
}

/*
 * Parse an ISO 8601 UTC time as AWS writes expirations:
 * 2026-11-25T22:15:07Z, optionally with fractional seconds or +00:00.
 */
static bool
parse_expiration(const char *text, TimestampTz *result)
{
	struct pg_tm tm = {0};
	int			consumed = 0;
	const char *rest;
	int			tz = 0;

	if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon,
			   &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec,
			   &consumed) != 6 || consumed == 0)
		return false;
	rest = text + consumed;
	if (*rest == '.')
		for (rest++; *rest >= '0' && *rest <= '9'; rest++)
			;
	if (strcmp(rest, "Z") != 0 && strcmp(rest, "+00:00") != 0)
		return false;
	if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
		tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return false;
	return tm2timestamp(&tm, 0, &tz, result) == 0;
}

/*
 * Check what a source found and copy it into out.  The strings are
 * checked so that nothing a service answers can reach a header unsafely.
 */
static SourceResult
accept_credentials(AwsCredentials *out, const char *source,
				   const char *access_key_id, const char *secret_access_key,
				   const char *session_token, const char *expiration,
				   StringInfo detail)
{
	if (!is_set(access_key_id) || !is_set(secret_access_key))
	{
		appendStringInfoString(detail, _("the answer holds no access key id or no secret access key"));
		return SOURCE_FAILED;
	}
	if (!plausible_field(access_key_id, 128) ||
		!plausible_field(secret_access_key, 256) ||
		(is_set(session_token) && !plausible_field(session_token, 8192)))
	{
		appendStringInfoString(detail, _("the credentials hold characters or lengths that AWS credentials never have"));
		return SOURCE_FAILED;
	}
	out->expiration = 0;
	if (is_set(expiration) && !parse_expiration(expiration, &out->expiration))
	{
		appendStringInfo(detail, _("the expiration \"%s\" is not an ISO 8601 UTC time"),
						 expiration);
		return SOURCE_FAILED;
	}
	out->access_key_id = pstrdup(access_key_id);
	out->secret_access_key = pstrdup(secret_access_key);
	out->session_token = is_set(session_token) ? pstrdup(session_token) : NULL;
	strlcpy(out->source, source, AWS_SOURCE_LEN);
	return SOURCE_FOUND;
}

/* accept_credentials() for what a credential service answered */
static SourceResult
accept_document(AwsCredentials *out, const char *source,
				const CredentialDocument *doc, StringInfo detail)
{
	return accept_credentials(out, source, doc->access_key_id,
							  doc->secret_access_key, doc->session_token,
							  doc->expiration, detail);
}

/* ---------------------------------------------------------------------
 * STS
 * ---------------------------------------------------------------------
 */

/*
 * STS's regional endpoint, or the override the SDKs honour:
 * AWS_ENDPOINT_URL_STS, then AWS_ENDPOINT_URL.
 */
static char *
sts_endpoint(const char *region, StringInfo detail)
{
	const char *url = env_or_null("AWS_ENDPOINT_URL_STS");

	if (url == NULL)
		url = env_or_null("AWS_ENDPOINT_URL");
	if (url)
	{
		if (!transport_http_prefix(url, false))
		{
			appendStringInfo(detail, _("the STS endpoint \"%s\" does not start with http:// or https://"), url);
			return NULL;
		}
		return pstrdup(url);
	}
	for (const char *p = region; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
		{
			appendStringInfo(detail, _("\"%s\" is not an AWS region"), region);
			return NULL;
		}
	return psprintf("https://sts.%s.amazonaws.com%s", region,
					strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
}

/*
 * Call a credential service and take the credentials of the document it
 * answers, which parse reads.  service names the service in messages.  An
 * error is a document too (STS explains a refusal in XML; the instance
 * metadata service says "Code": "Success" or else why not): its code and
 * message join the detail.
 */
static SourceResult
service_credentials(const CredentialRequest *request, CredentialParser parse,
					const char *service, const char *source,
					AwsCredentials *out, StringInfo detail)
{
	StringInfoData response;
	StringInfoData unusable;
	CredentialDocument doc = {0};
	long		status;
	bool		parsed;
	SourceResult result = SOURCE_FAILED;

	initStringInfo(&response);
	initStringInfo(&unusable);
	if (credential_http(request, &status, &response, detail))
	{
		parsed = parse(response.data, response.len, service, &doc, &unusable);
		if (status != 200)
		{
			appendStringInfo(detail, _("%s answered HTTP %ld"), service, status);
			/* free text from the endpoint: made fit for the log first */
			if (parsed && doc.code)
				appendStringInfo(detail, ": %s", redact_aws_text(doc.code));
			if (parsed && doc.message)
				appendStringInfo(detail, ": %s", redact_aws_text(doc.message));
		}
		else if (!parsed)
			appendStringInfoString(detail, unusable.data);
		else if (doc.code && strcmp(doc.code, "Success") != 0)
			appendStringInfo(detail, _("%s answered code \"%s\""), service,
							 redact_aws_text(doc.code));
		else
			result = accept_document(out, source, &doc, detail);
		credential_document_free(&doc);
	}
	explicit_bzero(response.data, response.maxlen);
	pfree(response.data);
	pfree(unusable.data);
	return result;
}

/*
 * Call an STS action that returns credentials.  signer signs the call
 * (AssumeRole) or is NULL (AssumeRoleWithWebIdentity is unsigned).
 */
static SourceResult
sts_credentials(const AwsChainScope *scope, const char *form, const AwsCredentials *signer,
				const char *source, AwsCredentials *out, StringInfo detail)
{
	CredentialRequest request = {0};
	char	   *url = sts_endpoint(scope->region, detail);
	SigV4Credentials signing;
	SourceResult result;

	if (url == NULL)
		return SOURCE_FAILED;
	request.method = "POST";
	request.url = url;
	request.ca_file = scope->ca_file;
	request.headers[0] = "Content-Type: application/x-www-form-urlencoded; charset=utf-8";
	request.headers[1] = "Accept: text/xml";
	request.body = form;
	request.timeout_ms = STS_TIMEOUT_MS;
	if (signer)
	{
		signing.access_key_id = signer->access_key_id;
		signing.secret_access_key = signer->secret_access_key;
		signing.session_token = signer->session_token;
		request.signing = &signing;
		request.region = scope->region;
		request.service = "sts";
	}
	result = service_credentials(&request, credential_parse_sts_xml, "STS",
								 source, out, detail);
	pfree(url);
	return result;
}

/* AssumeRoleWithWebIdentity with the token read from token_file */
static SourceResult
assume_role_with_web_identity(const AwsChainScope *scope, const char *role_arn,
							  const char *session_name, const char *token_file,
							  const char *source, AwsCredentials *out,
							  StringInfo detail)
{
	StringInfoData form;
	bool		missing;
	size_t		token_len;
	char	   *token = aws_files_read(token_file, MAX_TOKEN_FILE, &missing,
									   &token_len, detail);
	SourceResult result;

	if (token == NULL)
		return SOURCE_FAILED;
	initStringInfo(&form);
	/* room for every value percent-encoded: the form never moves */
	enlargeStringInfo(&form, 3 * (token_len + strlen(role_arn) + strlen(session_name)) + 128);
	transport_form_append(&form, "Action", "AssumeRoleWithWebIdentity");
	transport_form_append(&form, "Version", "2011-06-15");
	transport_form_append(&form, "RoleArn", role_arn);
	transport_form_append(&form, "RoleSessionName", session_name);
	transport_form_append(&form, "WebIdentityToken", aws_files_strip_space(token));
	result = sts_credentials(scope, form.data, NULL, source, out, detail);
	explicit_bzero(token, token_len);
	pfree(token);
	secret_free(form.data);
	return result;
}

/* the session name the SDKs would make up when none is given */
static char *
default_session_name(void)
{
	return psprintf("sqs_ingest-%lld",
					(long long) ((GetCurrentTimestamp() / USECS_PER_SEC) +
								 (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY));
}

/* ---------------------------------------------------------------------
 * the sources
 * ---------------------------------------------------------------------
 */

/*
 * A source set up by two variables: absent while the first is unset, failed
 * if only the first is set, SOURCE_FOUND when both are.
 */
static SourceResult
variable_pair(const char *first, const char *second, StringInfo detail)
{
	if (env_or_null(first) == NULL)
	{
		appendStringInfo(detail, _("%s is not set"), first);
		return SOURCE_ABSENT;
	}
	if (env_or_null(second) == NULL)
	{
		appendStringInfo(detail, _("%s is set but %s is not"), first, second);
		return SOURCE_FAILED;
	}
	return SOURCE_FOUND;
}

static SourceResult
from_environment(const AwsChainScope *scope, AwsCredentials *out, StringInfo detail)
{
	SourceResult set_up = variable_pair("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", detail);

	if (set_up != SOURCE_FOUND)
		return set_up;
	return accept_credentials(out, "environment", getenv("AWS_ACCESS_KEY_ID"),
							  getenv("AWS_SECRET_ACCESS_KEY"),
							  env_or_null("AWS_SESSION_TOKEN"), NULL, detail);
}

static SourceResult
from_web_identity(const AwsChainScope *scope, AwsCredentials *out, StringInfo detail)
{
	SourceResult set_up = variable_pair("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", detail);
	const char *token_file = getenv("AWS_WEB_IDENTITY_TOKEN_FILE");
	const char *role_arn = getenv("AWS_ROLE_ARN");
	const char *session_name = env_or_null("AWS_ROLE_SESSION_NAME");

	if (set_up != SOURCE_FOUND)
		return set_up;
	return assume_role_with_web_identity(scope, role_arn,
										 session_name ? session_name : default_session_name(),
										 token_file, "web-identity", out, detail);
}

static SourceResult
from_profile(const AwsChainScope *scope, AwsCredentials *out, StringInfo detail)
{
	const char *profile = env_or_null("AWS_PROFILE");
	bool		named = profile != NULL;
	const char *credentials_path = env_or_null("AWS_SHARED_CREDENTIALS_FILE");
	const char *config_path = env_or_null("AWS_CONFIG_FILE");
	char		source[AWS_SOURCE_LEN];
	ProfileSettings p;
	SourceResult result;

	if (!named)
		profile = "default";
	if (credentials_path == NULL)
		credentials_path = psprintf("%s/.aws/credentials", aws_files_home_directory());
	if (config_path == NULL)
		config_path = psprintf("%s/.aws/config", aws_files_home_directory());
	snprintf(source, sizeof(source), "profile:%s", profile);

	if (!aws_files_load_profile(profile, credentials_path, config_path, &p, detail))
		return SOURCE_FAILED;
	if (!p.found)
	{
		appendStringInfo(detail, _("profile \"%s\" is in neither \"%s\" nor \"%s\""),
						 profile, credentials_path, config_path);
		/* a profile asked for by name must exist, as in the SDKs */
		return named ? SOURCE_FAILED : SOURCE_ABSENT;
	}

	if (p.role_arn && p.source_profile)
	{
		/* assume the role with the source profile's own keys */
		ProfileSettings src;
		AwsCredentials signer = {0};

		if (!aws_files_load_profile(p.source_profile, credentials_path, config_path, &src, detail))
			result = SOURCE_FAILED;
		else
		{
			StringInfoData form;

			result = accept_credentials(&signer, source, src.aws_access_key_id,
										src.aws_secret_access_key,
										src.aws_session_token, NULL, detail);
			if (result != SOURCE_FOUND)
			{
				resetStringInfo(detail);
				appendStringInfo(detail, _("source_profile \"%s\" of profile \"%s\" holds no static keys"),
								 p.source_profile, profile);
				result = SOURCE_FAILED;
			}
			else
			{
				initStringInfo(&form);
				transport_form_append(&form, "Action", "AssumeRole");
				transport_form_append(&form, "Version", "2011-06-15");
				transport_form_append(&form, "RoleArn", p.role_arn);
				transport_form_append(&form, "RoleSessionName",
									  p.role_session_name ? p.role_session_name :
									  default_session_name());
				result = sts_credentials(scope, form.data, &signer, source, out, detail);
				pfree(form.data);
				secret_free(signer.access_key_id);
				secret_free(signer.secret_access_key);
				secret_free(signer.session_token);
			}
			aws_files_free_profile(&src);
		}
	}
	else if (p.aws_access_key_id)
		result = accept_credentials(out, source, p.aws_access_key_id,
									p.aws_secret_access_key, p.aws_session_token,
									NULL, detail);
	else
	{
		appendStringInfo(detail, _("profile \"%s\" holds neither aws_access_key_id nor role_arn with source_profile"),
						 profile);
		result = SOURCE_ABSENT;
	}
	aws_files_free_profile(&p);
	return result;
}

/*
 * May credentials be fetched over plain http from this host, as libcurl's
 * URL parser gives it?  As in the SDKs: loopback, and the ECS and EKS Pod
 * Identity link-local addresses.
 */
static bool
allowed_container_host(const char *host)
{
	size_t		len = strlen(host);
	char		name[INET6_ADDRSTRLEN];
	struct in_addr addr4;
	struct in6_addr addr6;
	struct in6_addr eks6;

	if (host[0] == '[')
	{
		if (len < 3 || host[len - 1] != ']' || len - 2 >= sizeof(name))
			return false;
		memcpy(name, host + 1, len - 2);
		name[len - 2] = '\0';
		if (inet_pton(AF_INET6, name, &addr6) != 1)
			return false;
		(void) inet_pton(AF_INET6, "fd00:ec2::23", &eks6);
		return IN6_IS_ADDR_LOOPBACK(&addr6) ||
			memcmp(&addr6, &eks6, sizeof(addr6)) == 0;
	}
	if (pg_strcasecmp(host, "localhost") == 0 ||
		strcmp(host, "169.254.170.2") == 0 || strcmp(host, "169.254.170.23") == 0)
		return true;
	return inet_pton(AF_INET, host, &addr4) == 1 &&
		(ntohl(addr4.s_addr) >> 24) == 127;
}

/*
 * May container credentials be fetched from this URL?  It is parsed by
 * libcurl's own URL parser, so that the host checked is the host libcurl
 * connects to, whatever a hand-made parser would make of
 * "http://127.0.0.1:80@elsewhere/".  https goes anywhere, plain http only
 * to allowed_container_host(); a user name or password is refused outright.
 * Returns false with the reason in detail; *tls tells https.
 */
static bool
check_container_url(const char *url, bool *tls, StringInfo detail)
{
	CURLU	   *parsed = curl_url();
	char	   *scheme = NULL;
	char	   *host = NULL;
	char	   *user = NULL;
	char	   *password = NULL;
	bool		ok = false;

	if (parsed == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	if (curl_url_set(parsed, CURLUPART_URL, url, 0) != CURLUE_OK ||
		curl_url_get(parsed, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
		curl_url_get(parsed, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		appendStringInfoString(detail, _("AWS_CONTAINER_CREDENTIALS_FULL_URI is not a valid URL"));
	else if (curl_url_get(parsed, CURLUPART_USER, &user, 0) != CURLUE_NO_USER ||
			 curl_url_get(parsed, CURLUPART_PASSWORD, &password, 0) != CURLUE_NO_PASSWORD)
		appendStringInfoString(detail, _("AWS_CONTAINER_CREDENTIALS_FULL_URI must not hold a user name or password"));
	else if (strcmp(scheme, "https") == 0 ||
			 (strcmp(scheme, "http") == 0 && allowed_container_host(host)))
	{
		*tls = strcmp(scheme, "https") == 0;
		ok = true;
	}
	else
		appendStringInfoString(detail, _("AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, or http to a loopback address, 169.254.170.2, 169.254.170.23 or fd00:ec2::23"));
	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_free(password);
	curl_url_cleanup(parsed);
	return ok;
}

static SourceResult
from_container(const AwsChainScope *scope, AwsCredentials *out, StringInfo detail)
{
	const char *relative = env_or_null("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = env_or_null("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *token_file = env_or_null("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	CredentialRequest request = {0};
	char	   *token = NULL;
	size_t		token_len = 0;
	char	   *authorization = NULL;
	SourceResult result;

	request.method = "GET";
	request.timeout_ms = CONTAINER_TIMEOUT_MS;
	request.ca_file = scope->ca_file;
	request.direct = true;
	if (relative)
	{
		if (relative[0] != '/')
		{
			appendStringInfoString(detail, _("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI does not start with /"));
			return SOURCE_FAILED;
		}
		request.url = psprintf("http://169.254.170.2%s", relative);
	}
	else if (full)
	{
		bool		tls;

		if (!check_container_url(full, &tls, detail))
			return SOURCE_FAILED;
		request.direct = !tls;
		request.url = full;
	}
	else
	{
		appendStringInfoString(detail, _("neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor AWS_CONTAINER_CREDENTIALS_FULL_URI is set"));
		return SOURCE_ABSENT;
	}

	/* the token file wins: EKS Pod Identity rotates it */
	if (token_file)
	{
		bool		missing;

		token = aws_files_read(token_file, MAX_TOKEN_FILE, &missing, &token_len,
							   detail);
		if (token == NULL)
			return SOURCE_FAILED;
		aws_files_strip_space(token);
	}
	else if (env_or_null("AWS_CONTAINER_AUTHORIZATION_TOKEN"))
	{
		token = pstrdup(getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN"));
		token_len = strlen(token);
	}
	if (token)
	{
		if (strpbrk(token, "\r\n") != NULL)
		{
			explicit_bzero(token, token_len);
			pfree(token);
			appendStringInfoString(detail, _("the container authorization token holds a line break"));
			return SOURCE_FAILED;
		}
		request.headers[0] = authorization = secret_header_line("Authorization", token);
	}

	result = service_credentials(&request, credential_parse_json, request.url,
								 "container", out, detail);
	if (token)
	{
		/* all of what was read: a NUL in the file would stop strlen() */
		explicit_bzero(token, token_len);
		pfree(token);
	}
	secret_free(authorization);
	return result;
}

/*
 * A plain-text answer of the instance metadata service, palloc'd (release
 * it with secret_free()), or NULL with the reason in detail; *status is the
 * HTTP status, 0 if no answer came.
 */
static char *
imds_text(const CredentialRequest *request, long *status, StringInfo detail)
{
	StringInfoData response;
	char	   *text = NULL;

	initStringInfo(&response);
	if (!credential_http(request, status, &response, detail))
		*status = 0;
	else if (*status != 200)
		appendStringInfo(detail, _("%s answered HTTP %ld"), request->url, *status);
	else
		text = pstrdup(aws_files_strip_space(response.data));
	explicit_bzero(response.data, response.maxlen);
	pfree(response.data);
	return text;
}

static SourceResult
from_imds(const AwsChainScope *scope, AwsCredentials *out, StringInfo detail)
{
	const char *disabled = env_or_null("AWS_EC2_METADATA_DISABLED");
	const char *endpoint = env_or_null("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	const char *mode = env_or_null("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
	CredentialRequest request = {0};
	char	   *base;
	char	   *token;
	char	   *token_header;
	char	   *role;
	long		status;
	SourceResult result;

	if (disabled && pg_strcasecmp(disabled, "true") == 0)
	{
		appendStringInfoString(detail, _("AWS_EC2_METADATA_DISABLED is true"));
		return SOURCE_ABSENT;
	}
	if (endpoint == NULL)
		endpoint = (mode && pg_strcasecmp(mode, "IPv6") == 0) ?
			"http://[fd00:ec2::254]" : "http://169.254.169.254";
	if (!transport_http_prefix(endpoint, false))
	{
		appendStringInfoString(detail, _("AWS_EC2_METADATA_SERVICE_ENDPOINT does not start with http:// or https://"));
		return SOURCE_FAILED;
	}
	base = pstrdup(endpoint);
	aws_files_strip_space(base);
	if (base[strlen(base) - 1] == '/')
		base[strlen(base) - 1] = '\0';

	/* IMDSv2: a session token first; no answer means not on EC2 */
	request.method = "PUT";
	request.url = psprintf("%s/latest/api/token", base);
	request.headers[0] = psprintf("X-aws-ec2-metadata-token-ttl-seconds: %d",
								  IMDS_TOKEN_TTL_SECONDS);
	request.timeout_ms = IMDS_TIMEOUT_MS;
	request.direct = true;
	request.ca_file = scope->ca_file;
	token = imds_text(&request, &status, detail);
	if (token == NULL)
		return SOURCE_ABSENT;
	if (!plausible_field(token, 1024))
	{
		secret_free(token);
		appendStringInfoString(detail, _("the instance metadata service sent an unusable token"));
		return SOURCE_FAILED;
	}
	token_header = psprintf("X-aws-ec2-metadata-token: %s", token);
	secret_free(token);

	/* the role attached to the instance */
	request.method = "GET";
	request.url = psprintf("%s/latest/meta-data/iam/security-credentials/", base);
	request.headers[0] = token_header;
	role = imds_text(&request, &status, detail);
	if (role == NULL)
	{
		if (status == 404)
			appendStringInfoString(detail, _(": no IAM role is attached to the instance"));
		result = status == 404 ? SOURCE_ABSENT : SOURCE_FAILED;
	}
	else
	{
		role[strcspn(role, "\r\n")] = '\0';
		if (role[0] == '\0' || strspn(role, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+=,.@_-") != strlen(role))
		{
			appendStringInfoString(detail, _("the instance metadata service named no usable IAM role"));
			result = SOURCE_FAILED;
		}
		else
		{
			request.url = psprintf("%s/latest/meta-data/iam/security-credentials/%s",
								   base, role);
			result = service_credentials(&request, credential_parse_json, request.url,
										 "imds", out, detail);
		}
	}
	secret_free(token_header);
	return result;
}

/* ---------------------------------------------------------------------
 * the chain and its cache
 * ---------------------------------------------------------------------
 */

/* keep fresh credentials in the cache, wiping what they replace */
static void
cache_credentials(const AwsCredentials *fresh, int source)
{
	AwsCredentials *copy = MemoryContextAllocZero(TopMemoryContext, sizeof(AwsCredentials));

	copy->access_key_id = MemoryContextStrdup(TopMemoryContext, fresh->access_key_id);
	copy->secret_access_key = MemoryContextStrdup(TopMemoryContext, fresh->secret_access_key);
	if (fresh->session_token)
		copy->session_token = MemoryContextStrdup(TopMemoryContext, fresh->session_token);
	copy->expiration = fresh->expiration;
	memcpy(copy->source, fresh->source, AWS_SOURCE_LEN);
	if (cached)
		free_credentials(cached);
	cached = copy;
	cached_source = source;
	cached_at = GetCurrentTimestamp();
	next_refresh_attempt = 0;
	refresh_failure_logged = false;
}

/* ask one source, in a short-lived memory context */
static SourceResult
ask_source(int source, const AwsChainScope *scope, StringInfo detail)
{
	MemoryContext context = AllocSetContextCreate(CurrentMemoryContext,
												  "sqs_ingest credentials",
												  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(context);
	AwsCredentials fresh = {0};
	SourceResult result;
	StringInfoData reason;

	initStringInfo(&reason);
	result = sources[source].fetch(scope, &fresh, &reason);
	MemoryContextSwitchTo(old);
	appendStringInfoString(detail, reason.data);
	if (result == SOURCE_FOUND)
	{
		cache_credentials(&fresh, source);
		secret_free(fresh.access_key_id);
		secret_free(fresh.secret_access_key);
		secret_free(fresh.session_token);
	}
	MemoryContextDelete(context);
	return result;
}

/* run the whole chain; errors out if no source yields credentials */
static void
resolve_chain(const AwsChainScope *scope)
{
	StringInfoData tried;

	initStringInfo(&tried);
	appendStringInfoString(&tried, _("the settings (sqs_ingest.access_key_id is empty)"));
	for (int i = 0; i < (int) NUM_SOURCES; i++)
	{
		StringInfoData detail;
		SourceResult result;

		initStringInfo(&detail);
		result = ask_source(i, scope, &detail);
		if (result == SOURCE_FOUND)
		{
			pfree(detail.data);
			pfree(tried.data);
			return;
		}
		if (result == SOURCE_FAILED)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
					 errmsg_internal("%s", _(sources[i].get_failed)),
					 errdetail("%s.", detail.data),
					 errhint("%s", _(sources[i].hint))));
		appendStringInfo(&tried, "; %s (%s)", _(sources[i].name), detail.data);
		pfree(detail.data);
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
			 errmsg("no AWS credentials for sqs_ingest"),
			 errdetail("Tried, in order: %s.", tried.data),
			 errhint("Set sqs_ingest.access_key_id and sqs_ingest.secret_access_key, or give the server one of the AWS credential sources of the AWS SDKs' chain (docs/reference.md).")));
}

/* are the cached credentials within their refresh margin? */
static bool
needs_refresh(TimestampTz now)
{
	int64		lifetime;

	if (cached->expiration == 0)
		return false;
	lifetime = cached->expiration - cached_at;
	return now >= cached->expiration - Min(REFRESH_MARGIN_MS * 1000, lifetime / 4);
}

/*
 * The credentials to sign the next request with, for the chain's sources
 * (the settings are the caller's business).  The result stays valid until
 * the next call; copy what must outlive it.
 */
const AwsCredentials *
aws_credentials_current(const AwsChainScope *scope)
{
	TimestampTz now = GetCurrentTimestamp();
	StringInfoData detail;
	int			source = cached_source;

	if (cached && !needs_refresh(now))
		return cached;
	if (cached && now < next_refresh_attempt && now < cached->expiration)
		return cached;

	if (cached)
	{
		bool		had_failed = refresh_failure_logged;

		/* refresh from the source that gave them */
		initStringInfo(&detail);
		if (ask_source(source, scope, &detail) == SOURCE_FOUND)
		{
			if (had_failed)
				ereport(LOG,
						(errcode(ERRCODE_SUCCESSFUL_COMPLETION),
						 errmsg_internal("%s", _(sources[source].refreshed))));
			pfree(detail.data);
			return cached;
		}
		if (now < cached->expiration)
		{
			if (!refresh_failure_logged)
				ereport(WARNING,
						(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
						 errmsg_internal("%s", _(sources[source].refresh_failed)),
						 errdetail("%s. The current credentials stay in use until they expire at %s.",
								   detail.data, timestamptz_to_str(cached->expiration)),
						 errhint("%s", _(sources[source].hint))));
			refresh_failure_logged = true;
			next_refresh_attempt = TimestampTzPlusMilliseconds(now, REFRESH_RETRY_MS);
			pfree(detail.data);
			return cached;
		}
		/* expired: start the chain over */
		pfree(detail.data);
		free_credentials(cached);
		cached = NULL;
		cached_source = -1;
	}
	resolve_chain(scope);
	return cached;
}
