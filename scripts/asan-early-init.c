/*
 * Preloaded after the ASan runtime into a test postmaster: see
 * scripts/sanitize.sh.  A runtime that is preloaded rather than linked into
 * the executable initializes on the first malloc.  In postgres that malloc
 * comes from a library constructor (libgpg-error's) inside glibc's
 * bindtextdomain(), which holds the gettext lock for writing; the runtime's
 * initialization calls dlerror(), which takes the same lock for reading, and
 * leaves it corrupted, so the next bindtextdomain() waits forever.  This
 * bindtextdomain() makes the first malloc happen before the lock is taken,
 * then hands over to glibc's.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>

char *
bindtextdomain(const char *domainname, const char *dirname)
{
	static char *(*next) (const char *, const char *);

	if (next == NULL)
	{
		/* volatile: the compiler would drop a malloc/free pair */
		void	   *volatile first = malloc(1);

		free(first);
		next = (char *(*) (const char *, const char *)) dlsym(RTLD_NEXT, "bindtextdomain");
	}
	return next(domainname, dirname);
}
