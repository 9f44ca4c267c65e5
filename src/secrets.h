/*-------------------------------------------------------------------------
 *
 * secrets.h
 *	  The secret settings (AWS credentials, mask key) and their *_file
 *	  forms, kept out of every SQL-visible place and the log.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_SECRETS_H
#define SQS_INGEST_SECRETS_H

#include <sys/stat.h>

typedef enum SecretId
{
	SECRET_ACCESS_KEY_ID,
	SECRET_SECRET_ACCESS_KEY,
	SECRET_SESSION_TOKEN,
	SECRET_MASK_KEY,
	NUM_SECRETS
} SecretId;

extern void secrets_define_settings(void);
extern char *secret_value(SecretId id);
extern void secret_free(char *value);
extern char *secret_header_line(const char *name, const char *value);
extern const char *secret_session_value(SecretId id);
extern void secret_set_session(SecretId id, const char *value);
extern char *secret_file_read(const char *setting, const char *path, struct stat *st);
extern bool secret_file_unchanged(const struct stat *a, const struct stat *b);

#endif							/* SQS_INGEST_SECRETS_H */
