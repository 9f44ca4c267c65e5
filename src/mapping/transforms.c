/*-------------------------------------------------------------------------
 *
 * transforms.c
 *	  The transforms a rule may name, as one table: each with the check of
 *	  the column it goes into, what it needs made ready before a batch, and
 *	  how it turns a value.  A new transform is a new row.
 *
 * The keys transforms need come from settings, which a reload may change:
 * mapping_prepare() makes them ready before each batch, and the compiled
 * mapping holds the mask it got, so that nothing masks with a key that
 * was not checked first.  The mask key itself stays in mask.c, which wipes
 * its copy when it is replaced.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/numeric.h"

#include "mapping_internal.h"
#include "mask.h"
#include "openpgp.h"
#include "codecs.h"
#include "recovery.h"

static bool
is_text_like(const MappingColumn *col)
{
	return col->conversion == CONV_TEXT || col->basetypid == BPCHAROID;
}

/* a value quoted for messages, cut short if long */
static char *
quoted(const MappingValue *v)
{
	if (v->len > 64)
		return psprintf("\"%.*s...\"", pg_mbcliplen(v->str, v->len, 64), v->str);
	return psprintf("\"%.*s\"", v->len, v->str);
}

/* mask: the HMAC-SHA256 (or SHA-256) of the value, 64 hex characters */
static void
mask_check(const MappingColumn *col)
{
	if (!is_text_like(col))
		mapping_rule_error(col, "A mask is text; the column is %s.",
						   format_type_be(col->typid));
	if (col->max_chars >= 0 && col->max_chars < MASK_HEX_LEN)
		mapping_rule_error(col, "A mask is %d characters; the column allows %d.",
						   MASK_HEX_LEN, col->max_chars);
}

static char *
mask_apply(const CompiledMapping *mapping, const MappingColumn *col,
		   MappingValue *v, Datum *result, bool *done)
{
	char	   *hex = palloc(MASK_HEX_LEN + 1);

	if (v->kind == JV_OBJECT || v->kind == JV_ARRAY)
		return psprintf("column \"%s\": %s is %s, which cannot be masked",
						col->name, v->rule->what, mapping_kind_names[v->kind]);
	mask_value(mapping->mask, v->str, v->len, hex);
	v->kind = JV_STRING;
	v->str = hex;
	v->len = MASK_HEX_LEN;
	return NULL;
}

/*
 * version_number: M.m.p as M * 10^6 + m * 10^3 + p, into a number column;
 * a text column keeps the version as written
 */
static void
version_number_check(const MappingColumn *col)
{
	if (col->conversion != CONV_INT4 && col->conversion != CONV_INT8 &&
		col->conversion != CONV_NUMERIC && !is_text_like(col))
		mapping_rule_error(col, "A version number goes into an integer, bigint, numeric or text column; the column is %s.",
						   format_type_be(col->typid));
}

static char *
version_number_apply(const CompiledMapping *mapping, const MappingColumn *col,
					 MappingValue *v, Datum *result, bool *done)
{
	int64		number;

	if (v->kind != JV_STRING && v->kind != JV_NUMBER)
		return psprintf("column \"%s\": %s must be a string or a number, not %s",
						col->name, v->rule->what, mapping_kind_names[v->kind]);
	if (is_text_like(col))
		return NULL;
	if (!codec_parse_app_version(v->str, v->len, &number))
		return psprintf("column \"%s\": %s %s is not a version of the form M.m or M.m.p with parts 0 to 999",
						col->name, v->rule->what, quoted(v));
	if (col->conversion == CONV_INT4)
		*result = Int32GetDatum((int32) number);
	else if (col->conversion == CONV_INT8)
		*result = Int64GetDatum(number);
	else
		*result = NumericGetDatum(int64_to_numeric(number));
	*done = true;
	return NULL;
}

