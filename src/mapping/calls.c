/*-------------------------------------------------------------------------
 *
 * calls.c
 *	  Calling functions that report bad data by raising an error: type
 *	  input functions, the jsonb and jsonpath parsers, the jsonpath
 *	  executor.  Their errors about the message become the reason it is a
 *	  dead letter; errors about the process are re-thrown.
 *
 * Built-in input functions report bad input by raising an error while
 * holding no resource, so their errors are caught without a
 * subtransaction; other input functions (extension types, and the
 * domains, composites and ranges whose input runs a user's code) run in
 * one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mapping_internal.h"
#include "subxact.h"

/*
 * Errors that say nothing about the value: they are re-thrown, never turned
 * into a dead letter.  Cancel, shutdown and running out of resources are
 * the process's; a serialization failure or a deadlock is the
 * transaction's; an I/O error is the system's.  Anything else an input
 * function raises is about its input, the value of the message: extension
 * types often report bad input with elog(), as an internal error (XX000).
 */
static bool
is_process_error(int sqlerrcode)
{
	int			category = ERRCODE_TO_CATEGORY(sqlerrcode);

	return category == ERRCODE_INSUFFICIENT_RESOURCES ||
		category == ERRCODE_OPERATOR_INTERVENTION ||
		category == ERRCODE_SYSTEM_ERROR ||
		category == ERRCODE_TRANSACTION_ROLLBACK;
}

/*
 * Built-in functions are called without a subtransaction, which is safe
 * only for the errors they raise about their input while holding nothing.
 * An internal error or a program limit may leave state behind that only an
 * abort cleans up: those are re-thrown too.
 */
static bool
is_builtin_process_error(int sqlerrcode)
{
	int			category = ERRCODE_TO_CATEGORY(sqlerrcode);

	return is_process_error(sqlerrcode) ||
		category == ERRCODE_INTERNAL_ERROR ||
		category == ERRCODE_TO_CATEGORY(ERRCODE_PROGRAM_LIMIT_EXCEEDED);
}

/* run a built-in function; NULL, or the message of the error it raised */
char *
mapping_call_builtin(CatchingFunction fn, void *arg, Datum *result)
{
	MemoryContext context = CurrentMemoryContext;
	char	   *volatile error = NULL;

	PG_TRY();
	{
		*result = fn(arg);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(context);
		edata = subxact_copy_error();
		if (is_builtin_process_error(edata->sqlerrcode))
			PG_RE_THROW();
		FlushErrorState();
		error = edata->message;
	}
	PG_END_TRY();
	return error;
}

typedef struct IsolatedCall
{
	CatchingFunction fn;
	void	   *arg;
	Datum		result;
} IsolatedCall;

static void
isolated_call(void *arg)
{
	IsolatedCall *call = arg;

	call->result = call->fn(call->arg);
}

/* run any function in a subtransaction; NULL, or the message of its error */
static char *
call_isolated(CatchingFunction fn, void *arg, Datum *result)
{
	IsolatedCall call = {fn, arg, (Datum) 0};
	ErrorData  *error = subxact_call(isolated_call, &call);

	if (error == NULL)
	{
		*result = call.result;
		return NULL;
	}
	if (is_process_error(error->sqlerrcode))
		ReThrowError(error);
	return error->message;
}

typedef struct InputCall
{
	const TypeInput *input;
	char	   *str;
} InputCall;

static Datum
input_function(void *arg)
{
	InputCall  *call = arg;

	return InputFunctionCall((FmgrInfo *) &call->input->func, call->str,
							 call->input->ioparam, call->input->typmod);
}

/* a value through a type's input function; NULL or the reason it failed */
char *
mapping_call_input(const TypeInput *input, char *str, int len, Datum *result)
{
	InputCall	call = {input, pnstrdup(str, len)};

	if (input->builtin)
		return mapping_call_builtin(input_function, &call, result);
	return call_isolated(input_function, &call, result);
}
