/*-------------------------------------------------------------------------
 *
 * arena.c
 *	  palloc and friends for the standalone decoder builds: every
 *	  allocation is its own malloc block (so AddressSanitizer sees each
 *	  one's bounds), and arena_reset() frees all of them, as resetting a
 *	  memory context does in the server.
 *
 * The build links with -Wl,--wrap=palloc,... so that libpgcommon's
 * frontend code (the JSON parser, StringInfo, psprintf) allocates here too.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include "common/jsonapi.h"

#include "arena.h"

typedef struct Chunk
{
	struct Chunk *next;
	size_t		size;
	/* then the caller's bytes, maximally aligned */
} Chunk;

#define CHUNK_HEADER MAXALIGN(sizeof(Chunk))

static Chunk *chunks = NULL;

void	   *__wrap_palloc(size_t size);
void	   *__wrap_palloc0(size_t size);
void	   *__wrap_repalloc(void *pointer, size_t size);
void		__wrap_pfree(void *pointer);
char	   *__wrap_pstrdup(const char *in);
char	   *__wrap_pnstrdup(const char *in, size_t len);

void *
__wrap_palloc(size_t size)
{
	Chunk	   *c = malloc(CHUNK_HEADER + size);

	if (c == NULL)
	{
		fprintf(stderr, "out of memory\n");
		abort();
	}
	c->next = chunks;
	c->size = size;
	chunks = c;
	return (char *) c + CHUNK_HEADER;
}

void *
__wrap_palloc0(size_t size)
{
	void	   *p = __wrap_palloc(size);

	memset(p, 0, size);
	return p;
}

void *
__wrap_repalloc(void *pointer, size_t size)
{
	Chunk	   *old = (Chunk *) ((char *) pointer - CHUNK_HEADER);
	void	   *p = __wrap_palloc(size);

	memcpy(p, pointer, Min(old->size, size));
	return p;
}

/* freed at the next arena_reset(), like pfree'd memory of a context */
void
__wrap_pfree(void *pointer)
{
}

char *
__wrap_pstrdup(const char *in)
{
	return __wrap_pnstrdup(in, strlen(in));
}

char *
__wrap_pnstrdup(const char *in, size_t len)
{
	char	   *p;

	len = strnlen(in, len);
	p = __wrap_palloc(len + 1);
	memcpy(p, in, len);
	p[len] = '\0';
	return p;
}

void
arena_reset(void)
{
	while (chunks)
	{
		Chunk	   *next = chunks->next;

		free(chunks);
		chunks = next;
	}
}

/*
 * Some builds of libpgcommon.a leave json_errdetail() out of the frontend
 * library; a weak stand-in names the error, and a real one takes over.
 */
__attribute__((weak)) char *
json_errdetail(JsonParseErrorType error, JsonLexContext *lex)
{
	return psprintf("JSON parse error %d near byte %d", (int) error,
					(int) (lex->token_start ? lex->token_start - lex->input : 0));
}
