/*-------------------------------------------------------------------------
 *
 * aws_files.h
 *	  The files the AWS credential chain reads: shared config and
 *	  credentials files, token files.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_AWS_FILES_H
#define SQS_INGEST_AWS_FILES_H

#include "lib/stringinfo.h"

/* the settings of one profile that matter here, palloc'd or NULL */
typedef struct ProfileSettings
{
	bool		found;
	char	   *aws_access_key_id;
	char	   *aws_secret_access_key;
	char	   *aws_session_token;
	char	   *role_arn;
	char	   *source_profile;
	char	   *role_session_name;
} ProfileSettings;

extern char *aws_files_read(const char *path, size_t max_len, bool *missing,
							size_t *len, StringInfo detail);
extern char *aws_files_strip_space(char *s);
extern const char *aws_files_home_directory(void);
extern bool aws_files_load_profile(const char *profile, const char *credentials_path,
								   const char *config_path, ProfileSettings *p,
								   StringInfo detail);
extern void aws_files_free_profile(ProfileSettings *p);

#endif							/* SQS_INGEST_AWS_FILES_H */