/* encrypt: an OpenPGP message to the recovery key, into bytea */
static void
encrypt_check(const MappingColumn *col)
{
	if (col->basetypid != BYTEAOID)
		mapping_rule_error(col, "An encrypted value is an OpenPGP message, bytea; the column is %s.",
						   format_type_be(col->typid));
}

static char *
encrypt_apply(const CompiledMapping *mapping, const MappingColumn *col,
			  MappingValue *v, Datum *result, bool *done)
{
	if (v->kind == JV_OBJECT || v->kind == JV_ARRAY)
		return psprintf("column \"%s\": %s is %s, which cannot be encrypted",
						col->name, v->rule->what, mapping_kind_names[v->kind]);
	if (v->len > OPENPGP_MAX_PLAINTEXT)
		return psprintf("column \"%s\": %s is %d bytes long, more than the %d bytes a value to encrypt may have",
						col->name, v->rule->what, v->len, OPENPGP_MAX_PLAINTEXT);

	/*
	 * The setting's key is looked up here rather than kept: preparing
	 * another mapping may have read a new key file, and freed the old key.
	 */
	*result = PointerGetDatum(openpgp_encrypt(mapping->recovery_key ?
											  mapping->recovery_key :
											  recovery_key_current(),
											  v->str, v->len));
	*done = true;
	return NULL;
}

static const MappingTransform transforms[] = {
	{"mask", TRANSFORM_NEEDS_MASK, mask_check, mask_apply},
	{"version_number", 0, version_number_check, version_number_apply},
	{"encrypt", TRANSFORM_NEEDS_RECOVERY_KEY, encrypt_check, encrypt_apply},
};

/*
 * The transform a rule's "transform" names, checked against the column;
 * errors name the column.
 */
const MappingTransform *
mapping_transform_compile(const MappingColumn *col, const JsonbValue *v)
{
	StringInfoData names;

	for (size_t i = 0; i < lengthof(transforms); i++)
	{
		const MappingTransform *transform = &transforms[i];

		if (v->type != jbvString ||
			(int) strlen(transform->name) != v->val.string.len ||
			strncmp(transform->name, v->val.string.val, v->val.string.len) != 0)
			continue;
		transform->check(col);
		return transform;
	}

	initStringInfo(&names);
	for (size_t i = 0; i < lengthof(transforms); i++)
		appendStringInfo(&names, "%s\"%s\"",
						 i == 0 ? "" : i == lengthof(transforms) - 1 ? " or " : ", ",
						 transforms[i].name);
	mapping_rule_error(col, "\"transform\" is %s.", names.data);
}

/*
 * A mapping that encrypts needs a key: the pipeline's, else the one of
 * sqs_ingest.recovery_key_file, which must be usable now.
 */
void
mapping_check_recovery_key(const CompiledMapping *mapping)
{
	if (mapping->encrypts == NULL || mapping->recovery_key != NULL)
		return;
	if (!recovery_key_configured())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid mapping for column \"%s\"", mapping->encrypts),
				 errdetail("The column is encrypted, and there is no recovery key to encrypt to."),
				 errhint("Give the pipeline the option \"recovery_key\" (an ASCII-armored OpenPGP public key), or set sqs_ingest.recovery_key_file.")));
	(void) recovery_key_prepare();
}

/*
 * Make ready what a compiled mapping takes from settings: the mask (of
 * sqs_ingest.mask_algorithm and the mask key), which the mapping then
 * holds, the recovery key of the setting, and the cap of
 * sqs_ingest.max_rows_per_message.  The caller reads the settings (the
 * mapping reads none).  Before each batch, so that a reload takes effect
 * at the next one.
 */
void
mapping_prepare(CompiledMapping *mapping, MaskAlgorithm mask_algorithm,
				int max_rows_per_message)
{
	mapping->max_rows_cap = max_rows_per_message;
	if (mapping->uses_mask)
		mapping->mask = mask_prepare(mask_algorithm);
	if (mapping->encrypts != NULL && mapping->recovery_key == NULL)
		(void) recovery_key_prepare();
}
