/*-------------------------------------------------------------------------
 *
 * secrets.c
 *	  The secret settings (AWS credentials, mask key) and their *_file
 *	  forms, kept out of every SQL-visible place and the log.
 *
 * PostgreSQL shows a setting's stored value in pg_settings (setting,
 * reset_val, boot_val), through SHOW and current_setting(), and logs
 * "parameter X changed to Y" when a reload changes it.  So the stored value
 * of a secret setting is never the secret: a check hook moves the secret
 * into the setting's private "extra" and leaves the empty string behind.
 * The GUC machinery keeps each extra with the value it belongs to, so SET,
 * SET LOCAL, RESET, rollback and reload all restore the right secret, and
 * the stored value never changes, so a reload never logs it.  The show
 * hook says only whether a secret is set.
 *
 * Each secret also has a *_file setting naming a file the server reads
 * the secret from, checked like ssl_key_file: a secret kept there never
 * passes through postgresql.conf, ALTER SYSTEM or the configuration
 * parser.  The setting itself wins when both are set.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "utils/guc.h"
#include "utils/memutils.h"

#include "compat.h"
#include "secrets.h"

/* a secret file larger than this is refused (session tokens reach a few KiB) */
#define SECRET_FILE_MAX (64 * 1024)

typedef struct SecretSetting
{
	const char *name;			/* sqs_ingest.mask_key */
	const char *description;
	const char *file_name;		/* sqs_ingest.mask_key_file */
	const char *file_description;
	char	   *stored;			/* the GUC's stored value: always "" */
	char	   *file_path;		/* the *_file setting */
	const char *current;		/* the secret, in the GUC's extra; or NULL */
} SecretSetting;

static SecretSetting secrets[NUM_SECRETS] = {
	[SECRET_ACCESS_KEY_ID] = {
		"sqs_ingest.access_key_id",
		gettext_noop("AWS access key id; empty means sqs_ingest.access_key_id_file, else the AWS credential chain."),
		"sqs_ingest.access_key_id_file",
		gettext_noop("File holding the AWS access key id, read by the server."),
	},
	[SECRET_SECRET_ACCESS_KEY] = {
		"sqs_ingest.secret_access_key",
		gettext_noop("AWS secret access key; empty means sqs_ingest.secret_access_key_file, else the AWS credential chain."),
		"sqs_ingest.secret_access_key_file",
		gettext_noop("File holding the AWS secret access key, read by the server."),
	},
	[SECRET_SESSION_TOKEN] = {
		"sqs_ingest.session_token",
		gettext_noop("AWS session token for temporary credentials."),
		"sqs_ingest.session_token_file",
		gettext_noop("File holding the AWS session token, read by the server."),
	},
	[SECRET_MASK_KEY] = {
		"sqs_ingest.mask_key",
		gettext_noop("Secret key of the HMAC that masks personal data."),
		"sqs_ingest.mask_key_file",
		gettext_noop("File holding the mask key, read by the server."),
	},
};

/* the last secret file read, per secret, while the file is unchanged */
typedef struct SecretFileCache
{
	char	   *path;			/* malloc'd */
	struct stat st;
	char	   *value;			/* malloc'd; wiped when dropped */
} SecretFileCache;

static SecretFileCache file_cache[NUM_SECRETS];

/*
 * Check hook of every secret setting: keep the secret in the extra and
 * wipe it from the value the GUC machinery stores, logs and shows.
 */
static bool
check_secret(char **newval, void **extra, GucSource source)
{
	size_t		len = *newval ? strlen(*newval) : 0;
	char	   *copy;

	if (len == 0)
		return true;

	/*
	 * A function's or a role's SET clause is kept in a catalog every role
	 * can read (pg_proc.proconfig, pg_db_role_setting): refuse.  The value
	 * is wiped first, as the GUC code quotes it in its error otherwise.
	 */
	if (source == PGC_S_TEST)
	{
		explicit_bzero(*newval, len);
		GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
		GUC_check_errmsg("a secret setting cannot be stored in a SET clause of a function, a role or a database");
		GUC_check_errdetail("Those clauses are kept in catalogs every role can read.");
		GUC_check_errhint("Set it in postgresql.conf, with ALTER SYSTEM, through its _file setting, or with SET in a session.");
		return false;
	}
	copy = compat_guc_extra_alloc(len + 1);
	if (copy == NULL)
		return false;
	memcpy(copy, *newval, len + 1);
	explicit_bzero(*newval, len);
	*extra = copy;
	return true;
}

