/*-------------------------------------------------------------------------
 *
 * openpgp.c
 *	  OpenPGP (RFC 4880) through OpenSSL: packets, ASCII armor and keys,
 *	  and the encryption of single values to an RSA public key.  Their
 *	  decryption with the matching secret key is in openpgp_decrypt.c.
 *
 * The encrypt transform stores each value as a standard OpenPGP message
 * that pgcrypto's pgp_pub_decrypt_bytea() and gpg --decrypt read: a
 * public-key encrypted session key packet (version 3, RSA PKCS#1 v1.5,
 * the key id of the key it was encrypted to) and a symmetrically
 * encrypted integrity protected data packet (AES-256 in OpenPGP's CFB
 * mode, with the modification detection code) holding a literal data
 * packet of UTF-8 text (values are JSON text).  Every value gets a fresh
 * random session key and random prefix, so that two encryptions of one
 * value differ.
 *
 * Only what these messages need is implemented: RSA keys of version 4,
 * unprotected secret keys (what dearmor() of gpg --export-secret-keys
 * gives for a key without a passphrase), messages without compression.
 * A key of another algorithm is refused naming it.  The public key is
 * parsed once, when the mapping is compiled; copies of secret material are
 * wiped before openpgp_decrypt() returns, whether it succeeds or fails.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/memutils.h"

#include "compat.h"
#include "openpgp_internal.h"

struct OpenPgpKey
{
	EVP_PKEY   *pkey;
	EVP_PKEY_CTX *ctx;			/* initialised for encryption */
	uint8		key_id[OPENPGP_KEY_ID_LEN];
	size_t		modulus_len;
};

static EVP_MD *sha1_md = NULL;

/*
 * detail: a whole sentence marked with gettext_noop, translated here (or
 * one already translated, which translating again leaves as it is)
 */
pg_noreturn void
pgp_malformed(const PgpReader *r, const char *detail)
{
	switch (r->input)
	{
		case INPUT_PUBLIC_KEY:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("recovery key in %s is not a valid OpenPGP public key", r->source),
					 errdetail_internal("%s", _(detail)),
					 errhint("Give one key as gpg --armor --export KEY-ID prints it.")));
			break;
		case INPUT_SECRET_KEY:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("secret key is not a valid OpenPGP secret key"),
					 errdetail_internal("%s", _(detail)),
					 errhint("Give the key as dearmor() reads gpg --armor --export-secret-keys.")));
			break;
		case INPUT_MESSAGE:
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("ciphertext is not an OpenPGP message that sqs_ingest can decrypt"),
					 errdetail_internal("%s", _(detail))));
			break;
	}
	pg_unreachable();
}

/* detail: a whole sentence marked with gettext_noop, translated here */
pg_noreturn void
pgp_openssl_failure(const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
			 errmsg("OpenSSL failed in an OpenPGP operation"),
			 errdetail_internal("%s", _(detail))));
}

static const char *
algorithm_name(int algo)
{
	switch (algo)
	{
		case ALGO_RSA:
		case ALGO_RSA_ENCRYPT:
			return "RSA";
		case ALGO_RSA_SIGN:
			return "RSA (sign only)";
		case 16:
			return "ElGamal";
		case 17:
			return "DSA";
		case 18:
			return "ECDH";
		case 19:
			return "ECDSA";
		case 22:
			return "EdDSA";
		case 25:
			return "X25519";
		case 26:
			return "X448";
		case 27:
			return "Ed25519";
		case 28:
			return "Ed448";
		default:
			return "an unknown algorithm";
	}
}

bool
pgp_is_rsa_encryption(int algo)
{
	return algo == ALGO_RSA || algo == ALGO_RSA_ENCRYPT;
}

static const EVP_MD *
sha1(void)
{
	if (sha1_md == NULL && (sha1_md = EVP_MD_fetch(NULL, "SHA1", NULL)) == NULL)
		pgp_openssl_failure(gettext_noop("SHA-1 is not available."));
	return sha1_md;
}

void
pgp_digest_sha1(const uint8 *data, size_t len, uint8 *out)
{
	if (!EVP_Digest(data, len, out, NULL, sha1(), NULL))
		pgp_openssl_failure(gettext_noop("SHA-1 failed."));
}

void
pgp_key_id_hex(const uint8 *key_id, char *out)
{
	static const char hexdigits[] = "0123456789ABCDEF";

	for (int i = 0; i < OPENPGP_KEY_ID_LEN; i++)
	{
		out[2 * i] = hexdigits[key_id[i] >> 4];
		out[2 * i + 1] = hexdigits[key_id[i] & 0x0f];
	}
	out[2 * OPENPGP_KEY_ID_LEN] = '\0';
}


