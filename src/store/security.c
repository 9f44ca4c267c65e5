/*-------------------------------------------------------------------------
 *
 * security.c
 *	  Who the target table's code runs as, statements immune to
 *	  search_path, and the extension's own tables read as their owner.
 *
 * Inserting into the target table runs code its owner controls: triggers,
 * rules, defaults, CHECK constraints, domain checks, index expressions,
 * row-level security policies.  That code must never run with more rights
 * than its author already has, so the insert runs as the role
 * ingest_role_for_target() names, inside a security-restricted operation
 * (as VACUUM and REFRESH MATERIALIZED VIEW run a table's code as its
 * owner).  Every statement sqs_ingest sends through SPI runs with
 * search_path = pg_catalog, pg_temp, so that no function, operator or type
 * a user created elsewhere can stand in for a built-in one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "compat.h"
#include "config.h"
#include "security.h"

/* the search_path every SPI statement of sqs_ingest runs with */
#define PINNED_SEARCH_PATH "pg_catalog, pg_temp"

/*
 * Set search_path to pg_catalog, pg_temp at a new GUC nest level, as
 * PostgreSQL 17's RestrictSearchPath() does; returns the level to hand to
 * security_unpin_search_path().  An error in between is cleaned up by the
 * (sub)transaction abort.
 */
int
security_pin_search_path(void)
{
	int			nest_level = NewGUCNestLevel();

	(void) set_config_option("search_path", PINNED_SEARCH_PATH,
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nest_level;
}

/* undo security_pin_search_path() and any setting changed since */
void
security_unpin_search_path(int nest_level)
{
	AtEOXact_GUC(false, nest_level);
}

/*
 * The role whose rights the target table's code runs with, for the
 * background workers and for sqs_ingest_drain() alike: sqs_ingest.role
 * when set, else the owner of the table.  The caller must have INSERT on
 * the table itself (security_check_target_privilege()).
 */
Oid
ingest_role_for_target(Oid relid)
{
	if (config_role()[0] != '\0')
	{
		Oid			role = get_role_oid(config_role(), true);

		if (!OidIsValid(role))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("role \"%s\" named by sqs_ingest.role does not exist",
							config_role()),
					 errhint("Create the role, or set sqs_ingest.role to an existing role.")));
		return role;
	}

	return security_relation_owner(relid);
}

