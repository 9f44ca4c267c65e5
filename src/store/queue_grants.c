/*-------------------------------------------------------------------------
 *
 * queue_grants.c
 *	  Which queues a pipeline may read: queues granted like tables
 *	  (sqs_ingest.queue_grants), and no two readers of one queue.
 *
 * A pipeline receives and deletes its queue's messages with the server's
 * AWS credentials, whoever defined it.  So a superuser grants queues to
 * roles (sqs_ingest_grant_queue()), and a pipeline whose owner is not a
 * superuser reads only a queue granted to its owner or to a role its owner
 * is a member of (has_privs_of_role(), as for tables).  Nobody, superusers
 * included, defines a pipeline on a queue that sqs_ingest.queue_url or
 * another pipeline already reads: two readers split a queue's messages
 * between them, and each dead-letters what it cannot map of the other's.
 *
 * Queues are compared as SQS identifies them, by account id and name, the
 * last two segments of the URL's path: scheme, host and port, the case of
 * any of them, empty and "." segments, percent-encoded unreserved
 * characters, a query string or a fragment never make another queue.  The
 * host is not compared at all: requests go to the configured endpoint
 * whatever host the URL names, so a queue of one name in one account is
 * one queue here, in every region.
 *
 * What is checked when a pipeline is defined is checked again whenever it
 * would run: the launcher does not run a pipeline that may not read its
 * queue (so a revoke, a dropped owner or a change of sqs_ingest.queue_url
 * stops its workers within a second or two), a worker checks again when
 * it starts, and a drain of it is refused.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "config.h"
#include "queue_grants.h"
#include "security.h"
#include "transport.h"

PG_FUNCTION_INFO_V1(sqs_ingest_grant_queue);
PG_FUNCTION_INFO_V1(sqs_ingest_revoke_queue);

static bool
is_unreserved(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		(c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * One path segment of len bytes, with percent-encoded unreserved
 * characters decoded and other escapes' hex digits in upper case (RFC
 * 3986, 6.2.2), palloc'd.
 */
static char *
normalize_segment(const char *segment, int len)
{
	char	   *out = palloc(len + 1);
	int			n = 0;

	for (int i = 0; i < len; i++)
	{
		int			hi = -1;
		int			lo = -1;

		if (segment[i] == '%' && i + 2 < len)
		{
			hi = hex_value(segment[i + 1]);
			lo = hex_value(segment[i + 2]);
		}
		if (hi >= 0 && lo >= 0)
		{
			char		c = (char) (hi * 16 + lo);

			if (is_unreserved(c))
				out[n++] = c;
			else
			{
				out[n++] = '%';
				out[n++] = pg_toupper((unsigned char) segment[i + 1]);
				out[n++] = pg_toupper((unsigned char) segment[i + 2]);
			}
			i += 2;
		}
		else
			out[n++] = segment[i];
	}
	out[n] = '\0';
	return out;
}

/*
 * The queue an http(s) URL names, as SQS identifies it: "account/name",
 * the last two segments of its path once empty and "." segments are
 * dropped and ".." ones applied; NULL if the URL names no queue.  Pure:
 * no catalog, no setting.
 */
char *
queue_identity(const char *url)
{
	int			scheme = transport_http_prefix(url, true);
	const char *authority = url + scheme;
	const char *path;
	const char *end;
	char	  **segments;
	int			nsegments = 0;

	if (scheme == 0)
		return NULL;
	path = authority + strcspn(authority, "/?#");
	if (*path != '/')
		return NULL;
	end = path + strcspn(path, "?#");

	segments = palloc(sizeof(char *) * (end - path + 1));
	while (path < end)
	{
		const char *start = path + 1;
		int			len = 0;
		char	   *segment;

		while (start + len < end && start[len] != '/')
			len++;
		path = start + len;
		segment = normalize_segment(start, len);
		if (segment[0] == '\0' || strcmp(segment, ".") == 0)
			continue;
		if (strcmp(segment, "..") == 0)
		{
			if (nsegments > 0)
				nsegments--;
			continue;
		}
		segments[nsegments++] = segment;
	}
	if (nsegments < 2)
		return NULL;
	return psprintf("%s/%s", segments[nsegments - 2], segments[nsegments - 1]);
}

