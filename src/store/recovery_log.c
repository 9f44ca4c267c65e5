/*-------------------------------------------------------------------------
 *
 * recovery_log.c
 *	  The audited recovery of encrypted values, sqs_ingest_recover(), and
 *	  its log, sqs_ingest.recovery_log.
 *
 * Recovery takes the secret key from the caller for one call: copies of it
 * are wiped before the call returns (openpgp.c).  Each recovery adds a row to
 * sqs_ingest.recovery_log in the caller's transaction, written as the
 * table's owner: the callers need no right on the log, which nobody but
 * its owner and superusers can change.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/evp.h>

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "openpgp.h"
#include "security.h"

PG_FUNCTION_INFO_V1(sqs_ingest_recover);

/* record a recovery in sqs_ingest.recovery_log, as the log's owner */
static void
log_recovery(const char *reason, const char *key_id, const char *ciphertext, int len)
{
	Oid			relid = get_relname_relid("recovery_log",
										  get_namespace_oid("sqs_ingest", false));
	Oid			argtypes[5] = {NAMEOID, NAMEOID, TEXTOID, TEXTOID, BYTEAOID};
	Datum		args[5];
	uint8		digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;
	bytea	   *digest_datum;
	SecurityScope scope;
	int			rc;

	if (!OidIsValid(relid))
		elog(ERROR, "sqs_ingest.recovery_log is missing");
	if (!EVP_Digest(ciphertext, len, digest, &digest_len, EVP_sha256(), NULL))
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("could not compute the SHA-256 digest of the ciphertext")));
	digest_datum = palloc(VARHDRSZ + digest_len);
	SET_VARSIZE(digest_datum, VARHDRSZ + digest_len);
	memcpy(VARDATA(digest_datum), digest, digest_len);

	args[0] = DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(GetUserId(), false)));
	args[1] = DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(GetSessionUserId(), false)));
	args[2] = CStringGetTextDatum(reason);
	args[3] = CStringGetTextDatum(key_id);
	args[4] = PointerGetDatum(digest_datum);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	security_enter(&scope, security_relation_owner(relid));
	rc = SPI_execute_with_args("INSERT INTO sqs_ingest.recovery_log "
							   "(recovered_by, session_role, reason, key_id, value_digest) "
							   "VALUES ($1, $2, $3, $4, $5)",
							   5, argtypes, args, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not write sqs_ingest.recovery_log: %s", SPI_result_code_string(rc));
	security_leave(&scope);
	SPI_finish();
}

/* wipe a detoasted copy of an argument, never the argument itself */
static void
wipe_detoasted(bytea *value, Datum arg)
{
	if ((Pointer) value != DatumGetPointer(arg))
		explicit_bzero(value, VARSIZE_ANY(value));
}

/*
 * sqs_ingest_recover(ciphertext bytea, secret_key bytea, reason text)
 *		RETURNS text
 *
 * Decrypt one value of an encrypt column with the caller's secret key, and
 * record who recovered which value, when and why.  A NULL ciphertext is a
 * NULL, recovered from nothing and not logged.
 */
Datum
sqs_ingest_recover(PG_FUNCTION_ARGS)
{
	bytea	   *ciphertext;
	bytea	   *secret_key;
	char	   *reason;
	char	   *volatile value = NULL;
	char	   *key_id;
	int			len;

	reason = PG_ARGISNULL(2) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (strspn(reason, " \t\r\n") == strlen(reason))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a reason for the recovery is required"),
				 errdetail("Every recovery is recorded in sqs_ingest.recovery_log with its reason."),
				 errhint("Say why the value is needed, for example the ticket it answers.")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("secret key must not be null")));
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	ciphertext = PG_GETARG_BYTEA_PP(0);
	secret_key = PG_GETARG_BYTEA_PP(1);

	/*
	 * A key detoasted here is a copy of ours to wipe; the argument itself
	 * may be a constant of the plan, used again for the next row, and is
	 * freed with the statement.
	 */
	PG_TRY();
	{
		value = openpgp_decrypt(VARDATA_ANY(ciphertext), VARSIZE_ANY_EXHDR(ciphertext),
								VARDATA_ANY(secret_key), VARSIZE_ANY_EXHDR(secret_key),
								&len, &key_id);
	}
	PG_CATCH();
	{
		wipe_detoasted(secret_key, PG_GETARG_DATUM(1));
		PG_RE_THROW();
	}
	PG_END_TRY();
	wipe_detoasted(secret_key, PG_GETARG_DATUM(1));
	/* values were text in the message: anything else was not encrypted here */
	if (!pg_verifymbstr(value, len, true))
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("recovered value is not valid text in the database's encoding")));
	log_recovery(reason, key_id, VARDATA_ANY(ciphertext), VARSIZE_ANY_EXHDR(ciphertext));
	PG_RETURN_TEXT_P(cstring_to_text_with_len(value, len));
}