/* ---------------------------------------------------------------------
 * Reading packets
 * ---------------------------------------------------------------------
 */

void
pgp_need(const PgpReader *r, size_t n)
{
	if (r->p > r->end || (size_t) (r->end - r->p) < n)
		pgp_malformed(r, gettext_noop("The data ends in the middle of a packet."));
}

void
pgp_skip(PgpReader *r, size_t n)
{
	pgp_need(r, n);
	r->p += n;
}

uint8
pgp_get_u8(PgpReader *r)
{
	pgp_need(r, 1);
	return *r->p++;
}

uint32
pgp_get_be(PgpReader *r, int n)
{
	uint32		v = 0;

	pgp_need(r, n);
	for (int i = 0; i < n; i++)
		v = (v << 8) | *r->p++;
	return v;
}

/* a multiprecision integer: its bytes, without the bit count */
const uint8 *
pgp_get_mpi(PgpReader *r, int *len)
{
	int			bits = pgp_get_be(r, 2);
	const uint8 *bytes = r->p;

	*len = (bits + 7) / 8;
	pgp_skip(r, *len);
	return bytes;
}

/* a reader over a packet's body */
PgpReader
pgp_body_reader(const PgpReader *r, const PgpPacket *pkt)
{
	PgpReader	body = *r;

	body.p = pkt->body;
	body.end = pkt->body + pkt->len;
	return body;
}

/* the next packet, old or new format; false at the end of the data */
bool
pgp_next_packet(PgpReader *r, PgpPacket *pkt)
{
	uint8		h;
	size_t		len;

	if (r->p >= r->end)
		return false;
	h = pgp_get_u8(r);
	if ((h & 0x80) == 0)
		pgp_malformed(r, gettext_noop("A packet header is invalid."));
	if (h & 0x40)
	{
		uint8		l1;

		pkt->tag = h & 0x3f;
		l1 = pgp_get_u8(r);
		if (l1 < 192)
			len = l1;
		else if (l1 < 224)
			len = ((l1 - 192) << 8) + pgp_get_u8(r) + 192;
		else if (l1 == 255)
			len = pgp_get_be(r, 4);
		else
			pgp_malformed(r, gettext_noop("Packets of partial body lengths are not supported."));
	}
	else
	{
		pkt->tag = (h >> 2) & 0x0f;
		switch (h & 3)
		{
			case 0:
				len = pgp_get_u8(r);
				break;
			case 1:
				len = pgp_get_be(r, 2);
				break;
			case 2:
				len = pgp_get_be(r, 4);
				break;
			default:
				len = r->end - r->p;
				break;
		}
	}
	pgp_need(r, len);
	pkt->body = r->p;
	pkt->len = len;
	r->p += len;
	return true;
}

/* the length of a new-format packet header for a body of len bytes */
static size_t
header_len(size_t len)
{
	return len < 192 ? 2 : len < 8384 ? 3 : 6;
}

static uint8 *
put_header(uint8 *out, int tag, size_t len)
{
	*out++ = 0xc0 | tag;
	if (len < 192)
		*out++ = len;
	else if (len < 8384)
	{
		*out++ = ((len - 192) >> 8) + 192;
		*out++ = (len - 192) & 0xff;
	}
	else
	{
		*out++ = 0xff;
		*out++ = (len >> 24) & 0xff;
		*out++ = (len >> 16) & 0xff;
		*out++ = (len >> 8) & 0xff;
		*out++ = len & 0xff;
	}
	return out;
}


/* ---------------------------------------------------------------------
 * ASCII armor
 * ---------------------------------------------------------------------
 */

static uint32
crc24(const uint8 *data, size_t len)
{
	uint32		crc = 0xb704ce;

	for (size_t i = 0; i < len; i++)
	{
		crc ^= (uint32) data[i] << 16;
		for (int b = 0; b < 8; b++)
		{
			crc <<= 1;
			if (crc & 0x1000000)
				crc ^= 0x1864cfb;
		}
	}
	return crc & 0xffffff;
}

/* base64 without white space; -1 if it is not base64 */
static int
base64_decode(const char *src, int len, uint8 *dst)
{
	int			n;
	int			padding = 0;

	if (len % 4 != 0)
		return -1;
	n = EVP_DecodeBlock(dst, (const unsigned char *) src, len);
	if (n < 0)
		return -1;
	while (padding < 2 && len - padding > 0 && src[len - 1 - padding] == '=')
		padding++;
	return n - padding;
}