/* the queue a URL names; an error if it names none */
char *
queue_identity_checked(const char *url)
{
	char	   *identity = queue_identity(url);

	if (identity == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not the URL of an SQS queue", url),
				 errdetail("A queue URL starts with http:// or https:// and its path ends with the account id and the queue name."),
				 errhint("Give the queue's URL, for example https://sqs.us-east-1.amazonaws.com/123456789012/orders.")));
	return identity;
}

/* sqs_ingest.queue_grants, or InvalidOid before the extension's update to 1.2 */
static Oid
grants_relid(void)
{
	Oid			schema = get_namespace_oid("sqs_ingest", true);

	return OidIsValid(schema) ? get_relname_relid("queue_grants", schema) : InvalidOid;
}

/* is the queue granted to role, or to a role whose privileges it has? */
static bool
queue_granted(const char *identity, Oid role)
{
	CatalogAccess access;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	bool		granted = false;
	int			rc;

	if (!OidIsValid(grants_relid()))
		return false;
	args[0] = CStringGetTextDatum(identity);
	catalog_begin(&access);
	rc = SPI_execute_with_args("SELECT grantee::pg_catalog.oid FROM sqs_ingest.queue_grants "
							   "WHERE queue OPERATOR(pg_catalog.=) $1",
							   1, argtypes, args, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read sqs_ingest.queue_grants: %s", SPI_result_code_string(rc));
	for (uint64 i = 0; i < SPI_processed && !granted; i++)
	{
		bool		isnull;
		Oid			grantee = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
															 SPI_tuptable->tupdesc,
															 1, &isnull));

		granted = has_privs_of_role(role, grantee);
	}
	catalog_end(&access);
	return granted;
}

static bool
role_exists(Oid role)
{
	return SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(role));
}

/*
 * May the pipeline def read its queue?  defs are the pipelines of the
 * catalog, in name order.  Defining (create or alter), no other pipeline
 * may read the queue; running, of several pipelines on one queue (left
 * by a version that did not check) only the first by name runs.  The
 * settings' queue is sqs_ingest.queue_url as the server's configuration
 * sets it, not as a session may have SET it.
 */
PipelineRefusal
queue_refusal(const PipelineDefinition *def, List *defs, bool defining)
{
	char	   *identity = queue_identity(def->queue_url);
	const char *settings_url = config_server_queue_url();
	char	   *settings_identity;
	ListCell   *lc;

	if (!role_exists(def->owner))
		return PIPELINE_OWNER_DROPPED;

	/*
	 * A URL stored before URLs were checked, which names no queue: no grant
	 * can name it either, and nothing can be compared with it.
	 */
	if (identity == NULL)
		return superuser_arg(def->owner) ? PIPELINE_MAY_READ : PIPELINE_QUEUE_NOT_GRANTED;

	settings_identity = settings_url ? queue_identity(settings_url) : NULL;
	if (settings_identity && strcmp(settings_identity, identity) == 0)
		return PIPELINE_QUEUE_OF_SETTINGS;

	foreach(lc, defs)
	{
		const PipelineDefinition *other = lfirst(lc);
		int			order = strcmp(other->name, def->name);
		char	   *other_identity;

		if (order == 0 || (!defining && order > 0))
			continue;
		other_identity = queue_identity(other->queue_url);
		if (other_identity && strcmp(other_identity, identity) == 0)
			return PIPELINE_QUEUE_OF_PIPELINE;
	}

	if (!superuser_arg(def->owner) && !queue_granted(identity, def->owner))
		return PIPELINE_QUEUE_NOT_GRANTED;
	return PIPELINE_MAY_READ;
}

