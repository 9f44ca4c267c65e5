/*-------------------------------------------------------------------------
 *
 * aws_files.c
 *	  The files the AWS credential chain reads: the shared config and
 *	  credentials files (INI, one section per profile) and small token files.
 *
 * Files are read whole, capped in size, into a buffer that never leaves a
 * copy behind, and wiped from memory once parsed: they hold secrets.  A file that does not exist is not an error (the
 * chain moves on); one that exists but cannot be read is.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/stringinfo.h"

#include "aws_files.h"
#include "secrets.h"

/* bigger profile files than this are not profile files */
#define MAX_PROFILE_FILE (1024 * 1024)

/*
 * Read a small file whole (a token, a profile file).  Returns NULL, with
 * the reason in detail, if it cannot; *missing tells a file that does not
 * exist from one that cannot be read.  If len is not NULL, *len is the
 * number of bytes read: what a caller that cuts the text up must wipe.
 *
 * The buffer is sized from the file's size, so that it never has to grow:
 * a buffer that grows leaves the copy it outgrew in freed memory.  If it
 * must grow all the same (the file grew meanwhile, or is not a regular
 * file), the old buffer is wiped first; every error path wipes too.
 */
char *
aws_files_read(const char *path, size_t max_len, bool *missing, size_t *len,
			   StringInfo detail)
{
	int			fd;
	struct stat st;
	char	   *buf;
	size_t		cap;
	size_t		used = 0;
	ssize_t		n;
	int			save_errno;

	*missing = false;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
	{
		*missing = (errno == ENOENT);
		appendStringInfo(detail, _("could not open \"%s\": %m"), path);
		return NULL;
	}
	if (fstat(fd, &st) != 0)
	{
		save_errno = errno;
		close(fd);
		errno = save_errno;
		appendStringInfo(detail, _("could not stat \"%s\": %m"), path);
		return NULL;
	}
	/* room for the size seen and one byte more, to see the end at once */
	cap = S_ISREG(st.st_mode) ? Min((size_t) st.st_size, max_len) + 2 : 1024;
	buf = palloc(cap);
	for (;;)
	{
		if (used > max_len)
		{
			close(fd);
			explicit_bzero(buf, cap);
			pfree(buf);
			appendStringInfo(detail, _("\"%s\" is larger than %zu bytes"), path, max_len);
			return NULL;
		}
		if (used == cap - 1)
		{
			size_t		bigger = Min(cap * 2, max_len + 2);
			char	   *moved = palloc(bigger);

			memcpy(moved, buf, used);
			explicit_bzero(buf, cap);
			pfree(buf);
			buf = moved;
			cap = bigger;
		}
		n = read(fd, buf + used, cap - 1 - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		used += n;
	}
	if (n < 0)
	{
		save_errno = errno;
		close(fd);
		explicit_bzero(buf, cap);
		pfree(buf);
		errno = save_errno;
		appendStringInfo(detail, _("could not read \"%s\": %m"), path);
		return NULL;
	}
	close(fd);
	buf[used] = '\0';
	if (len)
		*len = used;
	return buf;
}

/* strip trailing whitespace in place (a token file ends with a newline) */
char *
aws_files_strip_space(char *s)
{
	size_t		len = strlen(s);

	while (len > 0 && isspace((unsigned char) s[len - 1]))
		s[--len] = '\0';
	return s;
}

/* free a profile's settings, wiping them */
void
aws_files_free_profile(ProfileSettings *p)
{
	secret_free(p->aws_access_key_id);
	secret_free(p->aws_secret_access_key);
	secret_free(p->aws_session_token);
	secret_free(p->role_arn);
	secret_free(p->source_profile);
	secret_free(p->role_session_name);
	memset(p, 0, sizeof(*p));
}

/* strip leading and trailing whitespace, in place */
static char *
strip_space(char *s)
{
	while (isspace((unsigned char) *s))
		s++;
	return aws_files_strip_space(s);
}

/*
 * Is this section header (without brackets, trimmed) the profile's?  The
 * credentials file names sections "name", the config file "profile name"
 * (and "default" for the default profile).
 */
static bool
section_matches(const char *section, const char *profile, bool config_file)
{
	if (!config_file)
		return strcmp(section, profile) == 0;
	if (strncmp(section, "profile", 7) == 0 && isspace((unsigned char) section[7]))
	{
		const char *name = section + 8;

		while (isspace((unsigned char) *name))
			name++;
		return strcmp(name, profile) == 0;
	}
	return strcmp(profile, "default") == 0 && strcmp(section, "default") == 0;
}

/*
 * Read one profile's settings from an INI file into p, leaving alone what
 * p already holds (the credentials file is read first and wins).  A file
 * that does not exist holds nothing; one that cannot be read is a failure.
 */
static bool
read_profile(const char *path, const char *profile, bool config_file,
			 ProfileSettings *p, StringInfo detail)
{
	bool		missing;
	size_t		content_len;
	char	   *content = aws_files_read(path, MAX_PROFILE_FILE, &missing,
										 &content_len, detail);
	char	   *line;
	char	   *save = NULL;
	bool		in_profile = false;

	if (content == NULL)
	{
		if (missing)
		{
			/* not an error: the reason goes in only if nothing is found */
			resetStringInfo(detail);
			return true;
		}
		return false;
	}

	for (line = strtok_r(content, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
	{
		char	   *text = strip_space(line);
		char	   *eq;
		char	   *key;
		char	  **target = NULL;

		if (text[0] == '#' || text[0] == ';' || text[0] == '\0')
			continue;
		if (text[0] == '[')
		{
			char	   *end = strrchr(text, ']');

			if (end)
				*end = '\0';
			in_profile = section_matches(strip_space(text + 1), profile, config_file);
			if (in_profile)
				p->found = true;
			continue;
		}
		if (!in_profile || (eq = strchr(text, '=')) == NULL)
			continue;
		*eq = '\0';
		key = strip_space(text);
		if (pg_strcasecmp(key, "aws_access_key_id") == 0)
			target = &p->aws_access_key_id;
		else if (pg_strcasecmp(key, "aws_secret_access_key") == 0)
			target = &p->aws_secret_access_key;
		else if (pg_strcasecmp(key, "aws_session_token") == 0)
			target = &p->aws_session_token;
		else if (pg_strcasecmp(key, "role_arn") == 0)
			target = &p->role_arn;
		else if (pg_strcasecmp(key, "source_profile") == 0)
			target = &p->source_profile;
		else if (pg_strcasecmp(key, "role_session_name") == 0)
			target = &p->role_session_name;
		if (target && *target == NULL && *strip_space(eq + 1) != '\0')
			*target = pstrdup(strip_space(eq + 1));
	}
	/* strtok_r() cut the text at every newline: wipe all of it */
	explicit_bzero(content, content_len);
	pfree(content);
	return true;
}

/* the home directory of the server's operating system user */
const char *
aws_files_home_directory(void)
{
	const char *home = getenv("HOME");
	struct passwd *pw;

	if (home && home[0] != '\0')
		return home;
	pw = getpwuid(geteuid());
	return pw ? pw->pw_dir : "";
}

/*
 * One profile's settings from both files, the credentials file winning.
 * Returns false, with the reason in detail, if a file cannot be read.
 */
bool
aws_files_load_profile(const char *profile, const char *credentials_path,
					   const char *config_path, ProfileSettings *p, StringInfo detail)
{
	memset(p, 0, sizeof(*p));
	if (!read_profile(credentials_path, profile, false, p, detail) ||
		!read_profile(config_path, profile, true, p, detail))
	{
		aws_files_free_profile(p);
		return false;
	}
	return true;
}