/* the owner of a table */
Oid
security_relation_owner(Oid relid)
{
	HeapTuple	tuple;
	Oid			owner;

	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

/*
 * Become role for code that a user may control, with search_path pinned,
 * until security_leave().  Like REFRESH MATERIALIZED VIEW: a restricted
 * operation, so that the code cannot change the session's role or leave
 * anything (temporary tables, settings, cursors) behind.
 */
void
security_enter(SecurityScope *scope, Oid role)
{
	GetUserIdAndSecContext(&scope->saved_userid, &scope->saved_sec_context);
	SetUserIdAndSecContext(role,
						   scope->saved_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	scope->guc_nest_level = security_pin_search_path();
}

/* back to the role and settings before security_enter() */
void
security_leave(SecurityScope *scope)
{
	security_unpin_search_path(scope->guc_nest_level);
	SetUserIdAndSecContext(scope->saved_userid, scope->saved_sec_context);
}

/* sqs_ingest.pipelines, whose owner owns the extension's tables */
Oid
catalog_relid(void)
{
	Oid			relid = get_relname_relid("pipelines", get_namespace_oid("sqs_ingest", false));

	if (!OidIsValid(relid))
		elog(ERROR, "sqs_ingest.pipelines is missing");
	return relid;
}

/*
 * Become the catalog's owner, search_path pinned, for SPI statements on
 * the extension's tables (sqs_ingest.pipelines, sqs_ingest.queue_grants),
 * which are granted to no one.
 */
void
catalog_begin(CatalogAccess *access)
{
	Oid			owner = security_relation_owner(catalog_relid());

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	security_enter(&access->scope, owner);
}

void
catalog_end(CatalogAccess *access)
{
	security_leave(&access->scope);
	SPI_finish();
}

/*
 * Refuse to touch the target table unless the current user may insert
 * into it: whoever asks sqs_ingest to write into a table must be allowed
 * to write there themselves.
 */
void
security_check_target_privilege(Oid relid, const char *relname)
{
	if (pg_class_aclcheck(relid, GetUserId(), ACL_INSERT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV,
					   get_relkind_objtype(get_rel_relkind(relid)), relname);
}

/*
 * Warn when the table's code would run as a superuser: then whoever can
 * add a trigger or a default to the table could act as one.
 */
void
security_warn_superuser_target(Oid relid)
{
	Oid			role = ingest_role_for_target(relid);

	if (!superuser_arg(role))
		return;
	ereport(WARNING,
			(errcode(ERRCODE_WARNING),
			 errmsg("sqs_ingest runs the code of target table %s as superuser \"%s\"",
					get_rel_name(relid), GetUserNameFromId(role, false)),
			 errdetail("The table's triggers, defaults, constraints and index expressions run with that role's rights."),
			 errhint("Set sqs_ingest.role to a role that is not a superuser, or give the table an owner that is not one.")));
}

/* scheme://host[:port] of a URL, palloc'd */
static char *
url_origin(const char *url)
{
	const char *host = strstr(url, "://");
	const char *slash;

	if (host == NULL)
		return pstrdup(url);
	slash = strchr(host + 3, '/');
	return pnstrdup(url, slash ? (Size) (slash - url) : strlen(url));
}

/*
 * A pipeline defined by a role that is not a superuser may only talk to
 * the endpoint the server is configured for (sqs_ingest.endpoint, else the
 * origin of sqs_ingest.queue_url): its workers sign with the server's
 * credentials and send its session token to whatever address it names.
 */
void
security_check_pipeline_endpoint(const char *queue_url, const char *endpoint)
{
	const char *configured = NULL;
	char	   *wanted;

	if (superuser())
		return;
	if (config_endpoint()[0] != '\0')
		configured = url_origin(config_endpoint());
	else if (config_queue_url()[0] != '\0')
		configured = url_origin(config_queue_url());
	wanted = url_origin(endpoint ? endpoint : queue_url);
	if (configured == NULL || pg_strcasecmp(configured, wanted) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only a superuser may point a pipeline at %s", wanted),
				 configured ?
				 errdetail("Pipelines sign their requests with the server's AWS credentials; other roles may use %s, the endpoint the server is configured for.",
						   configured) :
				 errdetail("Pipelines sign their requests with the server's AWS credentials, and the server names no endpoint other roles may use."),
				 errhint("Ask a superuser to define the pipeline, or to set sqs_ingest.queue_url or sqs_ingest.endpoint in postgresql.conf.")));
}

/*
 * A pipeline or a preview that masks must not be a way around EXECUTE on
 * the mask: the pipeline's owner (or the preview's caller, pipeline NULL)
 * must be allowed to call sqs_ingest_mask(text) itself, or it would get
 * masks of values of its choosing.  The function is found by its
 * signature in the extension's schema, whatever search_path says.  Checked
 * when a pipeline is defined and before each batch, so that a REVOKE stops
 * it, and by every preview that masks.
 */
void
security_check_mask_privilege(Oid role, const char *pipeline)
{
	Oid			extension = get_extension_oid("sqs_ingest", false);
	Oid			argtypes[1] = {TEXTOID};
	List	   *name;
	Oid			mask;
	const char *role_name;

	name = list_make2(makeString(get_namespace_name(compat_get_extension_schema(extension))),
					  makeString("sqs_ingest_mask"));
	mask = LookupFuncName(name, 1, argtypes, false);
	if (compat_proc_aclcheck(mask, role, ACL_EXECUTE) == ACLCHECK_OK)
		return;
	if (pipeline == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function sqs_ingest_mask"),
				 errdetail("The mapping previewed masks, which needs EXECUTE on sqs_ingest_mask()."),
				 errhint("Grant EXECUTE on sqs_ingest_mask(text) to the role, or preview a mapping without \"transform\": \"mask\".")));
	role_name = GetUserNameFromId(role, true);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for function sqs_ingest_mask"),
			 errdetail("Pipeline \"%s\" masks with the rights of its owner, %s, who may not execute sqs_ingest_mask().",
					   pipeline, role_name ? role_name : "(dropped)"),
			 errhint("Grant EXECUTE on sqs_ingest_mask(text) to the owner, or map the column without \"transform\": \"mask\".")));
}
