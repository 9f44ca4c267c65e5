/*-------------------------------------------------------------------------
 *
 * subxact.c
 *	  Running a function in a subtransaction of its own, its error caught;
 *	  copying a caught error.
 *
 * Whatever the function leaves behind when it fails (locks, buffers, open
 * relations, half-inserted rows) is released by rolling the subtransaction
 * back; the caller gets the error and decides whether it is about the data
 * (a dead letter) or must be re-thrown.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "subxact.h"

/*
 * The error being handled, copied into the current memory context.  An
 * error raised without errmsg() (third-party code may) has no message; it
 * gets the text PostgreSQL itself would log, so that no caller mistakes a
 * NULL message for success or passes it to strlen().
 */
ErrorData *
subxact_copy_error(void)
{
	ErrorData  *error = CopyErrorData();

	if (error->message == NULL)
		error->message = pstrdup("missing error text");
	return error;
}

/*
 * Run fn(arg) in a subtransaction.  Returns NULL if it succeeded, or its
 * error, copied into the caller's memory context, once the subtransaction
 * is rolled back.  The caller's memory context and resource owner are
 * current again either way.
 */
ErrorData *
subxact_call(void (*fn) (void *), void *arg)
{
	MemoryContext context = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile error = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(context);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(context);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(context);
		error = subxact_copy_error();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(context);
		CurrentResourceOwner = owner;
	}
	PG_END_TRY();
	return error;
}