/*
 * The binary data of an ASCII-armored block (RFC 4880, section 6), its
 * checksum verified when present.  The result is palloc'd; it is the
 * caller's to wipe.
 */
uint8 *
pgp_dearmor(const PgpReader *r, const char *text, int len, int *out_len)
{
	const char *p = text;
	const char *end = text + len;
	char	   *b64 = palloc(len + 1);
	int			b64_len = 0;
	const char *crc_text = NULL;
	uint8	   *data;
	int			data_len;
	bool		in_body = false;

	/* the BEGIN line, then header lines up to an empty line */
	while (p < end && !(end - p >= 15 && strncmp(p, "-----BEGIN PGP ", 15) == 0))
	{
		const char *nl = memchr(p, '\n', end - p);

		p = nl ? nl + 1 : end;
	}
	if (p >= end)
		pgp_malformed(r, gettext_noop("There is no \"-----BEGIN PGP\" line."));
	while (p < end)
	{
		const char *nl = memchr(p, '\n', end - p);
		const char *line_end = nl ? nl : end;
		const char *trimmed = line_end;

		while (trimmed > p && (trimmed[-1] == '\r' || trimmed[-1] == ' ' || trimmed[-1] == '\t'))
			trimmed--;
		if (strncmp(p, "-----END PGP ", Min(13, trimmed - p)) == 0 && trimmed - p >= 13)
			break;
		if (!in_body)
		{
			/* the BEGIN line and the "Key: value" headers */
			if (trimmed == p)
				in_body = true;
		}
		else if (*p == '=' && trimmed - p == 5)
			crc_text = p + 1;
		else
		{
			memcpy(b64 + b64_len, p, trimmed - p);
			b64_len += trimmed - p;
		}
		p = nl ? nl + 1 : end;
	}
	if (p >= end)
		pgp_malformed(r, gettext_noop("There is no \"-----END PGP\" line."));

	data = palloc(b64_len / 4 * 3 + 3);
	data_len = base64_decode(b64, b64_len, data);
	explicit_bzero(b64, b64_len);
	pfree(b64);
	if (data_len <= 0)
	{
		pfree(data);
		pgp_malformed(r, gettext_noop("The armored data is not base64."));
	}
	if (crc_text)
	{
		uint8		crc[6];

		if (base64_decode(crc_text, 4, crc) != 3 ||
			(((uint32) crc[0] << 16) | (crc[1] << 8) | crc[2]) != crc24(data, data_len))
		{
			explicit_bzero(data, data_len);
			pfree(data);
			pgp_malformed(r, gettext_noop("The armor checksum does not match the data."));
		}
	}
	*out_len = data_len;
	return data;
}


/* ---------------------------------------------------------------------
 * Keys
 * ---------------------------------------------------------------------
 */

/*
 * Read a key packet's public part; for secret keys, key->secret is left
 * over the rest.  Keys other than RSA get their algorithm only.
 */
static void
read_key_packet(const PgpReader *r, const PgpPacket *pkt, KeyPacket *key)
{
	PgpReader	body = pgp_body_reader(r, pkt);
	int			version;

	memset(key, 0, sizeof(*key));
	key->tag = pkt->tag;
	version = pgp_get_u8(&body);
	if (version != 4)
		pgp_malformed(r, psprintf(_("A key is of version %d; only version 4 keys are supported."),
							  version));
	(void) pgp_get_be(&body, 4);	/* creation time */
	key->algo = pgp_get_u8(&body);
	if (!pgp_is_rsa_encryption(key->algo) && key->algo != ALGO_RSA_SIGN)
		return;
	key->n = pgp_get_mpi(&body, &key->n_len);
	key->e = pgp_get_mpi(&body, &key->e_len);

	/* the key id: low 64 bits of SHA-1(0x99, length, public part) */
	{
		size_t		public_len = body.p - pkt->body;
		uint8	   *hashed = palloc(public_len + 3);
		uint8		digest[SHA1_LEN];

		hashed[0] = 0x99;
		hashed[1] = (public_len >> 8) & 0xff;
		hashed[2] = public_len & 0xff;
		memcpy(hashed + 3, pkt->body, public_len);
		pgp_digest_sha1(hashed, public_len + 3, digest);
		memcpy(key->key_id, digest + SHA1_LEN - OPENPGP_KEY_ID_LEN, OPENPGP_KEY_ID_LEN);
		pfree(hashed);
	}
	key->secret = body;
}

