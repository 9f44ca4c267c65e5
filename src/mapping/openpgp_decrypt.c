/*-------------------------------------------------------------------------
 *
 * openpgp_decrypt.c
 *	  Decryption of the messages openpgp.c encrypts, with an RSA secret
 *	  key given for one call (sqs_ingest_recover()).
 *
 * Only unprotected secret keys are read (what dearmor() of gpg
 * --export-secret-keys gives for a key without a passphrase).  Every copy
 * of secret material made here is wiped before openpgp_decrypt()
 * returns, whether it succeeds or fails.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "openpgp_internal.h"

/* what openpgp_decrypt() must wipe, whatever happens */
typedef struct DecryptState
{
	uint8	   *key_data;		/* a dearmored copy of the secret key */
	int			key_data_len;
	BIGNUM	   *bns[8];
	EVP_PKEY   *pkey;
	EVP_PKEY_CTX *ctx;
	uint8	   *session;
	size_t		session_len;
	uint8	   *plain;
	size_t		plain_len;
} DecryptState;

static void
wipe_state(DecryptState *s)
{
	if (s->key_data)
		explicit_bzero(s->key_data, s->key_data_len);
	for (int i = 0; i < (int) lengthof(s->bns); i++)
		BN_clear_free(s->bns[i]);
	EVP_PKEY_CTX_free(s->ctx);
	EVP_PKEY_free(s->pkey);		/* clears the private components */
	if (s->session)
		explicit_bzero(s->session, s->session_len);
	if (s->plain)
		explicit_bzero(s->plain, s->plain_len);
}

/*
 * An RSA private key from a secret key packet without passphrase: d, p,
 * q and u = p^-1 mod q, with their checksum.
 */
static void
secret_rsa_key(DecryptState *s, KeyPacket *key, const char *hex)
{
	PgpReader  *r = &key->secret;
	const uint8 *start;
	int			usage = pgp_get_u8(r);
	const uint8 *mpis[4];
	int			lens[4];
	uint16		sum = 0;
	BN_CTX	   *bnctx;
	OSSL_PARAM_BLD *bld;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *fromdata;
	bool		ok;

	if (usage != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("secret key %s is protected by a passphrase", hex),
				 errdetail("sqs_ingest_recover() takes a secret key exported without a passphrase."),
				 errhint("Export a copy without passphrase on the machine that keeps the key, or decrypt with gpg --decrypt there.")));
	start = r->p;
	for (int i = 0; i < 4; i++)
		mpis[i] = pgp_get_mpi(r, &lens[i]);
	for (const uint8 *b = start; b < r->p; b++)
		sum += *b;
	if (pgp_get_be(r, 2) != sum)
		pgp_malformed(r, gettext_noop("The checksum of a secret key does not match."));

	/* n, e, d, q, p; OpenSSL's coefficient is its second factor's inverse */
	s->bns[0] = pgp_bn(key->n, key->n_len);
	s->bns[1] = pgp_bn(key->e, key->e_len);
	s->bns[2] = BN_secure_new();
	s->bns[3] = BN_secure_new();
	s->bns[4] = BN_secure_new();
	s->bns[5] = BN_secure_new();
	s->bns[6] = BN_secure_new();
	s->bns[7] = BN_secure_new();
	bnctx = BN_CTX_secure_new();
	ok = s->bns[0] && s->bns[1] && s->bns[7] && bnctx &&
		BN_bin2bn(mpis[0], lens[0], s->bns[2]) &&	/* d */
		BN_bin2bn(mpis[1], lens[1], s->bns[4]) &&	/* p */
		BN_bin2bn(mpis[2], lens[2], s->bns[3]) &&	/* q */
		BN_bin2bn(mpis[3], lens[3], s->bns[7]) &&	/* u = p^-1 mod q */
		BN_sub(s->bns[5], s->bns[3], BN_value_one()) &&
		BN_mod(s->bns[5], s->bns[2], s->bns[5], bnctx) &&	/* d mod (q-1) */
		BN_sub(s->bns[6], s->bns[4], BN_value_one()) &&
		BN_mod(s->bns[6], s->bns[2], s->bns[6], bnctx);	/* d mod (p-1) */
	BN_CTX_free(bnctx);
	bld = OSSL_PARAM_BLD_new();
	fromdata = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (ok && bld && fromdata &&
		OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, s->bns[0]) &&
		OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, s->bns[1]) &&
		OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, s->bns[2]) &&
		OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR1, s->bns[3]) &&
		OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR2, s->bns[4]) &&
		OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT1, s->bns[5]) &&
		OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT2, s->bns[6]) &&
		OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, s->bns[7]))
		params = OSSL_PARAM_BLD_to_param(bld);
	ok = params && EVP_PKEY_fromdata_init(fromdata) > 0 &&
		EVP_PKEY_fromdata(fromdata, &s->pkey, EVP_PKEY_KEYPAIR, params) > 0;
	OSSL_PARAM_free(params);	/* wipes the secure block of secret numbers */
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(fromdata);
	if (!ok)
		pgp_malformed(r, gettext_noop("OpenSSL does not accept its RSA key."));
}