/* say why the pipeline may not read its queue, at elevel */
void
queue_report_refusal(const PipelineDefinition *def, PipelineRefusal refusal,
					 int elevel)
{
	char	   *identity = queue_identity(def->queue_url);

	if (identity == NULL)
		identity = def->queue_url;
	switch (refusal)
	{
		case PIPELINE_MAY_READ:
			break;
		case PIPELINE_OWNER_DROPPED:
			ereport(elevel,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("the owner of pipeline \"%s\" no longer exists", def->name),
					 errdetail("A pipeline runs with its owner's rights: one whose owner was dropped does not run."),
					 errhint("Drop the pipeline, and create it again as an existing role if it is still wanted.")));
			break;
		case PIPELINE_QUEUE_OF_SETTINGS:
			ereport(elevel,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("queue %s is the queue sqs_ingest.queue_url names", identity),
					 errdetail("Pipeline \"%s\" and the settings-based pipeline would split the queue's messages between them, so pipeline \"%s\" does not read it.",
							   def->name, def->name),
					 errhint("Give the pipeline a queue of its own.")));
			break;
		case PIPELINE_QUEUE_OF_PIPELINE:
			ereport(elevel,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("queue %s is already read by another pipeline", identity),
					 errdetail("Pipeline \"%s\" and the other pipeline would split the queue's messages between them, so pipeline \"%s\" does not read it.",
							   def->name, def->name),
					 errhint("Give the pipeline a queue of its own.")));
			break;
		case PIPELINE_QUEUE_NOT_GRANTED:
			ereport(elevel,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for queue %s", identity),
					 errdetail("Pipeline \"%s\" reads its queue with the rights of its owner, %s, to whom the queue is not granted.",
							   def->name, GetUserNameFromId(def->owner, true) ?
							   GetUserNameFromId(def->owner, true) : "(dropped)"),
					 errhint("A superuser grants a queue with sqs_ingest_grant_queue(queue_url, role).")));
			break;
	}
}

/* grants and revokes are a superuser's: they hand out the server's AWS identity */
static void
require_superuser(void)
{
	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only a superuser may grant or revoke a queue"),
				 errdetail("A queue granted to a role lets its pipelines receive and delete the queue's messages with the server's AWS credentials.")));
	if (!OidIsValid(grants_relid()))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("sqs_ingest.queue_grants does not exist"),
				 errhint("Update the extension: ALTER EXTENSION sqs_ingest UPDATE.")));
}

/* run a statement on sqs_ingest.queue_grants with (queue, url, grantee); rows changed */
static uint64
change_grants(const char *sql, const char *identity, const char *url, Oid grantee)
{
	CatalogAccess access;
	Oid			argtypes[4] = {TEXTOID, TEXTOID, OIDOID, OIDOID};
	Datum		args[4];
	uint64		changed;
	int			rc;

	args[0] = CStringGetTextDatum(identity);
	args[1] = CStringGetTextDatum(url);
	args[2] = ObjectIdGetDatum(grantee);
	args[3] = ObjectIdGetDatum(GetUserId());
	catalog_begin(&access);
	rc = SPI_execute_with_args(sql, 4, argtypes, args, NULL, false, 0);
	if (rc != SPI_OK_INSERT && rc != SPI_OK_DELETE)
		elog(ERROR, "could not write sqs_ingest.queue_grants: %s", SPI_result_code_string(rc));
	changed = SPI_processed;
	catalog_end(&access);
	return changed;
}

/*
 * sqs_ingest_grant_queue(queue_url text, grantee regrole) RETURNS void
 *
 * Let grantee's pipelines (and those of the roles that have its
 * privileges) read the queue.  Granting again is no change.
 */
Datum
sqs_ingest_grant_queue(PG_FUNCTION_ARGS)
{
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			grantee = PG_GETARG_OID(1);
	char	   *identity;

	require_superuser();
	identity = queue_identity_checked(url);
	(void) change_grants("INSERT INTO sqs_ingest.queue_grants "
						 "(queue, queue_url, grantee, granted_by) "
						 "VALUES ($1, $2, $3::pg_catalog.regrole, $4::pg_catalog.regrole) "
						 "ON CONFLICT (queue, grantee) DO NOTHING",
						 identity, url, grantee);
	PG_RETURN_VOID();
}

/*
 * sqs_ingest_revoke_queue(queue_url text, grantee regrole) RETURNS void
 *
 * Take the grant back: the pipelines it let read the queue stop, unless
 * their owners hold another grant on it.
 */
Datum
sqs_ingest_revoke_queue(PG_FUNCTION_ARGS)
{
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			grantee = PG_GETARG_OID(1);
	char	   *identity;

	require_superuser();
	identity = queue_identity_checked(url);
	if (change_grants("DELETE FROM sqs_ingest.queue_grants "
					  "WHERE queue OPERATOR(pg_catalog.=) $1 "
					  "AND grantee::pg_catalog.oid OPERATOR(pg_catalog.=) $3",
					  identity, url, grantee) == 0)
		ereport(WARNING,
				(errcode(ERRCODE_WARNING_PRIVILEGE_NOT_REVOKED),
				 errmsg("queue %s was not granted to role \"%s\"",
						identity, GetUserNameFromId(grantee, false))));
	PG_RETURN_VOID();
}
