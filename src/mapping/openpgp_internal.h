/*-------------------------------------------------------------------------
 *
 * openpgp_internal.h
 *	  What the OpenPGP files share: packet tags and algorithms, the packet
 *	  reader, key packets, and the functions of openpgp.c that decryption
 *	  (openpgp_decrypt.c) uses too.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_OPENPGP_INTERNAL_H
#define SQS_INGEST_OPENPGP_INTERNAL_H

#include <openssl/bn.h>

#include "nodes/pg_list.h"

#include "compat.h"
#include "openpgp.h"

/* packet tags */
#define TAG_PKESK			1
#define TAG_SIGNATURE		2
#define TAG_SECRET_KEY		5
#define TAG_PUBLIC_KEY		6
#define TAG_SECRET_SUBKEY	7
#define TAG_COMPRESSED		8
#define TAG_LITERAL			11
#define TAG_PUBLIC_SUBKEY	14
#define TAG_SEIPD			18
#define TAG_MDC				19

/* public-key algorithms */
#define ALGO_RSA			1
#define ALGO_RSA_ENCRYPT	2
#define ALGO_RSA_SIGN		3

/* symmetric algorithms */
#define SYM_AES128			7
#define SYM_AES192			8
#define SYM_AES256			9

/* key flags that allow encryption (communications, storage) */
#define KEY_FLAGS_ENCRYPT	0x0c

#define SHA1_LEN			20
#define MDC_LEN				(2 + SHA1_LEN)
#define AES_BLOCK			16
#define SESSION_KEY_LEN		32

/* what is being read, for the errors */
typedef enum PgpInput
{
	INPUT_PUBLIC_KEY,
	INPUT_SECRET_KEY,
	INPUT_MESSAGE
} PgpInput;

typedef struct PgpReader
{
	const uint8 *p;
	const uint8 *end;
	PgpInput	input;
	const char *source;			/* public keys: where the key came from */
} PgpReader;

typedef struct PgpPacket
{
	int			tag;
	const uint8 *body;
	size_t		len;
} PgpPacket;

/* a key packet, public or secret, primary or subkey */
typedef struct KeyPacket
{
	int			tag;
	int			algo;
	bool		has_flags;		/* a self-signature says what it is for */
	uint8		flags;
	uint8		key_id[OPENPGP_KEY_ID_LEN];
	/* RSA keys only */
	const uint8 *n;
	int			n_len;
	const uint8 *e;
	int			e_len;
	PgpReader	secret;			/* secret keys: what follows the public part */
} KeyPacket;

pg_noreturn extern void pgp_malformed(const PgpReader *r, const char *detail);
pg_noreturn extern void pgp_openssl_failure(const char *detail);
extern bool pgp_is_rsa_encryption(int algo);
extern void pgp_digest_sha1(const uint8 *data, size_t len, uint8 *out);
extern void pgp_key_id_hex(const uint8 *key_id, char *out);

/* reading packets */
extern void pgp_need(const PgpReader *r, size_t n);
extern void pgp_skip(PgpReader *r, size_t n);
extern uint8 pgp_get_u8(PgpReader *r);
extern uint32 pgp_get_be(PgpReader *r, int n);
extern const uint8 *pgp_get_mpi(PgpReader *r, int *len);
extern PgpReader pgp_body_reader(const PgpReader *r, const PgpPacket *pkt);
extern bool pgp_next_packet(PgpReader *r, PgpPacket *pkt);
extern uint8 *pgp_dearmor(const PgpReader *r, const char *text, int len,
						 int *out_len);

/* keys and ciphers */
extern List *pgp_read_keys(PgpReader *r);
extern BIGNUM *pgp_bn(const uint8 *bytes, int len);
extern void pgp_aes_cfb_crypt(int sym_algo, const uint8 *key, uint8 *data,
							  int len, bool encrypt);

#endif							/* SQS_INGEST_OPENPGP_INTERNAL_H */
