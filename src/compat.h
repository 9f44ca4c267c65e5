/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  The differences between the PostgreSQL majors sqs_ingest builds on
 *	  (15, 17 and 18), in one place.
 *
 * Every other file is written against one API: where a server changed an
 * interface, a small wrapper or typedef here gives the same call on each
 * major.  Only this header tests PG_VERSION_NUM.  Include it after
 * postgres.h (or postgres_fe.h: the JSON part serves frontend builds of the
 * decoders too).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_COMPAT_H
#define SQS_INGEST_COMPAT_H

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#ifndef FRONTEND
#include "storage/latch.h"
#include "utils/wait_event.h"
#endif

/*
 * A function that does not return: 18 replaced pg_attribute_noreturn(),
 * written after the declarator, by pg_noreturn, written first.  Write
 * "pg_noreturn static void f(...)".
 */
#ifndef pg_noreturn
#define pg_noreturn pg_attribute_noreturn()
#endif

/*
 * JSON semantic callbacks return void up to 15 and JsonParseErrorType
 * from 16 on.  Declare them as returning JsonSemResult and end them with
 * "return JSON_SEM_SUCCESS;".
 */
#if PG_VERSION_NUM >= 160000
typedef JsonParseErrorType JsonSemResult;
#define JSON_SEM_SUCCESS JSON_SUCCESS
#else
typedef void JsonSemResult;
#define JSON_SEM_SUCCESS		/* nothing */
#endif

/*
 * A JSON lexer over len bytes of UTF-8; release it with
 * compat_json_lex_free().  17 takes the context to fill as a first
 * argument (NULL: allocate one).
 */
static inline JsonLexContext *
compat_json_lex(char *json, int len, bool need_escapes)
{
#if PG_VERSION_NUM >= 170000
	return makeJsonLexContextCstringLen(NULL, json, len, PG_UTF8, need_escapes);
#else
	return makeJsonLexContextCstringLen(json, len, PG_UTF8, need_escapes);
#endif
}

/*
 * Free a lexer from compat_json_lex() and what it allocated.  Anything
 * json_errdetail() returned for it goes too on 17+: copy it first.
 */
static inline void
compat_json_lex_free(JsonLexContext *lex)
{
#if PG_VERSION_NUM >= 170000
	freeJsonLexContext(lex);
#else
	if (lex->strval != NULL)
	{
		pfree(lex->strval->data);
		pfree(lex->strval);
	}
	pfree(lex);
#endif
}

#ifndef FRONTEND

/*
 * A WaitEventSet for nevents events that its caller frees with
 * FreeWaitEventSet(), including on error (e.g. from a memory context reset
 * callback).  Up to 16 it lives in the given context; 17 tracks it with a
 * resource owner instead, which a set outliving transactions must not
 * have, so it gets none.
 */
static inline WaitEventSet *
compat_create_wait_event_set(MemoryContext context, int nevents)
{
#if PG_VERSION_NUM >= 170000
	return CreateWaitEventSet(NULL, nevents);
#else
	return CreateWaitEventSet(context, nevents);
#endif
}

/*
 * The wait event to report while waiting for what name says: a custom
 * event of that name (shown in pg_stat_activity.wait_event) on 17+, the
 * generic "Extension" one before.  Not for a critical section: 17 may
 * take a lock and allocate the first time a name is used.
 */
static inline uint32
compat_wait_event(const char *name)
{
#if PG_VERSION_NUM >= 170000
	return WaitEventExtensionNew(name);
#else
	return PG_WAIT_EXTENSION;
#endif
}

#endif							/* !FRONTEND */

#ifndef FRONTEND
#include "catalog/pg_proc.h"
#include "commands/extension.h"
#include "utils/acl.h"
#if PG_VERSION_NUM < 160000
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_extension.h"
#include "utils/fmgroids.h"
#endif

/*
 * The schema of an extension: 16 exported get_extension_schema(); 15 has
 * it static, so this is its body.
 */
static inline Oid
compat_get_extension_schema(Oid extension)
{
#if PG_VERSION_NUM >= 160000
	return get_extension_schema(extension);
#else
	Relation	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			schema = InvalidOid;

	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(extension));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
		schema = ((Form_pg_extension) GETSTRUCT(tuple))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return schema;
#endif
}

/*
 * May role do mode on a function?  16 folded the per-kind ACL checks into
 * object_aclcheck().
 */
static inline AclResult
compat_proc_aclcheck(Oid proc, Oid role, AclMode mode)
{
#if PG_VERSION_NUM >= 160000
	return object_aclcheck(ProcedureRelationId, proc, role, mode);
#else
	return pg_proc_aclcheck(proc, role, mode);
#endif
}
#endif							/* FRONTEND */

#ifndef FRONTEND
#include "utils/guc.h"

/*
 * Memory a GUC check hook hands to the GUC machinery as its "extra": up to
 * 15 the GUC code free()s it, from 16 on it guc_free()s it.
 */
static inline void *
compat_guc_extra_alloc(size_t size)
{
#if PG_VERSION_NUM >= 160000
	return guc_malloc(LOG, size);
#else
	return malloc(size);
#endif
}
#endif							/* FRONTEND */

#ifndef FRONTEND
#include "catalog/pg_namespace.h"
#include "utils/acl.h"

/*
 * Does role hold mode on the schema?  16 folded pg_namespace_aclcheck()
 * into object_aclcheck().
 */
static inline AclResult
compat_namespace_aclcheck(Oid nspid, Oid roleid, AclMode mode)
{
#if PG_VERSION_NUM >= 160000
	return object_aclcheck(NamespaceRelationId, nspid, roleid, mode);
#else
	return pg_namespace_aclcheck(nspid, roleid, mode);
#endif
}
#endif							/* !FRONTEND */

#endif							/* SQS_INGEST_COMPAT_H */