/* assign and show hooks, one pair per secret */
#define SECRET_HOOKS(id) \
static void \
assign_secret_##id(const char *newval, void *extra) \
{ \
	secrets[id].current = extra; \
} \
static const char * \
show_secret_##id(void) \
{ \
	return secrets[id].current ? "(set)" : ""; \
}

SECRET_HOOKS(SECRET_ACCESS_KEY_ID)
SECRET_HOOKS(SECRET_SECRET_ACCESS_KEY)
SECRET_HOOKS(SECRET_SESSION_TOKEN)
SECRET_HOOKS(SECRET_MASK_KEY)

static const GucStringAssignHook assign_hooks[NUM_SECRETS] = {
	assign_secret_SECRET_ACCESS_KEY_ID,
	assign_secret_SECRET_SECRET_ACCESS_KEY,
	assign_secret_SECRET_SESSION_TOKEN,
	assign_secret_SECRET_MASK_KEY,
};

static const GucShowHook show_hooks[NUM_SECRETS] = {
	show_secret_SECRET_ACCESS_KEY_ID,
	show_secret_SECRET_SECRET_ACCESS_KEY,
	show_secret_SECRET_SESSION_TOKEN,
	show_secret_SECRET_MASK_KEY,
};

/* define the secret settings and their *_file forms; from _PG_init */
void
secrets_define_settings(void)
{
	for (int i = 0; i < NUM_SECRETS; i++)
	{
		SecretSetting *s = &secrets[i];

		DefineCustomStringVariable(s->name, s->description,
								   gettext_noop("Superuser only; shown as \"(set)\", never logged."),
								   &s->stored, "", PGC_SUSET,
								   GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE,
								   check_secret, assign_hooks[i], show_hooks[i]);
		DefineCustomStringVariable(s->file_name, s->file_description,
								   gettext_noop("Owned by the server's user with no group or other access, or by root and at most group-readable."),
								   &s->file_path, "", PGC_SIGHUP, 0,
								   NULL, NULL, NULL);
	}
}

/* forget a cached secret file, wiping the secret */
static void
drop_cached_file(SecretFileCache *cache)
{
	if (cache->value)
	{
		explicit_bzero(cache->value, strlen(cache->value));
		free(cache->value);
	}
	free(cache->path);
	memset(cache, 0, sizeof(*cache));
}

/* has a file read at state a not changed since (state b)? */
bool
secret_file_unchanged(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
		a->st_size == b->st_size && a->st_mode == b->st_mode &&
		a->st_uid == b->st_uid &&
		a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
		a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
		a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
		a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/*
 * Refuse a secret file others could read or write, as PostgreSQL refuses
 * such an ssl_key_file; fd is closed before any error.
 */
static void
check_secret_file(const char *setting, const char *path, const struct stat *st,
				  int fd)
{
	bool		regular = S_ISREG(st->st_mode);
	bool		owner_ok = st->st_uid == geteuid() || st->st_uid == 0;
	bool		private = !((st->st_uid == geteuid() && (st->st_mode & (S_IRWXG | S_IRWXO))) ||
							(st->st_uid == 0 && (st->st_mode & (S_IWGRP | S_IXGRP | S_IRWXO))));

	if (regular && owner_ok && private && st->st_size <= SECRET_FILE_MAX)
		return;
	close(fd);
	if (!regular)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("secret file \"%s\" of %s is not a regular file",
						path, setting)));
	if (!owner_ok)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("secret file \"%s\" of %s must be owned by the database user or root",
						path, setting)));
	if (!private)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("secret file \"%s\" of %s has group or world access",
						path, setting),
				 errdetail("File must have permissions u=rw (0600) or less if owned by the database user, or permissions u=rw,g=r (0640) or less if owned by root."),
				 errhint("Run chmod 600 on the file, owned by the user the server runs as.")));
	ereport(ERROR,
			(errcode(ERRCODE_CONFIG_FILE_ERROR),
			 errmsg_plural("secret file \"%s\" of %s is larger than %d byte",
						   "secret file \"%s\" of %s is larger than %d bytes",
						   SECRET_FILE_MAX,
						   path, setting, SECRET_FILE_MAX)));
}