/* the session key of a PKESK packet, decrypted with the secret key */
static void
decrypt_session_key(DecryptState *s, const PgpReader *r, const uint8 *mpi, int mpi_len,
					int *sym_algo)
{
	uint16		sum = 0;
	size_t		len;
	int			key_len;

	s->ctx = EVP_PKEY_CTX_new(s->pkey, NULL);
	if (s->ctx == NULL || EVP_PKEY_decrypt_init(s->ctx) <= 0 ||
		EVP_PKEY_CTX_set_rsa_padding(s->ctx, RSA_PKCS1_PADDING) <= 0 ||
		EVP_PKEY_decrypt(s->ctx, NULL, &len, mpi, mpi_len) <= 0)
		pgp_openssl_failure(gettext_noop("An RSA decryption context could not be set up."));
	s->session = palloc(len);
	s->session_len = len;
	if (EVP_PKEY_decrypt(s->ctx, s->session, &len, mpi, mpi_len) <= 0)
		len = 0;
	*sym_algo = len > 0 ? s->session[0] : 0;
	key_len = *sym_algo == SYM_AES128 ? 16 : *sym_algo == SYM_AES192 ? 24 :
		*sym_algo == SYM_AES256 ? 32 : -1;
	if (key_len < 0 || len != (size_t) key_len + 3)
		pgp_malformed(r, gettext_noop("Its session key does not decrypt with the secret key given."));
	for (int i = 0; i < key_len; i++)
		sum += s->session[1 + i];
	if (((s->session[1 + key_len] << 8) | s->session[2 + key_len]) != sum)
		pgp_malformed(r, gettext_noop("Its session key does not decrypt with the secret key given."));
}

/* decrypt integrity protected data and check it; the literal data's value */
static char *
decrypt_data(DecryptState *s, const PgpReader *r, const PgpPacket *seipd, int sym_algo,
			 int *len)
{
	PgpReader	body = pgp_body_reader(r, seipd);
	PgpReader	inner;
	PgpPacket	literal;
	uint8		digest[SHA1_LEN];
	char	   *value;

	if (pgp_get_u8(&body) != 1)
		pgp_malformed(r, gettext_noop("Its encrypted data packet is not of version 1."));
	s->plain_len = body.end - body.p;
	if (s->plain_len < AES_BLOCK + 2 + MDC_LEN)
		pgp_malformed(r, gettext_noop("Its encrypted data is too short."));
	s->plain = palloc(s->plain_len);
	memcpy(s->plain, body.p, s->plain_len);
	pgp_aes_cfb_crypt(sym_algo, s->session + 1, s->plain, s->plain_len, false);

	pgp_digest_sha1(s->plain, s->plain_len - SHA1_LEN, digest);
	if (s->plain[AES_BLOCK - 2] != s->plain[AES_BLOCK] ||
		s->plain[AES_BLOCK - 1] != s->plain[AES_BLOCK + 1] ||
		s->plain[s->plain_len - MDC_LEN] != (0xc0 | TAG_MDC) ||
		s->plain[s->plain_len - MDC_LEN + 1] != SHA1_LEN ||
		memcmp(digest, s->plain + s->plain_len - SHA1_LEN, SHA1_LEN) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("ciphertext fails its integrity check"),
				 errdetail("The value was altered, or was not encrypted to this key.")));

	inner = *r;
	inner.p = s->plain + AES_BLOCK + 2;
	inner.end = s->plain + s->plain_len - MDC_LEN;
	if (!pgp_next_packet(&inner, &literal) || literal.tag != TAG_LITERAL)
		pgp_malformed(r, literal.tag == TAG_COMPRESSED ?
				  gettext_noop("Its data is compressed, which sqs_ingest does not read.") :
				  gettext_noop("Its encrypted data holds no literal data packet."));
	body = pgp_body_reader(r, &literal);
	(void) pgp_get_u8(&body);		/* format */
	pgp_skip(&body, pgp_get_u8(&body)); /* file name */
	(void) pgp_get_be(&body, 4);	/* date */
	*len = body.end - body.p;
	value = palloc(*len + 1);
	memcpy(value, body.p, *len);
	value[*len] = '\0';
	return value;
}