/* the key flags of a version 4 self-signature, if it has them */
static void
read_key_flags(const PgpReader *r, const PgpPacket *pkt, KeyPacket *key)
{
	PgpReader	body = pgp_body_reader(r, pkt);
	PgpReader	hashed;
	int			hashed_len;

	if (pgp_get_u8(&body) != 4)
		return;
	(void) pgp_get_be(&body, 3);	/* type, public-key and hash algorithms */
	hashed_len = pgp_get_be(&body, 2);
	pgp_need(&body, hashed_len);
	hashed = body;
	hashed.end = body.p + hashed_len;
	while (hashed.p < hashed.end)
	{
		uint32		len = pgp_get_u8(&hashed);
		int			type;

		if (len >= 192 && len < 255)
			len = ((len - 192) << 8) + pgp_get_u8(&hashed) + 192;
		else if (len == 255)
			len = pgp_get_be(&hashed, 4);
		if (len == 0)
			pgp_malformed(r, gettext_noop("A signature subpacket is empty."));
		pgp_need(&hashed, len);
		type = hashed.p[0] & 0x7f;
		if (type == 27 && len >= 2)
		{
			key->has_flags = true;
			key->flags = hashed.p[1];
		}
		pgp_skip(&hashed, len);
	}
}

/* the key packets of a transferable key, with their self-signatures' flags */
List *
pgp_read_keys(PgpReader *r)
{
	List	   *keys = NIL;
	PgpPacket	pkt;
	KeyPacket  *last = NULL;

	while (pgp_next_packet(r, &pkt))
	{
		switch (pkt.tag)
		{
			case TAG_PUBLIC_KEY:
			case TAG_PUBLIC_SUBKEY:
			case TAG_SECRET_KEY:
			case TAG_SECRET_SUBKEY:
				last = palloc(sizeof(KeyPacket));
				read_key_packet(r, &pkt, last);
				keys = lappend(keys, last);
				break;
			case TAG_SIGNATURE:
				{
					/* signature type: subkey binding, or certification */
					uint8		type = pkt.len >= 2 && pkt.body[0] == 4 ? pkt.body[1] : 0;
					bool		primary = last && (last->tag == TAG_PUBLIC_KEY ||
												   last->tag == TAG_SECRET_KEY);

					if ((type == 0x18 && last && !primary) ||
						(((type >= 0x10 && type <= 0x13) || type == 0x1f) && primary))
						read_key_flags(r, &pkt, last);
					break;
				}
			default:
				break;
		}
	}
	return keys;
}

/*
 * The key to encrypt to: the last subkey made for encryption, else the
 * primary key if it is; RSA, or refused naming the algorithm it uses.
 * Revocations and expiry dates are not looked at: whoever configures the
 * key gives the one in use, and rotates by giving another.
 */
static KeyPacket *
choose_encryption_key(const PgpReader *r, List *keys)
{
	KeyPacket  *chosen = NULL;
	KeyPacket  *primary;
	ListCell   *lc;

	if (keys == NIL)
		pgp_malformed(r, gettext_noop("It holds no key."));
	primary = linitial(keys);
	if (primary->tag != TAG_PUBLIC_KEY)
		pgp_malformed(r, gettext_noop("It does not start with a public key."));
	for_each_from(lc, keys, 1)
	{
		KeyPacket  *key = lfirst(lc);

		if (key->tag == TAG_PUBLIC_KEY)
			pgp_malformed(r, gettext_noop("It holds more than one key."));
		if (key->has_flags ? (key->flags & KEY_FLAGS_ENCRYPT) != 0 :
			key->algo != ALGO_RSA_SIGN)
			chosen = key;
	}
	if (chosen == NULL &&
		(primary->has_flags ? (primary->flags & KEY_FLAGS_ENCRYPT) != 0 :
		 list_length(keys) == 1))
		chosen = primary;
	if (chosen == NULL)
		pgp_malformed(r, gettext_noop("It holds no key for encryption."));
	if (!pgp_is_rsa_encryption(chosen->algo))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("recovery key in %s uses %s (algorithm %d), which sqs_ingest cannot encrypt to",
						r->source, algorithm_name(chosen->algo), chosen->algo),
				 errdetail("sqs_ingest encrypts to RSA keys, which pgcrypto can decrypt with."),
				 errhint("Generate an RSA key with an RSA encryption subkey: gpg --quick-gen-key 'Recovery' rsa3072 cert never, then gpg --quick-add-key FINGERPRINT rsa3072 encr never.")));
	return chosen;
}