/*
 * Read a file named by the setting of that name, checked like a secret
 * file, into malloc'd memory, without its trailing line break and white
 * space.  Errors never quote the file's content.
 */
char *
secret_file_read(const char *setting, const char *path, struct stat *st)
{
	int			fd;
	char	   *buf;
	ssize_t		len = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open secret file \"%s\" of %s: %m",
						path, setting)));
	if (fstat(fd, st) != 0)
	{
		int			save_errno = errno;

		close(fd);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat secret file \"%s\" of %s: %m",
						path, setting)));
	}
	check_secret_file(setting, path, st, fd);

	buf = malloc(st->st_size + 1);
	if (buf == NULL)
	{
		close(fd);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	}
	while (len < st->st_size)
	{
		ssize_t		n = read(fd, buf + len, st->st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += n;
	}
	close(fd);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' ||
					   buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		buf[--len] = '\0';
	buf[len] = '\0';
	if (len == 0 || memchr(buf, '\0', len) != NULL)
	{
		explicit_bzero(buf, st->st_size + 1);
		free(buf);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("secret file \"%s\" of %s is empty or not text",
						path, setting)));
	}
	return buf;
}

/*
 * A secret from its file, read again only when the file changed (the
 * mask key is looked up before every batch).
 */
static char *
secret_from_file(SecretId id, const char *path)
{
	SecretFileCache *cache = &file_cache[id];
	struct stat st;

	if (cache->path && strcmp(cache->path, path) == 0 &&
		stat(path, &st) == 0 && secret_file_unchanged(&st, &cache->st))
		return pstrdup(cache->value);

	drop_cached_file(cache);
	cache->value = secret_file_read(secrets[id].file_name, path, &cache->st);
	cache->path = strdup(path);
	if (cache->path == NULL)
	{
		drop_cached_file(cache);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	}
	return pstrdup(cache->value);
}

/*
 * The secret in effect, palloc'd (release it with secret_free()): the
 * setting's, else its file's; NULL when neither is set.
 */
char *
secret_value(SecretId id)
{
	SecretSetting *s = &secrets[id];

	if (s->current != NULL)
		return pstrdup(s->current);
	if (s->file_path != NULL && s->file_path[0] != '\0')
		return secret_from_file(id, s->file_path);
	drop_cached_file(&file_cache[id]);
	return NULL;
}

/* wipe and free a value from secret_value(); NULL is fine */
void
secret_free(char *value)
{
	if (value == NULL)
		return;
	explicit_bzero(value, strlen(value));
	pfree(value);
}

/*
 * The header line "name: value", palloc'd at its exact size, for a secret
 * value: psprintf() prints into a first guess of 128 bytes and frees it
 * when the line is longer, which would leave the start of the secret in
 * freed memory.  Release it with secret_free().
 */
char *
secret_header_line(const char *name, const char *value)
{
	size_t		name_len = strlen(name);
	size_t		value_len = strlen(value);
	char	   *line = palloc(name_len + 2 + value_len + 1);

	memcpy(line, name, name_len);
	memcpy(line + name_len, ": ", 2);
	memcpy(line + name_len + 2, value, value_len + 1);
	return line;
}

/*
 * The session's value of a secret setting ("" if unset), for handing it to
 * a drain's worker (see config_session_write()).
 */
const char *
secret_session_value(SecretId id)
{
	return secrets[id].current ? secrets[id].current : "";
}

/*
 * In a drain's worker: its caller's value of a secret setting ("": unset,
 * so that its file is read), in place of the server's.
 */
void
secret_set_session(SecretId id, const char *value)
{
	secrets[id].current = value[0] != '\0' ?
		MemoryContextStrdup(TopMemoryContext, value) : NULL;
}