static char *
decrypt(DecryptState *s, const char *message, int message_len,
		const char *secret_key, int secret_key_len, int *len, char **key_id)
{
	PgpReader	kr = {0};
	PgpReader	mr = {0};
	PgpPacket	pkt;
	List	   *keys;
	KeyPacket  *key = NULL;
	const uint8 *mpi = NULL;
	int			mpi_len = 0;
	PgpPacket	seipd = {0};
	uint8		wanted[OPENPGP_KEY_ID_LEN];
	char		hex[2 * OPENPGP_KEY_ID_LEN + 1];
	int			sym_algo;
	bool		seen_pkesk = false;
	ListCell   *lc;

	kr.input = INPUT_SECRET_KEY;
	if (secret_key_len >= 15 && strncmp(secret_key, "-----BEGIN PGP ", 15) == 0)
	{
		s->key_data = pgp_dearmor(&kr, secret_key, secret_key_len, &s->key_data_len);
		kr.p = s->key_data;
		kr.end = s->key_data + s->key_data_len;
	}
	else
	{
		kr.p = (const uint8 *) secret_key;
		kr.end = kr.p + secret_key_len;
	}
	keys = pgp_read_keys(&kr);

	/* the session key packet addressed to a key of the secret key */
	mr.input = INPUT_MESSAGE;
	mr.p = (const uint8 *) message;
	mr.end = mr.p + message_len;
	while (pgp_next_packet(&mr, &pkt))
	{
		if (pkt.tag == TAG_PKESK && mpi == NULL)
		{
			PgpReader	body = pgp_body_reader(&mr, &pkt);

			if (pgp_get_u8(&body) != 3)
				pgp_malformed(&mr, gettext_noop("Its session key packet is not of version 3."));
			pgp_need(&body, OPENPGP_KEY_ID_LEN);
			memcpy(wanted, body.p, OPENPGP_KEY_ID_LEN);
			body.p += OPENPGP_KEY_ID_LEN;
			seen_pkesk = true;
			if (!pgp_is_rsa_encryption(pgp_get_u8(&body)))
				continue;
			foreach(lc, keys)
			{
				KeyPacket  *candidate = lfirst(lc);

				if ((candidate->tag == TAG_SECRET_KEY || candidate->tag == TAG_SECRET_SUBKEY) &&
					candidate->n != NULL &&
					memcmp(candidate->key_id, wanted, OPENPGP_KEY_ID_LEN) == 0)
					key = candidate;
			}
			if (key)
				mpi = pgp_get_mpi(&body, &mpi_len);
		}
		else if (pkt.tag == TAG_SEIPD)
			seipd = pkt;
	}
	if (!seen_pkesk || seipd.body == NULL)
		pgp_malformed(&mr, gettext_noop("It needs a public-key encrypted session key and integrity protected data."));
	pgp_key_id_hex(wanted, hex);
	if (key == NULL)
	{
		StringInfoData held;

		initStringInfo(&held);
		foreach(lc, keys)
		{
			KeyPacket  *candidate = lfirst(lc);
			char		candidate_hex[2 * OPENPGP_KEY_ID_LEN + 1];

			if ((candidate->tag != TAG_SECRET_KEY && candidate->tag != TAG_SECRET_SUBKEY) ||
				candidate->n == NULL)
				continue;
			pgp_key_id_hex(candidate->key_id, candidate_hex);
			appendStringInfo(&held, "%s%s", held.len ? ", " : "", candidate_hex);
		}
		if (held.len == 0)
			pgp_malformed(&kr, gettext_noop("It holds no RSA secret key."));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("value was encrypted to key %s, which the secret key given does not hold", hex),
				 errdetail("The secret key given holds RSA keys %s.", held.data),
				 errhint("Each value decrypts with the secret key it was encrypted to: find the key of that id.")));
	}

	secret_rsa_key(s, key, hex);
	decrypt_session_key(s, &mr, mpi, mpi_len, &sym_algo);
	*key_id = pstrdup(hex);
	return decrypt_data(s, &mr, &seipd, sym_algo, len);
}

/*
 * Decrypt a message that openpgp_encrypt() made, with the secret key (binary
 * as dearmor() gives it, or ASCII-armored).  Returns the value (*len bytes,
 * NUL-terminated) and, in *key_id, the id of the key it was encrypted to.
 * Every copy of secret material made here is wiped before returning.
 */
char *
openpgp_decrypt(const char *message, int message_len,
				const char *secret_key, int secret_key_len,
				int *len, char **key_id)
{
	DecryptState state = {0};
	char	   *volatile value = NULL;

	PG_TRY();
	{
		value = decrypt(&state, message, message_len, secret_key, secret_key_len,
						len, key_id);
	}
	PG_CATCH();
	{
		wipe_state(&state);
		PG_RE_THROW();
	}
	PG_END_TRY();
	wipe_state(&state);
	return value;
}