/* a BIGNUM from big-endian bytes; NULL if OpenSSL failed */
BIGNUM *
pgp_bn(const uint8 *bytes, int len)
{
	return BN_bin2bn(bytes, len, NULL);
}

static void
free_public_key(void *arg)
{
	OpenPgpKey *key = arg;

	EVP_PKEY_CTX_free(key->ctx);
	EVP_PKEY_free(key->pkey);
}

/*
 * Parse an ASCII-armored OpenPGP public key (source says where it came
 * from, for errors) and make it ready to encrypt to.  The key lives as
 * long as the current memory context.
 */
OpenPgpKey *
openpgp_public_key_parse(const char *armored, int len, const char *source)
{
	PgpReader	r = {0};
	uint8	   *data;
	int			data_len;
	KeyPacket  *chosen;
	OpenPgpKey *key;
	OSSL_PARAM_BLD *bld;
	OSSL_PARAM *params = NULL;
	BIGNUM	   *n;
	BIGNUM	   *e;
	EVP_PKEY_CTX *fromdata;
	MemoryContextCallback *callback;

	r.input = INPUT_PUBLIC_KEY;
	r.source = source;
	data = pgp_dearmor(&r, armored, len, &data_len);
	r.p = data;
	r.end = data + data_len;
	chosen = choose_encryption_key(&r, pgp_read_keys(&r));
	if (chosen->n_len < 128)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg_plural("recovery key in %s is an RSA key of %d bit, fewer than 1024",
							   "recovery key in %s is an RSA key of %d bits, fewer than 1024",
							   chosen->n_len * 8,
							   source, chosen->n_len * 8),
				 errhint("Generate an RSA key of 2048 or 3072 bits.")));

	key = palloc0(sizeof(OpenPgpKey));
	memcpy(key->key_id, chosen->key_id, OPENPGP_KEY_ID_LEN);
	key->modulus_len = chosen->n_len;

	n = pgp_bn(chosen->n, chosen->n_len);
	e = pgp_bn(chosen->e, chosen->e_len);
	bld = OSSL_PARAM_BLD_new();
	fromdata = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (n && e && bld && fromdata &&
		OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
		OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
		params = OSSL_PARAM_BLD_to_param(bld);
	if (params == NULL || EVP_PKEY_fromdata_init(fromdata) <= 0 ||
		EVP_PKEY_fromdata(fromdata, &key->pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		key->pkey = NULL;
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(fromdata);
	BN_free(n);
	BN_free(e);
	if (key->pkey == NULL)
		pgp_malformed(&r, gettext_noop("OpenSSL does not accept its RSA key."));
	key->ctx = EVP_PKEY_CTX_new(key->pkey, NULL);
	if (key->ctx == NULL || EVP_PKEY_encrypt_init(key->ctx) <= 0 ||
		EVP_PKEY_CTX_set_rsa_padding(key->ctx, RSA_PKCS1_PADDING) <= 0)
	{
		free_public_key(key);
		pgp_openssl_failure(gettext_noop("An RSA encryption context could not be set up."));
	}
	callback = palloc(sizeof(MemoryContextCallback));
	callback->func = free_public_key;
	callback->arg = key;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, callback);
	pfree(data);
	return key;
}


/* ---------------------------------------------------------------------
 * Encryption
 * ---------------------------------------------------------------------
 */

static const EVP_CIPHER *
aes_cfb(int sym_algo)
{
	static EVP_CIPHER *ciphers[3];
	static const char *const names[3] = {"AES-128-CFB", "AES-192-CFB", "AES-256-CFB"};
	int			i = sym_algo - SYM_AES128;

	Assert(i >= 0 && i < 3);
	if (ciphers[i] == NULL && (ciphers[i] = EVP_CIPHER_fetch(NULL, names[i], NULL)) == NULL)
		pgp_openssl_failure(gettext_noop("AES in CFB mode is not available."));
	return ciphers[i];
}

/*
 * OpenPGP's CFB mode for integrity protected data: plain CFB with a zero
 * IV, in place.
 */
void
pgp_aes_cfb_crypt(int sym_algo, const uint8 *key, uint8 *data, int len, bool encrypt)
{
	static const uint8 zero_iv[AES_BLOCK] = {0};
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int			out_len;
	bool		ok;

	ok = ctx != NULL &&
		EVP_CipherInit_ex2(ctx, aes_cfb(sym_algo), key, zero_iv, encrypt ? 1 : 0, NULL) &&
		EVP_CipherUpdate(ctx, data, &out_len, data, len) &&
		out_len == len;
	EVP_CIPHER_CTX_free(ctx);	/* wipes the key schedule */
	if (!ok)
		pgp_openssl_failure(gettext_noop("AES encryption failed."));
}

/*
 * Encrypt a value to the key: a public-key encrypted session key packet,
 * then the integrity protected data packet.
 */
bytea *
openpgp_encrypt(const OpenPgpKey *key, const char *data, int len)
{
	uint8		session[1 + SESSION_KEY_LEN + 2];
	uint8	   *rsa_out = palloc(key->modulus_len);
	size_t		rsa_len = key->modulus_len;
	const uint8 *mpi;
	int			mpi_bits;
	size_t		literal_len = 6 + len;
	size_t		plain_len = AES_BLOCK + 2 + header_len(literal_len) + literal_len + MDC_LEN;
	size_t		pkesk_len;
	size_t		seipd_len = 1 + plain_len;
	bytea	   *result;
	uint8	   *out;
	uint8	   *plain;
	uint16		checksum = 0;

	Assert(len <= OPENPGP_MAX_PLAINTEXT);

	/* the session key, with its algorithm and checksum */
	session[0] = SYM_AES256;
	if (RAND_bytes(session + 1, SESSION_KEY_LEN) != 1)
		pgp_openssl_failure(gettext_noop("No random session key could be made."));
	for (int i = 0; i < SESSION_KEY_LEN; i++)
		checksum += session[1 + i];
	session[1 + SESSION_KEY_LEN] = checksum >> 8;
	session[2 + SESSION_KEY_LEN] = checksum & 0xff;
	if (EVP_PKEY_encrypt(key->ctx, rsa_out, &rsa_len, session, sizeof(session)) <= 0)
	{
		explicit_bzero(session, sizeof(session));
		pgp_openssl_failure(gettext_noop("RSA encryption failed."));
	}
	mpi = rsa_out;
	while (rsa_len > 1 && *mpi == 0)
	{
		mpi++;
		rsa_len--;
	}
	mpi_bits = (rsa_len - 1) * 8;
	for (uint8 top = mpi[0]; top; top >>= 1)
		mpi_bits++;
	pkesk_len = 1 + OPENPGP_KEY_ID_LEN + 1 + 2 + rsa_len;

	result = palloc(VARHDRSZ + header_len(pkesk_len) + pkesk_len +
					header_len(seipd_len) + seipd_len);
	out = (uint8 *) VARDATA(result);

	out = put_header(out, TAG_PKESK, pkesk_len);
	*out++ = 3;
	memcpy(out, key->key_id, OPENPGP_KEY_ID_LEN);
	out += OPENPGP_KEY_ID_LEN;
	*out++ = ALGO_RSA;
	*out++ = mpi_bits >> 8;
	*out++ = mpi_bits & 0xff;
	memcpy(out, mpi, rsa_len);
	out += rsa_len;
	pfree(rsa_out);

	out = put_header(out, TAG_SEIPD, seipd_len);
	*out++ = 1;

	/* random prefix, its last two bytes repeated; then the literal data */
	plain = out;
	if (RAND_bytes(out, AES_BLOCK) != 1)
	{
		explicit_bzero(session, sizeof(session));
		pgp_openssl_failure(gettext_noop("No random prefix could be made."));
	}
	out[AES_BLOCK] = out[AES_BLOCK - 2];
	out[AES_BLOCK + 1] = out[AES_BLOCK - 1];
	out += AES_BLOCK + 2;
	out = put_header(out, TAG_LITERAL, literal_len);
	*out++ = 'u';				/* UTF-8 text: pgp_pub_decrypt() reads it too */
	*out++ = 0;					/* no file name */
	memset(out, 0, 4);			/* no date */
	out += 4;
	memcpy(out, data, len);
	out += len;
	/* the modification detection code hashes everything up to itself */
	*out++ = 0xc0 | TAG_MDC;
	*out++ = SHA1_LEN;
	pgp_digest_sha1(plain, out - plain, out);
	out += SHA1_LEN;
	Assert(out - plain == (ptrdiff_t) plain_len);

	pgp_aes_cfb_crypt(SYM_AES256, session + 1, plain, plain_len, true);
	explicit_bzero(session, sizeof(session));
	SET_VARSIZE(result, (char *) out - (char *) result);
	return result;
}
