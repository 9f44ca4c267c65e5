/*-------------------------------------------------------------------------
 *
 * login.c
 *	  The login events' mapping, in the mapping language.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"

#include "mapping.h"
#include "recovery.h"

/* the take-home's login events, in the mapping language */
static const char login_mapping[] =
"{\"user_id\": {\"path\": \"$.user_id\", \"type\": \"string\", \"required\": true},"
" \"device_type\": {\"path\": \"$.device_type\", \"type\": \"string\"},"
" \"masked_ip\": {\"path\": \"$.ip\", \"type\": \"string\", \"transform\": \"mask\"},"
" \"masked_device_id\": {\"path\": \"$.device_id\", \"type\": \"string\", \"transform\": \"mask\"},"
" \"locale\": {\"path\": \"$.locale\", \"type\": \"string\"},"
" \"app_version\": {\"path\": \"$.app_version\", \"transform\": \"version_number\"},"
" \"create_date\": {\"path\": \"$.create_date\", \"type\": \"string\","
" \"else\": {\"message\": \"sent_date\"}}}";

/* with a recovery key, and these columns in the table, the originals too */
static const char login_encrypted_ip[] =
"\"encrypted_ip\": {\"path\": \"$.ip\", \"type\": \"string\", \"transform\": \"encrypt\"}";
static const char login_encrypted_device_id[] =
"\"encrypted_device_id\": {\"path\": \"$.device_id\", \"type\": \"string\", \"transform\": \"encrypt\"}";

/*
 * The login events' mapping, the one of the pipeline "default" (config.c),
 * as sqs_ingest_fetch_login_mapping() shows it with InvalidOid; for a table
 * relid that has the columns encrypted_ip and encrypted_device_id, with
 * those encrypted, when sqs_ingest.recovery_key_file is set.
 */
Jsonb *
mapping_login(Oid relid)
{
	Jsonb	   *mapping = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
															 CStringGetDatum(login_mapping)));
	StringInfoData encrypted;

	if (!OidIsValid(relid) || !recovery_key_configured())
		return mapping;
	initStringInfo(&encrypted);
	appendStringInfoChar(&encrypted, '{');
	if (get_attnum(relid, "encrypted_ip") != InvalidAttrNumber)
		appendStringInfoString(&encrypted, login_encrypted_ip);
	if (get_attnum(relid, "encrypted_device_id") != InvalidAttrNumber)
		appendStringInfo(&encrypted, "%s%s", encrypted.len > 1 ? ", " : "",
						 login_encrypted_device_id);
	appendStringInfoChar(&encrypted, '}');
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(mapping),
											  DirectFunctionCall1(jsonb_in,
																  CStringGetDatum(encrypted.data))));
}


