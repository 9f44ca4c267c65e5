/*-------------------------------------------------------------------------
 *
 * recovery.c
 *	  The recovery key of the encrypt transform: the setting
 *	  sqs_ingest.recovery_key_file and the key read from its file.
 *
 * The server holds only a public key: a pipeline's option "recovery_key",
 * else the file sqs_ingest.recovery_key_file names.  The file is checked
 * like the secret files (owned by the server's user, no group or other
 * access): a public key is no secret, but whoever could replace it would
 * have every later value encrypted to a key of their own.  It is read and
 * parsed again only when it changes.  The audited recovery of encrypted
 * values, sqs_ingest_recover(), is in store/recovery_log.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/guc.h"
#include "utils/memutils.h"

#include "recovery.h"
#include "secrets.h"

#define RECOVERY_KEY_FILE_SETTING "sqs_ingest.recovery_key_file"

static char *recovery_key_file = NULL;

/* the key of the file, while the file is unchanged */
static MemoryContext key_context = NULL;
static OpenPgpKey *file_key = NULL;
static char *file_key_path = NULL;
static struct stat file_key_stat;

/* define sqs_ingest.recovery_key_file; from _PG_init */
void
recovery_define_settings(void)
{
	DefineCustomStringVariable(RECOVERY_KEY_FILE_SETTING,
							   gettext_noop("File holding the ASCII-armored OpenPGP public key that the encrypt transform encrypts to, for pipelines that give none."),
							   gettext_noop("Owned by the server's user with no group or other access, or by root and at most group-readable. Also makes the login events fill encrypted_ip and encrypted_device_id."),
							   &recovery_key_file, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
}

/* is sqs_ingest.recovery_key_file set? */
bool
recovery_key_configured(void)
{
	return recovery_key_file != NULL && recovery_key_file[0] != '\0';
}

static void
forget_file_key(void)
{
	if (key_context)
		MemoryContextDelete(key_context);
	key_context = NULL;
	file_key = NULL;
	file_key_path = NULL;
}

/*
 * The key of sqs_ingest.recovery_key_file, read again if the file or the
 * setting changed.  Called before each batch of a mapping that encrypts to
 * it, so that a reload or a new key file takes effect at the next batch.
 */
const OpenPgpKey *
recovery_key_prepare(void)
{
	struct stat st;
	char	   *text;
	MemoryContext context;
	MemoryContext old;

	if (!recovery_key_configured())
	{
		forget_file_key();
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sqs_ingest.recovery_key_file is not set"),
				 errhint("Set it to a file holding an ASCII-armored OpenPGP public key, or give the pipeline the option \"recovery_key\".")));
	}
	if (file_key && strcmp(file_key_path, recovery_key_file) == 0 &&
		stat(recovery_key_file, &st) == 0 && secret_file_unchanged(&st, &file_key_stat))
		return file_key;

	forget_file_key();
	text = secret_file_read(RECOVERY_KEY_FILE_SETTING, recovery_key_file, &st);
	context = AllocSetContextCreate(TopMemoryContext, "sqs_ingest recovery key",
									ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(context);
	PG_TRY();
	{
		file_key = openpgp_public_key_parse(text, strlen(text), RECOVERY_KEY_FILE_SETTING);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		free(text);
		file_key = NULL;
		MemoryContextDelete(context);
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	free(text);
	key_context = context;
	file_key_path = MemoryContextStrdup(context, recovery_key_file);
	file_key_stat = st;
	return file_key;
}

/* the key recovery_key_prepare() last made ready */
const OpenPgpKey *
recovery_key_current(void)
{
	if (file_key == NULL)
		elog(ERROR, "recovery key used before recovery_key_prepare() succeeded");
	return file_key;
}
