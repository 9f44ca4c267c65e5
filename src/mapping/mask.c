/*-------------------------------------------------------------------------
 *
 * mask.c
 *	  HMAC-SHA256 (or plain SHA-256) masking through OpenSSL.
 *
 * The output is byte-identical to pgcrypto's
 * encode(hmac(value, key, 'sha256'), 'hex') and
 * encode(digest(value, 'sha256'), 'hex'), so an analyst holding the key
 * can look a known value up.  The keyed MAC context is built once per key
 * and reused for every value: re-initialising it with a NULL key keeps the
 * key schedule and avoids rehashing the key for each message.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "common/cryptohash.h"
#include "common/sha2.h"
#include "mask.h"
#include "secrets.h"
#include "setting_values.h"

/*
 * What masks values.  There is one per process, rebuilt when the key
 * changes: the keyed MAC context is reused for every value.
 */
struct MaskHandle
{
	MaskAlgorithm algorithm;
	EVP_MAC_CTX *mac_ctx;		/* HMAC: keyed with mac_key */
	char	   *mac_key;		/* malloc'd copy of the key mac_ctx holds */
	bool		ready;			/* mask_prepare() succeeded */
};

static MaskHandle handle;
static EVP_MAC *mac = NULL;

/* message: a whole sentence marked with gettext_noop, translated here */
static void
report_openssl_failure(const char *message)
{
	ereport(ERROR,
			(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
			 errmsg_internal("%s", _(message))));
}

/* release the keyed context; the copy of the key is wiped first */
static void
release_mac(void)
{
	if (handle.mac_ctx)
		EVP_MAC_CTX_free(handle.mac_ctx);
	handle.mac_ctx = NULL;
	if (handle.mac_key)
	{
		explicit_bzero(handle.mac_key, strlen(handle.mac_key));
		free(handle.mac_key);
	}
	handle.mac_key = NULL;
}

/*
 * Check the masking configuration (the algorithm of
 * sqs_ingest.mask_algorithm, which the caller reads, and the mask key),
 * make the process's mask match it, and return it.  The handle stays
 * valid; the next call may change its key.
 *
 * Called before each batch, so that a reload of sqs_ingest.mask_key takes
 * effect at the next batch.  Refuses to run HMAC without a key: an unkeyed
 * hash of an IPv4 address is reversed by enumerating 2^32 values, which is
 * why the unkeyed algorithm must be chosen explicitly.
 */
const MaskHandle *
mask_prepare(MaskAlgorithm algorithm)
{
	char	   *key;

	if (algorithm == MASK_SHA256)
	{
		release_mac();
		handle.algorithm = algorithm;
		handle.ready = true;
		return &handle;
	}

	key = secret_value(SECRET_MASK_KEY);
	if (key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sqs_ingest.mask_key is not set"),
				 errdetail("sqs_ingest.mask_algorithm is \"hmac-sha256\", which needs a secret key."),
				 errhint("Set sqs_ingest.mask_key_file (or sqs_ingest.mask_key) in postgresql.conf. "
						 "An unkeyed hash of an IP address can be reversed by enumerating all addresses.")));

	if (handle.ready && handle.algorithm == algorithm && handle.mac_ctx &&
		strcmp(handle.mac_key, key) == 0)
	{
		secret_free(key);
		return &handle;
	}

	/* until the new context is complete, nothing may mask with the old one */
	release_mac();
	handle.ready = false;
	if (mac == NULL)
	{
		mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
		if (mac == NULL)
			report_openssl_failure(gettext_noop("could not load HMAC for masking"));
	}
	handle.mac_key = strdup(key);
	secret_free(key);
	if (handle.mac_key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	handle.mac_ctx = EVP_MAC_CTX_new(mac);
	if (handle.mac_ctx == NULL)
	{
		release_mac();
		report_openssl_failure(gettext_noop("could not allocate an HMAC context for masking"));
	}
	{
		OSSL_PARAM	params[2];

		params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
													 "SHA256", 0);
		params[1] = OSSL_PARAM_construct_end();
		if (!EVP_MAC_init(handle.mac_ctx, (const unsigned char *) handle.mac_key,
						  strlen(handle.mac_key), params))
		{
			release_mac();
			report_openssl_failure(gettext_noop("could not initialise HMAC-SHA256 for masking"));
		}
	}
	handle.algorithm = algorithm;
	handle.ready = true;
	return &handle;
}

/*
 * Mask one value into out, which must have room for MASK_HEX_LEN + 1 bytes,
 * with the mask mask_prepare() returned (NULL if it was never called).
 */
void
mask_value(const MaskHandle *mask, const char *value, int len, char *out)
{
	static const char hexdigits[] = "0123456789abcdef";
	uint8		digest[PG_SHA256_DIGEST_LENGTH];

	if (mask == NULL || !mask->ready)
		elog(ERROR, "masking used before mask_prepare() succeeded");
	if (mask->algorithm == MASK_HMAC_SHA256)
	{
		size_t		outlen = 0;

		if (!EVP_MAC_init(mask->mac_ctx, NULL, 0, NULL) ||
			!EVP_MAC_update(mask->mac_ctx, (const unsigned char *) value, len) ||
			!EVP_MAC_final(mask->mac_ctx, digest, &outlen, sizeof(digest)) ||
			outlen != sizeof(digest))
			report_openssl_failure(gettext_noop("could not compute HMAC-SHA256 for masking"));
	}
	else
	{
		unsigned int outlen = 0;

		if (!EVP_Digest(value, len, digest, &outlen, EVP_sha256(), NULL) ||
			outlen != sizeof(digest))
			report_openssl_failure(gettext_noop("could not compute SHA-256 for masking"));
	}

	for (int i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
	{
		out[2 * i] = hexdigits[digest[i] >> 4];
		out[2 * i + 1] = hexdigits[digest[i] & 0x0f];
	}
	out[MASK_HEX_LEN] = '\0';
}
